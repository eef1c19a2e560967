"""Storage for the API server: a versioned key-value store with compare-and-swap and watch.

The contract is etcd's, so that SQLite (the embedded default) and etcd (for HA) are interchangeable:

- one monotonically increasing revision for the whole store; every write gets the next one, and an
  object's ``resourceVersion`` is the revision of its last write (``mod_rv``);
- writes are durable before they are acknowledged;
- ``update`` and ``delete`` take the revision the caller last saw and fail with :class:`Conflict`
  when the key has moved on (optimistic concurrency);
- ``watch(prefix, from_rv)`` delivers every change after ``from_rv`` in revision order, or raises
  :class:`Compacted` when that history is gone (the API answers 410 Gone and the client re-lists).
"""

from __future__ import annotations

from anywhere.storage._interface import (
    Compacted,
    Conflict,
    Event,
    KeyExists,
    KeyNotFound,
    ListResult,
    Record,
    Storage,
    StorageError,
    Unavailable,
    ValueTooLarge,
    Watch,
)

__all__ = [
    "Compacted",
    "Conflict",
    "Event",
    "KeyExists",
    "KeyNotFound",
    "ListResult",
    "Record",
    "Storage",
    "StorageError",
    "Unavailable",
    "ValueTooLarge",
    "Watch",
]
