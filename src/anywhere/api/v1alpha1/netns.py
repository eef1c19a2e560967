"""Kinds of the ``netns`` provider: real machines as Linux network namespaces on one host.

Machines hang off a bridge that lives in a namespace of the project's own; dnsmasq serves DHCP on
it from ``dhcpRange``, and the control plane VIP must be an address of the subnet outside that range.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object
from anywhere.api.v1alpha1.sim import IPRange


class NetnsDatacenterConfigSpec(Model):
    bridge_name: str | None = None
    bridge_subnet: str | None = None
    gateway: str | None = None
    dhcp_range: IPRange | None = None


class NetnsDatacenterConfigStatus(Model):
    pass


class NetnsDatacenterConfig(Object):
    """A bridge in a private network namespace, its subnet, gateway and DHCP range."""

    KIND: ClassVar[str] = "NetnsDatacenterConfig"
    PLURAL: ClassVar[str] = "netnsdatacenterconfigs"
    kind: Literal["NetnsDatacenterConfig"] = "NetnsDatacenterConfig"
    spec: NetnsDatacenterConfigSpec = Field(default_factory=NetnsDatacenterConfigSpec)
    status: NetnsDatacenterConfigStatus | None = None


class NetnsMachineConfigSpec(Model):
    os_family: str | None = None
    boot_timeout: str | None = None


class NetnsMachineConfigStatus(Model):
    pass


class NetnsMachineConfig(Object):
    """A machine in its own network namespace: how long it may take to lease an address and join."""

    KIND: ClassVar[str] = "NetnsMachineConfig"
    PLURAL: ClassVar[str] = "netnsmachineconfigs"
    kind: Literal["NetnsMachineConfig"] = "NetnsMachineConfig"
    spec: NetnsMachineConfigSpec = Field(default_factory=NetnsMachineConfigSpec)
    status: NetnsMachineConfigStatus | None = None
