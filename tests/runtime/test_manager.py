"""The manager against a real `anywhere serve`: controllers run only in the leading replica."""

from __future__ import annotations

import asyncio

import pytest

from anywhere.runtime import CONFIGMAPS, LEASES, Client, Controller, LeaderElection, Manager
from tests.conftest import Server
from tests.runtime.conftest import configmap, until
from tests.runtime.test_leaderelection import FAST, finish, renewals


async def test_without_election_it_runs_until_cancelled(
    server: Server, client: Client, namespace: str
) -> None:
    seen: list[str] = []
    changed = asyncio.Event()

    async def reconcile(key: str) -> None:
        seen.append(key)
        changed.set()

    async with Manager(Client.from_kubeconfig(server.kubeconfig)) as manager:
        manager.add(Controller("recorder", reconcile).watch(CONFIGMAPS, namespace=namespace))
        informer = manager.informer(CONFIGMAPS, namespace=namespace)
        assert manager.is_leader
        running = asyncio.create_task(manager.run())
        await client.create(CONFIGMAPS, configmap("one"), namespace)
        await until(lambda: f"{namespace}/one" in seen, changed)
        assert informer.get(f"{namespace}/one") is not None
        with pytest.raises(RuntimeError, match="before the manager runs"):
            manager.add(Controller("late", reconcile))
        await finish(running)
        assert not informer.running


async def test_only_the_leading_manager_reconciles(server: Server, client: Client, namespace: str) -> None:
    reconciled: dict[str, list[str]] = {"a": [], "b": []}
    changed = asyncio.Event()

    def replica(identity: str) -> Manager:
        manager = Manager(
            Client.from_kubeconfig(server.kubeconfig),
            leader_election=LeaderElection(namespace, "managers", identity, **FAST),
        )

        async def reconcile(key: str) -> None:
            reconciled[identity].append(key)
            changed.set()

        manager.add(Controller("recorder", reconcile).watch(CONFIGMAPS, namespace=namespace))
        return manager

    for name in ("x", "y"):
        await client.create(CONFIGMAPS, configmap(name), namespace)
    everything = [f"{namespace}/x", f"{namespace}/y"]
    async with replica("a") as a, replica("b") as b:
        running_a = asyncio.create_task(a.run())
        await until(lambda: sorted(set(reconciled["a"])) == everything, changed)
        running_b = asyncio.create_task(b.run())
        try:
            await renewals(client, namespace, "managers", "a", 2)
            assert a.is_leader
            assert not b.is_leader
            assert reconciled["b"] == []

            await finish(running_a)  # a clean stop: the lease is released, b takes over at once
            await until(lambda: sorted(set(reconciled["b"])) == everything, changed)
            await client.create(CONFIGMAPS, configmap("z"), namespace)
            await until(lambda: f"{namespace}/z" in reconciled["b"], changed)
            assert f"{namespace}/z" not in reconciled["a"]
            lease = await client.get(LEASES, "managers", namespace)
            assert lease["spec"]["holderIdentity"] == "b"
        finally:
            await finish(running_a)
            await finish(running_b)
    lease = await client.get(LEASES, "managers", namespace)
    assert lease["spec"]["holderIdentity"] == ""
