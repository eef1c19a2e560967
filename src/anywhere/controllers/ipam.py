"""Node pod-CIDR allocation: Kubernetes host-scope IPAM.

Why this exists: every node gets a block of ``/nodes.cidrMaskSize`` carved from the cluster's pod
CIDR, recorded in ``Node.spec.podCIDR`` (what kube-controller-manager's range allocator does, and
what Cilium's ``ipam.mode: kubernetes`` consumes). Two nodes with overlapping blocks would hand
the same pod IP to two pods, so this bookkeeping must never overlap, must survive a controller
restart, and must say clearly when the pod CIDR is full (DESIGN.md §4).

The rules:

* the pod CIDR is IPv4 and the node mask is longer than its prefix, by at most 16 bits (the
  limits kube-controller-manager and our specification validation apply), so there is room for
  ``2 ** (mask - prefix)`` nodes;
* :meth:`PodCidrAllocator.allocate` is idempotent per node and gives the lowest free block.
  kube-controller-manager hands blocks out round-robin; lowest-free is deterministic, which keeps
  tests and simulated clusters reproducible, and reuses released blocks first;
* :meth:`PodCidrAllocator.occupy` re-learns the blocks that nodes already have (a restarted
  controller reads every ``Node.spec.podCIDR``) and refuses a block of the wrong size, outside the
  pod CIDR, or overlapping another node's: the pod CIDR of a node never changes.

State round-trips through :meth:`PodCidrAllocator.to_dict` / :meth:`PodCidrAllocator.from_dict`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_MASK_GAP",
    "CidrConflictError",
    "IpamConfigError",
    "IpamError",
    "IpamStateError",
    "PodCidrAllocator",
    "PodCidrExhaustedError",
]

# kube-controller-manager's cidrset refuses node masks more than 16 bits longer than the cluster
# CIDR's prefix (65536 nodes); specification validation applies the same limit.
MAX_MASK_GAP = 16

_LISTED = 5  # allocations named in an exhaustion message before "and N more"


class IpamError(Exception):
    """A request the allocator refuses; the message says what is wrong and what to do."""


class IpamConfigError(IpamError, ValueError):
    """The pod CIDR or node mask size make no sense."""


class CidrConflictError(IpamError, ValueError):
    """A CIDR to occupy is malformed, of the wrong size, outside the pod CIDR or already taken."""


class PodCidrExhaustedError(IpamError):
    """Every node-sized block of the pod CIDR is allocated."""


class IpamStateError(IpamError, ValueError):
    """Stored state that is malformed or contradicts itself (and was therefore not loaded)."""


class PodCidrAllocator:
    """Hands out one ``/node_mask_size`` block of ``cluster_cidr`` per node."""

    def __init__(self, cluster_cidr: str | ipaddress.IPv4Network, node_mask_size: int) -> None:
        parsed = _parse(cluster_cidr)
        if parsed is None:
            raise IpamConfigError(f"pod CIDR {cluster_cidr!r} is not an IPv4 CIDR such as 192.168.0.0/16")
        network, host_bits = parsed
        if not isinstance(network, ipaddress.IPv4Network):
            raise IpamConfigError(
                f"pod CIDR {cluster_cidr} is IPv6; node pod-CIDR allocation here is IPv4 only"
            )
        if host_bits:
            raise IpamConfigError(f"pod CIDR {cluster_cidr} has host bits set; did you mean {network}?")
        if isinstance(node_mask_size, bool) or not isinstance(node_mask_size, int):
            raise IpamConfigError(f"node mask size must be an integer, got {node_mask_size!r}")
        if not network.prefixlen < node_mask_size <= 32:
            raise IpamConfigError(
                f"node mask /{node_mask_size} must be longer than the pod CIDR's /{network.prefixlen} "
                "and at most /32"
            )
        if node_mask_size - network.prefixlen > MAX_MASK_GAP:
            raise IpamConfigError(
                f"node mask /{node_mask_size} is {node_mask_size - network.prefixlen} bits longer than the pod "
                f"CIDR's /{network.prefixlen}, more than {MAX_MASK_GAP}; use a shorter node mask or a larger pod CIDR"
            )
        self.cluster_cidr = network
        self.node_mask_size = node_mask_size
        self._block_size = 1 << (32 - node_mask_size)
        self._by_node: dict[str, int] = {}
        self._by_index: dict[int, str] = {}
        # Every block below this index is allocated: where the search for a free one starts.
        self._hint = 0

    # -- views ------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """How many nodes the pod CIDR has room for."""
        return 1 << (self.node_mask_size - self.cluster_cidr.prefixlen)

    @property
    def allocated(self) -> int:
        return len(self._by_node)

    @property
    def free(self) -> int:
        return self.capacity - len(self._by_node)

    def allocations(self) -> dict[str, ipaddress.IPv4Network]:
        """Node name to block, in address order."""
        return {self._by_index[i]: self._block(i) for i in sorted(self._by_index)}

    def cidr_of(self, node_name: str) -> ipaddress.IPv4Network | None:
        index = self._by_node.get(node_name)
        return None if index is None else self._block(index)

    def owner_of(self, cidr: str | ipaddress.IPv4Network) -> str | None:
        """The node holding exactly block ``cidr``, if any."""
        index = self._index_of(ipaddress.IPv4Network(cidr))
        return None if index is None else self._by_index.get(index)

    def __contains__(self, node_name: object) -> bool:
        return node_name in self._by_node

    def __len__(self) -> int:
        return len(self._by_node)

    def __repr__(self) -> str:
        return (
            f"PodCidrAllocator({self.cluster_cidr}, /{self.node_mask_size}, {self.allocated}/{self.capacity})"
        )

    # -- requests -----------------------------------------------------------------------------

    def allocate(self, node_name: str) -> ipaddress.IPv4Network:
        """The node's block: the one it has, else the lowest free one.

        Raises :class:`PodCidrExhaustedError` when every block is taken.
        """
        _check_name(node_name)
        index = self._by_node.get(node_name)
        if index is not None:
            return self._block(index)
        index = self._hint
        while index in self._by_index:
            index += 1
        if index >= self.capacity:
            raise PodCidrExhaustedError(self._exhausted(node_name))
        self._take(node_name, index)
        self._hint = index + 1
        return self._block(index)

    def release(self, node_name: str) -> ipaddress.IPv4Network | None:
        """Free the node's block (the node is gone); the block it had, or ``None``. Idempotent."""
        index = self._by_node.pop(node_name, None)
        if index is None:
            return None
        del self._by_index[index]
        self._hint = min(self._hint, index)
        return self._block(index)

    def occupy(self, node_name: str, cidr: str | ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        """Record that ``node_name`` already has ``cidr`` (re-learning after a restart).

        Idempotent for the same node and block; refuses (:class:`CidrConflictError`) a malformed
        block, one of the wrong size or outside the pod CIDR, one that another node holds, or a
        second block for a node that has one.
        """
        _check_name(node_name)
        parsed = _parse(cidr)
        if parsed is None:
            raise CidrConflictError(f"node {node_name}: pod CIDR {cidr!r} is not an IPv4 CIDR")
        block, host_bits = parsed
        if not isinstance(block, ipaddress.IPv4Network):
            raise CidrConflictError(
                f"node {node_name}: pod CIDR {cidr} is IPv6; this cluster's pod CIDR is IPv4"
            )
        if host_bits:
            raise CidrConflictError(
                f"node {node_name}: pod CIDR {cidr} has host bits set; its network is {block}"
            )
        if block.prefixlen != self.node_mask_size:
            raise CidrConflictError(
                f"node {node_name}: pod CIDR {block} is a /{block.prefixlen}, but this cluster gives every "
                f"node a /{self.node_mask_size} (nodes.cidrMaskSize)"
            )
        index = self._index_of(block)
        if index is None:
            raise CidrConflictError(
                f"node {node_name}: pod CIDR {block} is outside the cluster pod CIDR {self.cluster_cidr}"
            )
        holder = self._by_index.get(index)
        if holder == node_name:
            return block
        if holder is not None:
            raise CidrConflictError(
                f"node {node_name}: pod CIDR {block} is already allocated to node {holder}; two nodes "
                "cannot share pod addresses"
            )
        current = self._by_node.get(node_name)
        if current is not None:
            raise CidrConflictError(
                f"node {node_name} already has pod CIDR {self._block(current)}, not {block}; a node's pod CIDR "
                "does not change (release it first if the node was re-created)"
            )
        self._take(node_name, index)
        return block

    # -- serialization --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "clusterCIDR": str(self.cluster_cidr),
            "nodeMaskSize": self.node_mask_size,
            "allocations": {name: str(block) for name, block in self.allocations().items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PodCidrAllocator:
        """Reload :meth:`to_dict` output; :class:`IpamStateError` if malformed or overlapping."""
        where = "pod CIDR state"
        if not isinstance(data, Mapping):
            raise IpamStateError(f"{where}: expected an object, got {type(data).__name__}")
        for key, kind in (("clusterCIDR", str), ("nodeMaskSize", int), ("allocations", Mapping)):
            if key not in data:
                raise IpamStateError(f"{where}: {key} is missing")
            if not isinstance(data[key], kind) or isinstance(data[key], bool):
                raise IpamStateError(f"{where}: {key} has the wrong type: {data[key]!r}")
        try:
            allocator = cls(data["clusterCIDR"], data["nodeMaskSize"])
            for name, cidr in data["allocations"].items():
                if not isinstance(cidr, str):
                    raise IpamStateError(f"node {name}: pod CIDR must be a string, got {cidr!r}")
                allocator.occupy(name, cidr)
        except IpamError as exc:
            raise IpamStateError(f"{where}: {exc}") from None
        return allocator

    # -- internals --------------------------------------------------------------------------------

    def _block(self, index: int) -> ipaddress.IPv4Network:
        base = int(self.cluster_cidr.network_address) + index * self._block_size
        return ipaddress.IPv4Network((base, self.node_mask_size))

    def _index_of(self, block: ipaddress.IPv4Network) -> int | None:
        if block.prefixlen != self.node_mask_size or not block.subnet_of(self.cluster_cidr):
            return None
        return (int(block.network_address) - int(self.cluster_cidr.network_address)) // self._block_size

    def _take(self, node_name: str, index: int) -> None:
        self._by_node[node_name] = index
        self._by_index[index] = node_name

    def _exhausted(self, node_name: str) -> str:
        listed = [f"{name}={block}" for name, block in list(self.allocations().items())[:_LISTED]]
        if self.allocated > _LISTED:
            listed.append(f"and {self.allocated - _LISTED} more")
        return (
            f"cannot give node {node_name} a pod CIDR: pod CIDR {self.cluster_cidr} with node mask "
            f"/{self.node_mask_size} has room for {self.capacity} node(s) and all {self.capacity} are "
            f"allocated ({', '.join(listed)}); remove nodes that are gone, or create the cluster with a "
            "larger pod CIDR or a longer nodes.cidrMaskSize (both are fixed once the cluster exists)"
        )


def _parse(cidr: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, bool] | None:
    """The network ``cidr`` names and whether it had host bits set; ``None`` if it is no CIDR."""
    text = str(cidr) if isinstance(cidr, ipaddress.IPv4Network | ipaddress.IPv6Network) else cidr
    if not isinstance(text, str) or "/" not in text:
        return None
    try:
        interface = ipaddress.ip_interface(text.strip())
    except ValueError:
        return None
    return interface.network, interface.ip != interface.network.network_address


def _check_name(node_name: str) -> None:
    if not isinstance(node_name, str) or not node_name:
        raise ValueError(f"a node name is required, got {node_name!r}")
