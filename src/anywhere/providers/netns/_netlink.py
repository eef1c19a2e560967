"""Netlink operations on our namespaces (pyroute2), each idempotent and synchronous.

Why synchronous: pyroute2's synchronous ``IPRoute`` runs its own event loop, and opening a socket
inside a namespace forks a helper; both are wrong inside our event loop. Callers run these
functions with ``asyncio.to_thread``. Every function converges (does nothing when the state is
already right), so a step repeated after a crash completes what was half made and duplicates nothing.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
from collections.abc import Iterator
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2 import netns as pr_netns
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from anywhere.providers.netns._host import NetnsError, netns_exists, netns_path

__all__ = [
    "add_address",
    "addresses",
    "create_netns",
    "delete_address",
    "delete_link",
    "ensure_bridge",
    "ensure_machine_link",
    "link_names",
    "remove_netns",
]


def create_netns(namespace: str) -> None:
    """Create ``namespace`` unless it exists; debris of a killed creation is replaced."""
    if netns_exists(namespace):
        return
    path = netns_path(namespace)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # an unmounted placeholder left by a creation that died half way
    try:
        pr_netns.create(namespace)
    except OSError as exc:
        if netns_exists(namespace):  # a concurrent creator won
            return
        raise NetnsError(
            f"cannot create network namespace {namespace}: {exc}; network namespaces need root"
        ) from exc


def remove_netns(namespace: str) -> None:
    """Remove ``namespace`` (its interfaces go with it); a missing one is fine."""
    path = netns_path(namespace)
    if netns_exists(namespace):
        pr_netns.remove(namespace)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _ipr(namespace: str) -> Iterator[Any]:
    if not netns_exists(namespace):
        raise NetnsError(f"network namespace {namespace} does not exist")
    # flags=0: never create the namespace as a side effect of looking into it.
    with IPRoute(netns=namespace, flags=0) as ipr:
        yield ipr


def _index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def _up(ipr: Any, index: int) -> None:
    ipr.link("set", index=index, state="up")


def ensure_bridge(namespace: str, bridge: str, mac: str, gateway: ipaddress.IPv4Interface) -> None:
    """``lo`` up, and ``bridge`` with address ``mac`` and ``gateway``, up, in ``namespace``.

    The bridge gets a fixed MAC: otherwise Linux gives it the lowest MAC of its ports, which
    changes as machines come and go, and every machine's ARP entry for the gateway goes stale.
    """
    with _ipr(namespace) as ipr:
        lo = _index(ipr, "lo")
        if lo is not None:
            _up(ipr, lo)
        index = _index(ipr, bridge)
        if index is None:
            try:
                ipr.link("add", ifname=bridge, kind="bridge", address=mac)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise NetnsError(f"cannot create bridge {bridge} in {namespace}: {exc}") from exc
            index = _index(ipr, bridge)
            assert index is not None
        link = ipr.link("get", index=index)[0]
        if link.get_attr("IFLA_LINKINFO") is not None:
            kind = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND")
            if kind != "bridge":
                raise NetnsError(f"{bridge} in {namespace} is a {kind}, not a bridge; delete it")
        if link.get_attr("IFLA_ADDRESS") != mac:
            ipr.link("set", index=index, address=mac)
        _up(ipr, index)
        have = {
            ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(index=index, family=2)
        }
        if gateway not in have:
            try:
                ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise NetnsError(f"cannot add {gateway} to {bridge} in {namespace}: {exc}") from exc


def ensure_machine_link(
    machine_ns: str, fabric_ns: str, bridge: str, peer: str, mac: str, ifname: str = "eth0"
) -> None:
    """``lo`` and ``ifname`` (MAC ``mac``) up in ``machine_ns``, its veth peer ``peer`` plugged
    into ``bridge`` in ``fabric_ns`` and up.

    The pair is made in one request with each end in its namespace, so no end ever appears in
    the host's namespace.
    """
    with _ipr(machine_ns) as mipr, _ipr(fabric_ns) as fipr:
        lo = _index(mipr, "lo")
        if lo is not None:
            _up(mipr, lo)
        bridge_index = _index(fipr, bridge)
        if bridge_index is None:
            raise NetnsError(f"bridge {bridge} is missing in {fabric_ns}: ensure the fabric first")
        eth = _index(mipr, ifname)
        peer_index = _index(fipr, peer)
        if eth is None or peer_index is None:
            # Half a pair cannot exist (deleting one end deletes both), but a peer name can be
            # taken by a pair whose machine end was renamed or moved: start clean.
            if peer_index is not None:
                with contextlib.suppress(NetlinkError):
                    fipr.link("del", index=peer_index)
            if eth is not None:
                with contextlib.suppress(NetlinkError):
                    mipr.link("del", index=eth)
            fabric_fd = os.open(netns_path(fabric_ns), os.O_RDONLY)
            try:
                mipr.link(
                    "add",
                    ifname=ifname,
                    kind="veth",
                    address=mac,
                    peer={"ifname": peer, "net_ns_fd": fabric_fd},
                )
            except NetlinkError as exc:
                raise NetnsError(f"cannot create veth {ifname}/{peer} for {machine_ns}: {exc}") from exc
            finally:
                os.close(fabric_fd)
            eth = _index(mipr, ifname)
            peer_index = _index(fipr, peer)
            assert eth is not None
            assert peer_index is not None
        fipr.link("set", index=peer_index, master=bridge_index)
        _up(fipr, peer_index)
        _up(mipr, eth)


def delete_link(namespace: str, ifname: str) -> bool:
    """Delete ``ifname`` in ``namespace`` (for a veth: both ends). False if there was none."""
    if not netns_exists(namespace):
        return False
    with _ipr(namespace) as ipr:
        index = _index(ipr, ifname)
        if index is None:
            return False
        try:
            ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise
        return True


def link_names(namespace: str) -> list[str]:
    """The interface names in ``namespace`` (empty if it does not exist)."""
    if not netns_exists(namespace):
        return []
    with _ipr(namespace) as ipr:
        return sorted(str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links())


def bridge_ports(namespace: str, bridge: str) -> list[str]:
    """Interfaces enslaved to ``bridge`` in ``namespace``."""
    if not netns_exists(namespace):
        return []
    with _ipr(namespace) as ipr:
        index = _index(ipr, bridge)
        if index is None:
            return []
        return sorted(
            str(link.get_attr("IFLA_IFNAME"))
            for link in ipr.get_links()
            if link.get_attr("IFLA_MASTER") == index
        )


def addresses(namespace: str, ifname: str) -> list[ipaddress.IPv4Interface]:
    """IPv4 addresses on ``ifname`` in ``namespace`` (empty if either is missing)."""
    if not netns_exists(namespace):
        return []
    with _ipr(namespace) as ipr:
        index = _index(ipr, ifname)
        if index is None:
            return []
        return [
            ipaddress.IPv4Interface(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
            for a in ipr.get_addr(index=index, family=2)
        ]


def add_address(namespace: str, ifname: str, address: ipaddress.IPv4Interface) -> bool:
    """Add ``address`` to ``ifname``; False if it was already there."""
    with _ipr(namespace) as ipr:
        index = _index(ipr, ifname)
        if index is None:
            raise NetnsError(f"{ifname} does not exist in {namespace}")
        try:
            ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                return False
            raise NetnsError(f"cannot add {address} to {ifname} in {namespace}: {exc}") from exc
        return True


def delete_address(namespace: str, ifname: str, address: ipaddress.IPv4Interface) -> bool:
    """Remove ``address`` from ``ifname``; False if it was not there."""
    if not netns_exists(namespace):
        return False
    with _ipr(namespace) as ipr:
        index = _index(ipr, ifname)
        if index is None:
            return False
        try:
            ipr.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
        except NetlinkError as exc:
            if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV):
                return False
            raise
        return True
