"""Kinds of the embedded ``sim`` provider: in-memory machines on a simulated node network.

The datacenter declares a node network as a real one would (subnet, gateway, DHCP range) so that the
same address rules apply as on ``netns`` or vSphere; the machine config shapes how machines behave
(how long they take to boot, how often they fail), which is what makes lifecycle logic testable.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object


class IPRange(Model):
    """An inclusive range of IPv4 addresses."""

    start: str | None = None
    end: str | None = None


class SimDatacenterConfigSpec(Model):
    node_subnet: str | None = None
    gateway: str | None = None
    dhcp_range: IPRange | None = None


class SimDatacenterConfigStatus(Model):
    pass


class SimDatacenterConfig(Object):
    """A simulated datacenter: a node subnet whose addresses a DHCP-like pool leases to machines."""

    KIND: ClassVar[str] = "SimDatacenterConfig"
    PLURAL: ClassVar[str] = "simdatacenterconfigs"
    kind: Literal["SimDatacenterConfig"] = "SimDatacenterConfig"
    spec: SimDatacenterConfigSpec = Field(default_factory=SimDatacenterConfigSpec)
    status: SimDatacenterConfigStatus | None = None


class SimMachineConfigSpec(Model):
    os_family: str | None = None
    boot_delay: str | None = None
    boot_jitter: str | None = None
    failure_rate: float | None = None


class SimMachineConfigStatus(Model):
    pass


class SimMachineConfig(Object):
    """How simulated machines behave: boot delay, jitter, and the chance that a boot fails."""

    KIND: ClassVar[str] = "SimMachineConfig"
    PLURAL: ClassVar[str] = "simmachineconfigs"
    kind: Literal["SimMachineConfig"] = "SimMachineConfig"
    spec: SimMachineConfigSpec = Field(default_factory=SimMachineConfigSpec)
    status: SimMachineConfigStatus | None = None
