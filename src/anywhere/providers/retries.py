"""When a failed step against infrastructure (vCenter, a BMC) is tried again, and how the failure
reads on the object.

The delay grows with each failure in a row.

A failure is written to the object's status (the message counts the attempts), and that write comes
back as a watch event that queues the object at once, as does its owner Machine copying the
condition. So the delay cannot be left to ``Result(requeue_after=...)`` alone: each reconcile asks
:meth:`Retries.wait` first and goes back to sleep until the attempt is due. A changed spec
(``metadata.generation``) or a deletion is tried at once, so a fix does not wait out a minute.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Final

from anywhere.controllers.conditions import ERROR, WARNING

__all__ = ["MAX_BACKOFF", "Failure", "InfrastructureError", "Retries", "backoff", "without_attempts"]

Obj = dict[str, Any]

MAX_BACKOFF: Final = 60.0


class InfrastructureError(Exception):
    """The infrastructure (vCenter, a BMC) could not be used: ``reason`` is the condition reason, the
    message says what to do. A controller records it as a failed attempt and tries again later."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


_ATTEMPTS = re.compile(r" \(attempt \d+; trying again in \d+s\)$")


def without_attempts(message: str) -> str:
    """A failure's message without the attempt count :meth:`Retries.failed` adds, so that it reads
    the same from one attempt to the next (for a summary elsewhere)."""
    return _ATTEMPTS.sub("", message)


def backoff(failures: int) -> float:
    """Seconds until the next attempt after ``failures`` failed ones in a row: 2, 4, 8 ... 60."""
    return min(MAX_BACKOFF, 2.0 ** max(1, failures))


def _state(obj: Obj) -> tuple[int, bool]:
    meta = obj.get("metadata") or {}
    return int(meta.get("generation") or 0), bool(meta.get("deletionTimestamp"))


@dataclass(frozen=True)
class _Due:
    at: float  # time.monotonic()
    state: tuple[int, bool]  # (generation, deleting) the failure was about


@dataclass(frozen=True)
class Failure:
    """A failed attempt as a condition shows it (the message counts the attempts and says when the
    next comes), and the seconds until that next attempt."""

    reason: str
    message: str
    severity: str
    delay: float


class Retries:
    """Failures in a row and the next attempt's time, per object key (in memory: a restarted
    controller tries everything once at once, then backs off again).

    ``user_errors`` are the failure reasons the user must fix (the spec, credentials, the
    infrastructure's content): their conditions are errors; the rest (unreachable, a task that failed)
    may pass by themselves and are warnings.
    """

    def __init__(self, user_errors: frozenset[str] = frozenset()) -> None:
        self._user_errors = user_errors
        self._failures: dict[str, int] = {}
        self._due: dict[str, _Due] = {}

    def failed(self, key: str, obj: Obj, reason: str, message: str) -> Failure:
        """Record a failed attempt at ``obj``; returns what the object's condition says of it."""
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = backoff(failures)
        self._due[key] = _Due(time.monotonic() + delay, _state(obj))
        return Failure(
            reason=reason,
            message=f"{message} (attempt {failures}; trying again in {delay:.0f}s)",
            severity=ERROR if reason in self._user_errors else WARNING,
            delay=delay,
        )

    def wait(self, key: str, obj: Obj) -> float | None:
        """Seconds until the next attempt at ``obj`` is due, or None to go ahead now."""
        due = self._due.get(key)
        if due is None:
            return None
        if due.state != _state(obj):
            del self._due[key]  # the spec changed, or the object is being deleted: try at once
            return None
        left = due.at - time.monotonic()
        return left if left > 0 else None

    def succeeded(self, key: str) -> None:
        """The step went through: the next failure starts from the shortest delay again."""
        self._failures.pop(key, None)
        self._due.pop(key, None)
