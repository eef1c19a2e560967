"""The sim provider's DHCP lease pool: each rule of a real server, each message, and properties
over random request sequences (no address leased twice, release makes room, the JSON round trip
changes nothing)."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anywhere.providers.sim.dhcp import (
    DhcpConfigError,
    DhcpStateError,
    InvalidMacError,
    LeasePool,
    PoolExhaustedError,
    normalize_mac,
)

IP = ipaddress.IPv4Address


class Clock:
    """A clock the test moves by hand, so expiry needs no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mac(i: int) -> str:
    return f"02:00:00:00:{i >> 8:02x}:{i & 0xFF:02x}"


def pool(start: str = "10.0.0.10", end: str = "10.0.0.20", **kwargs: Any) -> LeasePool:
    return LeasePool("10.0.0.0/24", start, end, **kwargs)


# -- MAC addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given_mac", ["02:AB:cd:00:00:01", "02-ab-cd-00-00-01", "02abcd000001", " 02:ab:cd:00:00:01 "]
)
def test_macs_are_normalized(given_mac: str) -> None:
    assert normalize_mac(given_mac) == "02:ab:cd:00:00:01"


@pytest.mark.parametrize(
    ("given_mac", "message"),
    [
        ("02:ab:cd:00:00", "is not a MAC address; write six hex octets"),
        ("02:ab:cd-00:00:01", "is not a MAC address"),
        ("02:ab:cd:00:00:0g", "is not a MAC address"),
        ("", "is not a MAC address"),
        (
            "01:00:5e:00:00:01",
            "is a multicast address; a client's MAC has the lowest bit of its first octet clear",
        ),
        ("ff:ff:ff:ff:ff:ff", "is a multicast address"),
        ("00:00:00:00:00:00", "is the all-zero MAC address"),
    ],
)
def test_bad_macs_are_refused(given_mac: str, message: str) -> None:
    with pytest.raises(InvalidMacError, match=message):
        normalize_mac(given_mac)
    with pytest.raises(InvalidMacError):
        pool().lease(given_mac)
    assert isinstance(InvalidMacError("x"), ValueError)


# -- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subnet", "start", "end", "message"),
    [
        ("10.0.0.0/33", "10.0.0.1", "10.0.0.2", "subnet '10.0.0.0/33' is not an IPv4 network"),
        ("10.0.0.1/24", "10.0.0.1", "10.0.0.2", "subnet '10.0.0.1/24' is not an IPv4 network"),
        ("10.0.0.0/24", "10.0.0.x", "10.0.0.2", "range start '10.0.0.x' is not an IPv4 address"),
        ("10.0.0.0/24", "10.0.0.9", "10.0.0.2", "starts after it ends; swap start and end"),
        ("10.0.0.0/24", "10.0.0.9", "10.0.1.2", "DHCP range end 10.0.1.2 is outside the subnet 10.0.0.0/24"),
        ("10.0.0.0/24", "10.0.0.0", "10.0.0.9", "start 10.0.0.0 is the network address of 10.0.0.0/24"),
        ("10.0.0.0/24", "10.0.0.9", "10.0.0.255", "end 10.0.0.255 is the broadcast address"),
    ],
)
def test_bad_configuration_is_refused(subnet: str, start: str, end: str, message: str) -> None:
    with pytest.raises(DhcpConfigError, match=message):
        LeasePool(subnet, start, end)


def test_bad_reservations_and_lease_times_are_refused() -> None:
    with pytest.raises(DhcpConfigError, match=r"reserved address \(gateway\) 'gw' is not an IPv4 address"):
        pool(reserved={"gw": "gateway"})
    with pytest.raises(DhcpConfigError, match="lease time must be positive"):
        pool(lease_seconds=0)


def test_a_point_to_point_subnet_leases_both_addresses() -> None:
    tiny = LeasePool("10.0.0.0/31", "10.0.0.0", "10.0.0.1")
    assert tiny.capacity == 2
    assert [tiny.lease(mac(1)), tiny.lease(mac(2))] == [IP("10.0.0.0"), IP("10.0.0.1")]


# -- leasing ----------------------------------------------------------------------------------------


def test_the_lowest_free_address_is_leased() -> None:
    leases = pool()
    assert [leases.lease(mac(i), f"node-{i}") for i in range(3)] == [
        IP("10.0.0.10"),
        IP("10.0.0.11"),
        IP("10.0.0.12"),
    ]
    leases.release(mac(1))
    assert leases.lease(mac(9)) == IP("10.0.0.11")


def test_the_same_mac_gets_its_lease_back() -> None:
    leases = pool()
    first = leases.lease("02:00:00:00:00:01", "node-a")
    assert leases.lease("02-00-00-00-00-01") == first
    assert leases.in_use == 1
    lease = leases.lease_of("02:00:00:00:00:01")
    assert lease is not None
    assert lease.hostname == "node-a"  # kept when the client sends none
    leases.lease("02:00:00:00:00:01", "node-b")
    lease = leases.lease_of("02:00:00:00:00:01")
    assert lease is not None
    assert lease.hostname == "node-b"


def test_reserved_addresses_are_never_leased_even_inside_the_range() -> None:
    leases = pool(
        "10.0.0.1",
        "10.0.0.5",
        reserved={"10.0.0.1": "gateway", "10.0.0.3": "control plane endpoint", "10.0.1.9": "x"},
    )
    assert leases.capacity == 3
    assert [leases.lease(mac(i)) for i in range(3)] == [IP("10.0.0.2"), IP("10.0.0.4"), IP("10.0.0.5")]


def test_exhaustion_names_the_range_and_the_use() -> None:
    leases = pool("10.0.0.10", "10.0.0.13", reserved={"10.0.0.12": "control plane endpoint"})
    for i in range(3):
        leases.lease(mac(i))
    with pytest.raises(
        PoolExhaustedError,
        match=r"^DHCP range 10.0.0.10-10.0.0.13 of 10.0.0.0/24 is exhausted: all 3 leasable addresses are in use "
        r"\(1 more reserved: 10.0.0.12 \(control plane endpoint\)\), none left for 02:00:00:00:00:09 \(node-9\); "
        r"release the leases of machines that are gone, or widen the DHCP range$",
    ):
        leases.lease(mac(9), "node-9")
    assert leases.free == 0
    leases.release(mac(0))
    assert leases.lease(mac(9)) == IP("10.0.0.10")


def test_exhaustion_without_reservations() -> None:
    leases = pool("10.0.0.10", "10.0.0.10")
    leases.lease(mac(1))
    with pytest.raises(
        PoolExhaustedError, match=r"all 1 leasable addresses are in use, none left for 02:00:00:00:00:02;"
    ):
        leases.lease(mac(2))


def test_release_is_idempotent() -> None:
    leases = pool()
    address = leases.lease(mac(1))
    assert leases.release(mac(1)) == address
    assert leases.release(mac(1)) is None
    assert leases.release(mac(2)) is None
    assert leases.in_use == 0


def test_views() -> None:
    leases = pool()
    leases.lease(mac(2), "b")
    leases.lease(mac(1), "a")
    assert [(lease.hostname, str(lease.address)) for lease in leases.leases()] == [
        ("b", "10.0.0.10"),
        ("a", "10.0.0.11"),
    ]
    holder = leases.holder_of("10.0.0.11")
    assert holder is not None
    assert holder.mac == mac(1)
    assert leases.holder_of("10.0.0.12") is None
    assert leases.lease_of(mac(3)) is None
    assert (leases.capacity, leases.in_use, leases.free) == (11, 2, 9)
    assert repr(leases) == "LeasePool(10.0.0.0/24, 10.0.0.10-10.0.0.20, in_use=2/11)"


# -- expiry -----------------------------------------------------------------------------------------


def test_leases_expire_and_renewal_extends_them() -> None:
    clock = Clock()
    leases = pool(lease_seconds=60, clock=clock)
    leases.lease(mac(1))
    lease = leases.lease_of(mac(1))
    assert lease is not None
    assert lease.expires_at == 1060.0
    clock.now = 1050.0
    leases.lease(mac(1))  # renew
    clock.now = 1100.0
    assert leases.lease_of(mac(1)) is not None
    clock.now = 1110.0
    assert leases.lease_of(mac(1)) is None
    assert leases.in_use == 0
    assert len(leases.leases(include_expired=True)) == 1


def test_an_expired_client_gets_its_address_back_if_nobody_took_it() -> None:
    clock = Clock()
    leases = pool(lease_seconds=60, clock=clock)
    leases.lease(mac(1))
    address = leases.lease(mac(2))
    clock.now += 120
    assert leases.lease(mac(2)) == address


def test_an_expired_lease_gives_its_address_to_a_new_client() -> None:
    clock = Clock()
    leases = pool("10.0.0.10", "10.0.0.10", lease_seconds=60, clock=clock)
    leases.lease(mac(1))
    with pytest.raises(PoolExhaustedError):
        leases.lease(mac(2))
    clock.now += 60
    assert leases.lease(mac(2)) == IP("10.0.0.10")
    assert leases.lease_of(mac(1)) is None
    assert [lease.mac for lease in leases.leases(include_expired=True)] == [mac(2)]
    # the old client now gets nothing: the range is full again
    with pytest.raises(PoolExhaustedError):
        leases.lease(mac(1))


def test_expire_forgets_expired_leases() -> None:
    clock = Clock()
    leases = pool(lease_seconds=60, clock=clock)
    leases.lease(mac(1))
    clock.now += 30
    leases.lease(mac(2))
    clock.now += 40
    assert [lease.mac for lease in leases.expire()] == [mac(1)]
    assert [lease.mac for lease in leases.leases(include_expired=True)] == [mac(2)]
    assert leases.expire() == []


def test_leases_without_a_lease_time_never_expire() -> None:
    clock = Clock()
    leases = pool(clock=clock)
    leases.lease(mac(1))
    clock.now += 10**9
    assert leases.lease_of(mac(1)) is not None
    assert leases.expire() == []


# -- serialization ------------------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    clock = Clock()
    leases = pool(reserved={"10.0.0.1": "gateway", "10.0.0.12": "vip"}, lease_seconds=60, clock=clock)
    leases.lease(mac(1), "a")
    clock.now += 50
    leases.lease(mac(2), "b")
    clock.now += 40  # mac(1) expired, still on record
    data = json.loads(json.dumps(leases.to_dict()))
    assert data["range"] == {"start": "10.0.0.10", "end": "10.0.0.20"}
    assert data["reserved"] == {"10.0.0.1": "gateway", "10.0.0.12": "vip"}
    again = LeasePool.from_dict(data, clock=clock)
    assert again.to_dict() == leases.to_dict()
    assert [lease.expires_at for lease in again.leases(include_expired=True)] == [1060.0, 1110.0]
    assert again.lease(mac(1)) == leases.lease(mac(1)) == IP("10.0.0.10")  # expired, but still its own
    assert again.lease(mac(4)) == leases.lease(mac(4)) == IP("10.0.0.13")


def _state() -> dict[str, Any]:
    leases = pool(reserved={"10.0.0.1": "gateway"})
    leases.lease(mac(1), "a")
    leases.lease(mac(2), "b")
    return leases.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("subnet"), "subnet is missing"),
        (lambda d: d.update(range=["10.0.0.1"]), "range has the wrong type"),
        (lambda d: d["range"].update(end="10.0.1.1"), "outside the subnet"),
        (lambda d: d.update(reserved={"10.0.0.1": 1}), "reserved must map addresses to their purposes"),
        (lambda d: d.update(reserved={"x": "gw"}), "reserved address .* is not an IPv4 address"),
        (lambda d: d.update(leaseSeconds="60"), "leaseSeconds must be a number or null"),
        (lambda d: d.update(leases={}), "leases has the wrong type"),
        (lambda d: d["leases"].__setitem__(0, "a"), r"leases\[0\]: expected an object"),
        (
            lambda d: d["leases"][0].update(expiresAt="soon"),
            r"leases\[0\]: expiresAt must be a number or null",
        ),
        (lambda d: d["leases"][0].update(mac="ff:ff:ff:ff:ff:ff"), r"leases\[0\]: .*multicast"),
        (
            lambda d: d["leases"][0].update(address="10.0.0.x"),
            r"leases\[0\]: address .* is not an IPv4 address",
        ),
        (
            lambda d: d["leases"][0].update(address="10.0.0.30"),
            "10.0.0.30 is outside the DHCP range 10.0.0.10-10.0.0.20",
        ),
        (lambda d: d.update(reserved={"10.0.0.10": "vip"}), r"10.0.0.10 is reserved \(vip\)"),
        (lambda d: d["leases"][1].update(mac=d["leases"][0]["mac"]), "has two leases"),
        (lambda d: d["leases"][1].update(address=d["leases"][0]["address"]), "is leased twice"),
        (lambda d: d["leases"][1].pop("hostname"), r"leases\[1\]: hostname is missing"),
    ],
)
def test_from_dict_rejects_broken_state(change: Any, message: str) -> None:
    data = _state()
    change(data)
    with pytest.raises(DhcpStateError, match=message):
        LeasePool.from_dict(data)
    with pytest.raises(DhcpStateError, match="expected an object"):
        LeasePool.from_dict("x")  # type: ignore[arg-type]


# -- properties ---------------------------------------------------------------------------------------

requests = st.lists(
    st.tuples(
        st.sampled_from(["lease", "lease", "lease", "release", "tick", "tick", "expire"]),
        st.integers(min_value=0, max_value=12),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    ops=requests,
    size=st.integers(min_value=1, max_value=10),
    reserved=st.sets(st.integers(min_value=0, max_value=12), max_size=3),
    lease_seconds=st.one_of(st.none(), st.integers(min_value=1, max_value=3)),
    restart_every=st.integers(min_value=1, max_value=10),
)
def test_leases_never_collide_and_release_makes_room(
    ops: list[tuple[str, int]], size: int, reserved: set[int], lease_seconds: int | None, restart_every: int
) -> None:
    clock = Clock(0.0)
    base = int(IP("10.0.0.10"))
    start, end = IP(base), IP(base + size - 1)
    reserved_map = {str(IP(base + r)): f"reserved-{r}" for r in reserved}
    leases = LeasePool(
        "10.0.0.0/24", start, end, reserved=reserved_map, lease_seconds=lease_seconds, clock=clock
    )
    for step, (op, i) in enumerate(ops):
        if op == "lease":
            # its lease, even an expired one still on record, comes back
            own = next((lease for lease in leases.leases(include_expired=True) if lease.mac == mac(i)), None)
            free_before = leases.free
            try:
                address = leases.lease(mac(i), f"node-{i}")
            except PoolExhaustedError:
                assert own is None
                assert free_before == 0
            else:
                assert start <= address <= end
                granted = leases.lease_of(mac(i))  # active, for the full lease time from now
                assert granted is not None
                assert granted.address == address
                assert granted.expires_at == (None if lease_seconds is None else clock.now + lease_seconds)
                assert str(address) not in reserved_map
                if own is not None:
                    assert address == own.address  # idempotent
                else:
                    # lowest free: nothing below it was free
                    taken = {lease.address for lease in leases.leases()} | {IP(a) for a in reserved_map}
                    assert all(IP(a) in taken for a in range(int(start), int(address)))
        elif op == "release":
            held = leases.lease_of(mac(i))
            in_use = leases.in_use
            leases.release(mac(i))
            assert leases.lease_of(mac(i)) is None
            if held is not None:
                assert leases.in_use == in_use - 1
                assert leases.free >= 1
                lowest_free = min(
                    IP(a)
                    for a in range(int(start), int(end) + 1)
                    if str(IP(a)) not in reserved_map and leases.holder_of(IP(a)) is None
                )
                assert leases.lease(mac(99)) == lowest_free  # release made room for anyone
                leases.release(mac(99))
        elif op == "tick":
            clock.now += i % 4
        else:
            leases.expire()
        active = leases.leases()
        assert len({lease.address for lease in active}) == len(active), "an address is leased twice"
        assert len({lease.mac for lease in leases.leases(include_expired=True)}) == len(
            leases.leases(include_expired=True)
        )
        assert leases.in_use + leases.free == leases.capacity
        assert leases.free >= 0
        if step % restart_every == 0:
            data = json.loads(json.dumps(leases.to_dict()))
            leases = LeasePool.from_dict(data, clock=clock)
            assert leases.to_dict() == data


@settings(max_examples=50, deadline=None)
@given(macs=st.lists(st.integers(min_value=0, max_value=50), max_size=30))
def test_a_reloaded_pool_answers_like_the_original(macs: list[int]) -> None:
    original = pool()
    for i in macs:
        try:
            original.lease(mac(i))
        except PoolExhaustedError:
            original.release(mac(max(i - 1, 0)))
    copy = LeasePool.from_dict(json.loads(json.dumps(original.to_dict())))
    for i in range(60):
        for leases in (original, copy):
            try:
                leases.lease(mac(i))
            except PoolExhaustedError:
                leases.release(mac(i // 2))
        assert copy.to_dict() == original.to_dict()
