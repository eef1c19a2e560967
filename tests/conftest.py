"""Shared fixtures: valid configurations to break one rule at a time; a real `anywhere serve`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from anywhere.api import ClusterConfig, FieldError, check_config
from anywhere.api.generate import generate_config

# Property tests explore the same examples on every run, so CI is deterministic; a failure found once
# is found again. Set HYPOTHESIS_PROFILE=explore to search new examples locally.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

COMPAT_DIR = Path(__file__).resolve().parents[2] / "shared" / "compat" / "eksa-v1alpha1"


@pytest.fixture
def sim_config() -> ClusterConfig:
    """A valid sim configuration (3 control plane machines, one worker group)."""
    return generate_config("demo", "sim")


@pytest.fixture
def config_of() -> Callable[[str], ClusterConfig]:
    """A valid configuration of any provider."""
    return lambda provider: generate_config("demo", provider)


def errors_at(errors: list[FieldError], field: str) -> list[str]:
    """The messages reported on ``field``."""
    return [e.message for e in errors if e.field == field]


def check(config: ClusterConfig) -> list[FieldError]:
    return check_config(config)


@dataclass
class Server:
    url: str
    data_dir: Path
    kubeconfig: Path
    process: subprocess.Popen[str]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The machine's real kubectl against this server."""
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result


def start_server(data_dir: Path, port: int = 0, args: tuple[str, ...] = ()) -> Server:
    """Start `anywhere serve` on ``data_dir`` (``port`` 0: any free port; ``args``: more options) and
    wait until it is ready."""
    # The log goes to a file, not a pipe: nobody reads a pipe while tests run, and a full one
    # would block the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "anywhere",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"ready at (https://\S+)", line)
        if match is None:
            process.kill()
            process.wait(timeout=10)
            log.seek(0)
            raise AssertionError(f"the server did not start: {line!r}\n{log.read().decode(errors='replace')}")
    return Server(match.group(1), data_dir, data_dir / "admin.kubeconfig", process)


def stop_server(server: Server) -> int:
    """SIGTERM, and the exit status (killed if it does not stop within 30 s)."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=30)
    finally:
        if server.process.poll() is None:
            server.process.kill()


# The CNI's DaemonSet, whose presence in a workload cluster makes node agents report the CNI configured.
CILIUM: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "cilium", "namespace": "kube-system"},
    "spec": {
        "selector": {"matchLabels": {"k8s-app": "cilium"}},
        "template": {
            "metadata": {"labels": {"k8s-app": "cilium"}},
            "spec": {"containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.16.0"}]},
        },
    },
}


def kubectl_json(kubeconfig: Path, *args: str, must: bool = True) -> Any:
    """``kubectl --kubeconfig KUBECONFIG ARGS -o json`` (the machine's kubectl), parsed; with
    ``must=False``, None when kubectl fails (the API does not answer yet, the object is not there)."""
    if not must and not kubeconfig.exists():
        return None
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=20s", *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not must and result.returncode != 0:
        return None
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
