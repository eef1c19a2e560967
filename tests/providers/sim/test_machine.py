"""The SimMachine controller and its simulated kubelet, with the test playing the Machine
controller (it makes the Machine and hands it bootstrap data) and node IPAM (it gives the Node a
pod CIDR), against a real management API and a real workload API per cluster."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from anywhere.api.capi import (
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    CONTROL_PLANE_LABEL,
    INFRASTRUCTURE_API_VERSION,
)
from anywhere.controllers.context import Context
from anywhere.controllers.objects import parse_time
from anywhere.controllers.resources import (
    CONFIGMAPS,
    DAEMONSETS,
    LEASES,
    MACHINES,
    NODES,
    SIM_CLUSTERS,
    SIM_MACHINES,
)
from anywhere.providers.sim import cluster as simcluster
from anywhere.providers.sim import machine as simmachine
from anywhere.providers.sim.etcd_admin import SimEtcdAdmin
from anywhere.providers.sim.machine import (
    BOOT_FAILS_ANNOTATION,
    BOOT_READY_AT_ANNOTATION,
    BOOT_STARTED_ANNOTATION,
    FAIL_ANNOTATION,
    FAIL_BOOT_ANNOTATION,
    FINALIZER,
    build_pool,
    mac_of,
    node_conditions,
    plan_boot,
)
from anywhere.runtime import Client, Controller, NotFoundError
from tests.conftest import CILIUM
from tests.controllers.conftest import eventually, running

Obj = dict[str, Any]
VERSION = "v1.33.1"


# -- pure decisions --------------------------------------------------------------------------------------


def test_a_boot_plan_stays_within_delay_and_jitter_and_fails_at_the_rate() -> None:
    rng = random.Random(7)
    spec = {"bootDelay": "10s", "bootJitter": "2s", "failureRate": 0.25}
    plans = [plan_boot(spec, {}, 1000.0, rng) for _ in range(2000)]
    assert all(p.started == 1000.0 and 1008.0 <= p.ready_at <= 1012.0 for p in plans)
    assert 0.2 < sum(p.fails for p in plans) / len(plans) < 0.3
    assert plan_boot({"bootDelay": "1s", "bootJitter": "5s"}, {}, 0.0, rng).ready_at >= 0.0  # never early
    assert plan_boot({}, {FAIL_BOOT_ANNOTATION: "true"}, 5.0).fails
    assert not plan_boot({"failureRate": 0.0}, {}, 5.0).fails
    assert plan_boot({}, {}, 5.0).ready_at == 5.0


def test_the_pool_reserves_gateway_and_every_vip_and_counts_every_recorded_address() -> None:
    cluster = {
        "metadata": {"name": "a", "namespace": "ns"},
        "spec": {
            "nodeSubnet": "10.0.0.0/24",
            "gateway": "10.0.0.100",
            "dhcpRange": {"start": "10.0.0.100", "end": "10.0.0.105"},
            "controlPlaneVIP": "10.0.0.10",
        },
    }
    other = {"metadata": {"name": "b", "namespace": "ns"}, "spec": {"controlPlaneVIP": "10.0.0.101"}}
    machine = {
        "metadata": {"name": "b-1", "namespace": "ns", "uid": "u1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.102"}]},
    }
    outside = {
        "metadata": {"name": "c-1", "namespace": "ns", "uid": "u2"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.5"}]},
    }
    pool = build_pool(
        cluster, [cluster, other], [machine, outside], [("02:00:00:00:00:09", "x", "10.0.0.103")]
    )
    assert pool.holder_of("10.0.0.102").mac == mac_of(machine)  # type: ignore[union-attr]
    assert str(pool.lease("02:00:00:00:00:01")) == "10.0.0.104"  # .100 gateway, .101 a VIP, .102/.103 taken
    assert str(pool.lease("02:00:00:00:00:02")) == "10.0.0.105"
    assert mac_of(machine) == mac_of(machine) != mac_of(outside)
    assert int(mac_of(machine).split(":")[0], 16) & 0b11 == 0b10  # locally administered, unicast


def test_node_conditions_move_transition_times_only_on_change() -> None:
    first, changed = node_conditions([], failing=False, ready=False, now="t1")
    assert changed
    assert [(c["type"], c["status"]) for c in first] == [
        ("MemoryPressure", "False"),
        ("DiskPressure", "False"),
        ("PIDPressure", "False"),
        ("Ready", "False"),
    ]
    same, changed = node_conditions(first, failing=False, ready=False, now="t2")
    assert not changed
    assert same[3]["lastHeartbeatTime"] == "t2"
    assert same[3]["lastTransitionTime"] == "t1"
    ready, changed = node_conditions(same, failing=False, ready=True, now="t3")
    assert changed
    assert (ready[3]["reason"], ready[3]["message"], ready[3]["lastTransitionTime"]) == (
        "KubeletReady",
        "kubelet is posting ready status",
        "t3",
    )
    assert ready[0]["lastTransitionTime"] == "t1"
    dead, changed = node_conditions(ready, failing=True, ready=True, now="t4")
    assert changed
    assert {(c["status"], c["reason"], c["message"]) for c in dead} == {
        ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    }
    assert dead[3]["lastHeartbeatTime"] == "t3"  # nobody posts heartbeats any more


# -- against the API ------------------------------------------------------------------------------------


async def create_sim_cluster(client: Client, namespace: str, cluster: str, subnet: str, last: int) -> None:
    base = ipaddress.IPv4Network(subnet).network_address
    await client.create(
        SIM_CLUSTERS,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "SimCluster",
            "metadata": {"name": cluster, "labels": {CLUSTER_NAME_LABEL: cluster}},
            "spec": {
                "nodeSubnet": subnet,
                "gateway": str(base + 1),
                "dhcpRange": {"start": str(base + 100), "end": str(base + last)},
                "controlPlaneVIP": str(base + 10),
            },
        },
        namespace,
    )


async def delete_everything(client: Client, namespace: str) -> None:
    """Delete the namespace's machines and clusters (while their controllers run) and wait until
    they are gone, so that no VIP or address outlives the test on the shared management API."""
    for resource in (MACHINES, SIM_MACHINES, SIM_CLUSTERS):  # machines first, as Cluster API does
        for item in (await client.list(resource, namespace))["items"]:
            with contextlib.suppress(NotFoundError):  # gone with its owner already
                await client.delete(resource, item["metadata"]["name"], namespace)
        await eventually(client, resource, namespace, lambda items: not items)


def sim_controllers(ctx: Context) -> list[Controller]:
    return [simcluster.controller(ctx), simmachine.controller(ctx)]


@contextlib.asynccontextmanager
async def sim_plane(
    ctx: Context, client: Client, namespace: str, cluster: str, subnet: str, *, last: int = 110
) -> AsyncIterator[Client]:
    """A SimCluster served and its machines reconciled until the block ends, when everything is
    deleted. Yields the workload cluster's client."""
    await create_sim_cluster(client, namespace, cluster, subnet, last)
    async with running(ctx, sim_controllers(ctx)):
        await eventually(
            client, SIM_CLUSTERS, namespace, one(cluster, lambda c: c.get("status", {}).get("ready"))
        )
        yield await ctx.clusters.client(namespace, cluster)
        await delete_everything(client, namespace)


async def make_machine(
    client: Client,
    namespace: str,
    cluster: str,
    name: str,
    *,
    control_plane: bool = False,
    bootstrapped: bool = True,
    boot_delay: str = "0s",
    annotations: dict[str, str] | None = None,
) -> tuple[Obj, Obj]:
    """A Machine (as the Machine controller leaves it) and its SimMachine."""
    labels = {CLUSTER_NAME_LABEL: cluster}
    if control_plane:
        labels[CONTROL_PLANE_LABEL] = ""
    bootstrap: Obj = {"dataSecretName": name} if bootstrapped else {}
    machine = await client.create(
        MACHINES,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Machine",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "clusterName": cluster,
                "version": VERSION,
                "bootstrap": bootstrap,
                "infrastructureRef": {
                    "apiVersion": INFRASTRUCTURE_API_VERSION,
                    "kind": "SimMachine",
                    "name": name,
                },
            },
        },
        namespace,
    )
    sim = await client.create(
        SIM_MACHINES,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "SimMachine",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": annotations or {},
                "ownerReferences": [
                    {
                        "apiVersion": CLUSTER_API_VERSION,
                        "kind": "Machine",
                        "name": name,
                        "uid": machine["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"bootDelay": boot_delay, "bootJitter": "0s", "failureRate": 0.0},
        },
        namespace,
    )
    return machine, sim


def one(name: str, predicate: Any) -> Any:
    return lambda items: any(i["metadata"]["name"] == name and predicate(i) for i in items)


def by_name(items: list[Obj], name: str) -> Obj:
    return next(i for i in items if i["metadata"]["name"] == name)


def condition(obj: Obj, type_: str = "Ready") -> Obj:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == type_), {})


def node_ready(status: str) -> Any:
    return lambda node: condition(node).get("status") == status


def etcd_members(items: list[Obj]) -> dict[str, bool]:
    for item in items:
        if item["metadata"]["name"] == "etcd-members":
            data = json.loads(item["data"]["members.json"])
            return {m["name"]: m["healthy"] for m in data["members"]}
    return {}


async def test_a_control_plane_machine_boots_registers_heartbeats_and_fails_on_demand(
    context: Context, client: Client, namespace: str
) -> None:
    name = "w1-cp-abcde"
    async with sim_plane(context, client, namespace, "w1", "10.21.0.0/24") as workload:
        await make_machine(
            client, namespace, "w1", name, control_plane=True, bootstrapped=False, boot_delay="1s"
        )
        items = await eventually(
            client,
            SIM_MACHINES,
            namespace,
            one(name, lambda m: condition(m).get("reason") == "WaitingForBootstrapData"),
        )
        assert "addresses" not in by_name(items, name)["status"]  # nothing leased before the bootstrap data
        await client.patch(MACHINES, name, {"spec": {"bootstrap": {"dataSecretName": name}}}, namespace)

        items = await eventually(
            client, SIM_MACHINES, namespace, one(name, lambda m: m.get("status", {}).get("ready"))
        )
        sim = by_name(items, name)
        assert FINALIZER in sim["metadata"]["finalizers"]
        assert sim["spec"]["providerID"] == f"sim://{namespace}/w1/{name}"
        assert sim["status"]["addresses"] == [
            {"type": "InternalIP", "address": "10.21.0.100"},
            {"type": "Hostname", "address": name},
        ]
        meta = sim["metadata"]["annotations"]
        started, ready_at = (
            parse_time(meta[BOOT_STARTED_ANNOTATION]),
            parse_time(meta[BOOT_READY_AT_ANNOTATION]),
        )
        assert started is not None
        assert ready_at is not None
        assert ready_at - started == pytest.approx(1.0)
        assert meta[BOOT_FAILS_ANNOTATION] == "false"

        nodes = await eventually(workload, NODES, None, one(name, node_ready("False")))
        node = by_name(nodes, name)
        assert node["spec"]["providerID"] == sim["spec"]["providerID"]
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
        assert node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
        assert node["metadata"]["annotations"] == {
            "cluster.x-k8s.io/machine": name,
            "cluster.x-k8s.io/cluster-name": "w1",
            "cluster.x-k8s.io/cluster-namespace": namespace,
        }
        assert node["status"]["addresses"] == [
            {"type": "InternalIP", "address": "10.21.0.100"},
            {"type": "Hostname", "address": name},
        ]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == VERSION
        assert condition(node)["reason"] == "KubeletNotReady"
        leases = await eventually(workload, LEASES, "kube-node-lease", one(name, lambda lease: True))
        lease = by_name(leases, name)
        assert lease["spec"]["holderIdentity"] == name
        assert lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        view = await SimEtcdAdmin(context).view(namespace, "w1")
        assert (dict(view.members), view.leader) == ({name: True}, name)

        # The CNI arrives and node IPAM gives the node its pod CIDR: Ready.
        await workload.create(DAEMONSETS, CILIUM)
        await workload.patch(
            NODES, name, {"spec": {"podCIDR": "192.168.0.0/24", "podCIDRs": ["192.168.0.0/24"]}}
        )
        nodes = await eventually(workload, NODES, None, one(name, node_ready("True")))
        ready = condition(by_name(nodes, name))
        assert (ready["reason"], ready["message"]) == ("KubeletReady", "kubelet is posting ready status")

        # The kubelet stops: the node goes Unknown and the etcd member unhealthy; then it comes back.
        await client.patch(
            SIM_MACHINES, name, {"metadata": {"annotations": {FAIL_ANNOTATION: "true"}}}, namespace
        )
        nodes = await eventually(workload, NODES, None, one(name, node_ready("Unknown")))
        unknown = condition(by_name(nodes, name))
        assert (unknown["reason"], unknown["message"]) == (
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
        await eventually(
            workload, CONFIGMAPS, "kube-system", lambda items: etcd_members(items) == {name: False}
        )
        await client.patch(
            SIM_MACHINES, name, {"metadata": {"annotations": {FAIL_ANNOTATION: None}}}, namespace
        )
        await eventually(workload, NODES, None, one(name, node_ready("True")))
        await eventually(
            workload, CONFIGMAPS, "kube-system", lambda items: etcd_members(items) == {name: True}
        )

        # Deletion stops the heartbeats; the Node and the etcd member are other controllers' to remove.
        await client.delete(SIM_MACHINES, name, namespace)
        await eventually(client, SIM_MACHINES, namespace, lambda items: not items)
        await eventually(workload, LEASES, "kube-node-lease", lambda items: not items)
        assert (await workload.get(NODES, name))["metadata"]["name"] == name
        assert dict((await SimEtcdAdmin(context).view(namespace, "w1")).members) == {name: True}


async def test_addresses_are_leased_in_range_until_exhausted_and_released_on_deletion(
    context: Context, client: Client, namespace: str
) -> None:
    async with sim_plane(context, client, namespace, "w2", "10.22.0.0/24", last=101):
        for name in ("w2-md-1", "w2-md-2"):
            await make_machine(client, namespace, "w2", name)
        items = await eventually(
            client,
            SIM_MACHINES,
            namespace,
            lambda items: all(i.get("status", {}).get("ready") for i in items),
        )
        assert sorted(i["status"]["addresses"][0]["address"] for i in items) == ["10.22.0.100", "10.22.0.101"]
        holder = next(i for i in items if i["status"]["addresses"][0]["address"] == "10.22.0.100")

        await make_machine(client, namespace, "w2", "w2-md-3")
        items = await eventually(
            client,
            SIM_MACHINES,
            namespace,
            one("w2-md-3", lambda m: condition(m).get("reason") == "DHCPExhausted"),
        )
        exhausted = condition(by_name(items, "w2-md-3"))
        assert exhausted["severity"] == "Warning"
        assert exhausted["message"].startswith(
            "DHCP range 10.22.0.100-10.22.0.101 of 10.22.0.0/24 is exhausted: all 2 leasable addresses are in use"
        )

        await client.delete(SIM_MACHINES, holder["metadata"]["name"], namespace)
        items = await eventually(
            client, SIM_MACHINES, namespace, one("w2-md-3", lambda m: m.get("status", {}).get("ready"))
        )
        assert by_name(items, "w2-md-3")["status"]["addresses"][0]["address"] == "10.22.0.100"


async def test_a_boot_failure_is_terminal_and_registers_no_node(
    context: Context, client: Client, namespace: str
) -> None:
    name = "w3-md-fail1"
    async with sim_plane(context, client, namespace, "w3", "10.23.0.0/24") as workload:
        await make_machine(client, namespace, "w3", name, annotations={FAIL_BOOT_ANNOTATION: "true"})
        items = await eventually(
            client, SIM_MACHINES, namespace, one(name, lambda m: m.get("status", {}).get("failureReason"))
        )
        status = by_name(items, name)["status"]
        assert status["ready"] is False
        assert status["failureReason"] == "CreateError"
        assert status["failureMessage"] == (
            f"machine {name} failed to boot (simulated failure, annotation {FAIL_BOOT_ANNOTATION})"
        )
        assert (condition(by_name(items, name))["reason"], condition(by_name(items, name))["severity"]) == (
            "BootFailed",
            "Error",
        )
        assert by_name(items, name)["metadata"]["annotations"][BOOT_FAILS_ANNOTATION] == "true"
        assert (await workload.list(NODES))["items"] == []


async def test_a_restart_mid_boot_keeps_the_planned_ready_time(
    context: Context, client: Client, namespace: str
) -> None:
    name = "w4-md-slow1"
    await create_sim_cluster(client, namespace, "w4", "10.24.0.0/24", 110)
    async with running(context, sim_controllers(context)):
        await make_machine(client, namespace, "w4", name, boot_delay="3s")
        items = await eventually(
            client,
            SIM_MACHINES,
            namespace,
            one(name, lambda m: BOOT_READY_AT_ANNOTATION in m["metadata"].get("annotations", {})),
        )
        plan = {k: v for k, v in by_name(items, name)["metadata"]["annotations"].items() if "sim-boot" in k}
        assert not by_name(items, name)["status"].get("ready")
    # The plane stopped mid-boot (its controllers were cancelled); a new one resumes the boot.
    async with running(context, sim_controllers(context)):
        items = await eventually(
            client, SIM_MACHINES, namespace, one(name, lambda m: m.get("status", {}).get("ready"))
        )
        after = {k: v for k, v in by_name(items, name)["metadata"]["annotations"].items() if "sim-boot" in k}
        assert after == plan  # neither the delay nor the dice were rolled again
        await delete_everything(client, namespace)
