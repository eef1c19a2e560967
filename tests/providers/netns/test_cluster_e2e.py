"""A highly available netns cluster end to end, reached from the host as a user reaches it.

The plane's controllers run in-process against a real management API (as in test_machine.py); the
machines are real: namespaces, DHCP leases, etcd members, ``anywhere serve``, VIP and node agents.
The host reaches the cluster only through the forwarder on loopback, with the cluster's admin
kubeconfig rewritten to it (``tls-server-name`` the VIP), and the machine's own kubectl.

One cluster (3 control plane machines + 2 workers) goes through every phase in turn, because
creating it is most of the cost: (a) Ready, 5 Ready nodes with DHCP addresses; (b) kill -9 of
every process of the machine holding the VIP: the VIP moves and kubectl keeps working; (c) kill -9
of one etcd member (not the leader's, nor the VIP holder's): writes keep succeeding; (d) delete:
nothing is left. (e), a rolling upgrade 1.33 -> 1.34 under a 10 Hz read probe through the VIP, is
a test of its own (another 3+2 cluster). Failover time and failed
probe requests are printed (``-s`` shows them), not asserted: they are figures of this machine
(bench/netns.py measures them); the probe's failures must be slow answers, never errors.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL
from anywhere.controllers.context import Context
from anywhere.controllers.plane import all_controllers
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import (
    EKSA_CLUSTERS,
    NETNS_CLUSTERS,
    NETNS_MACHINES,
    SYSTEM_NAMESPACE,
)
from anywhere.providers.netns import machine as netnsmachine
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.hostaccess import HostForwarder, read_probe, write_host_kubeconfig
from anywhere.providers.netns.inventory import discover, scope_id
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.provider import PROVIDER
from anywhere.runtime import NAMESPACES, SECRETS, AlreadyExistsError, Client
from tests.controllers.conftest import client, eventually, namespace, running, server
from tests.providers.netns.hardware import requires_root, state_dir
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

CONTROL_PLANES = 3
WORKERS = 2
VIP_ADDRESS = ipaddress.IPv4Interface(f"{VIP}/32")


def kubectl(kubeconfig: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The machine's kubectl through the forwarder (blocking: run it in a thread)."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=10s", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def kubectl_ok(kubeconfig: Path, *args: str) -> str:
    result = await asyncio.to_thread(kubectl, kubeconfig, *args)
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def node_ready(node: Obj) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def internal_ips(nodes: list[Obj]) -> set[ipaddress.IPv4Address]:
    return {
        ipaddress.IPv4Address(a["address"])
        for n in nodes
        for a in (n.get("status") or {}).get("addresses") or ()
        if a["type"] == "InternalIP"
    }


async def host_kubeconfig_for(client: Client, cluster: str, port: int, path: Path) -> Path:
    """The cluster's admin kubeconfig (Secret NAME-kubeconfig, for https://VIP:6443) for the host."""
    secret = await client.get(SECRETS, kubeconfig_secret_name(cluster), SYSTEM_NAMESPACE)
    return write_host_kubeconfig(path, base64.b64decode(secret["data"]["value"]), port)


async def vip_holders(machines: dict[str, MachineNamespace]) -> list[str]:
    held = []
    for name, machine in machines.items():
        with contextlib.suppress(Exception):  # a machine being replaced may be gone
            if VIP_ADDRESS in await machine.addresses():
                held.append(name)
    return held


def all_ready(name: str, count: int) -> Callable[[list[Obj]], bool]:
    def check(items: list[Obj]) -> bool:
        machines = mine(items, name)
        return len(machines) == count and ready(*[m["metadata"]["name"] for m in machines])(items)

    return check


def control_planes(context: Context, state_dir: Path, name: str) -> dict[str, MachineNamespace]:
    """The cluster's control plane machines that exist now, by NetnsMachine name."""
    found = {}
    for machine in context.manager.informer(NETNS_MACHINES).list():
        labels = machine["metadata"].get("labels") or {}
        if machine["metadata"]["namespace"] != SYSTEM_NAMESPACE or CONTROL_PLANE_LABEL not in labels:
            continue
        if labels.get(CLUSTER_NAME_LABEL) != name:
            continue
        key = netnsmachine.machine_name(SYSTEM_NAMESPACE, machine["metadata"]["name"])
        loaded = MachineNamespace.load(state_dir, key)
        if loaded is not None:
            found[machine["metadata"]["name"]] = loaded
    return found


async def create_cluster(
    client: Client, namespace: str, name: str, control_planes: int, workers: int
) -> list[Obj]:
    """Create the anywhere Cluster and wait until it is Ready with all its machines; the NetnsMachines."""
    with contextlib.suppress(AlreadyExistsError):  # where the Cluster API objects go
        await client.create(NAMESPACES, {"metadata": {"name": SYSTEM_NAMESPACE}})
    for document in cluster_documents(name, control_planes, workers):
        await client.create(RESOURCES[document["kind"]], document, namespace)
    await eventually(client, EKSA_CLUSTERS, namespace, cluster_ready(name), timeout=SETTLE * 2)
    return await eventually(
        client, NETNS_MACHINES, SYSTEM_NAMESPACE, all_ready(name, control_planes + workers), timeout=SETTLE
    )


async def delete_cluster_and_check_nothing_is_left(
    client: Client, namespace: str, name: str, state_dir: Path
) -> None:
    await client.delete(EKSA_CLUSTERS, name, namespace)
    await eventually(client, EKSA_CLUSTERS, namespace, lambda i: not i, timeout=SETTLE * 2)
    await eventually(client, NETNS_MACHINES, SYSTEM_NAMESPACE, lambda i: not mine(i, name))
    await eventually(client, NETNS_CLUSTERS, SYSTEM_NAMESPACE, lambda i: not mine(i, name))
    assert our_namespaces(state_dir) == []
    left = await discover(state_dir, scope_id(state_dir))
    assert (left.namespaces, left.processes, left.host_links) == ([], [], [])
    # the state folder's skeleton (its scope file, empty folders) stays; no lease, pid file or disk
    assert [f for f in left.state_files if not f.endswith(("/", "/scope"))] == []


async def test_an_ha_cluster_serves_through_the_vip_survives_faults_and_leaves_nothing(
    context: Context, client: Client, namespace: str, state_dir: Path, tmp_path: Path
) -> None:
    name = f"ha-{namespace[-4:]}"
    async with running(context, all_controllers(context)):
        # (a) Ready; 5 Ready nodes through the forwarder, with addresses from the DHCP range
        started = time.monotonic()
        items = await create_cluster(client, namespace, name, CONTROL_PLANES, WORKERS)
        print(f"\n(a) {CONTROL_PLANES}+{WORKERS} Ready in {time.monotonic() - started:.1f}s")
        fabric = Fabric.load(state_dir, "awt-br0")
        assert fabric is not None
        addresses = {address_of(items, m["metadata"]["name"]) for m in mine(items, name)}
        assert all(fabric.spec.in_range(a) for a in addresses)
        async with HostForwarder(fabric.namespace, f"{VIP}:6443", tmp_path / "forwarder") as forwarder:
            kubeconfig = await host_kubeconfig_for(client, name, forwarder.port, tmp_path / "host.kubeconfig")

            async def nodes() -> list[Obj]:
                return list(json.loads(await kubectl_ok(kubeconfig, "get", "nodes", "-o", "json"))["items"])

            async def all_nodes_ready() -> list[Obj] | None:
                found = await nodes()
                return (
                    found if len(found) == CONTROL_PLANES + WORKERS and all(map(node_ready, found)) else None
                )

            listed = await until(all_nodes_ready)
            assert internal_ips(listed) == addresses

            # (b) kill -9 every process of the VIP holder: the VIP moves, kubectl keeps working
            holders = await until(lambda: vip_holders(control_planes(context, state_dir, name)))
            assert len(holders) == 1
            holder = holders[0]
            machines = control_planes(context, state_dir, name)
            others = {n: m for n, m in machines.items() if n != holder}
            killed_at = time.monotonic()
            assert machines[holder].kill_all()
            new_holders = await until(lambda: vip_holders(others), interval=0.05)
            moved = time.monotonic() - killed_at
            await until(nodes, interval=0.1)
            served = time.monotonic() - killed_at
            print(
                f"(b) VIP {holder} -> {new_holders[0]} in {moved:.2f}s; kubectl answered after {served:.2f}s"
            )
            assert len(await nodes()) == CONTROL_PLANES + WORKERS

            # (c) once the killed machine is whole again (its init system restarts it), kill -9 one
            # etcd member, neither the leader's nor the VIP holder's: writes keep succeeding
            admin = PROVIDER.etcd_admin(context)

            async def whole() -> Any:
                view = await admin.view(SYSTEM_NAMESPACE, name)
                healthy = len(view.healthy_voters) == CONTROL_PLANES and view.leader is not None
                return view if healthy else None

            view = await until(whole)
            holder = (await until(lambda: vip_holders(control_planes(context, state_dir, name))))[0]
            victim = next(n for n in sorted(view.voters) if n not in (view.leader, holder))
            assert control_planes(context, state_dir, name)[victim].processes.kill("etcd") is not None
            for i in range(5):
                await kubectl_ok(kubeconfig, "create", "configmap", f"write-{i}", "--from-literal=k=v")
            stored = await kubectl_ok(kubeconfig, "get", "configmaps", "-o", "name")
            assert all(f"configmap/write-{i}" in stored for i in range(5))
            print(
                f"(c) etcd member {victim} killed (leader {view.leader}, VIP on {holder}): 5 writes succeeded"
            )

        # (d) delete: nothing is left
        await delete_cluster_and_check_nothing_is_left(client, namespace, name, state_dir)


async def test_a_rolling_upgrade_keeps_serving_reads_through_the_vip(
    context: Context, client: Client, namespace: str, state_dir: Path, tmp_path: Path
) -> None:
    """(e) 1.33 -> 1.34 on 3 control plane machines + 2 workers under a 10 Hz read probe. Reads that
    fail after one client retry are printed; only a slow answer (this machine stalls) may be among
    them, never a refused connection or an error: the VIP is handed over before its holder's API
    server stops, and each API server serves through the other etcd members once its own member is
    removed."""
    name = f"up-{namespace[-4:]}"
    total = CONTROL_PLANES + WORKERS
    async with running(context, all_controllers(context)):
        await create_cluster(client, namespace, name, CONTROL_PLANES, WORKERS)
        fabric = Fabric.load(state_dir, "awt-br0")
        assert fabric is not None
        async with HostForwarder(fabric.namespace, f"{VIP}:6443", tmp_path / "forwarder") as forwarder:
            kubeconfig = await host_kubeconfig_for(client, name, forwarder.port, tmp_path / "host.kubeconfig")
            stop = asyncio.Event()
            probe = asyncio.create_task(read_probe(kubeconfig, stop))
            started = time.monotonic()
            await client.patch(EKSA_CLUSTERS, name, {"spec": {"kubernetesVersion": "1.34"}}, namespace)

            async def upgraded() -> list[Obj] | None:
                found = list(json.loads(await kubectl_ok(kubeconfig, "get", "nodes", "-o", "json"))["items"])
                versions = {n["status"]["nodeInfo"]["kubeletVersion"] for n in found}
                done = len(found) == total and all(map(node_ready, found))
                return found if done and all(v.startswith("v1.34") for v in versions) else None

            try:
                after = await until(upgraded, timeout=SETTLE * 4, interval=0.5)
                await eventually(
                    client, NETNS_MACHINES, SYSTEM_NAMESPACE, all_ready(name, total), timeout=SETTLE
                )
                await eventually(client, EKSA_CLUSTERS, namespace, cluster_ready(name), timeout=SETTLE)
            finally:
                stop.set()
                seen = await probe
                print(
                    f"\n(e) upgrade 1.33 -> 1.34 in {time.monotonic() - started:.1f}s; probe: {seen.requests} "
                    f"requests, {seen.retried} retried, {seen.failed} failed after one retry"
                    + "".join(f"\n    {error}" for error in seen.errors)
                )
            assert seen.requests > 0
            assert all("no answer within" in error for error in seen.errors), seen.errors
            assert all(fabric.spec.in_range(a) for a in internal_ips(after))  # the new machines' leases
            view = await PROVIDER.etcd_admin(context).view(SYSTEM_NAMESPACE, name)
            assert len(view.voters) == CONTROL_PLANES
            assert not view.learners
        await delete_cluster_and_check_nothing_is_left(client, namespace, name, state_dir)
