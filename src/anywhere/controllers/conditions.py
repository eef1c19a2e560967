"""Status conditions on unstructured objects, with Cluster API's rules.

Conditions are the contract between controllers and users (``kubectl wait --for=condition=Ready``),
so they follow Cluster API exactly: ``lastTransitionTime`` moves only when ``status`` changes,
``Ready`` sorts first and the rest alphabetically, and a False condition carries a reason, a
severity and a message saying what is being waited for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import MutableMapping
from typing import Any, Final

__all__ = [
    "ERROR",
    "INFO",
    "READY",
    "WARNING",
    "get_condition",
    "is_false",
    "is_true",
    "now",
    "set_condition",
    "set_false",
    "set_true",
]

Obj = dict[str, Any]
READY: Final = "Ready"
ERROR: Final = "Error"
WARNING: Final = "Warning"
INFO: Final = "Info"


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(obj: Obj, type_: str) -> Obj | None:
    """The condition of ``type_`` in ``obj['status']['conditions']``, or None."""
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_:
            return dict(condition)
    return None


def is_true(obj: Obj, type_: str) -> bool:
    condition = get_condition(obj, type_)
    return condition is not None and condition.get("status") == "True"


def is_false(obj: Obj, type_: str) -> bool:
    condition = get_condition(obj, type_)
    return condition is not None and condition.get("status") == "False"


def set_condition(
    status: MutableMapping[str, Any],
    type_: str,
    value: bool | str,
    reason: str = "",
    message: str = "",
    severity: str = "",
) -> bool:
    """Set a condition in a ``status`` dict; returns whether anything changed.

    ``value`` is True/False or "True"/"False"/"Unknown". A True condition carries no reason,
    message or severity (Cluster API's convention); a False one gets severity Info unless given.
    """
    text = value if isinstance(value, str) else ("True" if value else "False")
    wanted: Obj = {"type": type_, "status": text}
    if text != "True":
        wanted["severity"] = severity or INFO
        if reason:
            wanted["reason"] = reason
        if message:
            wanted["message"] = message
    conditions: list[Obj] = list(status.get("conditions") or [])
    for index, current in enumerate(conditions):
        if current.get("type") != type_:
            continue
        same = {k: v for k, v in current.items() if k != "lastTransitionTime"} == wanted
        if same:
            return False
        wanted["lastTransitionTime"] = (
            current.get("lastTransitionTime") if current.get("status") == text else None
        ) or now()
        conditions[index] = wanted
        break
    else:
        wanted["lastTransitionTime"] = now()
        conditions.append(wanted)
    conditions.sort(key=lambda c: (c.get("type") != READY, c.get("type", "")))
    status["conditions"] = conditions
    return True


def set_true(status: MutableMapping[str, Any], type_: str) -> bool:
    return set_condition(status, type_, True)


def set_false(
    status: MutableMapping[str, Any], type_: str, reason: str, message: str = "", severity: str = INFO
) -> bool:
    return set_condition(status, type_, False, reason, message, severity)
