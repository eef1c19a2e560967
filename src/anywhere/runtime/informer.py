"""Shared informers: a local cache of one resource, kept current by list-then-watch.

Every controller needs to know the objects it manages, and asking the API server each time would
cost a request per question and still miss changes between questions. An informer lists once,
then watches from the list's ``resourceVersion``, applying each event to a cache keyed by
``namespace/name`` and telling its handlers. It is shared (see :class:`InformerFactory`) because
many controllers look at the same kinds, and one watch serves them all.

What keeps it correct when things go wrong:

- a watch that ends (server timeout or restart) resumes from the last ``resourceVersion`` seen;
  bookmarks keep that version fresh while nothing changes, so a resumption is rarely too old;
- a resumption that *is* too old (410 Expired: the server compacted its history) lists again and
  delivers the difference to the handlers, deletions included, so no handler misses a deletion;
- connection errors are retried with jittered exponential backoff;
- an optional resync period re-delivers every cached object as an update, so level-triggered
  controllers revisit everything now and then even if all went well.

Indexes (client-go's indexers) answer "the objects of this cluster / of this owner" without a
scan of the whole cache, which would make every reconcile cost grow with the number of objects
the plane manages.

Everything runs on the event loop: handlers are plain synchronous callables, called after the
cache has changed, one at a time. They must be quick (enqueue a key, nothing more) and must not
mutate the objects they are given, which are the cached ones.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from anywhere.runtime._backoff import Backoff
from anywhere.runtime.client import Client, Expired, Resource

__all__ = ["EventHandler", "IndexFunc", "Informer", "InformerFactory", "object_key", "split_key"]

log = logging.getLogger("anywhere.runtime.informer")

Obj = dict[str, Any]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]
# The values an object is filed under in one index (none: not in that index).
IndexFunc = Callable[[Obj], Iterable[str]]

# client-go's reflector asks for watches of 5-10 minutes, so reconnections of many clients spread out.
WATCH_TIMEOUT_RANGE = (300, 600)


def object_key(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for a cluster-scoped object (client-go's key format)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def split_key(key: str) -> tuple[str | None, str]:
    """``(namespace, name)`` of a key made by :func:`object_key` (namespace None when cluster-scoped)."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass(frozen=True, eq=False)
class EventHandler:
    """A set of callbacks registered on an informer; also the handle to remove them."""

    on_add: AddHandler | None = None
    on_update: UpdateHandler | None = None
    on_delete: DeleteHandler | None = None


class Informer:
    """The cache of one resource (optionally one namespace, or a label/field selection of it)."""

    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        page_size: int = 500,
        max_retry_delay: float = 30.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self._page_size = page_size
        self._max_retry_delay = max_retry_delay
        self._cache: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, dict[str, None]]] = {}  # index -> value -> keys
        self._filed: dict[str, dict[str, tuple[str, ...]]] = {}  # index -> key -> values
        self._handlers: list[EventHandler] = []
        self._resource_version = ""
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else ""
        selection = f" [{self.label_selector}]" if self.label_selector else ""
        return f"<Informer {self.resource}{scope}{selection}>"

    # ---- reading the cache -----------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        """The cached object with this key (see :func:`object_key`); do not mutate it."""
        return self._cache.get(key)

    def list(self) -> builtins.list[Obj]:
        return list(self._cache.values())

    def keys(self) -> builtins.list[str]:
        return list(self._cache)

    def add_index(self, name: str, func: IndexFunc) -> None:
        """File every object (cached now and later) under ``func(obj)`` in index ``name``; adding
        an index of a name already added is a no-op, so callers may add theirs when first needed."""
        if name in self._index_funcs:
            return
        self._index_funcs[name] = func
        self._indexes[name] = {}
        self._filed[name] = {}
        for key, obj in self._cache.items():
            self._file(name, key, obj)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        """The cached objects filed under ``value`` in index ``name`` (see :meth:`add_index`)."""
        keys = self._indexes[name].get(value)
        return [self._cache[key] for key in keys] if keys else []

    def _file(self, name: str, key: str, obj: Obj) -> None:
        values = tuple(self._index_funcs[name](obj))
        if values:
            self._filed[name][key] = values
            index = self._indexes[name]
            for value in values:
                index.setdefault(value, {})[key] = None

    def _unfile(self, name: str, key: str) -> None:
        index = self._indexes[name]
        for value in self._filed[name].pop(key, ()):
            keys = index.get(value)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del index[value]

    def _store(self, key: str, obj: Obj) -> Obj | None:
        """Put ``obj`` in the cache and the indexes; the object it replaces, if any."""
        previous = self._cache.get(key)
        self._cache[key] = obj
        for name in self._index_funcs:
            if previous is not None:
                self._unfile(name, key)
            self._file(name, key, obj)
        return previous

    def _remove(self, key: str) -> Obj | None:
        previous = self._cache.pop(key, None)
        if previous is not None:
            for name in self._index_funcs:
                self._unfile(name, key)
        return previous

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def resource_version(self) -> str:
        """The last ``resourceVersion`` the cache reflects."""
        return self._resource_version

    @property
    def synced(self) -> bool:
        """Whether the first list has been loaded (the cache is then a real view, if a stale one)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    # ---- handlers --------------------------------------------------------------------------------

    def add_handler(
        self,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> EventHandler:
        """Register callbacks; a late registration first gets every cached object as an add."""
        handler = EventHandler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in list(self._cache.values()):
                self._call(on_add, obj)
        return handler

    def remove_handler(self, handler: EventHandler) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    def _call(self, callback: Callable[..., None], *args: Obj) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("%r: an event handler failed", self)

    def _added(self, obj: Obj) -> None:
        for handler in tuple(self._handlers):
            if handler.on_add is not None:
                self._call(handler.on_add, obj)

    def _updated(self, old: Obj, new: Obj) -> None:
        for handler in tuple(self._handlers):
            if handler.on_update is not None:
                self._call(handler.on_update, old, new)

    def _deleted(self, obj: Obj) -> None:
        for handler in tuple(self._handlers):
            if handler.on_delete is not None:
                self._call(handler.on_delete, obj)

    # ---- running ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run in the background (no-op when running); see :meth:`stop`."""
        if not self.running:
            self._task = asyncio.create_task(self.run(), name=f"informer {self.resource}")

    async def stop(self) -> None:
        """Stop watching. The cache is kept; a later start lists again and delivers the difference."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """List, then watch, until cancelled."""
        backoff = Backoff(initial=min(0.8, self._max_retry_delay), maximum=self._max_retry_delay)
        resync = asyncio.create_task(self._resync_forever()) if self.resync_period else None
        need_list = True
        expired_in_a_row = 0
        try:
            while True:
                started = asyncio.get_running_loop().time()
                try:
                    if need_list:
                        await self._relist()
                        need_list = False
                    events = await self._watch()
                except Expired:
                    # Our resourceVersion is older than the server's history. List again; only a
                    # server that keeps answering 410 right after a list is worth slowing down for.
                    log.info("%r: resourceVersion %s expired; listing again", self, self._resource_version)
                    need_list = True
                    expired_in_a_row += 1
                    if expired_in_a_row > 1:
                        await asyncio.sleep(backoff.next())
                    continue
                except Exception as exc:
                    delay = backoff.next()
                    log.warning("%r: %s; retrying in %.1f s", self, exc, delay)
                    await asyncio.sleep(delay)
                    continue
                expired_in_a_row = 0
                if events or asyncio.get_running_loop().time() - started >= 1.0:
                    backoff.reset()
                else:  # a watch that ends at once, again and again, would spin
                    await asyncio.sleep(backoff.next())
        finally:
            self._synced.clear()
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    async def _relist(self) -> None:
        listing = await self.client.list_all(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=self._page_size,
        )
        fresh: dict[str, Obj] = {}
        for obj in listing.get("items") or []:
            self._fill_type(obj)
            fresh[object_key(obj)] = obj
        old, self._cache = self._cache, fresh
        for name in self._index_funcs:
            self._indexes[name], self._filed[name] = {}, {}
            for key, obj in fresh.items():
                self._file(name, key, obj)
        self._resource_version = str((listing.get("metadata") or {}).get("resourceVersion") or "")
        for key, obj in fresh.items():
            previous = old.get(key)
            if previous is None:
                self._added(obj)
            elif _rv(previous) != _rv(obj):
                self._updated(previous, obj)
        for key, previous in old.items():
            if key not in fresh:
                self._deleted(previous)
        self._synced.set()

    def _fill_type(self, obj: Obj) -> None:
        if self.resource.kind:
            obj.setdefault("apiVersion", self.resource.api_version)
            obj.setdefault("kind", self.resource.kind)

    async def _watch(self) -> int:
        """Follow one watch stream to its end; the number of events it carried."""
        count = 0
        async with self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self._resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            allow_bookmarks=True,
            timeout_seconds=random.randint(*WATCH_TIMEOUT_RANGE),
        ) as stream:
            async for kind, obj in stream:
                count += 1
                version = _rv(obj)
                if kind == "BOOKMARK":
                    self._resource_version = version or self._resource_version
                    continue
                self._fill_type(obj)
                key = object_key(obj)
                if kind in ("ADDED", "MODIFIED"):
                    # ADDED for a known key happens (a selection re-entered, a relist raced a
                    # change): it is an update to us, as MODIFIED for an unknown key is an add.
                    previous = self._store(key, obj)
                    self._resource_version = version
                    if previous is None:
                        self._added(obj)
                    else:
                        self._updated(previous, obj)
                elif kind == "DELETED":
                    previous = self._remove(key)
                    self._resource_version = version
                    if previous is not None:
                        self._deleted(obj)
        return count

    async def _resync_forever(self) -> None:
        assert self.resync_period is not None
        while True:
            await asyncio.sleep(self.resync_period)
            if self.synced:
                for obj in list(self._cache.values()):
                    self._updated(obj, obj)


class InformerFactory:
    """One informer per (resource, namespace, selectors), shared by everyone who asks."""

    def __init__(self, client: Client, *, resync_period: float | None = None) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[tuple[Resource, str | None, str | None, str | None], Informer] = {}

    def informer(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer:
        """The shared informer for this selection, made on first request (not started)."""
        key = (resource, namespace if resource.namespaced else None, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client,
                resource,
                namespace=key[1],
                label_selector=label_selector,
                field_selector=field_selector,
                resync_period=self.resync_period,
            )
            self._informers[key] = informer
        return informer

    def __iter__(self) -> Iterator[Informer]:
        return iter(list(self._informers.values()))

    def start(self) -> None:
        """Start every informer made so far that is not running."""
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(informer.wait_synced() for informer in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(informer.stop() for informer in self._informers.values()))
