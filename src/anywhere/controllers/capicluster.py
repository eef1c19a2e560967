"""The Cluster API Cluster controller: the cluster's phase and readiness from its infrastructure and
control plane, and its deletion in Cluster API's order.

Deleting a Cluster takes the workers down first (machine deployments, machine sets, their
machines), then the control plane, then the infrastructure cluster (its endpoint), and lets the
Cluster go only when they are all gone; what remains owned by it (templates, health checks,
secrets) then goes by garbage collection.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL
from anywhere.controllers.conditions import READY, set_condition, set_false
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_SETS,
    MACHINES,
    resource_of,
)
from anywhere.providers.registry import all_providers
from anywhere.runtime import Controller, NotFoundError, Resource, Result

__all__ = ["FINALIZER", "controller"]

log = logging.getLogger("anywhere.controllers.capicluster")
Obj = dict[str, Any]
FINALIZER: Final = "cluster.cluster.x-k8s.io"


def _ref_resource(ref: Obj) -> Resource | None:
    if not ref.get("kind") or not ref.get("apiVersion"):
        return None
    return resource_of(ref)


class ClusterReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.control_planes = ctx.manager.informer(KUBEADM_CONTROL_PLANES)

    def _get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        return self.ctx.manager.informer(resource).get(f"{namespace}/{name}")

    async def reconcile(self, key: str) -> Result | None:
        cluster = self.clusters.get(key)
        if cluster is None:
            return None
        if deleting(cluster):
            return await self._delete(cluster)
        if is_paused(cluster):
            return None
        cluster = await add_finalizer(self.ctx.client, CAPI_CLUSTERS, cluster, FINALIZER)
        namespace = namespace_of(cluster)
        spec = cluster.get("spec") or {}
        status: Obj = copy.deepcopy(cluster.get("status") or {})
        infra_ref = spec.get("infrastructureRef") or {}
        infra_resource = _ref_resource(infra_ref)
        infra = self._get(infra_resource, namespace, infra_ref["name"]) if infra_resource else None
        infra_status = (infra or {}).get("status") or {}
        endpoint = ((infra or {}).get("spec") or {}).get("controlPlaneEndpoint") or {}
        if endpoint.get("host") and spec.get("controlPlaneEndpoint") != endpoint:
            cluster = await self.ctx.client.patch(
                CAPI_CLUSTERS,
                name_of(cluster),
                {"spec": {"controlPlaneEndpoint": endpoint}},
                namespace,
            )
        status["infrastructureReady"] = bool(infra_status.get("ready"))
        for field in ("failureReason", "failureMessage"):
            if infra_status.get(field):
                status[field] = infra_status[field]
            else:
                status.pop(field, None)
        if status["infrastructureReady"]:
            set_condition(status, "InfrastructureReady", True)
        else:
            set_false(
                status,
                "InfrastructureReady",
                "WaitingForInfrastructure",
                infra_status.get("failureMessage", ""),
            )
        cp_ref = spec.get("controlPlaneRef") or {}
        kcp = self.control_planes.get(f"{namespace}/{cp_ref.get('name', '')}") if cp_ref else None
        kcp_status = (kcp or {}).get("status") or {}
        status["controlPlaneReady"] = bool(kcp_status.get("ready"))
        if kcp_status.get("initialized"):
            set_condition(status, "ControlPlaneInitialized", True)
        else:
            set_false(status, "ControlPlaneInitialized", "WaitingForControlPlaneProviderInitialized")
        if status["controlPlaneReady"]:
            set_condition(status, "ControlPlaneReady", True)
        else:
            set_false(status, "ControlPlaneReady", "WaitingForControlPlane")
        if status["infrastructureReady"] and status["controlPlaneReady"]:
            set_condition(status, READY, True)
        else:
            set_false(
                status,
                READY,
                "WaitingForControlPlane" if status["infrastructureReady"] else "WaitingForInfrastructure",
            )
        status["phase"] = (
            "Provisioned"
            if status["infrastructureReady"] and spec.get("controlPlaneEndpoint", {}).get("host")
            else ("Failed" if status.get("failureReason") else "Provisioning")
        )
        status["observedGeneration"] = int(cluster["metadata"].get("generation") or 0)
        await write_status(self.ctx.client, CAPI_CLUSTERS, cluster, status)
        return None

    async def _delete(self, cluster: Obj) -> Result | None:
        """One step of the ordered teardown per reconcile; the deletions' events bring us back."""
        namespace, name = namespace_of(cluster), name_of(cluster)
        if (cluster.get("status") or {}).get("phase") != "Deleting":
            status = {**(cluster.get("status") or {}), "phase": "Deleting"}
            cluster = await write_status(self.ctx.client, CAPI_CLUSTERS, cluster, status)

        def owned(resource: Resource) -> list[Obj]:
            return of_cluster(self.ctx.manager.informer(resource), namespace, name)

        workers = [m for m in owned(MACHINES) if CONTROL_PLANE_LABEL not in labels_of(m)]
        stages: list[tuple[Resource, list[Obj]]] = [
            (MACHINE_DEPLOYMENTS, owned(MACHINE_DEPLOYMENTS)),
            (MACHINE_SETS, owned(MACHINE_SETS)),
            (MACHINES, workers),
        ]
        cp_ref = (cluster.get("spec") or {}).get("controlPlaneRef") or {}
        cp = self.control_planes.get(f"{namespace}/{cp_ref.get('name', '')}") if cp_ref else None
        stages.append((KUBEADM_CONTROL_PLANES, [cp] if cp is not None else []))
        infra_ref = (cluster.get("spec") or {}).get("infrastructureRef") or {}
        infra_resource = _ref_resource(infra_ref)
        if infra_resource is not None:
            infra = self._get(infra_resource, namespace, str(infra_ref["name"]))
            stages.append((infra_resource, [infra] if infra is not None else []))
        for resource, objects in stages:
            if not objects:
                continue
            for obj in objects:
                if not deleting(obj):
                    log.info("cluster %s/%s: deleting %s %s", namespace, name, resource.kind, name_of(obj))
                    with contextlib.suppress(NotFoundError):
                        await self.ctx.client.delete(resource, name_of(obj), namespace)
            return None
        await self.ctx.clusters.forget(namespace, name)
        await remove_finalizer(self.ctx.client, CAPI_CLUSTERS, cluster, FINALIZER)
        log.info("cluster %s/%s: deleted", namespace, name)
        return None


def _cluster_of(obj: Obj) -> list[str]:
    cluster = labels_of(obj).get(CLUSTER_NAME_LABEL)
    return [f"{namespace_of(obj)}/{cluster}"] if cluster else []


def controller(ctx: Context, *, workers: int = 2) -> Controller:
    reconciler = ClusterReconciler(ctx)
    ctrl = Controller("cluster-api-cluster", reconciler.reconcile, workers=workers).watch(CAPI_CLUSTERS)
    for resource in (KUBEADM_CONTROL_PLANES, MACHINE_DEPLOYMENTS, MACHINE_SETS, MACHINES):
        ctrl.watch(resource, _cluster_of)
    for provider in all_providers():
        ctrl.watch(provider.infra_cluster, _cluster_of)
    return ctrl
