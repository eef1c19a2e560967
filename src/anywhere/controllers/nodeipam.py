"""Node IPAM: every Node of a workload cluster gets a pod CIDR (Kubernetes host-scope IPAM, what
kube-controller-manager's range allocator does and Cilium's ``ipam.mode: kubernetes`` consumes).

One reconcile per Cluster API Cluster (key ``namespace/name``): its pod CIDR is
``spec.clusterNetwork.pods.cidrBlocks[0]``, the size of a node's block the annotation
``anywhere.eks.amazonaws.com/node-cidr-mask-size`` (default /24; the cluster controller copies
``clusterNetwork.nodes.cidrMaskSize`` there). The allocation state is derived, never stored: each
reconcile rebuilds a :class:`~anywhere.controllers.ipam.PodCidrAllocator` from the pod CIDRs the
Nodes already have, and gives the lowest free blocks to the Nodes without one. So a restart loses
nothing, and a Node's block is free again the moment the Node is gone.

Decisions come from the Node cache; the writes from a fresh list of the Nodes. A cache that does not
show our last write yet would make us give one block twice; the fresh list (and a compare-and-swap
on each Node's resourceVersion) rules that out. Nothing is listed while every Node has its block.

Rules, as Kubernetes: a Node's pod CIDR never changes once set (only Nodes without ``spec.podCIDR``
are written: ``spec.podCIDR`` and ``spec.podCIDRs``). A Node whose pod CIDR is outside the cluster's,
of the wrong size, or the same as an older Node's is reported, never rewritten (condition
``NodePodCIDRsValid`` False on the Cluster). When the pod CIDR is full, each Node left without a
block gets ``NetworkUnavailable`` True (reason ``NoPodCIDR``) and the Cluster ``PodCIDRsAvailable``
False, both saying which pod CIDR, which mask and how many nodes it holds; a Node that goes frees
its block and the next reconcile gives it to a waiting Node (whose NetworkUnavailable we then set
False, reason ``PodCIDRAssigned``). Older Nodes get blocks first.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from anywhere.controllers import conditions
from anywhere.controllers.context import Context
from anywhere.controllers.ipam import (
    CidrConflictError,
    IpamConfigError,
    PodCidrAllocator,
    PodCidrExhaustedError,
)
from anywhere.controllers.objects import deleting, is_paused, name_of, namespace_of, parse_time, write_status
from anywhere.controllers.remote import ClusterNotReachable
from anywhere.controllers.resources import CAPI_CLUSTERS, NODES, SECRETS
from anywhere.runtime import Client, Controller, NotFoundError, Result, enqueue_mapped

__all__ = [
    "DEFAULT_NODE_MASK",
    "NETWORK_UNAVAILABLE",
    "NODE_CIDR_MASK_ANNOTATION",
    "NODE_POD_CIDRS_VALID",
    "NO_POD_CIDR",
    "POD_CIDRS_AVAILABLE",
    "PodCidrPlan",
    "controller",
    "plan_pod_cidrs",
]

log = logging.getLogger("anywhere.controllers.nodeipam")
Obj = dict[str, Any]

NODE_CIDR_MASK_ANNOTATION: Final = "anywhere.eks.amazonaws.com/node-cidr-mask-size"
DEFAULT_NODE_MASK: Final = 24
NETWORK_UNAVAILABLE: Final = "NetworkUnavailable"
NO_POD_CIDR: Final = "NoPodCIDR"
POD_CIDR_ASSIGNED: Final = "PodCIDRAssigned"
POD_CIDRS_AVAILABLE: Final = "PodCIDRsAvailable"
POD_CIDRS_EXHAUSTED: Final = "PodCIDRsExhausted"
INVALID_POD_CIDR: Final = "InvalidPodCIDR"
NODE_POD_CIDRS_VALID: Final = "NodePodCIDRsValid"
POD_CIDR_CONFLICT: Final = "PodCIDRConflict"
# How often a cluster whose API cannot be reached yet is looked at again (its kubeconfig Secret
# appearing also brings it back at once).
UNREACHABLE_RETRY: Final = 15.0
_LISTED: Final = 5


@dataclass
class PodCidrPlan:
    """What the Nodes of a cluster need: new blocks, Nodes left waiting, Nodes whose block is wrong."""

    cluster_cidr: str
    node_mask: int
    capacity: int
    assign: dict[str, str] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)

    def exhausted_message(self) -> str:
        names = ", ".join(self.waiting[:_LISTED]) + (
            f" and {len(self.waiting) - _LISTED} more" if len(self.waiting) > _LISTED else ""
        )
        return (
            f"pod CIDR {self.cluster_cidr} with node mask /{self.node_mask} holds {self.capacity} node(s), "
            f"all allocated; {len(self.waiting)} node(s) have no pod CIDR: {names}. Remove nodes, or create "
            "the cluster with a larger pod CIDR or a longer nodes.cidrMaskSize"
        )

    def node_message(self) -> str:
        return (
            f"no pod CIDR is free: pod CIDR {self.cluster_cidr} with node mask /{self.node_mask} holds "
            f"{self.capacity} node(s) and all are allocated"
        )


def _age(node: Obj) -> tuple[float, str]:
    return (parse_time((node.get("metadata") or {}).get("creationTimestamp")) or 0.0, name_of(node))


def plan_pod_cidrs(cluster_cidr: str, node_mask: int, nodes: Iterable[Obj]) -> PodCidrPlan:
    """Rebuild the allocation from the Nodes' pod CIDRs, and give the lowest free blocks to Nodes
    without one (older Nodes first; a Node being deleted gets none). Raises IpamConfigError when the
    pod CIDR or mask make no sense."""
    allocator = PodCidrAllocator(cluster_cidr, node_mask)
    plan = PodCidrPlan(str(allocator.cluster_cidr), node_mask, allocator.capacity)
    ordered = sorted(nodes, key=_age)
    for node in ordered:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            try:
                allocator.occupy(name_of(node), cidr)
            except CidrConflictError as exc:
                plan.conflicts[name_of(node)] = str(exc)
    for node in ordered:
        if (node.get("spec") or {}).get("podCIDR") or deleting(node):
            continue
        try:
            plan.assign[name_of(node)] = str(allocator.allocate(name_of(node)))
        except PodCidrExhaustedError:
            plan.waiting.append(name_of(node))
    return plan


def _node_mask(cluster: Obj) -> int:
    raw = ((cluster.get("metadata") or {}).get("annotations") or {}).get(NODE_CIDR_MASK_ANNOTATION)
    if raw is None or raw == "":
        return DEFAULT_NODE_MASK
    try:
        return int(raw)
    except ValueError:
        raise IpamConfigError(
            f"annotation {NODE_CIDR_MASK_ANNOTATION}={raw!r} is not a number such as 24"
        ) from None


def _pod_cidr(cluster: Obj) -> str | None:
    blocks = (((cluster.get("spec") or {}).get("clusterNetwork") or {}).get("pods") or {}).get("cidrBlocks")
    return str(blocks[0]) if blocks else None


class _Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.clusters = ctx.manager.informer(CAPI_CLUSTERS)

    def cluster_of_secret(self, secret: Obj) -> list[str]:
        name = name_of(secret)
        if not name.endswith("-kubeconfig"):
            return []
        key = f"{namespace_of(secret)}/{name.removesuffix('-kubeconfig')}"
        return [key] if self.clusters.get(key) is not None else []

    async def reconcile(self, key: str) -> Result | None:
        cluster = self.clusters.get(key)
        if cluster is None or deleting(cluster) or is_paused(cluster):
            return None
        namespace, name = namespace_of(cluster), name_of(cluster)
        pod_cidr = _pod_cidr(cluster)
        if pod_cidr is None:
            return None  # no pod network declared: nothing to hand out
        try:
            mask = _node_mask(cluster)
            PodCidrAllocator(pod_cidr, mask)
        except IpamConfigError as exc:
            await self._cluster_conditions(cluster, [(POD_CIDRS_AVAILABLE, INVALID_POD_CIDR, str(exc))])
            return None
        try:
            informer = await self.ctx.clusters.synced_nodes(namespace, name)
            cached = plan_pod_cidrs(pod_cidr, mask, informer.list())
            nodes = {name_of(n): n for n in informer.list()}
            plan = cached
            if cached.assign:
                client = await self.ctx.clusters.client(namespace, name)
                live = (await client.list_all(NODES)).get("items") or []
                nodes = {name_of(n): n for n in live}
                plan = plan_pod_cidrs(pod_cidr, mask, live)
                for node_name, block in plan.assign.items():
                    await self._assign(client, nodes[node_name], block)
                    log.info("cluster %s: node %s gets pod CIDR %s", key, node_name, block)
            await self._node_conditions(namespace, name, nodes, plan)
        except ClusterNotReachable as exc:
            log.info("cluster %s: %s; node IPAM waits", key, exc)
            return Result(requeue_after=UNREACHABLE_RETRY)

        problems: list[tuple[str, str | None, str]] = []
        if plan.waiting:
            if (conditions.get_condition(cluster, POD_CIDRS_AVAILABLE) or {}).get(
                "message"
            ) != plan.exhausted_message():
                log.warning("cluster %s: %s", key, plan.exhausted_message())
            problems.append((POD_CIDRS_AVAILABLE, POD_CIDRS_EXHAUSTED, plan.exhausted_message()))
        else:
            problems.append((POD_CIDRS_AVAILABLE, None, ""))
        if plan.conflicts:
            listed = sorted(plan.conflicts.items())
            message = "; ".join(text for _, text in listed[:_LISTED])
            if len(listed) > _LISTED:
                message += f"; and {len(listed) - _LISTED} more"
            problems.append((NODE_POD_CIDRS_VALID, POD_CIDR_CONFLICT, message + " (left as they are)"))
        else:
            problems.append((NODE_POD_CIDRS_VALID, None, ""))
        await self._cluster_conditions(cluster, problems)
        return None

    @staticmethod
    async def _assign(client: Client, node: Obj, block: str) -> None:
        """Write the block. A compare-and-swap: a Node changed since the list raises ConflictError,
        and the reconcile runs again on fresh data."""
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"podCIDR": block, "podCIDRs": [block]},
        }
        with contextlib.suppress(NotFoundError):
            await client.patch(NODES, name_of(node), patch)

    async def _node_conditions(
        self, namespace: str, cluster: str, nodes: dict[str, Obj], plan: PodCidrPlan
    ) -> None:
        """NetworkUnavailable True (NoPodCIDR) on waiting Nodes; False (PodCIDRAssigned) on Nodes
        that carried our True and now have a block."""
        wanted: dict[str, tuple[str, str, str]] = {
            node_name: ("True", NO_POD_CIDR, plan.node_message()) for node_name in plan.waiting
        }
        for node_name, node in nodes.items():
            current = conditions.get_condition(node, NETWORK_UNAVAILABLE) or {}
            if node_name in wanted or current.get("reason") != NO_POD_CIDR or current.get("status") != "True":
                continue
            block = plan.assign.get(node_name) or (node.get("spec") or {}).get("podCIDR")
            if block:
                wanted[node_name] = ("False", POD_CIDR_ASSIGNED, f"node has pod CIDR {block}")
        if not wanted:
            return
        client = await self.ctx.clusters.client(namespace, cluster)
        stamp = conditions.now()
        for node_name, (status, reason, message) in wanted.items():
            target = nodes.get(node_name)
            if target is None:
                continue
            current = conditions.get_condition(target, NETWORK_UNAVAILABLE) or {}
            if (current.get("status"), current.get("reason"), current.get("message")) == (
                status,
                reason,
                message,
            ):
                continue
            transition = current.get("lastTransitionTime") if current.get("status") == status else None
            entry = {
                "type": NETWORK_UNAVAILABLE,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": transition or stamp,
            }
            try:
                await client.patch(
                    NODES,
                    node_name,
                    {"status": {"conditions": [entry]}},
                    type="strategic",
                    subresource="status",
                )
            except NotFoundError:
                continue

    async def _cluster_conditions(self, cluster: Obj, wanted: list[tuple[str, str | None, str]]) -> None:
        """Set our conditions on the CAPI Cluster's status (compare-and-swap; the Cluster's own
        controller keeps conditions it does not own)."""
        status = copy.deepcopy(cluster.get("status") or {})
        for type_, reason, message in wanted:
            if reason is None:
                conditions.set_true(status, type_)
            else:
                conditions.set_false(status, type_, reason, message, conditions.WARNING)
        await write_status(self.ctx.client, CAPI_CLUSTERS, cluster, status)


def controller(ctx: Context, *, workers: int = 2) -> Controller:
    """The node IPAM controller: CAPI Clusters (their pod CIDR and node mask), their kubeconfig
    Secrets (a cluster becomes reachable), and every workload cluster's Node events (through
    ``ctx.clusters``)."""
    reconciler = _Reconciler(ctx)
    ctrl = Controller("nodeipam", reconciler.reconcile, workers=workers)
    ctrl.watch(CAPI_CLUSTERS)
    ctrl.watch(SECRETS, enqueue_mapped(reconciler.cluster_of_secret))
    ctx.clusters.add_node_listener(lambda namespace, cluster, _node: ctrl.enqueue(f"{namespace}/{cluster}"))
    return ctrl
