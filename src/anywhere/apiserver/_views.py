"""In-memory views of storage prefixes, kept current by watching, and a store that waits for them.

Authorization and ServiceAccount-token checks run on every request, so they read memory, not
storage: a :class:`View` lists a prefix once and then follows its watch. A view lags its store by
the time an event takes to arrive, which would let a request sent right after ``kubectl delete
rolebinding`` still pass; :class:`ReadYourWrites` closes that gap for writes made through this
server by answering a write under a followed prefix only once the view has seen it. (Writes through
another replica arrive as fast as its watch, as in Kubernetes, whose authorizer reads an informer.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from anywhere.storage import Compacted, ListResult, Record, Storage, StorageError, Watch

log = logging.getLogger("anywhere.apiserver")

Obj = dict[str, Any]
# Longest a write waits for a view to see it; past this the view is broken (its store is
# unreachable) and the write is answered anyway, so a client never hangs on it.
SETTLE_TIMEOUT = 2.0
RETRY_AFTER = 1.0


class View:
    """One prefix of the store, followed: ``apply(key, obj)`` for every change (``None``: deleted).

    When the history since the view's revision is gone (compacted while its watch was broken) the
    prefix is read again, and keys the view held that the new read lacks were deleted in the gap:
    they are applied as deletions, so no follower keeps an object that no longer exists.
    """

    def __init__(self, storage: Storage, prefix: str, apply: Callable[[str, Obj | None], None]) -> None:
        self._storage = storage
        self.prefix = prefix
        self._apply = apply
        self._keys: set[str] = set()  # the keys applied and not deleted since
        self.revision = 0
        self._advanced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read the whole prefix (what :meth:`start` does first; again after compaction)."""
        listed: ListResult = await self._storage.list(self.prefix)
        present = {record.key for record in listed.records}
        for key in self._keys - present:
            self._deliver(key, None)
        for record in listed.records:
            self._deliver(record.key, record.value)
        self._advance(listed.revision)

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.create_task(self._follow(), name=f"view {self.prefix}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_for(self, revision: int, timeout: float = SETTLE_TIMEOUT) -> bool:
        """Until this view has applied ``revision``; False when ``timeout`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            advanced = self._advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(advanced.wait(), remaining)
        return True

    async def _follow(self) -> None:
        while True:
            try:
                watch = await self._storage.watch(self.prefix, self.revision)
                async for event in watch:
                    self._deliver(event.key, None if event.type == "DELETED" else event.value)
                    self._advance(event.rv)
                # The store ended the stream (e.g. this watcher fell behind): resume where we are.
                log.info("watch of %s ended (%s); resuming", self.prefix, watch.closed_reason)
                await asyncio.sleep(RETRY_AFTER)
            except Compacted:
                try:
                    await self.load()
                except StorageError as exc:  # the store went away meanwhile: the watch fails again
                    log.info("cannot reload %s yet: %s", self.prefix, exc)
                    await asyncio.sleep(RETRY_AFTER)
            except StorageError:
                await asyncio.sleep(RETRY_AFTER)

    def _deliver(self, key: str, value: bytes | None) -> None:
        if value is None:
            self._keys.discard(key)
            self._call(key, None)
            return
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("ignoring an undecodable value at %s", key)
            return
        if isinstance(obj, dict):
            self._keys.add(key)
            self._call(key, obj)

    def _call(self, key: str, obj: Obj | None) -> None:
        """One change to the follower; its failure on one object must not end the view."""
        try:
            self._apply(key, obj)
        except Exception:
            log.exception("the view of %s could not apply %s", self.prefix, key)

    def _advance(self, revision: int) -> None:
        if revision > self.revision:
            self.revision = revision
        self._advanced.set()
        self._advanced = asyncio.Event()


class ReadYourWrites(Storage):
    """``storage``, except that a write under a followed prefix returns once its view has it.

    ``guard(key, value)`` sees every create and update first and may refuse it by raising (the
    authorizer's escalation check, which needs the object exactly as it will be stored).
    """

    def __init__(
        self, storage: Storage, views: Sequence[View], guard: Callable[[str, bytes], None] | None = None
    ) -> None:
        self._inner = storage
        self._views = tuple(views)
        self._guard = guard

    def __getattr__(self, name: str) -> Any:  # what a backend offers beyond the interface
        return getattr(self._inner, name)

    async def _settle(self, key: str, revision: int) -> None:
        for view in self._views:
            if key.startswith(view.prefix) and not await view.wait_for(revision):
                log.warning("the view of %s did not catch up with revision %d", view.prefix, revision)

    async def get(self, key: str) -> Record | None:
        return await self._inner.get(key)

    async def list(self, prefix: str, *, limit: int = 0, start_after: str = "") -> ListResult:
        return await self._inner.list(prefix, limit=limit, start_after=start_after)

    async def create(self, key: str, value: bytes) -> Record:
        if self._guard is not None:
            self._guard(key, value)
        record = await self._inner.create(key, value)
        await self._settle(key, record.mod_rv)
        return record

    async def update(self, key: str, value: bytes, *, expected_rv: int | None = None) -> Record:
        if self._guard is not None:
            self._guard(key, value)
        record = await self._inner.update(key, value, expected_rv=expected_rv)
        await self._settle(key, record.mod_rv)
        return record

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Record:
        record = await self._inner.delete(key, expected_rv=expected_rv)
        await self._settle(key, record.mod_rv)
        return record

    async def watch(self, prefix: str, from_rv: int) -> Watch:
        return await self._inner.watch(prefix, from_rv)

    async def revision(self) -> int:
        return await self._inner.revision()

    async def compact(self, keep: int) -> int:
        return await self._inner.compact(keep)

    async def close(self) -> None:
        await self._inner.close()
