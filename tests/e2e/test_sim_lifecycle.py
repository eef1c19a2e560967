"""The whole lifecycle on `sim`, through kubectl against a real management plane process: create,
scale, upgrade (with the invariants a rolling upgrade must keep, checked on every change), refused
version skips, delete, and a management cluster with several workload clusters."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, MACHINE_DEPLOYMENT_NAME_LABEL
from anywhere.controllers.conditions import is_true
from anywhere.controllers.objects import deleting
from anywhere.controllers.resources import CONFIGMAPS, EKSA_CLUSTERS, MACHINES
from anywhere.providers.sim.etcd import EtcdCluster
from anywhere.runtime import Client
from tests.e2e.conftest import Plane, cluster_yaml, kubectl, workload_kubeconfig, write

WAIT = "180s"


def ready(plane: Plane, name: str, timeout: str = WAIT) -> None:
    plane.kubectl(
        "wait", "--for=condition=Ready", f"clusters.anywhere.eks.amazonaws.com/{name}", f"--timeout={timeout}"
    )


def observed(plane: Plane, name: str) -> None:
    """Wait until the cluster's status speaks of its current generation, then until it is Ready."""
    generation = plane.kubectl(
        "get", "clusters.anywhere.eks.amazonaws.com", name, "-o", "jsonpath={.metadata.generation}"
    )
    plane.kubectl(
        "wait",
        f"--for=jsonpath={{.status.observedGeneration}}={generation.stdout.strip()}",
        f"clusters.anywhere.eks.amazonaws.com/{name}",
        f"--timeout={WAIT}",
    )
    ready(plane, name)


def nodes(kubeconfig: Path) -> list[dict[str, Any]]:
    return list(json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"])


def ready_nodes(kubeconfig: Path) -> list[str]:
    return [
        n["metadata"]["name"]
        for n in nodes(kubeconfig)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
    ]


class Invariants:
    """Watches a cluster's machines and etcd membership during an operation and records every
    violation of what a rolling upgrade must keep."""

    def __init__(
        self,
        management: Client,
        workload: Client,
        cluster: str,
        *,
        control_planes: int,
        workers: dict[str, int],
    ) -> None:
        self.management = management
        self.workload = workload
        self.cluster = cluster
        self.control_planes = control_planes
        self.workers = workers
        self.violations: list[str] = []
        self.max_deleting_control_planes = 0
        self.quorum_checks = 0

    def check_machines(self, machines: list[dict[str, Any]]) -> None:
        mine = [
            m for m in machines if m["metadata"].get("labels", {}).get(CLUSTER_NAME_LABEL) == self.cluster
        ]
        cps = [m for m in mine if CONTROL_PLANE_LABEL in m["metadata"].get("labels", {})]
        ready_cps = [m for m in cps if is_true(m, "Ready") and not deleting(m)]
        if len(ready_cps) < self.control_planes:
            self.violations.append(f"{len(ready_cps)} ready control plane machines (< {self.control_planes})")
        self.max_deleting_control_planes = max(
            self.max_deleting_control_planes, sum(1 for m in cps if deleting(m))
        )
        for md, desired in self.workers.items():
            group = [
                m for m in mine if m["metadata"].get("labels", {}).get(MACHINE_DEPLOYMENT_NAME_LABEL) == md
            ]
            ready_workers = [m for m in group if is_true(m, "Ready") and not deleting(m)]
            if len(ready_workers) < desired:
                self.violations.append(f"{md}: {len(ready_workers)} ready workers (< {desired})")

    def check_etcd(self, configmap: dict[str, Any]) -> None:
        members = EtcdCluster.from_dict(json.loads(configmap["data"]["members.json"]))
        self.quorum_checks += 1
        if not members.has_quorum:
            self.violations.append(f"etcd lost quorum: {members!r}")

    async def machines_forever(self) -> None:
        listing = await self.management.list(MACHINES, "eksa-system")
        items = {m["metadata"]["name"]: m for m in listing["items"]}
        self.check_machines(list(items.values()))
        async with self.management.watch(
            MACHINES, "eksa-system", resource_version=listing["metadata"]["resourceVersion"]
        ) as events:
            async for event in events:
                if event.type == "BOOKMARK":
                    continue
                name = event.object["metadata"]["name"]
                if event.type == "DELETED":
                    items.pop(name, None)
                else:
                    items[name] = event.object
                self.check_machines(list(items.values()))

    async def etcd_forever(self) -> None:
        listing = await self.workload.list(
            CONFIGMAPS, "kube-system", field_selector="metadata.name=etcd-members"
        )
        for item in listing["items"]:
            self.check_etcd(item)
        async with self.workload.watch(
            CONFIGMAPS,
            "kube-system",
            resource_version=listing["metadata"]["resourceVersion"],
            field_selector="metadata.name=etcd-members",
        ) as events:
            async for event in events:
                if event.type in ("ADDED", "MODIFIED"):
                    self.check_etcd(event.object)


async def test_workload_cluster_create_scale_upgrade_delete(plane: Plane, tmp_path: Path) -> None:
    # The management cluster itself: 1 control plane machine and 1 worker.
    plane.kubectl("apply", "-f", str(write(tmp_path, "mgmt", cluster_yaml("mgmt"))))
    await asyncio.to_thread(ready, plane, "mgmt")
    assert len(ready_nodes(plane.kubeconfig)) == 2

    # A workload cluster of 3 control plane machines and worker groups of 2 and 1.
    spec = cluster_yaml("w1", control_planes=3, workers=(2, 1), management="mgmt", endpoint="10.10.0.11")
    plane.kubectl("apply", "-f", str(write(tmp_path, "w1", spec)))
    await asyncio.to_thread(ready, plane, "w1")
    w1 = workload_kubeconfig(plane, "w1", tmp_path)
    assert len(ready_nodes(w1)) == 6
    for node in nodes(w1):
        assert node["spec"]["podCIDR"].endswith("/24")
        assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.33.")
    system = kubectl(w1, "get", "daemonsets,deployments", "-n", "kube-system", "-o", "name").stdout
    assert "daemonset.apps/cilium" in system
    assert "deployment.apps/coredns" in system

    # Scale the first worker group 2 -> 4 -> 1.
    for count in (4, 1):
        scaled = cluster_yaml(
            "w1", control_planes=3, workers=(count, 1), management="mgmt", endpoint="10.10.0.11"
        )
        plane.kubectl("apply", "-f", str(write(tmp_path, "w1", scaled)))
        await asyncio.to_thread(observed, plane, "w1")
        assert len(ready_nodes(w1)) == 3 + count + 1

    # Skipping a minor version is refused at the API, and nothing changes.
    skipped = cluster_yaml(
        "w1", control_planes=3, workers=(1, 1), management="mgmt", endpoint="10.10.0.11", version="1.35"
    )
    refused = plane.kubectl("apply", "-f", str(write(tmp_path, "w1", skipped)), check=False)
    assert refused.returncode != 0
    assert "1.35" in refused.stderr, refused.stderr

    # Upgrade 1.33 -> 1.34, watching the invariants throughout.
    async with Client.from_kubeconfig(plane.kubeconfig) as management, Client.from_kubeconfig(w1) as workload:
        invariants = Invariants(
            management, workload, "w1", control_planes=3, workers={"w1-md-0": 1, "w1-md-1": 1}
        )
        watchers = [
            asyncio.create_task(invariants.machines_forever()),
            asyncio.create_task(invariants.etcd_forever()),
        ]
        upgraded = cluster_yaml(
            "w1", control_planes=3, workers=(1, 1), management="mgmt", endpoint="10.10.0.11", version="1.34"
        )
        plane.kubectl("apply", "-f", str(write(tmp_path, "w1", upgraded)))
        await asyncio.to_thread(observed, plane, "w1")
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    assert invariants.violations == []
    assert invariants.max_deleting_control_planes == 1  # one at a time
    assert invariants.quorum_checks > 3
    versions = {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes(w1)}
    assert all(v.startswith("v1.34.") for v in versions), versions

    # Delete: nothing of the cluster remains.
    plane.kubectl("delete", "clusters.anywhere.eks.amazonaws.com", "w1", "--timeout=180s")
    leftovers = plane.kubectl(
        "get",
        "machines,machinesets,machinedeployments,kubeadmcontrolplanes,simmachines,simclusters,secrets",
        "-n",
        "eksa-system",
        "-l",
        f"{CLUSTER_NAME_LABEL}=w1",
        "-o",
        "name",
    ).stdout
    assert leftovers.strip() == ""
    capi = plane.kubectl("get", "clusters.cluster.x-k8s.io", "-n", "eksa-system", "-o", "name").stdout
    assert "w1" not in capi


async def test_management_cluster_with_three_workload_clusters(plane: Plane, tmp_path: Path) -> None:
    plane.kubectl("apply", "-f", str(write(tmp_path, "mgmt", cluster_yaml("mgmt"))))
    for index in range(3):
        spec = cluster_yaml(f"wl{index}", management="mgmt", endpoint=f"10.10.0.{20 + index}")
        plane.kubectl("apply", "-f", str(write(tmp_path, f"wl{index}", spec)))
    for name in ("mgmt", "wl0", "wl1", "wl2"):
        await asyncio.to_thread(ready, plane, name)
    for index in range(3):
        assert len(ready_nodes(workload_kubeconfig(plane, f"wl{index}", tmp_path))) == 2
    listing = json.loads(plane.kubectl("get", "clusters.anywhere.eks.amazonaws.com", "-o", "json").stdout)
    assert sorted(c["metadata"]["name"] for c in listing["items"]) == ["mgmt", "wl0", "wl1", "wl2"]
    assert EKSA_CLUSTERS.plural == "clusters"
