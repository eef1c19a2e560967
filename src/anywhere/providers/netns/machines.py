"""Machines: one network namespace each, plugged into a fabric, addressed by DHCP.

A machine named ``NAME`` in state folder ``S`` is namespace ``aw-m-<scope>-NAME`` with ``lo``
up and ``eth0``, whose veth peer ``awv<hash>`` sits on the fabric's bridge. ``eth0`` has a MAC
derived from the machine's name, so a machine that is retried or rebooted gets the lease it had.

Its address comes from busybox ``udhcpc`` running inside the namespace with a script of ours
(written to the machine's state folder) that sets the address and default route on ``eth0`` and
nothing else; the host's /etc/resolv.conf is never read or written.

Renewal: udhcpc keeps running in the background (detached, recorded like any machine process),
renews at half the lease time and releases the lease when it is stopped, as a real machine's
DHCP client does. We chose that over very long leases because a lease then means what it means
on a real network: a machine that vanished without a release loses its address after the lease
time, and ``destroy`` returns the address at once. ``ensure`` restarts a client that died, asking
for the same address, without touching the configured one (the script keeps the address on
``deconfig``, which udhcpc runs at every start, so connections survive a client restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anywhere.providers.netns import _netlink
from anywhere.providers.netns._host import (
    MACHINE_PREFIX,
    VETH_PREFIX,
    NetnsError,
    RunResult,
    digest,
    in_netns,
    kill_namespace,
    lock_for,
    name_token,
    namespace_pids,
    netns_exists,
    read_json,
    remove_tree,
    run,
    scope_of,
    signal_pid,
    stable_mac,
    tool,
    wait_until,
    write_json,
)
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.processes import ProcessTable

__all__ = ["DhcpTimeoutError", "Lease", "MachineNamespace", "machine_namespace"]

IFNAME = "eth0"
UDHCPC = "udhcpc"  # the process name of the DHCP client in a machine's ProcessTable
DEFAULT_DHCP_TIMEOUT = 20.0
_RELEASE_TIMEOUT = 3.0


class DhcpTimeoutError(NetnsError):
    """A machine got no DHCP lease in time."""


@dataclass(frozen=True)
class Lease:
    """The lease a machine holds, as its DHCP client last applied it."""

    address: ipaddress.IPv4Address
    prefixlen: int
    router: ipaddress.IPv4Address | None
    server: ipaddress.IPv4Address | None
    lease_seconds: int
    obtained_at: float

    @property
    def interface(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.address}/{self.prefixlen}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        def optional(text: Any) -> ipaddress.IPv4Address | None:
            return ipaddress.IPv4Address(text) if text else None

        return cls(
            address=ipaddress.IPv4Address(data["address"]),
            prefixlen=int(data["prefixlen"]),
            router=optional(data.get("router")),
            server=optional(data.get("server")),
            lease_seconds=int(data.get("leaseSeconds") or 0),
            obtained_at=float(data["obtainedAt"]),
        )


def machine_namespace(state_dir: Path, name: str) -> str:
    return f"{MACHINE_PREFIX}{scope_of(state_dir)}-{name_token(name)}"


def _hostname(name: str) -> str | None:
    """A DHCP host name for ``name`` (shown in dnsmasq's lease file), if one can be made."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or None


_SCRIPT = """#!/bin/sh
# Written by anywhere (netns provider): applies DHCP leases to one machine's {ifname}.
# It sets the address and the default route of $interface only; it never touches resolv.conf.
DIR='{folder}'
IP='{ip}'
case "$1" in
deconfig)
    # udhcpc runs this at every start and when a lease is lost. The address stays: a restarted
    # client asks for it again, and connections of the machine's services survive. A new lease
    # replaces it (bound).
    "$IP" link set dev "$interface" up
    ;;
bound|renew)
    new="$ip/${{mask:-32}}"
    old=$(cat "$DIR/address" 2>/dev/null)
    if [ -n "$old" ] && [ "$old" != "$new" ]; then
        "$IP" -4 addr del "$old" dev "$interface" 2>/dev/null
    fi
    "$IP" -4 addr replace "$new" dev "$interface" || exit 1
    gw="${{router%% *}}"
    if [ -n "$gw" ]; then
        "$IP" -4 route replace default via "$gw" dev "$interface" || exit 1
    fi
    echo "$new" > "$DIR/address.tmp" && mv -f "$DIR/address.tmp" "$DIR/address"
    printf '{{"address": "%s", "prefixlen": %s, "router": "%s", "server": "%s", "leaseSeconds": %s, "obtainedAt": %s}}\\n' \\
        "$ip" "${{mask:-32}}" "$gw" "$serverid" "${{lease:-0}}" "$(date +%s.%N)" > "$DIR/lease.json.tmp" \\
        && mv -f "$DIR/lease.json.tmp" "$DIR/lease.json"
    ;;
esac
exit 0
"""


class MachineNamespace:
    """Machine ``name`` on ``fabric``: its namespace, veth, DHCP lease, and processes."""

    def __init__(self, fabric: Fabric, name: str) -> None:
        if not name:
            raise ValueError("a machine needs a name")
        self.fabric = fabric
        self.name = name
        self.namespace = machine_namespace(fabric.state_dir, name)
        self.folder = fabric.state_dir / "machines" / name_token(name)
        self.mac = stable_mac(name)
        self.peer = VETH_PREFIX + digest(self.namespace, 12)
        self.ifname = IFNAME
        self.processes = ProcessTable(self.folder / "processes", self.namespace)

    @classmethod
    def load(cls, state_dir: Path, name: str) -> MachineNamespace | None:
        """Machine ``name`` as recorded in ``state_dir`` (with its fabric), or None."""
        data = read_json(Path(state_dir) / "machines" / name_token(name) / "machine.json")
        if data is None:
            return None
        fabric = Fabric.load(state_dir, str(data.get("bridge")))
        return None if fabric is None else cls(fabric, name)

    @classmethod
    def all(cls, state_dir: Path) -> list[MachineNamespace]:
        """Every machine recorded in ``state_dir`` whose fabric is recorded too."""
        machines = []
        for path in sorted((Path(state_dir) / "machines").glob("*/machine.json")):
            data = read_json(path)
            if data and isinstance(data.get("name"), str):
                machine = cls.load(state_dir, data["name"])
                if machine is not None:
                    machines.append(machine)
        return machines

    @property
    def script_file(self) -> Path:
        return self.folder / "udhcpc.sh"

    @property
    def lease_file(self) -> Path:
        return self.folder / "lease.json"

    def exists(self) -> bool:
        return netns_exists(self.namespace)

    def lease(self) -> Lease | None:
        """The lease the DHCP client last applied, or None."""
        data = read_json(self.lease_file)
        if data is None:
            return None
        try:
            return Lease.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None

    async def ensure(self, timeout: float = DEFAULT_DHCP_TIMEOUT) -> Lease:
        """Make the machine whole (namespace, ``lo``, ``eth0`` on the bridge, a DHCP client with a
        lease) and return its lease. Safe to repeat: a machine that has all of it is left alone.

        If no lease comes within ``timeout`` seconds, DhcpTimeoutError says so; on that and any
        other failure to lease, a machine made by this call is removed again (a machine that never
        got an address has nothing worth keeping).
        """
        async with lock_for(self.namespace):
            created = not self.exists()
            try:
                await self._plug()
                return await self._dhcp(timeout)
            except NetnsError:
                if created:
                    await self._destroy()
                raise

    async def plug(self) -> None:
        """Namespace and network interfaces only, without DHCP."""
        async with lock_for(self.namespace):
            await self._plug()

    async def _plug(self) -> None:
        if not self.fabric.exists():
            raise NetnsError(
                f"fabric {self.fabric.spec.bridge} ({self.fabric.namespace}) is not up: ensure it before "
                f"machine {self.name}"
            )
        # Record first, create second: a crash in between leaves a record that cleanup finds.
        write_json(
            self.folder / "machine.json",
            {
                "name": self.name,
                "namespace": self.namespace,
                "bridge": self.fabric.spec.bridge,
                "mac": self.mac,
                "peer": self.peer,
            },
        )
        await asyncio.to_thread(_netlink.create_netns, self.namespace)
        await asyncio.to_thread(
            _netlink.ensure_machine_link,
            self.namespace,
            self.fabric.namespace,
            self.fabric.spec.bridge,
            self.peer,
            self.mac,
            self.ifname,
        )

    async def _dhcp(self, timeout: float) -> Lease:
        current = self.lease()
        if current is not None and self.processes.running(UDHCPC):
            configured = await self.addresses()
            if current.interface in configured:
                return current
        return await self._start_client(timeout, current)

    async def _start_client(self, timeout: float, previous: Lease | None) -> Lease:
        busybox = tool("busybox")
        if not self.fabric.dnsmasq.running():
            raise NetnsError(
                f"machine {self.name} cannot lease an address: dnsmasq of fabric {self.fabric.spec.bridge} "
                f"is not running; ensure the fabric (see {self.fabric.dnsmasq.log_file})"
            )
        await self.processes.stop(UDHCPC, grace=2.0)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.script_file.write_text(_SCRIPT.format(ifname=self.ifname, folder=self.folder, ip=tool("ip")))
        self.script_file.chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            self.lease_file.unlink()
        argv = [busybox, "udhcpc", "-f", "-R", "-i", self.ifname, "-s", str(self.script_file)]
        # 3 discovers 1 s apart, then a 1 s pause, and again: fast to bind, and it keeps trying.
        argv += ["-t", "3", "-T", "1", "-A", "1"]
        hostname = _hostname(self.name)
        if hostname:
            argv += ["-x", f"hostname:{hostname}"]
        if previous is not None:
            argv += ["-r", str(previous.address)]
        await self.processes.spawn(UDHCPC, argv)

        def settled() -> bool:
            return self.lease_file.exists() or not self.processes.running(UDHCPC)

        await wait_until(settled, timeout)
        lease = self.lease()
        if lease is not None:
            return lease
        died = not self.processes.running(UDHCPC)
        await self.processes.stop(UDHCPC, grace=1.0)
        if died:
            raise NetnsError(
                f"the DHCP client of machine {self.name} exited without a lease; see "
                f"{self.processes.log_path(UDHCPC)}"
            )
        spec = self.fabric.spec
        raise DhcpTimeoutError(
            f"no DHCP lease within {timeout:.0f}s on {spec.bridge}: is the range exhausted? "
            f"({len(self.fabric.leases())} of the {spec.range_size} addresses of "
            f"{spec.range_start}-{spec.range_end} are leased)"
        )

    async def renew(self, timeout: float = 5.0) -> Lease:
        """Ask the running DHCP client to renew now (SIGUSR1) and return the renewed lease."""
        before = self.lease()
        if before is None or self.processes.kill(UDHCPC, signal.SIGUSR1) is None:
            raise NetnsError(f"machine {self.name} has no running DHCP client to renew; ensure it")

        def renewed() -> bool:
            now = self.lease()
            return now is not None and now.obtained_at != before.obtained_at

        if not await wait_until(renewed, timeout):
            raise DhcpTimeoutError(
                f"machine {self.name}: the DHCP server on {self.fabric.spec.bridge} did not renew "
                f"{before.address} within {timeout:g}s"
            )
        lease = self.lease()
        assert lease is not None
        return lease

    async def addresses(self) -> list[ipaddress.IPv4Interface]:
        """The IPv4 addresses on the machine's ``eth0`` (its lease, and a VIP when it holds one)."""
        return await asyncio.to_thread(_netlink.addresses, self.namespace, self.ifname)

    def kill_all(self, sig: int = signal.SIGKILL, *, include_dhcp: bool = False) -> list[int]:
        """Send ``sig`` (default SIGKILL: a crash) to every process in the machine at once, the DHCP
        client only if ``include_dhcp``; for tests of failover. Returns the pids signalled."""
        spared = set()
        client = self.processes.get(UDHCPC)
        if client is not None and not include_dhcp:
            spared.add(client.pid)
        pids = [pid for pid in namespace_pids(self.namespace) if pid not in spared]
        for pid in pids:
            signal_pid(pid, sig)
        return pids

    async def add_address(self, address: ipaddress.IPv4Interface) -> bool:
        """Add ``address`` (a VIP) to ``eth0``; False if it was there already."""
        return await asyncio.to_thread(_netlink.add_address, self.namespace, self.ifname, address)

    async def remove_address(self, address: ipaddress.IPv4Interface) -> bool:
        """Remove ``address`` from ``eth0``; False if it was not there."""
        return await asyncio.to_thread(_netlink.delete_address, self.namespace, self.ifname, address)

    async def announce(self, address: ipaddress.IPv4Address) -> None:
        """Send a gratuitous ARP for ``address`` from ``eth0`` (what kube-vip does after taking the
        VIP), so neighbours that cached another machine's MAC for it switch at once. Takes ~1 s."""
        result = await self.run(
            ["arping", "-q", "-U", "-c", "1", "-I", self.ifname, str(address)], timeout=10
        )
        if result.returncode != 0:
            raise NetnsError(
                f"gratuitous ARP for {address} from machine {self.name} failed: "
                f"{(result.stderr or result.stdout).strip()}"
            )

    async def run(self, argv: list[str], timeout: float = 30.0) -> RunResult:
        """Run a short command inside the machine (``ping``, ``arping``, ...) and wait for it."""
        program = tool(argv[0])
        return await run(in_netns(self.namespace, [program, *argv[1:]]), timeout=timeout)

    async def destroy(self, grace: float = 2.0) -> None:
        """Power the machine off and take it away: release its lease, stop every process in its
        namespace (TERM, KILL after ``grace``), delete its veth and namespace and its state
        folder. Nothing is left behind; a machine already gone is fine."""
        async with lock_for(self.namespace):
            await self._destroy(grace)

    async def _destroy(self, grace: float = 2.0) -> None:
        if self.exists():
            await self._release()
            await kill_namespace(self.namespace, grace)
            # Deleting our end of the pair removes both at once; a namespace's interfaces are
            # otherwise removed by the kernel a little after the namespace goes.
            await asyncio.to_thread(_netlink.delete_link, self.namespace, self.ifname)
        await asyncio.to_thread(_netlink.delete_link, self.fabric.namespace, self.peer)
        await asyncio.to_thread(_netlink.remove_netns, self.namespace)
        await self._forget_lease()
        remove_tree(self.folder)

    def _holds_lease(self) -> bool:
        return any(lease.mac == self.mac for lease in self.fabric.leases())

    async def _release(self) -> None:
        """Send a DHCP release: stopping udhcpc (-R) sends one. If the client is dead but the
        server still holds our lease, a short-lived client takes the lease back and releases it."""
        server = self.fabric.dnsmasq.running()
        if self.processes.running(UDHCPC):
            await self.processes.stop(UDHCPC, grace=2.0)
            if not server:
                return  # nobody heard the release; _forget_lease drops the lease from the file
        elif self._holds_lease() and server:
            with contextlib.suppress(NetnsError):
                await self._start_client(_RELEASE_TIMEOUT, self.lease())
                await self.processes.stop(UDHCPC, grace=2.0)
        else:
            return
        await wait_until(lambda: not self._holds_lease(), 2.0)

    async def _forget_lease(self) -> None:
        """Last resort when a release got lost: drop the lease from dnsmasq's file (restarting
        dnsmasq around it if it runs, since it owns the file while it runs)."""
        if not self._holds_lease():
            return
        dnsmasq = self.fabric.dnsmasq
        was_running = await dnsmasq.stop()
        dnsmasq.remove_lease(self.mac)
        if was_running:
            await dnsmasq.ensure()
