"""Kinds of the vSphere provider: where in vCenter a cluster lives, and what its VMs look like."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object
from anywhere.api.v1alpha1._machine import HostOSConfiguration, UserConfiguration


class FailureDomain(Model):
    """A vSphere failure domain: a compute cluster with its own pool, datastore, folder and network."""

    name: str | None = None
    compute_cluster: str | None = None
    resource_pool: str | None = None
    datastore: str | None = None
    folder: str | None = None
    network: str | None = None


class VSphereDatacenterConfigSpec(Model):
    datacenter: str | None = None
    network: str | None = None
    server: str | None = None
    thumbprint: str | None = None
    insecure: bool | None = None
    failure_domains: list[FailureDomain] | None = None


class VSphereDatacenterConfigStatus(Model):
    spec_valid: bool | None = None
    observed_generation: int | None = None
    failure_message: str | None = None


class VSphereDatacenterConfig(Object):
    """The vCenter a cluster is built in: server, datacenter, VM network and how to trust the server."""

    KIND: ClassVar[str] = "VSphereDatacenterConfig"
    PLURAL: ClassVar[str] = "vspheredatacenterconfigs"
    kind: Literal["VSphereDatacenterConfig"] = "VSphereDatacenterConfig"
    spec: VSphereDatacenterConfigSpec = Field(default_factory=VSphereDatacenterConfigSpec)
    status: VSphereDatacenterConfigStatus | None = None


class VSphereMachineConfigSpec(Model):
    disk_gib: int | None = Field(default=None, alias="diskGiB")
    datastore: str | None = None
    folder: str | None = None
    num_cpus: int | None = Field(default=None, alias="numCPUs")
    memory_mib: int | None = Field(default=None, alias="memoryMiB")
    os_family: str | None = None
    resource_pool: str | None = None
    storage_policy_name: str | None = None
    # Extra port groups for worker nodes (at most two), on top of the datacenter's network.
    networks: list[str] | None = None
    template: str | None = None
    users: list[UserConfiguration] | None = None
    # vSphere tag URNs attached to every VM (EKS Anywhere's TagIDs, "tags" on the wire).
    tags: list[str] | None = None
    clone_mode: str | None = None
    host_os_configuration: HostOSConfiguration | None = Field(default=None, alias="hostOSConfiguration")


class VSphereMachineConfigStatus(Model):
    pass


class VSphereMachineConfig(Object):
    """The shape of a group of VMs: template, OS family, CPUs, memory, disk and vCenter placement."""

    KIND: ClassVar[str] = "VSphereMachineConfig"
    PLURAL: ClassVar[str] = "vspheremachineconfigs"
    kind: Literal["VSphereMachineConfig"] = "VSphereMachineConfig"
    spec: VSphereMachineConfigSpec = Field(default_factory=VSphereMachineConfigSpec)
    status: VSphereMachineConfigStatus | None = None
