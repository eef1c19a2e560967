"""Jittered exponential backoff for reconnect loops.

Jitter matters when many clients lose the same server at once (a restart): without it they all
come back in lock-step and hit it together.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * factor**n`` capped at ``maximum``, each stretched by up to ``jitter``."""

    def __init__(
        self, initial: float = 0.8, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.2
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._jitter = jitter
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self._factor, self._maximum)
        return delay * (1.0 + random.random() * self._jitter)

    def reset(self) -> None:
        self._next = self._initial
