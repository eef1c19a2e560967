"""The storage suite runs once per backend; a backend is added here by one fixture parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anywhere.storage import Storage
from anywhere.storage.sqlite import SQLiteStorage


async def _open_sqlite(path: Path) -> Storage:
    return await SQLiteStorage.open(path / "store.db")


BACKENDS = {"sqlite": _open_sqlite}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Storage]:
    storage = await BACKENDS[backend](tmp_path)
    yield storage
    await storage.close()


@pytest.fixture
def reopen(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Open the same store again (after closing the first), as a restart does."""

    async def again() -> Storage:
        return await BACKENDS[backend](tmp_path)

    return again
