"""The storage suite runs once per backend; a backend is added here by one fixture parameter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from anywhere.storage import Storage
from anywhere.storage.etcd import EtcdStorage
from anywhere.storage.sqlite import SQLiteStorage
from tests.etcd_fixtures import EtcdCluster, etcd_cluster, etcd_member

__all__ = ["etcd_cluster", "etcd_member"]

Opener = Callable[[Path, pytest.FixtureRequest], Awaitable[Storage]]


async def _open_sqlite(path: Path, request: pytest.FixtureRequest) -> Storage:
    return await SQLiteStorage.open(path / "store.db")


async def _open_etcd(path: Path, request: pytest.FixtureRequest) -> Storage:
    # one etcd for the session; each test (its tmp_path) gets a key prefix of its own, and a reopen
    # of the same test finds its data again under the same prefix
    cluster: EtcdCluster = request.getfixturevalue("etcd_member")
    return await EtcdStorage.open(cluster.endpoints, prefix=f"/test/{path.name}/")


BACKENDS: dict[str, Opener] = {"sqlite": _open_sqlite, "etcd": _open_etcd}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(backend: str, request: pytest.FixtureRequest) -> Opener:
    if backend == "etcd":
        request.getfixturevalue("etcd_member")  # started here, outside the event loop
    return BACKENDS[backend]


@pytest.fixture
async def store(opener: Opener, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    storage = await opener(tmp_path, request)
    yield storage
    await storage.close()


@pytest.fixture
def reopen(opener: Opener, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Open the same store again (after closing the first), as a restart does."""

    async def again() -> Storage:
        return await opener(tmp_path, request)

    return again
