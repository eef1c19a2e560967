"""Rules for datacenters that declare their node network (sim, netns): subnet, gateway, DHCP range."""

from __future__ import annotations

import ipaddress

from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._rules import NodeNetwork
from anywhere.api.v1alpha1.sim import IPRange

_MIN_PREFIX = 8
_MAX_PREFIX = 29


def node_network(subnet: str | None, gateway: str | None, dhcp_range: IPRange | None) -> NodeNetwork | None:
    """The declared network when it is well-formed enough to reason about, else ``None``."""
    try:
        network = ipaddress.IPv4Network(subnet or "", strict=True)
        gw = ipaddress.IPv4Address(gateway) if gateway else None
        span = (
            (ipaddress.IPv4Address(dhcp_range.start), ipaddress.IPv4Address(dhcp_range.end))
            if dhcp_range is not None and dhcp_range.start and dhcp_range.end
            else None
        )
    except ValueError:
        return None
    return NodeNetwork(network, gw, span)


def validate_node_network(
    obj: str, subnet_field: str, subnet: str | None, gateway: str | None, dhcp_range: IPRange | None
) -> list[FieldError]:
    """Every problem with a declared node network, each on its own field."""
    errors = ErrorList(obj)
    network: ipaddress.IPv4Network | None = None
    if not subnet:
        errors.add(subnet_field, "subnet is required, e.g. 10.10.0.0/24")
    else:
        try:
            network = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            errors.add(subnet_field, f"{subnet!r} is not an IPv4 network in CIDR form: {exc}")
    if network is not None and not _MIN_PREFIX <= network.prefixlen <= _MAX_PREFIX:
        errors.add(
            subnet_field, f"prefix /{network.prefixlen} must be between /{_MIN_PREFIX} and /{_MAX_PREFIX}"
        )
        network = None

    gw = _address(errors, "spec.gateway", gateway, "gateway is required, e.g. the subnet's first address")
    if gw is not None and network is not None and not _usable(gw, network):
        errors.add("spec.gateway", f"gateway {gw} is not a usable address of {network}")

    if dhcp_range is None:
        errors.add("spec.dhcpRange", "DHCP range is required (start and end addresses inside the subnet)")
        return errors.errors
    start = _address(errors, "spec.dhcpRange.start", dhcp_range.start, "start address is required")
    end = _address(errors, "spec.dhcpRange.end", dhcp_range.end, "end address is required")
    if start is None or end is None:
        return errors.errors
    if start > end:
        errors.add("spec.dhcpRange", f"start {start} is after end {end}")
    if network is not None:
        for name, address in (("start", start), ("end", end)):
            if not _usable(address, network):
                errors.add(f"spec.dhcpRange.{name}", f"{address} is not a usable address of {network}")
    if gw is not None and start <= gw <= end:
        errors.add("spec.dhcpRange", f"the range {start}-{end} contains the gateway {gw}; leave it out")
    return errors.errors


def _address(errors: ErrorList, field: str, text: str | None, missing: str) -> ipaddress.IPv4Address | None:
    if not text:
        errors.add(field, missing)
        return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        errors.add(field, f"{text!r} is not an IPv4 address")
        return None


def _usable(address: ipaddress.IPv4Address, network: ipaddress.IPv4Network) -> bool:
    return address in network and address not in (network.network_address, network.broadcast_address)
