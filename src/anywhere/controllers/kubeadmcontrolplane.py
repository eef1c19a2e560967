"""The KubeadmControlPlane controller: init the first control plane machine, join the rest, and roll
them one at a time without ever losing etcd quorum.

Every reconcile reads the machines and the etcd membership, asks :func:`kcp_plan.plan` for the
single next action, and carries it out (Cluster API's rules, see that module); the events the
action causes bring the controller back for the next one. Machines marked for remediation by a
MachineHealthCheck are replaced the same way: their etcd member goes first (after leadership has
moved away), then the machine, and the planner scales back up.

With ``spec.rolloutStrategy.type: InPlace`` outdated machines are upgraded where they stand, one at
a time (:mod:`anywhere.controllers.inplace`): the controller annotates the machine, the Machine
controller cordons, drains, asks the node agent and uncordons, and the controller then records the
machine as up to date in one write (``spec.version``, the spec-hash annotation; its parts take the
new templates first).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, CONTROL_PLANE_NAME_LABEL
from anywhere.controllers import inplace, kcp_plan
from anywhere.controllers.conditions import READY, is_false, is_true, set_condition, set_false
from anywhere.controllers.context import Context
from anywhere.controllers.etcd import EtcdAdmin, EtcdUnavailable, EtcdView
from anywhere.controllers.machines import ensure_machine_parts, infra_machine_resource, new_machine
from anywhere.controllers.objects import (
    add_finalizer,
    annotations_of,
    deleting,
    is_paused,
    labelled,
    labels_of,
    name_of,
    namespace_of,
    owned_by,
    parse_time,
    patch_at_version,
    remove_finalizer,
    short_hash,
    write_status,
)
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    KUBEADM_CONFIGS,
    KUBEADM_CONTROL_PLANES,
    MACHINES,
    resource_of,
)
from anywhere.providers.registry import provider_for_infra_cluster
from anywhere.runtime import Controller, NotFoundError, Result, enqueue_owner

__all__ = ["FINALIZER", "SPEC_HASH_ANNOTATION", "controller"]

log = logging.getLogger("anywhere.controllers.kubeadmcontrolplane")
Obj = dict[str, Any]
FINALIZER: Final = "kubeadm.controlplane.cluster.x-k8s.io"
SPEC_HASH_ANNOTATION: Final = "controlplane.anywhere.eks.amazonaws.com/spec-hash"
# Whether a machine runs kubeadm init or join (recorded on the machine, so its bootstrap config can
# be made again after a crash between creating the machine and its parts).
BOOTSTRAP_ANNOTATION: Final = "controlplane.anywhere.eks.amazonaws.com/bootstrap"
OWNER_REMEDIATED: Final = "OwnerRemediated"
# How soon to look at etcd again while waiting on it (its changes raise no event here).
ETCD_RECHECK: Final = 3.0


def desired_of(kcp: Obj) -> kcp_plan.Desired:
    spec = kcp.get("spec") or {}
    rollout = spec.get("rolloutStrategy") or {}
    strategy = rollout.get("rollingUpdate") or {}
    return kcp_plan.Desired(
        replicas=int(spec["replicas"]) if spec.get("replicas") is not None else 1,
        version=str(spec.get("version") or ""),
        spec_hash=spec_hash(kcp),
        max_surge=kcp_plan.max_surge_from(strategy.get("maxSurge")),
        in_place=rollout.get("type") == inplace.IN_PLACE,
    )


def spec_hash(kcp: Obj) -> str:
    """What makes a control plane machine current besides its version: its infrastructure template
    and kubeadm configuration."""
    spec = kcp.get("spec") or {}
    return short_hash(
        {
            "infrastructure": ((spec.get("machineTemplate") or {}).get("infrastructureRef") or {}).get(
                "name"
            ),
            "kubeadm": spec.get("kubeadmConfigSpec") or {},
        }
    )


def machine_view(machine: Obj) -> kcp_plan.MachineView:
    return kcp_plan.MachineView(
        name=name_of(machine),
        version=str((machine.get("spec") or {}).get("version") or ""),
        spec_hash=annotations_of(machine).get(SPEC_HASH_ANNOTATION, ""),
        created=int(parse_time(machine["metadata"].get("creationTimestamp")) or 0),
        healthy=is_true(machine, READY),
        deleting=deleting(machine),
        upgrading_to=inplace.requested(machine),
        upgraded=inplace.upgraded(machine),
    )


def bootstrap_spec(kcp: Obj, *, init: bool) -> Obj:
    """The KubeadmConfig of a new machine: kubeadm init for the first, join for the others."""
    spec = copy.deepcopy((kcp.get("spec") or {}).get("kubeadmConfigSpec") or {})
    if init:
        spec.pop("joinConfiguration", None)
        spec.setdefault("initConfiguration", {})
    else:
        spec.pop("initConfiguration", None)
        spec.setdefault("joinConfiguration", {}).setdefault("controlPlane", {})
    return spec


class ControlPlaneReconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.control_planes = ctx.manager.informer(KUBEADM_CONTROL_PLANES)
        self.clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.machines = ctx.manager.informer(MACHINES)
        self.bootstrap_configs = ctx.manager.informer(KUBEADM_CONFIGS)
        self._etcd: dict[str, EtcdAdmin] = {}

    def _etcd_admin(self, cluster: Obj) -> EtcdAdmin | None:
        kind = str(((cluster.get("spec") or {}).get("infrastructureRef") or {}).get("kind") or "")
        if kind not in self._etcd:
            provider = provider_for_infra_cluster(kind)
            if provider is None:
                return None
            self._etcd[kind] = provider.etcd_admin(self.ctx)
        return self._etcd[kind]

    def owned_machines(self, kcp: Obj) -> list[Obj]:
        namespace, name = namespace_of(kcp), name_of(kcp)
        return [
            m for m in labelled(self.machines, CONTROL_PLANE_NAME_LABEL, namespace, name) if owned_by(m, kcp)
        ]

    async def reconcile(self, key: str) -> Result | None:
        kcp = self.control_planes.get(key)
        if kcp is None:
            return None
        namespace = namespace_of(kcp)
        cluster_name = labels_of(kcp).get(CLUSTER_NAME_LABEL, "")
        cluster = self.clusters.get(f"{namespace}/{cluster_name}")
        machines = self.owned_machines(kcp)
        if deleting(kcp):
            return await self._delete(kcp, machines)
        if is_paused(kcp) or (cluster is not None and is_paused(cluster)):
            return None
        kcp = await add_finalizer(self.ctx.client, KUBEADM_CONTROL_PLANES, kcp, FINALIZER)
        status: Obj = copy.deepcopy(kcp.get("status") or {})
        desired = desired_of(kcp)
        if cluster is None or not (cluster.get("status") or {}).get("infrastructureReady"):
            set_false(
                status, READY, "WaitingForInfrastructure", "the cluster's infrastructure is not ready yet"
            )
            self._counts(kcp, desired, status, machines, None)
            await write_status(self.ctx.client, KUBEADM_CONTROL_PLANES, kcp, status)
            return None
        template = await self._template(kcp)
        if template is None:
            return Result(requeue_after=ETCD_RECHECK)
        for machine in machines:
            if not deleting(machine):
                await ensure_machine_parts(
                    self.ctx.client,
                    machine,
                    infrastructure_template=template,
                    bootstrap_spec=bootstrap_spec(
                        kcp, init=annotations_of(machine).get(BOOTSTRAP_ANNOTATION) == "init"
                    ),
                    infra_machines=self.ctx.manager.informer(infra_machine_resource(template)),
                    bootstrap_configs=self.bootstrap_configs,
                )
        etcd, etcd_problem = await self._etcd_view(cluster, machines)
        requeue: float | None = None
        if etcd is not None:
            action = self._remediation(machines, etcd) or kcp_plan.plan(
                desired, [machine_view(m) for m in machines], etcd
            )
            try:
                requeue = await self._act(kcp, desired, cluster_name, template, machines, action)
            except EtcdUnavailable as exc:
                # A membership change etcd could not make now (no quorum, a leader change, a member
                # still joining): say so and look again, as for an unreadable membership.
                log.info("%s/%s: %s", namespace, name_of(kcp), exc)
                etcd, etcd_problem = None, str(exc)
                requeue = ETCD_RECHECK
        else:
            requeue = ETCD_RECHECK
        self._counts(kcp, desired, status, machines, etcd, etcd_problem)
        await write_status(self.ctx.client, KUBEADM_CONTROL_PLANES, kcp, status)
        return Result(requeue_after=requeue) if requeue is not None else None

    async def _template(self, kcp: Obj) -> Obj | None:
        ref = ((kcp.get("spec") or {}).get("machineTemplate") or {}).get("infrastructureRef") or {}
        if not ref.get("name"):
            return None
        resource = resource_of(ref)
        cached = self.ctx.manager.informer(resource).get(f"{namespace_of(kcp)}/{ref['name']}")
        if cached is not None:
            return cached
        try:
            return await self.ctx.client.get(resource, str(ref["name"]), namespace_of(kcp))
        except NotFoundError:
            log.info("%s/%s: machine template %s not found yet", namespace_of(kcp), name_of(kcp), ref["name"])
            return None

    async def _etcd_view(self, cluster: Obj, machines: list[Obj]) -> tuple[EtcdView | None, str]:
        if not machines:
            return EtcdView(), ""
        admin = self._etcd_admin(cluster)
        if admin is None:
            return None, "no provider for this cluster's infrastructure"
        try:
            return await admin.view(namespace_of(cluster), name_of(cluster)), ""
        except EtcdUnavailable as exc:
            return None, str(exc)

    def _remediation(self, machines: list[Obj], etcd: EtcdView) -> kcp_plan.Action | None:
        """The next step of replacing a machine a health check marked, when that is safe now."""
        marked = [m for m in machines if is_false(m, OWNER_REMEDIATED) and not deleting(m)]
        if not marked or any(deleting(m) for m in machines):
            return None
        target = name_of(marked[0])
        if target not in etcd.members:
            return kcp_plan.DeleteMachine(target, "remediating a machine a health check found unhealthy")
        if not etcd.keeps_quorum_without(target):
            return None  # the planner waits; removing it now would lose quorum
        if etcd.leader == target:
            others = [n for n in etcd.healthy_voters if n != target]
            if not others:
                return None
            return kcp_plan.MoveLeader(target, others[-1], "the machine to remediate leads etcd")
        return kcp_plan.RemoveEtcdMember(target, "remediating a machine a health check found unhealthy")

    async def _act(
        self,
        kcp: Obj,
        desired: kcp_plan.Desired,
        cluster_name: str,
        template: Obj,
        machines: list[Obj],
        action: kcp_plan.Action,
    ) -> float | None:
        namespace = namespace_of(kcp)
        client = self.ctx.client
        match action:
            case kcp_plan.Init() | kcp_plan.ScaleUp():
                init = isinstance(action, kcp_plan.Init)
                machine_labels = {
                    **(((kcp.get("spec") or {}).get("machineTemplate") or {}).get("metadata") or {}).get(
                        "labels", {}
                    ),
                    CONTROL_PLANE_LABEL: "",
                    CONTROL_PLANE_NAME_LABEL: name_of(kcp),
                }
                machine = new_machine(
                    kcp,
                    cluster=cluster_name,
                    version=desired.version,
                    infrastructure_template={
                        "apiVersion": template["apiVersion"],
                        "kind": template["kind"],
                        "name": name_of(template),
                    },
                    labels=machine_labels,
                    annotations={
                        SPEC_HASH_ANNOTATION: desired.spec_hash,
                        BOOTSTRAP_ANNOTATION: "init" if init else "join",
                    },
                )
                created = await client.create(MACHINES, machine)
                log.info(
                    "%s/%s: %s machine %s",
                    namespace,
                    name_of(kcp),
                    "init" if init else "join",
                    name_of(created),
                )
                await ensure_machine_parts(
                    client,
                    created,
                    infrastructure_template=template,
                    bootstrap_spec=bootstrap_spec(kcp, init=init),
                    infra_machines=self.ctx.manager.informer(infra_machine_resource(template)),
                    bootstrap_configs=self.bootstrap_configs,
                )
                return None
            case kcp_plan.MoveLeader(target=to):
                cluster = self.clusters.get(f"{namespace}/{cluster_name}")
                admin = self._etcd_admin(cluster or {})
                if admin is not None:
                    log.info("%s/%s: moving etcd leadership to %s", namespace, name_of(kcp), to)
                    await admin.move_leader(namespace, cluster_name, to)
                return 0.0
            case kcp_plan.RemoveEtcdMember(machine=member):
                cluster = self.clusters.get(f"{namespace}/{cluster_name}")
                admin = self._etcd_admin(cluster or {})
                if admin is not None:
                    log.info("%s/%s: removing the etcd member of %s", namespace, name_of(kcp), member)
                    await admin.remove_member(namespace, cluster_name, member)
                return 0.0
            case kcp_plan.DeleteMachine(machine=target):
                log.info("%s/%s: deleting machine %s (%s)", namespace, name_of(kcp), target, action.reason)
                with contextlib.suppress(NotFoundError):
                    await client.delete(MACHINES, target, namespace)
                return None
            case kcp_plan.UpgradeInPlace(machine=target, version=version):
                found = next((m for m in machines if name_of(m) == target), None)
                if found is not None:
                    log.info("%s/%s: %s", namespace, name_of(kcp), action.reason)
                    await inplace.request(client, found, version)
                return None
            case kcp_plan.RecordInPlace(machine=target):
                found = next((m for m in machines if name_of(m) == target), None)
                if found is not None:
                    await self._record_in_place(kcp, desired, template, found)
                return None
            case kcp_plan.Wait():
                # An in-place upgrade is followed through its Machine's events; etcd is not.
                if desired.in_place and any(inplace.in_flight(m) for m in machines):
                    return None
                return ETCD_RECHECK
            case _:
                return None

    async def _record_in_place(
        self, kcp: Obj, desired: kcp_plan.Desired, template: Obj, machine: Obj
    ) -> None:
        """The machine was upgraded in place: its parts take the current templates, then one write
        of the Machine makes it up to date (version, spec hash) and ends the upgrade."""
        await inplace.adopt_templates(
            self.ctx.client,
            machine,
            infrastructure_template=name_of(template),
            bootstrap_spec=bootstrap_spec(
                kcp, init=annotations_of(machine).get(BOOTSTRAP_ANNOTATION) == "init"
            ),
            bootstrap_configs=self.bootstrap_configs,
        )
        with contextlib.suppress(NotFoundError):
            await patch_at_version(
                self.ctx.client,
                MACHINES,
                machine,
                {
                    "spec": {"version": desired.version},
                    "metadata": {"annotations": {SPEC_HASH_ANNOTATION: desired.spec_hash, **inplace.ended()}},
                },
            )
        log.info(
            "%s/%s: machine %s upgraded in place to %s",
            namespace_of(kcp),
            name_of(kcp),
            name_of(machine),
            desired.version,
        )

    def _counts(
        self,
        kcp: Obj,
        desired: kcp_plan.Desired,
        status: Obj,
        machines: list[Obj],
        etcd: EtcdView | None,
        etcd_problem: str = "",
    ) -> None:
        views = [machine_view(m) for m in machines]
        replicas = len(views)
        updated = sum(1 for v in views if v.up_to_date(desired) and not v.deleting)
        ready = sum(1 for v in views if v.healthy and not v.deleting)
        status.update(
            replicas=replicas,
            updatedReplicas=updated,
            readyReplicas=ready,
            unavailableReplicas=max(0, replicas - ready),
            selector=f"{CLUSTER_NAME_LABEL}={labels_of(kcp).get(CLUSTER_NAME_LABEL, '')},{CONTROL_PLANE_LABEL}",
            observedGeneration=int(kcp["metadata"].get("generation") or 0),
        )
        if views:
            status["version"] = min((v.version for v in views), key=inplace.version_key)
        if any((m.get("status") or {}).get("nodeRef") for m in machines):
            status["initialized"] = True  # the first machine's API is up and its node registered
        status["ready"] = ready > 0
        if status.get("initialized"):
            set_condition(status, "Available", True)
        else:
            set_false(
                status,
                "Available",
                "WaitingForKubeadmInit",
                "the first control plane machine is not ready yet",
            )
        set_condition(
            status,
            "Resized",
            replicas == desired.replicas,
            ""
            if replicas == desired.replicas
            else ("ScalingUp" if replicas < desired.replicas else "ScalingDown"),
            f"{replicas} of {desired.replicas} machines",
        )
        if updated == replicas:
            set_condition(status, "MachinesSpecUpToDate", True)
        elif desired.in_place:
            upgrading = inplace.upgrading(machines)
            set_false(
                status,
                "MachinesSpecUpToDate",
                inplace.IN_PROGRESS_REASON,
                f"{replicas - updated} machines are outdated"
                + (f"; upgrading in place: {', '.join(upgrading)}" if upgrading else ""),
            )
        else:
            set_false(
                status,
                "MachinesSpecUpToDate",
                "RollingUpdateInProgress",
                f"{replicas - updated} machines are outdated",
            )
        unhealthy = [v.name for v in views if not v.healthy]
        if unhealthy:
            set_false(
                status, "MachinesReady", "MachinesNotReady", f"not ready: {', '.join(sorted(unhealthy))}"
            )
        else:
            set_condition(status, "MachinesReady", True)
        if etcd is None:
            set_false(
                status, "EtcdClusterHealthy", "EtcdClusterUnknown", etcd_problem or "etcd not reachable"
            )
        elif etcd.members and not (etcd.has_quorum and all(etcd.members.values())):
            sick = sorted(n for n, healthy in etcd.members.items() if not healthy)
            set_false(
                status, "EtcdClusterHealthy", "EtcdClusterUnhealthy", f"unhealthy members: {', '.join(sick)}"
            )
        else:
            set_condition(status, "EtcdClusterHealthy", True)
        set_condition(
            status,
            "ControlPlaneComponentsHealthy",
            not unhealthy,
            "ControlPlaneComponentsUnhealthy",
            f"not ready: {', '.join(sorted(unhealthy))}" if unhealthy else "",
        )
        for kind in ("Available", "MachinesReady", "EtcdClusterHealthy", "Resized", "MachinesSpecUpToDate"):
            condition = next((c for c in status.get("conditions", []) if c["type"] == kind), None)
            if condition is not None and condition["status"] != "True":
                set_condition(status, READY, False, condition.get("reason", ""), condition.get("message", ""))
                break
        else:
            set_condition(status, READY, True)

    async def _delete(self, kcp: Obj, machines: list[Obj]) -> Result | None:
        """Take every machine down (the whole cluster is going: no etcd dance), then let go."""
        for machine in machines:
            if not deleting(machine):
                with contextlib.suppress(NotFoundError):
                    await self.ctx.client.delete(MACHINES, name_of(machine), namespace_of(machine))
        if machines:
            return None  # each machine's deletion brings us back
        await remove_finalizer(self.ctx.client, KUBEADM_CONTROL_PLANES, kcp, FINALIZER)
        return None


def controller(ctx: Context, *, workers: int = 4) -> Controller:
    reconciler = ControlPlaneReconciler(ctx)
    owner = enqueue_owner("KubeadmControlPlane", KUBEADM_CONTROL_PLANES.api_version)

    def control_planes_of_cluster(cluster: Obj) -> list[str]:
        ref = (cluster.get("spec") or {}).get("controlPlaneRef") or {}
        return [f"{namespace_of(cluster)}/{ref['name']}"] if ref.get("kind") == "KubeadmControlPlane" else []

    return (
        Controller("kubeadmcontrolplane", reconciler.reconcile, workers=workers)
        .watch(KUBEADM_CONTROL_PLANES)
        .watch(MACHINES, owner)
        .watch(CAPI_CLUSTERS, control_planes_of_cluster)
    )
