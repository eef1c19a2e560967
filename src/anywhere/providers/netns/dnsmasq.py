"""dnsmasq as the DHCP server of a fabric: its configuration, its life, and its lease file.

One dnsmasq per fabric runs inside the fabric's namespace, on the bridge only, with its own
configuration, pid file, lease file and log under the fabric's state folder. Choices and why:

* ``port=0``: no DNS; the machines need addresses, and a DNS server of ours could shadow the host's.
* ``no-ping``: dnsmasq otherwise pings an address for up to 3 s before offering it; our range is
  ours alone, and the control plane VIP is kept out of it by preflight.
* ``dhcp-authoritative``: a client renewing a lease dnsmasq forgot (its lease file lost) is
  answered at once instead of after a timeout.
* Not ``dhcp-sequential-ip``: it would make addresses as predictable as the simulator's pool, but
  dnsmasq then offers the same lowest free address to every machine that boots at once; all but
  one are refused and udhcpc waits 3 s before it asks again. dnsmasq's default picks an address
  from a hash of the MAC, so machines booting together rarely collide.
* ``user=root``: dnsmasq would drop to ``nobody`` and then could not rewrite a lease file in a state
  folder owned by root.
* The configuration is checked with ``dnsmasq --test`` before dnsmasq starts, and dnsmasq is run
  as a daemon: it reports start-up failures (a bad interface, a busy port) through its exit code
  only once it is ready, so a zero exit means it serves.

A running dnsmasq is recognised by its pid file, its command line (our configuration file) and
its network namespace, and reused; a dead one is started again and reads the lease file, so the
leases it had stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from anywhere.providers.netns._host import (
    NetnsError,
    in_netns,
    namespace_of_pid,
    netns_exists,
    netns_id,
    pid_alive,
    proc_argv,
    run,
    start_ticks,
    terminate,
    tool,
)

__all__ = ["DhcpLease", "Dnsmasq", "DnsmasqError", "read_leases"]

DEFAULT_LEASE_SECONDS = 3600
_MIN_LEASE_SECONDS = 120  # dnsmasq refuses shorter leases


class DnsmasqError(NetnsError):
    """dnsmasq is missing, refuses its configuration, or does not start."""


@dataclass(frozen=True)
class DhcpLease:
    """One line of dnsmasq's lease file: ``expiry mac ip hostname client-id``."""

    expires: int  # seconds since the epoch; 0 for an infinite lease
    mac: str
    address: ipaddress.IPv4Address
    hostname: str | None
    client_id: str | None


def read_leases(path: Path) -> list[DhcpLease]:
    """The IPv4 leases in dnsmasq lease file ``path`` (none if it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    leases = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] == "duid":
            continue
        try:
            address = ipaddress.IPv4Address(parts[2])
            expires = int(parts[0])
        except ValueError:
            continue  # an IPv6 lease or a line we do not understand
        leases.append(
            DhcpLease(
                expires=expires,
                mac=parts[1].lower(),
                address=address,
                hostname=None if parts[3] == "*" else parts[3],
                client_id=None if len(parts) < 5 or parts[4] == "*" else parts[4],
            )
        )
    return leases


class Dnsmasq:
    """The DHCP server of one fabric: serves ``start..end`` of ``subnet`` on ``interface`` inside
    network namespace ``namespace``, with its files in ``folder``."""

    def __init__(
        self,
        *,
        namespace: str,
        interface: str,
        subnet: ipaddress.IPv4Network,
        gateway: ipaddress.IPv4Address,
        start: ipaddress.IPv4Address,
        end: ipaddress.IPv4Address,
        folder: Path,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if lease_seconds < _MIN_LEASE_SECONDS:
            raise ValueError(f"lease_seconds must be at least {_MIN_LEASE_SECONDS} (dnsmasq's minimum)")
        self.namespace = namespace
        self.interface = interface
        self.subnet = subnet
        self.gateway = gateway
        self.start = start
        self.end = end
        self.folder = folder
        self.lease_seconds = lease_seconds

    @property
    def conf_file(self) -> Path:
        return self.folder / "dnsmasq.conf"

    @property
    def pid_file(self) -> Path:
        return self.folder / "dnsmasq.pid"

    @property
    def lease_file(self) -> Path:
        return self.folder / "dnsmasq.leases"

    @property
    def log_file(self) -> Path:
        return self.folder / "dnsmasq.log"

    def render_config(self) -> str:
        lines = [
            "# Written by anywhere (netns provider): DHCP for one fabric, no DNS.",
            f"interface={self.interface}",
            "bind-interfaces",
            "except-interface=lo",
            "port=0",
            "no-resolv",
            "no-hosts",
            f"dhcp-range={self.start},{self.end},{self.subnet.netmask},{self.lease_seconds}",
            f"dhcp-option=option:router,{self.gateway}",
            "dhcp-authoritative",
            "no-ping",
            f"dhcp-leasefile={self.lease_file}",
            f"pid-file={self.pid_file}",
            f"log-facility={self.log_file}",
            "user=root",
            "group=root",
        ]
        return "\n".join(lines) + "\n"

    def pid(self) -> int | None:
        """The pid of this fabric's running dnsmasq, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def _is_ours(self, pid: int) -> bool:
        if not pid_alive(pid):
            return False
        argv = proc_argv(pid)
        if not argv or os.path.basename(argv[0]) != "dnsmasq":
            return False
        if f"--conf-file={self.conf_file}" not in argv:
            return False
        return netns_id(self.namespace) == namespace_of_pid(pid)

    def leases(self) -> list[DhcpLease]:
        """The current leases (expired ones excluded only once dnsmasq drops them)."""
        return read_leases(self.lease_file)

    async def ensure(self) -> int:
        """Make dnsmasq serve: reuse a running one with this configuration, restart one whose
        configuration changed, start a dead one. Returns its pid."""
        binary = tool("dnsmasq")
        if not netns_exists(self.namespace):
            raise DnsmasqError(f"cannot start dnsmasq: fabric namespace {self.namespace} does not exist")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.render_config()
        try:
            changed = self.conf_file.read_text() != config
        except FileNotFoundError:
            changed = True
        running = self.pid()
        if running is not None and not changed:
            return running
        if changed:
            tmp = self.conf_file.with_name(".dnsmasq.conf.tmp")
            tmp.write_text(config)
            result = await run([binary, "--test", f"--conf-file={tmp}"], timeout=10)
            if result.returncode != 0:
                raise DnsmasqError(
                    f"dnsmasq refuses the configuration for {self.interface}: "
                    f"{(result.stderr or result.stdout).strip()}"
                )
            os.replace(tmp, self.conf_file)
        if running is not None:
            await self.stop()
        return await self._start(binary)

    async def _start(self, binary: str) -> int:
        self.lease_file.touch(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        errors = self.folder / "dnsmasq.start.err"
        with open(errors, "w+b") as err:
            # The daemon keeps no descriptor of ours: stdout/stderr are a file, not a pipe whose
            # end-of-file we would wait for forever.
            proc = await asyncio.create_subprocess_exec(
                *in_netns(self.namespace, [binary, f"--conf-file={self.conf_file}"]),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
            code = await proc.wait()
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
        with contextlib.suppress(FileNotFoundError):
            errors.unlink()
        if code != 0:
            raise DnsmasqError(
                f"dnsmasq did not start on {self.interface} in {self.namespace} (exit {code}): "
                f"{message or 'no message'}; see {self.log_file}"
            )
        pid = self.pid()
        if pid is None:
            raise DnsmasqError(
                f"dnsmasq started on {self.interface} but is not running (pid file {self.pid_file}); "
                f"see {self.log_file}"
            )
        return pid

    async def stop(self, grace: float = 2.0) -> bool:
        """Stop this fabric's dnsmasq (it writes its lease file on every change, so nothing is
        lost). False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        left = await terminate([(pid, start_ticks(pid))], grace)
        if left:
            raise DnsmasqError(f"dnsmasq (pid {pid}) in {self.namespace} survived SIGKILL")
        return True

    def remove_lease(self, mac: str) -> bool:
        """Drop ``mac``'s lease from the lease file. Only while dnsmasq is stopped: a running one
        rewrites the file from memory. False if there was none."""
        if self.running():
            raise DnsmasqError("remove_lease needs dnsmasq stopped; a running one owns its lease file")
        try:
            lines = self.lease_file.read_text().splitlines()
        except FileNotFoundError:
            return False
        mac = mac.lower()
        kept = [line for line in lines if len(line.split()) < 2 or line.split()[1].lower() != mac]
        if len(kept) == len(lines):
            return False
        tmp = self.lease_file.with_name(".dnsmasq.leases.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, self.lease_file)
        return True
