"""SimEtcdAdmin: the etcd membership of a sim cluster, kept in its own API, changed by
compare-and-swap, refusing what would lose quorum."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from anywhere.controllers.context import Context
from anywhere.controllers.etcd import EtcdUnavailable
from anywhere.providers.sim.endpoints import EndpointHost
from anywhere.providers.sim.etcd import (
    EtcdCluster,
    LeaderRemovalError,
    LeaderTransferError,
    QuorumRiskError,
)
from anywhere.providers.sim.etcd_admin import (
    MEMBERS_CONFIGMAP,
    MEMBERS_KEY,
    MEMBERS_NAMESPACE,
    SimEtcdAdmin,
    change_members,
    read_members,
)
from anywhere.runtime import CONFIGMAPS, Client, KubeConfig, Resource
from tests.providers.sim.conftest import serve_workload

CLUSTER = "w1"
Obj = dict[str, Any]


def url(name: str, port: int) -> str:
    return f"https://10.0.0.{int(name[-1]) + 10}:{port}"


def grow(members: EtcdCluster | None, *names: str) -> EtcdCluster:
    """Bootstrap (if needed) and add ``names`` as the SimMachine controller does at boot."""
    members = members or EtcdCluster(CLUSTER)
    for name in names:
        if not len(members):
            members.bootstrap(name, url(name, 2380), url(name, 2379))
            continue
        members.add_member(name, url(name, 2380), url(name, 2379))
        members.mark_healthy(name)
        members.promote(name)
    return members


async def test_no_kubeconfig_or_no_configmap_means_etcd_is_unavailable(
    context: Context, endpoints: EndpointHost, namespace: str
) -> None:
    admin = SimEtcdAdmin(context)
    with pytest.raises(EtcdUnavailable, match=f"etcd of cluster {namespace}/{CLUSTER} is not reachable"):
        await admin.view(namespace, CLUSTER)
    await serve_workload(context, endpoints, namespace, CLUSTER)
    with pytest.raises(EtcdUnavailable, match="has no etcd yet"):
        await admin.view(namespace, CLUSTER)
    with pytest.raises(EtcdUnavailable, match="has no etcd yet"):
        await admin.move_leader(namespace, CLUSTER, "m1")


class RacingClient(Client):
    """A client whose next update is preceded by another writer's (the race CAS guards against)."""

    def __init__(self, config: KubeConfig) -> None:
        super().__init__(config)
        self.interfere: Callable[[], Awaitable[None]] | None = None

    async def update(self, resource: Resource, obj: Obj, *, field_manager: str | None = None) -> Obj:
        if self.interfere is not None:
            interfere, self.interfere = self.interfere, None
            await interfere()
        return await super().update(resource, obj, field_manager=field_manager)


async def test_membership_changes_are_compare_and_swap_and_refuse_losing_quorum(
    context: Context, endpoints: EndpointHost, namespace: str
) -> None:
    await serve_workload(context, endpoints, namespace, CLUSTER)
    admin = SimEtcdAdmin(context)
    workload = await context.clusters.client(namespace, CLUSTER)
    await change_members(workload, CLUSTER, lambda m: grow(m, "m1", "m2", "m3"))
    view = await admin.view(namespace, CLUSTER)
    assert dict(view.members) == {"m1": True, "m2": True, "m3": True}
    assert view.leader == "m1"
    with pytest.raises(LeaderRemovalError, match="cannot remove m1: it is the leader of etcd cluster w1"):
        await admin.remove_member(namespace, CLUSTER, "m1")

    async def other_writer_moves_the_leader() -> None:
        configmap = await workload.get(CONFIGMAPS, MEMBERS_CONFIGMAP, MEMBERS_NAMESPACE)
        members = EtcdCluster.from_dict(json.loads(configmap["data"][MEMBERS_KEY]))
        members.move_leader("m2")
        await workload.update(CONFIGMAPS, {**configmap, "data": {MEMBERS_KEY: json.dumps(members.to_dict())}})

    attempts = 0

    def m3_goes_down(members: EtcdCluster | None) -> EtcdCluster:
        nonlocal attempts
        attempts += 1
        assert members is not None
        members.mark_unhealthy("m3")
        return members

    async with RacingClient(workload.config) as racing:
        racing.interfere = other_writer_moves_the_leader
        await change_members(racing, CLUSTER, m3_goes_down)
    assert attempts == 2  # the first write conflicted; the change was applied again on fresh data
    members, _ = await read_members(workload, CLUSTER)
    assert members is not None
    view = await admin.view(namespace, CLUSTER)
    assert view.leader == "m2"  # the other writer's change survived
    assert dict(view.members) == {"m1": True, "m2": True, "m3": False}  # and ours is on top

    with pytest.raises(
        QuorumRiskError, match="cannot remove m1: it would leave 1 of 2 voting members healthy"
    ):
        await admin.remove_member(namespace, CLUSTER, "m1")
    with pytest.raises(LeaderTransferError, match="cannot move leadership to m3: it is unhealthy"):
        await admin.move_leader(namespace, CLUSTER, "m3")
    assert (await admin.view(namespace, CLUSTER)) == view  # refusals change nothing

    await admin.remove_member(namespace, CLUSTER, "m3")  # the unhealthy one goes: quorum kept
    await admin.remove_member(namespace, CLUSTER, "m3")  # gone already is fine
    await admin.move_leader(namespace, CLUSTER, "m1")
    await admin.remove_member(namespace, CLUSTER, "m2")
    view = await admin.view(namespace, CLUSTER)
    assert dict(view.members) == {"m1": True}
    assert view.leader == "m1"
