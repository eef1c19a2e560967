"""The watch cache: committed events fanned out to every watcher from memory.

A backend publishes each committed batch once; N watchers then cost N queue puts, not N storage
reads. Recent events stay in a ring so a watcher resuming from a recent revision is served from
memory too; older resumptions read the backend's event log, and older still get :class:`Compacted`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from anywhere.storage._interface import Event, Watch

_CLOSED = None
# How far a watcher may fall behind before it is cut off (the client re-lists and watches again).
WATCHER_QUEUE_LIMIT = 20_000
# The recent events kept in memory: at most this many, holding at most this many bytes of keys and
# values (previous values included). The count serves watchers resuming after a short break; the
# bytes keep a burst of large objects from holding the server's memory. Older resumptions read the
# backend's own history.
HISTORY_EVENTS = 50_000
HISTORY_BYTES = 64 * 1024 * 1024

Backlog = Callable[[str, int, int], Awaitable[list[Event]]]


class _HubWatch(Watch):
    def __init__(self, hub: WatchHub, prefix: str, from_rv: int) -> None:
        self._hub = hub
        self.prefix = prefix
        self.from_rv = from_rv
        self.last = from_rv
        self.backlog: list[Event] = []
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._reason: str | None = None
        self._closed = False

    def deliver(self, event: Event) -> None:
        if self._closed or not event.key.startswith(self.prefix):
            return
        if self.queue.qsize() >= WATCHER_QUEUE_LIMIT:
            self._end("the watcher fell too far behind; list and watch again")
            return
        self.queue.put_nowait(event)

    def _end(self, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._reason = reason
        self._hub.unsubscribe(self)
        self.queue.put_nowait(_CLOSED)

    def close(self) -> None:
        self._end(None)

    @property
    def closed_reason(self) -> str | None:
        return self._reason

    async def next(self, timeout: float | None = None) -> Event | None:
        while self.backlog:
            event = self.backlog.pop(0)
            if event.rv > self.last and event.key.startswith(self.prefix):
                self.last = event.rv
                return event
        while True:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                try:
                    async with asyncio.timeout(timeout):
                        item = await self.queue.get()
                except TimeoutError:
                    return None
            if item is None:
                self.queue.put_nowait(None)  # stay ended for later calls
                raise StopAsyncIteration
            if item.rv > self.last:
                self.last = item.rv
                return item


class WatchHub:
    """Holds recent events and the live watchers of one store."""

    def __init__(
        self, revision: int, backlog: Backlog, capacity: int | None = None, max_bytes: int | None = None
    ) -> None:
        self._recent: collections.deque[Event] = collections.deque()
        self._capacity = HISTORY_EVENTS if capacity is None else capacity
        self._max_bytes = HISTORY_BYTES if max_bytes is None else max_bytes
        self._recent_bytes = 0
        self._watchers: set[_HubWatch] = set()
        self._revision = revision
        self._backlog = backlog

    @property
    def revision(self) -> int:
        return self._revision

    def publish(self, events: list[Event]) -> None:
        """Hand committed events (in revision order) to every watcher. Call on the event loop."""
        for event in events:
            self._recent.append(event)
            self._recent_bytes += _size(event)
            while len(self._recent) > self._capacity or self._recent_bytes > self._max_bytes:
                self._recent_bytes -= _size(self._recent.popleft())
            self._revision = event.rv
            for watcher in tuple(self._watchers):
                watcher.deliver(event)

    def unsubscribe(self, watcher: _HubWatch) -> None:
        self._watchers.discard(watcher)

    def close_all(self, reason: str) -> None:
        for watcher in tuple(self._watchers):
            watcher._end(reason)

    async def watch(self, prefix: str, from_rv: int) -> Watch:
        """Subscribe first, then fill the gap up to the subscription point from memory or the log."""
        watcher = _HubWatch(self, prefix, from_rv)
        self._watchers.add(watcher)
        upto = self._revision
        if from_rv < upto:
            try:
                oldest_in_memory = self._recent[0].rv if self._recent else upto + 1
                if from_rv + 1 >= oldest_in_memory:
                    watcher.backlog = [e for e in self._recent if from_rv < e.rv <= upto]
                else:
                    watcher.backlog = await self._backlog(prefix, from_rv, upto)
            except BaseException:
                watcher.close()
                raise
        return watcher

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    @property
    def held(self) -> tuple[int, int]:
        """The events in memory: how many, and their bytes (as counted against HISTORY_BYTES)."""
        return len(self._recent), self._recent_bytes


def _size(event: Event) -> int:
    previous = event.prev if event.prev is not None and event.prev is not event.value else b""
    return len(event.key) + len(event.value) + len(previous)
