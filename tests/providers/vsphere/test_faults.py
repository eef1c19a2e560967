"""vCenter failing in every way a user meets, against govmomi's vCenter simulator, through the CLI.

Each case ends as a clear condition (or, before anything is made, one clear CLI error), is tried
again, and leaves nothing in the inventory: a clone task that fails in vCenter (the template
``ubuntu-2204-kube-v1-33-faulty``, whose first two clones fail with NoDiskSpace), a VM that never
reports an IP (port group DC0_DVPG0 has no DHCP), vCenter unreachable in the middle of a create (a
TCP proxy between the plane and the simulator, stopped and started again), refused credentials and
untrusted certificates seen by the CLI's preflight, and a wrong thumbprint seen by the controllers
(a workload cluster applied with kubectl). No log or output ever shows the credentials.

The long scenarios run once per module (a fixture that also deletes what it made, whatever
happens) and record what they saw; the tests assert on the record. What the controllers said while
it happened is read back from the API's own history (a watch from resourceVersion 1 replays every
version of the VSphereMachines), so no short-lived condition is missed by polling.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from pyVim.task import WaitForTask
from pyVmomi import vim

from anywhere.cli import plane as planes
from anywhere.providers.retries import backoff
from anywhere.providers.vsphere.vm import CLUSTER_KEY
from anywhere.runtime import Client
from tests.conftest import kubectl_json, start_server, stop_server
from tests.providers.vsphere.proxy import TcpProxy
from tests.providers.vsphere.spec import TEMPLATES, documents, write
from tests.vcsim import (
    DEFAULT_CONFIG,
    Vcsim,
    connect,
    default_config,
    start,
    vm_names,
    vms_with_extra_config,
    wait_for,
)

T = TypeVar("T")
Obj = dict[str, Any]

CLI_TIMEOUT = 600  # a bound on a hung command, not an expectation
WAIT = 180.0  # a bound on waiting for the controllers, not an expectation
DELETE_TIMEOUT = "20s"  # kubectl delete of a workload cluster that made nothing: a bound, as WAIT
FAULTY = f"{TEMPLATES}/ubuntu-2204-kube-v1-33-faulty"
NO_DHCP = "/DC0/network/DC0_DVPG0"
WRONG_THUMBPRINT = ":".join(["5A"] * 20)
API = "/apis/infrastructure.cluster.x-k8s.io/v1beta1"


# --- helpers ------------------------------------------------------------------------------------------


def until(predicate: Callable[[], T | None], timeout: float, what: str, *, interval: float = 0.25) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def simulator(binary: Path, log_path: Path, config: Mapping[str, Any] = DEFAULT_CONFIG) -> Iterator[Vcsim]:
    """A simulator of its own (for module-scoped scenarios and changed configurations), random credentials."""
    v = start(
        config,
        username=f"anywhere-{secrets.token_hex(4)}@vsphere.local",
        password=secrets.token_hex(16),
        binary=binary,
        log_path=log_path,
    )
    try:
        yield v
    finally:
        v.stop()


def marked_vms(v: Vcsim, name: str | None = None) -> dict[str, str]:
    """VMs carrying the cluster marker (of cluster ``name`` in eksa-system, or any): name -> marker."""
    found = vms_with_extra_config(connect(v), CLUSTER_KEY)
    return {vm: marker for vm, marker in found.items() if name is None or marker == f"eksa-system/{name}"}


def vm_power_and_ip(v: Vcsim, names: set[str]) -> dict[str, tuple[str, str]]:
    """name -> (power state, guest IP) of the named VMs."""
    si = connect(v)
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {
            vm.name: (str(vm.runtime.powerState), str(vm.guest.ipAddress or ""))
            for vm in view.view
            if vm.name in names
        }
    finally:
        view.Destroy()


def api_json(kubeconfig: Path, *args: str) -> Any:
    """``kubectl ... -o json`` parsed, or None when the API does not answer (yet)."""
    return kubectl_json(kubeconfig, *args, must=False)


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def items(kubeconfig: Path, resource: str) -> list[Obj]:
    found = api_json(kubeconfig, "get", resource, "-A")
    return list(found["items"]) if found else []


def history(kubeconfig: Path, plural: str) -> list[Obj]:
    """Every version of every ``plural`` object the API recorded, oldest first: a watch from
    resourceVersion 1 replays the history (the server ends it after a second)."""
    result = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "get",
            "--raw",
            f"{API}/{plural}?watch=1&resourceVersion=1&timeoutSeconds=1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["object"] for line in result.stdout.splitlines() if line.strip()]


def condition(obj: Obj, kind: str = "Ready") -> Obj:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == kind:
            return dict(c)
    return {}


def name_of(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def of_cluster(objs: list[Obj], cluster: str) -> list[Obj]:
    return [
        o for o in objs if (o["metadata"].get("labels") or {}).get("cluster.x-k8s.io/cluster-name") == cluster
    ]


_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ anywhere\.controllers\.vsphere(?:machine|cluster): "
    r"(?:machine|cluster) (\S+): (.*)$"
)
_FAILED = re.compile(r"\(attempt (\d+); trying again(?: in (\d+)s)?\)$")


def early_retries(plane_log: str) -> list[str]:
    """Attempts the vSphere controllers made before the delay the failed attempt before them set.

    An attempt is a failure logged with "(attempt N; trying again[ in Ds])" or the start of a clone;
    after failure N of an object (D seconds announced, or the controllers' backoff(N)), that
    object's next attempt must not come sooner."""
    attempts: dict[str, list[tuple[float, float | None]]] = {}  # key -> (time, delay after it)
    for line in plane_log.splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        stamp, key, message = match.groups()
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        failed = _FAILED.search(message)
        if failed is not None:
            announced = failed.group(2)
            delay = float(announced) if announced else backoff(int(failed.group(1)))
            attempts.setdefault(key, []).append((at, delay))
        elif message.startswith("cloning template"):
            attempts.setdefault(key, []).append((at, None))
    early = []
    for key, seen in attempts.items():
        for (at, delay), (next_at, _) in itertools.pairwise(seen):
            if delay is not None and next_at - at < delay - 0.05:
                early.append(f"{key}: tried again {next_at - at:.3f}s after a failure that set {delay:.0f}s")
    return early


@dataclass
class Workspace:
    """A working folder for the CLI with the simulator's credentials in the environment; every
    output is kept, to check that no credential is ever shown."""

    folder: Path
    v: Vcsim = field(repr=False)
    outputs: list[str] = field(default_factory=list, repr=False)
    _runs: int = 0

    def env(self, changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
        environment = {
            **os.environ,
            "EKSA_VSPHERE_USERNAME": self.v.username,
            "EKSA_VSPHERE_PASSWORD": self.v.password,
        }
        environment.pop("KUBECONFIG", None)
        for key, value in (changes or {}).items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        return environment

    def run(
        self, *args: str, env: Mapping[str, str | None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "anywhere", *args],
            cwd=self.folder,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )
        self.outputs += [result.stdout, result.stderr]
        return result

    def start(self, *args: str) -> Running:
        """The CLI in the background, its output in files beside the cluster folders."""
        self._runs += 1
        out = self.folder / f"cli-{self._runs}.out"
        err = self.folder / f"cli-{self._runs}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "anywhere", *args],
                cwd=self.folder,
                env=self.env(),
                stdout=stdout,
                stderr=stderr,
                text=True,
            )
        return Running(process, out, err, self)

    def start_create(self, spec: Path, *args: str) -> Running:
        """``create cluster`` in the background, once it has applied the spec (or ended)."""
        running = self.start("create", "cluster", "-f", str(spec), *args)
        until(
            lambda: running.process.poll() is not None or "Applied " in running.stdout(),
            WAIT,
            "the create to apply the spec",
        )
        return running

    def create(self, spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self.start_create(spec, *args).wait()

    def delete(self, name: str) -> subprocess.CompletedProcess[str] | None:
        """``delete cluster NAME`` if its folder exists (a plane may run there). Should that fail, the
        plane is stopped all the same, so that no test leaves one behind."""
        if not (self.folder / name).exists():
            return None
        result = self.run("delete", "cluster", name)
        if result.returncode != 0:
            planes.stop(planes.PlaneDir.of(self.folder / name))
        return result

    def admin(self, name: str) -> Path:
        return self.folder / name / ".anywhere" / "admin.kubeconfig"

    def plane_log(self, name: str) -> str:
        path = self.folder / name / ".anywhere" / "plane.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Running:
    process: subprocess.Popen[str]
    out: Path
    err: Path
    workspace: Workspace

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.err.read_text(errors="replace")

    def wait(self) -> subprocess.CompletedProcess[str]:
        try:
            self.process.wait(CLI_TIMEOUT)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        stdout, stderr = self.stdout(), self.err.read_text(errors="replace")
        self.workspace.outputs += [stdout, stderr]
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, stdout, stderr)


def assert_no_credentials(v: Vcsim, *texts: str) -> None:
    """Neither the user name nor the password in any of ``texts`` (a failure shows neither)."""
    shown = [n for n, text in enumerate(texts) if v.username in text or v.password in text]
    assert not shown, f"a credential appears in text(s) {shown} of {len(texts)}"


def assert_clean_cli_error(result: subprocess.CompletedProcess[str]) -> str:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    return output


@dataclass
class Record:
    """What a scenario saw, for its tests to check."""

    v: Vcsim = field(repr=False)
    name: str
    created: subprocess.CompletedProcess[str]
    names_before: set[str]
    names_after: set[str] = field(default_factory=set)
    marked_after_create: dict[str, str] = field(default_factory=dict)
    machines: list[Obj] = field(default_factory=list)  # the cluster's VSphereMachines at the end
    machine_history: list[Obj] = field(default_factory=list)
    plane_log: str = ""
    deleted: subprocess.CompletedProcess[str] | None = None
    marked_after_delete: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def finish(record: Record, workspace: Workspace) -> None:
    """Read the plane's log, delete the cluster, look at the inventory (the end of every scenario)."""
    record.plane_log = record.plane_log or workspace.plane_log(record.name)
    record.deleted = workspace.delete(record.name)
    record.marked_after_delete = marked_vms(record.v)
    record.names_after = vm_names(connect(record.v))
    record.outputs = workspace.outputs


def assert_cleaned_up(record: Record) -> None:
    """Deleted, nothing marked left, the simulator's other VMs untouched, no credential anywhere."""
    assert record.deleted is not None
    assert record.deleted.returncode == 0, record.deleted.stdout + record.deleted.stderr
    assert record.marked_after_delete == {}
    assert record.names_after == record.names_before
    assert record.plane_log, "the plane wrote no log"
    assert_no_credentials(record.v, record.plane_log, *record.outputs)


# --- 1. a clone task that fails in vCenter --------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_clones(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    """A 1+1 cluster on the template whose first two clones fail (NoDiskSpace on LocalDS_0)."""
    folder = tmp_path_factory.mktemp("failing-clones")
    with simulator(vcsim_binary, folder / "vcsim.log") as v:
        workspace = Workspace(folder, v)
        name = "faulty"
        spec = write(folder, name, v, template=FAULTY)
        record = Record(v, name, subprocess.CompletedProcess([], -1), vm_names(connect(v)))
        try:
            record.created = workspace.create(spec)
            record.marked_after_create = marked_vms(v, name)
            record.extra["names_after_create"] = vm_names(connect(v))
            record.machines = of_cluster(items(workspace.admin(name), "vspheremachines"), name)
            record.machine_history = of_cluster(history(workspace.admin(name), "vspheremachines"), name)
        finally:
            finish(record, workspace)
        yield record


def test_a_clone_that_fails_in_vcenter_is_reported_and_tried_again(failing_clones: Record) -> None:
    r = failing_clones
    assert r.created.returncode == 0, r.created.stdout + r.created.stderr
    assert "Cluster faulty is ready" in r.created.stdout

    # What the VSphereMachines said meanwhile: TaskFailed with vCenter's fault and the attempt; then
    # each went on to clone again (not TaskFailed for good) and ended Ready.
    history = [(name_of(m), condition(m)) for m in r.machine_history]
    failed = [
        (i, name)
        for i, (name, c) in enumerate(history)
        if (c.get("status"), c.get("reason")) == ("False", "TaskFailed")
    ]
    assert failed, "no VSphereMachine ever reported TaskFailed"
    for i, name in failed:
        message = history[i][1]["message"]
        assert f"cloning template '{FAULTY}' failed in vCenter: vim.fault.NoDiskSpace" in message
        assert "LocalDS_0" in message
        assert re.search(r"\(attempt \d+; trying again in \d+s\)$", message), message
        assert any(later == name and c.get("reason") == "Cloning" for later, c in history[i + 1 :])
    machines = {name_of(m) for m in r.machines}
    assert len(machines) == 2
    for m in r.machines:
        assert condition(m).get("status") == "True", m.get("status")
        assert m["status"]["ready"] is True

    # The plane's log says it too: exactly the two failures vCenter injected.
    failures = re.findall(r"failed in vCenter: vim\.fault\.NoDiskSpace: .*LocalDS_0", r.plane_log)
    assert len(failures) == 2, "\n".join(
        line for line in r.plane_log.splitlines() if "vspheremachine" in line
    )

    # One VM per machine, no duplicate or leftover from the failed attempts.
    assert set(r.marked_after_create) == machines
    assert set(r.marked_after_create.values()) == {"eksa-system/faulty"}
    assert r.extra["names_after_create"] - r.names_before == machines
    assert_cleaned_up(r)


def test_a_failed_clone_is_tried_again_only_after_its_backoff(failing_clones: Record) -> None:
    assert early_retries(failing_clones.plane_log) == []


# --- 2. a VM that never reports an IP -------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_ip(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    """A 1+1 cluster on a port group without DHCP; create gives up after 40 s."""
    folder = tmp_path_factory.mktemp("no-ip")
    with simulator(vcsim_binary, folder / "vcsim.log") as v:
        workspace = Workspace(folder, v)
        name = "noip"
        spec = write(folder, name, v, network=NO_DHCP)
        record = Record(v, name, subprocess.CompletedProcess([], -1), vm_names(connect(v)))
        try:
            record.created = workspace.create(spec, "--control-plane-wait-timeout", "40s")
            record.marked_after_create = marked_vms(v, name)
            record.extra["vms"] = vm_power_and_ip(v, set(record.marked_after_create))
            record.machines = of_cluster(items(workspace.admin(name), "vspheremachines"), name)
            record.machine_history = of_cluster(history(workspace.admin(name), "vspheremachines"), name)
        finally:
            finish(record, workspace)
        yield record


def test_a_vm_that_never_reports_an_ip_waits_with_a_clear_condition(no_ip: Record) -> None:
    r = no_ip
    assert_clean_cli_error(r.created)
    assert "timed out after 40s waiting for the control plane of cluster noip" in r.created.stderr

    # Each VM was made and powered on, and has no address.
    assert len(r.marked_after_create) == 2
    assert set(r.marked_after_create) == {name_of(m) for m in r.machines}
    assert r.extra["vms"] == dict.fromkeys(r.marked_after_create, ("poweredOn", ""))

    # Its machine says why it waits, and where DHCP is missing.
    for m in r.machines:
        c = condition(m)
        assert (c.get("status"), c.get("reason")) == ("False", "WaitingForIPAddress"), c
        assert "has reported no IP address" in c["message"]
        assert "DHCP" in c["message"]
        assert NO_DHCP in c["message"]
        assert m["status"].get("ready") is False

    assert_cleaned_up(r)


def test_the_waiting_machine_says_how_long_it_has_waited(no_ip: Record) -> None:
    """Looked at again and again while it waits: the seconds in its message grow."""
    waited: dict[str, list[int]] = {}
    for m in no_ip.machine_history:
        c = condition(m)
        if c.get("reason") == "WaitingForIPAddress":
            seconds = re.search(r"no IP address for (\d+)s", c["message"])
            assert seconds is not None, c["message"]
            waited.setdefault(name_of(m), []).append(int(seconds.group(1)))
    assert set(waited) == {name_of(m) for m in no_ip.machines}
    for seen in waited.values():
        assert seen == sorted(seen)
        assert len(set(seen)) >= 3, seen


def test_the_timeout_error_names_the_waiting_machines_condition(no_ip: Record) -> None:
    output = no_ip.created.stdout + no_ip.created.stderr
    assert "has reported no IP address" in output  # the machines' WaitingForIPAddress message
    assert "DHCP" in output
    assert NO_DHCP in output


# --- 3. vCenter unreachable in the middle of a create, then back --------------------------------------


def hold_addresses(v: Vcsim, count: int) -> list[Any]:
    """Powered-on VMs holding every address of the simulator's DHCP range: the cluster's VMs wait
    for an IP until they are gone, which keeps the create in the middle for as long as the test needs."""
    si = connect(v)
    index: Any = si.content.searchIndex
    template = index.FindByInventoryPath("DC0/vm/Templates/ubuntu-2204-kube-v1-33")
    pool = index.FindByInventoryPath("DC0/host/DC0_C0/Resources")
    folder = index.FindByInventoryPath("DC0/vm")
    holders = []
    for n in range(count):
        location = vim.vm.RelocateSpec(pool=pool, diskMoveType="createNewChildDiskBacking")
        spec = vim.vm.CloneSpec(
            location=location, powerOn=True, template=False, snapshot=template.snapshot.currentSnapshot
        )
        task = template.CloneVM_Task(folder=folder, name=f"dhcp-holder-{n}", spec=spec)
        WaitForTask(task)
        holders.append(task.info.result)
    for holder in holders:
        wait_for(si, holder, "guest.ipAddress", bool, timeout=60)
    return holders


def release_addresses(holders: list[Any]) -> None:
    for holder in holders:
        if holder.runtime.powerState == vim.VirtualMachinePowerState.poweredOn:
            WaitForTask(holder.PowerOffVM_Task())
        WaitForTask(holder.Destroy_Task())
    holders.clear()


def unreachable(objs: list[Obj]) -> Obj | None:
    """The first object whose Ready condition is VCenterUnreachable (condition, kind, name)."""
    for obj in objs:
        c = condition(obj)
        if c.get("reason") == "VCenterUnreachable":
            return {"kind": obj["kind"], "name": name_of(obj), **c}
    return None


@pytest.fixture(scope="module")
def outage(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    """A 1+1 cluster whose vCenter is a proxy, stopped while the VMs wait for addresses, then
    started again."""
    folder = tmp_path_factory.mktemp("outage")
    config = default_config()
    config["dhcp"] = {"VM Network": {"first": "10.40.0.100", "last": "10.40.0.101"}}  # two addresses
    with simulator(vcsim_binary, folder / "vcsim.log", config) as v, TcpProxy((v.host, v.port)) as proxy:
        proxy.start()
        workspace = Workspace(folder, v)
        name = "outage"
        spec = write(folder, name, v, server=f"127.0.0.1:{proxy.port}")
        record = Record(v, name, subprocess.CompletedProcess([], -1), vm_names(connect(v)))
        record.extra["port"] = proxy.port
        holders = hold_addresses(v, 2)
        try:
            running = workspace.start_create(spec)
            admin = workspace.admin(name)

            def waiting_for_addresses() -> list[Obj] | None:
                machines = of_cluster(items(admin, "vspheremachines"), name)
                waiting = [m for m in machines if condition(m).get("reason") == "WaitingForIPAddress"]
                assert running.process.poll() is None, running.output()
                return machines if len(machines) == 2 and len(waiting) == 2 else None

            record.extra["before_outage"] = until(
                waiting_for_addresses, WAIT, "both VSphereMachines to wait for an address"
            )
            record.extra["connections_before_outage"] = proxy.accepted
            proxy.stop()
            record.extra["unreachable"] = until(
                lambda: unreachable(
                    of_cluster(items(admin, "vspheremachines"), name) + items(admin, "vsphereclusters")
                ),
                WAIT,
                "a VSphereMachine or the VSphereCluster to report VCenterUnreachable",
            )
            release_addresses(holders)
            proxy.start()
            record.created = running.wait()
            record.extra["connections_at_end"] = proxy.accepted
            record.marked_after_create = marked_vms(v, name)
            record.machines = of_cluster(items(admin, "vspheremachines"), name)
        finally:
            if not proxy.running:
                proxy.start()
            release_addresses(holders)
            finish(record, workspace)
        yield record


def test_vcenter_unreachable_in_the_middle_of_a_create_is_reported_and_outlasted(outage: Record) -> None:
    r = outage
    port = r.extra["port"]
    assert len(r.extra["before_outage"]) == 2
    # The plane talked to vCenter through the proxy, before the outage and after it.
    assert 0 < r.extra["connections_before_outage"] < r.extra["connections_at_end"]

    seen = r.extra["unreachable"]
    assert seen["status"] == "False"
    assert f"cannot reach vCenter 127.0.0.1:{port}" in seen["message"]
    assert re.search(r"\(attempt \d+; trying again", seen["message"]), seen["message"]
    assert f"cannot reach vCenter 127.0.0.1:{port}" in r.plane_log

    # vCenter back: the create finishes, one VM per machine, nothing made twice.
    assert r.created.returncode == 0, r.created.stdout + r.created.stderr
    assert "Cluster outage is ready" in r.created.stdout
    assert set(r.marked_after_create) == {name_of(m) for m in r.machines}
    assert len(r.marked_after_create) == 2
    for m in r.machines:
        assert condition(m).get("status") == "True", m.get("status")
    assert_cleaned_up(r)


def test_an_unreachable_vcenter_is_tried_again_only_after_the_backoff(outage: Record) -> None:
    assert early_retries(outage.plane_log) == []


# --- 4. credentials and trust, seen by the CLI before anything is made ---------------------------------


def _spec_without_thumbprint(folder: Path, name: str, v: Vcsim) -> Path:
    docs = documents(name, v)
    del docs[1]["spec"]["thumbprint"]
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "case",
    ["wrong password", "wrong thumbprint", "nothing listening", "password unset", "no thumbprint"],
)
def test_credentials_and_trust_are_checked_before_anything_is_made(
    case: str, vcsim: Vcsim, tmp_path: Path
) -> None:
    v = vcsim
    workspace = Workspace(tmp_path, v)
    name = "creds"
    env: dict[str, str | None] = {}
    with contextlib.ExitStack() as stack:
        if case == "wrong password":
            env["EKSA_VSPHERE_PASSWORD"] = "wrong-" + secrets.token_hex(8)
            spec = write(tmp_path, name, v)
            expected = [f"vCenter {v.host}:{v.port} refused the user name or password"]
        elif case == "wrong thumbprint":
            spec = write(tmp_path, name, v, thumbprint=WRONG_THUMBPRINT)
            expected = [f"thumbprint {v.thumbprint}", f"spec.thumbprint is {WRONG_THUMBPRINT}"]
        elif case == "nothing listening":
            # Bound, never listening: connections are refused, and no other process can take the port.
            closed = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            spec = write(tmp_path, name, v, server=f"127.0.0.1:{port}")
            expected = [f"cannot reach vCenter 127.0.0.1:{port}"]
        elif case == "password unset":
            env["EKSA_VSPHERE_PASSWORD"] = None
            spec = write(tmp_path, name, v)
            expected = ["EKSA_VSPHERE_PASSWORD is not set"]
        else:
            spec = _spec_without_thumbprint(tmp_path, name, v)
            expected = [f"the certificate of vCenter {v.host}:{v.port} is not trusted", v.thumbprint]
        try:
            result = workspace.run("create", "cluster", "-f", str(spec), env=env)
        finally:
            workspace.delete(name)  # nothing to delete, unless the CLI made something after all
    output = assert_clean_cli_error(result)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    for text in expected:
        assert text in errors[0], output
    assert not (tmp_path / name).exists()
    assert marked_vms(v) == {}
    assert_no_credentials(v, *workspace.outputs)


async def test_the_credentials_secret_is_stored_before_the_plane_makes_its_namespace(
    vcsim: Vcsim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `create cluster` meets when it wins the race with the plane's controllers, made certain:
    an API server (real, no controllers) without the eksa-system namespace."""
    from anywhere.cli.cluster import read_spec
    from anywhere.cli.vsphere import store_credentials

    username, password = f"user-{secrets.token_hex(4)}", secrets.token_hex(16)
    monkeypatch.setenv("EKSA_VSPHERE_USERNAME", username)
    monkeypatch.setenv("EKSA_VSPHERE_PASSWORD", password)
    spec = read_spec(write(tmp_path, "creds", vcsim))
    server = start_server(tmp_path / "api")
    try:
        assert api_json(server.kubeconfig, "get", "namespace", "eksa-system") is None
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await store_credentials(client, spec)
        secret = api_json(server.kubeconfig, "get", "secret", "-n", "eksa-system", "vsphere-credentials")
        assert secret is not None
        assert sorted(secret["data"]) == ["password", "username"]
    finally:
        stop_server(server)


# --- 5. a wrong thumbprint seen by the controllers ---------------------------------------------------------


@pytest.fixture(scope="module")
def controllers_thumbprint(vcsim_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    """A management cluster (1 control plane VM), then a workload cluster applied with kubectl whose
    VSphereDatacenterConfig has a wrong thumbprint; then the workload cluster deleted with kubectl."""
    folder = tmp_path_factory.mktemp("controllers-thumbprint")
    with simulator(vcsim_binary, folder / "vcsim.log") as v:
        workspace = Workspace(folder, v)
        name, workload = "mgmt", "w1"
        spec = write(folder, name, v, workers=0)
        record = Record(v, name, subprocess.CompletedProcess([], -1), vm_names(connect(v)))
        try:
            record.created = workspace.create(spec)
            assert record.created.returncode == 0, record.created.stdout + record.created.stderr
            kubeconfig = folder / name / f"{name}-eks-a-cluster.kubeconfig"
            secret = api_json(kubeconfig, "get", "secret", "-n", "eksa-system", "vsphere-credentials")
            record.extra["secret_keys"] = sorted((secret or {}).get("data") or {})

            docs = documents(workload, v, management=name, thumbprint=WRONG_THUMBPRINT)
            docs[0]["spec"]["controlPlaneConfiguration"]["endpoint"]["host"] = "10.40.0.11"
            workload_spec = folder / f"{workload}.yaml"
            workload_spec.write_text(yaml.safe_dump_all(docs, sort_keys=False))
            applied = kubectl(kubeconfig, "apply", "-f", str(workload_spec))
            assert applied.returncode == 0, applied.stderr

            def mismatch() -> tuple[Obj, int] | None:
                found = [c for c in items(kubeconfig, "vsphereclusters") if name_of(c) == workload]
                c = condition(found[0], "VCenterAvailable") if found else {}
                attempt = re.search(r"\(attempt (\d+); trying again", c.get("message", ""))
                if c.get("reason") != "ThumbprintMismatch" or attempt is None:
                    return None
                return found[0], int(attempt.group(1))

            first, first_attempt = until(
                mismatch, WAIT, f"VSphereCluster {workload} to report ThumbprintMismatch"
            )
            record.extra["mismatch"] = first
            record.extra["attempts"] = (
                first_attempt,
                until(
                    lambda: (m := mismatch()) and m[1] > first_attempt and m[1],
                    WAIT,
                    f"VSphereCluster {workload} to try again",
                ),
            )
            record.extra["workload_vms"] = marked_vms(v, workload)
            record.extra["workload_machines"] = of_cluster(items(kubeconfig, "vspheremachines"), workload)

            removed = kubectl(kubeconfig, "delete", "-f", str(workload_spec), f"--timeout={DELETE_TIMEOUT}")
            record.extra["workload_deleted"] = removed
            record.extra["left"] = {
                resource: [name_of(o) for o in items(kubeconfig, resource) if workload in name_of(o)]
                for resource in (
                    "clusters.anywhere.eks.amazonaws.com",
                    "clusters.cluster.x-k8s.io",
                    "vsphereclusters",
                    "vspheremachines",
                    "machines.cluster.x-k8s.io",
                )
            }
        finally:
            record.plane_log = workspace.plane_log(name)
            finish(record, workspace)
        yield record


def test_a_wrong_thumbprint_seen_by_the_controllers_is_reported_and_tried_again(
    controllers_thumbprint: Record,
) -> None:
    r = controllers_thumbprint
    assert r.extra["secret_keys"] == ["password", "username"]

    c = condition(r.extra["mismatch"], "VCenterAvailable")
    assert (c["status"], c["reason"], c.get("severity")) == ("False", "ThumbprintMismatch", "Error")
    assert f"presented a certificate with thumbprint {r.v.thumbprint}" in c["message"]
    assert f"spec.thumbprint is {WRONG_THUMBPRINT}" in c["message"]
    assert condition(r.extra["mismatch"])["reason"] == "ThumbprintMismatch"
    first, later = r.extra["attempts"]
    assert later > first

    # Nothing made for it; once deleted with kubectl, none of its objects is left.
    assert r.extra["workload_vms"] == {}
    for machine in r.extra["workload_machines"]:
        assert not (machine.get("status") or {}).get("vmRef"), machine
    assert r.extra["left"] == {resource: [] for resource in r.extra["left"]}
    assert f"spec.thumbprint is {WRONG_THUMBPRINT}" in r.plane_log
    assert_cleaned_up(r)


def test_a_workload_cluster_vcenter_never_trusted_is_deleted_without_it(
    controllers_thumbprint: Record,
) -> None:
    removed = controllers_thumbprint.extra["workload_deleted"]
    assert removed.returncode == 0, removed.stdout + removed.stderr


def test_a_wrong_thumbprint_is_tried_again_only_after_the_backoff(controllers_thumbprint: Record) -> None:
    assert early_retries(controllers_thumbprint.plane_log) == []
