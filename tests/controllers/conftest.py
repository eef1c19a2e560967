"""Fixtures for controller tests: one real `anywhere serve` (management API) for the package, a
fresh namespace per test, and a way to run some controllers in-process against it.

Controllers run in the test's event loop with a real :class:`Manager` and :class:`Client`, so a
test can create objects, wait for the controllers' effects, and cancel them at any point (what a
crash is, for a level-triggered controller)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from anywhere.controllers.context import Context
from anywhere.controllers.remote import ClusterCache
from anywhere.runtime import NAMESPACES, Client, Controller, Manager, Resource
from tests.conftest import Server, start_server, stop_server

T = TypeVar("T")
Obj = dict[str, Any]
# A safety net for awaiting something that should happen, never a measure of speed.
PATIENCE = 60.0


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("controllers-serve"))
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
    with contextlib.suppress(Exception):
        await client.delete(NAMESPACES, name)


@pytest.fixture
async def context(server: Server, tmp_path: Path) -> AsyncIterator[Context]:
    """A management-plane context of fresh clients (the controllers' own), with a data folder."""
    manager_client = Client.from_kubeconfig(server.kubeconfig)
    manager = Manager(manager_client)
    clusters = ClusterCache(manager_client)
    ctx = Context(client=manager_client, manager=manager, clusters=clusters, data_dir=tmp_path / "plane")
    ctx.data_dir.mkdir()
    try:
        yield ctx
    finally:
        await clusters.close()
        await manager.close()


@contextlib.asynccontextmanager
async def running(ctx: Context, controllers: list[Controller]) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``controllers`` with ``ctx.manager`` until the block ends (then cancel them, as a crash
    would, and wait until they have stopped)."""
    for controller in controllers:
        ctx.manager.add(controller)
    task = asyncio.create_task(ctx.manager.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ctx.manager.controllers.clear()


async def within(awaitable: Awaitable[T], timeout: float = PATIENCE) -> T:
    """Await something that must happen; fail (rather than hang) if it never does."""
    return await asyncio.wait_for(awaitable, timeout)


async def eventually(
    client: Client,
    resource: Resource,
    namespace: str | None,
    condition: Callable[[list[Obj]], bool],
    *,
    label_selector: str | None = None,
    timeout: float = PATIENCE,
) -> list[Obj]:
    """Watch ``resource`` until ``condition(items)`` holds for the current list of objects; returns
    them. Driven by watch events, not by polling on a timer."""

    async def wait() -> list[Obj]:
        while True:
            listing = await client.list(resource, namespace, label_selector=label_selector)
            items = list(listing.get("items") or [])
            if condition(items):
                return items
            rv = listing["metadata"]["resourceVersion"]
            async with client.watch(
                resource, namespace, resource_version=rv, label_selector=label_selector, timeout_seconds=30
            ) as events:
                async for _event in events:
                    break

    return await within(wait(), timeout)
