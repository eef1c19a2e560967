"""The embedded storage backend: one SQLite file in WAL mode.

Writes go through one writer thread that commits them in batches (group commit): concurrent
requests share one transaction and one fsync, which is what makes many small writes fast while each
is still durable before it is acknowledged. Reads run on a small pool of threads with their own
connections; WAL lets them proceed while the writer commits.

Tables: ``kv`` holds the current value of every key; ``log`` holds every change with its revision
(the watch history, trimmed by :meth:`SQLiteStorage.compact`); ``meta`` holds the store's revision and
the oldest revision still in the log.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anywhere.storage._hub import WatchHub
from anywhere.storage._interface import (
    Compacted,
    Conflict,
    Event,
    EventType,
    KeyExists,
    KeyNotFound,
    ListResult,
    Record,
    Storage,
    StorageError,
    Unavailable,
    Watch,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY, value BLOB NOT NULL, create_rv INTEGER NOT NULL, mod_rv INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    rv INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL, value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""
_TYPES: tuple[EventType, ...] = ("ADDED", "MODIFIED", "DELETED")
_TYPE_CODE = {name: code for code, name in enumerate(_TYPES)}
MAX_BATCH = 1024


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key starting with ``prefix`` (SQLite compares bytes)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"


@dataclass
class _Write:
    kind: str  # "create" | "update" | "delete"
    key: str
    value: bytes
    expected_rv: int | None
    future: asyncio.Future[Record]
    result: Record | StorageError | None = None
    events: list[Event] = field(default_factory=list)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SQLiteStorage(Storage):
    """See the module docstring. Create with :meth:`open`."""

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop, revision: int) -> None:
        self._path = path
        self._loop = loop
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._revision = revision
        self._closed = False
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._all_readers: builtins.list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.hub = WatchHub(revision, self._log_backlog)
        self._writer = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._writer.start()

    @classmethod
    async def open(cls, path: str | Path) -> SQLiteStorage:
        """Open (creating if needed) the store at ``path``."""
        text = str(path)

        def init() -> int:
            conn = _connect(text)
            try:
                conn.executescript(_SCHEMA)
                row = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()
                return int(row[0])
            finally:
                conn.close()

        try:
            revision = await asyncio.to_thread(init)
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open the database {text}: {exc}") from exc
        return cls(text, asyncio.get_running_loop(), revision)

    # ---- reads -------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            self._local.conn = conn
            with self._readers_lock:
                self._all_readers.append(conn)
        return conn

    async def _read(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._closed:
            raise Unavailable("the store is closed")

        def run() -> Any:
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                return work(conn)
            finally:
                conn.execute("COMMIT")

        try:
            return await self._loop.run_in_executor(self._readers, run)
        except sqlite3.Error as exc:
            raise Unavailable(f"storage read failed: {exc}") from exc

    async def get(self, key: str) -> Record | None:
        def work(conn: sqlite3.Connection) -> Record | None:
            row = conn.execute("SELECT value, create_rv, mod_rv FROM kv WHERE key=?", (key,)).fetchone()
            return Record(key, row[0], row[1], row[2]) if row else None

        result: Record | None = await self._read(work)
        return result

    async def list(self, prefix: str, *, limit: int = 0, start_after: str = "") -> ListResult:
        low = max(prefix, start_after)

        def work(conn: sqlite3.Connection) -> ListResult:
            revision = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
            op = ">" if start_after and start_after >= prefix else ">="
            sql = f"SELECT key, value, create_rv, mod_rv FROM kv WHERE key {op} ? AND key < ? ORDER BY key"
            params: tuple[Any, ...] = (low, prefix_end(prefix))
            if limit > 0:
                sql += " LIMIT ?"
                params += (limit + 1,)
            rows = conn.execute(sql, params).fetchall()
            more = limit > 0 and len(rows) > limit
            records = [Record(r[0], r[1], r[2], r[3]) for r in rows[: limit if more else None]]
            return ListResult(records, revision, more)

        result: ListResult = await self._read(work)
        return result

    async def revision(self) -> int:
        return self.hub.revision

    async def _log_backlog(self, prefix: str, after: int, upto: int) -> builtins.list[Event]:
        def work(conn: sqlite3.Connection) -> builtins.list[Event]:
            compacted = conn.execute("SELECT value FROM meta WHERE name='compacted'").fetchone()[0]
            if after < compacted:
                raise Compacted(after, compacted)
            rows = conn.execute(
                "SELECT rv, key, type, value FROM log WHERE rv > ? AND rv <= ? AND key >= ? AND key < ? ORDER BY rv",
                (after, upto, prefix, prefix_end(prefix)),
            ).fetchall()
            return [Event(_TYPES[r[2]], r[1], r[3], r[0]) for r in rows]

        events: builtins.list[Event] = await self._read(work)
        return events

    async def watch(self, prefix: str, from_rv: int) -> Watch:
        if self._closed:
            raise Unavailable("the store is closed")
        return await self.hub.watch(prefix, from_rv)

    # ---- writes ------------------------------------------------------------------------------

    async def _submit(self, kind: str, key: str, value: bytes, expected_rv: int | None) -> Record:
        if self._closed:
            raise Unavailable("the store is closed")
        future: asyncio.Future[Record] = self._loop.create_future()
        self._queue.put(_Write(kind, key, value, expected_rv, future))
        return await future

    async def create(self, key: str, value: bytes) -> Record:
        return await self._submit("create", key, value, None)

    async def update(self, key: str, value: bytes, *, expected_rv: int | None = None) -> Record:
        return await self._submit("update", key, value, expected_rv)

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Record:
        return await self._submit("delete", key, b"", expected_rv)

    def _write_loop(self) -> None:
        conn = _connect(self._path)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit(conn, batch)
                self._loop.call_soon_threadsafe(self._complete, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: builtins.list[_Write]) -> None:
        """Apply a batch in one transaction with a handful of statements, whatever its size.

        The current rows of every key the batch touches are read at once; the writes are decided in
        memory, in order (so two writes to one key in a batch see each other); then the final rows and
        the log entries go out with ``executemany``. Few statements per batch keep the writer thread's
        share of the GIL small, which matters when it shares it with the HTTP server.
        """
        start = self._revision
        try:
            conn.execute("BEGIN IMMEDIATE")
            current = self._current_rows(conn, {write.key for write in batch})
            touched: dict[str, tuple[bytes, int, int] | None] = {}
            log: builtins.list[tuple[int, str, int, bytes]] = []
            for write in batch:
                try:
                    write.result = self._decide(current, write)
                except StorageError as exc:
                    write.result = exc
                    continue
                touched[write.key] = current[write.key]
                event = write.events[0]
                log.append((event.rv, event.key, _TYPE_CODE[event.type], event.value))
            upserts = [(key, *row) for key, row in touched.items() if row is not None]
            deletes = [(key,) for key, row in touched.items() if row is None]
            if upserts:
                conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", upserts)
            if deletes:
                conn.executemany("DELETE FROM kv WHERE key=?", deletes)
            if log:
                conn.executemany("INSERT INTO log VALUES (?, ?, ?, ?)", log)
            conn.execute("UPDATE meta SET value=? WHERE name='revision'", (self._revision,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._revision = start
            for write in batch:
                write.result = Unavailable(f"storage write failed: {exc}")
                write.events = []

    @staticmethod
    def _current_rows(conn: sqlite3.Connection, keys: set[str]) -> dict[str, tuple[bytes, int, int] | None]:
        current: dict[str, tuple[bytes, int, int] | None] = dict.fromkeys(keys)
        ordered = builtins.list(keys)
        for offset in range(0, len(ordered), 500):  # SQLite's limit on bound parameters
            chunk = ordered[offset : offset + 500]
            marks = ",".join("?" * len(chunk))
            for key, value, create_rv, mod_rv in conn.execute(
                f"SELECT key, value, create_rv, mod_rv FROM kv WHERE key IN ({marks})", chunk
            ):
                current[key] = (value, create_rv, mod_rv)
        return current

    def _decide(self, current: dict[str, tuple[bytes, int, int] | None], write: _Write) -> Record:
        """One write against the batch's view of the rows; updates that view and assigns a revision."""
        row = current[write.key]
        rv = self._revision + 1
        if write.kind == "create":
            if row is not None:
                raise KeyExists(write.key)
            current[write.key] = (write.value, rv, rv)
            record = Record(write.key, write.value, rv, rv)
            event_type: EventType = "ADDED"
        else:
            if row is None:
                raise KeyNotFound(write.key)
            if write.expected_rv is not None and write.expected_rv != row[2]:
                raise Conflict(write.key, row[2])
            if write.kind == "update":
                current[write.key] = (write.value, row[1], rv)
                record = Record(write.key, write.value, row[1], rv)
                event_type = "MODIFIED"
            else:
                current[write.key] = None
                record = Record(write.key, row[0], row[1], rv)
                event_type = "DELETED"
        self._revision = rv
        write.events = [Event(event_type, write.key, record.value, rv, row[0] if row is not None else None)]
        return record

    def _complete(self, batch: builtins.list[_Write]) -> None:
        """On the event loop: publish the batch's events in order, then answer its callers."""
        self.hub.publish([event for write in batch for event in write.events])
        for write in batch:
            if write.future.done():
                continue
            if isinstance(write.result, StorageError):
                write.future.set_exception(write.result)
            elif write.result is not None:
                write.future.set_result(write.result)

    # ---- maintenance -------------------------------------------------------------------------

    async def compact(self, keep: int) -> int:
        keep = max(keep, 1)

        def work() -> int:
            conn = _connect(self._path)
            try:
                conn.execute("BEGIN IMMEDIATE")
                revision = conn.execute("SELECT value FROM meta WHERE name='revision'").fetchone()[0]
                oldest = max(revision - keep, 0)
                conn.execute("DELETE FROM log WHERE rv <= ?", (oldest,))
                conn.execute("UPDATE meta SET value=max(value, ?) WHERE name='compacted'", (oldest,))
                conn.execute("COMMIT")
                return int(oldest)
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(work)
        except sqlite3.Error as exc:
            raise Unavailable(f"compaction failed: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        self.hub.close_all("the store is closing")
        self._readers.shutdown(wait=True)
        with self._readers_lock:
            for conn in self._all_readers:
                conn.close()
            self._all_readers.clear()
