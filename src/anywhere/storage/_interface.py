"""The storage interface every backend implements, and its errors."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Record:
    """A stored value and the revisions of its creation and its last change."""

    key: str
    value: bytes
    create_rv: int
    mod_rv: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For ``DELETED`` the value is the object as it was, and ``rv`` the deletion's revision."""

    type: EventType
    key: str
    value: bytes
    rv: int
    # The value before this change (etcd's prev_kv), where the store still has it: watchers with a
    # selector need it to tell an object leaving their selection from one that never was in it.
    prev: bytes | None = None


@dataclass(frozen=True, slots=True)
class ListResult:
    records: list[Record]
    revision: int  # the store's revision the list was read at: watch from here to miss nothing
    more: bool  # a limit cut the list; continue after the last record's key


class StorageError(Exception):
    """Base of storage failures; the API maps each to a Kubernetes Status."""


class KeyExists(StorageError):
    pass


class KeyNotFound(StorageError):
    pass


class Conflict(StorageError):
    """The key changed since the revision the caller read (or, for create-only, exists)."""

    def __init__(self, key: str, current_rv: int) -> None:
        self.key = key
        self.current_rv = current_rv
        super().__init__(f"{key} is at revision {current_rv}")


class Compacted(StorageError):
    """The requested revision is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        self.requested = requested
        self.oldest = oldest
        super().__init__(f"revision {requested} is compacted; the oldest retained is {oldest}")


class Unavailable(StorageError):
    """The backend cannot serve now (closed, disk error, etcd unreachable)."""


class ValueTooLarge(StorageError):
    """The backend refuses a value this large, now and on every retry (the API answers 413)."""


class Watch(abc.ABC):
    """A stream of events; iterate it (or call :meth:`next`), and ``close()`` it when done."""

    @abc.abstractmethod
    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event; ``None`` when ``timeout`` passes first; StopAsyncIteration at the end.

        Unlike cancelling an iteration, a timeout here leaves the stream usable.
        """

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                event = await self.next()
                if event is not None:
                    yield event
        except StopAsyncIteration:
            return
        finally:
            self.close()

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def closed_reason(self) -> str | None:
        """Why the stream ended from the store's side (e.g. the watcher fell too far behind)."""


class Storage(abc.ABC):
    """A versioned key-value store with compare-and-swap and watch (see the package docstring)."""

    @abc.abstractmethod
    async def get(self, key: str) -> Record | None: ...

    @abc.abstractmethod
    async def list(self, prefix: str, *, limit: int = 0, start_after: str = "") -> ListResult:
        """Records under ``prefix`` in key order, after ``start_after``; ``limit`` 0 means all."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> Record:
        """Store a new key; :class:`KeyExists` when it is there."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, *, expected_rv: int | None = None) -> Record:
        """Replace a key's value; :class:`Conflict` when ``expected_rv`` is not its current revision."""

    @abc.abstractmethod
    async def delete(self, key: str, *, expected_rv: int | None = None) -> Record:
        """Remove a key; returns its last value with the deletion's revision as ``mod_rv``."""

    @abc.abstractmethod
    async def watch(self, prefix: str, from_rv: int) -> Watch:
        """Every change under ``prefix`` after ``from_rv``; :class:`Compacted` when it is too old."""

    @abc.abstractmethod
    async def revision(self) -> int:
        """The revision of the last write."""

    @abc.abstractmethod
    async def compact(self, keep: int) -> int:
        """Forget history except the last ``keep`` revisions; returns the oldest watchable revision."""

    @abc.abstractmethod
    async def close(self) -> None: ...
