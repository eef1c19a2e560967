"""A cluster's Kubernetes API served by the plane, for providers whose machines run none.

Why: a ``sim`` cluster has no machines at all, and the VMs the ``vsphere`` provider makes in the
vCenter simulator run no API server; yet their users, kubectl and our own controllers must find a
real Kubernetes API at the cluster's control plane endpoint (DESIGN.md §2). So the infrastructure
cluster controller of such a provider serves it from the plane with :class:`ServedClusterAPI`:
:meth:`~ServedClusterAPI.serve` serves the API (an
:class:`~anywhere.providers.sim.endpoints.EndpointHost` endpoint), records where in the object's
``spec.controlPlaneEndpoint`` (so a restarted plane binds the same port again) and writes the
admin kubeconfig into Secret ``NAME-kubeconfig``, as Cluster API does, which is where
``ctx.clusters`` and the CLI find it. The self-managed cluster (``ctx.self_cluster``) is served
by the plane's own API instead.

One :class:`EndpointHost` per plane (:func:`shared_host`): every controller that serves APIs
shares it, because two hosts over one data folder would hand the same port to two clusters and
both own the same folders (``DATA_DIR/sim/NAMESPACE/NAME`` whatever the provider: infrastructure
clusters are named after their Cluster API clusters, so names do not clash across providers).
The Context does not hold the host (it knows no provider): a module-level registry does, keyed
by the resolved ``ctx.data_dir`` and holding each host weakly, as long as some helper uses it.
Each helper stops only the endpoints it served when it closes (its controller stopped, or lost
leadership), so one controller stopping never cuts another's clusters off; the host's
background compaction stops with its last endpoint.
"""

from __future__ import annotations

import base64
import logging
import weakref
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.controllers.conditions import READY, WARNING, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    create_or_patch,
    labels_of,
    name_of,
    namespace_of,
    owner_reference,
    patch_at_version,
    write_status,
)
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import CAPI_CLUSTERS
from anywhere.providers.sim.endpoints import HOST, EndpointError, EndpointHost
from anywhere.runtime import (
    SECRETS,
    Controller,
    InformerFactory,
    KubeConfigError,
    NotFoundError,
    Resource,
    Result,
    enqueue_mapped,
    parse_kubeconfig,
)

__all__ = [
    "ENDPOINT_RETRY",
    "ENDPOINT_UNAVAILABLE",
    "KUBECONFIG_SECRET_TYPE",
    "ServedClusterAPI",
    "ServedClusterController",
    "cluster_name_of",
    "shared_host",
]

log = logging.getLogger("anywhere.providers.sim.served")
Obj = dict[str, Any]

KUBECONFIG_SECRET_TYPE: Final = "cluster.x-k8s.io/secret"
# The reason of an infrastructure cluster's Ready=False when its API cannot be served.
ENDPOINT_UNAVAILABLE: Final = "EndpointUnavailable"
# A port held by another process may come free; look again this often.
ENDPOINT_RETRY: Final = 15.0

_HOSTS: weakref.WeakValueDictionary[Path, EndpointHost] = weakref.WeakValueDictionary()


def shared_host(data_dir: Path) -> EndpointHost:
    """The one :class:`EndpointHost` of the plane whose state is in ``data_dir`` (made on first
    use; kept while some :class:`ServedClusterAPI` holds it)."""
    key = Path(data_dir).resolve()
    host = _HOSTS.get(key)
    if host is None:
        host = _HOSTS[key] = EndpointHost(data_dir)
    return host


def cluster_name_of(obj: Obj) -> str:
    """The Cluster API cluster an infrastructure object belongs to: its cluster-name label, or
    (an object not labelled yet) its own name, which is the cluster's by construction."""
    return labels_of(obj).get(CLUSTER_NAME_LABEL) or name_of(obj)


def _endpoint_of_kubeconfig(kubeconfig: bytes) -> tuple[str, int]:
    server = parse_kubeconfig(kubeconfig).server
    parts = urlsplit(server)
    if not parts.hostname:
        raise KubeConfigError(f"the server {server!r} has no host")
    return parts.hostname, parts.port or 443


class ServedClusterAPI:
    """Serves the APIs of one infrastructure cluster kind's clusters (see the module doc).

    ``host`` is for tests: a host of their own, which this helper then owns and closes. Without
    it the plane's shared host (:func:`shared_host`) is used.
    """

    def __init__(self, ctx: Context, *, host: EndpointHost | None = None) -> None:
        self.ctx = ctx
        self._owns_host = host is not None
        self.host = host if host is not None else shared_host(ctx.data_dir)
        self._mine: set[tuple[str, str]] = set()  # the endpoints this helper asked the host for

    def self_managed(self, obj: Obj) -> bool:
        """Whether ``obj`` is the infrastructure of this plane's own cluster (served by the plane's
        API, not by an endpoint of its own)."""
        return self.ctx.self_cluster in (name_of(obj), f"{namespace_of(obj)}/{name_of(obj)}")

    async def serve(self, obj: Obj, resource: Resource) -> Obj:
        """Serve the API of ``obj``'s cluster (an object of ``resource``), record the endpoint in
        ``obj``'s ``spec.controlPlaneEndpoint`` (where a restarted plane finds its port again) and
        write its kubeconfig Secret, owned by ``obj``; returns ``obj`` as it now is, for the
        caller's status write. Raises :class:`EndpointError` when the API cannot be served (the
        message says why)."""
        host, port, kubeconfig = await self._endpoint(obj)
        recorded = (obj.get("spec") or {}).get("controlPlaneEndpoint") or {}
        if recorded.get("host") != host or recorded.get("port") != port:
            obj = await patch_at_version(
                self.ctx.client,
                resource,
                obj,
                {"spec": {"controlPlaneEndpoint": {"host": host, "port": port}}},
            )
        await self._kubeconfig_secret(obj, resource, kubeconfig)
        return obj

    async def serve_and_report(self, obj: Obj, resource: Resource, status: Obj) -> Result | None:
        """:meth:`serve`, then write ``status`` (the caller's conditions in it) with ``ready`` and
        ``Ready=True``; or, when the API cannot be served, ``Ready=False`` saying why, looked at
        again :data:`ENDPOINT_RETRY` seconds later."""
        try:
            obj = await self.serve(obj, resource)
        except EndpointError as exc:
            set_false(status, READY, ENDPOINT_UNAVAILABLE, str(exc), WARNING)
            await write_status(self.ctx.client, resource, obj, status)
            return Result(requeue_after=ENDPOINT_RETRY)
        status["ready"] = True
        set_true(status, READY)
        await write_status(self.ctx.client, resource, obj, status)
        return None

    async def remove(self, obj: Obj) -> None:
        """``obj``'s cluster is being deleted: stop watching it, stop serving its API and delete
        the API's state (the plane's own API stays, of course)."""
        namespace, name = namespace_of(obj), name_of(obj)
        await self.ctx.clusters.forget(namespace, cluster_name_of(obj))  # its watches go first
        if not self.self_managed(obj):
            await self.host.destroy(namespace, name)
            self._mine.discard((namespace, name))
        log.info("cluster %s/%s: endpoint removed", namespace, name)

    async def close(self) -> None:
        """Stop serving (the controller stops): the endpoints this helper served stop, their state
        stays for the next :meth:`serve`; a host of the caller's own is closed."""
        mine, self._mine = self._mine, set()
        if self._owns_host:
            await self.host.close()
            return
        for namespace, name in sorted(mine):
            await self.host.stop(namespace, name)

    # -- internals -------------------------------------------------------------------------------

    async def _endpoint(self, obj: Obj) -> tuple[str, int, bytes]:
        namespace, name = namespace_of(obj), name_of(obj)
        if self.self_managed(obj):
            kubeconfig = self.ctx.self_kubeconfig
            if not kubeconfig:
                raise EndpointError(
                    f"cluster {namespace}/{name} is this plane's own cluster, but the plane has no admin "
                    "kubeconfig of its API to hand out"
                )
            try:
                host, port = _endpoint_of_kubeconfig(kubeconfig)
            except KubeConfigError as exc:
                raise EndpointError(str(exc)) from exc
            return host, port, kubeconfig
        recorded = (obj.get("spec") or {}).get("controlPlaneEndpoint") or {}
        wanted = recorded.get("port") if recorded.get("host") == HOST else None
        self._mine.add((namespace, name))
        endpoint = await self.host.ensure(
            namespace, name, wanted if isinstance(wanted, int) and wanted > 0 else None
        )
        return HOST, endpoint.port, endpoint.kubeconfig

    async def _kubeconfig_secret(self, obj: Obj, resource: Resource, kubeconfig: bytes) -> None:
        namespace = namespace_of(obj)
        cluster = cluster_name_of(obj)
        secret_name = kubeconfig_secret_name(cluster)
        owner = {**obj, "apiVersion": resource.api_version, "kind": resource.kind or obj.get("kind")}
        desired: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret_name,
                "namespace": namespace,
                "labels": {CLUSTER_NAME_LABEL: cluster},
                "ownerReferences": [owner_reference(owner, controller=True)],
            },
            "type": KUBECONFIG_SECRET_TYPE,
            "data": {"value": base64.b64encode(kubeconfig).decode("ascii")},
        }
        try:
            current: Obj | None = await self.ctx.client.get(SECRETS, secret_name, namespace)
        except NotFoundError:
            current = None
        await create_or_patch(self.ctx.client, SECRETS, desired, current)


class ServedClusterController(Controller):
    """The frame of an infrastructure cluster controller whose clusters' APIs the plane serves (the
    ``vsphere`` and ``tinkerbell`` providers): its informers, what brings a cluster back (itself, its
    Cluster API cluster), and the endpoints it served stopped when it stops."""

    def __init__(self, ctx: Context, name: str, resource: Resource, *, workers: int) -> None:
        super().__init__(name, self._reconcile, workers=workers)
        self.ctx = ctx
        self.resource = resource
        self.served = ServedClusterAPI(ctx)
        self.clusters = ctx.manager.informer(resource)
        self.capi_clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.watch(resource, enqueue_mapped(lambda o: [f"{namespace_of(o)}/{name_of(o)}"]))
        self.watch(CAPI_CLUSTERS, enqueue_mapped(self._infrastructure_of))

    async def _reconcile(self, key: str) -> Result | None:
        raise NotImplementedError

    async def run(self, factory: InformerFactory) -> None:
        try:
            await super().run(factory)
        finally:
            await self.served.close()

    def _infrastructure_of(self, capi: Obj) -> list[str]:
        ref = (capi.get("spec") or {}).get("infrastructureRef") or {}
        return [f"{namespace_of(capi)}/{ref['name']}"] if ref.get("kind") == self.resource.kind else []
