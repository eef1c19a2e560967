"""The self-managed netns flow through the CLI, as root, as a user runs it.

`anywhere create cluster -f FILE` (a subprocess, in a folder of its own) starts a bootstrap plane,
creates the machines, moves the cluster into its own API and stops the bootstrap plane; the
cluster's own controllers (processes on its control plane machine) then manage it: a scale-up
through `anywhere upgrade cluster` is theirs to do, and so is a workload cluster created through it
(one whose VIP is taken fails at once, by name). `anywhere delete cluster` moves the cluster
back into a bootstrap plane, deletes it there, and leaves nothing on the host; so does a delete
after a create killed half-way. Bad input ends as one clear line, with nothing made.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.cli import plane as planes
from anywhere.controllers.plane import LEASE_NAME
from anywhere.controllers.resources import SYSTEM_NAMESPACE
from anywhere.providers.netns._host import processes_naming
from anywhere.providers.netns.inventory import cleanup_all, leaks, scope_id
from tests.conftest import kubectl_json
from tests.harness import run_anywhere
from tests.providers.netns.hardware import requires_root
from tests.providers.netns.plane import DHCP_START, SETTLE, VIP, cluster_documents, our_namespaces, until

pytestmark = requires_root

CLI_TIMEOUT = 600  # a bound on a hung command, not an expectation
WORKLOAD_VIP = "10.231.0.11"


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m anywhere ARGS` in ``folder`` (blocking: the commands wait for the cluster)."""
    return run_anywhere(folder, *args, timeout=CLI_TIMEOUT)


def write_spec(
    folder: Path,
    name: str,
    *,
    workers: int = 1,
    vip: str = VIP,
    dhcp_end: str | None = None,
    boot: str = "",
    management: str | None = None,
) -> Path:
    """NAME.yaml in ``folder``: a self-managed 1+``workers`` cluster, or a workload cluster of
    ``management``."""
    documents = cluster_documents(name, 1, workers, vip=vip, self_managed=True)
    for document in documents:
        if document["kind"] == "Cluster" and management:
            document["spec"]["managementCluster"] = {"name": management}
        if document["kind"] == "NetnsDatacenterConfig" and dhcp_end:
            document["spec"]["dhcpRange"]["end"] = dhcp_end
        if document["kind"] == "NetnsMachineConfig" and boot:
            document["spec"]["bootTimeout"] = boot
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def ready_nodes(kubeconfig: Path) -> list[str]:
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    return sorted(
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or ())
    )


def processes_using(path: Path) -> list[str]:
    return [" ".join(argv) for argv in processes_naming(path).values()]


@pytest.fixture
async def workdir(tmp_path: Path) -> Any:
    """A folder for the CLI's NAME/ folders; whatever a failed test left on the host is removed
    (a bootstrap plane still running, the machines)."""
    yield tmp_path
    for bootstrap in tmp_path.glob(f"*/{planes.STATE_DIR}"):
        await asyncio.to_thread(planes.stop, planes.PlaneDir(bootstrap))
    for state in tmp_path.glob("*/netns"):
        await cleanup_all(state)


def assert_clean(folder: Path, name: str, scope: str | None) -> None:
    assert not (folder / name).exists(), sorted(p.name for p in (folder / name).iterdir())
    assert asyncio.run(leaks(folder / name / "netns", scope)) == []
    assert processes_using(folder / name) == []


async def test_create_manages_itself_scales_makes_a_workload_cluster_and_deletes_to_nothing(
    workdir: Path,
) -> None:
    name = "self1"
    spec = write_spec(workdir, name)
    created = await asyncio.to_thread(cli, workdir, "create", "cluster", "-f", spec.name)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "Traceback" not in created.stdout + created.stderr
    assert "manages itself" in created.stdout
    cluster_dir = workdir / name
    kubeconfig = cluster_dir / f"{name}-eks-a-cluster.kubeconfig"
    state = cluster_dir / "netns"
    scope = scope_id(state)

    # the bootstrap plane is gone: no folder, no process
    assert not (cluster_dir / planes.STATE_DIR).exists()
    assert processes_using(cluster_dir / planes.STATE_DIR) == []
    # the cluster answers through the kubeconfig written for the host, with DHCP addresses
    assert len(ready_nodes(kubeconfig)) == 2
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    addresses = [a["address"] for n in nodes for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
    assert all(a.startswith(DHCP_START.rsplit(".", 1)[0] + ".") for a in addresses), addresses
    # its objects live in its own API, and a control plane machine's controllers lead
    machines = kubectl_json(kubeconfig, "get", "netnsmachines", "-n", SYSTEM_NAMESPACE)["items"]
    control_plane = [m["metadata"]["name"] for m in machines if "control-plane" in json.dumps(m["metadata"])]
    lease = kubectl_json(kubeconfig, "get", "lease", LEASE_NAME, "-n", SYSTEM_NAMESPACE)
    assert lease["spec"]["holderIdentity"] in control_plane

    # a scale-up is done by the cluster's own controllers
    bigger = write_spec(workdir, name, workers=2)
    upgraded = await asyncio.to_thread(cli, workdir, "upgrade", "cluster", "-f", bigger.name)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr

    async def three_ready() -> list[str] | None:
        found = await asyncio.to_thread(ready_nodes, kubeconfig)
        return found if len(found) == 3 else None

    await until(three_ready)

    # a workload cluster, made by the management cluster's own controllers, reached from the host
    workload = "wl1"
    workload_spec = write_spec(workdir, workload, vip=WORKLOAD_VIP, management=name)
    made = await asyncio.to_thread(
        cli, workdir, "create", "cluster", "-f", workload_spec.name, "--kubeconfig", str(kubeconfig)
    )
    assert made.returncode == 0, made.stdout + made.stderr
    workload_kubeconfig = workdir / workload / f"{workload}-eks-a-cluster.kubeconfig"
    assert len(ready_nodes(workload_kubeconfig)) == 2
    # a workload cluster whose VIP is in use (the management cluster's) fails at once, by name
    clash = "wl2"
    clash_spec = write_spec(workdir, clash, vip=VIP, management=name)
    clashed = await asyncio.to_thread(
        cli, workdir, "create", "cluster", "-f", clash_spec.name, "--kubeconfig", str(kubeconfig)
    )
    assert clashed.returncode != 0
    assert f"UnavailableControlPlaneIP): endpoint VIP {VIP} is already in use" in clashed.stderr, (
        clashed.stderr
    )
    undone = await asyncio.to_thread(
        cli, workdir, "delete", "cluster", clash, "--kubeconfig", str(kubeconfig)
    )
    assert undone.returncode == 0, undone.stdout + undone.stderr

    refused = await asyncio.to_thread(cli, workdir, "delete", "cluster", name)
    assert refused.returncode != 0
    assert (
        f"management cluster of 1 workload cluster(s): default/{workload}" in refused.stdout + refused.stderr
    )
    gone = await asyncio.to_thread(
        cli, workdir, "delete", "cluster", workload, "--kubeconfig", str(kubeconfig)
    )
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not (workdir / workload).exists()

    deleted = await asyncio.to_thread(cli, workdir, "delete", "cluster", name)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "Moving the objects of cluster" in deleted.stdout
    assert "nothing of it is left" in deleted.stdout
    await asyncio.to_thread(assert_clean, workdir, name, scope)


async def test_delete_after_a_create_killed_half_way_leaves_nothing(workdir: Path) -> None:
    name = "crash1"
    spec = write_spec(workdir, name)
    env = {**os.environ}
    env.pop("KUBECONFIG", None)
    create = subprocess.Popen(
        [sys.executable, "-m", "anywhere", "create", "cluster", "-f", spec.name],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = workdir / name / "netns"
    try:
        # machines exist (their namespaces), the create is somewhere in the middle: kill it all

        async def machines_made() -> bool:
            return state.exists() and len(our_namespaces(state)) >= 3  # the fabric and two machines

        await until(machines_made, timeout=SETTLE)
    finally:
        create.kill()
        await asyncio.to_thread(create.wait)
    plane_pid = planes.running_pid(planes.PlaneDir.of(workdir / name))
    if plane_pid is not None:
        os.kill(plane_pid, signal.SIGKILL)
    scope = scope_id(state)

    deleted = await asyncio.to_thread(cli, workdir, "delete", "cluster", name)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "Traceback" not in deleted.stdout + deleted.stderr
    await asyncio.to_thread(assert_clean, workdir, name, scope)


def test_a_vip_inside_the_dhcp_range_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    name = "badvip"
    spec = write_spec(tmp_path, name, vip=DHCP_START)
    result = cli(tmp_path, "create", "cluster", "-f", spec.name)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert DHCP_START in output, output
    assert "Traceback" not in output
    assert not (tmp_path / name / "netns").exists() or our_namespaces(tmp_path / name / "netns") == []


def test_without_root_the_cli_says_so(tmp_path: Path) -> None:
    """The netns provider needs root: a normal user is told, not shown a permission error."""
    name = "noroot"
    spec = write_spec(tmp_path, name)
    os.chmod(tmp_path, 0o777)
    os.chmod(spec, 0o644)
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "anywhere",
         "create", "cluster", "-f", spec.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode != 0
    assert "needs root" in result.stdout + result.stderr, result.stdout + result.stderr
    assert not (tmp_path / name).exists()


async def test_an_exhausted_dhcp_range_is_named_and_delete_leaves_nothing(workdir: Path) -> None:
    """One address for two machines: the one without a lease fails after its boot timeout, the
    command says why and ends (its control plane wait), and delete removes everything."""
    name = "dry1"
    spec = write_spec(workdir, name, dhcp_end=DHCP_START, boot="15s")
    created = await asyncio.to_thread(
        cli, workdir, "create", "cluster", "-f", spec.name, "--control-plane-wait-timeout", "40s"
    )
    output = created.stdout + created.stderr
    assert created.returncode != 0, output
    assert "is the range exhausted? (1 of the 1 addresses" in output, output
    assert "Traceback" not in output
    scope = scope_id(workdir / name / "netns")
    deleted = await asyncio.to_thread(cli, workdir, "delete", "cluster", name)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    await asyncio.to_thread(assert_clean, workdir, name, scope)


def test_a_host_without_dnsmasq_is_told_what_to_install(tmp_path: Path) -> None:
    name = "nodns"
    spec = write_spec(tmp_path, name)
    bin_dir = tmp_path / "bin"  # the usual tools, but not dnsmasq
    bin_dir.mkdir()
    for tool in ("nsenter", "busybox", "ip", "arping", "etcd", "kubectl"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{bin_dir}"}
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "anywhere", "create", "cluster", "-f", spec.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "dnsmasq is not installed" in output, output
    assert "apt-get install dnsmasq-base" in output, output
    assert "Traceback" not in output
    assert not (tmp_path / name).exists()
