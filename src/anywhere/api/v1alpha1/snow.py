"""Kinds of the AWS Snow provider: the Snowball devices' credentials, instances and IP pools.

A Snow cluster runs EC2-compatible instances on one or more Snowball Edge devices; each machine
gets direct network interfaces (DNIs) on the devices' physical ports, addressed by DHCP or from a
SnowIPPool.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object, Ref
from anywhere.api.v1alpha1._machine import HostOSConfiguration


class SnowDatacenterConfigSpec(Model):
    """The Secret holding the devices' credentials and CA certificates."""

    identity_ref: Ref | None = None


class SnowDatacenterConfigStatus(Model):
    """Empty: SnowDatacenterConfig reports nothing."""


class SnowDatacenterConfig(Object):
    """The Snow devices a cluster runs on, by the credentials used to reach them."""

    KIND: ClassVar[str] = "SnowDatacenterConfig"
    PLURAL: ClassVar[str] = "snowdatacenterconfigs"
    kind: Literal["SnowDatacenterConfig"] = "SnowDatacenterConfig"
    spec: SnowDatacenterConfigSpec = Field(default_factory=SnowDatacenterConfigSpec)
    status: SnowDatacenterConfigStatus | None = None


class SnowVolume(Model):
    """A block volume attached to a Snow instance; ``size`` is in GiB."""

    device_name: str | None = None
    size: int | None = None
    type: str | None = None
    iops: int | None = None
    encrypted: bool | None = None
    encryption_key: str | None = None


class SnowDirectNetworkInterface(Model):
    """A direct network interface on a device's physical port, addressed by DHCP or from a pool."""

    index: int | None = None
    vlan_id: int | None = Field(default=None, alias="vlanID")
    dhcp: bool | None = None
    ip_pool_ref: Ref | None = None
    primary: bool | None = None


class SnowNetwork(Model):
    direct_network_interfaces: list[SnowDirectNetworkInterface] | None = None


class SnowMachineConfigSpec(Model):
    """An instance: image, type, devices it may land on, volumes, OS and network interfaces."""

    ami_id: str | None = Field(default=None, alias="amiID")
    instance_type: str | None = None
    physical_network_connector: str | None = None
    ssh_key_name: str | None = None
    devices: list[str] | None = None
    containers_volume: SnowVolume | None = None
    non_root_volumes: list[SnowVolume] | None = None
    os_family: str | None = None
    network: SnowNetwork | None = None
    host_os_configuration: HostOSConfiguration | None = Field(default=None, alias="hostOSConfiguration")


class SnowMachineConfigStatus(Model):
    spec_valid: bool | None = None
    failure_message: str | None = None


class SnowMachineConfig(Object):
    """The shape of the Snow instances of one node group (control plane, etcd or workers)."""

    KIND: ClassVar[str] = "SnowMachineConfig"
    PLURAL: ClassVar[str] = "snowmachineconfigs"
    kind: Literal["SnowMachineConfig"] = "SnowMachineConfig"
    spec: SnowMachineConfigSpec = Field(default_factory=SnowMachineConfigSpec)
    status: SnowMachineConfigStatus | None = None


class IPPool(Model):
    """One address range of a SnowIPPool, with the subnet and gateway its addresses use."""

    ip_start: str | None = None
    ip_end: str | None = None
    subnet: str | None = None
    gateway: str | None = None


class SnowIPPoolSpec(Model):
    pools: list[IPPool] | None = None


class SnowIPPoolStatus(Model):
    """Empty: SnowIPPool reports nothing."""


class SnowIPPool(Object):
    """Static addresses for DNIs that do not use DHCP, referred to by ``ipPoolRef``."""

    KIND: ClassVar[str] = "SnowIPPool"
    PLURAL: ClassVar[str] = "snowippools"
    kind: Literal["SnowIPPool"] = "SnowIPPool"
    spec: SnowIPPoolSpec = Field(default_factory=SnowIPPoolSpec)
    status: SnowIPPoolStatus | None = None
