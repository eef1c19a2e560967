"""The NetnsMachine controller on real namespaces, DHCP, etcd and ``anywhere serve``.

Setup, the smallest honest one: the real NetnsCluster and NetnsMachine controllers run against a
real management API; the Cluster API objects a control plane controller would make for a machine
(the Machine, marked ``init`` or ``join`` as the KubeadmControlPlane controller marks it, its
bootstrap data Secret, the NetnsMachine it owns) are created by the test. Everything in a machine
is real: its namespace and DHCP lease, its etcd member, its API server, its VIP and node agents.
The test reaches the workload cluster through the VIP from the host's namespace, as the plane
does: through the cluster cache, whose clients dial from inside the fabric.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anywhere.api.capi import (
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    CONTROL_PLANE_LABEL,
    INFRASTRUCTURE_API_VERSION,
)
from anywhere.controllers.context import Context
from anywhere.controllers.plane import all_controllers
from anywhere.controllers.resources import (
    EKSA_CLUSTERS,
    MACHINES,
    NETNS_CLUSTERS,
    NETNS_MACHINES,
    SYSTEM_NAMESPACE,
)
from anywhere.providers.netns import machine as netnsmachine
from anywhere.providers.netns._host import wait_until
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.provider import PROVIDER
from anywhere.runtime import NAMESPACES, NODES, SECRETS, AlreadyExistsError, Client, Controller
from tests.controllers.conftest import client, eventually, namespace, running, server
from tests.providers.netns.hardware import GATEWAY, SUBNET, requires_root, state_dir
from tests.providers.netns.plane import (
    RESOURCES,
    SETTLE,
    VIP,
    address_of,
    cluster_documents,
    cluster_ready,
    context,
    mine,
    our_namespaces,
    ready,
    until,
)

__all__ = ["client", "context", "namespace", "server", "state_dir"]

pytestmark = requires_root
Obj = dict[str, Any]

CLUSTER = "c1"


def controllers(ctx: Context) -> list[Controller]:
    return PROVIDER.controllers(ctx)


def netns_cluster() -> Obj:
    return {
        "apiVersion": INFRASTRUCTURE_API_VERSION,
        "kind": "NetnsCluster",
        "metadata": {"name": CLUSTER, "labels": {CLUSTER_NAME_LABEL: CLUSTER}},
        "spec": {
            "bridgeName": "awt-br0",
            "bridgeSubnet": SUBNET,
            "gateway": GATEWAY,
            "dhcpRange": {"start": "10.231.0.100", "end": "10.231.0.120"},
            "controlPlaneVIP": VIP,
        },
    }


async def add_control_plane_machine(
    client: Client,
    namespace: str,
    name: str,
    *,
    init: bool,
    control_plane: bool = True,
    boot_timeout: str = "30m",
) -> None:
    """What the control plane controller (or a MachineSet, for a worker) makes for one machine:
    Machine, bootstrap data, NetnsMachine."""
    labels = {CLUSTER_NAME_LABEL: CLUSTER, **({CONTROL_PLANE_LABEL: ""} if control_plane else {})}
    command = "init" if init else "join"
    await client.create(
        SECRETS,
        {
            "metadata": {"name": f"{name}-bootstrap", "labels": {CLUSTER_NAME_LABEL: CLUSTER}},
            "type": "cluster.x-k8s.io/secret",
            "data": {
                "value": base64.b64encode(
                    f"#cloud-config\nruncmd:\n- kubeadm {command} --config /run/kubeadm/kubeadm.yaml\n".encode()
                ).decode()
            },
        },
        namespace,
    )
    machine = await client.create(
        MACHINES,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Machine",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {netnsmachine.KCP_BOOTSTRAP_ANNOTATION: command},
            },
            "spec": {
                "clusterName": CLUSTER,
                "version": "v1.33.1",
                "bootstrap": {"dataSecretName": f"{name}-bootstrap"},
                "infrastructureRef": {
                    "apiVersion": INFRASTRUCTURE_API_VERSION,
                    "kind": "NetnsMachine",
                    "name": name,
                },
            },
        },
        namespace,
    )
    await client.create(
        NETNS_MACHINES,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "NetnsMachine",
            "metadata": {
                "name": name,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": CLUSTER_API_VERSION,
                        "kind": "Machine",
                        "name": name,
                        "uid": machine["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            # no Machine controller runs here to set nodeRef: by default a deadline never reached
            "spec": {"bootTimeout": boot_timeout},
        },
        namespace,
    )


def has_address(name: str) -> Callable[[list[Obj]], bool]:
    return lambda items: any(
        i["metadata"]["name"] == name and (i.get("status") or {}).get("addresses") for i in items
    )


async def voters(ctx: Context, namespace: str) -> tuple[list[str], list[str]]:
    status = await PROVIDER.etcd_admin(ctx).admin(namespace, CLUSTER).status(namespace, CLUSTER)
    return (
        sorted(m.name for m in status.members if not m.is_learner),
        sorted(m.name for m in status.members if m.is_learner),
    )


async def node_names(ctx: Context, namespace: str) -> set[str]:
    """The workload cluster's Nodes, read through the VIP from the host's namespace."""
    workload = await ctx.clusters.client(namespace, CLUSTER)
    return {n["metadata"]["name"] for n in (await workload.list(NODES)).get("items") or []}


async def test_a_control_plane_machine_forms_the_cluster_and_a_second_joins_and_leaves(
    context: Context, client: Client, namespace: str, state_dir: Path
) -> None:
    await client.create(NETNS_CLUSTERS, netns_cluster(), namespace)
    await add_control_plane_machine(client, namespace, "cp-0", init=True)
    async with running(context, controllers(context)):
        items = await eventually(client, NETNS_MACHINES, namespace, ready("cp-0"), timeout=SETTLE)
        fabric = Fabric.load(state_dir, "awt-br0")
        assert fabric is not None
        address = address_of(items, "cp-0")
        assert fabric.spec.range_start <= address <= fabric.spec.range_end
        cp0 = next(i for i in items if i["metadata"]["name"] == "cp-0")
        assert cp0["spec"]["providerID"] == f"netns://{namespace}/{CLUSTER}/cp-0"
        machine = MachineNamespace.load(state_dir, netnsmachine.machine_name(namespace, "cp-0"))
        assert machine is not None
        assert machine.exists()
        assert {r.name for r in machine.processes.list()} >= {"udhcpc", "etcd", "apiserver", "vip", "node"}
        assert await voters(context, namespace) == (["cp-0"], [])
        # the API server answers through the VIP (dialled from inside the fabric), and the node
        # agent registered its Node there
        assert await until(lambda: _has_nodes(context, namespace, {"cp-0"}))

        # (c) a second control plane machine joins as a learner and is promoted
        await add_control_plane_machine(client, namespace, "cp-1", init=False)
        await eventually(client, NETNS_MACHINES, namespace, ready("cp-0", "cp-1"), timeout=SETTLE)
        assert await voters(context, namespace) == (["cp-0", "cp-1"], [])
        assert await until(lambda: _has_nodes(context, namespace, {"cp-0", "cp-1"}))

        # (d) deleting it removes its member, processes, namespace and lease
        joined = MachineNamespace.load(state_dir, netnsmachine.machine_name(namespace, "cp-1"))
        assert joined is not None
        await client.delete(NETNS_MACHINES, "cp-1", namespace)
        await eventually(
            client, NETNS_MACHINES, namespace, lambda i: {x["metadata"]["name"] for x in i} == {"cp-0"}
        )
        assert not joined.exists()
        assert all(lease.mac != joined.mac for lease in fabric.leases())
        assert await voters(context, namespace) == (["cp-0"], [])

        # the rest goes too: the last machine, then the cluster with its fabric
        await client.delete(NETNS_MACHINES, "cp-0", namespace)
        await eventually(client, NETNS_MACHINES, namespace, lambda i: not i)
        await client.delete(NETNS_CLUSTERS, CLUSTER, namespace)
        await eventually(client, NETNS_CLUSTERS, namespace, lambda i: not i)
    assert our_namespaces(state_dir) == []  # and the state_dir fixture checks for any leak


async def _has_nodes(ctx: Context, namespace: str, names: set[str]) -> bool:
    return names <= await node_names(ctx, namespace)


async def test_a_controller_killed_mid_way_converges_without_duplicates(
    context: Context, client: Client, namespace: str, state_dir: Path
) -> None:
    await client.create(NETNS_CLUSTERS, netns_cluster(), namespace)
    await add_control_plane_machine(client, namespace, "cp-0", init=True)
    # killed as soon as the first machine has its address (its services not started yet)
    async with running(context, controllers(context)):
        await eventually(client, NETNS_MACHINES, namespace, has_address("cp-0"), timeout=SETTLE)
    async with running(context, controllers(context)):
        await eventually(client, NETNS_MACHINES, namespace, ready("cp-0"), timeout=SETTLE)
        await add_control_plane_machine(client, namespace, "cp-1", init=False)
        fabric = Fabric.load(state_dir, "awt-br0")
        assert fabric is not None
        joining = MachineNamespace(fabric, netnsmachine.machine_name(namespace, "cp-1"))
        # killed once the learner was added (its answer on the machine's disk), before promotion
        assert await wait_until(lambda: (joining.folder / netnsmachine.ETCD_JOIN_FILE).exists(), SETTLE)
    async with running(context, controllers(context)):
        await eventually(client, NETNS_MACHINES, namespace, ready("cp-0", "cp-1"), timeout=SETTLE)
        assert await voters(context, namespace) == (["cp-0", "cp-1"], [])
        assert len(our_namespaces(state_dir)) == 3  # the fabric and one namespace per machine
        for name in ("cp-0", "cp-1"):
            machine = MachineNamespace.load(state_dir, netnsmachine.machine_name(namespace, name))
            assert machine is not None
            etcd = machine.processes.get("etcd")
            assert etcd is not None
            assert etcd.running()
        assert await until(lambda: _has_nodes(context, namespace, {"cp-0", "cp-1"}))
        for name in ("cp-1", "cp-0"):
            await client.delete(NETNS_MACHINES, name, namespace)
        await eventually(client, NETNS_MACHINES, namespace, lambda i: not i)
        await client.delete(NETNS_CLUSTERS, CLUSTER, namespace)
        await eventually(client, NETNS_CLUSTERS, namespace, lambda i: not i)


async def test_a_machine_whose_node_never_registers_fails_at_its_boot_timeout(
    context: Context, client: Client, namespace: str, state_dir: Path
) -> None:
    """No Machine controller runs, so nothing ever records the worker's Node: at its boot timeout the
    machine fails (terminal, for a health check or its MachineSet to replace), and deleting it
    leaves nothing behind."""
    await client.create(NETNS_CLUSTERS, netns_cluster(), namespace)
    await add_control_plane_machine(
        client, namespace, "w-0", init=False, control_plane=False, boot_timeout="3s"
    )

    def failed(items: list[Obj]) -> bool:
        return any((i.get("status") or {}).get("failureReason") for i in items)

    async with running(context, controllers(context)):
        items = await eventually(client, NETNS_MACHINES, namespace, failed, timeout=SETTLE)
        status = items[0]["status"]
        assert status["failureReason"] == "CreateError"
        assert "did not register within its boot timeout" in status["failureMessage"]
        assert status["ready"] is False
        await client.delete(NETNS_MACHINES, "w-0", namespace)
        await eventually(client, NETNS_MACHINES, namespace, lambda i: not i)
        await client.delete(NETNS_CLUSTERS, CLUSTER, namespace)
        await eventually(client, NETNS_CLUSTERS, namespace, lambda i: not i)
    assert our_namespaces(state_dir) == []


# -- end to end: the anywhere Cluster through every controller of the plane -------------------------------


@pytest.mark.parametrize("control_planes", [1, 3])
async def test_a_netns_cluster_is_created_and_deleted_by_the_whole_plane(
    context: Context, client: Client, namespace: str, state_dir: Path, control_planes: int
) -> None:
    name = f"e2e-{namespace[-4:]}"
    with contextlib.suppress(AlreadyExistsError):  # where the Cluster API objects go
        await client.create(NAMESPACES, {"metadata": {"name": SYSTEM_NAMESPACE}})
    for document in cluster_documents(name, control_planes):
        await client.create(RESOURCES[document["kind"]], document, namespace)
    async with running(context, all_controllers(context)):
        await eventually(client, EKSA_CLUSTERS, namespace, cluster_ready(name), timeout=SETTLE * 2)
        machines = await eventually(
            client,
            NETNS_MACHINES,
            SYSTEM_NAMESPACE,
            lambda i: (
                len(mine(i, name)) == control_planes + 1
                and ready(*[x["metadata"]["name"] for x in mine(i, name)])(i)
            ),
        )
        fabric = Fabric.load(state_dir, "awt-br0")
        assert fabric is not None
        addresses = {address_of(machines, m["metadata"]["name"]) for m in mine(machines, name)}
        assert all(fabric.spec.range_start <= a <= fabric.spec.range_end for a in addresses)
        workload = await context.clusters.client(SYSTEM_NAMESPACE, name)
        nodes = (await workload.list(NODES))["items"]
        assert len(nodes) == control_planes + 1
        if control_planes > 1:
            view = await PROVIDER.etcd_admin(context).view(SYSTEM_NAMESPACE, name)
            assert len(view.voters) == control_planes
            assert view.learners == frozenset()
            assert view.has_quorum
        assert all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
            for n in nodes
        )
        internal = {
            ipaddress.IPv4Address(a["address"])
            for n in nodes
            for a in n["status"]["addresses"]
            if a["type"] == "InternalIP"
        }
        assert internal == addresses

        await client.delete(EKSA_CLUSTERS, name, namespace)
        await eventually(client, EKSA_CLUSTERS, namespace, lambda i: not i, timeout=SETTLE * 2)
        await eventually(client, NETNS_MACHINES, SYSTEM_NAMESPACE, lambda i: not mine(i, name))
        await eventually(client, NETNS_CLUSTERS, SYSTEM_NAMESPACE, lambda i: not mine(i, name))
    assert our_namespaces(state_dir) == []
