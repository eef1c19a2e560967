"""Fixtures for the runtime tests: one real `anywhere serve` for the package, a fresh namespace per
test (so tests share the server without seeing each other's objects), and helpers that wait for
events rather than for time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from anywhere.runtime import NAMESPACES, Client
from anywhere.storage.sqlite import SQLiteStorage
from tests.conftest import Server, start_server, stop_server

T = TypeVar("T")
# A safety net for awaiting an event that should come, never a measure of speed.
PATIENCE = 20.0


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("runtime-serve"))
    yield running
    stop_server(running)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(server.kubeconfig) as api:
        yield api


@pytest.fixture
async def namespace(client: Client) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    await client.delete(NAMESPACES, name)


async def within(awaitable: Awaitable[T], timeout: float = PATIENCE) -> T:
    """Await something that must happen; fail (rather than hang) if it never does."""
    return await asyncio.wait_for(awaitable, timeout)


async def until(condition: Callable[[], bool], changed: asyncio.Event, timeout: float = PATIENCE) -> None:
    """Wait until ``condition()`` holds, re-checking each time ``changed`` is set."""

    async def wait() -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    await within(wait(), timeout)


def configmap(name: str, data: dict[str, str] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **metadata},
        "data": dict(data or {}),
    }


def port_of(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def start(data_dir: Path, port: int = 0) -> Server:
    return await asyncio.to_thread(start_server, data_dir, port)


async def stop(server: Server) -> None:
    assert await asyncio.to_thread(stop_server, server) == 0


async def compact_offline(data_dir: Path) -> int:
    """Forget the store's whole watch history while no server runs on it (the server itself only
    compacts every 300 s); the returned revision is the oldest one still watchable. A server
    started afterwards answers older watches with 410 Expired: its in-memory event cache is empty,
    so it must read the compacted log."""
    storage = await SQLiteStorage.open(data_dir / "state.db")
    try:
        return await storage.compact(1)
    finally:
        await storage.close()
