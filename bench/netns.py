"""Benchmark of the netns provider: real clusters of network namespaces on this host (needs root).

    sudo .venv/bin/python bench/netns.py [--baseline-machines 5] [--no-upgrade] [--upgrade-timeout 300]

It starts a management API (``anywhere serve``, SQLite, in a temporary folder) and runs the plane's
controllers in this process, as the tests do, with a state folder of its own (its namespaces carry
their own scope: nothing of another run or a real cluster is touched, and all of it is removed at
the end, even after a failure). The fabric uses the private subnet 10.233.0.0/24 inside the
project's own namespaces; the host's interfaces and routes are never touched.

Printed (wall-clock; nothing here asserts a time):

- baseline, measured first in the same run: the time to make N bare machine namespaces with their
  DHCP leases (``MachineNamespace.ensure``, one after another, as a machine's first step), per
  machine; and the time one machine's etcd and API server take to start and answer;
- create time of a 1+1 cluster and of a 3+2 cluster, from the Cluster's creation until it is
  Ready with every machine ready (target for 3+2: under 30 s);
- VIP failover of the 3+2 cluster after kill -9 of every process of the machine holding the VIP:
  until another machine holds it, and until the API answers again through the forwarder from
  the host (target under 5 s; kube-vip's default timings give about 15 s);
- unless ``--no-upgrade``: a rolling upgrade 1.33 -> 1.34 of the 3+2 cluster (its duration, until
  every Node reports v1.34 and is Ready) under a 10 Hz read probe of the Nodes through the VIP,
  with the requests that failed after one client retry (target 0);
- delete time of each cluster;
- a self-managed 1+1 cluster through the CLI: ``anywhere create cluster`` (bootstrap plane, machines,
  move into the cluster, its own controllers leading, bootstrap plane gone) and ``anywhere delete
  cluster`` (move back, delete, nothing left).

Each figure is also given as a ratio to the baseline per machine, so that it reads the same on a
slower or busier host.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from _serve import start_serve, stop_serve  # bench/_serve.py (bench/ is on the path of a script run from it)

from anywhere.api import dump_config
from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL
from anywhere.api.generate import generate_config
from anywhere.api.v1alpha1.cluster import ManagementCluster
from anywhere.api.v1alpha1.sim import IPRange
from anywhere.controllers.context import Context
from anywhere.controllers.plane import all_controllers, provider_dialer
from anywhere.controllers.remote import ClusterCache, kubeconfig_secret_name
from anywhere.controllers.resources import (
    EKSA_CLUSTERS,
    NETNS_DATACENTERS,
    NETNS_MACHINE_CONFIGS,
    NETNS_MACHINES,
    SYSTEM_NAMESPACE,
)
from anywhere.providers.netns import machine as netnsmachine
from anywhere.providers.netns.fabric import Fabric, FabricSpec
from anywhere.providers.netns.hostaccess import HostForwarder, read_probe, write_host_kubeconfig
from anywhere.providers.netns.inventory import cleanup_all, leaks, scope_id
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.provider import PROVIDER, STATE_ENV
from anywhere.runtime import NAMESPACES, NODES, SECRETS, AlreadyExistsError, Client, Manager

Obj = dict[str, Any]

BRIDGE = "awb-br0"
SUBNET = "10.233.0.0/24"
GATEWAY = "10.233.0.1"
RANGE = ("10.233.0.100", "10.233.0.160")
VIP = "10.233.0.10"
NAMESPACE = "default"
SETTLE = 300.0  # bound of any wait on external processes
PROBE_TIMEOUT = 2.0


def start_api(folder: Path) -> tuple[subprocess.Popen[str], Path]:
    """``anywhere serve`` (SQLite) on any free port; the process and its admin kubeconfig."""
    process, _ = start_serve(folder)
    return process, folder / "admin.kubeconfig"


def documents(name: str, control_planes: int, workers: int, *, self_managed: bool = False) -> list[Obj]:
    config = generate_config(name, "netns", "1.33")
    spec = config.cluster.spec
    if not self_managed:
        spec.management_cluster = ManagementCluster(name="mgmt")  # this bench's plane manages it
    assert spec.control_plane_configuration is not None
    assert spec.control_plane_configuration.endpoint is not None
    spec.control_plane_configuration.count = control_planes
    spec.control_plane_configuration.endpoint.host = VIP
    for group in spec.worker_node_group_configurations or []:
        group.count = workers
    for datacenter in config.of_kind("NetnsDatacenterConfig"):
        datacenter.spec.bridge_name = BRIDGE  # type: ignore[attr-defined]
        datacenter.spec.bridge_subnet = SUBNET  # type: ignore[attr-defined]
        datacenter.spec.gateway = GATEWAY  # type: ignore[attr-defined]
        datacenter.spec.dhcp_range = IPRange(start=RANGE[0], end=RANGE[1])  # type: ignore[attr-defined]
    return [d for d in yaml.safe_load_all(dump_config(config)) if d]


RESOURCES = {
    "Cluster": EKSA_CLUSTERS,
    "NetnsDatacenterConfig": NETNS_DATACENTERS,
    "NetnsMachineConfig": NETNS_MACHINE_CONFIGS,
}


async def until(check: Callable[[], Awaitable[Any]], timeout: float = SETTLE, interval: float = 0.1) -> Any:
    """Poll an external system until ``check`` answers something true; None at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            result = await check()
            if result:
                return result
        await asyncio.sleep(interval)
    return None


def of_cluster(items: list[Obj], name: str) -> list[Obj]:
    return [i for i in items if (i["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL) == name]


class Bench:
    def __init__(self, ctx: Context, state: Path, folder: Path) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.state = state
        self.folder = folder

    def machines(self, name: str) -> list[Obj]:
        return of_cluster(
            [
                m
                for m in self.ctx.manager.informer(NETNS_MACHINES).list()
                if m["metadata"]["namespace"] == SYSTEM_NAMESPACE
            ],
            name,
        )

    def control_planes(self, name: str) -> dict[str, MachineNamespace]:
        found = {}
        for machine in self.machines(name):
            if CONTROL_PLANE_LABEL in (machine["metadata"].get("labels") or {}):
                key = netnsmachine.machine_name(SYSTEM_NAMESPACE, machine["metadata"]["name"])
                loaded = MachineNamespace.load(self.state, key)
                if loaded is not None:
                    found[machine["metadata"]["name"]] = loaded
        return found

    async def ready(self, name: str, count: int) -> bool:
        cluster = await self.client.get(EKSA_CLUSTERS, name, NAMESPACE)
        conditions = (cluster.get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return False
        machines = self.machines(name)
        for machine in machines:
            if (machine.get("status") or {}).get("failureReason"):
                raise SystemExit(f"machine {machine['metadata']['name']} failed: {machine['status']}")
        return len(machines) == count and all((m.get("status") or {}).get("ready") for m in machines)

    async def create(self, name: str, control_planes: int, workers: int) -> float:
        started = time.monotonic()
        for document in documents(name, control_planes, workers):
            await self.client.create(RESOURCES[document["kind"]], document, NAMESPACE)
        if not await until(lambda: self.ready(name, control_planes + workers)):
            raise SystemExit(f"cluster {name} was not Ready within {SETTLE:g}s")
        return time.monotonic() - started

    async def delete(self, name: str) -> float:
        started = time.monotonic()
        await self.client.delete(EKSA_CLUSTERS, name, NAMESPACE)

        async def gone() -> bool:
            listed = await self.client.list(EKSA_CLUSTERS, NAMESPACE)
            return (
                not of_cluster(list(listed["items"]), name)
                and not any(i["metadata"]["name"] == name for i in listed["items"])
                and not self.machines(name)
            )

        if not await until(gone):
            raise SystemExit(f"cluster {name} was not deleted within {SETTLE:g}s")
        return time.monotonic() - started

    async def kubeconfig(self, name: str, port: int) -> Path:
        secret = await self.client.get(SECRETS, kubeconfig_secret_name(name), SYSTEM_NAMESPACE)
        path = self.folder / f"{name}.host.kubeconfig"
        return write_host_kubeconfig(path, base64.b64decode(secret["data"]["value"]), port)

    async def holders(self, machines: dict[str, MachineNamespace]) -> list[str]:
        vip = ipaddress.IPv4Interface(f"{VIP}/32")
        held = []
        for name, machine in machines.items():
            with contextlib.suppress(Exception):
                if vip in await machine.addresses():
                    held.append(name)
        return held


async def baseline(state: Path, count: int) -> float:
    """Seconds per bare machine: namespace, veth and DHCP lease (``MachineNamespace.ensure``)."""
    spec = FabricSpec.of("awb-br1", "10.234.0.0/24", "10.234.0.1", "10.234.0.100", "10.234.0.160")
    fabric = Fabric(state, spec)
    await fabric.ensure()
    try:
        started = time.monotonic()
        machines = [MachineNamespace(fabric, f"base-{i}") for i in range(count)]
        for machine in machines:
            await machine.ensure()
        elapsed = time.monotonic() - started
        for machine in machines:
            await machine.destroy()
    finally:
        await fabric.destroy()
    return elapsed / count


@contextlib.asynccontextmanager
async def plane(kubeconfig: Path, data: Path) -> AsyncIterator[Context]:
    manager_client = Client.from_kubeconfig(kubeconfig)
    manager = Manager(manager_client)
    ctx: Context
    clusters = ClusterCache(manager_client, dialer=provider_dialer(lambda: ctx))
    ctx = Context(client=manager_client, manager=manager, clusters=clusters, data_dir=data)
    data.mkdir(exist_ok=True)
    for controller in all_controllers(ctx):
        manager.add(controller)
    task = asyncio.create_task(manager.run())
    try:
        yield ctx
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await PROVIDER.close(ctx)
        await clusters.close()
        await manager.close()


async def run(options: argparse.Namespace, folder: Path) -> None:
    state = folder / "netns-state"
    state.mkdir()
    os.environ[STATE_ENV] = str(state)
    api, kubeconfig = start_api(folder / "api")
    try:
        per_machine = await baseline(state, options.baseline_machines)
        print(
            f"baseline: bare machine (namespace + veth + DHCP lease) {per_machine:.2f}s each, "
            f"over {options.baseline_machines}"
        )
        async with plane(kubeconfig, folder / "plane") as ctx:
            with contextlib.suppress(AlreadyExistsError):
                await ctx.client.create(NAMESPACES, {"metadata": {"name": SYSTEM_NAMESPACE}})
            bench = Bench(ctx, state, folder)

            small = await bench.create("b11", 1, 1)
            print(f"create 1+1: {small:.1f}s ({small / per_machine:.0f}x a bare machine)")
            print(f"delete 1+1: {await bench.delete('b11'):.1f}s")

            big = await bench.create("b32", 3, 2)
            verdict = "under" if big < 30 else "OVER"
            print(
                f"create 3+2: {big:.1f}s ({big / per_machine:.0f}x a bare machine; {verdict} the 30 s target)"
            )

            fabric = Fabric.load(state, BRIDGE)
            assert fabric is not None
            async with HostForwarder(fabric.namespace, f"{VIP}:6443", folder / "forwarder") as forwarder:
                host = await bench.kubeconfig("b32", forwarder.port)
                async with Client.from_kubeconfig(host) as api_client:
                    holders = await until(lambda: bench.holders(bench.control_planes("b32")))
                    holder = holders[0]
                    others = {n: m for n, m in bench.control_planes("b32").items() if n != holder}
                    killed = time.monotonic()
                    bench.control_planes("b32")[holder].kill_all()
                    moved_to = await until(lambda: bench.holders(others), interval=0.02)
                    moved = time.monotonic() - killed

                    async def answers() -> bool:
                        async with Client.from_kubeconfig(host) as fresh:
                            await asyncio.wait_for(fresh.list(NODES), PROBE_TIMEOUT)
                        return True

                    await until(answers, interval=0.05)
                    served = time.monotonic() - killed
                    verdict = "under" if moved < 5 else "OVER"
                    print(
                        f"VIP failover after kill -9 of {holder}: {moved:.2f}s to {moved_to[0] if moved_to else '?'}, "
                        f"API answering through the VIP after {served:.2f}s ({verdict} the 5 s target)"
                    )
                    await asyncio.wait_for(api_client.list(NODES), PROBE_TIMEOUT * 5)

                if options.upgrade:
                    # the killed machine is restarted by the machine controller first
                    admin = PROVIDER.etcd_admin(ctx)

                    async def whole() -> bool:
                        view = await admin.view(SYSTEM_NAMESPACE, "b32")
                        return len(view.healthy_voters) == 3 and view.leader is not None

                    await until(whole)
                    stop_event = asyncio.Event()
                    probe = asyncio.create_task(read_probe(host, stop_event))
                    started = time.monotonic()
                    await ctx.client.patch(
                        EKSA_CLUSTERS, "b32", {"spec": {"kubernetesVersion": "1.34"}}, NAMESPACE
                    )

                    async def upgraded() -> bool:
                        async with Client.from_kubeconfig(host) as fresh:
                            nodes = (await fresh.list(NODES))["items"]
                        return len(nodes) == 5 and all(
                            n["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.34")
                            and any(
                                c["type"] == "Ready" and c["status"] == "True"
                                for c in n["status"]["conditions"]
                            )
                            for n in nodes
                        )

                    done = await until(upgraded, timeout=options.upgrade_timeout, interval=0.5)
                    duration = time.monotonic() - started
                    stop_event.set()
                    seen = await probe
                    state_text = (
                        f"{duration:.1f}s" if done else f"NOT DONE within {options.upgrade_timeout:g}s"
                    )
                    print(
                        f"upgrade 1.33 -> 1.34 (3+2): {state_text}; probe at 10 Hz: {seen.requests} requests, "
                        f"{seen.retried} retried, {seen.failed} failed after one retry",
                        *seen.errors,
                        sep="\n  ",
                    )
            print(f"delete 3+2: {await bench.delete('b32'):.1f}s")
        await self_managed_through_the_cli(folder / "cli", per_machine)
    finally:
        scope = scope_id(state)
        await cleanup_all(state)
        left = await leaks(state, scope)
        stop_serve(api)
        if left:
            print("left behind (a bug):", *left, sep="\n  ")


async def self_managed_through_the_cli(folder: Path, per_machine: float) -> None:
    """`anywhere create cluster` of a self-managed 1+1 cluster (bootstrap plane, machines, move into
    the cluster, its own controllers leading, bootstrap plane stopped) and `anywhere delete cluster`
    (move back, delete, nothing left), as a user runs them."""
    folder.mkdir()
    spec = folder / "s11.yaml"
    spec.write_text(yaml.safe_dump_all(documents("s11", 1, 1, self_managed=True)))
    env = {k: v for k, v in os.environ.items() if k not in (STATE_ENV, "KUBECONFIG")}
    try:
        for verb, args in (("create", ["-f", spec.name]), ("delete", ["s11"])):
            started = time.monotonic()
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "anywhere", verb, "cluster", *args],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            took = time.monotonic() - started
            if result.returncode != 0:
                print(f"self-managed 1+1 through the CLI: {verb} FAILED: {result.stderr.strip()}")
                return
            print(
                f"self-managed 1+1 through the CLI: {verb} {took:.1f}s ({took / per_machine:.0f}x a bare machine)"
            )
    finally:
        await cleanup_all(folder / "s11" / "netns")


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/netns.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-machines", type=int, default=5)
    parser.add_argument("--no-upgrade", dest="upgrade", action="store_false")
    parser.add_argument("--upgrade-timeout", type=float, default=300.0)
    options = parser.parse_args()
    # the controllers' warnings (a VIP moving, an informer reconnecting) are expected here
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("error: the netns benchmark needs root (network namespaces)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="anywhere-bench-netns-") as folder:
        asyncio.run(run(options, Path(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
