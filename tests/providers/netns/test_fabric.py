"""The fabric: its namespace, bridge and dnsmasq made once however often and from whatever state
it is ensured, dnsmasq missing, dnsmasq killed, and conflicting settings."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import signal
from pathlib import Path

import pytest

from anywhere.providers.netns import _netlink
from anywhere.providers.netns._host import (
    NetnsError,
    ToolMissingError,
    list_netns,
    netns_exists,
    netns_path,
    scope_of,
    wait_until,
)
from anywhere.providers.netns.dnsmasq import read_leases
from anywhere.providers.netns.fabric import Fabric, FabricConflictError, FabricSpec
from anywhere.providers.netns.inventory import discover
from anywhere.providers.netns.machines import MachineNamespace
from tests.providers.netns.hardware import make_fabric, requires_root, spec, state_dir

__all__ = ["state_dir"]

pytestmark = requires_root


async def test_ensure_twice_is_one_fabric(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    pid = fabric.dnsmasq.pid()
    await fabric.ensure()
    scope = scope_of(state_dir)
    assert list_netns(f"aw-f-{scope}-") == [f"aw-f-{scope}-awt-br0"] == [fabric.namespace]
    assert fabric.dnsmasq.pid() == pid is not None
    assert len((await discover(state_dir)).dnsmasq) == 1
    names = await asyncio.to_thread(_netlink.link_names, fabric.namespace)
    assert names == ["awt-br0", "lo"]
    gateway = await asyncio.to_thread(_netlink.addresses, fabric.namespace, "awt-br0")
    assert gateway == [ipaddress.IPv4Interface("10.231.0.1/24")]
    # The bridge is not in the host's namespace.
    assert "awt-br0" not in os.listdir("/sys/class/net")


async def test_a_half_made_fabric_is_completed(state_dir: Path) -> None:
    fabric = Fabric(state_dir, spec())
    # A creation killed after the namespace's placeholder file was made, before its mount.
    netns_path(fabric.namespace).touch()
    assert not netns_exists(fabric.namespace)
    await fabric.ensure()
    assert netns_exists(fabric.namespace)
    # A creation killed with the namespace made and the bridge without its address or dnsmasq.
    await fabric.dnsmasq.stop()
    await asyncio.to_thread(_netlink.remove_netns, fabric.namespace)
    await asyncio.to_thread(_netlink.create_netns, fabric.namespace)
    await fabric.ensure()
    assert fabric.dnsmasq.running()
    assert await asyncio.to_thread(_netlink.addresses, fabric.namespace, "awt-br0") == [
        ipaddress.IPv4Interface("10.231.0.1/24")
    ]


async def test_other_settings_for_the_same_bridge_are_refused(state_dir: Path) -> None:
    await make_fabric(state_dir)
    other = Fabric(state_dir, spec(start="10.231.0.150", end="10.231.0.160"))
    with pytest.raises(
        FabricConflictError, match=r"already exists .* DHCP range 10\.231\.0\.100-10\.231\.0\.120"
    ):
        await other.ensure()


def test_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="contains the gateway"):
        FabricSpec.of("br", "10.0.0.0/24", "10.0.0.5", "10.0.0.1", "10.0.0.9")
    with pytest.raises(ValueError, match=r"not in 10\.0\.0\.0/24"):
        FabricSpec.of("br", "10.0.0.0/24", "10.0.0.1", "10.0.1.1", "10.0.1.9")
    with pytest.raises(ValueError, match="not a Linux interface name"):
        FabricSpec.of("a-bridge-name-too-long", "10.0.0.0/24", "10.0.0.1", "10.0.0.10", "10.0.0.20")


async def test_dnsmasq_missing_is_a_clear_error(
    state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH with every tool the provider runs but dnsmasq.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("nsenter", "ip", "busybox", "arping", "ping"):
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    fabric = Fabric(state_dir, spec())
    with pytest.raises(ToolMissingError, match=r"dnsmasq is not installed .*install dnsmasq-base"):
        await fabric.ensure()
    assert not fabric.exists()


async def test_killed_dnsmasq_is_restarted_and_leases_keep_working(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    first = MachineNamespace(fabric, "m1")
    lease = await first.ensure()
    pid = fabric.dnsmasq.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert await wait_until(lambda: not fabric.dnsmasq.running(), 5)
    late = MachineNamespace(fabric, "m-late")
    with pytest.raises(NetnsError, match=r"dnsmasq of fabric awt-br0 is not running; ensure the fabric"):
        await late.ensure()
    assert not late.exists()

    await fabric.ensure()
    assert fabric.dnsmasq.pid() not in (None, pid)
    # The restarted server knows the lease from its file: it renews it, and leases another
    # address to a new machine.
    renewed = await first.renew()
    assert renewed.address == lease.address
    assert renewed.obtained_at > lease.obtained_at
    second = await MachineNamespace(fabric, "m2").ensure()
    assert second.address != lease.address
    assert {entry.address for entry in read_leases(fabric.dnsmasq.lease_file)} == {
        lease.address,
        second.address,
    }
    ping = await first.run(["ping", "-c", "1", "-W", "2", str(second.address)])
    assert ping.returncode == 0, ping.stdout + ping.stderr
