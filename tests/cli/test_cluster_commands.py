"""`anywhere create/upgrade/delete cluster`, `upgrade plan cluster` and `get clusters`, run for real.

The CLI runs as `python -m anywhere ...` subprocesses (commands that wait) or in-process through
typer's CliRunner (one-shot commands), against real `anywhere serve` processes: self-managed
clusters get their management plane started by the CLI itself, workload clusters go through a
plain `anywhere serve` standing in for a management cluster.

The lifecycle controllers are NOT run here: self-managed planes start as bare API servers
(ANYWHERE_PLANE_CONTROLLERS=0), and a small "status writer" in each test plays the controllers'
part, writing the anywhere Cluster's conditions / observedGeneration / failureMessage, the Machines
and the workload kubeconfig Secret that the CLI watches for. The CLI's logic does not depend on who
writes that status; end-to-end tests with the real controllers are the lead's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from anywhere.api import dump_config, load_text
from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, MACHINE_DEPLOYMENT_NAME_LABEL
from anywhere.api.defaults import default_config
from anywhere.api.generate import generate_config
from anywhere.api.v1alpha1.cluster import ManagementCluster
from anywhere.cli import cluster as commands
from anywhere.cli import plane as planes
from anywhere.cli.main import app
from anywhere.controllers.resources import EKSA_CLUSTERS, MACHINES, NAMESPACES, SECRETS, SYSTEM_NAMESPACE
from anywhere.runtime import AlreadyExistsError, Client, ConflictError, NotFoundError, Resource
from tests.conftest import Server, start_server, stop_server

Obj = dict[str, Any]
PATIENCE = 60.0  # a safety net for awaiting what must happen, never a measure of speed
runner = CliRunner()


# ---- helpers ---------------------------------------------------------------------------------------


def sim_yaml(
    name: str,
    *,
    version: str = "1.33",
    control_plane: int = 3,
    workers: int = 2,
    subnet: str = "10.10.0",
    management: str | None = None,
    boot_delay: str = "2s",
) -> str:
    config = generate_config(name, "sim", version)
    spec = config.cluster.spec
    assert spec.control_plane_configuration is not None
    assert spec.worker_node_group_configurations
    spec.control_plane_configuration.count = control_plane
    spec.worker_node_group_configurations[0].count = workers
    if management is not None:
        spec.management_cluster = ManagementCluster(name=management)
    return dump_config(config).replace("10.10.0", subnet).replace("bootDelay: 2s", f"bootDelay: {boot_delay}")


def cli_env() -> dict[str, str]:
    env = {**os.environ, planes.CONTROLLERS_ENV: "0"}
    env.pop("KUBECONFIG", None)
    return env


def invoke(*args: str) -> tuple[int, str]:
    """The CLI in-process; never a traceback."""
    result = runner.invoke(app, list(args), env={planes.CONTROLLERS_ENV: "0", "KUBECONFIG": ""})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CliProcess:
    """`python -m anywhere ARGS` as a subprocess whose output lines can be awaited as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.eof = False
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, cwd: Path) -> CliProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "anywhere",
            *args,
            cwd=cwd,
            env=cli_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # A test run started in the background (`cmd &` in a script) ignores SIGINT, and a child
            # inherits that: the CLI must get Ctrl-C as a terminal would deliver it.
            preexec_fn=_default_sigint,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._new.set()
        self.eof = True
        self._new.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def expect(self, pattern: str) -> re.Match[str]:
        """The first output line matching ``pattern`` (waiting for it to be printed)."""

        async def wait() -> re.Match[str]:
            index = 0
            while True:
                self._new.clear()
                while index < len(self.lines):
                    match = re.search(pattern, self.lines[index])
                    index += 1
                    if match:
                        return match
                if self.eof:
                    raise AssertionError(f"the output ended without {pattern!r}:\n{self.output}")
                await self._new.wait()

        return await asyncio.wait_for(wait(), PATIENCE)

    async def finish(self) -> int:
        code = await asyncio.wait_for(self.process.wait(), PATIENCE)
        await self._reader
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()


async def wait_for_object(client: Client, resource: Resource, name: str, namespace: str) -> Obj:
    """The object once it exists, waiting on a watch."""

    async def wait() -> Obj:
        while True:
            listing = await client.list(resource, namespace, field_selector=f"metadata.name={name}")
            if listing.get("items"):
                return dict(listing["items"][0])
            version = listing["metadata"]["resourceVersion"]
            async with client.watch(
                resource,
                namespace,
                resource_version=version,
                field_selector=f"metadata.name={name}",
                timeout_seconds=30,
            ) as events:
                async for event in events:
                    if event.type in ("ADDED", "MODIFIED"):
                        return dict(event.object)

    return await asyncio.wait_for(wait(), PATIENCE)


async def wait_until(client: Client, resource: Resource, name: str, namespace: str, check: Any) -> Obj:
    """The object once ``check(obj)`` holds, waiting on a watch."""

    async def wait() -> Obj:
        while True:
            obj = await client.get(resource, name, namespace)
            if check(obj):
                return obj
            async with client.watch(
                resource,
                namespace,
                resource_version=obj["metadata"]["resourceVersion"],
                field_selector=f"metadata.name={name}",
                timeout_seconds=30,
            ) as events:
                async for _ in events:
                    break

    return await asyncio.wait_for(wait(), PATIENCE)


def condition(kind: str, message: str = "") -> Obj:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not message:
        return {"type": kind, "status": "True", "lastTransitionTime": now}
    return {
        "type": kind,
        "status": "False",
        "reason": "Waiting",
        "message": message,
        "lastTransitionTime": now,
    }


async def set_status(client: Client, name: str, namespace: str, status: Obj) -> None:
    while True:
        obj = await client.get(EKSA_CLUSTERS, name, namespace)
        try:
            await client.update_status(EKSA_CLUSTERS, {**obj, "status": status})
            return
        except ConflictError:
            continue


async def ensure_namespace(client: Client, name: str) -> None:
    with contextlib.suppress(AlreadyExistsError):
        await client.create(NAMESPACES, {"metadata": {"name": name}})


async def add_machine(client: Client, cluster: str, machine: str, *, group: str | None, version: str) -> None:
    labels = {CLUSTER_NAME_LABEL: cluster}
    if group is None:
        labels[CONTROL_PLANE_LABEL] = ""
    else:
        labels[MACHINE_DEPLOYMENT_NAME_LABEL] = f"{cluster}-{group}"
    created = await client.create(
        MACHINES,
        {
            "apiVersion": "cluster.x-k8s.io/v1beta1",
            "kind": "Machine",
            "metadata": {"name": machine, "namespace": SYSTEM_NAMESPACE, "labels": labels},
            "spec": {"clusterName": cluster, "version": version, "bootstrap": {"dataSecretName": machine}},
        },
    )
    await client.update_status(
        MACHINES, {**created, "status": {"phase": "Running", "conditions": [condition("Ready")]}}
    )


async def play_controllers(
    kubeconfig: Path,
    name: str,
    *,
    cli: CliProcess | None = None,
    control_plane: int = 3,
    workers: int = 2,
    failure: str | None = None,
    kubeconfig_secret: bytes | None = None,
) -> None:
    """The status writer: what the lifecycle controllers (not run in these tests) would report for
    a new cluster: first control plane machine up, then (once the CLI has shown that, when ``cli``
    is given) every machine, the kubeconfig Secret and all conditions True at the new generation."""
    async with Client.from_kubeconfig(kubeconfig) as client:
        await ensure_namespace(client, SYSTEM_NAMESPACE)
        cluster = await wait_for_object(client, EKSA_CLUSTERS, name, "default")
        if failure is not None:
            await set_status(
                client,
                name,
                "default",
                {
                    "failureReason": "InvalidConfig",
                    "failureMessage": failure,
                    "conditions": [condition("Ready", failure)],
                    # a verdict on this generation, as the cluster controller gives it
                    "observedGeneration": cluster["metadata"]["generation"],
                },
            )
            return
        scaling = f"Scaling up control plane nodes, {control_plane} expected (1 actual)"
        await add_machine(client, name, f"{name}-cp-0", group=None, version="v1.33.0")
        await set_status(
            client,
            name,
            "default",
            {
                "conditions": [
                    condition("Ready", scaling),
                    condition("ControlPlaneInitialized"),
                    condition("ControlPlaneReady", scaling),
                    condition("DefaultCNIConfigured"),
                    condition("WorkersReady", f"Scaling up worker nodes, {workers} expected (0 actual)"),
                ]
            },
        )
        if cli is not None:
            await cli.expect(re.escape(f"ControlPlaneReady: False - {scaling}"))
        for index in range(1, control_plane):
            await add_machine(client, name, f"{name}-cp-{index}", group=None, version="v1.33.0")
        for index in range(workers):
            await add_machine(client, name, f"{name}-md-0-{index}", group="md-0", version="v1.33.0")
        if kubeconfig_secret is not None:
            await client.create(
                SECRETS,
                {
                    "metadata": {"name": f"{name}-kubeconfig", "namespace": SYSTEM_NAMESPACE},
                    "data": {"value": base64.b64encode(kubeconfig_secret).decode()},
                },
            )
        await set_status(
            client,
            name,
            "default",
            {
                "observedGeneration": cluster["metadata"]["generation"],
                "conditions": [
                    condition(kind)
                    for kind in (
                        "Ready",
                        "ControlPlaneInitialized",
                        "ControlPlaneReady",
                        "DefaultCNIConfigured",
                        "WorkersReady",
                    )
                ],
            },
        )


# ---- bad input: nothing is created -------------------------------------------------------------------


def test_create_with_an_invalid_file_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.yaml").write_text(sim_yaml("bad", control_plane=2))
    code, output = invoke("create", "cluster", "-f", "bad.yaml")
    assert code == 1
    assert "control plane node count cannot be an even number (2)" in output
    assert output.strip().splitlines()[-1] == "error: bad.yaml: 1 validation error(s); fix them and run again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "missing.yaml"], "missing.yaml: file not found; check the path"),
        (
            ["-f", "ok.yaml", "--control-plane-wait-timeout", "5x"],
            "--control-plane-wait-timeout: '5x' is not a duration",
        ),
        (
            ["-f", "ok.yaml", "--per-machine-wait-timeout", "0s"],
            "--per-machine-wait-timeout 0s: must be longer than 0",
        ),
        (["-f", "ok.yaml", "--kubeconfig", "nowhere.kubeconfig"], "kubeconfig nowhere.kubeconfig not found"),
    ],
)
def test_bad_arguments_are_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.yaml").write_text(sim_yaml("ok"))
    code, output = invoke("create", "cluster", *args)
    assert code == 1, output
    assert message in output
    assert len(output.strip().splitlines()) == 1
    assert not (tmp_path / "ok").exists()


def test_commands_without_a_cluster_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.yaml").write_text(sim_yaml("ok"))
    code, output = invoke("upgrade", "cluster", "-f", "ok.yaml")
    assert code == 1
    assert "no ok/.anywhere in" in output
    assert "pass --kubeconfig" in output
    code, output = invoke("delete", "cluster")
    assert code == 1
    assert "please provide either a valid <cluster-name> or -f <config-file>" in output
    code, output = invoke("delete", "cluster", "ok")
    assert code == 1
    assert "no ok/.anywhere" in output
    code, output = invoke("get", "clusters")
    assert code == 1
    assert "pass --kubeconfig" in output


# ---- a self-managed cluster: create, get, plan, upgrade refused, resume, delete ------------------------


@dataclass
class SelfManaged:
    root: Path
    output: str
    code: int

    @property
    def folder(self) -> Path:
        return self.root / "demo"

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "demo-eks-a-cluster.kubeconfig"

    @property
    def state(self) -> planes.PlaneDir:
        return planes.PlaneDir.of(self.folder)


async def _create_self_managed(root: Path) -> SelfManaged:
    (root / "demo.yaml").write_text(sim_yaml("demo"))
    cli = await CliProcess.start("create", "cluster", "-f", "demo.yaml", cwd=root)
    writer: asyncio.Task[None] | None = None
    try:
        await cli.expect(r"^Management plane ready at https://")
        writer = asyncio.create_task(
            play_controllers(root / "demo" / planes.STATE_DIR / "admin.kubeconfig", "demo", cli=cli)
        )
        code = await cli.finish()
        await asyncio.wait_for(writer, PATIENCE)
    finally:
        if writer is not None and not writer.done():
            writer.cancel()
        await cli.kill()
    return SelfManaged(root, cli.output, code)


@pytest.fixture(scope="module")
def self_managed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SelfManaged]:
    """One self-managed cluster `demo`, created by the CLI in a fresh folder; its plane is stopped
    at the end whatever the tests did."""
    root = tmp_path_factory.mktemp("self-managed")
    created = asyncio.run(_create_self_managed(root))
    yield created
    with contextlib.suppress(Exception):
        planes.stop(created.state)


def test_create_shows_progress_and_writes_the_files(self_managed: SelfManaged) -> None:
    output = self_managed.output
    assert self_managed.code == 0, output
    assert "Creating self-managed cluster demo (management plane state in demo/.anywhere)" in output
    assert re.search(r"Applied 4 object\(s\) from demo.yaml \(generation 1\)", output)
    assert re.search(
        r"^\[\d\d:\d\d\] ControlPlaneReady: False - Scaling up control plane nodes, 3 expected \(1 actual\)$",
        output,
        re.M,
    )
    assert re.search(
        r"^\[\d\d:\d\d\] Machines: control plane 3/3 ready, workers 2/2 ready \(5 Running\)$", output, re.M
    )
    assert re.search(r"^\[\d\d:\d\d\] Ready: True$", output, re.M)
    assert "Cluster demo is ready" in output
    assert "Kubeconfig: demo/demo-eks-a-cluster.kubeconfig" in output
    # The self-managed cluster's API is its management plane's: the kubeconfig is the plane's.
    state = self_managed.state
    assert self_managed.kubeconfig.read_bytes() == state.kubeconfig.read_bytes()
    assert self_managed.kubeconfig.stat().st_mode & 0o077 == 0
    applied = load_text((self_managed.folder / "demo-eks-a-cluster.yaml").read_text())
    assert applied.config.cluster.name == "demo"
    assert [o.kind for o in applied.config.all_objects()] == [
        "Cluster",
        "SimDatacenterConfig",
        "SimMachineConfig",
        "SimMachineConfig",
    ]
    pid = planes.running_pid(state)
    assert pid is not None
    assert int(state.pid_file.read_text()) == pid
    assert state.log.read_text().count("anywhere API server ready at") == 1


def test_get_clusters_table(self_managed: SelfManaged, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(self_managed.root)
    code, output = invoke("get", "clusters", "--kubeconfig", str(self_managed.kubeconfig))
    assert code == 0, output
    header, row = output.strip().splitlines()
    assert header.split() == ["NAME", "KUBERNETES", "VERSION", "CONTROL", "PLANE", "WORKERS", "STATUS", "AGE"]
    assert row.split()[:5] == ["demo", "1.33", "3/3", "2/2", "Ready"]
    # Without --kubeconfig: the one cluster folder here.
    code, again = invoke("get", "clusters")
    assert code == 0
    assert again.splitlines()[1].split()[:5] == row.split()[:5]


def test_upgrade_plan_lists_changes_and_rolls(
    self_managed: SelfManaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(self_managed.root)
    text = sim_yaml("demo", version="1.34", workers=4).replace("bootDelay: 2s", "bootDelay: 5s", 1)
    (self_managed.root / "next.yaml").write_text(text)
    code, output = invoke("upgrade", "plan", "cluster", "-f", "next.yaml")
    assert code == 0, output
    rows = [line.split("   ") for line in output.splitlines()]
    cells = [[c.strip() for c in row if c.strip()] for row in rows]
    assert ["Kubernetes version", "1.33", "1.34"] in cells
    assert ["Worker group md-0 machines", "2", "4"] in cells
    control_plane = next(line for line in output.splitlines() if line.startswith("control plane"))
    assert "roll: Kubernetes 1.33 -> 1.34; machine config SimMachineConfig/demo-cp changed" in control_plane
    md0 = next(line for line in output.splitlines() if line.startswith("md-0"))
    assert "2 -> 4" in md0
    assert "scale up 2 -> 4" in md0
    assert "roll: Kubernetes 1.33 -> 1.34" in md0
    # Nothing was applied.
    code, table = invoke("get", "clusters", "--kubeconfig", str(self_managed.kubeconfig))
    assert table.splitlines()[1].split()[1] == "1.33"


def test_upgrade_refuses_two_minor_versions(
    self_managed: SelfManaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(self_managed.root)
    (self_managed.root / "skip.yaml").write_text(sim_yaml("demo", version="1.35"))
    for command in (["upgrade", "cluster"], ["upgrade", "plan", "cluster"]):
        code, output = invoke(*command, "-f", "skip.yaml")
        assert code == 1, output
        assert (
            "spec.kubernetesVersion: only +1 minor version skew is supported, minor version skew detected 2 "
            "(1.33 -> 1.35); upgrade to 1.34 first" in output
        )
        assert (
            output.strip().splitlines()[-1] == "error: skip.yaml: 1 update error(s); fix them and run again"
        )


def test_create_again_resumes_and_restarts_the_plane(
    self_managed: SelfManaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(self_managed.root)
    stopped = planes.stop(self_managed.state)
    assert stopped is not None
    assert planes.running_pid(self_managed.state) is None
    code, output = invoke("create", "cluster", "-f", "demo.yaml")
    assert code == 0, output
    assert "Resuming the creation of cluster demo: demo/.anywhere exists from an earlier run" in output
    assert "Starting the management plane of demo" in output
    assert "No changes to apply: demo.yaml matches cluster demo; waiting until it is ready" in output
    assert "Cluster demo is ready" in output
    assert planes.running_pid(self_managed.state) not in (None, stopped)
    assert self_managed.kubeconfig.read_bytes() == self_managed.state.kubeconfig.read_bytes()


def test_delete_stops_the_plane_and_removes_the_folder(
    self_managed: SelfManaged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(self_managed.root)
    pid = planes.running_pid(self_managed.state)
    assert pid is not None
    code, output = invoke("delete", "cluster", "demo")
    assert code == 0, output
    assert "Deleted SimDatacenterConfig/demo" in output
    assert f"Stopped the management plane (pid {pid})" in output
    assert "Cluster demo deleted" in output
    assert not self_managed.folder.exists()
    assert not planes._alive(pid)


# ---- Ctrl-C while waiting -------------------------------------------------------------------------------


async def test_ctrl_c_leaves_the_cluster_reconciling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slow.yaml").write_text(sim_yaml("slow", subnet="10.20.0"))
    cli = await CliProcess.start("create", "cluster", "-f", "slow.yaml", cwd=tmp_path)
    state = planes.PlaneDir.of(tmp_path / "slow")
    try:
        await cli.expect(r"Applied 4 object\(s\)")
        await cli.expect(r"^\[\d\d:\d\d\] Machines: ")  # it is waiting now
        cli.process.send_signal(signal.SIGINT)
        code = await cli.finish()
    finally:
        await cli.kill()
    assert code == 130, cli.output
    pid = planes.running_pid(state)
    assert pid is not None, "the management plane must keep running"
    assert (
        f"Interrupted: nothing was undone; cluster slow keeps reconciling in the background (its management "
        f"plane runs on: pid {pid}, log slow/.anywhere/plane.log)." in cli.output
    )
    assert (
        "Watch it with: kubectl --kubeconfig slow/slow-eks-a-cluster.kubeconfig get "
        "clusters.anywhere.eks.amazonaws.com slow -w" in cli.output
    )
    assert "or: anywhere get clusters --kubeconfig slow/slow-eks-a-cluster.kubeconfig" in cli.output
    assert "Run `anywhere create cluster -f slow.yaml` again to wait for it." in cli.output
    assert "Traceback" not in cli.output
    # A cluster that never got ready deletes the same way (no controllers here: no finalizer).
    monkeypatch.chdir(tmp_path)
    code, output = await asyncio.to_thread(invoke, "delete", "cluster", "slow")
    assert code == 0, output
    assert not (tmp_path / "slow").exists()


# ---- workload clusters through a management cluster ------------------------------------------------------


@pytest.fixture(scope="module")
def management(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A plain `anywhere serve` standing for a management cluster, holding the self-managed
    Cluster `mgmt` (as a management plane's API does)."""
    server = start_server(tmp_path_factory.mktemp("management"))

    async def seed() -> None:
        config = load_text(sim_yaml("mgmt", subnet="10.40.0")).config
        default_config(config)
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await ensure_namespace(client, SYSTEM_NAMESPACE)
            await commands.apply_manifest(client, commands.manifest(config), "default")

    asyncio.run(seed())
    yield server
    stop_server(server)


async def test_workload_cluster_create_get_refuse_and_delete(
    management: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w1.yaml").write_text(sim_yaml("w1", subnet="10.41.0", control_plane=1, workers=1))
    secret = b"apiVersion: v1\nkind: Config\n# the workload cluster's kubeconfig\n"
    cli = await CliProcess.start(
        "create", "cluster", "-f", "w1.yaml", "--kubeconfig", str(management.kubeconfig), cwd=tmp_path
    )
    try:
        writer = asyncio.create_task(
            play_controllers(
                management.kubeconfig, "w1", cli=cli, control_plane=1, workers=1, kubeconfig_secret=secret
            )
        )
        code = await cli.finish()
        await asyncio.wait_for(writer, PATIENCE)
    finally:
        await cli.kill()
    assert code == 0, cli.output
    assert "Creating workload cluster w1 through management cluster mgmt" in cli.output
    assert (tmp_path / "w1" / "w1-eks-a-cluster.kubeconfig").read_bytes() == secret
    applied = load_text((tmp_path / "w1" / "w1-eks-a-cluster.yaml").read_text()).config.cluster
    spec_management = applied.spec.management_cluster
    assert spec_management is not None
    assert spec_management.name == "mgmt"

    code, output = await asyncio.to_thread(
        invoke, "get", "clusters", "--kubeconfig", str(management.kubeconfig)
    )
    assert code == 0, output
    rows = {line.split()[0]: line.split() for line in output.strip().splitlines()[1:]}
    assert rows["w1"][:5] == ["w1", "1.33", "1/1", "1/1", "Ready"]
    assert rows["mgmt"][:4] == ["mgmt", "1.33", "0/3", "0/2"]
    assert " ".join(rows["mgmt"][4:-1]) == "Pending"

    code, output = await asyncio.to_thread(
        invoke, "delete", "cluster", "mgmt", "--kubeconfig", str(management.kubeconfig)
    )
    assert code == 1
    assert (
        "cluster mgmt is the management cluster of 1 workload cluster(s): default/w1; delete them first"
        in output
    )

    # The controllers' finalizer holds the Cluster until they have removed its machines: the CLI
    # waits for that. The writer plays the controllers once the CLI has asked for the deletion.
    async with Client.from_kubeconfig(management.kubeconfig) as client:
        await client.patch(
            EKSA_CLUSTERS,
            "w1",
            {"metadata": {"finalizers": ["clusters.anywhere.eks.amazonaws.com/finalizer"]}},
            "default",
        )
        cli = await CliProcess.start(
            "delete", "cluster", "w1", "--kubeconfig", str(management.kubeconfig), cwd=tmp_path
        )
        try:
            await wait_until(
                client, EKSA_CLUSTERS, "w1", "default", lambda o: o["metadata"].get("deletionTimestamp")
            )
            await cli.expect(r"machine\(s\) left")
            for machine in ("w1-cp-0", "w1-md-0-0"):
                await client.delete(MACHINES, machine, SYSTEM_NAMESPACE)
            await client.patch(EKSA_CLUSTERS, "w1", {"metadata": {"finalizers": None}}, "default")
            code = await cli.finish()
        finally:
            await cli.kill()
        assert code == 0, cli.output
        assert "Deleting cluster w1 (namespace default)" in cli.output
        assert "Deleted SimMachineConfig/w1" in cli.output
        with pytest.raises(NotFoundError):
            await client.get(EKSA_CLUSTERS, "w1", "default")
        with pytest.raises(NotFoundError):
            await client.get(commands.resource_of("SimDatacenterConfig"), "w1", "default")
        await client.get(commands.resource_of("SimDatacenterConfig"), "mgmt", "default")  # not its own: kept
    assert not (tmp_path / "w1").exists()


async def test_failure_message_ends_create_with_it(
    management: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w2.yaml").write_text(sim_yaml("w2", subnet="10.42.0", management="mgmt"))
    env_kubeconfig = {**cli_env(), "KUBECONFIG": str(management.kubeconfig)}  # found as EKS Anywhere finds it
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "anywhere",
        "create",
        "cluster",
        "-f",
        "w2.yaml",
        cwd=tmp_path,
        env=env_kubeconfig,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    cli = CliProcess(process)
    try:
        message = "SimMachineConfig w2 cannot boot: no image for 1.33"
        await play_controllers(management.kubeconfig, "w2", failure=message)
        code = await cli.finish()
    finally:
        await cli.kill()
    async with Client.from_kubeconfig(management.kubeconfig) as client:
        await client.delete(EKSA_CLUSTERS, "w2", "default")
    assert code == 1, cli.output
    assert (
        cli.lines[-1]
        == f"error: cluster w2 failed (InvalidConfig): {message}; fix the configuration and apply it again, or delete the cluster"
    )


# ---- pure parts -------------------------------------------------------------------------------------------


def test_plan_of_a_scale_only_change_rolls_nothing() -> None:
    old = load_text(sim_yaml("p")).config
    new = load_text(sim_yaml("p", workers=5)).config
    default_config(old)
    default_config(new)
    plan = commands.plan_upgrade(old, new)
    assert plan.components == [("Worker group md-0 machines", "2", "5")]
    assert [(g.group, g.machines, g.change) for g in plan.groups] == [
        ("control plane", "3", "no change"),
        ("md-0", "2 -> 5", "scale up 2 -> 5"),
    ]
    assert commands.plan_upgrade(old, old).empty


def test_status_text_and_age() -> None:
    cluster: Obj = {"metadata": {"name": "c", "generation": 2}, "spec": {}, "status": {}}
    assert commands.status_text(cluster) == "Pending"
    cluster["status"] = {
        "observedGeneration": 1,
        "conditions": [condition(k) for k in commands.CONDITION_ORDER],
    }
    assert commands.status_text(cluster) == "Reconciling"  # ready, but not at this generation yet
    cluster["status"]["observedGeneration"] = 2
    assert commands.status_text(cluster) == "Ready"
    cluster["status"]["conditions"][3] = condition(
        "WorkersReady", "Scaling up worker nodes, 3 expected (2 actual)"
    )
    assert commands.status_text(cluster) == "Scaling up worker nodes, 3 expected (2 actual)"
    cluster["status"]["failureMessage"] = "bad datacenter"
    assert commands.status_text(cluster) == "Failed: bad datacenter"
    now = datetime(2025, 1, 10, tzinfo=UTC)
    for delta, text in [
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=3, seconds=10), "3m10s"),
        (timedelta(hours=5), "5h"),
        (timedelta(days=2, hours=3), "2d3h"),
    ]:
        stamp = (now - delta).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert commands.age(stamp, now) == text


def test_timeouts_follow_eks_anywhere() -> None:
    defaults = commands.parse_timeouts("1h0m0s", "1h0m0s", "10m0s", None, None, False)
    assert (defaults.control_plane, defaults.external_etcd, defaults.per_machine) == (3600, 3600, 600)
    unlimited = commands.parse_timeouts("1h0m0s", "1h0m0s", "10m0s", "7m", None, True)
    assert unlimited.control_plane is None
    assert unlimited.per_machine is None
    assert unlimited.unhealthy_machine == "7m0s"
    documents = list(
        yaml.safe_load_all(commands.dump_manifest(commands.manifest(load_text(sim_yaml("x")).config)))
    )
    assert [d["kind"] for d in documents] == [
        "Cluster",
        "SimDatacenterConfig",
        "SimMachineConfig",
        "SimMachineConfig",
    ]


async def test_wait_timeout_and_verbose_requests(
    management: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody reconciles w3 here, so the control plane wait runs out: exit 1, the cluster left as is."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w3.yaml").write_text(sim_yaml("w3", subnet="10.43.0"))
    args = ["create", "cluster", "-f", "w3.yaml", "--kubeconfig", str(management.kubeconfig)]
    code, output = await asyncio.to_thread(invoke, *args, "--control-plane-wait-timeout", "1s", "-v", "4")
    async with Client.from_kubeconfig(management.kubeconfig) as client:
        await client.get(EKSA_CLUSTERS, "w3", "default")  # not undone
        await client.delete(EKSA_CLUSTERS, "w3", "default")
    assert code == 1, output
    assert "api: PATCH /apis/anywhere.eks.amazonaws.com/v1alpha1/namespaces/default/clusters/w3?" in output
    assert (
        "error: timed out after 1s waiting for the control plane of cluster w3 (waiting for the controllers to "
        "report status); nothing was undone and the cluster keeps reconciling in the background. Watch it with: "
        f"kubectl --kubeconfig {management.kubeconfig} get clusters.anywhere.eks.amazonaws.com w3 -w"
    ) in output
