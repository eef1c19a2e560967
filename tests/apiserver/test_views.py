"""In-memory views of storage prefixes keep following through the failures a store can have."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from anywhere.apiserver._views import View
from anywhere.storage import Compacted, ListResult, Unavailable, Watch
from anywhere.storage.sqlite import SQLiteStorage


class Flaky(SQLiteStorage):
    """SQLite whose next watch says Compacted and whose next lists fail, as a store that compacted
    during an outage and is not back yet does."""

    compact_next_watch = False
    failing_lists = 0

    async def watch(self, prefix: str, from_rv: int) -> Watch:
        if self.compact_next_watch:
            self.compact_next_watch = False
            raise Compacted(from_rv, from_rv + 1)
        return await super().watch(prefix, from_rv)

    async def list(self, prefix: str, *, limit: int = 0, start_after: str = "") -> ListResult:
        if self.failing_lists:
            self.failing_lists -= 1
            raise Unavailable("the store is not back yet")
        return await super().list(prefix, limit=limit, start_after=start_after)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Flaky]:
    opened = await Flaky.open(tmp_path / "state.db")
    yield opened
    await opened.close()


async def test_a_view_survives_a_failed_reload_and_a_failing_follower(
    store: Flaky, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("anywhere.apiserver._views.RETRY_AFTER", 0.01)
    seen: dict[str, Any] = {}

    def apply(key: str, obj: dict[str, Any] | None) -> None:
        if obj is not None and obj.get("poison"):
            raise ValueError("a follower that cannot take this object")
        if obj is None:
            seen.pop(key, None)
        else:
            seen[key] = obj

    await store.create("/p/gone", b'{"v": 0}')
    view = View(store, "/p/", apply)
    store.compact_next_watch = True
    await view.start()  # reads the prefix; its follow task has not run yet
    store.failing_lists = 1  # so the reload after Compacted fails
    try:
        assert set(seen) == {"/p/gone"}
        await store.delete("/p/gone")
        await store.create("/p/poison", b'{"poison": true}')
        record = await store.create("/p/new", b'{"v": 1}')
        assert await view.wait_for(record.mod_rv, timeout=10)
        assert set(seen) == {"/p/new"}  # the deletion made while it was cut off is applied too
        assert store.failing_lists == 0  # the reloads were tried and failed
    finally:
        await view.stop()
