"""Crash safety and self-healing on `sim`, against a real management plane process.

- kill -9 of the plane at many points of a create and of an upgrade: each restart resumes, and the
  run ends Ready with exactly the machines the spec asks for — none leaked, none duplicated, every
  machine with one infrastructure machine, one bootstrap config, one node and (control plane)
  one etcd member, and no two machines sharing an address;
- a MachineHealthCheck replaces a worker whose kubelet stopped, within its timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL
from anywhere.controllers.conditions import is_true
from anywhere.controllers.objects import deleting, labels_of, name_of
from anywhere.controllers.resources import CONFIGMAPS, MACHINES, SIM_MACHINES
from anywhere.providers.sim.etcd import EtcdCluster
from anywhere.providers.sim.machine import FAIL_ANNOTATION
from anywhere.runtime import NODES, Client
from tests.e2e.conftest import (
    Plane,
    cluster_yaml,
    kubectl,
    start_plane,
    stop_plane,
    workload_kubeconfig,
    write,
)
from tests.e2e.test_sim_lifecycle import observed, ready, ready_nodes

Obj = dict[str, Any]
Trigger = Callable[[list[Obj]], bool]


def of_cluster(items: list[Obj], cluster: str) -> list[Obj]:
    return [m for m in items if labels_of(m).get(CLUSTER_NAME_LABEL) == cluster]


def control_planes(items: list[Obj]) -> list[Obj]:
    return [m for m in items if CONTROL_PLANE_LABEL in labels_of(m)]


async def machines_until(
    client: Client, cluster: str, trigger: Trigger, what: str, timeout: float = 120
) -> None:
    """Wait (on watch events, not a timer) until ``trigger`` holds for the cluster's machines."""

    async def wait() -> None:
        while True:
            listing = await client.list(MACHINES, "eksa-system")
            if trigger(of_cluster(listing["items"], cluster)):
                return
            rv = listing["metadata"]["resourceVersion"]
            async with client.watch(
                MACHINES, "eksa-system", resource_version=rv, timeout_seconds=30
            ) as events:
                async for _ in events:
                    break

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


async def kill_when(plane: Plane, cluster: str, trigger: Trigger, what: str) -> None:
    """kill -9 the plane the moment ``trigger`` holds for the cluster's machines."""
    async with Client.from_kubeconfig(plane.kubeconfig) as client:
        await machines_until(client, cluster, trigger, what)
    plane.kill()


def restart(plane: Plane) -> Plane:
    return start_plane(plane.data_dir, plane.self_cluster)


async def audit(
    plane: Plane, cluster: str, workload: Path, *, expected_control_planes: int, expected_workers: int
) -> None:
    """Exactly the machines the spec asks for, each with its parts, node, address and etcd member."""
    async with Client.from_kubeconfig(plane.kubeconfig) as client, Client.from_kubeconfig(workload) as remote:
        machines = of_cluster((await client.list(MACHINES, "eksa-system"))["items"], cluster)
        sims = of_cluster((await client.list(SIM_MACHINES, "eksa-system"))["items"], cluster)
        assert not [m for m in machines if deleting(m)]
        cps = control_planes(machines)
        assert len(cps) == expected_control_planes, [name_of(m) for m in cps]
        assert len(machines) - len(cps) == expected_workers, [name_of(m) for m in machines]
        assert all(is_true(m, "Ready") for m in machines)
        assert sorted(name_of(s) for s in sims) == sorted(
            name_of(m) for m in machines
        )  # no orphan, none missing
        addresses = [
            a["address"]
            for s in sims
            for a in (s.get("status") or {}).get("addresses", [])
            if a["type"] == "InternalIP"
        ]
        assert len(addresses) == len(set(addresses)) == len(machines)
        node_names = sorted(n["metadata"]["name"] for n in (await remote.list_all(NODES))["items"])
        assert node_names == sorted(name_of(m) for m in machines)
        members = await remote.get(CONFIGMAPS, "etcd-members", "kube-system")
        etcd = EtcdCluster.from_dict(json.loads(members["data"]["members.json"]))
        assert sorted(m.name for m in etcd.members) == sorted(name_of(m) for m in cps)
        assert etcd.has_quorum


async def test_kill_the_plane_during_create_and_upgrade(tmp_path: Path) -> None:
    plane = start_plane(tmp_path / "plane", "mgmt")
    try:
        plane.kubectl("apply", "-f", str(write(tmp_path, "mgmt", cluster_yaml("mgmt"))))
        await asyncio.to_thread(ready, plane, "mgmt")
        spec = cluster_yaml(
            "w1", control_planes=3, workers=(2,), management="mgmt", endpoint="10.10.0.11", boot_delay="300ms"
        )
        plane.kubectl("apply", "-f", str(write(tmp_path, "w1", spec)))
        create_points: list[tuple[str, Trigger]] = [
            ("the first machine exists", lambda ms: len(ms) >= 1),
            ("a machine is ready", lambda ms: any(is_true(m, "Ready") for m in ms)),
            ("a second control plane machine exists", lambda ms: len(control_planes(ms)) >= 2),
            ("workers exist", lambda ms: len(ms) - len(control_planes(ms)) >= 1),
            ("three control plane machines exist", lambda ms: len(control_planes(ms)) >= 3),
        ]
        for what, trigger in create_points:
            await kill_when(plane, "w1", trigger, what)
            plane = restart(plane)
        await asyncio.to_thread(ready, plane, "w1")
        w1 = workload_kubeconfig(plane, "w1", tmp_path)
        await audit(plane, "w1", w1, expected_control_planes=3, expected_workers=2)

        upgraded = cluster_yaml(
            "w1",
            control_planes=3,
            workers=(2,),
            management="mgmt",
            endpoint="10.10.0.11",
            boot_delay="300ms",
            version="1.34",
        )
        plane.kubectl("apply", "-f", str(write(tmp_path, "w1", upgraded)))

        def new_version(ms: list[Obj]) -> list[Obj]:
            return [m for m in ms if str(m["spec"].get("version", "")).startswith("v1.34")]

        upgrade_points: list[tuple[str, Trigger]] = [
            ("the first 1.34 machine exists", lambda ms: len(new_version(ms)) >= 1),
            ("an old machine is being deleted", lambda ms: any(deleting(m) for m in ms)),
            (
                "a 1.34 control plane machine is ready",
                lambda ms: any(is_true(m, "Ready") for m in control_planes(new_version(ms))),
            ),
            ("two 1.34 control plane machines exist", lambda ms: len(control_planes(new_version(ms))) >= 2),
            (
                "a 1.34 worker exists",
                lambda ms: len(new_version(ms)) - len(control_planes(new_version(ms))) >= 1,
            ),
        ]
        for what, trigger in upgrade_points:
            await kill_when(plane, "w1", trigger, what)
            plane = restart(plane)
        await asyncio.to_thread(observed, plane, "w1")
        await audit(plane, "w1", w1, expected_control_planes=3, expected_workers=2)
        versions = {
            n["status"]["nodeInfo"]["kubeletVersion"]
            for n in json.loads(kubectl(w1, "get", "nodes", "-o", "json").stdout)["items"]
        }
        assert all(v.startswith("v1.34.") for v in versions), versions
    finally:
        stop_plane(plane)


async def test_health_check_replaces_a_failed_worker(plane: Plane, tmp_path: Path) -> None:
    plane.kubectl("apply", "-f", str(write(tmp_path, "mgmt", cluster_yaml("mgmt"))))
    spec = cluster_yaml(
        "w1",
        workers=(2,),
        management="mgmt",
        endpoint="10.10.0.11",
        extra={
            "machineHealthCheck": {
                "unhealthyMachineTimeout": "3s",
                "nodeStartupTimeout": "5m",
                "maxUnhealthy": "60%",
            }
        },
    )
    plane.kubectl("apply", "-f", str(write(tmp_path, "w1", spec)))
    await asyncio.to_thread(ready, plane, "w1")
    w1 = workload_kubeconfig(plane, "w1", tmp_path)
    async with Client.from_kubeconfig(plane.kubeconfig) as client:
        machines = of_cluster((await client.list(MACHINES, "eksa-system"))["items"], "w1")
        victim = next(name_of(m) for m in machines if CONTROL_PLANE_LABEL not in labels_of(m))
        await client.patch(
            SIM_MACHINES, victim, {"metadata": {"annotations": {FAIL_ANNOTATION: "true"}}}, "eksa-system"
        )

        def replaced(current: list[Obj]) -> bool:
            workers = [m for m in current if CONTROL_PLANE_LABEL not in labels_of(m)]
            gone = victim not in {name_of(m) for m in current}
            return gone and len(workers) == 2 and all(is_true(m, "Ready") for m in workers)

        await machines_until(client, "w1", replaced, f"machine {victim} replaced")
    await asyncio.to_thread(ready, plane, "w1")
    assert victim not in ready_nodes(w1)
    assert len(ready_nodes(w1)) == 3
