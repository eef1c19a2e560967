"""Kinds of the ``nutanix`` provider: Prism Central, its Prism Element clusters, subnets and images.

A NutanixDatacenterConfig says how to reach Prism Central (endpoint, port, credentials, trust) and
optionally which failure domains to spread machines over; a NutanixMachineConfig sizes the VMs of a
group and names the image, cluster and subnet they use. Prism resources are named by an identifier
whose ``type`` says whether ``uuid`` or ``name`` is given.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from anywhere.api.v1alpha1._base import Condition, Model, Object, Ref
from anywhere.api.v1alpha1._machine import UserConfiguration


def _quantity_text(value: Any) -> Any:
    """Read ``memorySize: 4096`` (a YAML number) as the quantity string ``"4096"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


class NutanixResourceIdentifier(Model):
    """A Prism resource named by ``uuid`` or by ``name``, as ``type`` says."""

    type: str | None = None
    uuid: str | None = None
    name: str | None = None


class NutanixCategoryIdentifier(Model):
    """A Prism Central category (key and value) attached to the VMs."""

    key: str | None = None
    value: str | None = None


class NutanixGPUIdentifier(Model):
    """A GPU passed to the VMs, by PCI ``deviceID`` or by ``name``, as ``type`` says."""

    type: str | None = None
    device_id: int | None = Field(default=None, alias="deviceID")
    name: str | None = None


class NutanixDatacenterFailureDomain(Model):
    """A failure domain: a Prism Element cluster and its subnets, for some worker groups."""

    name: str | None = None
    cluster: NutanixResourceIdentifier | None = None
    subnets: list[NutanixResourceIdentifier] | None = None
    worker_machine_groups: list[str] | None = None


class NutanixDatacenterConfigSpec(Model):
    endpoint: str | None = None
    port: int | None = None
    additional_trust_bundle: str | None = None
    insecure: bool | None = None
    credential_ref: Ref | None = None
    failure_domains: list[NutanixDatacenterFailureDomain] | None = None
    ccm_exclude_node_ips: list[str] | None = Field(default=None, alias="ccmExcludeNodeIPs")


class NutanixDatacenterConfigStatus(Model):
    pass


class NutanixDatacenterConfig(Object):
    """Where a Nutanix cluster runs: the Prism Central to talk to, and optional failure domains."""

    KIND: ClassVar[str] = "NutanixDatacenterConfig"
    PLURAL: ClassVar[str] = "nutanixdatacenterconfigs"
    kind: Literal["NutanixDatacenterConfig"] = "NutanixDatacenterConfig"
    spec: NutanixDatacenterConfigSpec = Field(default_factory=NutanixDatacenterConfigSpec)
    status: NutanixDatacenterConfigStatus | None = None


class NutanixMachineConfigSpec(Model):
    os_family: str | None = None
    users: list[UserConfiguration] | None = None
    vcpus_per_socket: int | None = None
    vcpu_sockets: int | None = None
    memory_size: str | None = None  # a Kubernetes quantity, e.g. 8Gi
    image: NutanixResourceIdentifier | None = None
    cluster: NutanixResourceIdentifier | None = None
    subnet: NutanixResourceIdentifier | None = None
    project: NutanixResourceIdentifier | None = None
    system_disk_size: str | None = None  # a Kubernetes quantity, e.g. 40Gi
    additional_categories: list[NutanixCategoryIdentifier] | None = None
    gpus: list[NutanixGPUIdentifier] | None = None
    boot_type: str | None = None

    _quantities = field_validator("memory_size", "system_disk_size", mode="before")(_quantity_text)


class MachineAddress(Model):
    """An address of a machine (Cluster API): Hostname, InternalIP, ExternalIP, ..."""

    type: str | None = None
    address: str | None = None


class ObjectReference(Model):
    """A Kubernetes ObjectReference."""

    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    uid: str | None = None
    api_version: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class NutanixMachineConfigStatus(Model):
    ready: bool | None = None
    addresses: list[MachineAddress] | None = None
    vm_uuid: str | None = Field(default=None, alias="vmUUID")
    node_ref: ObjectReference | None = None
    conditions: list[Condition] | None = None


class NutanixMachineConfig(Object):
    """The VMs of one node group on Nutanix: size, image, cluster, subnet, categories and GPUs."""

    KIND: ClassVar[str] = "NutanixMachineConfig"
    PLURAL: ClassVar[str] = "nutanixmachineconfigs"
    kind: Literal["NutanixMachineConfig"] = "NutanixMachineConfig"
    spec: NutanixMachineConfigSpec = Field(default_factory=NutanixMachineConfigSpec)
    status: NutanixMachineConfigStatus | None = None
