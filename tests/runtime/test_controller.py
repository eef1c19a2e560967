"""Controllers against a real `anywhere serve`.

The example controller copies each source ConfigMap (label ``copy=source``) into a derived
ConfigMap ``NAME-copy`` that it owns (an ownerReference with ``controller: true``); changes to the
derived object bring its owner back through :func:`enqueue_owner`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from anywhere.runtime import (
    CONFIGMAPS,
    Client,
    Controller,
    ExponentialRateLimiter,
    InformerFactory,
    NotFoundError,
    Result,
    enqueue_mapped,
    enqueue_owner,
    enqueue_self,
    split_key,
)
from tests.runtime.conftest import configmap, until, within

SOURCES = "copy=source"


class Copier:
    """The reconciler: derived = source's data, owned by the source. Records what it did."""

    def __init__(self, client: Client, factory: InformerFactory, namespace: str) -> None:
        self.client = client
        self.sources = factory.informer(CONFIGMAPS, namespace=namespace, label_selector=SOURCES)
        self.reconciled: list[str] = []
        self.writes = 0
        self.changed = asyncio.Event()

    async def reconcile(self, key: str) -> Result | None:
        self.reconciled.append(key)
        self.changed.set()
        source = self.sources.get(key)
        if source is None:
            return None  # the garbage collector removes the copy with its owner
        namespace, name = split_key(key)
        meta = source["metadata"]
        owner = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        desired = configmap(f"{name}-copy", source.get("data"), ownerReferences=[owner])
        try:
            current = await self.client.get(CONFIGMAPS, f"{name}-copy", namespace)
        except NotFoundError:
            await self.client.create(CONFIGMAPS, desired, namespace)
            self.writes += 1
            return None
        if current.get("data") != desired["data"]:
            current["data"] = desired["data"]
            await self.client.update(CONFIGMAPS, current)  # a conflict raises, and is retried
            self.writes += 1
        return None


def copier_controller(copier: Copier, namespace: str, **options: Any) -> Controller:
    return (
        Controller("copier", copier.reconcile, **options)
        .watch(CONFIGMAPS, enqueue_self, namespace=namespace, label_selector=SOURCES)
        .watch(CONFIGMAPS, enqueue_owner("ConfigMap", "v1"), namespace=namespace)
    )


@contextlib.asynccontextmanager
async def running(controller: Controller, factory: InformerFactory) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(controller.run(factory))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await factory.stop()


async def copy_of(client: Client, namespace: str, name: str, check: Callable[[dict[str, Any]], bool]) -> None:
    """Wait (on a watch, not a clock) until the copy of ``name`` satisfies ``check``."""
    listed = await client.list(CONFIGMAPS, namespace, field_selector=f"metadata.name={name}-copy")
    if listed["items"] and check(listed["items"][0]):
        return
    async with client.watch(
        CONFIGMAPS,
        namespace,
        field_selector=f"metadata.name={name}-copy",
        resource_version=listed["metadata"]["resourceVersion"],
    ) as stream:

        async def satisfied() -> None:
            async for kind, obj in stream:
                if kind in ("ADDED", "MODIFIED") and check(obj):
                    return

        await within(satisfied())


def test_owner_mapping() -> None:
    owned = {
        "metadata": {
            "namespace": "ns",
            "name": "child",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "not-controller"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "controller": True},
            ],
        }
    }
    assert list(enqueue_owner("ReplicaSet", "apps/v1")(owned)) == ["ns/rs"]
    assert list(enqueue_owner("ReplicaSet", "apps/v2")(owned)) == [
        "ns/rs"
    ]  # the group matters, not the version
    assert list(enqueue_owner("ReplicaSet", "extensions/v1beta1")(owned)) == []
    assert list(enqueue_owner("Deployment", "apps/v1")(owned)) == []
    assert list(enqueue_owner("ReplicaSet", "apps/v1", namespaced=False)(owned)) == ["rs"]
    assert list(enqueue_self(owned)) == ["ns/child"]
    assert list(enqueue_mapped(lambda obj: ["x/y", "z"])(owned)) == ["x/y", "z"]


async def test_copier_makes_and_repairs_its_copies(client: Client, namespace: str) -> None:
    factory = InformerFactory(client)
    copier = Copier(client, factory, namespace)
    await client.create(CONFIGMAPS, configmap("early", {"a": "1"}, labels={"copy": "source"}), namespace)
    async with running(copier_controller(copier, namespace, workers=2), factory):
        # An object that existed before the controller started is reconciled from the first list.
        await copy_of(client, namespace, "early", lambda c: c.get("data") == {"a": "1"})
        copy = await client.get(CONFIGMAPS, "early-copy", namespace)
        (ref,) = copy["metadata"]["ownerReferences"]
        assert ref["controller"] is True
        assert ref["name"] == "early"

        await client.create(CONFIGMAPS, configmap("late", {"b": "1"}, labels={"copy": "source"}), namespace)
        await copy_of(client, namespace, "late", lambda c: c.get("data") == {"b": "1"})

        await client.patch(CONFIGMAPS, "late", {"data": {"b": "2"}}, namespace)
        await copy_of(client, namespace, "late", lambda c: c.get("data") == {"b": "2"})

        # Someone edits the copy: the owner is requeued and the copy repaired.
        await client.patch(CONFIGMAPS, "late-copy", {"data": {"b": "tampered"}}, namespace)
        await copy_of(client, namespace, "late", lambda c: c.get("data") == {"b": "2"})

        # Someone deletes the copy: it comes back.
        await client.delete(CONFIGMAPS, "late-copy", namespace)
        await copy_of(client, namespace, "late", lambda c: c.get("data") == {"b": "2"})

        # An unlabelled ConfigMap is not a source, and the copies are not sources either.
        await client.create(CONFIGMAPS, configmap("plain", {"c": "1"}), namespace)
        assert all(not key.endswith("-copy") and key != f"{namespace}/plain" for key in copier.reconciled)


async def test_failures_are_retried_with_backoff_and_requeue_after_comes_back(
    client: Client, namespace: str
) -> None:
    attempts: dict[str, int] = {}
    changed = asyncio.Event()

    async def reconcile(key: str) -> Result:
        attempts[key] = attempts.get(key, 0) + 1
        changed.set()
        if key.endswith("/flaky") and attempts[key] < 3:
            raise RuntimeError("not yet")
        if key.endswith("/periodic"):
            return Result(requeue_after=0.01)
        return Result()

    factory = InformerFactory(client)
    controller = Controller(
        "retrying", reconcile, rate_limiter=ExponentialRateLimiter(base=0.001, maximum=0.05)
    ).watch(CONFIGMAPS, namespace=namespace)
    for name in ("flaky", "periodic", "calm"):
        await client.create(CONFIGMAPS, configmap(name), namespace)
    async with running(controller, factory):
        await until(
            lambda: (
                attempts.get(f"{namespace}/flaky", 0) >= 3 and attempts.get(f"{namespace}/periodic", 0) >= 3
            ),
            changed,
        )
        assert controller.queue is not None
        assert controller.queue.num_requeues(f"{namespace}/flaky") == 0  # forgotten after success
    assert attempts[f"{namespace}/flaky"] == 3
    assert attempts[f"{namespace}/calm"] == 1


async def test_a_key_is_never_reconciled_twice_at_once(client: Client, namespace: str) -> None:
    active: set[str] = set()
    overlaps: list[str] = []
    count = 0
    changed = asyncio.Event()

    async def reconcile(key: str) -> None:
        nonlocal count
        if key in active:
            overlaps.append(key)
        active.add(key)
        await asyncio.sleep(0.005)  # long enough for events to pile up behind it
        active.discard(key)
        count += 1
        changed.set()

    factory = InformerFactory(client)
    controller = Controller("exclusive", reconcile, workers=4).watch(CONFIGMAPS, namespace=namespace)
    await client.create(CONFIGMAPS, configmap("hot"), namespace)
    async with running(controller, factory):
        await until(lambda: count >= 1, changed)
        for i in range(15):
            await client.patch(CONFIGMAPS, "hot", {"data": {"i": str(i)}}, namespace)
        last = await client.get(CONFIGMAPS, "hot", namespace)
        informer = factory.informer(CONFIGMAPS, namespace=namespace)

        def caught_up() -> bool:
            cached = informer.get(f"{namespace}/hot")
            return (
                cached is not None
                and cached["metadata"]["resourceVersion"] == last["metadata"]["resourceVersion"]
            )

        await until(
            lambda: caught_up() and not active and controller.queue is not None and not len(controller.queue),
            changed,
        )
    assert overlaps == []
    assert count <= 16  # events collapse; never more passes than events


async def test_a_controller_needs_a_watch(client: Client) -> None:
    async def reconcile(key: str) -> None:
        return None

    with pytest.raises(ValueError, match="watches nothing"):
        await Controller("idle", reconcile).run(InformerFactory(client))
    with pytest.raises(ValueError, match="worker"):
        Controller("none", reconcile, workers=0)
