"""The machine agents (``python -m anywhere.providers.netns.agent``) in real machines.

Everything is real: machines are network namespaces on a fabric with dnsmasq, the agents run
inside them as the machine controller starts them (ProcessTable: ``nsenter --net``), and the API is
a real ``anywhere serve`` (SQLite) running inside a machine of its own, on its DHCP address.

One difference from production: there, every control plane machine's VIP agent talks to its own
machine's API server (NODE_IP:6443; the servers share the cluster's etcd). Here all agents share the
one API server of the ``api`` machine, which is not a VIP candidate, so killing a leader never
takes the API down with it; what is tested is the VIP's movement, which is the same either way.

The test process reaches the API through the provider's forwarder (a loopback port of the host
that connects inside the fabric), and the VIP from a probe process inside the fabric's namespace
(where a client of the cluster's endpoint sits), which reports every change of who answers.
Failover and handover times are printed, not asserted (this machine's load varies); the target
for failover after ``kill -9`` is under 5 s.

The node agent's rules that need no network (adopting a Node, never registering a deleted one) are
also checked one step at a time against an API server on loopback, without root.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.controllers.resources import DAEMONSETS
from anywhere.providers.kubelet import KUBELET_NOT_READY_MESSAGE, NODE_LEASE_NAMESPACE, rfc3339
from anywhere.providers.netns._host import in_netns, pid_alive, wait_until
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.node import NodeAgent, NodeSettings, provider_id
from anywhere.providers.netns.preflight import check_vip
from anywhere.providers.netns.vip import DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE, VipTimings
from anywhere.runtime import (
    LEASES,
    NODES,
    APIError,
    Client,
    NotFoundError,
    TransportError,
    load_kubeconfig,
)
from tests.conftest import CILIUM, Server, start_server, stop_server
from tests.providers.netns.hardware import make_fabric, requires_root, state_dir

__all__ = ["state_dir"]

Obj = dict[str, Any]
AGENT = [sys.executable, "-m", "anywhere.providers.netns.agent"]
VIP = ipaddress.IPv4Address("10.231.0.50")  # in the test subnet, outside its DHCP range
PORT = 8080
API_PORT = 6443
# External processes (the API server starting, agents acting): bounds of polling, not expectations.
START_TIMEOUT = 60.0
SETTLE = 30.0

RESPONDER = """
import socket, sys
server = socket.create_server(("0.0.0.0", int(sys.argv[2])))
while True:
    connection, _ = server.accept()
    with connection:
        connection.sendall(sys.argv[1].encode() + b"\\n")
"""

# Connects to VIP:PORT over and over (a fresh connection each time, as a client after a failover
# does) and prints a JSON line whenever the answer changes: {"t": monotonic time, "name": machine
# or null when nothing answered}. CLOCK_MONOTONIC is the host's in every network namespace.
PROBE = """
import json, socket, sys, time
vip, port = sys.argv[1], int(sys.argv[2])
last = 0
while True:
    name = None
    try:
        with socket.create_connection((vip, port), timeout=0.25) as connection:
            connection.settimeout(0.25)
            name = connection.recv(100).decode().strip() or None
    except OSError:
        pass
    if name != last:
        print(json.dumps({"t": time.monotonic(), "name": name}), flush=True)
        last = name
    time.sleep(0.02)
"""


# -- the API ---------------------------------------------------------------------------------------------


@dataclass
class Api:
    """``anywhere serve`` inside machine ``machine``, on its DHCP address."""

    machine: MachineNamespace
    address: ipaddress.IPv4Address
    data_dir: Path
    kubeconfig: Path  # for agents inside the fabric: https://ADDRESS:6443
    connection: Client | None = None  # for the test, through the forwarder (once it runs)

    @property
    def client(self) -> Client:
        assert self.connection is not None
        return self.connection

    async def start(self) -> None:
        log = self.machine.processes.log_path("apiserver")
        offset = log.stat().st_size if log.exists() else 0
        await self.machine.processes.spawn(
            "apiserver",
            [
                sys.executable,
                "-m",
                "anywhere",
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "0.0.0.0",
                "--port",
                str(API_PORT),
                "--san",
                str(self.address),
            ],
        )

        def ready() -> bool:
            if not self.machine.processes.running("apiserver"):
                raise AssertionError(f"anywhere serve exited:\n{log.read_text()[offset:]}")
            return "ready at" in log.read_text()[offset:]

        assert await wait_until(ready, START_TIMEOUT), f"anywhere serve did not start:\n{log.read_text()}"

    async def stop(self) -> None:
        assert await self.machine.processes.stop("apiserver", grace=10)


def _forwarder(fabric: Fabric, target: str, port_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anywhere.providers.netns.forwarder",
            "--netns",
            fabric.namespace,
            "--target",
            target,
            "--port-file",
            str(port_file),
        ]
    )


def _with_server(kubeconfig: Path, server: str, target: Path) -> Path:
    document = yaml.safe_load(kubeconfig.read_text())
    for cluster in document["clusters"]:
        cluster["cluster"]["server"] = server
    target.write_text(yaml.safe_dump(document))
    target.chmod(0o600)
    return target


@contextlib.asynccontextmanager
async def running_api(fabric: Fabric, machine: MachineNamespace, tmp_path: Path) -> AsyncIterator[Api]:
    lease = await machine.ensure()
    data_dir = tmp_path / "api-data"
    port_file = tmp_path / "forwarder.port"
    forwarder = _forwarder(fabric, f"{lease.address}:{API_PORT}", port_file)
    client: Client | None = None
    try:
        api = Api(machine, lease.address, data_dir, tmp_path / "agent.kubeconfig")
        await api.start()
        admin = data_dir / "admin.kubeconfig"
        _with_server(admin, f"https://{lease.address}:{API_PORT}", api.kubeconfig)
        assert await wait_until(lambda: port_file.exists() and port_file.read_text().strip() != "", 10)
        host_config = _with_server(
            admin, f"https://127.0.0.1:{port_file.read_text().strip()}", tmp_path / "host.kubeconfig"
        )
        client = api.connection = Client(load_kubeconfig(host_config), timeout=5)
        yield api
    finally:
        if client is not None:
            await client.close()
        forwarder.terminate()
        forwarder.wait(10)


async def eventually(
    client: Client, probe: Callable[[Client], Any], what: str, timeout: float = SETTLE
) -> Any:
    """Poll the API until ``probe`` returns something truthy (API errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = await probe(client)
            if result:
                return result
            last = result
        except (APIError, TransportError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g}s; last: {last!r}")
        await asyncio.sleep(0.1)


# -- the VIP agent ---------------------------------------------------------------------------------------


class Probe:
    """The client in the fabric: who answers on VIP:PORT, as a stream of changes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.current: str | None = None

    @classmethod
    async def start(cls, fabric: Fabric) -> Probe:
        process = await asyncio.create_subprocess_exec(
            *in_netns(fabric.namespace, [sys.executable, "-c", PROBE, str(VIP), str(PORT)]),
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        return cls(process)

    async def next_change(self, timeout: float = SETTLE) -> tuple[float, str | None]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert line, "the probe exited"
        event = json.loads(line)
        self.current = event["name"]
        return float(event["t"]), event["name"]

    async def answered_by(self, accept: Callable[[str], bool], timeout: float = SETTLE) -> tuple[float, str]:
        """Wait until a machine that ``accept`` names answers; its time and name."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no accepted answer within {timeout:g}s (last: {self.current})"
            moment, name = await self.next_change(remaining)
            if name is not None and accept(name):
                return moment, name

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


async def _holders(machines: list[MachineNamespace]) -> list[str]:
    vip = ipaddress.IPv4Interface(f"{VIP}/32")
    return [m.name for m in machines if vip in await m.addresses()]


async def _lease_holder(client: Client) -> str:
    lease = await client.get(LEASES, DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE)
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


@requires_root
async def test_the_vip_follows_the_leader_and_fails_over(state_dir: Path, tmp_path: Path) -> None:
    fabric = await make_fabric(state_dir)
    # Nothing answers for the VIP yet (the provider's preflight, on the wire).
    await check_vip(fabric, str(VIP))
    cps = [MachineNamespace(fabric, f"cp-{i}") for i in range(3)]
    await asyncio.gather(*(m.ensure() for m in cps))
    async with running_api(fabric, MachineNamespace(fabric, "api"), tmp_path) as api:
        for machine in cps:
            await machine.processes.spawn(
                "responder", [sys.executable, "-c", RESPONDER, machine.name, str(PORT)]
            )
            await machine.processes.spawn(
                "vip-agent",
                [
                    *AGENT,
                    "vip",
                    "--kubeconfig",
                    str(api.kubeconfig),
                    "--vip",
                    str(VIP),
                    "--identity",
                    machine.name,
                ],
            )
        probe = await Probe.start(fabric)
        try:
            # A client reaches the VIP and finds the leader behind it; only the leader holds it.
            _, first = await probe.answered_by(lambda name: True)
            assert await _lease_holder(api.client) == first
            assert await _holders(cps) == [first]

            # kill -9 of everything on the leader but its DHCP client: agent and responder die
            # without a word; the VIP stays on its eth0 until the kernel's lifetime for it ends.
            leader = next(m for m in cps if m.name == first)
            killed_at = time.monotonic()
            assert leader.kill_all()
            moved_at, second = await probe.answered_by(lambda name: name != first)
            print(
                f"\nVIP failover after kill -9 of the leader: {moved_at - killed_at:.2f}s ({first} -> {second})"
            )
            assert await _lease_holder(api.client) == second
            # The killed leader's address lapsed by itself: exactly one machine holds the VIP.
            lifetime = VipTimings().address_lifetime
            gone = await _poll_async(
                lambda: _holders(cps), lambda holders: first not in holders, lifetime + 5
            )
            assert gone == [second]

            # SIGTERM of the new leader: it removes the VIP and releases the Lease before it exits,
            # and the last candidate takes over at its next attempt.
            new_leader = next(m for m in cps if m.name == second)
            stopping_at = time.monotonic()
            assert await new_leader.processes.stop("vip-agent", grace=10)
            assert second not in await _holders(cps)  # removed before the agent exited
            assert await _lease_holder(api.client) != second
            third = next(m.name for m in cps if m.name not in (first, second))
            handed_at, name = await probe.answered_by(lambda name: name == third)
            print(
                f"VIP handover after SIGTERM of the leader: {handed_at - stopping_at:.2f}s ({second} -> {name})"
            )
            assert await _holders(cps) == [third]
            assert await _lease_holder(api.client) == third
            log = Path(new_leader.processes.log_path("vip-agent")).read_text()
            assert "released the lease" in log
            assert "Traceback" not in log

            # The API fails (in production: the leader's own API server): the leader cannot renew,
            # so it removes the VIP within its renew deadline rather than hold it unconfirmed; when
            # the API is back, a candidate takes the Lease and the VIP again.
            await api.stop()
            timings = VipTimings()
            assert (
                await _poll_async(
                    lambda: _holders(cps), lambda holders: not holders, timings.lease_duration + 5
                )
                == []
            )
            await api.start()
            await probe.answered_by(lambda name: name == third)
            assert await _holders(cps) == [third]
        finally:
            await probe.stop()


async def _poll_async(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    """Poll an async reading of the kernel's state until ``done`` holds (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"still {value!r} after {timeout:g}s"
        await asyncio.sleep(0.05)


# -- the node agent --------------------------------------------------------------------------------------


def _condition(node: Obj, type_: str) -> Obj:
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


@requires_root
async def test_the_node_agent_registers_waits_for_the_cni_and_survives_an_api_restart(
    state_dir: Path, tmp_path: Path
) -> None:
    fabric = await make_fabric(state_dir)
    cp, worker = MachineNamespace(fabric, "demo-cp-0"), MachineNamespace(fabric, "demo-md-0")
    leases = dict(zip(("cp", "worker"), await asyncio.gather(cp.ensure(), worker.ensure()), strict=True))
    async with running_api(fabric, MachineNamespace(fabric, "api"), tmp_path) as api:
        for role, machine in (("cp", cp), ("worker", worker)):
            await machine.processes.spawn(
                "node-agent",
                [
                    *AGENT,
                    "node",
                    "--kubeconfig",
                    str(api.kubeconfig),
                    "--node-name",
                    machine.name,
                    "--node-ip",
                    str(leases[role].address),
                    "--kubelet-version",
                    "v1.33.1",
                    "--cluster",
                    "demo",
                    "--machine",
                    f"{machine.name}-m",
                    # A short heartbeat keeps this test short; the default is the kubelet's 10 s.
                    "--heartbeat-period",
                    "1",
                    *(["--control-plane"] if role == "cp" else []),
                ],
            )

        async def registered(client: Client) -> list[Obj] | None:
            nodes = [await client.get(NODES, m.name) for m in (cp, worker)]
            return nodes if all(_condition(n, "Ready") for n in nodes) else None

        nodes = await eventually(api.client, registered, "both nodes registered with conditions")
        for node, (role, machine) in zip(nodes, (("cp", cp), ("worker", worker)), strict=True):
            meta, status = node["metadata"], node["status"]
            assert status["addresses"] == [
                {"type": "InternalIP", "address": str(leases[role].address)},
                {"type": "Hostname", "address": machine.name},
            ]
            assert fabric.spec.in_range(leases[role].address)
            assert status["nodeInfo"]["kubeletVersion"] == "v1.33.1"
            assert node["spec"]["providerID"] == f"netns://default/demo/{machine.name}"
            assert meta["labels"]["kubernetes.io/hostname"] == machine.name
            assert ("node-role.kubernetes.io/control-plane" in meta["labels"]) == (role == "cp")
            assert meta["annotations"]["cluster.x-k8s.io/machine"] == f"{machine.name}-m"
            assert meta["annotations"]["cluster.x-k8s.io/cluster-name"] == "demo"
            assert meta["annotations"]["cluster.x-k8s.io/cluster-namespace"] == "default"
            ready = _condition(node, "Ready")
            assert (ready["status"], ready["message"]) == ("False", KUBELET_NOT_READY_MESSAGE)

        # The CNI arrives: the nodes become Ready.
        await api.client.create(DAEMONSETS, CILIUM)

        async def all_ready(client: Client) -> bool:
            nodes = [await client.get(NODES, m.name) for m in (cp, worker)]
            return all(_condition(node, "Ready").get("status") == "True" for node in nodes)

        await eventually(api.client, all_ready, "both nodes Ready after the CNI")

        # The node Lease is renewed.
        async def renew_time(client: Client) -> str:
            lease = await client.get(LEASES, cp.name, NODE_LEASE_NAMESPACE)
            assert lease["metadata"]["ownerReferences"][0]["name"] == cp.name
            return str(lease["spec"]["renewTime"])

        first = await eventually(api.client, renew_time, "the node lease exists")
        await eventually(api.client, lambda c: _later(renew_time(c), first), "the node lease renewed")

        # The API goes away and comes back: the agents keep running and heartbeat again.
        agents = {m.name: m.processes.get("node-agent") for m in (cp, worker)}
        await api.stop()
        log = Path(cp.processes.log_path("node-agent"))
        assert await wait_until(lambda: "does not answer" in log.read_text(), SETTLE), log.read_text()
        await api.start()
        restart = rfc3339(time.time(), micro=True)
        await eventually(
            api.client, lambda c: _later(renew_time(c), restart), "the node lease renewed after the restart"
        )
        for machine in (cp, worker):
            record = agents[machine.name]
            assert record is not None
            assert pid_alive(record.pid, record.start_ticks), f"the node agent of {machine.name} exited"
        assert await wait_until(lambda: "answers again" in log.read_text(), SETTLE), log.read_text()
        assert "Traceback" not in log.read_text()
        assert (await eventually(api.client, all_ready, "still Ready after the restart")) is True

        # SIGTERM stops an agent cleanly.
        assert await cp.processes.stop("node-agent", grace=10)
        assert "node agent stopped" in log.read_text()


async def _later(reading: Any, before: str) -> bool:
    return str(await reading) > before


# -- the node agent's rules, one step at a time (no namespaces: an API server on loopback) -----------------


@pytest.fixture
def local_api(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "local-api")
    try:
        yield server
    finally:
        stop_server(server)


async def test_the_node_agent_adopts_an_existing_node_and_never_registers_a_deleted_one(
    local_api: Server,
) -> None:
    async with Client(load_kubeconfig(local_api.kubeconfig)) as client:
        await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-0"}})
        settings = NodeSettings(
            name="cp-0",
            address=ipaddress.IPv4Address("10.1.2.3"),
            kubelet_version="v1.34.0",
            cluster="demo",
            cluster_namespace="eksa-system",
            control_plane=True,
        )
        agent = NodeAgent(client, settings)

        delay = await agent.step()
        node = await client.get(NODES, "cp-0")
        assert agent.registered
        assert node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
        assert node["metadata"]["annotations"]["cluster.x-k8s.io/machine"] == "cp-0"
        assert node["metadata"]["annotations"]["cluster.x-k8s.io/cluster-namespace"] == "eksa-system"
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.34.0"
        assert _condition(node, "Ready")["message"] == KUBELET_NOT_READY_MESSAGE
        assert 0 < delay <= settings.heartbeat_period  # not Ready: it looks for the CNI again soon
        lease = await client.get(LEASES, "cp-0", NODE_LEASE_NAMESPACE)
        assert lease["spec"]["holderIdentity"] == "cp-0"

        await client.create(DAEMONSETS, CILIUM)
        await agent.step()
        node = await client.get(NODES, "cp-0")
        assert _condition(node, "Ready")["status"] == "True"
        assert agent.ready

        # Cluster API deletes the Node of a machine it is removing: the agent does not bring it back.
        await client.delete(NODES, "cp-0")
        assert await agent.step() == settings.heartbeat_period
        with pytest.raises(NotFoundError):
            await client.get(NODES, "cp-0")
        assert (
            settings.node_provider_id
            == provider_id("eksa-system", "demo", "cp-0")
            == ("netns://eksa-system/demo/cp-0")
        )


# -- bad input ---------------------------------------------------------------------------------------------


NODE_ARGS = ["--node-name", "n", "--node-ip", "10.0.0.1", "--kubelet-version", "v1.33.1", "--cluster", "demo"]


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=60, check=False)


def test_an_unreadable_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.kubeconfig"
    result = _agent(
        "node",
        "--kubeconfig",
        str(missing),
        "--node-name",
        "n",
        "--node-ip",
        "10.0.0.1",
        "--kubelet-version",
        "v1.33.1",
        "--cluster",
        "demo",
    )
    assert result.returncode == 2
    assert f"error: kubeconfig {missing}: cannot read" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["node", "--node-ip", "10.0.0.300"], "is not an IPv4 address"),
        (["node", "--kubelet-version", "1.33"], "kubelet version '1.33' is not like v1.33.1"),
        (["vip", "--renew-deadline", "3"], "lease duration > renew deadline"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    command, *rest = args
    base = {
        "node": {
            "--kubeconfig": str(tmp_path / "k"),
            "--node-name": "n",
            "--node-ip": "10.0.0.1",
            "--kubelet-version": "v1.33.1",
            "--cluster": "demo",
        },
        "vip": {"--kubeconfig": str(tmp_path / "k"), "--vip": "10.0.0.9", "--identity": "cp-0"},
    }[command]
    options = {**base, **dict(zip(rest[::2], rest[1::2], strict=True))}
    result = _agent(command, *[part for pair in options.items() for part in pair])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_before_the_api_answers_stops_the_node_agent(tmp_path: Path) -> None:
    """An agent whose API never answered still stops at once, cleanly, on SIGTERM."""
    kubeconfig = tmp_path / "k"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    process = subprocess.Popen(
        [*AGENT, "node", "--kubeconfig", str(kubeconfig), *NODE_ARGS],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # the agent says when it tried and failed: then stop it
            if "does not answer" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
