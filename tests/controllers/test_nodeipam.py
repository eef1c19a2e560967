"""Node IPAM: the pure plan (allocation rebuilt from the Nodes, conflicts, exhaustion), and the
controller against a management API and a workload cluster (a second `anywhere serve`): blocks
given in age order, exhaustion reported on the Node and the Cluster, a block freed by a deleted
Node reused, a restart in between, and wrong pod CIDRs reported but never rewritten.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from anywhere.api.capi import CLUSTER_API_VERSION
from anywhere.controllers import nodeipam
from anywhere.controllers.conditions import get_condition
from anywhere.controllers.context import Context
from anywhere.controllers.ipam import IpamConfigError
from anywhere.controllers.nodeipam import (
    NETWORK_UNAVAILABLE,
    NODE_CIDR_MASK_ANNOTATION,
    NODE_POD_CIDRS_VALID,
    POD_CIDRS_AVAILABLE,
    plan_pod_cidrs,
)
from anywhere.controllers.resources import CAPI_CLUSTERS, NODES
from anywhere.runtime import Client
from tests.conftest import Server
from tests.controllers.conftest import eventually, running
from tests.controllers.workload import publish_kubeconfig, workload_server

workload = pytest.fixture(scope="module", name="workload")(workload_server)

Obj = dict[str, Any]
CLUSTER = "w1"


def node(name: str, created: int = 0, cidr: str | None = None, *, deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "creationTimestamp": f"2024-01-01T00:00:{created:02d}Z"}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:01:00Z"
    return {"metadata": meta, "spec": {"podCIDR": cidr} if cidr else {}}


# -- the plan -------------------------------------------------------------------------------------------


def test_plan_keeps_existing_blocks_and_gives_the_lowest_free_ones_oldest_first() -> None:
    nodes = [node("young", 3), node("has", 1, "10.0.0.0/24"), node("old", 2), node("going", 0, deleting=True)]
    plan = plan_pod_cidrs("10.0.0.0/16", 24, nodes)
    assert plan.assign == {"old": "10.0.1.0/24", "young": "10.0.2.0/24"}
    assert plan.waiting == []
    assert plan.conflicts == {}
    assert plan.capacity == 256


def test_plan_reports_exhaustion() -> None:
    plan = plan_pod_cidrs("10.0.0.0/23", 24, [node("a", 1), node("b", 2), node("c", 3), node("d", 4)])
    assert plan.assign == {"a": "10.0.0.0/24", "b": "10.0.1.0/24"}
    assert plan.waiting == ["c", "d"]
    message = plan.exhausted_message()
    assert "pod CIDR 10.0.0.0/23 with node mask /24 holds 2 node(s)" in message
    assert "2 node(s) have no pod CIDR: c, d" in message
    assert "holds 2 node(s) and all are allocated" in plan.node_message()


def test_plan_reports_conflicts_and_never_moves_a_block() -> None:
    nodes = [
        node("outside", 1, "192.168.5.0/24"),
        node("first", 2, "10.0.0.0/24"),
        node("clash", 3, "10.0.0.0/24"),
        node("wrong-size", 4, "10.0.1.0/25"),
        node("new", 5),
    ]
    plan = plan_pod_cidrs("10.0.0.0/16", 24, nodes)
    assert plan.assign == {"new": "10.0.1.0/24"}
    assert set(plan.conflicts) == {"outside", "clash", "wrong-size"}
    assert "outside the cluster pod CIDR 10.0.0.0/16" in plan.conflicts["outside"]
    assert "already allocated to node first" in plan.conflicts["clash"]
    assert "is a /25" in plan.conflicts["wrong-size"]


def test_plan_refuses_a_bad_configuration() -> None:
    with pytest.raises(IpamConfigError):
        plan_pod_cidrs("10.0.0.0/24", 16, [])


# -- the controller against two API servers ----------------------------------------------------------------


@pytest.fixture
async def remote(workload: Server) -> AsyncIterator[Client]:
    """A client of the workload cluster, whose Nodes are removed before each test (they are
    cluster-scoped, and every test's Cluster sees all of them)."""
    async with Client.from_kubeconfig(workload.kubeconfig) as api:
        for item in (await api.list(NODES))["items"]:
            with contextlib.suppress(Exception):
                await api.delete(NODES, item["metadata"]["name"])
        await eventually(api, NODES, None, lambda items: not items)
        yield api


async def make_cluster(client: Client, namespace: str, workload: Server, pods: str, mask: int | None) -> None:
    meta: Obj = {"name": CLUSTER, "namespace": namespace}
    if mask is not None:
        meta["annotations"] = {NODE_CIDR_MASK_ANNOTATION: str(mask)}
    await client.create(
        CAPI_CLUSTERS,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Cluster",
            "metadata": meta,
            "spec": {"clusterNetwork": {"pods": {"cidrBlocks": [pods]}}},
        },
    )
    await publish_kubeconfig(client, namespace, CLUSTER, workload.kubeconfig)


async def add_node(remote: Client, name: str, cidr: str | None = None) -> None:
    await remote.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr} if cidr else {},
        },
    )


def cidrs(items: list[Obj]) -> dict[str, str | None]:
    return {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR") for n in items}


def cluster_condition(type_: str, status: str, contains: str = "") -> Callable[[list[Obj]], bool]:
    def check(items: list[Obj]) -> bool:
        condition = get_condition(items[0], type_) if items else None
        return (
            condition is not None
            and condition.get("status") == status
            and contains in str(condition.get("message") or "")
        )

    return check


async def test_allocation_exhaustion_release_and_reuse(
    context: Context, client: Client, namespace: str, workload: Server, remote: Client
) -> None:
    await make_cluster(client, namespace, workload, "10.0.0.0/23", 24)
    await add_node(remote, "n1")
    await add_node(remote, "n2")
    async with running(context, [nodeipam.controller(context)]):
        nodes = await eventually(remote, NODES, None, lambda items: all(cidrs(items).values()))
        assert cidrs(nodes) == {"n1": "10.0.0.0/24", "n2": "10.0.1.0/24"}
        assert all(n["spec"]["podCIDRs"] == [n["spec"]["podCIDR"]] for n in nodes)
        await eventually(client, CAPI_CLUSTERS, namespace, cluster_condition(POD_CIDRS_AVAILABLE, "True"))

    # A restart: the next controller rebuilds the allocation from the Nodes.
    async with running(context, [nodeipam.controller(context)]):
        await add_node(remote, "n3")

        def n3_waits(items: list[Obj]) -> bool:
            n3 = next((n for n in items if n["metadata"]["name"] == "n3"), None)
            condition = get_condition(n3, NETWORK_UNAVAILABLE) if n3 else None
            return condition is not None and condition.get("reason") == "NoPodCIDR"

        nodes = await eventually(remote, NODES, None, n3_waits)
        n3 = next(n for n in nodes if n["metadata"]["name"] == "n3")
        assert not n3["spec"].get("podCIDR")
        condition = get_condition(n3, NETWORK_UNAVAILABLE)
        assert condition is not None
        assert condition["status"] == "True"
        assert "pod CIDR 10.0.0.0/23 with node mask /24 holds 2 node(s)" in condition["message"]
        [cluster] = await eventually(
            client, CAPI_CLUSTERS, namespace, cluster_condition(POD_CIDRS_AVAILABLE, "False", "n3")
        )
        available = get_condition(cluster, POD_CIDRS_AVAILABLE)
        assert available is not None
        assert available["reason"] == "PodCIDRsExhausted"
        assert "10.0.0.0/23 with node mask /24 holds 2 node(s)" in available["message"]

        await remote.delete(NODES, "n1")
        nodes = await eventually(remote, NODES, None, lambda items: cidrs(items).get("n3") == "10.0.0.0/24")
        n3 = next(n for n in nodes if n["metadata"]["name"] == "n3")
        await eventually(
            remote,
            NODES,
            None,
            lambda items: any(
                (get_condition(n, NETWORK_UNAVAILABLE) or {}).get("reason") == "PodCIDRAssigned"
                for n in items
            ),
        )
        await eventually(client, CAPI_CLUSTERS, namespace, cluster_condition(POD_CIDRS_AVAILABLE, "True"))
        assert cidrs((await remote.list(NODES))["items"]) == {"n2": "10.0.1.0/24", "n3": "10.0.0.0/24"}


async def test_wrong_pod_cidrs_are_reported_not_rewritten(
    context: Context, client: Client, namespace: str, workload: Server, remote: Client
) -> None:
    await add_node(remote, "outside", "192.168.5.0/24")
    await add_node(remote, "first", "10.1.0.0/24")
    await add_node(remote, "new")
    await make_cluster(client, namespace, workload, "10.1.0.0/16", None)  # mask: the default /24
    async with running(context, [nodeipam.controller(context)]):
        nodes = await eventually(remote, NODES, None, lambda items: cidrs(items).get("new") is not None)
        assert cidrs(nodes) == {"outside": "192.168.5.0/24", "first": "10.1.0.0/24", "new": "10.1.1.0/24"}
        [cluster] = await eventually(
            client, CAPI_CLUSTERS, namespace, cluster_condition(NODE_POD_CIDRS_VALID, "False", "outside")
        )
        valid = get_condition(cluster, NODE_POD_CIDRS_VALID)
        assert valid is not None
        assert valid["reason"] == "PodCIDRConflict"
        assert "192.168.5.0/24 is outside the cluster pod CIDR 10.1.0.0/16" in valid["message"]
        assert cidrs((await remote.list(NODES))["items"])["outside"] == "192.168.5.0/24"
