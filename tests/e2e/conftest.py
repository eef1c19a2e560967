"""End-to-end fixtures: a whole management plane (`anywhere serve --controllers`) as a real process,
driven with the machine's kubectl and the async client, as a user would."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api import dump_config
from anywhere.api.generate import generate_config
from anywhere.api.v1alpha1.cluster import ManagementCluster
from tests.conftest import Server

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Plane(Server):
    """A running management plane; ``restart`` after ``kill`` starts the same folder again."""

    self_cluster: str = ""
    log_path: Path | None = None

    def kill(self) -> None:
        """kill -9: what a crash is."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def start_plane(data_dir: Path, self_cluster: str | None = None) -> Plane:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "plane.log"
    command = [
        sys.executable,
        "-m",
        "anywhere",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
        "--reuse-port",
        "--controllers",
    ]
    if self_cluster:
        command += ["--self-cluster", self_cluster]
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"ready at (https://\S+)", line)
    if match is None:
        process.kill()
        process.wait(timeout=10)
        raise AssertionError(
            f"the plane did not start: {line!r}\n{log_path.read_text(errors='replace')[-5000:]}"
        )
    return Plane(
        match.group(1), data_dir, data_dir / "admin.kubeconfig", process, self_cluster or "", log_path
    )


def stop_plane(plane: Plane) -> None:
    if plane.process.poll() is None:
        plane.process.send_signal(signal.SIGTERM)
        try:
            plane.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            plane.process.kill()
            plane.process.wait(timeout=10)


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    running = start_plane(tmp_path / "plane", "mgmt")
    yield running
    stop_plane(running)


def cluster_yaml(
    name: str,
    *,
    control_planes: int = 1,
    workers: tuple[int, ...] = (1,),
    version: str = "1.33",
    management: str | None = None,
    endpoint: str | None = None,
    boot_delay: str = "0s",
    boot_jitter: str = "0s",
    extra: dict[str, Any] | None = None,
) -> str:
    """A sim cluster specification: the generated sample with the given shape and fast machines."""
    config = generate_config(name, "sim", version)
    spec = config.cluster.spec
    assert spec.control_plane_configuration is not None
    spec.control_plane_configuration.count = control_planes
    if endpoint is not None:
        assert spec.control_plane_configuration.endpoint is not None
        spec.control_plane_configuration.endpoint.host = endpoint
    base = (spec.worker_node_group_configurations or [])[0]
    groups = []
    for index, count in enumerate(workers):
        group = base.model_copy(deep=True)
        group.name = f"md-{index}"
        group.count = count
        groups.append(group)
    spec.worker_node_group_configurations = groups
    if management:
        spec.management_cluster = ManagementCluster(name=management)
    for machine in config.of_kind("SimMachineConfig"):
        machine.spec.boot_delay = boot_delay  # type: ignore[attr-defined]
        machine.spec.boot_jitter = boot_jitter  # type: ignore[attr-defined]
    text = dump_config(config)
    if extra:
        documents = list(yaml.safe_load_all(text))
        documents[0]["spec"].update(extra)
        text = yaml.safe_dump_all(documents, sort_keys=False)
    return text


def workload_kubeconfig(plane: Plane, name: str, directory: Path) -> Path:
    """The workload cluster's kubeconfig, from its Secret in the management cluster."""
    secret = plane.kubectl("get", "secret", "-n", "eksa-system", f"{name}-kubeconfig", "-o", "json").stdout
    value = yaml.safe_load(secret)["data"]["value"]
    path = directory / f"{name}.kubeconfig"
    path.write_bytes(base64.b64decode(value))
    return path


def kubectl(
    kubeconfig: Path, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write(directory: Path, name: str, text: str) -> Path:
    path = Path(tempfile.mkstemp(prefix=name, suffix=".yaml", dir=directory)[1])
    path.write_text(text)
    return path
