"""The SimCluster controller: a simulated cluster's infrastructure is its API endpoint.

For every SimCluster this controller serves a Kubernetes API in this process
(:class:`~anywhere.providers.sim.served.ServedClusterAPI`, on the plane's one
:class:`~anywhere.providers.sim.endpoints.EndpointHost`), records where in
``spec.controlPlaneEndpoint`` (so a restarted plane binds the same port again), writes the
cluster's admin kubeconfig into Secret ``NAME-kubeconfig`` as Cluster API does, and reports
``status.ready``. The self-managed cluster (``ctx.self_cluster``) is served by the plane's own API
instead. The endpoints live as long as the controller runs: a plane that stops (or loses
leadership) stops serving them, and the next leader serves them again.

The control plane endpoint VIP the user chose (``spec.controlPlaneVIP``) must be free on the
simulated network: used by no other SimCluster of the plane (the first one created keeps it)
and leased to no machine. A cluster whose VIP is taken fails with ``UnavailableControlPlaneIP``,
which is how "endpoint already in use" reaches the user.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from anywhere.controllers.conditions import ERROR, READY, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    cluster_paused,
    deleting,
    is_paused,
    name_of,
    namespace_of,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import CAPI_CLUSTERS, SIM_CLUSTERS, SIM_MACHINES
from anywhere.providers.sim.endpoints import EndpointError, EndpointHost
from anywhere.providers.sim.served import (
    ENDPOINT_RETRY,
    ENDPOINT_UNAVAILABLE,
    KUBECONFIG_SECRET_TYPE,
    ServedClusterAPI,
    cluster_name_of,
)
from anywhere.runtime import (
    Controller,
    InformerFactory,
    Result,
    enqueue_mapped,
    split_key,
)

__all__ = [
    "ENDPOINT_UNAVAILABLE",
    "FINALIZER",
    "KUBECONFIG_SECRET_TYPE",
    "UNAVAILABLE_CONTROL_PLANE_IP",
    "SimClusterController",
    "controller",
    "vip_conflict",
]

log = logging.getLogger("anywhere.controllers.simcluster")
Obj = dict[str, Any]

FINALIZER = "simcluster.infrastructure.cluster.x-k8s.io"
UNAVAILABLE_CONTROL_PLANE_IP = "UnavailableControlPlaneIP"


def _vip(obj: Obj) -> str:
    return str((obj.get("spec") or {}).get("controlPlaneVIP") or "")


def _internal_ips(machine: Obj) -> list[str]:
    return [
        str(a.get("address"))
        for a in (machine.get("status") or {}).get("addresses") or ()
        if a.get("type") == "InternalIP" and a.get("address")
    ]


def _age(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), namespace_of(obj), name_of(obj))


def vip_conflict(cluster: Obj, clusters: Iterable[Obj], machines: Iterable[Obj]) -> str | None:
    """Why ``cluster``'s control plane VIP is unavailable, or None when it is free.

    Another SimCluster holding the same VIP wins if it was created first (ties: by namespace and
    name), so exactly one of two clashing clusters fails. A machine holding the address as its
    node IP always wins: the address is in use on the network.
    """
    vip = _vip(cluster)
    if not vip:
        return None
    mine = _age(cluster)
    for other in clusters:
        if _vip(other) != vip or (namespace_of(other), name_of(other)) == mine[1:]:
            continue
        if _age(other) < mine:
            return (
                f"control plane endpoint {vip} is already in use by cluster "
                f"{namespace_of(other)}/{cluster_name_of(other)}; choose a free address in the node subnet, "
                "outside the DHCP range"
            )
    for machine in machines:
        if vip in _internal_ips(machine):
            return (
                f"control plane endpoint {vip} is already in use: it is the address of machine "
                f"{namespace_of(machine)}/{name_of(machine)} of cluster {cluster_name_of(machine)}; choose a "
                "free address in the node subnet, outside the DHCP range"
            )
    return None


class SimClusterController(Controller):
    """Reconciles SimClusters; the endpoints it serves stop when it stops.

    ``host`` is for tests: an :class:`EndpointHost` of their own (closed when the controller
    stops) instead of the plane's shared one.
    """

    def __init__(self, ctx: Context, *, workers: int = 2, host: EndpointHost | None = None) -> None:
        super().__init__("simcluster", self._reconcile, workers=workers)
        self.ctx = ctx
        self.served = ServedClusterAPI(ctx, host=host)
        self.host = self.served.host
        self.clusters = ctx.manager.informer(SIM_CLUSTERS)
        self.machines = ctx.manager.informer(SIM_MACHINES)
        self.capi_clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.watch(SIM_CLUSTERS, enqueue_mapped(self._same_vip))
        self.watch(SIM_MACHINES, enqueue_mapped(self._vip_holders))
        self.watch(CAPI_CLUSTERS, enqueue_mapped(self._infrastructure_of))

    async def run(self, factory: InformerFactory) -> None:
        try:
            await super().run(factory)
        finally:
            await self.served.close()

    # -- event mapping -----------------------------------------------------------------------------

    def _same_vip(self, obj: Obj) -> Iterable[str]:
        """The cluster itself, and the clusters its VIP may clash with (which re-examine theirs)."""
        yield f"{namespace_of(obj)}/{name_of(obj)}"
        vip = _vip(obj)
        if vip:
            for other in self.clusters.list():
                if _vip(other) == vip and other is not obj:
                    yield f"{namespace_of(other)}/{name_of(other)}"

    def _vip_holders(self, machine: Obj) -> Iterable[str]:
        addresses = set(_internal_ips(machine))
        if addresses:
            for cluster in self.clusters.list():
                if _vip(cluster) in addresses:
                    yield f"{namespace_of(cluster)}/{name_of(cluster)}"

    @staticmethod
    def _infrastructure_of(cluster: Obj) -> Iterable[str]:
        ref = (cluster.get("spec") or {}).get("infrastructureRef") or {}
        if ref.get("kind") == "SimCluster" and ref.get("name"):
            yield f"{ref.get('namespace') or namespace_of(cluster)}/{ref['name']}"

    # -- reconcile ---------------------------------------------------------------------------------

    def _paused(self, obj: Obj) -> bool:
        if is_paused(obj):
            return True
        return cluster_paused(self.capi_clusters.get(f"{namespace_of(obj)}/{cluster_name_of(obj)}"))

    async def _reconcile(self, key: str) -> Result | None:
        namespace, _ = split_key(key)
        obj = self.clusters.get(key)
        if obj is None or namespace is None:
            return None
        if self._paused(obj):
            return None
        if deleting(obj):
            await self._delete(obj)
            return None
        obj = await add_finalizer(self.ctx.client, SIM_CLUSTERS, obj, FINALIZER)
        status: Obj = copy.deepcopy(obj.get("status") or {})

        conflict = vip_conflict(obj, self.clusters.list(), self.machines.list())
        if conflict is not None:
            log.info("cluster %s: %s", key, conflict)
            status.update(ready=False, failureReason=UNAVAILABLE_CONTROL_PLANE_IP, failureMessage=conflict)
            set_false(status, READY, UNAVAILABLE_CONTROL_PLANE_IP, conflict, ERROR)
            await write_status(self.ctx.client, SIM_CLUSTERS, obj, status)
            return None

        try:
            obj = await self.served.serve(obj, SIM_CLUSTERS)
        except EndpointError as exc:
            message = str(exc)
            log.warning("cluster %s: %s", key, message)
            status["ready"] = bool(status.get("ready"))  # a served cluster stays ready
            set_false(status, READY, ENDPOINT_UNAVAILABLE, message, ERROR)
            await write_status(self.ctx.client, SIM_CLUSTERS, obj, status)
            return Result(requeue_after=ENDPOINT_RETRY)

        status["ready"] = True
        status.pop("failureReason", None)
        status.pop("failureMessage", None)
        set_true(status, READY)
        await write_status(self.ctx.client, SIM_CLUSTERS, obj, status)
        return None

    async def _delete(self, obj: Obj) -> None:
        await self.served.remove(obj)
        await remove_finalizer(self.ctx.client, SIM_CLUSTERS, obj, FINALIZER)


def controller(ctx: Context, *, workers: int = 2) -> SimClusterController:
    """The SimCluster controller (see the module doc)."""
    return SimClusterController(ctx, workers=workers)
