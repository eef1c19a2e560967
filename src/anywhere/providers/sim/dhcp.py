"""An in-memory DHCP lease pool with the rules of a real DHCP server on one subnet.

Why this exists: on ``netns`` node addresses come from dnsmasq; on ``sim`` they come from here,
and DESIGN.md §4 promises the same rules, so that whatever a controller gets away with on the
simulator it also gets away with on a real network:

* addresses are leased from a range ``start..end`` inside the subnet, never the subnet's network
  or broadcast address;
* reserved addresses (the gateway, the control plane endpoint VIP) are never leased, even if a
  careless range includes them;
* a client (a MAC address) that asks again gets the lease it already has, renewed: machines
  that reboot, and controllers that retry after a crash, keep their node IP;
* leases may expire (``lease_seconds``; the clock is injectable so tests need not sleep). An
  expired lease stays on record, so its client gets the same address back if nobody took it in
  the meantime, as ISC dhcpd and dnsmasq do, but its address is free for anyone who needs it;
* a full range is an error that names the range and how much of it is in use.

Allocation is deterministic (always the lowest free address), unlike a real server's hashing,
so that tests and simulated clusters are reproducible. State round-trips through
:meth:`LeasePool.to_dict` / :meth:`LeasePool.from_dict` because controllers keep it in API objects.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "DhcpConfigError",
    "DhcpError",
    "DhcpStateError",
    "InvalidMacError",
    "Lease",
    "LeasePool",
    "PoolExhaustedError",
    "normalize_mac",
]

Clock = Callable[[], float]

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$")


class DhcpError(Exception):
    """A request the pool refuses; the message says what is wrong and what to do."""


class DhcpConfigError(DhcpError, ValueError):
    """The pool's subnet, range, reservations or lease time make no sense."""


class InvalidMacError(DhcpError, ValueError):
    """Not a unicast MAC address, so no client could have sent it."""


class PoolExhaustedError(DhcpError):
    """Every leasable address of the range is held by an unexpired lease."""


class DhcpStateError(DhcpError, ValueError):
    """Stored state that is malformed or contradicts the pool (and was therefore not loaded)."""


def normalize_mac(mac: str) -> str:
    """``mac`` in the canonical form ``aa:bb:cc:dd:ee:ff``.

    Accepts ``:`` or ``-`` separators or none, any case. Group (multicast/broadcast) addresses
    and the all-zero address are refused: no network card has them.
    """
    text = mac.strip().lower() if isinstance(mac, str) else ""
    if not _MAC.match(text):
        raise InvalidMacError(f"{mac!r} is not a MAC address; write six hex octets, e.g. 02:00:0a:00:00:05")
    octets = re.findall("[0-9a-f]{2}", text)
    if int(octets[0], 16) & 1:
        raise InvalidMacError(
            f"{mac!r} is a multicast address; a client's MAC has the lowest bit of its first octet clear "
            "(e.g. 02:...)"
        )
    if all(o == "00" for o in octets):
        raise InvalidMacError(f"{mac!r} is the all-zero MAC address, which no client has")
    return ":".join(octets)


@dataclass(frozen=True)
class Lease:
    """One client's lease. ``expires_at`` is in the clock's seconds; ``None`` never expires."""

    mac: str
    hostname: str
    address: ipaddress.IPv4Address
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "hostname": self.hostname,
            "address": str(self.address),
            "expiresAt": self.expires_at,
        }


class LeasePool:
    """Leases addresses of ``start..end`` in ``subnet`` to MAC addresses.

    ``reserved`` maps addresses to what they are for (``{"10.0.0.1": "gateway"}``); the purpose
    appears in messages. ``lease_seconds=None`` gives leases that never expire.
    """

    def __init__(
        self,
        subnet: str | ipaddress.IPv4Network,
        start: str | ipaddress.IPv4Address,
        end: str | ipaddress.IPv4Address,
        *,
        reserved: Mapping[str, str] | Mapping[ipaddress.IPv4Address, str] | None = None,
        lease_seconds: float | None = None,
        clock: Clock = time.time,
    ) -> None:
        try:
            self.subnet = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            raise DhcpConfigError(f"subnet {subnet!r} is not an IPv4 network in CIDR form: {exc}") from None
        self.start = _address(start, "range start")
        self.end = _address(end, "range end")
        if self.start > self.end:
            raise DhcpConfigError(
                f"DHCP range {self.start}-{self.end} starts after it ends; swap start and end"
            )
        for label, address in (("start", self.start), ("end", self.end)):
            if address not in self.subnet:
                raise DhcpConfigError(f"DHCP range {label} {address} is outside the subnet {self.subnet}")
            if self.subnet.prefixlen <= 30 and address in (
                self.subnet.network_address,
                self.subnet.broadcast_address,
            ):
                kind = "network" if address == self.subnet.network_address else "broadcast"
                raise DhcpConfigError(
                    f"DHCP range {label} {address} is the {kind} address of {self.subnet}, which cannot be "
                    "leased; start and end the range on host addresses"
                )
        self.reserved: dict[ipaddress.IPv4Address, str] = {}
        for given, purpose in (reserved or {}).items():
            self.reserved[_address(given, f"reserved address ({purpose})")] = purpose
        if lease_seconds is not None and not lease_seconds > 0:
            raise DhcpConfigError(f"lease time must be positive (or None for no expiry), got {lease_seconds}")
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._by_mac: dict[str, Lease] = {}
        self._by_address: dict[ipaddress.IPv4Address, str] = {}

    # -- views ------------------------------------------------------------------------------

    @property
    def range_text(self) -> str:
        return f"{self.start}-{self.end}"

    @property
    def reserved_in_range(self) -> dict[ipaddress.IPv4Address, str]:
        return {a: p for a, p in sorted(self.reserved.items()) if self.start <= a <= self.end}

    @property
    def capacity(self) -> int:
        """How many addresses the pool can lease at once: the range minus the reserved ones."""
        return int(self.end) - int(self.start) + 1 - len(self.reserved_in_range)

    @property
    def in_use(self) -> int:
        """Unexpired leases."""
        now = self.clock()
        return sum(1 for lease in self._by_mac.values() if not lease.expired(now))

    @property
    def free(self) -> int:
        return self.capacity - self.in_use

    def leases(self, *, include_expired: bool = False) -> list[Lease]:
        """Leases by address; expired ones still on record only if asked for."""
        now = self.clock()
        return sorted(
            (lease for lease in self._by_mac.values() if include_expired or not lease.expired(now)),
            key=lambda lease: lease.address,
        )

    def lease_of(self, mac: str) -> Lease | None:
        """The unexpired lease of ``mac``, if any."""
        lease = self._by_mac.get(normalize_mac(mac))
        return lease if lease is not None and not lease.expired(self.clock()) else None

    def holder_of(self, address: str | ipaddress.IPv4Address) -> Lease | None:
        """The unexpired lease on ``address``, if any."""
        mac = self._by_address.get(_address(address, "address"))
        return self.lease_of(mac) if mac is not None else None

    def __repr__(self) -> str:
        return f"LeasePool({self.subnet}, {self.range_text}, in_use={self.in_use}/{self.capacity})"

    # -- requests ---------------------------------------------------------------------------

    def lease(self, mac: str, hostname: str = "") -> ipaddress.IPv4Address:
        """An address for ``mac``: the one it has (renewed), else the lowest free one.

        A non-empty ``hostname`` replaces the recorded one, as a client's DHCPREQUEST does.
        Raises :class:`PoolExhaustedError` when no address is free.
        """
        mac = normalize_mac(mac)
        now = self.clock()
        expires_at = None if self.lease_seconds is None else now + self.lease_seconds
        current = self._by_mac.get(mac)
        if current is not None:
            self._by_mac[mac] = replace(current, hostname=hostname or current.hostname, expires_at=expires_at)
            return current.address
        address = self._lowest_free(now)
        if address is None:
            reserved = self.reserved_in_range
            also = (
                f" ({len(reserved)} more reserved: "
                + ", ".join(f"{a} ({p})" for a, p in reserved.items())
                + ")"
                if reserved
                else ""
            )
            who = f"{mac} ({hostname})" if hostname else mac
            raise PoolExhaustedError(
                f"DHCP range {self.range_text} of {self.subnet} is exhausted: all {self.capacity} leasable "
                f"addresses are in use{also}, none left for {who}; release the leases of machines that "
                "are gone, or widen the DHCP range"
            )
        previous = self._by_address.get(address)
        if previous is not None:  # an expired lease gives way
            del self._by_mac[previous]
        self._by_mac[mac] = Lease(mac, hostname, address, expires_at)
        self._by_address[address] = mac
        return address

    def release(self, mac: str) -> ipaddress.IPv4Address | None:
        """Give up ``mac``'s lease (DHCPRELEASE); the address it had, or ``None`` if it had none.

        Releasing twice is harmless: a controller that crashed mid-delete simply does it again.
        """
        lease = self._by_mac.pop(normalize_mac(mac), None)
        if lease is None:
            return None
        del self._by_address[lease.address]
        return lease.address

    def expire(self) -> list[Lease]:
        """Forget expired leases (a server's periodic cleanup) and return them."""
        now = self.clock()
        gone = [lease for lease in self._by_mac.values() if lease.expired(now)]
        for lease in gone:
            del self._by_mac[lease.mac]
            del self._by_address[lease.address]
        return sorted(gone, key=lambda lease: lease.address)

    # -- serialization ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "subnet": str(self.subnet),
            "range": {"start": str(self.start), "end": str(self.end)},
            "reserved": {str(a): p for a, p in sorted(self.reserved.items())},
            "leaseSeconds": self.lease_seconds,
            "leases": [lease.to_dict() for lease in self.leases(include_expired=True)],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, clock: Clock = time.time) -> LeasePool:
        """Reload :meth:`to_dict` output; :class:`DhcpStateError` if it is malformed or if a
        lease contradicts the pool (outside the range, on a reserved address, a duplicate)."""
        where = "DHCP state"
        if not isinstance(data, Mapping):
            raise DhcpStateError(f"{where}: expected an object, got {type(data).__name__}")
        span = _get(data, "range", Mapping, where)
        reserved = _get(data, "reserved", Mapping, where)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in reserved.items()):
            raise DhcpStateError(f"{where}: reserved must map addresses to their purposes (strings)")
        lease_seconds = data.get("leaseSeconds")
        if lease_seconds is not None and (
            not isinstance(lease_seconds, int | float) or isinstance(lease_seconds, bool)
        ):
            raise DhcpStateError(f"{where}: leaseSeconds must be a number or null, got {lease_seconds!r}")
        try:
            pool = cls(
                _get(data, "subnet", str, where),
                _get(span, "start", str, f"{where}: range"),
                _get(span, "end", str, f"{where}: range"),
                reserved=reserved,
                lease_seconds=lease_seconds,
                clock=clock,
            )
        except DhcpConfigError as exc:
            raise DhcpStateError(f"{where}: {exc}") from None
        for i, raw in enumerate(_get(data, "leases", list, where)):
            at = f"{where}: leases[{i}]"
            if not isinstance(raw, Mapping):
                raise DhcpStateError(f"{at}: expected an object, got {type(raw).__name__}")
            expires_at = raw.get("expiresAt")
            if expires_at is not None and (
                not isinstance(expires_at, int | float) or isinstance(expires_at, bool)
            ):
                raise DhcpStateError(f"{at}: expiresAt must be a number or null, got {expires_at!r}")
            try:
                mac = normalize_mac(_get(raw, "mac", str, at))
                address = _address(_get(raw, "address", str, at), "address")
            except (InvalidMacError, DhcpConfigError) as exc:
                raise DhcpStateError(f"{at}: {exc}") from None
            if not pool.start <= address <= pool.end:
                raise DhcpStateError(f"{at}: {address} is outside the DHCP range {pool.range_text}")
            if address in pool.reserved:
                raise DhcpStateError(f"{at}: {address} is reserved ({pool.reserved[address]})")
            if mac in pool._by_mac:
                raise DhcpStateError(f"{at}: {mac} has two leases")
            if address in pool._by_address:
                raise DhcpStateError(f"{at}: {address} is leased twice")
            pool._by_mac[mac] = Lease(mac, _get(raw, "hostname", str, at), address, expires_at)
            pool._by_address[address] = mac
        return pool

    # -- internals ------------------------------------------------------------------------------

    def _lowest_free(self, now: float) -> ipaddress.IPv4Address | None:
        taken = {int(a) for a in self.reserved}
        taken.update(int(lease.address) for lease in self._by_mac.values() if not lease.expired(now))
        candidate = int(self.start)
        while candidate in taken:
            candidate += 1
        return ipaddress.IPv4Address(candidate) if candidate <= int(self.end) else None


def _address(value: str | ipaddress.IPv4Address, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise DhcpConfigError(f"{what} {value!r} is not an IPv4 address") from None


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise DhcpStateError(f"{where}: {key} is missing")
    value = data[key]
    if not isinstance(value, kind):
        raise DhcpStateError(f"{where}: {key} has the wrong type: {value!r}")
    return value
