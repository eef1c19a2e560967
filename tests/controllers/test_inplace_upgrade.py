"""In-place upgrades end to end at the Cluster API level: a control plane of 3 and a
MachineDeployment of 2, both ``InPlace``, on the ``sim`` provider (its simulated node agent honours
``anywhere.eks.amazonaws.com/in-place-upgrade-to``), with every controller of the stack running
in-process against a real management API and the cluster's own served API.

The anywhere Cluster is not used: its validation allows InPlace only on Tinkerbell, and stays so.
The Cluster's conditions are checked with the same pure function its controller uses
(:func:`~anywhere.controllers.cluster_status.set_conditions`), given a sim Cluster whose rollout
strategies are set to InPlace without validating it.

Observed by watching (never by timing): no Machine is ever created after the upgrade starts, at
most one machine carries the upgrade annotation and at most one Node is cordoned at any moment,
the control plane machines go before the workers, a pod on a worker is drained, and the plane is
killed twice half-way (controllers cancelled and started afresh) and still converges.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from anywhere.api import ClusterConfig
from anywhere.api.capi import (
    BOOTSTRAP_API_VERSION,
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    CONTROL_PLANE_API_VERSION,
    CONTROL_PLANE_LABEL,
    INFRASTRUCTURE_API_VERSION,
    MACHINE_DEPLOYMENT_NAME_LABEL,
)
from anywhere.api.v1alpha1.cluster import (
    ControlPlaneUpgradeRolloutStrategy,
    WorkerNodesUpgradeRolloutStrategy,
)
from anywhere.controllers import (
    capicluster,
    inplace,
    kubeadmconfig,
    kubeadmcontrolplane,
    machine,
    machinedeployment,
    machineset,
    nodeipam,
)
from anywhere.controllers.cluster_status import CniState, set_conditions
from anywhere.controllers.conditions import get_condition, is_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import annotations_of
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    DAEMONSETS,
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONFIGS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_SETS,
    MACHINES,
    NODES,
    PODS,
    SIM_CLUSTERS,
    SIM_MACHINE_TEMPLATES,
    SIM_MACHINES,
)
from anywhere.providers.sim import cluster as simcluster
from anywhere.providers.sim import machine as simmachine
from anywhere.runtime import Client, ConflictError, Controller, Resource
from tests.conftest import CILIUM
from tests.controllers.conftest import eventually, running, within

Obj = dict[str, Any]
CLUSTER = "ip"
OLD, NEW = "v1.33.1", "v1.34.1"


def controllers(ctx: Context) -> list[Controller]:
    """The whole stack below the anywhere Cluster controller, fresh (as a restarted plane has them)."""
    return [
        capicluster.controller(ctx),
        kubeadmcontrolplane.controller(ctx),
        machinedeployment.controller(ctx),
        machineset.controller(ctx),
        machine.controller(ctx),
        kubeadmconfig.controller(ctx),
        nodeipam.controller(ctx),
        simcluster.controller(ctx),
        simmachine.controller(ctx),
    ]


def sim_template(namespace: str, name: str) -> Obj:
    return {
        "apiVersion": INFRASTRUCTURE_API_VERSION,
        "kind": "SimMachineTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"bootDelay": "0s"}}},
    }


async def make_cluster(client: Client, namespace: str) -> None:
    """What the anywhere Cluster controller renders for a 3 + 2 cluster with InPlace rollouts."""
    labels = {CLUSTER_NAME_LABEL: CLUSTER}
    await client.create(
        SIM_CLUSTERS,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "SimCluster",
            "metadata": {"name": CLUSTER, "labels": labels},
            "spec": {
                "nodeSubnet": "10.71.0.0/24",
                "gateway": "10.71.0.1",
                "dhcpRange": {"start": "10.71.0.100", "end": "10.71.0.120"},
                "controlPlaneVIP": "10.71.0.10",
            },
        },
        namespace,
    )
    await client.create(
        CAPI_CLUSTERS,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Cluster",
            "metadata": {"name": CLUSTER, "namespace": namespace, "labels": labels},
            "spec": {
                "clusterNetwork": {
                    "pods": {"cidrBlocks": ["192.168.0.0/16"]},
                    "services": {"cidrBlocks": ["10.96.0.0/12"]},
                },
                "controlPlaneRef": {
                    "apiVersion": CONTROL_PLANE_API_VERSION,
                    "kind": "KubeadmControlPlane",
                    "name": CLUSTER,
                },
                "infrastructureRef": {
                    "apiVersion": INFRASTRUCTURE_API_VERSION,
                    "kind": "SimCluster",
                    "name": CLUSTER,
                },
            },
        },
    )
    for name in ("cp-v1-33", "cp-v1-34", "workers-v1-33", "workers-v1-34"):
        await client.create(SIM_MACHINE_TEMPLATES, sim_template(namespace, name))
    await client.create(
        KUBEADM_CONFIG_TEMPLATES,
        {
            "apiVersion": BOOTSTRAP_API_VERSION,
            "kind": "KubeadmConfigTemplate",
            "metadata": {"name": "workers", "namespace": namespace},
            "spec": {"template": {"spec": {"joinConfiguration": {"nodeRegistration": {}}}}},
        },
    )
    await client.create(
        KUBEADM_CONTROL_PLANES,
        {
            "apiVersion": CONTROL_PLANE_API_VERSION,
            "kind": "KubeadmControlPlane",
            "metadata": {"name": CLUSTER, "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 3,
                "version": OLD,
                "machineTemplate": {
                    "infrastructureRef": {
                        "apiVersion": INFRASTRUCTURE_API_VERSION,
                        "kind": "SimMachineTemplate",
                        "name": "cp-v1-33",
                    }
                },
                "kubeadmConfigSpec": {
                    "clusterConfiguration": {"clusterName": CLUSTER, "kubernetesVersion": OLD},
                    "initConfiguration": {"nodeRegistration": {}},
                    "joinConfiguration": {"nodeRegistration": {}, "controlPlane": {}},
                },
                "rolloutStrategy": {"type": "InPlace"},
            },
        },
    )
    selector = {CLUSTER_NAME_LABEL: CLUSTER, MACHINE_DEPLOYMENT_NAME_LABEL: f"{CLUSTER}-md-0"}
    await client.create(
        MACHINE_DEPLOYMENTS,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "MachineDeployment",
            "metadata": {"name": f"{CLUSTER}-md-0", "namespace": namespace, "labels": labels},
            "spec": {
                "clusterName": CLUSTER,
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "InPlace"},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {
                        "clusterName": CLUSTER,
                        "version": OLD,
                        "bootstrap": {
                            "configRef": {
                                "apiVersion": BOOTSTRAP_API_VERSION,
                                "kind": "KubeadmConfigTemplate",
                                "name": "workers",
                            }
                        },
                        "infrastructureRef": {
                            "apiVersion": INFRASTRUCTURE_API_VERSION,
                            "kind": "SimMachineTemplate",
                            "name": "workers-v1-33",
                        },
                    },
                },
            },
        },
    )


async def patch_retrying(client: Client, resource: Resource, name: str, namespace: str, patch: Obj) -> None:
    """A merge patch, retried on 409 (a controller wrote in between, as kube-apiserver would retry)."""
    for _ in range(20):
        try:
            await client.patch(resource, name, patch, namespace)
            return
        except ConflictError:
            continue
    raise AssertionError(f"could not patch {resource.kind} {name}")


def node_ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or ()
    )


def is_control_plane(machine: Obj) -> bool:
    return CONTROL_PLANE_LABEL in (machine["metadata"].get("labels") or {})


@dataclass
class Tracker:
    """Every state the Machines and Nodes pass through, in the API's order (from watches)."""

    machines: dict[str, Obj] = field(default_factory=dict)
    nodes: dict[str, Obj] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)  # machines that appeared after tracking began
    deleted: set[str] = field(default_factory=set)  # machines that went after tracking began
    annotated_at_once: int = 0
    cordoned_at_once: int = 0
    order: list[str] = field(default_factory=list)  # machines, as each was first asked to upgrade
    cordoned: set[str] = field(default_factory=set)  # nodes ever cordoned
    started: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, check: Callable[[], bool]) -> None:
        """Until ``check()`` holds, woken by each event applied (no polling)."""

        async def wait() -> None:
            while not check():
                self.changed.clear()
                await self.changed.wait()

        await within(wait())

    def on_machine(self, kind: str, obj: Obj) -> None:
        self._on_machine(kind, obj)
        self.changed.set()

    def on_node(self, kind: str, obj: Obj) -> None:
        self._on_node(kind, obj)
        self.changed.set()

    def sync_machines(self, items: list[Obj]) -> None:
        """A fresh listing after a broken watch, taken whole: applied item by item, a stale entry
        next to a fresh one would count two machines at once that never were."""
        fresh = {m["metadata"]["name"]: m for m in items if not m["metadata"].get("deletionTimestamp")}
        if self.started:
            self.deleted |= set(self.machines) - set(fresh)
            self.created |= set(fresh) - set(self.machines)
        self.machines = fresh
        self._count_machines()
        self.changed.set()

    def sync_nodes(self, items: list[Obj]) -> None:
        """A fresh listing of the Nodes after a broken watch, taken whole (see :meth:`sync_machines`)."""
        self.nodes = {n["metadata"]["name"]: n for n in items}
        self._count_nodes()
        self.changed.set()

    def _on_machine(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED" or obj["metadata"].get("deletionTimestamp"):
            self.machines.pop(name, None)
            if self.started:
                self.deleted.add(name)
            return
        if self.started and name not in self.machines:
            self.created.add(name)
        self.machines[name] = obj
        self._count_machines()

    def _count_machines(self) -> None:
        asked = [n for n, m in self.machines.items() if inplace.in_flight(m)]
        self.annotated_at_once = max(self.annotated_at_once, len(asked))
        for n in asked:
            if n not in self.order:
                self.order.append(n)

    def _on_node(self, kind: str, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.nodes.pop(name, None)
            return
        self.nodes[name] = obj
        self._count_nodes()

    def _count_nodes(self) -> None:
        cordoned = [n for n, node in self.nodes.items() if (node.get("spec") or {}).get("unschedulable")]
        self.cordoned |= set(cordoned)
        self.cordoned_at_once = max(self.cordoned_at_once, len(cordoned))


async def follow(
    connect: Callable[[], Any],
    resource: Resource,
    namespace: str | None,
    apply: Callable[[str, Obj], None],
    sync: Callable[[list[Obj]], None],
) -> None:
    """Apply every event of ``resource`` to ``apply``; after a broken stream (the workload API is
    served by the plane, which the test restarts) list again and go on."""
    while True:
        try:
            api: Client = await connect()
            listing = await api.list(resource, namespace)
            sync(list(listing["items"]))
            version = listing["metadata"]["resourceVersion"]
            while True:
                async with api.watch(
                    resource, namespace, resource_version=version, timeout_seconds=30
                ) as events:
                    async for event in events:
                        if event.type == "BOOKMARK":
                            version = event.object["metadata"]["resourceVersion"]
                            continue
                        apply(event.type, event.object)
                        version = event.object["metadata"]["resourceVersion"]
        except asyncio.CancelledError:
            raise
        except Exception:  # the API went away with the plane: list again when it is back
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def tracking(context: Context, client: Client, namespace: str) -> AsyncIterator[Tracker]:
    tracker = Tracker()

    async def management() -> Client:
        return client

    async def workload() -> Client:
        return await context.clusters.client(namespace, CLUSTER)

    tasks = [
        asyncio.create_task(
            follow(management, MACHINES, namespace, tracker.on_machine, tracker.sync_machines)
        ),
        asyncio.create_task(follow(workload, NODES, None, tracker.on_node, tracker.sync_nodes)),
    ]
    try:
        yield tracker
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def kcp_status(**fields: Any) -> Callable[[list[Obj]], bool]:
    def check(items: list[Obj]) -> bool:
        if not items:
            return False
        kcp = items[0]
        status = kcp.get("status") or {}
        return status.get("observedGeneration") == kcp["metadata"]["generation"] and all(
            status.get(k) == v for k, v in fields.items()
        )

    return check


def md_status(**fields: Any) -> Callable[[list[Obj]], bool]:
    return kcp_status(**fields)


def in_place_config(config: ClusterConfig) -> ClusterConfig:
    """The sim Cluster, its rollouts made InPlace (not validated: validation allows that only on
    Tinkerbell), counts as the test's."""
    spec = config.cluster.spec
    assert spec.control_plane_configuration is not None
    assert spec.worker_node_group_configurations
    spec.control_plane_configuration.count = 3
    spec.control_plane_configuration.upgrade_rollout_strategy = ControlPlaneUpgradeRolloutStrategy(
        type="InPlace"
    )
    group = spec.worker_node_group_configurations[0]
    group.count = 2
    group.upgrade_rollout_strategy = WorkerNodesUpgradeRolloutStrategy(type="InPlace")
    return config


def cluster_conditions(config: ClusterConfig, kcp: Obj, mds: list[Obj]) -> dict[str, Obj]:
    """The anywhere Cluster's conditions for these Cluster API objects (its controller's function)."""
    status: Obj = {}
    set_conditions(status, config.cluster, kcp, mds, CniState(configured=True))
    return {c["type"]: c for c in status["conditions"]}


def cluster_ready(config: ClusterConfig, kcp: Obj, mds: list[Obj]) -> bool:
    return bool(cluster_conditions(config, kcp, mds)["Ready"]["status"] == "True")


def pod(name: str, node: str, *, daemon_set: Obj | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if daemon_set:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "name": daemon_set["metadata"]["name"],
                "uid": daemon_set["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    }


async def test_a_control_plane_and_workers_are_upgraded_in_place_one_machine_at_a_time(
    context: Context, client: Client, namespace: str, sim_config: ClusterConfig
) -> None:
    config = in_place_config(sim_config)
    await make_cluster(client, namespace)
    md_name = f"{CLUSTER}-md-0"
    async with tracking(context, client, namespace) as tracker:
        async with running(context, controllers(context)):
            await eventually(
                client,
                SIM_CLUSTERS,
                namespace,
                lambda items: bool(items and items[0].get("status", {}).get("ready")),
            )
            workload = await context.clusters.client(namespace, CLUSTER)
            cilium = await workload.create(
                DAEMONSETS, CILIUM
            )  # what the anywhere Cluster controller installs
            await eventually(
                client,
                KUBEADM_CONTROL_PLANES,
                namespace,
                kcp_status(replicas=3, updatedReplicas=3, readyReplicas=3, version=OLD),
            )
            await eventually(
                client,
                MACHINE_DEPLOYMENTS,
                namespace,
                md_status(replicas=2, updatedReplicas=2, readyReplicas=2),
            )
            kcp = await client.get(KUBEADM_CONTROL_PLANES, CLUSTER, namespace)
            mds = (await client.list(MACHINE_DEPLOYMENTS, namespace))["items"]
            got = cluster_conditions(config, kcp, mds)
            assert got["Ready"]["status"] == "True", got
            before = {m["metadata"]["name"]: m for m in (await client.list(MACHINES, namespace))["items"]}
            assert len(before) == 5
            workers = sorted(n for n, m in before.items() if not is_control_plane(m))
            old_sets = {
                ms["metadata"]["name"] for ms in (await client.list(MACHINE_SETS, namespace))["items"]
            }
            # A workload pod on a worker (drained), and a DaemonSet's pod (left, as kubectl drain does).
            await workload.create(PODS, pod("app", workers[0]), "default")
            await workload.create(PODS, pod("cilium-abcde", workers[0], daemon_set=cilium), "default")
            await tracker.wait_for(lambda: set(tracker.machines) == set(before) and len(tracker.nodes) == 5)
            tracker.started = True

            # The upgrade, as the anywhere Cluster controller applies it: the version, and with it
            # new machine templates, for the control plane and the workers at once.
            await patch_retrying(
                client,
                KUBEADM_CONTROL_PLANES,
                CLUSTER,
                namespace,
                {
                    "spec": {
                        "version": NEW,
                        "machineTemplate": {"infrastructureRef": {"name": "cp-v1-34"}},
                        "kubeadmConfigSpec": {"clusterConfiguration": {"kubernetesVersion": NEW}},
                    }
                },
            )
            await patch_retrying(
                client,
                MACHINE_DEPLOYMENTS,
                md_name,
                namespace,
                {
                    "spec": {
                        "template": {"spec": {"version": NEW, "infrastructureRef": {"name": "workers-v1-34"}}}
                    }
                },
            )
            [kcp] = await eventually(
                client,
                KUBEADM_CONTROL_PLANES,
                namespace,
                lambda items: kcp_status()(items) and items[0]["status"]["updatedReplicas"] < 3,
            )
            ready = cluster_conditions(config, kcp, [])["ControlPlaneReady"]
            assert ready.get("reason") == inplace.IN_PROGRESS_REASON, ready
            cp_condition = get_condition(kcp, "MachinesSpecUpToDate") or {}
            assert cp_condition.get("reason") == inplace.IN_PROGRESS_REASON, cp_condition

            # Killed while a control plane machine's node agent upgrades.
            await eventually(
                client,
                MACHINES,
                namespace,
                lambda items: any(
                    is_control_plane(m) and inplace.UPGRADE_TO_ANNOTATION in annotations_of(m) for m in items
                ),
            )

        async with running(context, controllers(context)):
            # Killed again while a worker is upgraded.
            await eventually(
                client,
                MACHINES,
                namespace,
                lambda items: any(not is_control_plane(m) and inplace.in_flight(m) for m in items),
            )
            [md] = await eventually(
                client,
                MACHINE_DEPLOYMENTS,
                namespace,
                lambda items: md_status()(items) and items[0]["status"]["updatedReplicas"] < 2,
            )
            kcp = await client.get(KUBEADM_CONTROL_PLANES, CLUSTER, namespace)
            workers_ready = cluster_conditions(config, kcp, [md])["WorkersReady"]
            assert workers_ready.get("reason") == inplace.IN_PROGRESS_REASON, workers_ready
            updated = md["status"]["updatedReplicas"]
            assert workers_ready.get("message") == (
                f"Worker nodes not up-to-date yet, {2 - updated} upgrading ({updated} up to date)"
            )

        async with running(context, controllers(context)):
            [kcp] = await eventually(
                client,
                KUBEADM_CONTROL_PLANES,
                namespace,
                lambda items: (
                    kcp_status(replicas=3, updatedReplicas=3, readyReplicas=3, version=NEW)(items)
                    and is_true(items[0], "Ready")
                ),
            )
            [md] = await eventually(
                client,
                MACHINE_DEPLOYMENTS,
                namespace,
                lambda items: (
                    md_status(replicas=2, updatedReplicas=2, readyReplicas=2)(items)
                    and is_true(items[0], "MachinesSpecUpToDate")
                ),
            )
            nodes = await eventually(
                workload,
                NODES,
                None,
                lambda items: (
                    len(items) == 5
                    and all(
                        inplace.node_version(n) == NEW
                        and node_ready(n)
                        and not n["spec"].get("unschedulable")
                        for n in items
                    )
                ),
            )
            machines = await eventually(
                client,
                MACHINES,
                namespace,
                lambda items: all(is_true(m, "Ready") and not inplace.in_flight(m) for m in items),
            )
            # The Cluster's conditions end Ready (once the restarted plane has looked at etcd again).
            await eventually(
                client,
                KUBEADM_CONTROL_PLANES,
                namespace,
                lambda items: cluster_ready(config, items[0], [md]),
            )

            # No machine was made or replaced: the same five, each upgraded where it stood.
            assert {m["metadata"]["name"] for m in machines} == set(before)
            assert {n["metadata"]["name"] for n in nodes} == set(before)
            assert tracker.created == set()
            assert tracker.deleted == set()
            for m in machines:
                assert m["spec"]["version"] == NEW
                assert is_true(m, inplace.IN_PLACE_UPGRADED)
                assert inplace.UPGRADE_TO_ANNOTATION not in annotations_of(m)
                assert m["metadata"]["uid"] == before[m["metadata"]["name"]]["metadata"]["uid"]
            hashes = {
                annotations_of(m).get(kubeadmcontrolplane.SPEC_HASH_ANNOTATION)
                for m in machines
                if is_control_plane(m)
            }
            assert hashes == {kubeadmcontrolplane.spec_hash(kcp)}
            infra = {i["metadata"]["name"]: i for i in (await client.list(SIM_MACHINES, namespace))["items"]}
            configs = {
                c["metadata"]["name"]: c for c in (await client.list(KUBEADM_CONFIGS, namespace))["items"]
            }
            for m in machines:
                cloned = annotations_of(infra[m["metadata"]["name"]])["cluster.x-k8s.io/cloned-from-name"]
                assert cloned == ("cp-v1-34" if is_control_plane(m) else "workers-v1-34")
                if is_control_plane(m):
                    cluster_configuration = configs[m["metadata"]["name"]]["spec"]["clusterConfiguration"]
                    assert cluster_configuration["kubernetesVersion"] == NEW

            # The workers moved into the deployment's new MachineSet; the old one is gone.
            sets = await eventually(client, MACHINE_SETS, namespace, lambda items: len(items) == 1)
            [current] = sets
            assert current["metadata"]["name"] not in old_sets
            assert current["metadata"]["name"] == f"{md_name}-{machinedeployment.template_hash(md)}"
            assert current["metadata"]["annotations"]["machinedeployment.clusters.x-k8s.io/revision"] == "2"
            assert md["metadata"]["annotations"]["machinedeployment.clusters.x-k8s.io/revision"] == "2"
            assert inplace.HOLD_ANNOTATION not in annotations_of(current)
            for m in machines:
                if not is_control_plane(m):
                    assert m["metadata"]["labels"]["cluster.x-k8s.io/set-name"] == current["metadata"]["name"]
                    [owner] = m["metadata"]["ownerReferences"]
                    assert (owner["kind"], owner["name"]) == ("MachineSet", current["metadata"]["name"])

            # One at a time, control plane first; every node was cordoned (and uncordoned).
            assert tracker.annotated_at_once == 1
            assert tracker.cordoned_at_once == 1
            assert len(tracker.order) == 5
            assert all(is_control_plane(before[n]) for n in tracker.order[:3]), tracker.order
            assert set(tracker.order[3:]) == set(workers)
            assert tracker.cordoned == set(before)
            left = {p["metadata"]["name"] for p in (await workload.list(PODS, "default"))["items"]}
            assert left == {"cilium-abcde"}

            await client.delete(CAPI_CLUSTERS, CLUSTER, namespace)
            await eventually(client, MACHINES, namespace, lambda items: not items)
            await eventually(client, CAPI_CLUSTERS, namespace, lambda items: not items)
