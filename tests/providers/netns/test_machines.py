"""Machines: distinct DHCP addresses that reach each other and the gateway, an exhausted range,
repeated ensure, and a destroy that leaves nothing (namespace, veth, process, lease, files)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from anywhere.providers.netns import _netlink
from anywhere.providers.netns._host import namespace_pids, netns_exists, pid_alive
from anywhere.providers.netns.inventory import discover
from anywhere.providers.netns.machines import DhcpTimeoutError, MachineNamespace
from tests.providers.netns.hardware import in_range, make_fabric, requires_root, state_dir

__all__ = ["state_dir"]

pytestmark = requires_root


async def test_three_machines_get_distinct_addresses_and_reach_each_other(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    machines = [MachineNamespace(fabric, f"node-{i}") for i in range(3)]
    leases = await asyncio.gather(*(m.ensure() for m in machines))
    addresses = [lease.address for lease in leases]
    assert len(set(addresses)) == 3
    assert all(in_range(a, fabric) for a in addresses)
    assert {lease.router for lease in leases} == {fabric.spec.gateway}
    assert {entry.mac for entry in fabric.leases()} == {m.mac for m in machines}

    for machine, lease in zip(machines, leases, strict=True):
        assert lease.interface in await machine.addresses()
        for target in [fabric.spec.gateway, *addresses]:
            ping = await machine.run(["ping", "-c", "1", "-W", "2", str(target)])
            assert ping.returncode == 0, f"{machine.name} -> {target}: {ping.stdout}{ping.stderr}"

    # Ensuring again changes nothing: same lease, same client.
    client = machines[0].processes.get("udhcpc")
    assert await machines[0].ensure() == leases[0]
    assert machines[0].processes.get("udhcpc") == client
    # A machine's veth peer is on the bridge, one per machine.
    assert sorted(await fabric.ports()) == sorted(m.peer for m in machines)


async def test_a_dead_dhcp_client_is_restarted_with_the_same_address(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    machine = MachineNamespace(fabric, "node-a")
    lease = await machine.ensure()
    # A crash of the machine's services leaves its DHCP client (and address) alone.
    service = await machine.processes.spawn("service", ["sleep", "600"])
    assert machine.kill_all() == [service.pid]
    assert await machine.processes.wait_exit("service", 5)
    assert machine.processes.running("udhcpc")
    assert machine.processes.kill("udhcpc") is not None
    assert await machine.processes.wait_exit("udhcpc", 5)
    again = await machine.ensure()
    assert again.address == lease.address
    assert machine.processes.running("udhcpc")


async def test_an_exhausted_range_is_a_clear_error_and_leaks_nothing(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir, start="10.231.0.100", end="10.231.0.101")
    # One after the other: two machines booting at once may be offered the same one of two
    # addresses, and the one refused waits 3 s before it asks again.
    for i in range(2):
        await MachineNamespace(fabric, f"node-{i}").ensure()
    third = MachineNamespace(fabric, "node-2")
    with pytest.raises(
        DhcpTimeoutError,
        match=r"no DHCP lease within 2s on awt-br0: is the range exhausted\? \(2 of the 2 addresses",
    ):
        await third.ensure(timeout=2)
    assert not netns_exists(third.namespace)
    assert not third.folder.exists()
    assert third.peer not in await fabric.ports()
    assert third.mac not in {entry.mac for entry in fabric.leases()}
    assert not [p for p in (await discover(state_dir)).processes if third.namespace == p.namespace]


@pytest.mark.parametrize("client", ["running", "killed"])
async def test_destroy_leaves_nothing(state_dir: Path, client: str) -> None:
    fabric = await make_fabric(state_dir)
    machine = MachineNamespace(fabric, "node-x")
    keep = MachineNamespace(fabric, "node-y")
    lease = await machine.ensure()
    kept = await keep.ensure()
    service = await machine.processes.spawn("service", ["sleep", "600"])
    if client == "killed":
        # The DHCP client crashed: destroy still gets the lease released.
        machine.processes.kill("udhcpc")
        assert await machine.processes.wait_exit("udhcpc", 5)

    await machine.destroy()

    assert not netns_exists(machine.namespace)
    assert not pid_alive(service.pid, service.start_ticks)
    assert machine.peer not in await asyncio.to_thread(_netlink.link_names, fabric.namespace)
    assert [entry.address for entry in fabric.leases()] == [kept.address]
    assert lease.address != kept.address
    assert not machine.folder.exists()
    # The other machine is untouched and still reaches the gateway.
    ping = await keep.run(["ping", "-c", "1", "-W", "2", str(fabric.spec.gateway)])
    assert ping.returncode == 0
    # Destroying again is fine.
    await machine.destroy()


async def test_destroy_stops_processes_that_ignore_sigterm(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    machine = MachineNamespace(fabric, "node-z")
    await machine.plug()
    stubborn = await machine.processes.spawn(
        "stubborn", ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]
    )
    assert namespace_pids(machine.namespace)
    await machine.destroy(grace=0.3)
    assert not pid_alive(stubborn.pid, stubborn.start_ticks)
    assert not netns_exists(machine.namespace)


async def test_machines_are_found_from_their_records(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    machine = MachineNamespace(fabric, "Node_With.Odd Name")
    lease = await machine.ensure()
    assert machine.namespace.startswith("aw-m-")
    assert "Odd" not in machine.namespace
    assert len(machine.peer) <= 15
    found = MachineNamespace.load(state_dir, "Node_With.Odd Name")
    assert found is not None
    assert found.namespace == machine.namespace
    assert found.lease() == lease
    assert [m.name for m in MachineNamespace.all(state_dir)] == ["Node_With.Odd Name"]
    assert os.path.basename(found.folder) != "Node_With.Odd Name"
