"""Errors of the specification layer.

Validation never stops at the first problem: it returns every :class:`FieldError` at once, each
naming the object and the field, so a user fixes a file in one pass. Loading problems that make
validation impossible (a file that is not YAML, no Cluster) raise :class:`SpecError` instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FieldError:
    """One problem with one field of one object.

    ``obj`` is ``Kind/name``; ``field`` is a JSON-ish path such as
    ``spec.workerNodeGroupConfigurations[0].count``.
    """

    obj: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.obj}: {self.field}" if self.field else self.obj
        return f"{where}: {self.message}"


class SpecError(Exception):
    """A specification that cannot even be validated: unreadable, unparseable or incomplete.

    ``source`` names the file (and line where known) so the one-line message says where to look.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"


class ErrorList:
    """Collects :class:`FieldError` for one object; the path helpers keep call sites short."""

    def __init__(self, obj: str) -> None:
        self.obj = obj
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append(FieldError(self.obj, field, message))

    def extend(self, errors: list[FieldError]) -> None:
        self.errors.extend(errors)

    def __bool__(self) -> bool:
        return bool(self.errors)
