"""The distributed storage backend: etcd v3, so several API servers can share one highly available store.

The mapping onto etcd is direct, as in Kubernetes: every key lives under a prefix (default
``/anywhere``); an object's ``mod_rv``/``create_rv`` are etcd's ``mod_revision``/``create_revision``
and the store's revision is etcd's; ``create``/``update``/``delete`` are transactions comparing
``create_revision`` (0: absent) or ``mod_revision`` (the caller's expected revision); compaction is
etcd's.

Watches are served the way Kubernetes' watch cache serves them: this store follows the whole prefix
with ONE etcd watch (with previous values) and fans its events out from memory through a
:class:`~anywhere.storage._hub.WatchHub`, so a hundred API watchers cost one etcd stream, not a
hundred. A watcher resuming from before the hub started reads etcd's history with a watch of its
own until it has caught up, then joins the hub; history etcd has compacted is answered with
:class:`Compacted`. A stream that breaks (a member died) or goes silent (a frozen or cut-off member:
see ``_watchdog``) is resumed on another member from the last revision delivered.

When no member answers, calls raise :class:`Unavailable` within ``timeout`` seconds, and the store
recovers by itself once etcd is back: nothing here holds state that an outage invalidates.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import heapq
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from anywhere.storage._etcd_gateway import (
    DEFAULT_MAX_REQUEST_BYTES,
    INVALID_ARGUMENT,
    EtcdError,
    Gateway,
    Json,
    StreamBroken,
    WatchStream,
    b64,
    decode_key,
    parse_endpoints,
    range_end,
    unb64,
)
from anywhere.storage._hub import WatchHub
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

__all__ = ["DEFAULT_PREFIX", "EtcdStorage", "parse_endpoints"]

log = logging.getLogger("anywhere.storage.etcd")

DEFAULT_PREFIX = "/anywhere/"
REQUEST_TIMEOUT = 5.0
# How long a watch waits for the shared stream to catch up with this store's own last write.
CATCH_UP_TIMEOUT = 2.0
DIRECT_QUEUE = 1000
# The shared stream's watchdog (see _watchdog): how often it looks, how long a write this store made
# may go undelivered, and how long the stream may be silent before its member is asked if it lives.
WATCHDOG_TICK = 0.25
WATCH_LAG = 2.0
WATCH_IDLE = 5.0


class _MissingPrevious(Exception):
    """etcd sent a deletion without the deleted value (it was compacted meanwhile)."""


class EtcdStorage(Storage):
    """See the module docstring. Create with :meth:`open`."""

    def __init__(
        self, gateway: Gateway, prefix: str, revision: int, *, auto_sync_interval: float | None = None
    ) -> None:
        self._gateway = gateway
        self._base = prefix.rstrip("/")
        self._root = (self._base + "/").encode()
        self._closed = False
        self._last_write = 0
        self._locks: dict[str, _KeyLock] = {}
        self._direct: set[_DirectWatch] = set()
        self._seen_waiters: builtins.list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_id = 0
        self._first_rv = revision  # the hub has every event after this revision
        self.hub = WatchHub(revision, self._history)
        self._follower = asyncio.create_task(self._follow_root(), name="etcd-follow")
        self._syncer = (
            asyncio.create_task(self._sync_members(auto_sync_interval), name="etcd-sync-members")
            if auto_sync_interval
            else None
        )

    @classmethod
    async def open(
        cls,
        endpoints: str | Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        timeout: float = REQUEST_TIMEOUT,
        auto_sync_interval: float | None = None,
    ) -> EtcdStorage:
        """Connect to etcd at ``endpoints`` (URLs); Unavailable when no member answers.

        ValueError names a bad argument (an endpoint that is not a URL, a prefix without a leading
        slash); the TLS files authenticate this client to etcd and etcd to it, for https endpoints.
        With ``auto_sync_interval`` (seconds) the store follows the cluster's membership (at once,
        then at that interval), as etcd's client does: the endpoints given are where to start.
        """
        urls = parse_endpoints(endpoints)
        if not prefix.startswith("/"):
            raise ValueError(f"the etcd key prefix {prefix!r} must start with '/'")
        context = (
            _tls_context(ca_file, cert_file, key_file) if any(u.startswith("https:") for u in urls) else None
        )
        gateway = Gateway(urls, ssl_context=context, timeout=timeout)
        try:
            answer = await gateway.call(
                "kv/range", {"key": b64(prefix.encode()), "keys_only": True, "limit": 1}
            )
        except EtcdError as exc:
            await gateway.close()
            raise Unavailable(exc.message) from None
        except BaseException:
            await gateway.close()
            raise
        if auto_sync_interval:
            await gateway.sync_members()
        return cls(gateway, prefix, _revision_of(answer), auto_sync_interval=auto_sync_interval)

    async def _sync_members(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if await self._gateway.sync_members():
                log.info("etcd members now at %s", self._gateway.describe())

    @property
    def endpoints(self) -> list[str]:
        """The members' client URLs this store uses (the preferred first while it answers)."""
        return list(self._gateway.endpoints)

    # ---- keys --------------------------------------------------------------------------------

    def _full(self, key: str) -> bytes:
        if not key.startswith("/"):
            raise ValueError(f"storage key {key!r} must start with '/'")
        return (self._base + key).encode()

    def _range_of(self, prefix: str) -> tuple[bytes, bytes]:
        start = self._root if not prefix else self._full(prefix)
        return start, range_end(start)

    def _key_of(self, full: str) -> str:
        return full[len(self._base) :]

    def _record(self, kv: Json) -> Record:
        return Record(
            self._key_of(decode_key(kv.get("key"))),
            unb64(kv.get("value")),
            int(kv.get("create_revision") or 0),
            int(kv.get("mod_revision") or 0),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("the store is closed")

    async def _call(self, method: str, body: Json, *, write: bool = False) -> Json:
        self._check_open()
        try:
            return await self._gateway.call(method, body, write=write)
        except EtcdError as exc:
            raise _meaning(exc) from None

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, key: str) -> Record | None:
        answer = await self._call("kv/range", {"key": b64(self._full(key))})
        kvs = answer.get("kvs") or []
        return self._record(kvs[0]) if kvs else None

    async def list(self, prefix: str, *, limit: int = 0, start_after: str = "") -> ListResult:
        start, end = self._range_of(prefix)
        if start_after and self._full(start_after) >= start:
            start = self._full(start_after) + b"\x00"  # the first key after it
        body: Json = {"key": b64(start), "range_end": b64(end)}
        if limit > 0:
            body["limit"] = limit
        answer = await self._call("kv/range", body)
        records = [self._record(kv) for kv in answer.get("kvs") or []]
        return ListResult(records, _revision_of(answer), bool(answer.get("more")))

    async def revision(self) -> int:
        """The last revision this store has seen (after its own writes), from the shared stream.

        Not etcd's header revision: revisions of writes outside the prefix would otherwise be
        promised (in watch bookmarks) before the events up to them had been delivered.
        """
        self._check_open()
        await self._caught_up(self._last_write)
        return self.hub.revision

    # ---- writes ------------------------------------------------------------------------------

    async def _txn(self, key: str, compare: builtins.list[Json], success: Json) -> Json:
        """One transaction on ``key``: ``success`` if every comparison holds, else a read of the key.

        Writes to one key from this store go to etcd in the order they were made (a key lock), as
        the SQLite backend's batches apply them; without it, concurrent requests could overtake.
        """
        full = b64(self._full(key))
        body = {
            "compare": [{**comparison, "key": full} for comparison in compare],
            "success": [success],
            "failure": [{"request_range": {"key": full}}],
        }
        async with self._lock(key):
            answer = await self._call("kv/txn", body, write=True)
        if answer.get("succeeded"):
            self._last_write = max(self._last_write, _revision_of(answer))
        return answer

    async def create(self, key: str, value: bytes) -> Record:
        answer = await self._txn(
            key,
            [{"target": "CREATE", "result": "EQUAL", "create_revision": 0}],
            {"request_put": {"key": b64(self._full(key)), "value": b64(value)}},
        )
        if not answer.get("succeeded"):
            raise KeyExists(key)
        revision = _revision_of(answer)
        return Record(key, value, revision, revision)

    async def update(self, key: str, value: bytes, *, expected_rv: int | None = None) -> Record:
        answer = await self._txn(
            key,
            _expectation(expected_rv),
            {"request_put": {"key": b64(self._full(key)), "value": b64(value), "prev_kv": True}},
        )
        if not answer.get("succeeded"):
            raise self._refusal(key, answer)
        previous = _first_response(answer, "response_put").get("prev_kv") or {}
        return Record(key, value, int(previous.get("create_revision") or 0), _revision_of(answer))

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Record:
        answer = await self._txn(
            key,
            _expectation(expected_rv),
            {"request_delete_range": {"key": b64(self._full(key)), "prev_kv": True}},
        )
        if not answer.get("succeeded"):
            raise self._refusal(key, answer)
        previous = (_first_response(answer, "response_delete_range").get("prev_kvs") or [{}])[0]
        return Record(
            key,
            unb64(previous.get("value")),
            int(previous.get("create_revision") or 0),
            _revision_of(answer),
        )

    def _refusal(self, key: str, answer: Json) -> StorageError:
        kvs = _first_response(answer, "response_range").get("kvs") or []
        if not kvs:
            return KeyNotFound(key)
        return Conflict(key, int(kvs[0].get("mod_revision") or 0))

    def _lock(self, key: str) -> _KeyLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = _KeyLock(lambda: self._locks.pop(key, None))
        return lock

    # ---- watch -------------------------------------------------------------------------------

    async def watch(self, prefix: str, from_rv: int) -> Watch:
        self._check_open()
        self._range_of(prefix)  # (a ValueError for a prefix that is not a key)
        if self._first_rv <= from_rv < self._last_write:
            # so a watch from before this store's own write finds that write in memory or history
            # (and a compacted past is recognised as such), whatever the stream's lag
            await self._caught_up(self._last_write)
        if from_rv >= self._first_rv:  # (asked again: the hub may have restarted meanwhile)
            return await self.hub.watch(prefix, from_rv)
        # From before this store started following: etcd's history, with a watch of its own
        # (over the whole root: see _DirectWatch), until it reaches what the hub has.
        stream = await self._open_after(self._root, range_end(self._root), from_rv)
        watch = _DirectWatch(self, prefix, from_rv, stream)
        self._direct.add(watch)
        return watch

    async def _open_stream(self, start: bytes, end: bytes, start_revision: int) -> WatchStream:
        self._check_open()
        request = {
            "key": b64(start),
            "range_end": b64(end),
            "start_revision": max(start_revision, 1),
            "prev_kv": True,
        }
        return await self._gateway.watch(request)

    async def _open_after(self, start: bytes, end: bytes, after: int) -> WatchStream:
        """A watch of every change after revision ``after``; Compacted when etcd no longer has them all.

        Opened first, then checked: a compaction racing the opening is seen by one or the other.
        """
        stream = await self._open_stream(start, end, after + 1)
        try:
            await self._check_history(start, end, after)
        except BaseException:
            stream.close()
            raise
        return stream

    async def _check_history(self, start: bytes, end: bytes, from_rv: int) -> None:
        """Compacted when etcd can no longer deliver every event after ``from_rv`` in full.

        etcd still accepts a watch from ``from_rv + 1`` when that is the compaction revision itself,
        but loses what happened at that revision: a deletion there is dropped with the key's history
        (or comes without the deleted value, read at the revision before, which is gone). So the bar
        is one higher: a read at ``from_rv`` must still work. (A watch from a compacted revision is
        also confirmed like any other and cancelled only at etcd's next sync; asking answers now.)
        """
        body = {
            "key": b64(start),
            "range_end": b64(end),
            "revision": max(from_rv, 1),
            "limit": 1,
            "keys_only": True,
        }
        try:
            await self._gateway.call("kv/range", body)
        except EtcdError as exc:
            if exc.future_revision:
                return
            if not exc.compacted:
                raise Unavailable(f"etcd: {exc.message}") from None
            raise Compacted(from_rv, await self._compact_revision(from_rv + 1)) from None

    async def _compact_revision(self, at_least: int) -> int:
        """Where etcd's history starts: a watch from revision 1 is cancelled with the answer."""
        stream = await self._open_stream(self._root, range_end(self._root), 1)
        try:
            async with asyncio.timeout(self._gateway.timeout):
                while True:
                    result = await stream.next()
                    if result.get("compact_revision"):
                        return int(result["compact_revision"])
        except (StreamBroken, TimeoutError):
            return at_least
        finally:
            stream.close()

    def _events(self, result: Json) -> builtins.list[Event]:
        events: builtins.list[Event] = []
        for item in result.get("events") or []:
            kv = item.get("kv") or {}
            key = self._key_of(decode_key(kv.get("key")))
            rv = int(kv.get("mod_revision") or 0)
            previous = item.get("prev_kv")
            before = unb64(previous.get("value")) if previous else None
            if item.get("type") == "DELETE":
                if before is None:
                    raise _MissingPrevious(key)
                events.append(Event("DELETED", key, before, rv, before))
            elif kv.get("create_revision") == kv.get("mod_revision"):
                events.append(Event("ADDED", key, unb64(kv.get("value")), rv))
            else:
                events.append(Event("MODIFIED", key, unb64(kv.get("value")), rv, before))
        return events

    async def _follow_root(self) -> None:
        """The one stream that feeds the hub: every change under the prefix, resumed after breaks."""
        delay = 0.05
        outage = False
        while not self._closed:
            try:
                stream = await self._open_after(self._root, range_end(self._root), self.hub.revision)
            except Compacted:
                await self._restart_hub("etcd compacted the history this server was following")
                continue
            except Unavailable as exc:
                if not outage:
                    log.warning("lost the watch on etcd, retrying: %s", exc)
                    outage = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if outage:
                log.warning("the watch on etcd is back (at %s)", stream.endpoint)
                outage = False
            delay = 0.05
            watchdog = asyncio.create_task(self._watchdog(stream), name="etcd-watchdog")
            try:
                while True:
                    result = await stream.next()
                    if result.get("compact_revision"):
                        await self._restart_hub("etcd compacted the history this server was following")
                        break
                    if result.get("canceled"):
                        raise StreamBroken(f"etcd cancelled the watch: {result.get('cancel_reason', '')}")
                    events = self._events(result)
                    if events:
                        self.hub.publish(events)
                        self._wake_seen()
            except StreamBroken as exc:
                log.info("resuming the etcd watch after revision %d: %s", self.hub.revision, exc)
            except _MissingPrevious:
                await self._restart_hub("etcd compacted a deleted value before it could be delivered")
            except Unavailable:
                await asyncio.sleep(delay)
            finally:
                watchdog.cancel()
                stream.close()

    async def _watchdog(self, stream: WatchStream) -> None:
        """Close the shared stream when its member has stopped delivering, so it resumes on another.

        A frozen or cut-off member keeps the connection open and sends nothing, which the follower
        alone cannot tell from a quiet cluster. Two signs give it away: a write etcd acknowledged
        to this store that the stream has not delivered within WATCH_LAG seconds, and a stream
        silent for WATCH_IDLE seconds whose member does not answer a ping (which catches it when
        only other servers write). A partitioned member that is still running ends the stream by
        itself: watches are opened requiring a leader.
        """
        loop = asyncio.get_running_loop()
        target, since, pinged = 0, 0.0, 0.0
        while True:
            await asyncio.sleep(WATCHDOG_TICK)
            now = loop.time()
            revision = self.hub.revision
            if revision >= self._last_write:
                target = 0
            elif target == 0 or revision >= target:
                target, since = self._last_write, now  # (a newer write to wait for)
            elif now - since >= WATCH_LAG:
                why = f"revision {target}, written {now - since:.1f}s ago, has not arrived"
                break
            if now - max(stream.last_heard, pinged) >= WATCH_IDLE:
                if not await self._gateway.ping(stream.endpoint):
                    why = "its member does not answer"
                    break
                pinged = loop.time()
        log.warning("the etcd watch at %s stalled (%s); resuming it elsewhere", stream.endpoint, why)
        self._gateway.avoid(stream.endpoint)
        stream.close()

    async def _restart_hub(self, why: str) -> None:
        """Start over from etcd's present: every watcher of the old hub must list and watch again."""
        while not self._closed:
            try:
                answer = await self._call("kv/range", {"key": b64(self._root), "keys_only": True, "limit": 1})
                break
            except Unavailable:
                await asyncio.sleep(0.5)
        else:
            return
        revision = _revision_of(answer)
        old, self.hub = self.hub, WatchHub(revision, self._history)
        self._first_rv = revision
        log.warning("%s; watchers will list and watch again (now at revision %d)", why, revision)
        old.close_all(f"{why}; list and watch again")
        self._wake_seen(everyone=True)

    async def _history(self, prefix: str, after: int, upto: int) -> builtins.list[Event]:
        """Events under ``prefix`` in (after, upto] from etcd, for a watcher older than the hub's memory.

        ``upto`` is the revision of an event the hub published, i.e. of a change under the root, so
        a watch of the whole root from ``after`` is sure to reach it.
        """
        stream = await self._open_after(self._root, range_end(self._root), after)
        events: builtins.list[Event] = []
        try:
            while True:
                # etcd has all of it and sends it at once: a pause as long as a request's deadline
                # means the member is gone or frozen, and the watch request should fail now
                async with asyncio.timeout(self._gateway.timeout):
                    result = await stream.next()
                if result.get("compact_revision"):
                    raise Compacted(after, int(result["compact_revision"]))
                for event in self._events(result):
                    if event.rv > upto:
                        return events
                    if event.key.startswith(prefix):
                        events.append(event)
                    if event.rv == upto:
                        return events
        except (StreamBroken, TimeoutError) as exc:
            raise Unavailable(f"reading etcd's history failed: {exc}") from None
        except _MissingPrevious:
            raise Compacted(after, await self._compact_revision(after + 1)) from None
        finally:
            stream.close()

    async def _caught_up(self, revision: int) -> None:
        """Wait (briefly: the stream may be down) until the hub has published ``revision``."""
        if self.hub.revision >= revision:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter_id += 1
        heapq.heappush(self._seen_waiters, (revision, self._waiter_id, future))
        try:
            async with asyncio.timeout(CATCH_UP_TIMEOUT):
                await future
        except TimeoutError:
            pass
        finally:
            if not future.done() or future.cancelled():
                # Gave up (timed out, or the caller was cancelled): forget this waiter, and any other
                # that gave up, now rather than when the hub reaches its revision — during an outage
                # that may take long, and every request meanwhile would leave one behind.
                future.cancel()
                self._seen_waiters = [w for w in self._seen_waiters if not w[2].done()]
                heapq.heapify(self._seen_waiters)

    def _wake_seen(self, everyone: bool = False) -> None:
        while self._seen_waiters and (everyone or self._seen_waiters[0][0] <= self.hub.revision):
            _, _, future = heapq.heappop(self._seen_waiters)
            if not future.done():
                future.set_result(None)

    # ---- maintenance -------------------------------------------------------------------------

    async def compact(self, keep: int) -> int:
        keep = max(keep, 1)
        answer = await self._call("kv/range", {"key": b64(self._root), "keys_only": True, "limit": 1})
        # etcd keeps revision `oldest` readable, so a watch from it still gets every event after it
        # complete with previous values (see _check_history)
        oldest = _revision_of(answer) - keep
        if oldest < 1:
            return max(oldest, 0)
        try:
            # logical compaction takes effect at once; etcd reclaims the space in the background
            await self._gateway.call("kv/compaction", {"revision": oldest})
        except EtcdError as exc:
            if not exc.compacted:  # already compacted further (another replica did it): fine
                raise Unavailable(f"etcd compaction failed: {exc.message}") from None
        return oldest

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (self._follower, self._syncer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for watch in tuple(self._direct):
            watch.end("the store is closing")
        self.hub.close_all("the store is closing")
        self._wake_seen(everyone=True)
        await self._gateway.close()


class _KeyLock:
    """A FIFO lock for one key that removes itself from its table when nobody holds or awaits it."""

    def __init__(self, forget: Callable[[], object]) -> None:
        self._lock = asyncio.Lock()
        self._users = 0
        self._forget = forget

    async def __aenter__(self) -> None:
        self._users += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._release_user()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()
        self._release_user()

    def _release_user(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._forget()


class _DirectWatch(Watch):
    """A watcher older than the hub: etcd's history through a stream of its own, then the hub.

    Once the stream has delivered up to the hub's first revision, the hub holds (or can read)
    everything after it: the watch subscribes to the hub from its last revision, closes its etcd
    stream and hands its consumer over, so a client resuming from an old revision costs an etcd
    stream only while it catches up. The stream follows the whole root and drops what is outside
    ``prefix`` here, because only then does it learn that it has passed the hub's first revision
    when nothing changes under ``prefix`` (etcd says nothing to a watch with nothing to deliver).
    """

    def __init__(self, store: EtcdStorage, prefix: str, from_rv: int, stream: WatchStream) -> None:
        self._store = store
        self._prefix = prefix
        self._last = from_rv  # the last revision read from etcd, under the prefix or not
        # events, then (at the handover) the hub's watch, or None at the end
        self._queue: asyncio.Queue[Event | Watch | None] = asyncio.Queue(DIRECT_QUEUE)
        self._hub_watch: Watch | None = None  # subscribed by the pump
        self._delegate: Watch | None = None  # reached by the consumer: serves from here on
        self._reason: str | None = None
        self._closed = False
        self._task = asyncio.create_task(self._pump(stream), name="etcd-direct-watch")

    async def _pump(self, stream: WatchStream | None) -> None:
        delay = 0.05
        root = self._store._root
        while not self._closed:
            if stream is None:
                try:
                    stream = await self._store._open_after(root, range_end(root), self._last)
                    delay = 0.05
                except Compacted:
                    self.end("etcd compacted the history this watch was reading; list and watch again")
                    return
                except Unavailable:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
            try:
                while True:
                    result = await stream.next()
                    if result.get("compact_revision"):
                        self.end("etcd compacted the history this watch was reading; list and watch again")
                        return
                    if result.get("canceled"):
                        raise StreamBroken("etcd cancelled the watch")
                    for event in self._store._events(result):
                        if event.key.startswith(self._prefix):
                            await self._queue.put(event)
                        self._last = event.rv
                    if self._last >= self._store._first_rv and await self._subscribe():
                        stream.close()
                        await self._queue.put(self._hub_watch)
                        return
            except StreamBroken:
                pass
            except _MissingPrevious:
                self.end("etcd compacted a deleted value before it could be delivered; list and watch again")
                return
            finally:
                stream.close()
                stream = None

    async def _subscribe(self) -> bool:
        """Subscribe to the hub from the last revision read; False to keep reading etcd for now."""
        try:
            self._hub_watch = await self._store.hub.watch(self._prefix, self._last)
        except Unavailable:
            return False  # (reading the hub's gap from etcd failed) the next message tries again
        except Compacted:
            self.end("etcd compacted the history this watch was reading; list and watch again")
            return False
        self._store._direct.discard(self)  # the hub's watchers end with the store
        return True

    def end(self, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._reason = reason
        self._store._direct.discard(self)
        if asyncio.current_task() is not self._task:
            self._task.cancel()
        if self._hub_watch is not None:
            self._hub_watch.close()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        if self._queue.full():  # make room for the end marker: the consumer stops reading anyway
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    def close(self) -> None:
        self.end(None)

    @property
    def closed_reason(self) -> str | None:
        if self._reason is None and self._delegate is not None:
            return self._delegate.closed_reason
        return self._reason

    async def next(self, timeout: float | None = None) -> Event | None:
        if self._delegate is not None:
            return await self._delegate.next(timeout)
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            try:
                async with asyncio.timeout(timeout):
                    item = await self._queue.get()
            except TimeoutError:
                return None
        if item is None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # stay ended for later calls
            raise StopAsyncIteration
        if isinstance(item, Watch):
            self._delegate = item
            return await item.next(timeout)
        return item


def _meaning(exc: EtcdError) -> StorageError:
    """What etcd's error means to callers: mostly an outage (503, retry), but some answers are final."""
    if exc.too_large:
        return ValueTooLarge(
            f"the object is too large for etcd, which accepts at most "
            f"{DEFAULT_MAX_REQUEST_BYTES / 1024 / 1024:g} MiB per request by default "
            f"(its --max-request-bytes); etcd said: {exc.message}"
        )
    if exc.code == INVALID_ARGUMENT:
        return StorageError(f"etcd refused the request as invalid: {exc.message}")
    return Unavailable(f"etcd: {exc.message}")


def _revision_of(answer: Json) -> int:
    return int((answer.get("header") or {}).get("revision") or 0)


def _first_response(answer: Json, kind: str) -> Json:
    for response in answer.get("responses") or []:
        if kind in response:
            found: Json = response[kind]
            return found
    return {}


def _expectation(expected_rv: int | None) -> list[Json]:
    """The comparisons a change of an existing key makes: present, and at the expected revision if
    one is given (etcd reports revision 0 for a missing key, so ``expected_rv=0`` alone would
    match a key that does not exist and re-create it)."""
    present = {"target": "CREATE", "result": "GREATER", "create_revision": 0}
    if expected_rv is None:
        return [present]
    return [present, {"target": "MOD", "result": "EQUAL", "mod_revision": expected_rv}]


def _tls_context(ca_file: Any, cert_file: Any, key_file: Any) -> ssl.SSLContext:
    """Verify etcd against ``ca_file`` (else the system's CAs) and present a client certificate."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("give both the etcd client certificate and its key, or neither")
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if cert_file:
            context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the etcd TLS files: {exc}") from None
    return context
