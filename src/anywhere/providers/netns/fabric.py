"""A fabric: the network of a NetnsDatacenterConfig, as a namespace of the project's own.

The namespace ``aw-f-<scope>-<bridge>`` holds the bridge (``spec.bridgeName``) carrying the
gateway address of ``spec.bridgeSubnet``, and dnsmasq serving ``spec.dhcpRange`` on it. Machines
plug their veth peers into that bridge. The host's own interfaces are never touched: the bridge
is not in the host's namespace, so nothing a machine sends can leave the fabric.

``ensure`` converges from any state (nothing, a half-made fabric left by a killed process, a
complete one, a dead dnsmasq), so controllers may call it on every reconcile. Its settings are
recorded in ``fabric.json``; a later call with other settings is refused (they are immutable
in the datacenter config too), because changing a live fabric's subnet would strand its machines.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anywhere.providers.netns import _netlink
from anywhere.providers.netns._host import (
    FABRIC_PREFIX,
    NetnsError,
    kill_namespace,
    lock_for,
    netns_exists,
    read_json,
    remove_tree,
    scope_of,
    stable_mac,
    tool,
    write_json,
)
from anywhere.providers.netns.dnsmasq import DEFAULT_LEASE_SECONDS, DhcpLease, Dnsmasq

__all__ = ["Fabric", "FabricConflictError", "FabricSpec", "fabric_namespace"]

_BRIDGE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class FabricConflictError(NetnsError):
    """The fabric exists with other settings than the ones asked for."""


@dataclass(frozen=True)
class FabricSpec:
    """What a fabric is: a bridge, its subnet and gateway, and the DHCP range served on it."""

    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    range_start: ipaddress.IPv4Address
    range_end: ipaddress.IPv4Address
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    def __post_init__(self) -> None:
        problems = []
        if not _BRIDGE.match(self.bridge) or self.bridge in (".", ".."):
            problems.append(f"{self.bridge!r} is not a Linux interface name (1-15 letters, digits, '_.-')")
        usable = [a for a in (self.gateway, self.range_start, self.range_end) if a not in self.subnet]
        if usable:
            problems.append(f"{', '.join(map(str, usable))} not in {self.subnet}")
        if self.range_start > self.range_end:
            problems.append(f"DHCP range start {self.range_start} is after its end {self.range_end}")
        if self.range_start <= self.gateway <= self.range_end:
            problems.append(f"the DHCP range {self.range_start}-{self.range_end} contains the gateway")
        if problems:
            raise ValueError(f"fabric {self.bridge}: " + "; ".join(problems))

    @classmethod
    def of(
        cls,
        bridge: str,
        subnet: str,
        gateway: str,
        range_start: str,
        range_end: str,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> FabricSpec:
        """From text, as a datacenter config spells it."""
        return cls(
            bridge=bridge,
            subnet=ipaddress.IPv4Network(subnet, strict=True),
            gateway=ipaddress.IPv4Address(gateway),
            range_start=ipaddress.IPv4Address(range_start),
            range_end=ipaddress.IPv4Address(range_end),
            lease_seconds=lease_seconds,
        )

    @classmethod
    def from_datacenter(cls, datacenter: Any, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> FabricSpec:
        """From a (defaulted, validated) NetnsDatacenterConfig."""
        spec = datacenter.spec
        if not (spec.bridge_name and spec.bridge_subnet and spec.gateway and spec.dhcp_range):
            raise ValueError(
                f"NetnsDatacenterConfig {datacenter.metadata.name}: bridgeName, bridgeSubnet, gateway "
                "and dhcpRange are all required"
            )
        return cls.of(
            spec.bridge_name,
            spec.bridge_subnet,
            spec.gateway,
            spec.dhcp_range.start,
            spec.dhcp_range.end,
            lease_seconds,
        )

    @property
    def gateway_interface(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.gateway}/{self.subnet.prefixlen}")

    @property
    def range_size(self) -> int:
        return int(self.range_end) - int(self.range_start) + 1

    def in_range(self, address: ipaddress.IPv4Address) -> bool:
        return self.range_start <= address <= self.range_end

    def to_dict(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "subnet": str(self.subnet),
            "gateway": str(self.gateway),
            "rangeStart": str(self.range_start),
            "rangeEnd": str(self.range_end),
            "leaseSeconds": self.lease_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FabricSpec:
        return cls.of(
            data["bridge"],
            data["subnet"],
            data["gateway"],
            data["rangeStart"],
            data["rangeEnd"],
            int(data.get("leaseSeconds", DEFAULT_LEASE_SECONDS)),
        )

    def describe(self) -> str:
        return f"subnet {self.subnet}, gateway {self.gateway}, DHCP range {self.range_start}-{self.range_end}"


def fabric_namespace(state_dir: Path, bridge: str) -> str:
    """The namespace of the fabric for ``bridge`` in ``state_dir``."""
    return f"{FABRIC_PREFIX}{scope_of(state_dir)}-{bridge}"


class Fabric:
    """The fabric for ``spec`` in state folder ``state_dir`` (files in ``fabrics/<bridge>/``)."""

    def __init__(self, state_dir: Path, spec: FabricSpec) -> None:
        # Absolute: the paths go into dnsmasq's configuration, and dnsmasq runs from /.
        self.state_dir = Path(state_dir).resolve()
        self.spec = spec
        self.namespace = fabric_namespace(self.state_dir, spec.bridge)
        self.folder = self.state_dir / "fabrics" / spec.bridge
        self.bridge_mac = stable_mac(f"bridge:{self.namespace}")
        self.dnsmasq = Dnsmasq(
            namespace=self.namespace,
            interface=spec.bridge,
            subnet=spec.subnet,
            gateway=spec.gateway,
            start=spec.range_start,
            end=spec.range_end,
            folder=self.folder,
            lease_seconds=spec.lease_seconds,
        )

    @classmethod
    def load(cls, state_dir: Path, bridge: str) -> Fabric | None:
        """The fabric recorded for ``bridge`` in ``state_dir``, or None."""
        data = read_json(Path(state_dir) / "fabrics" / bridge / "fabric.json")
        if data is None:
            return None
        try:
            return cls(state_dir, FabricSpec.from_dict(data))
        except (KeyError, ValueError):
            return None

    @property
    def record_file(self) -> Path:
        return self.folder / "fabric.json"

    def exists(self) -> bool:
        return netns_exists(self.namespace)

    async def ensure(self) -> None:
        """Make the fabric whole: namespace, bridge with the gateway address, dnsmasq serving."""
        # The tools first, so a missing one fails before anything is made.
        tool("dnsmasq")
        tool("nsenter")
        async with lock_for(self.namespace):
            recorded = read_json(self.record_file)
            if recorded is not None:
                try:
                    old = FabricSpec.from_dict(recorded)
                except (KeyError, ValueError):
                    old = None  # a damaged record: ours to rewrite
                if old is not None and old != self.spec:
                    raise FabricConflictError(
                        f"bridge {self.spec.bridge} already exists in {self.state_dir} with "
                        f"{old.describe()} (lease {old.lease_seconds}s); asked for {self.spec.describe()} "
                        f"(lease {self.spec.lease_seconds}s). A fabric's network is immutable: delete the "
                        "clusters that use it, or choose another bridgeName"
                    )
            # Record first, create second: a crash in between leaves a record that cleanup finds.
            write_json(self.record_file, {**self.spec.to_dict(), "namespace": self.namespace})
            await asyncio.to_thread(_netlink.create_netns, self.namespace)
            await asyncio.to_thread(
                _netlink.ensure_bridge,
                self.namespace,
                self.spec.bridge,
                self.bridge_mac,
                self.spec.gateway_interface,
            )
            await self.dnsmasq.ensure()

    async def destroy(self) -> None:
        """Remove the fabric: its processes (dnsmasq), namespace (bridge and every veth peer
        with it) and state folder. Machines still plugged in lose their network; destroy them
        first. A fabric that is already gone is fine."""
        async with lock_for(self.namespace):
            await kill_namespace(self.namespace)
            await asyncio.to_thread(_netlink.remove_netns, self.namespace)
            remove_tree(self.folder)

    def leases(self) -> list[DhcpLease]:
        """The leases dnsmasq currently holds (from its lease file)."""
        return self.dnsmasq.leases()

    async def ports(self) -> list[str]:
        """The interfaces plugged into the bridge (one veth peer per machine)."""
        return await asyncio.to_thread(_netlink.bridge_ports, self.namespace, self.spec.bridge)
