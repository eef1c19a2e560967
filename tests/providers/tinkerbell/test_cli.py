"""A bare metal cluster's whole life through the CLI, with its servers behind a real Redfish emulator.

Five emulated servers (sushy-tools' fake driver: power switches that take 1-11 s, no CPUs) are listed
in a hardware CSV: two labelled ``type=cp`` and three ``type=worker``. `anywhere create cluster -f
FILE --hardware-csv FILE` checks the CSV and every BMC, registers the hardware, and the provider
claims a server per machine, reserves its MAC in the DHCP configuration (checked by dnsmasq), sets a
one-time PXE boot and powers it on over Redfish. No server really boots here, so the plane plays the
netbooted server's tink-worker and then its kubelet (see anywhere.providers.tinkerbell.runner): that
is the one stand-in of these tests. A rolling upgrade uses the spare server of each selector; an
InPlace upgrade upgrades the nodes where they stand; `anywhere delete cluster` powers every server
off and returns all hardware to the pool. Too little hardware, a bad CSV and a failing BMC are each
refused with a clear error before anything is made, and no BMC password appears in any output.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api.capi.tinkerbell import HARDWARE_OWNER_NAME_LABEL
from tests.conftest import kubectl_json
from tests.harness import run_anywhere
from tests.providers.tinkerbell.spec import ROLES, write_csv, write_spec
from tests.redfish import Emulator


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_anywhere(folder, *args)


def hardware(kubeconfig: Path) -> dict[str, dict[str, Any]]:
    items = kubectl_json(kubeconfig, "get", "hardware.tinkerbell.org", "-n", "eksa-system")["items"]
    return {h["metadata"]["name"]: h for h in items}


def assert_pool_consistent(kubeconfig: Path, emulator: Emulator, *, claimed: int) -> dict[str, str]:
    """Every TinkerbellMachine holds exactly one server and it is on; every other server is free,
    may not netboot, holds no bootstrap data, and is off. Returns hardware -> holder."""
    machines = {
        m["metadata"]["name"]: m
        for m in kubectl_json(kubeconfig, "get", "tinkerbellmachines", "-n", "eksa-system")["items"]
    }
    holders: dict[str, str] = {}
    for name, item in hardware(kubeconfig).items():
        owner = (item["metadata"].get("labels") or {}).get(HARDWARE_OWNER_NAME_LABEL)
        netboot = item["spec"]["interfaces"][0].get("netboot") or {}
        if owner:
            assert owner in machines, f"{name} is held by {owner}, which does not exist"
            assert machines[owner]["spec"].get("hardwareName") == name
            holders[name] = owner
            assert emulator.power_state(name) == "On", name
        else:
            assert not netboot.get("allowPXE"), name
            assert not item["spec"].get("userData"), name
            assert emulator.power_state(name) == "Off", name
    assert len(holders) == claimed == len(machines)
    assert len(set(holders.values())) == claimed  # one server per machine
    return holders


def dhcp_reservations(kubeconfig: Path, name: str) -> str:
    configmap = kubectl_json(kubeconfig, "get", "configmap", f"{name}-dhcp", "-n", "eksa-system")
    return str(configmap["data"]["dnsmasq.conf"])


def node_versions(kubeconfig: Path) -> dict[str, str]:
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}


def assert_no_password(emulator: Emulator, *texts: str) -> None:
    for text in texts:
        assert emulator.password not in text


def test_create_upgrade_in_both_ways_and_delete_a_bare_metal_cluster(
    redfish: Emulator, tmp_path: Path
) -> None:
    name = "bm1"
    csv = write_csv(tmp_path / "hardware.csv", redfish, ROLES)
    spec = write_spec(tmp_path, name, "1.30")
    outputs: list[str] = []
    kubeconfig = tmp_path / name / f"{name}-eks-a-cluster.kubeconfig"
    try:
        created = cli(tmp_path, "create", "cluster", "-f", str(spec), "--hardware-csv", str(csv))
        outputs += [created.stdout, created.stderr]
        assert created.returncode == 0, created.stdout + created.stderr

        holders = assert_pool_consistent(kubeconfig, redfish, claimed=3)
        assert sorted(ROLES[h] for h in holders) == ["cp", "worker", "worker"]
        conf = dhcp_reservations(kubeconfig, name)
        for held in holders:
            assert redfish.system(held).mac in conf
        for free in set(ROLES) - set(holders):
            assert redfish.system(free).mac not in conf
        workflows = kubectl_json(kubeconfig, "get", "workflows.tinkerbell.org", "-n", "eksa-system")["items"]
        assert {w["status"]["state"] for w in workflows} == {"STATE_SUCCESS"}
        assert {w["spec"]["hardwareRef"] for w in workflows} == set(holders)
        assert all(v.startswith("v1.30") for v in node_versions(kubeconfig).values())
        for node in kubectl_json(kubeconfig, "get", "nodes")["items"]:
            assert node["spec"]["providerID"].startswith("tinkerbell://eksa-system/hw-")

        # Scaling the workers past the pool is refused before anything changes.
        too_many = write_spec(tmp_path, name, "1.30", workers=4)
        refused = cli(tmp_path, "upgrade", "cluster", "-f", str(too_many))
        outputs += [refused.stdout, refused.stderr]
        assert refused.returncode == 1
        assert "type=worker" in refused.stderr, refused.stderr
        assert "needs 4" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        assert_pool_consistent(kubeconfig, redfish, claimed=3)

        # A rolling upgrade replaces each machine, using the one spare server of each selector. The
        # spare worker's BMC refuses its credentials at first: a condition on the machine, the
        # Cluster's failureMessage and a clear CLI error; new credentials through the CSV let the
        # same upgrade finish.
        before = set(holders.values())
        spare = next(h for h, role in ROLES.items() if role == "worker" and h not in holders)
        wrong = base64.b64encode(b"wrong-password").decode()
        patch = json.dumps({"data": {"password": wrong}})
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "patch",
                "secret",
                f"bmc-{spare}-auth",
                "-n",
                "eksa-system",
                "--type",
                "merge",
                "-p",
                patch,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        upgrade = write_spec(tmp_path, name, "1.31")
        failed = cli(tmp_path, "upgrade", "cluster", "-f", str(upgrade))
        outputs += [failed.stdout, failed.stderr]
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "BMCAuthenticationFailed" in failed.stderr or "refused" in failed.stderr, failed.stderr
        assert spare in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
        stuck = [
            m
            for m in kubectl_json(kubeconfig, "get", "tinkerbellmachines", "-n", "eksa-system")["items"]
            if m["spec"].get("hardwareName") == spare
        ]
        assert len(stuck) == 1
        ready = next(c for c in stuck[0]["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "BMCAuthenticationFailed")
        cluster = kubectl_json(kubeconfig, "get", "clusters.anywhere.eks.amazonaws.com", name)
        assert spare in cluster["status"]["failureMessage"]

        rolled = cli(tmp_path, "upgrade", "cluster", "-f", str(upgrade), "--hardware-csv", str(csv))
        outputs += [rolled.stdout, rolled.stderr]
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        holders = assert_pool_consistent(kubeconfig, redfish, claimed=3)
        assert not before & set(holders.values())  # every machine replaced
        assert all(v.startswith("v1.31") for v in node_versions(kubeconfig).values())

        # InPlace: the same machines on the same servers, upgraded where they stand.
        in_place = write_spec(tmp_path, name, "1.32", strategy="InPlace")
        upgraded = cli(tmp_path, "upgrade", "cluster", "-f", str(in_place))
        outputs += [upgraded.stdout, upgraded.stderr]
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        after = assert_pool_consistent(kubeconfig, redfish, claimed=3)
        assert after == holders
        assert all(v.startswith("v1.32") for v in node_versions(kubeconfig).values())
    finally:
        deleted = cli(tmp_path, "delete", "cluster", name)
        outputs += [deleted.stdout, deleted.stderr]
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    for system in ROLES:
        assert redfish.power_state(system) == "Off", system
    assert_no_password(redfish, *outputs)


def test_too_little_hardware_is_refused_before_anything_is_made(redfish: Emulator, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "hardware.csv", redfish, {"hw-1": "cp", "hw-3": "worker"})
    spec = write_spec(tmp_path, "short", "1.30")
    result = cli(tmp_path, "create", "cluster", "-f", str(spec), "--hardware-csv", str(csv))
    assert result.returncode == 1
    assert "type=worker" in result.stderr
    assert "needs 2" in result.stderr
    assert "1 available" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "short").exists()


def test_bottlerocket_without_an_image_is_refused_before_anything_is_made(
    redfish: Emulator, tmp_path: Path
) -> None:
    """EKS Anywhere would stream its release bundle's Bottlerocket image; anywhere has no bundles."""
    csv = write_csv(tmp_path / "hardware.csv", redfish, ROLES)
    spec = write_spec(tmp_path, "rocket", "1.30")
    documents = list(yaml.safe_load_all(spec.read_text()))
    for document in documents:
        document["spec"].pop("osImageURL", None)
        if document["kind"] == "TinkerbellMachineConfig":
            document["spec"]["osFamily"] = "bottlerocket"
    spec.write_text(yaml.safe_dump_all(documents))
    result = cli(tmp_path, "create", "cluster", "-f", str(spec), "--hardware-csv", str(csv))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TinkerbellMachineConfig/rocket-cp: spec.osImageURL" in result.stderr
    assert "no EKS Anywhere release bundle" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "rocket").exists()


def test_a_bad_csv_lists_every_problem(redfish: Emulator, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "hardware.csv", redfish, {"hw-1": "cp", "hw-3": "worker", "hw-4": "worker"})
    text = (
        csv.read_text()
        .replace("52:54:00:00:00:04", "52:54:00:00:00:03")
        .replace("10.10.0.11,", "10.10.0.300,")
    )
    csv.write_text(text)
    result = cli(
        tmp_path,
        "create",
        "cluster",
        "-f",
        str(write_spec(tmp_path, "bad", "1.30")),
        "--hardware-csv",
        str(csv),
    )
    assert result.returncode == 1
    assert "52:54:00:00:00:03" in result.stderr  # the duplicate MAC
    assert "10.10.0.300" in result.stderr  # the malformed IP
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bad").exists()
    assert_no_password(redfish, result.stdout, result.stderr)


@pytest.mark.parametrize("fault", ["password", "port"])
def test_a_failing_bmc_is_refused_before_anything_is_made(
    redfish: Emulator, tmp_path: Path, fault: str
) -> None:
    csv = write_csv(
        tmp_path / "hardware.csv",
        redfish,
        {"hw-1": "cp", "hw-3": "worker", "hw-4": "worker"},
        password="wrong-password" if fault == "password" else None,
    )
    if fault == "port":
        text = csv.read_text().splitlines()
        text[2] = text[2].replace(f"127.0.0.1:{redfish.port}", "127.0.0.1:9")
        csv.write_text("\n".join(text) + "\n")
    result = cli(
        tmp_path,
        "create",
        "cluster",
        "-f",
        str(write_spec(tmp_path, "bmc", "1.30")),
        "--hardware-csv",
        str(csv),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "hw-" in result.stderr
    assert "BMC" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "bmc").exists()
    assert_no_password(redfish, result.stdout, result.stderr)
    assert "wrong-password" not in result.stdout + result.stderr


def test_generate_hardware_writes_the_objects(redfish: Emulator, tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "hardware.csv", redfish, ROLES)
    result = cli(tmp_path, "generate", "hardware", "-z", str(csv))
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["Hardware"] * 5 + ["Secret"] * 5
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["username"]).decode() == redfish.username


def test_a_create_killed_while_servers_boot_resumes_without_taking_more_hardware(
    redfish: Emulator, tmp_path: Path
) -> None:
    """kill -9 of the CLI and the management plane once the first server is powered on; the same
    command again resumes: every machine keeps the hardware it claimed, none is claimed twice."""
    name = "crash"
    csv = write_csv(tmp_path / "hardware.csv", redfish, ROLES)
    spec = write_spec(tmp_path, name, "1.30")
    environment = dict(os.environ)
    environment.pop("KUBECONFIG", None)
    command = subprocess.Popen(
        [sys.executable, "-m", "anywhere", "create", "cluster", "-f", str(spec), "--hardware-csv", str(csv)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kubeconfig = tmp_path / name / f"{name}-eks-a-cluster.kubeconfig"
    try:
        deadline = time.monotonic() + 300
        while not any(redfish.power_state(system) == "On" for system in ROLES):
            assert command.poll() is None, "create ended before any server was powered on"
            assert time.monotonic() < deadline, "no server was powered on within 300 s"
            time.sleep(0.2)
        pid = int((tmp_path / name / ".anywhere" / "plane.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        command.kill()
        command.wait(timeout=30)
        resumed = cli(tmp_path, "create", "cluster", "-f", str(spec), "--hardware-csv", str(csv))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "Resuming the creation of cluster crash" in resumed.stdout
        assert_pool_consistent(kubeconfig, redfish, claimed=3)
    finally:
        if command.poll() is None:
            command.kill()
        deleted = cli(tmp_path, "delete", "cluster", name)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    for system in ROLES:
        assert redfish.power_state(system) == "Off", system
