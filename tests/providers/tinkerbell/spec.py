"""Hardware CSVs and cluster specs of the tinkerbell provider's tests and benchmark, for the servers of
a Redfish emulator (:mod:`tests.redfish`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.redfish import Emulator

CSV_HEADER = (
    "hostname,bmc_ip,bmc_username,bmc_password,mac,ip_address,netmask,gateway,nameservers,labels,disk"
)
ROLES = {"hw-1": "cp", "hw-2": "cp", "hw-3": "worker", "hw-4": "worker", "hw-5": "worker"}


def write_csv(path: Path, emulator: Emulator, rows: dict[str, str], *, password: str | None = None) -> Path:
    """A hardware CSV with the emulator's systems ``rows`` (hostname -> role)."""
    lines = [CSV_HEADER]
    for name, role in rows.items():
        system = emulator.system(name)
        number = int(name.rsplit("-", 1)[1])
        lines.append(
            f"{name},127.0.0.1:{emulator.port},{emulator.username},{password or emulator.password},"
            f"{system.mac},10.10.0.{10 + number},255.255.255.0,10.10.0.1,1.1.1.1|8.8.8.8,type={role},/dev/sda"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def write_spec(
    folder: Path, name: str, version: str, *, workers: int = 2, strategy: str = "RollingUpdate"
) -> Path:
    rollout: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        rollout["rollingUpdate"] = {"maxSurge": 1}
    worker_rollout: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        worker_rollout["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": 0}
    image = f"https://images.example.com/ubuntu-{version.replace('.', '-')}-amd64.raw.gz"
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": name},
            "spec": {
                "kubernetesVersion": version,
                "clusterNetwork": {
                    "cniConfig": {"cilium": {}},
                    "pods": {"cidrBlocks": ["192.168.0.0/16"]},
                    "services": {"cidrBlocks": ["10.96.0.0/12"]},
                },
                "controlPlaneConfiguration": {
                    "count": 1,
                    "endpoint": {"host": "10.10.0.100"},
                    "machineGroupRef": {"kind": "TinkerbellMachineConfig", "name": f"{name}-cp"},
                    "upgradeRolloutStrategy": rollout,
                },
                "workerNodeGroupConfigurations": [
                    {
                        "name": "md-0",
                        "count": workers,
                        "machineGroupRef": {"kind": "TinkerbellMachineConfig", "name": f"{name}-workers"},
                        "upgradeRolloutStrategy": worker_rollout,
                    }
                ],
                "datacenterRef": {"kind": "TinkerbellDatacenterConfig", "name": name},
                "managementCluster": {"name": name},
            },
        },
        {
            "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
            "kind": "TinkerbellDatacenterConfig",
            "metadata": {"name": name},
            "spec": {"tinkerbellIP": "10.10.0.200", "osImageURL": image},
        },
    ]
    for suffix, role in (("cp", "cp"), ("workers", "worker")):
        documents.append(
            {
                "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
                "kind": "TinkerbellMachineConfig",
                "metadata": {"name": f"{name}-{suffix}"},
                "spec": {
                    "hardwareSelector": {"type": role},
                    "osFamily": "ubuntu",
                    "templateRef": {},
                    "users": [
                        {
                            "name": "ec2-user",
                            "sshAuthorizedKeys": [
                                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q"
                            ],
                        }
                    ],
                },
            }
        )
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path
