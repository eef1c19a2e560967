"""The control plane VIP preflight on a fabric, and discovery/cleanup of a state folder's traces
after a create that crashed half way."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from anywhere.providers.netns import _netlink
from anywhere.providers.netns._host import MACHINE_PREFIX, netns_exists, scope_of
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.inventory import cleanup_all, discover, leaks, scope_id
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.preflight import VipError, answers_arp, check_vip, vip_problems
from tests.providers.netns.hardware import make_fabric, requires_root, spec, state_dir

__all__ = ["state_dir"]

pytestmark = requires_root


async def test_vip_preflight(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    # A free address of the subnet outside the range: fine, even before any machine exists.
    await check_vip(fabric, "10.231.0.10")

    in_range = await vip_problems(fabric, "10.231.0.105")
    assert in_range == [
        "endpoint VIP 10.231.0.105 is inside the DHCP range 10.231.0.100-10.231.0.120 of bridge awt-br0: "
        "dnsmasq could lease it to a machine; choose a free address of 10.231.0.0/24 outside the DHCP "
        "range 10.231.0.100-10.231.0.120"
    ]
    outside = await vip_problems(fabric, "10.99.0.10")
    assert outside == [
        "endpoint VIP 10.99.0.10 is outside the subnet 10.231.0.0/24 of bridge awt-br0: choose a free "
        "address of 10.231.0.0/24 outside the DHCP range 10.231.0.100-10.231.0.120"
    ]
    assert "is the gateway" in (await vip_problems(fabric, "10.231.0.1"))[0]
    assert "not an IPv4 address" in (await vip_problems(fabric, "vip.example"))[0]

    # An address some machine answers for.
    machine = MachineNamespace(fabric, "holder")
    await machine.ensure()
    vip = ipaddress.IPv4Interface("10.231.0.10/24")
    assert await machine.add_address(vip)
    assert not await machine.add_address(vip)
    await machine.announce(vip.ip)
    with pytest.raises(
        VipError, match=r"endpoint VIP 10\.231\.0\.10 is already in use: something answers ARP"
    ):
        await check_vip(fabric, "10.231.0.10")
    # Its own DHCP address answers too; a free one next to it does not.
    lease = machine.lease()
    assert lease is not None
    assert await answers_arp(fabric, lease.address)
    assert await vip_problems(fabric, "10.231.0.11") == []
    # Released, the VIP is free again.
    assert await machine.remove_address(vip)
    assert not await machine.remove_address(vip)
    assert await vip_problems(fabric, "10.231.0.10") == []


async def test_vip_preflight_before_the_fabric_exists(state_dir: Path) -> None:
    fabric = Fabric(state_dir, spec())
    assert await vip_problems(fabric, "10.231.0.10") == []
    assert not fabric.exists()


async def test_cleanup_after_a_crashed_create(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    machines = [MachineNamespace(fabric, f"cp-{i}") for i in range(2)]
    for machine in machines:
        await machine.ensure()
        await machine.processes.spawn("apiserver", ["sleep", "600"])
    # The create "crashed": one machine's record is gone, and a namespace was made without one.
    (machines[1].folder / "machine.json").unlink()
    orphan = f"{MACHINE_PREFIX}{scope_of(state_dir)}-orphan"
    await asyncio.to_thread(_netlink.create_netns, orphan)

    found = await discover(state_dir)
    assert set(found.namespaces) == {fabric.namespace, orphan, *(m.namespace for m in machines)}
    assert len(found.dnsmasq) == 1
    assert {p.argv[-1] for p in found.processes if p.argv[0].endswith("sleep")} == {"600"}
    everything = await discover()
    assert set(found.namespaces) <= set(everything.namespaces)

    scope = scope_id(state_dir)
    await cleanup_all(state_dir)
    assert await leaks(state_dir, scope) == []
    assert not netns_exists(orphan)
    # A second cleanup finds nothing to do.
    await cleanup_all(state_dir)
