"""What a machine's node agent would do, done on the machine's behalf by the plane.

Why: the machines of some providers run no kubelet and no etcd: the ``sim`` provider's exist only
in memory, and the VMs the ``vsphere`` provider makes in the vCenter simulator are empty shells
that only report an address. Their clusters must still look real to Cluster API and to the
lifecycle controllers, so once such a machine is up, the plane plays its guest:

- a control plane machine joins the cluster's etcd membership (the first one bootstraps it), kept
  as data in the cluster's own API (:mod:`anywhere.providers.sim.etcd_admin`), and records that
  it did in the annotation :data:`ETCD_JOINED_ANNOTATION` of its infrastructure machine, so a
  member removed by the control plane controller is never joined again;
- its kubelet registers Node ``<machine>`` (Cluster API's annotations, ``spec.providerID``),
  keeps the Node's status (Ready once the node has a pod CIDR and the CNI is configured) and
  renews its Lease ``kube-node-lease/<machine>`` every
  :data:`~anywhere.providers.kubelet.HEARTBEAT_PERIOD` seconds, with the rules every node agent
  of this project shares (:mod:`anywhere.providers.kubelet`). The kubelet's version is the
  Machine's ``spec.version``, or the one an in-place upgrade asks for
  (``anywhere.eks.amazonaws.com/in-place-upgrade-to``, see :mod:`anywhere.controllers.inplace`):
  the Node then reports it at once, as a node whose kubelet was upgraded and restarted.

Annotating the infrastructure machine ``anywhere.eks.amazonaws.com/sim-fail: "true"`` stops that
kubelet: the Node's conditions go Unknown (as the node lifecycle controller sets them) and its
etcd member becomes unhealthy; removing the annotation brings both back.

One :class:`SimulatedGuest` serves every machine of one infrastructure machine kind; its
controller calls :meth:`SimulatedGuest.run` on each reconcile of a machine that is up. What it
remembers in memory (when each Lease was renewed, the etcd health last written, which clusters
have their CNI) only saves requests: a restarted plane rebuilds it from the API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from anywhere.api.capi import CONTROL_PLANE_LABEL
from anywhere.controllers.conditions import READY, is_true
from anywhere.controllers.context import Context
from anywhere.controllers.inplace import kubelet_version
from anywhere.controllers.objects import (
    annotations_of,
    controller_of,
    deleting,
    flag_is_true,
    labels_of,
    name_of,
    namespace_of,
    patch_at_version,
)
from anywhere.controllers.remote import ClusterNotReachable, NodeListener
from anywhere.providers.kubelet import (
    CLUSTER_NAME_ANNOTATION,
    CLUSTER_NAMESPACE_ANNOTATION,
    HEARTBEAT_PERIOD,
    NODE_LEASE_NAMESPACE,
    cni_configured,
    create_or_adopt_node,
    node_annotations,
    node_info,
    node_labels,
    not_ready_poll,
    renew_node_lease,
    write_node_status,
)
from anywhere.providers.sim.etcd import EtcdCluster
from anywhere.providers.sim.etcd_admin import change_members
from anywhere.runtime import (
    LEASES,
    NODES,
    Client,
    Informer,
    NotFoundError,
    Resource,
    Result,
    TransportError,
)

__all__ = [
    "CONTAINER_RUNTIME",
    "ETCD_JOINED_ANNOTATION",
    "FAIL_ANNOTATION",
    "RETRY",
    "SimulatedGuest",
]

log = logging.getLogger("anywhere.providers.sim.guest")
Obj = dict[str, Any]

FAIL_ANNOTATION: Final = "anywhere.eks.amazonaws.com/sim-fail"
ETCD_JOINED_ANNOTATION: Final = "anywhere.eks.amazonaws.com/sim-etcd-joined"
CONTAINER_RUNTIME: Final = "containerd://1.7.24"
# How soon to look again when the cluster's API does not answer (not served yet, or restarting).
RETRY: Final = 5.0


def _no_reboots(_obj: Obj) -> str:
    return ""


class SimulatedGuest:
    """The node agent (kubelet, etcd membership) of machines that run none, played by the plane.

    ``resource`` is the infrastructure machine kind whose objects :meth:`run` is given (it
    patches :data:`ETCD_JOINED_ANNOTATION` on them). ``os_image``, ``kernel_version`` and
    ``container_runtime`` are what the Nodes' ``status.nodeInfo`` reports. ``boot_of(obj)`` names
    the machine's current boot (the sim boot plan's start, a VM's boot time): a new value is a
    reboot, and the Node gets a new ``bootID``; by default a machine boots once.
    """

    def __init__(
        self,
        ctx: Context,
        resource: Resource,
        *,
        os_image: str,
        kernel_version: str,
        container_runtime: str = CONTAINER_RUNTIME,
        boot_of: Callable[[Obj], str] = _no_reboots,
    ) -> None:
        self.ctx = ctx
        self.resource = resource
        self.os_image = os_image
        self.kernel_version = kernel_version
        self.container_runtime = container_runtime
        self.boot_of = boot_of
        # Derived, in-memory only (a restart rebuilds them from the API):
        self._renewed: dict[str, float] = {}  # key -> monotonic time of the last Lease renewal
        self._etcd_health: dict[str, bool] = {}  # key -> member health last written
        self._cni: set[tuple[str, str]] = set()  # clusters whose CNI is known to be configured
        self._not_ready_since: dict[str, float] = {}  # key -> when its node was first seen not Ready

    # -- what the machine's controller calls ------------------------------------------------------------

    async def run(
        self, key: str, obj: Obj, owner: Obj, cluster: str, address: str, provider_id: str
    ) -> Result | None:
        """Do what the guest of machine ``obj`` (key ``key``, owned by Machine ``owner``, of
        ``cluster``, up with node IP ``address``) does now, and say when to come back.

        A control plane machine joins (or reports its health to) the etcd membership; the Node
        is registered and its status written; the Lease is renewed once per heartbeat. Call it on
        every reconcile of a machine that is up, and only once its cluster's API is served.
        """
        try:
            return await self._kubelet(key, obj, owner, cluster, address, provider_id)
        except (ClusterNotReachable, TransportError) as exc:
            log.debug(
                "machine %s: the API of cluster %s/%s is not reachable: %s",
                key,
                namespace_of(obj),
                cluster,
                exc,
            )
            return Result(requeue_after=RETRY)

    async def stop(self, obj: Obj, cluster: str, *, cluster_going: bool) -> None:
        """The machine is being deleted: its kubelet stops (its Lease goes, so nobody reads a stale
        heartbeat). With the whole cluster going (``cluster_going``) nobody reads the Lease any
        more, and its API may be gone already: nothing is asked of it. The Node and the etcd
        member are the Machine and control plane controllers' to remove."""
        if not cluster_going:
            try:
                client = await self.ctx.clusters.client(namespace_of(obj), cluster)
                await client.delete(LEASES, name_of(obj), NODE_LEASE_NAMESPACE)
            except (ClusterNotReachable, TransportError, NotFoundError):
                pass  # nothing to stop, or nobody to tell
        self.forget(f"{namespace_of(obj)}/{name_of(obj)}")

    def forget(self, key: str) -> None:
        """Drop what is remembered of machine ``key`` (it is gone)."""
        self._renewed.pop(key, None)
        self._etcd_health.pop(key, None)
        self._not_ready_since.pop(key, None)

    @staticmethod
    def node_listener(enqueue: Callable[[str], None]) -> NodeListener:
        """A listener for ``ctx.clusters.add_node_listener`` that enqueues the machine of every Node
        event (a Node is named after its machine, and annotated with the machine's cluster): the
        controller then hears when IPAM gives its Node a pod CIDR, or someone edits the Node."""

        def on_node(namespace: str, cluster: str, node: Obj) -> None:
            meta = annotations_of(node)
            if (
                meta.get(CLUSTER_NAMESPACE_ANNOTATION) == namespace
                and meta.get(CLUSTER_NAME_ANNOTATION) == cluster
            ):
                enqueue(f"{namespace}/{name_of(node)}")

        return on_node

    # -- the kubelet -----------------------------------------------------------------------------------

    async def _kubelet(
        self, key: str, obj: Obj, owner: Obj, cluster: str, address: str, provider_id: str
    ) -> Result | None:
        namespace = namespace_of(obj)
        # One look-up of the cluster gives both its Node cache and its client.
        nodes = await self.ctx.clusters.nodes(namespace, cluster)
        client = nodes.client
        failing = flag_is_true(annotations_of(obj).get(FAIL_ANNOTATION))
        control_plane = CONTROL_PLANE_LABEL in labels_of(obj) or CONTROL_PLANE_LABEL in labels_of(owner)
        owner_deleting = deleting(owner)
        if control_plane:
            obj = await self._etcd(
                key, obj, client, cluster, address, healthy=not failing, join=not owner_deleting
            )
        node = await self._node(
            obj,
            owner,
            nodes,
            namespace,
            cluster,
            address,
            provider_id,
            control_plane,
            failing,
            owner_deleting,
        )
        if node is None or failing:
            self._renewed.pop(key, None)
            return None
        if is_true(node, READY):
            self._not_ready_since.pop(key, None)
            period = HEARTBEAT_PERIOD
        else:
            waited = time.monotonic() - self._not_ready_since.setdefault(key, time.monotonic())
            period = not_ready_poll(waited)
        due = self._renewed.get(key, float("-inf")) + HEARTBEAT_PERIOD - time.monotonic()
        if due > 0.5:
            return Result(requeue_after=min(due, period))
        await renew_node_lease(client, node)
        self._renewed[key] = time.monotonic()
        return Result(requeue_after=period)

    async def _etcd(
        self, key: str, obj: Obj, client: Client, cluster: str, address: str, *, healthy: bool, join: bool
    ) -> Obj:
        name = name_of(obj)
        joined = flag_is_true(annotations_of(obj).get(ETCD_JOINED_ANNOTATION))
        if joined and self._etcd_health.get(key) == healthy:
            return obj
        peer, client_url = f"https://{address}:2380", f"https://{address}:2379"

        def change(members: EtcdCluster | None) -> EtcdCluster | None:
            if members is None or name not in members:
                if joined or not join:
                    return None  # removed by the control plane controller: never join again
                if members is None or not len(members):
                    members = members or EtcdCluster(cluster)
                    members.bootstrap(name, peer, client_url)
                else:
                    members.add_member(name, peer, client_url)
                    members.mark_healthy(name)  # the learner started and caught up
                    members.promote(name)
            member = members.member(name)
            if member.healthy != healthy:
                (members.mark_healthy if healthy else members.mark_unhealthy)(name)
            if healthy and members.member(name).is_learner:
                members.promote(name)
            return members

        await change_members(client, cluster, change)
        self._etcd_health[key] = healthy
        if not joined and join:
            obj = await patch_at_version(
                self.ctx.client,
                self.resource,
                obj,
                {"metadata": {"annotations": {ETCD_JOINED_ANNOTATION: "true"}}},
            )
            log.info("machine %s: joined the etcd cluster of %s", key, cluster)
        return obj

    async def _node(
        self,
        obj: Obj,
        owner: Obj,
        nodes: Informer,
        namespace: str,
        cluster: str,
        address: str,
        provider_id: str,
        control_plane: bool,
        failing: bool,
        owner_deleting: bool,
    ) -> Obj | None:
        name = name_of(obj)
        client = nodes.client
        node: Obj | None
        if nodes.synced:
            node = nodes.get(name)
        else:
            try:
                node = await client.get(NODES, name)
            except NotFoundError:
                node = None
        version = kubelet_version(owner)
        labels = node_labels(name, control_plane=control_plane)
        annotations = node_annotations(
            str((controller_of(obj) or {}).get("name") or name), cluster, namespace
        )
        if node is None and (owner_deleting or failing):
            return None  # a machine on its way out (or a dead kubelet) registers nothing
        node, created = await create_or_adopt_node(
            client, node, name, labels=labels, annotations=annotations, provider_id=provider_id
        )
        if created:
            log.info("machine %s/%s: registered node %s in cluster %s", namespace, name, name, cluster)
        pod_cidr = (node.get("spec") or {}).get("podCIDR")
        ready = bool(pod_cidr) and not failing and await self._cni_configured(client, namespace, cluster)
        return await write_node_status(
            client,
            node,
            address=address,
            hostname=name,
            info=self._node_info(obj, version),
            failing=failing,
            ready=ready,
        )

    async def _cni_configured(self, client: Client, namespace: str, cluster: str) -> bool:
        """Whether the CNI (Cilium's DaemonSet) is installed; once seen, a node keeps its CNI config."""
        if (namespace, cluster) in self._cni:
            return True
        if not await cni_configured(client):
            return False
        self._cni.add((namespace, cluster))
        return True

    def _node_info(self, obj: Obj, version: str) -> Obj:
        uid = str((obj.get("metadata") or {}).get("uid") or name_of(obj))
        return node_info(
            machine_seed=uid,
            boot_seed=uid + self.boot_of(obj),
            version=version,
            kernel_version=self.kernel_version,
            os_image=self.os_image,
            container_runtime=self.container_runtime,
        )
