"""Bad input ends as a clear refusal, condition or failureMessage — and the CLI exits non-zero with it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.e2e.conftest import Plane, cluster_yaml, write
from tests.e2e.test_sim_lifecycle import ready


def failure(plane: Plane, name: str) -> tuple[str, str]:
    plane.kubectl(
        "wait",
        "--for=jsonpath={.status.failureReason}",
        f"clusters.anywhere.eks.amazonaws.com/{name}",
        "--timeout=120s",
    )
    status = json.loads(
        plane.kubectl("get", "clusters.anywhere.eks.amazonaws.com", name, "-o", "json").stdout
    )["status"]
    return status["failureReason"], status["failureMessage"]


def test_invalid_spec_is_refused_by_the_api(plane: Plane, tmp_path: Path) -> None:
    spec = cluster_yaml("bad", control_planes=2, management="mgmt", endpoint="10.10.0.30")
    result = plane.kubectl("apply", "-f", str(write(tmp_path, "bad", spec)), check=False)
    assert result.returncode != 0
    assert "control plane node count cannot be an even number" in result.stderr
    listing = plane.kubectl("get", "clusters.anywhere.eks.amazonaws.com", "-o", "name").stdout
    assert "bad" not in listing


async def test_missing_and_wrong_machine_configs_become_failure_messages(
    plane: Plane, tmp_path: Path
) -> None:
    documents = list(yaml.safe_load_all(cluster_yaml("nomc", management="mgmt", endpoint="10.10.0.31")))
    cluster = documents[0]
    cluster["spec"]["workerNodeGroupConfigurations"][0]["machineGroupRef"]["name"] = "not-there"
    plane.kubectl("apply", "-f", str(write(tmp_path, "nomc", yaml.safe_dump_all(documents))))
    reason, message = await asyncio.to_thread(failure, plane, "nomc")
    assert reason == "MissingDependentObjects"
    assert "SimMachineConfig not-there not found" in message


async def test_an_endpoint_in_use_is_a_failure_and_the_cli_says_so(plane: Plane, tmp_path: Path) -> None:
    plane.kubectl("apply", "-f", str(write(tmp_path, "mgmt", cluster_yaml("mgmt"))))
    first = cluster_yaml("first", management="mgmt", endpoint="10.10.0.40")
    plane.kubectl("apply", "-f", str(write(tmp_path, "first", first)))
    await asyncio.to_thread(ready, plane, "mgmt")
    await asyncio.to_thread(ready, plane, "first")
    second = write(tmp_path, "second", cluster_yaml("second", management="mgmt", endpoint="10.10.0.40"))
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "anywhere",
            "create",
            "cluster",
            "-f",
            str(second),
            "--kubeconfig",
            str(plane.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "10.10.0.40" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    reason, message = failure(plane, "second")
    assert reason == "UnavailableControlPlaneIP"
    assert "first" in message
