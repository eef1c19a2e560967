"""The SimCluster controller: a simulated cluster's infrastructure is its API endpoint.

For every SimCluster this controller serves a Kubernetes API in this process
(:class:`~anywhere.providers.sim.endpoints.EndpointHost`), records where in
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

import base64
import copy
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.controllers.conditions import ERROR, READY, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    cluster_paused,
    create_or_patch,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    owner_reference,
    patch_at_version,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import CAPI_CLUSTERS, SECRETS, SIM_CLUSTERS, SIM_MACHINES
from anywhere.providers.sim.endpoints import HOST, Endpoint, EndpointError, EndpointHost
from anywhere.runtime import (
    Controller,
    InformerFactory,
    KubeConfigError,
    NotFoundError,
    Result,
    enqueue_mapped,
    parse_kubeconfig,
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
KUBECONFIG_SECRET_TYPE = "cluster.x-k8s.io/secret"
UNAVAILABLE_CONTROL_PLANE_IP = "UnavailableControlPlaneIP"
ENDPOINT_UNAVAILABLE = "EndpointUnavailable"
# A port held by another process may come free; look again this often.
ENDPOINT_RETRY = 15.0


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


def _cluster_of(obj: Obj) -> str:
    return labels_of(obj).get(CLUSTER_NAME_LABEL) or name_of(obj)


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
                f"{namespace_of(other)}/{_cluster_of(other)}; choose a free address in the node subnet, "
                "outside the DHCP range"
            )
    for machine in machines:
        if vip in _internal_ips(machine):
            return (
                f"control plane endpoint {vip} is already in use: it is the address of machine "
                f"{namespace_of(machine)}/{name_of(machine)} of cluster {_cluster_of(machine)}; choose a "
                "free address in the node subnet, outside the DHCP range"
            )
    return None


def _endpoint_of_kubeconfig(kubeconfig: bytes) -> tuple[str, int]:
    server = parse_kubeconfig(kubeconfig).server
    parts = urlsplit(server)
    if not parts.hostname:
        raise KubeConfigError(f"the server {server!r} has no host")
    return parts.hostname, parts.port or 443


class SimClusterController(Controller):
    """Reconciles SimClusters; owns the :class:`EndpointHost` and stops it when it stops."""

    def __init__(self, ctx: Context, *, workers: int = 2, host: EndpointHost | None = None) -> None:
        super().__init__("simcluster", self._reconcile, workers=workers)
        self.ctx = ctx
        self.host = host if host is not None else EndpointHost(ctx.data_dir)
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
            await self.host.close()

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

    def _self_managed(self, namespace: str, name: str) -> bool:
        return self.ctx.self_cluster in (name, f"{namespace}/{name}")

    def _paused(self, obj: Obj) -> bool:
        if is_paused(obj):
            return True
        return cluster_paused(self.capi_clusters.get(f"{namespace_of(obj)}/{_cluster_of(obj)}"))

    async def _reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
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
            host, port, kubeconfig = await self._endpoint(obj, namespace, name)
        except (EndpointError, KubeConfigError) as exc:
            message = str(exc)
            log.warning("cluster %s: %s", key, message)
            status["ready"] = bool(status.get("ready"))  # a served cluster stays ready
            set_false(status, READY, ENDPOINT_UNAVAILABLE, message, ERROR)
            await write_status(self.ctx.client, SIM_CLUSTERS, obj, status)
            return Result(requeue_after=ENDPOINT_RETRY)

        recorded = (obj.get("spec") or {}).get("controlPlaneEndpoint") or {}
        if recorded.get("host") != host or recorded.get("port") != port:
            obj = await patch_at_version(
                self.ctx.client,
                SIM_CLUSTERS,
                obj,
                {"spec": {"controlPlaneEndpoint": {"host": host, "port": port}}},
            )
        await self._kubeconfig_secret(obj, kubeconfig)

        status["ready"] = True
        status.pop("failureReason", None)
        status.pop("failureMessage", None)
        set_true(status, READY)
        await write_status(self.ctx.client, SIM_CLUSTERS, obj, status)
        return None

    async def _endpoint(self, obj: Obj, namespace: str, name: str) -> tuple[str, int, bytes]:
        if self._self_managed(namespace, name):
            kubeconfig = self.ctx.self_kubeconfig
            if not kubeconfig:
                raise EndpointError(
                    f"cluster {namespace}/{name} is this plane's own cluster, but the plane has no admin "
                    "kubeconfig of its API to hand out"
                )
            host, port = _endpoint_of_kubeconfig(kubeconfig)
            return host, port, kubeconfig
        recorded = (obj.get("spec") or {}).get("controlPlaneEndpoint") or {}
        wanted = recorded.get("port") if recorded.get("host") == HOST else None
        endpoint: Endpoint = await self.host.ensure(
            namespace, name, wanted if isinstance(wanted, int) and wanted > 0 else None
        )
        return HOST, endpoint.port, endpoint.kubeconfig

    async def _kubeconfig_secret(self, obj: Obj, kubeconfig: bytes) -> None:
        namespace = namespace_of(obj)
        cluster = _cluster_of(obj)
        secret_name = kubeconfig_secret_name(cluster)
        desired: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "namespace": namespace,
                "labels": {CLUSTER_NAME_LABEL: cluster},
                "ownerReferences": [owner_reference(obj, controller=True)],
            },
            "type": KUBECONFIG_SECRET_TYPE,
            "data": {"value": base64.b64encode(kubeconfig).decode("ascii")},
        }
        try:
            current: Obj | None = await self.ctx.client.get(SECRETS, secret_name, namespace)
        except NotFoundError:
            current = None
        await create_or_patch(self.ctx.client, SECRETS, desired, current)

    async def _delete(self, obj: Obj) -> None:
        namespace, name = namespace_of(obj), name_of(obj)
        await self.ctx.clusters.forget(namespace, _cluster_of(obj))  # its watches go first
        if not self._self_managed(namespace, name):
            await self.host.destroy(namespace, name)
        await remove_finalizer(self.ctx.client, SIM_CLUSTERS, obj, FINALIZER)
        log.info("cluster %s/%s: endpoint removed", namespace, name)


def controller(ctx: Context, *, workers: int = 2) -> SimClusterController:
    """The SimCluster controller (see the module doc)."""
    return SimClusterController(ctx, workers=workers)
