"""Preflight of a cluster's control plane endpoint VIP on a fabric.

The issue's rule: the endpoint VIP must be inside the bridge subnet, outside the DHCP range, and
not answering. Inside the subnet, or the machines could not reach it on the bridge; outside the
range, or dnsmasq (which runs with ``no-ping``) could lease it to a machine; not answering, or
two hosts would claim it and ARP would flap between them. The last is asked on the wire: arping
from the fabric's namespace, two probes within one second, so the check is quick.
"""

from __future__ import annotations

import ipaddress

from anywhere.providers.netns._host import NetnsError, in_netns, run, tool
from anywhere.providers.netns.fabric import Fabric

__all__ = ["HOST_TOOLS", "VipError", "check_vip", "host_problems", "vip_problems"]

_ARPING_PROBES = 2
_ARPING_DEADLINE_S = 1


class VipError(NetnsError):
    """The control plane endpoint VIP cannot be used on this fabric."""


def _static_problems(fabric: Fabric, vip: ipaddress.IPv4Address) -> list[str]:
    spec = fabric.spec
    advice = (
        f"choose a free address of {spec.subnet} outside the DHCP range {spec.range_start}-{spec.range_end}"
    )
    if vip not in spec.subnet:
        return [f"endpoint VIP {vip} is outside the subnet {spec.subnet} of bridge {spec.bridge}: {advice}"]
    if vip in (spec.subnet.network_address, spec.subnet.broadcast_address):
        kind = "network" if vip == spec.subnet.network_address else "broadcast"
        return [f"endpoint VIP {vip} is the {kind} address of {spec.subnet}: {advice}"]
    if vip == spec.gateway:
        return [f"endpoint VIP {vip} is the gateway of bridge {spec.bridge}: {advice}"]
    if spec.in_range(vip):
        return [
            f"endpoint VIP {vip} is inside the DHCP range {spec.range_start}-{spec.range_end} of bridge "
            f"{spec.bridge}: dnsmasq could lease it to a machine; {advice}"
        ]
    return []


HOST_TOOLS = ("nsenter", "dnsmasq", "busybox", "ip", "arping")
"""What the host needs to run netns machines: entering namespaces, DHCP server and client, the DHCP
client's script (ip), and the VIP's gratuitous ARP."""


def host_problems() -> list[str]:
    """What this host lacks for netns machines (one line each, naming the package to install)."""
    problems = []
    for name in HOST_TOOLS:
        try:
            tool(name)
        except NetnsError as exc:
            problems.append(str(exc))
    return problems


async def answers_arp(fabric: Fabric, address: ipaddress.IPv4Address) -> bool:
    """Whether something on the fabric's bridge answers ARP for ``address`` (arping from the
    fabric's namespace; nothing leaves it). A fabric that does not exist yet has nobody on it."""
    if not fabric.exists():
        return False
    arping = tool("arping")
    argv = [arping, "-q", "-f", "-c", str(_ARPING_PROBES), "-w", str(_ARPING_DEADLINE_S)]
    argv += ["-I", fabric.spec.bridge, str(address)]
    result = await run(in_netns(fabric.namespace, argv), timeout=_ARPING_DEADLINE_S + 10)
    if result.returncode == 0:
        return True
    if result.returncode == 1:
        return False
    raise NetnsError(
        f"arping on {fabric.spec.bridge} failed (exit {result.returncode}): "
        f"{(result.stderr or result.stdout).strip()}"
    )


async def vip_problems(fabric: Fabric, vip: str) -> list[str]:
    """Every reason ``vip`` cannot be the control plane endpoint on ``fabric`` (empty if none)."""
    try:
        address = ipaddress.IPv4Address(vip)
    except ValueError:
        return [f"endpoint VIP {vip!r} is not an IPv4 address"]
    problems = _static_problems(fabric, address)
    if problems:
        return problems
    if await answers_arp(fabric, address):
        return [
            f"endpoint VIP {address} is already in use: something answers ARP for it on bridge "
            f"{fabric.spec.bridge}; choose a free address, or stop whatever holds it"
        ]
    return []


async def check_vip(fabric: Fabric, vip: str) -> None:
    """Raise VipError with every problem of ``vip`` on ``fabric``; return if it may be used."""
    problems = await vip_problems(fabric, vip)
    if problems:
        raise VipError("; ".join(problems))
