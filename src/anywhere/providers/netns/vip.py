"""The VIP agent: what kube-vip is on a control plane machine, for a netns machine.

Every control plane machine runs one. The agents elect a leader on a Lease in the cluster's own
API, reached through the machine's *local* API server (``NODE_IP:6443``, never the VIP: an agent
must not need the VIP to decide who holds it, and an agent whose API server is dead stops renewing
and hands the VIP to a machine whose API server works). The leader puts the VIP on ``eth0`` as a
/32 and announces it with gratuitous ARP; a candidate that stops leading removes it at once.

The address is added with a short kernel lifetime (valid and preferred, :attr:`VipTimings.
address_lifetime`) that the leader extends every :attr:`VipTimings.refresh_period` while its
Lease renewals succeed. So an agent killed with SIGKILL, which can remove nothing, still gives
the VIP up: the kernel deletes the address when its lifetime ends. With the lifetime equal to the
Lease duration, the killed leader's address is gone by the time another candidate may take the
Lease over, so a new leader never fights a stale address; the new leader's gratuitous ARP (sent
again a few times, in case a neighbour asked the old holder in between) moves the traffic.

Timings (:class:`VipTimings`), chosen for failover under 5 s after ``kill -9`` of the leader
(kube-vip's defaults, lease 15 s / renew 10 s / retry 2 s in client-go terms, give about 15 s):

- Lease duration 2 s: a candidate takes an unrenewed Lease over 2 s after it *observed* the last
  change, plus up to one retry period for that observation and one for its next attempt, so the
  VIP moves 2.5-4.5 s after the kill (about 3 s typically; several candidates make it shorter).
- Renew deadline 1.5 s and retry period 0.5 s: the leader renews twice a second and gives up
  (removing the VIP) if it cannot renew for 1.5 s, before any other candidate can take the
  Lease; that is three attempts against a local API server, whose answers take milliseconds.
- Address lifetime 2 s, extended every 0.5 s: three extensions may be missed before the address
  lapses, and a leader that misses them has given up the Lease anyway.

On SIGTERM the agent removes the VIP first and then releases the Lease (empty holder), so the
next candidate takes over at its next attempt (within about a second) instead of waiting for expiry.

Lease: ``kube-system/anywhere-cp-vip`` by default. One per cluster, in the cluster's own API
(the name needs no cluster name: each cluster's agents talk to that cluster's API); named after
what it guards, like kube-vip's ``plndr-cp-lock``, but not that name, so that a real kube-vip run
against the same cluster would not share a Lease whose timings and semantics differ from ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from anywhere.providers.netns._host import NetnsError, run, tool
from anywhere.runtime import Client, LeaderElector
from anywhere.runtime._backoff import Backoff

__all__ = [
    "DEFAULT_LEASE_NAME",
    "DEFAULT_LEASE_NAMESPACE",
    "VipAddress",
    "VipAgent",
    "VipError",
    "VipTimings",
]

log = logging.getLogger("anywhere.netns.vip")

DEFAULT_LEASE_NAMESPACE = "kube-system"
DEFAULT_LEASE_NAME = "anywhere-cp-vip"


class VipError(NetnsError):
    """The VIP cannot be managed on this machine (no such interface, netlink refused)."""


@dataclass(frozen=True)
class VipTimings:
    """Leader election and address timings (see the module doc for why these defaults)."""

    lease_duration: int = 2
    renew_deadline: float = 1.5
    retry_period: float = 0.5
    address_lifetime: int = 2
    refresh_period: float = 0.5
    # Gratuitous ARP after taking the VIP: at once, again after this (a lost first packet, a
    # neighbour that asked the old holder while its address lived), then every ``arp_period``.
    arp_repeat: float = 1.0
    arp_period: float = 3.0

    def __post_init__(self) -> None:
        problems = []
        if self.lease_duration < 1:
            problems.append("the lease duration must be at least 1 second")
        if not self.lease_duration > self.renew_deadline > 1.2 * self.retry_period > 0:
            problems.append(
                "the timings must satisfy lease duration > renew deadline > 1.2 * retry period > 0 "
                f"(got {self.lease_duration}, {self.renew_deadline:g}, {self.retry_period:g})"
            )
        if self.address_lifetime < 1:
            problems.append("the address lifetime must be at least 1 second")
        if not 0 < self.refresh_period < self.address_lifetime:
            problems.append(
                f"the refresh period ({self.refresh_period:g}s) must be shorter than the address "
                f"lifetime ({self.address_lifetime}s), or the address lapses while leading"
            )
        if problems:
            raise ValueError("; ".join(problems))


# -- the address on this machine's interface ----------------------------------------------------------


def _index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise VipError(f"interface {ifname} does not exist in this machine's network namespace")
    return int(found[0])


def _present(ipr: Any, index: int, address: ipaddress.IPv4Address) -> bool:
    return any(
        a.get_attr("IFA_ADDRESS") == str(address) and a["prefixlen"] == 32
        for a in ipr.get_addr(index=index, family=2)
    )


def _hold(ifname: str, address: ipaddress.IPv4Address, lifetime: int) -> bool:
    """Add ``address``/32 to ``ifname`` or extend it: valid and preferred for ``lifetime`` seconds
    from now. True if it was not there before."""
    with IPRoute() as ipr:
        index = _index(ipr, ifname)
        was = _present(ipr, index, address)
        try:
            ipr.addr(
                "replace",
                index=index,
                address=str(address),
                prefixlen=32,
                IFA_CACHEINFO={"ifa_preferred": lifetime, "ifa_valid": lifetime, "cstamp": 0, "tstamp": 0},
            )
        except NetlinkError as exc:
            raise VipError(f"cannot add {address}/32 to {ifname}: {exc}") from exc
        return not was


def _drop(ifname: str, address: ipaddress.IPv4Address) -> bool:
    """Remove ``address``/32 from ``ifname``; False if it was not there."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return False
        try:
            ipr.addr("del", index=int(found[0]), address=str(address), prefixlen=32)
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            raise VipError(f"cannot remove {address}/32 from {ifname}: {exc}") from exc
        return True


def _has(ifname: str, address: ipaddress.IPv4Address) -> bool:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        return bool(found) and _present(ipr, int(found[0]), address)


class VipAddress:
    """The VIP on an interface of the network namespace this process runs in.

    Netlink calls run in a worker thread (pyroute2's synchronous socket must not run in our loop).
    """

    def __init__(self, address: ipaddress.IPv4Address, interface: str = "eth0") -> None:
        self.address = address
        self.interface = interface
        self._holding: asyncio.Future[bool] | None = None

    async def check(self) -> None:
        """Raise :class:`VipError` if the interface does not exist."""

        def probe() -> None:
            with IPRoute() as ipr:
                _index(ipr, self.interface)

        await asyncio.to_thread(probe)

    async def hold(self, lifetime: int) -> bool:
        """Add the VIP or extend its lifetime to ``lifetime`` seconds; True if it was not there."""
        # Shielded: cancelling the caller must not leave the netlink call running unseen in its
        # thread, where it could add the address after drop() removed it.
        self._holding = asyncio.ensure_future(
            asyncio.to_thread(_hold, self.interface, self.address, lifetime)
        )
        return await asyncio.shield(self._holding)

    async def drop(self) -> bool:
        """Remove the VIP (after any hold still under way); False if it was not there."""
        holding = self._holding
        if holding is not None:
            if not holding.done():
                await asyncio.wait({holding})
            if not holding.cancelled():
                holding.exception()  # retrieved: its caller may have been cancelled before it ended
        return await asyncio.to_thread(_drop, self.interface, self.address)

    async def present(self) -> bool:
        return await asyncio.to_thread(_has, self.interface, self.address)

    async def announce(self) -> None:
        """Gratuitous ARP for the VIP from the interface: an unsolicited request (``arping -U``)
        and an unsolicited reply (``arping -A``); neighbours differ in which one updates their
        cache. Failures are logged, not raised: the VIP still answers ARP requests without it."""
        arping = tool("arping")
        results = await asyncio.gather(
            *(
                run([arping, "-q", mode, "-c", "1", "-I", self.interface, str(self.address)], timeout=10)
                for mode in ("-U", "-A")
            ),
            return_exceptions=True,
        )
        for mode, result in zip(("-U", "-A"), results, strict=True):
            if isinstance(result, BaseException):
                log.warning("gratuitous ARP (arping %s) for %s failed: %s", mode, self.address, result)
            elif result.returncode != 0:
                log.warning(
                    "gratuitous ARP (arping %s) for %s failed (exit %d): %s",
                    mode,
                    self.address,
                    result.returncode,
                    (result.stderr or result.stdout).strip(),
                )


# -- the agent --------------------------------------------------------------------------------------------


class VipAgent:
    """A candidate for the VIP: ``identity`` must be unique among the cluster's candidates (the
    machine's name: a restarted agent then resumes a Lease it still holds at once, as kube-vip,
    whose identity is the node name, does)."""

    def __init__(
        self,
        client: Client,
        vip: ipaddress.IPv4Address,
        identity: str,
        *,
        interface: str = "eth0",
        lease_namespace: str = DEFAULT_LEASE_NAMESPACE,
        lease_name: str = DEFAULT_LEASE_NAME,
        timings: VipTimings | None = None,
    ) -> None:
        self.timings = timings or VipTimings()
        self.address = VipAddress(vip, interface)
        self.identity = identity
        self.elector = LeaderElector(
            client,
            lease_namespace,
            lease_name,
            identity,
            lease_duration=float(self.timings.lease_duration),
            renew_deadline=self.timings.renew_deadline,
            retry_period=self.timings.retry_period,
            release_on_cancel=True,
        )

    @property
    def leading(self) -> bool:
        return self.elector.is_leader

    def describe(self) -> str:
        t = self.timings
        return (
            f"VIP {self.address.address} on {self.address.interface}: candidate {self.identity} for "
            f"Lease {self.elector.namespace}/{self.elector.name} at {self.elector.client.config.server} "
            f"(lease {t.lease_duration}s, renew deadline {t.renew_deadline:g}s, retry {t.retry_period:g}s, "
            f"address lifetime {t.address_lifetime}s)"
        )

    async def run(self) -> None:
        """Campaign for the VIP until cancelled; cancelling removes the VIP and releases the Lease."""
        if await self.address.drop():
            # A previous agent on this machine died holding it; if that agent's Lease is still ours
            # we get it back at once below.
            log.info(
                "removed %s/32 left on %s by a previous agent", self.address.address, self.address.interface
            )
        backoff = Backoff(initial=self.timings.retry_period, maximum=5.0)
        while True:
            try:
                await self.elector.run(self._lead)
                backoff.reset()
            except Exception as exc:
                # The Lease was released on the way out, so another machine can take the VIP; this
                # one campaigns again after a pause (an agent that exited would never come back).
                delay = backoff.next()
                expected = isinstance(exc, NetnsError | OSError)
                log.error(
                    "cannot hold the VIP: %s; campaigning again in %.1fs",
                    exc,
                    delay,
                    exc_info=None if expected else exc,
                )
                await asyncio.sleep(delay)

    async def _lead(self) -> None:
        """While leading: hold the VIP, extend its lifetime, announce it; remove it when done."""
        loop = asyncio.get_running_loop()
        t = self.timings
        address, interface = self.address.address, self.address.interface
        announcer: asyncio.Task[None] | None = None
        try:
            await self.address.hold(t.address_lifetime)
            log.info("leading: %s/32 is on %s; sending gratuitous ARP", address, interface)
            announcer = asyncio.create_task(self._announce_forever(), name="gratuitous ARP")
            while True:
                await asyncio.sleep(t.refresh_period)
                # Extend only while the Lease is being renewed: a leader about to give up must
                # not keep the address alive past the moment another candidate may take over.
                if loop.time() - self.elector.last_renewal < t.renew_deadline:
                    await self.address.hold(t.address_lifetime)
        finally:
            if announcer is not None:
                announcer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await announcer
            try:
                removed = await self.address.drop()
            except Exception as exc:  # the kernel drops it when its lifetime ends anyway
                log.error(
                    "could not remove %s/32 from %s: %s (it lapses within %ds)",
                    address,
                    interface,
                    exc,
                    t.address_lifetime,
                )
            else:
                log.info(
                    "not leading: %s/32 %s %s",
                    address,
                    "removed from" if removed else "was not on",
                    interface,
                )

    async def _announce_forever(self) -> None:
        await self.address.announce()
        await asyncio.sleep(self.timings.arp_repeat)
        while True:
            await self.address.announce()
            await asyncio.sleep(self.timings.arp_period)
