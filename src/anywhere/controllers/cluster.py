"""The anywhere cluster controller: a Cluster and its datacenter and machine configs become Cluster
API objects in ``eksa-system``, and the Cluster's status says how far reality has come.

Phases of one reconcile, each of which either completes or ends the reconcile:

1. deletion: delete the Cluster API Cluster (whose controller takes everything down in order),
   wait until it is gone, release the finalizer;
2. read and check the configuration: the referenced objects exist, the specification is valid
   for creation, the cluster's place among the plane's clusters is sound — otherwise
   ``failureReason``/``failureMessage`` say what is wrong and nothing is touched;
3. render and apply the Cluster API objects (no write when they are current);
4. the default CNI, once the control plane is initialized;
5. status: EKS Anywhere's conditions; ``observedGeneration`` only after all of the above
   succeeded for this generation.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Final

from anywhere.api.config import ClusterConfig
from anywhere.api.defaults import default_config
from anywhere.api.errors import FieldError
from anywhere.api.loader import object_from_dict
from anywhere.api.v1alpha1 import Cluster, Object
from anywhere.api.validation.cluster import create_checks, validate_config
from anywhere.controllers import cni
from anywhere.controllers.cluster_render import CLUSTER_NAMESPACE_LABEL, EKSA_CLUSTER_LABEL, render
from anywhere.controllers.cluster_status import CniState, set_conditions
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    create_or_patch,
    deleting,
    is_paused,
    labelled,
    labels_of,
    name_of,
    namespace_of,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.remote import ClusterNotReachable
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    EKSA_CLUSTERS,
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_HEALTH_CHECKS,
    SYSTEM_NAMESPACE,
)
from anywhere.providers.base import Provider
from anywhere.providers.registry import all_providers, provider_for_datacenter
from anywhere.runtime import (
    Controller,
    Informer,
    NotFoundError,
    Resource,
    Result,
    TransportError,
    enqueue_mapped,
)

__all__ = ["FINALIZER", "controller"]

log = logging.getLogger("anywhere.controllers.cluster")
Obj = dict[str, Any]
FINALIZER: Final = "clusters.anywhere.eks.amazonaws.com/finalizer"
# How soon to look again at what changes without an event here (a workload API coming up).
RETRY: Final = 5.0


class _Invalid(Exception):
    """The configuration cannot work as it stands: a failureReason and a message for the user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ClusterReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        manager = ctx.manager
        self.clusters = manager.informer(EKSA_CLUSTERS)
        self.clusters.add_index("name", lambda obj: [name_of(obj)])  # names are unique across namespaces
        self.capi_clusters = manager.informer(CAPI_CLUSTERS)
        self.control_planes = manager.informer(KUBEADM_CONTROL_PLANES)
        self.deployments = manager.informer(MACHINE_DEPLOYMENTS)
        self._addons = cni.AddonInstaller()

    def cache(self, resource: Resource) -> Informer:
        """The shared cache of a kind (all namespaces: one watch per kind for the whole plane)."""
        return self.ctx.manager.informer(resource)

    async def reconcile(self, key: str) -> Result | None:
        obj = self.clusters.get(key)
        if obj is None:
            return None
        if deleting(obj):
            return await self._delete(obj)
        if is_paused(obj):
            return None
        obj = await add_finalizer(self.ctx.client, EKSA_CLUSTERS, obj, FINALIZER)
        status: Obj = copy.deepcopy(obj.get("status") or {})
        try:
            config, provider = self._config(obj)
        except _Invalid as invalid:
            status["failureReason"] = invalid.reason
            status["failureMessage"] = invalid.message
            # The verdict is on this generation: a client that applied a later one waits for its own.
            status["observedGeneration"] = int(obj["metadata"].get("generation") or 0)
            await write_status(self.ctx.client, EKSA_CLUSTERS, obj, status)
            return None
        capi_cluster = await self._apply(config, provider)
        infra = self.cache(provider.infra_cluster).get(f"{SYSTEM_NAMESPACE}/{config.cluster.name}")
        infra_status = (infra or {}).get("status") or {}
        if infra_status.get("failureReason"):
            status["failureReason"] = infra_status["failureReason"]
            status["failureMessage"] = infra_status.get("failureMessage", "")
            status["observedGeneration"] = int(obj["metadata"].get("generation") or 0)
        else:
            status.pop("failureReason", None)
            status.pop("failureMessage", None)
        name = config.cluster.name
        kcp = self.control_planes.get(f"{SYSTEM_NAMESPACE}/{name}")
        deployments = labelled(self.deployments, EKSA_CLUSTER_LABEL, SYSTEM_NAMESPACE, name)
        cni_state, retry = await self._cni(config.cluster, capi_cluster, kcp)
        set_conditions(status, config.cluster, kcp, deployments, cni_state)
        if not retry:
            status["observedGeneration"] = int(obj["metadata"].get("generation") or 0)
        await write_status(self.ctx.client, EKSA_CLUSTERS, obj, status)
        return Result(requeue_after=RETRY) if retry else None

    # -- phase 1: deletion --------------------------------------------------------------------------

    async def _delete(self, obj: Obj) -> Result | None:
        name = name_of(obj)
        capi = self.capi_clusters.get(f"{SYSTEM_NAMESPACE}/{name}")
        if capi is not None and labels_of(capi).get(
            CLUSTER_NAMESPACE_LABEL, namespace_of(obj)
        ) == namespace_of(obj):
            if not deleting(capi):
                log.info("cluster %s/%s: deleting its Cluster API objects", namespace_of(obj), name)
                with contextlib.suppress(NotFoundError):
                    await self.ctx.client.delete(CAPI_CLUSTERS, name, SYSTEM_NAMESPACE)
            return None  # the Cluster API Cluster's deletion brings us back
        await self.ctx.clusters.forget(SYSTEM_NAMESPACE, name)
        self._addons.forget(name)
        await remove_finalizer(self.ctx.client, EKSA_CLUSTERS, obj, FINALIZER)
        return None

    # -- phase 2: the configuration -----------------------------------------------------------------

    def _config(self, obj: Obj) -> tuple[ClusterConfig, Provider]:
        namespace = namespace_of(obj) or "default"
        cluster = _typed(obj)
        if not isinstance(cluster, Cluster):
            raise _Invalid("ClusterInvalid", "the Cluster object cannot be read")
        ref = cluster.spec.datacenter_ref
        if ref is None or not ref.kind:
            raise _Invalid("ClusterInvalid", "spec.datacenterRef is not set")
        provider = provider_for_datacenter(ref.kind)
        if provider is None:
            kinds = ", ".join(p.datacenter_kind for p in all_providers())
            raise _Invalid(
                "DatacenterConfigInvalid",
                f"datacenterRef kind {ref.kind} has no provider in this management plane; use one of: {kinds}",
            )
        objects: list[Object] = []
        datacenter = self.cache(provider.datacenter).get(f"{namespace}/{ref.name}")
        if datacenter is None:
            raise _Invalid(
                "MissingDependentObjects",
                f"{ref.kind} {ref.name} not found in namespace {namespace}; create it",
            )
        objects.append(_typed(datacenter))
        machine_refs = self._machine_refs(cluster)
        for machine_ref in machine_refs:
            if machine_ref.kind != provider.machine_config_kind:
                raise _Invalid(
                    "MachineConfigInvalid",
                    f"machineGroupRef kind {machine_ref.kind} cannot be used with {ref.kind}; "
                    f"use {provider.machine_config_kind}",
                )
            machine = self.cache(provider.machine_config).get(f"{namespace}/{machine_ref.name}")
            if machine is None:
                raise _Invalid(
                    "MissingDependentObjects",
                    f"{machine_ref.kind} {machine_ref.name} not found in namespace {namespace}; create it",
                )
            if all(o.name != machine_ref.name for o in objects[1:]):
                objects.append(_typed(machine))
        config = ClusterConfig(cluster=cluster, objects=objects, source=f"{namespace}/{cluster.name}")
        default_config(config)
        errors = validate_config(config) + create_checks(config)
        if errors:
            raise _Invalid(_reason(errors, config), "; ".join(str(e) for e in errors))
        self._check_place(obj, cluster)
        return config, provider

    @staticmethod
    def _machine_refs(cluster: Cluster) -> list[Any]:
        refs = []
        control = cluster.spec.control_plane_configuration
        if control is not None and control.machine_group_ref is not None:
            refs.append(control.machine_group_ref)
        for group in cluster.spec.worker_node_group_configurations or []:
            if group.machine_group_ref is not None:
                refs.append(group.machine_group_ref)
        etcd = cluster.spec.external_etcd_configuration
        if etcd is not None and etcd.machine_group_ref is not None:
            refs.append(etcd.machine_group_ref)
        return refs

    def _check_place(self, obj: Obj, cluster: Cluster) -> None:
        """Names are unique across namespaces (their Cluster API objects share eksa-system); one
        self-managed cluster per plane, and workload clusters name it as their management cluster."""
        name, namespace = cluster.name, namespace_of(obj) or "default"
        mine = (obj["metadata"].get("creationTimestamp") or "", namespace)
        for other in self.clusters.by_index("name", name):
            if (namespace_of(other) or "default") == namespace:
                continue
            if (other["metadata"].get("creationTimestamp") or "", namespace_of(other)) < mine:
                raise _Invalid(
                    "ClusterInvalid",
                    f"a cluster named {name} already exists in namespace {namespace_of(other)}; "
                    "cluster names must be unique in a management cluster",
                )
        management = (
            cluster.spec.management_cluster.name if cluster.spec.management_cluster else None
        ) or name
        plane = self.ctx.self_cluster
        if plane is None:
            return
        if management == name and name != plane:
            raise _Invalid(
                "ManagementClusterRefInvalid",
                f"this management cluster is {plane}; set spec.managementCluster.name: {plane} "
                "to create a workload cluster",
            )
        if management not in (name, plane):
            raise _Invalid(
                "ManagementClusterRefInvalid",
                f"spec.managementCluster.name is {management}, but this management cluster is {plane}",
            )

    # -- phase 3: Cluster API objects ------------------------------------------------------------------

    async def _apply(self, config: ClusterConfig, provider: Provider) -> Obj:
        client = self.ctx.client
        name = config.cluster.name
        rendered = render(config, provider)
        capi = await create_or_patch(
            client, CAPI_CLUSTERS, rendered.cluster, self.capi_clusters.get(f"{SYSTEM_NAMESPACE}/{name}")
        )
        rendered = render(config, provider, owner=capi)
        kinds: list[tuple[Resource, Obj]] = [
            (provider.infra_cluster, rendered.infra_cluster),
            (provider.infra_machine_template, rendered.control_plane_template),
            (KUBEADM_CONTROL_PLANES, rendered.control_plane),
        ]
        for group in rendered.workers:
            kinds += [
                (provider.infra_machine_template, group.machine_template),
                (KUBEADM_CONFIG_TEMPLATES, group.bootstrap_template),
                (MACHINE_DEPLOYMENTS, group.machine_deployment),
            ]
        kinds.append((MACHINE_HEALTH_CHECKS, rendered.control_plane_health_check))
        kinds += [(MACHINE_HEALTH_CHECKS, group.health_check) for group in rendered.workers]
        for resource, desired in kinds:
            current = self.cache(resource).get(f"{SYSTEM_NAMESPACE}/{name_of(desired)}")
            await create_or_patch(client, resource, desired, current)
        await self._prune(name, rendered.workers)
        return capi

    async def _prune(self, name: str, groups: list[Any]) -> None:
        """Delete the machine deployments (and their health checks) of worker groups no longer in the spec."""
        wanted_md = {name_of(g.machine_deployment) for g in groups}
        wanted_mhc = {name_of(g.health_check) for g in groups} | {f"{name}-kcp-unhealthy"}
        for resource, wanted in ((MACHINE_DEPLOYMENTS, wanted_md), (MACHINE_HEALTH_CHECKS, wanted_mhc)):
            for obj in labelled(self.cache(resource), EKSA_CLUSTER_LABEL, SYSTEM_NAMESPACE, name):
                if name_of(obj) in wanted or deleting(obj):
                    continue
                log.info(
                    "cluster %s: deleting %s %s (no longer in the spec)", name, resource.kind, name_of(obj)
                )
                with contextlib.suppress(NotFoundError):
                    await self.ctx.client.delete(resource, name_of(obj), SYSTEM_NAMESPACE)

    # -- phase 4: the default CNI ------------------------------------------------------------------------

    async def _cni(self, cluster: Cluster, capi: Obj, kcp: Obj | None) -> tuple[CniState, bool]:
        """Install (or upgrade) Cilium once the control plane is initialized. Returns its state and
        whether to look again soon (the workload API was not reachable)."""
        network = cluster.spec.cluster_network
        cilium = network.cni_config.cilium if network and network.cni_config else None
        skip = bool(cilium and cilium.skip_upgrade)
        if kcp is None or not (kcp.get("status") or {}).get("initialized"):
            return CniState(configured=False, skip_upgrade=skip), False
        try:
            remote = await self.ctx.clusters.client(SYSTEM_NAMESPACE, name_of(capi))
            if skip and await cni.installed(remote):
                return CniState(configured=True, skip_upgrade=True), False
            await self._addons.ensure(name_of(capi), remote, cluster)
        except (ClusterNotReachable, TransportError) as exc:
            return CniState(
                configured=False, skip_upgrade=skip, message=f"Cilium not installed yet: {exc}"
            ), True
        return CniState(configured=True, skip_upgrade=skip), False


def _typed(data: Obj) -> Any:
    obj, errors = object_from_dict(_without_status_noise(data))
    if obj is None:
        raise _Invalid("ClusterInvalid", "; ".join(str(e) for e in errors))
    return obj


def _without_status_noise(data: Obj) -> Obj:
    """The object as the models read it: server-set metadata kept, managedFields dropped."""
    out = dict(data)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


def _reason(errors: list[FieldError], config: ClusterConfig) -> str:
    kinds = {e.obj.partition("/")[0] for e in errors}
    if config.cluster.kind in kinds:
        return "ClusterInvalid"
    datacenter = config.datacenter
    if datacenter is not None and datacenter.kind in kinds:
        return "DatacenterConfigInvalid"
    return "MachineConfigInvalid"


def _config_refs(cluster: Obj) -> set[str]:
    """``namespace/kind/name`` of every datacenter and machine config a Cluster object names."""
    spec = cluster.get("spec") or {}
    refs = [
        spec.get("datacenterRef"),
        (spec.get("controlPlaneConfiguration") or {}).get("machineGroupRef"),
        (spec.get("externalEtcdConfiguration") or {}).get("machineGroupRef"),
        *((group or {}).get("machineGroupRef") for group in spec.get("workerNodeGroupConfigurations") or ()),
    ]
    namespace = namespace_of(cluster) or "default"
    return {
        f"{namespace}/{ref.get('kind')}/{ref.get('name')}"
        for ref in refs
        if isinstance(ref, dict) and ref.get("name")
    }


def _clusters_of_config(reconciler: ClusterReconciler) -> Any:
    """Map a datacenter or machine config to the keys of the Clusters that name it (a changed or
    newly created config may complete or change them)."""
    reconciler.clusters.add_index("config", _config_refs)

    def keys(obj: Obj) -> list[str]:
        ref = f"{namespace_of(obj) or 'default'}/{obj.get('kind')}/{name_of(obj)}"
        return [f"{namespace_of(c)}/{name_of(c)}" for c in reconciler.clusters.by_index("config", ref)]

    return keys


def _from_labels(obj: Obj) -> list[str]:
    """The anywhere Cluster a Cluster API object was rendered for (EKS Anywhere's labels)."""
    meta = labels_of(obj)
    name, namespace = meta.get(EKSA_CLUSTER_LABEL), meta.get(CLUSTER_NAMESPACE_LABEL)
    return [f"{namespace}/{name}"] if name and namespace else []


def controller(ctx: Context, *, workers: int = 4) -> Controller:
    reconciler = ClusterReconciler(ctx)
    ctrl = Controller("cluster", reconciler.reconcile, workers=workers).watch(EKSA_CLUSTERS)
    for provider in all_providers():
        mapper = enqueue_mapped(_clusters_of_config(reconciler))
        ctrl.watch(provider.datacenter, mapper).watch(provider.machine_config, mapper)
        ctrl.watch(provider.infra_cluster, _from_labels)
    for resource in (CAPI_CLUSTERS, KUBEADM_CONTROL_PLANES, MACHINE_DEPLOYMENTS):
        ctrl.watch(resource, _from_labels)
    return ctrl
