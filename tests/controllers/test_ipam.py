"""Node pod-CIDR allocation: each rule and message, and properties over random sequences
(blocks never overlap, release makes room, the JSON round trip changes nothing)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anywhere.api.validation.cluster import MAX_NODE_POD_MASK_GAP
from anywhere.controllers.ipam import (
    MAX_MASK_GAP,
    CidrConflictError,
    IpamConfigError,
    IpamStateError,
    PodCidrAllocator,
    PodCidrExhaustedError,
)

NET = ipaddress.IPv4Network


# -- configuration ------------------------------------------------------------------------------------


def test_capacity_is_two_to_the_mask_gap() -> None:
    assert PodCidrAllocator("192.168.0.0/16", 24).capacity == 256
    assert PodCidrAllocator("10.0.0.0/24", 26).capacity == 4
    assert PodCidrAllocator(NET("10.0.0.0/8"), 24).capacity == 65536
    assert PodCidrAllocator("10.0.0.0/31", 32).capacity == 2


def test_the_mask_gap_limit_matches_specification_validation() -> None:
    assert MAX_MASK_GAP == MAX_NODE_POD_MASK_GAP


@pytest.mark.parametrize(
    ("cidr", "mask", "message"),
    [
        ("192.168.0.0", 24, r"pod CIDR '192.168.0.0' is not an IPv4 CIDR such as 192.168.0.0/16"),
        ("192.168.0.0/33", 24, "is not an IPv4 CIDR"),
        ("pods", 24, "is not an IPv4 CIDR"),
        (None, 24, "is not an IPv4 CIDR"),
        ("fd00::/48", 64, "is IPv6; node pod-CIDR allocation here is IPv4 only"),
        ("192.168.1.0/16", 24, r"has host bits set; did you mean 192.168.0.0/16\?"),
        ("192.168.0.0/16", 16, "node mask /16 must be longer than the pod CIDR's /16 and at most /32"),
        ("192.168.0.0/16", 33, "node mask /33 must be longer"),
        ("192.168.0.0/16", True, "node mask size must be an integer"),
        ("192.168.0.0/16", "24", "node mask size must be an integer"),
        (
            "10.0.0.0/8",
            25,
            "node mask /25 is 17 bits longer than the pod CIDR's /8, more than 16; use a shorter node mask "
            "or a larger pod CIDR",
        ),
    ],
)
def test_bad_configuration_is_refused(cidr: Any, mask: Any, message: str) -> None:
    with pytest.raises(IpamConfigError, match=message):
        PodCidrAllocator(cidr, mask)
    assert isinstance(IpamConfigError("x"), ValueError)


# -- allocation -------------------------------------------------------------------------------------------


def test_blocks_are_handed_out_lowest_first_and_idempotently() -> None:
    ipam = PodCidrAllocator("192.168.0.0/16", 24)
    assert ipam.allocate("node-a") == NET("192.168.0.0/24")
    assert ipam.allocate("node-b") == NET("192.168.1.0/24")
    assert ipam.allocate("node-a") == NET("192.168.0.0/24")
    assert (ipam.allocated, ipam.free, len(ipam)) == (2, 254, 2)
    assert ipam.cidr_of("node-b") == NET("192.168.1.0/24")
    assert ipam.cidr_of("node-z") is None
    assert ipam.owner_of("192.168.1.0/24") == "node-b"
    assert ipam.owner_of("192.168.2.0/24") is None
    assert ipam.owner_of("10.0.0.0/24") is None
    assert "node-a" in ipam
    assert repr(ipam) == "PodCidrAllocator(192.168.0.0/16, /24, 2/256)"


def test_release_frees_the_block_for_the_next_node() -> None:
    ipam = PodCidrAllocator("10.0.0.0/24", 26)
    for name in "abc":
        ipam.allocate(name)
    assert ipam.release("b") == NET("10.0.0.64/26")
    assert ipam.release("b") is None  # idempotent
    assert ipam.release("never") is None
    assert ipam.allocate("d") == NET("10.0.0.64/26")
    assert ipam.allocate("e") == NET("10.0.0.192/26")


def test_exhaustion_says_how_big_the_pod_cidr_is_and_what_to_do() -> None:
    ipam = PodCidrAllocator("10.0.0.0/24", 26)
    for name in ("cp-1", "cp-2", "w-1", "w-2"):
        ipam.allocate(name)
    with pytest.raises(
        PodCidrExhaustedError,
        match=r"^cannot give node w-3 a pod CIDR: pod CIDR 10.0.0.0/24 with node mask /26 has room for 4 node\(s\) "
        r"and all 4 are allocated \(cp-1=10.0.0.0/26, cp-2=10.0.0.64/26, w-1=10.0.0.128/26, w-2=10.0.0.192/26\); "
        r"remove nodes that are gone, or create the cluster with a larger pod CIDR or a longer "
        r"nodes.cidrMaskSize \(both are fixed once the cluster exists\)$",
    ):
        ipam.allocate("w-3")


def test_a_long_exhaustion_message_lists_a_few_and_counts_the_rest() -> None:
    ipam = PodCidrAllocator("10.0.0.0/24", 28)
    for i in range(16):
        ipam.allocate(f"n{i:02}")
    with pytest.raises(PodCidrExhaustedError, match=r"n04=10.0.0.64/28, and 11 more\)"):
        ipam.allocate("late")


def test_node_names_are_required() -> None:
    ipam = PodCidrAllocator("10.0.0.0/24", 26)
    with pytest.raises(ValueError, match="a node name is required"):
        ipam.allocate("")
    with pytest.raises(ValueError, match="a node name is required"):
        ipam.occupy("", "10.0.0.0/26")


# -- re-learning existing allocations ------------------------------------------------------------------------


def test_occupy_re_learns_blocks_and_allocation_works_around_them() -> None:
    ipam = PodCidrAllocator("10.0.0.0/24", 26)
    assert ipam.occupy("b", "10.0.0.64/26") == NET("10.0.0.64/26")
    assert ipam.occupy("b", NET("10.0.0.64/26")) == NET("10.0.0.64/26")  # idempotent
    ipam.occupy("a", "10.0.0.0/26")
    assert ipam.allocate("c") == NET("10.0.0.128/26")
    assert ipam.allocate("b") == NET("10.0.0.64/26")
    assert list(ipam.allocations()) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.64", r"node x: pod CIDR '10.0.0.64' is not an IPv4 CIDR"),
        ("nonsense/26", "is not an IPv4 CIDR"),
        ("fd00::/64", "node x: pod CIDR fd00::/64 is IPv6; this cluster's pod CIDR is IPv4"),
        ("10.0.0.65/26", "node x: pod CIDR 10.0.0.65/26 has host bits set; its network is 10.0.0.64/26"),
        (
            "10.0.0.0/25",
            r"node x: pod CIDR 10.0.0.0/25 is a /25, but this cluster gives every node a /26 \(nodes.cidrMaskSize\)",
        ),
        ("10.0.1.0/26", "node x: pod CIDR 10.0.1.0/26 is outside the cluster pod CIDR 10.0.0.0/24"),
        (
            "10.0.0.0/26",
            "node x: pod CIDR 10.0.0.0/26 is already allocated to node a; two nodes cannot share pod addresses",
        ),
        (
            "10.0.0.192/26",
            r"node x already has pod CIDR 10.0.0.128/26, not 10.0.0.192/26; a node's pod CIDR does not change",
        ),
    ],
)
def test_occupy_refuses_what_cannot_be_a_nodes_block(cidr: str, message: str) -> None:
    ipam = PodCidrAllocator("10.0.0.0/24", 26)
    ipam.occupy("a", "10.0.0.0/26")
    ipam.occupy("x", "10.0.0.128/26")
    before = ipam.to_dict()
    with pytest.raises(CidrConflictError, match=message):
        ipam.occupy("x", cidr)
    assert ipam.to_dict() == before


# -- serialization -------------------------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    ipam = PodCidrAllocator("192.168.0.0/16", 24)
    for name in ("a", "b", "c"):
        ipam.allocate(name)
    ipam.release("b")
    data = json.loads(json.dumps(ipam.to_dict()))
    assert data == {
        "clusterCIDR": "192.168.0.0/16",
        "nodeMaskSize": 24,
        "allocations": {"a": "192.168.0.0/24", "c": "192.168.2.0/24"},
    }
    again = PodCidrAllocator.from_dict(data)
    assert again.allocate("d") == ipam.allocate("d") == NET("192.168.1.0/24")
    assert again.to_dict() == ipam.to_dict()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected an object"),
        ({"nodeMaskSize": 24, "allocations": {}}, "clusterCIDR is missing"),
        (
            {"clusterCIDR": "10.0.0.0/16", "nodeMaskSize": "24", "allocations": {}},
            "nodeMaskSize has the wrong type",
        ),
        (
            {"clusterCIDR": "10.0.0.0/16", "nodeMaskSize": True, "allocations": {}},
            "nodeMaskSize has the wrong type",
        ),
        (
            {"clusterCIDR": "10.0.0.0/16", "nodeMaskSize": 24, "allocations": []},
            "allocations has the wrong type",
        ),
        ({"clusterCIDR": "10.0.0.1/16", "nodeMaskSize": 24, "allocations": {}}, "has host bits set"),
        (
            {"clusterCIDR": "10.0.0.0/16", "nodeMaskSize": 24, "allocations": {"a": 5}},
            "node a: pod CIDR must be a string",
        ),
        (
            {
                "clusterCIDR": "10.0.0.0/16",
                "nodeMaskSize": 24,
                "allocations": {"a": "10.0.0.0/24", "b": "10.0.0.0/24"},
            },
            "pod CIDR state: node b: pod CIDR 10.0.0.0/24 is already allocated to node a",
        ),
    ],
)
def test_from_dict_rejects_broken_state(data: Any, message: str) -> None:
    with pytest.raises(IpamStateError, match=message):
        PodCidrAllocator.from_dict(data)


# -- properties --------------------------------------------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["allocate", "release", "occupy", "restart"]), st.integers(0, 20), st.integers(0, 40)
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.integers(min_value=8, max_value=28),
    gap=st.integers(min_value=1, max_value=4),
    ops=operations,
)
def test_blocks_never_overlap_and_release_makes_room(
    prefix: int, gap: int, ops: list[tuple[str, int, int]]
) -> None:
    cluster = NET(("10.0.0.0", prefix), strict=False)
    ipam = PodCidrAllocator(cluster, prefix + gap)
    for op, node, block in ops:
        name = f"node-{node}"
        if op == "allocate":
            had = ipam.cidr_of(name)
            full = ipam.free == 0
            try:
                got = ipam.allocate(name)
            except PodCidrExhaustedError:
                assert full
                assert had is None
            else:
                assert got.subnet_of(cluster)
                assert got.prefixlen == prefix + gap
                if had is not None:
                    assert got == had  # idempotent
                else:  # lowest free: every block below it is taken
                    taken = set(ipam.allocations().values())
                    below = list(cluster.subnets(new_prefix=prefix + gap))
                    assert all(b in taken for b in below[: below.index(got)])
        elif op == "release":
            had = ipam.cidr_of(name)
            free = ipam.free
            assert ipam.release(name) == had
            if had is not None:
                assert ipam.free == free + 1
                assert ipam.allocate("newcomer") is not None  # there is room again
                ipam.release("newcomer")
        elif op == "occupy":
            candidates = list(cluster.subnets(new_prefix=prefix + gap))
            target = candidates[block % len(candidates)]
            owner = ipam.owner_of(target)
            current = ipam.cidr_of(name)
            try:
                ipam.occupy(name, str(target))
            except CidrConflictError:
                assert (owner is not None and owner != name) or (current is not None and current != target)
            else:
                assert owner in (None, name)
                assert ipam.cidr_of(name) == target
        else:
            data = json.loads(json.dumps(ipam.to_dict()))
            ipam = PodCidrAllocator.from_dict(data)
            assert ipam.to_dict() == data
        blocks = list(ipam.allocations().values())
        assert all(not a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :]), (
            "two nodes share pod addresses"
        )
        assert ipam.allocated + ipam.free == ipam.capacity


@settings(max_examples=50, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.integers(0, 12)), max_size=60))
def test_a_reloaded_allocator_answers_like_the_original(ops: list[tuple[bool, int]]) -> None:
    original = PodCidrAllocator("10.0.0.0/24", 27)
    for allocate, node in ops:
        if allocate:
            with contextlib.suppress(PodCidrExhaustedError):
                original.allocate(f"n{node}")
        else:
            original.release(f"n{node}")
    copy = PodCidrAllocator.from_dict(json.loads(json.dumps(original.to_dict())))
    for allocate, node in reversed(ops):
        results: list[object] = []
        for ipam in (original, copy):
            try:
                results.append(ipam.allocate(f"m{node}") if allocate else ipam.release(f"n{node}"))
            except PodCidrExhaustedError as exc:
                results.append(str(exc))
        assert results[0] == results[1]
        assert copy.to_dict() == original.to_dict()
