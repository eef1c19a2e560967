"""Bootstrap data of every OS family, pinned byte for byte in golden files.

The vSphere (and any later) provider hands the bootstrap Secret's ``value`` to the machine as it is,
so an unnoticed change in it is a change in how every new machine boots. Each golden file under
``tests/golden/bootstrap/`` is the rendering of one fixed, realistic KubeadmConfig spec below: an
Ubuntu (``cloud-config``) and a Bottlerocket (``bottlerocket``) control plane ``kubeadm init`` and
worker ``kubeadm join``.

Two checks per file: the rendering equals the file byte for byte, and the file itself holds what a
machine needs (parsed as cloud-init YAML or as Bottlerocket TOML), so a rewritten golden file cannot
quietly lose the kubeadm command or the SSH key.

When a change to the rendering is intended, rewrite the files and review the diff::

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/controllers/test_bootstrap_golden.py
"""

from __future__ import annotations

import base64
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api.capi.kubeadm import FORMAT_BOTTLEROCKET, FORMAT_CLOUD_CONFIG
from anywhere.controllers.kubeadmconfig import (
    INIT_CONFIG_PATH,
    JOIN_CONFIG_PATH,
    render_bootstrap_data,
)

Obj = dict[str, Any]

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "bootstrap"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOq8oZ2kRm3Y0wq3VbVnYl1mXh8b9m3k5c6d7e8f9a0b admin@example.com"
NTP: Obj = {"enabled": True, "servers": ["0.pool.ntp.org", "time.example.com"]}
USERS: list[Obj] = [{"name": "ec2-user", "sudo": "ALL=(ALL) NOPASSWD:ALL", "sshAuthorizedKeys": [SSH_KEY]}]
PROXY_FILE: Obj = {
    "path": "/etc/systemd/system/containerd.service.d/http-proxy.conf",
    "owner": "root:root",
    "permissions": "0644",
    "content": (
        "[Service]\n"
        'Environment="HTTP_PROXY=http://proxy.example.com:3128"\n'
        'Environment="NO_PROXY=10.10.0.0/16,192.168.0.0/16,10.96.0.0/12,localhost,127.0.0.1"\n'
    ),
}

# The first control plane machine of cluster "demo" (what the KubeadmControlPlane's init config is).
CONTROL_PLANE_INIT: Obj = {
    "clusterConfiguration": {
        "clusterName": "demo",
        "kubernetesVersion": "v1.33.1",
        "controlPlaneEndpoint": "10.10.0.10:6443",
        "networking": {
            "dnsDomain": "cluster.local",
            "podSubnet": "192.168.0.0/16",
            "serviceSubnet": "10.96.0.0/12",
        },
        "apiServer": {"certSANs": ["10.10.0.10", "demo.example.com"]},
        "etcd": {"local": {"extraArgs": {"listen-client-urls": "https://0.0.0.0:2379"}}},
    },
    "initConfiguration": {
        "nodeRegistration": {
            "name": "demo-cp-x7k2p",
            "kubeletExtraArgs": {"node-labels": "topology.example.com/rack=r1"},
            "taints": [],
        }
    },
    "files": [PROXY_FILE],
    "users": USERS,
    "ntp": NTP,
    "preKubeadmCommands": ["systemctl daemon-reload", "systemctl restart containerd"],
    "postKubeadmCommands": ["echo control plane initialized"],
}

# A worker of machine deployment "demo-md-0" (what its KubeadmConfigTemplate gives every machine).
WORKER_JOIN: Obj = {
    "joinConfiguration": {
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": "10.10.0.10:6443",
                "token": "abcdef.0123456789abcdef",
                "caCertHashes": ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
            }
        },
        "nodeRegistration": {
            "name": "{{ ds.meta_data.hostname }}",
            "kubeletExtraArgs": {"node-labels": "group=md-0,node.kubernetes.io/lifecycle=on-demand"},
            "taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": "dedicated", "value": "gpu", "effect": "NoExecute"},
            ],
        },
    },
    "files": [PROXY_FILE],
    "users": USERS,
    "ntp": NTP,
    "preKubeadmCommands": ["systemctl daemon-reload", "systemctl restart containerd"],
    "postKubeadmCommands": ["echo worker joined"],
}

# golden file -> (spec, format, kubeadm subcommand, kubeadm config path)
CASES: dict[str, tuple[Obj, str, str, str]] = {
    "ubuntu-init.yaml": (CONTROL_PLANE_INIT, FORMAT_CLOUD_CONFIG, "init", INIT_CONFIG_PATH),
    "ubuntu-join.yaml": (WORKER_JOIN, FORMAT_CLOUD_CONFIG, "join", JOIN_CONFIG_PATH),
    "bottlerocket-init.toml": (CONTROL_PLANE_INIT, FORMAT_BOTTLEROCKET, "init", INIT_CONFIG_PATH),
    "bottlerocket-join.toml": (WORKER_JOIN, FORMAT_BOTTLEROCKET, "join", JOIN_CONFIG_PATH),
}
CLOUD_CONFIG_CASES = [name for name, case in CASES.items() if case[1] == FORMAT_CLOUD_CONFIG]
BOTTLEROCKET_CASES = [name for name, case in CASES.items() if case[1] == FORMAT_BOTTLEROCKET]


def _golden(name: str) -> str:
    path = GOLDEN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing; run with UPDATE_GOLDEN=1 to write it")
    return path.read_bytes().decode()


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_matches_the_golden_file(name: str) -> None:
    spec, fmt, _, _ = CASES[name]
    data, rendered_format = render_bootstrap_data({**spec, "format": fmt})
    assert rendered_format == fmt
    path = GOLDEN_DIR / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode())
    assert _golden(name).encode() == data.encode(), f"{name} differs; UPDATE_GOLDEN=1 rewrites it"


def _cloud_config(text: str) -> Obj:
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    return document


def _assert_runs_kubeadm(document: Obj, command: str, config_path: str) -> None:
    """The kubeadm configuration is written, and the one kubeadm command reads it, between the
    pre and post commands."""
    paths = [f["path"] for f in document["write_files"]]
    assert config_path in paths
    assert PROXY_FILE["path"] in paths
    runcmd = document["runcmd"]
    kubeadm = [c for c in runcmd if c.startswith("kubeadm ")]
    assert kubeadm == [runcmd[2]]
    assert kubeadm[0].startswith(f"kubeadm {command} --config {config_path}")
    assert runcmd[:2] == ["systemctl daemon-reload", "systemctl restart containerd"]
    kubeadm_file = next(f for f in document["write_files"] if f["path"] == config_path)
    kinds = [d["kind"] for d in yaml.safe_load_all(kubeadm_file["content"])]
    assert kinds == (
        ["ClusterConfiguration", "InitConfiguration"] if command == "init" else ["JoinConfiguration"]
    )


@pytest.mark.parametrize("name", CLOUD_CONFIG_CASES)
def test_a_cloud_config_golden_file_holds_files_users_ntp_and_kubeadm(name: str) -> None:
    _, _, command, config_path = CASES[name]
    document = _cloud_config(_golden(name))
    _assert_runs_kubeadm(document, command, config_path)
    assert document["users"] == [
        {"name": "ec2-user", "sudo": "ALL=(ALL) NOPASSWD:ALL", "ssh_authorized_keys": [SSH_KEY]}
    ]
    assert document["ntp"] == NTP


def _decode(value: str) -> str:
    return base64.b64decode(value, validate=True).decode()


@pytest.mark.parametrize("name", BOTTLEROCKET_CASES)
def test_a_bottlerocket_golden_file_holds_the_settings_a_node_needs(name: str) -> None:
    _, _, command, config_path = CASES[name]
    settings = tomllib.loads(_golden(name))["settings"]
    assert set(settings) <= {"host-containers", "kubernetes", "network", "ntp"}

    containers = settings["host-containers"]
    assert set(containers) == {"admin", "kubeadm-bootstrap"}
    for container in containers.values():
        assert container["enabled"] is True
        assert container["superpowered"] is True
    admin = json.loads(_decode(containers["admin"]["user-data"]))
    assert admin == {"ssh": {"authorized-keys": [SSH_KEY]}}
    payload = _cloud_config(_decode(containers["kubeadm-bootstrap"]["user-data"]))
    _assert_runs_kubeadm(payload, command, config_path)
    # Users and NTP are Bottlerocket's own business (admin container, settings.ntp).
    assert "users" not in payload
    assert "ntp" not in payload

    kubernetes = settings["kubernetes"]
    assert kubernetes["standalone-mode"] is True
    assert kubernetes["authentication-mode"] == "tls"
    assert kubernetes["cluster-domain"] == "cluster.local"
    assert kubernetes["api-server"] == "https://10.10.0.10:6443"
    assert settings["ntp"]["time-servers"] == NTP["servers"]
    if command == "init":
        assert kubernetes["cluster-name"] == "demo"
        assert kubernetes["node-labels"] == {"topology.example.com/rack": "r1"}
        assert "node-taints" not in kubernetes
        assert settings["network"] == {"hostname": "demo-cp-x7k2p"}
    else:
        assert "cluster-name" not in kubernetes  # a join config does not name its cluster
        assert kubernetes["node-labels"] == {"group": "md-0", "node.kubernetes.io/lifecycle": "on-demand"}
        assert kubernetes["node-taints"] == {"dedicated": ["gpu:NoSchedule", "gpu:NoExecute"]}
        assert "network" not in settings  # the node name is a cloud-init template: Bottlerocket's own


def test_every_golden_file_is_a_case() -> None:
    """A golden file left behind by a renamed case would be checked by nothing."""
    assert sorted(p.name for p in GOLDEN_DIR.iterdir()) == sorted(CASES)
