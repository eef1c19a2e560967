"""vSphere cluster specifications for the tests, pointing at a running simulator's inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.vcsim import Vcsim

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGkTn0vEpszb1PPGHwGEFN5ePdNlKAqaEXoGE8b1oXs3 tests@anywhere"
TEMPLATES = "/DC0/vm/Templates"
VIP = "10.40.0.10"


def documents(
    name: str,
    v: Vcsim,
    *,
    control_planes: int = 1,
    workers: int = 1,
    version: str = "1.33",
    template: str | None = None,
    network: str = "/DC0/network/VM Network",
    thumbprint: str | None = None,
    server: str | None = None,
    folder: str = "/DC0/vm/anywhere",
    datastore: str = "/DC0/datastore/LocalDS_0",
    resource_pool: str = "/DC0/host/DC0_C0/Resources",
    tags: tuple[str, ...] = (),
    storage_policy: str | None = None,
    management: str | None = None,
    os_family: str = "ubuntu",
) -> list[dict[str, Any]]:
    """Cluster + VSphereDatacenterConfig + one VSphereMachineConfig each for control plane and workers."""
    template = template or f"{TEMPLATES}/ubuntu-2204-kube-v{version.replace('.', '-')}"
    cluster: dict[str, Any] = {
        "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {
            "kubernetesVersion": version,
            "controlPlaneConfiguration": {
                "count": control_planes,
                "endpoint": {"host": VIP},
                "machineGroupRef": {"kind": "VSphereMachineConfig", "name": f"{name}-cp"},
            },
            "workerNodeGroupConfigurations": [
                {
                    "name": "md-0",
                    "count": workers,
                    "machineGroupRef": {"kind": "VSphereMachineConfig", "name": f"{name}-workers"},
                }
            ],
            "datacenterRef": {"kind": "VSphereDatacenterConfig", "name": name},
            "clusterNetwork": {
                "cniConfig": {"cilium": {}},
                "pods": {"cidrBlocks": ["192.168.0.0/16"]},
                "services": {"cidrBlocks": ["10.96.0.0/12"]},
            },
        },
    }
    if management:
        cluster["spec"]["managementCluster"] = {"name": management}
    datacenter = {
        "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
        "kind": "VSphereDatacenterConfig",
        "metadata": {"name": name},
        "spec": {
            "datacenter": v.datacenter,
            "network": network,
            "server": server or f"{v.host}:{v.port}",
            "thumbprint": thumbprint if thumbprint is not None else v.thumbprint,
            "insecure": False,
        },
    }

    def machine(machine_name: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "datastore": datastore,
            "diskGiB": 25,
            "folder": folder,
            "memoryMiB": 8192,
            "numCPUs": 2,
            "osFamily": os_family,
            "resourcePool": resource_pool,
            "template": template,
            "users": [{"name": "capv", "sshAuthorizedKeys": [SSH_KEY]}],
        }
        if tags:
            spec["tags"] = list(tags)
        if storage_policy:
            spec["storagePolicyName"] = storage_policy
        return {
            "apiVersion": "anywhere.eks.amazonaws.com/v1alpha1",
            "kind": "VSphereMachineConfig",
            "metadata": {"name": machine_name},
            "spec": spec,
        }

    return [cluster, datacenter, machine(f"{name}-cp"), machine(f"{name}-workers")]


def write(folder: Path, name: str, v: Vcsim, **options: Any) -> Path:
    """NAME.yaml in ``folder`` (see :func:`documents` for the options)."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(documents(name, v, **options), sort_keys=False))
    return path
