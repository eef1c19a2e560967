"""The MachineSet controller: keeps ``spec.replicas`` Machines made from ``spec.template``, as
Cluster API's does.

What it does on every reconcile of a MachineSet (MS):

1. gathers its Machines: those it controls, and orphans its selector matches (adopted, as Cluster
   API and ReplicaSets do). Machines being deleted still count towards the replicas (Cluster API
   #3434): a replacement is made only once the old machine is gone, so a rollout never has more
   machines than it allows;
2. remediation: a Machine that a MachineHealthCheck marked ``OwnerRemediated=False`` is deleted
   (its replacement follows from step 4), newest first, at most the MachineDeployment's
   ``strategy.remediation.maxInFlight`` at once; a machine that recovered (``HealthCheckSucceeded``
   True) loses the mark; machines of an MS that is not its deployment's current revision are not
   remediated (the rollout replaces them anyway);
3. makes the missing parts (infrastructure machine, KubeadmConfig) of every Machine (see
   :mod:`anywhere.controllers.machines`), and keeps the template's labels on the Machines;
4. creates or deletes Machines until their number is ``spec.replicas``;
5. writes the status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
   observedGeneration, selector (for the scale subresource), failureReason/Message of a failed
   machine, and the conditions MachinesCreated, Resized, MachinesReady and their summary Ready.

Which machines go first when scaling down (:func:`machines_to_delete`): machines already being
deleted, then those annotated ``cluster.x-k8s.io/delete-machine``, then failed or unhealthy ones,
then those not Ready (not yet running), then those Ready for less than ``minReadySeconds``, and
only then healthy ones, among which ``spec.deletePolicy`` decides. Cluster API's default policy is
Random; ours is Newest when the field is unset, for three reasons: it is deterministic (the same
state always deletes the same machine, so tests and simulated clusters are reproducible); the
newest machine has had the least time to take on workloads, so deleting it disturbs least; and a
scale-down right after a scale-up undoes exactly that scale-up. An explicit ``Random``, ``Oldest``
or ``Newest`` is honoured (``Random`` orders by name, as Cluster API's does: names end in random
suffixes). Unready-first ordering is also what keeps a MachineDeployment rollout within
``maxUnavailable``: the deployment scales an old MS down by at most its available machines, which
is only safe if the MS deletes the unavailable ones first.

A machine counts as ready when its condition Ready is True (the contract: its Node is Ready), and
as available once it has been ready for ``spec.minReadySeconds``. Machines being deleted count in
``status.replicas`` (as in Cluster API) but never as ready or available: they are going away.

In-place upgrades (a MachineDeployment with ``strategy.type: InPlace``, see
:mod:`anywhere.controllers.inplace`): while the deployment moves an upgraded machine from an old set
to its current one, it holds both (annotation ``anywhere.eks.amazonaws.com/in-place-hold``): a held
set neither creates nor deletes machines (step 4), so that the moment between the move and the new
replica counts makes and deletes nothing; everything else goes on. The old sets of such a deployment
keep remediating their machines (their machines are upgraded, not replaced, so nothing else would).

Deletion: the MS has no finalizer. Its Machines are owned by it (controller reference), so the API
server's garbage collector deletes them when the MS goes; each Machine's own finalizer then tears it
down. An MS that is being deleted but still exists (foreground deletion, a foreign finalizer)
deletes its Machines itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from anywhere.api.capi import (
    CLUSTER_NAME_LABEL,
    MACHINE_DEPLOYMENT_NAME_LABEL,
    MACHINE_SET_NAME_LABEL,
)
from anywhere.api.capi._base import DELETE_MACHINE_ANNOTATION, REVISION_ANNOTATION
from anywhere.api.capi.machine import MachinePhase
from anywhere.api.capi.machineset import DeletePolicy
from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.selectors import LabelSelector, label_selector_from_dict
from anywhere.controllers import conditions, inplace
from anywhere.controllers.context import Context
from anywhere.controllers.machines import ensure_machine_parts, infra_machine_resource, new_machine
from anywhere.controllers.objects import (
    FIELD_MANAGER,
    annotations_of,
    cluster_paused,
    contains,
    controlled_by,
    controller_of,
    deleting,
    is_paused,
    labelled,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    owner_reference,
    parse_time,
    write_status,
)
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONFIGS,
    MACHINE_DEPLOYMENTS,
    MACHINE_SETS,
    MACHINES,
    resource_of,
)
from anywhere.runtime import Controller, Informer, Manager, NotFoundError, Resource, Result, enqueue_mapped

__all__ = [
    "DEFAULT_DELETE_POLICY",
    "HEALTH_CHECK_SUCCEEDED",
    "MACHINES_CREATED",
    "MACHINES_READY",
    "NODE_HEALTHY",
    "OWNER_REMEDIATED",
    "RESIZED",
    "bootstrap_template_spec",
    "controller",
    "delete_tier",
    "is_available",
    "is_ready",
    "machine_labels",
    "machine_set_status",
    "machines_to_delete",
    "remediation_plan",
    "replicas_of",
    "scale_delta",
    "scaled_value",
]

log = logging.getLogger("anywhere.controllers.machineset")
Obj = dict[str, Any]

MACHINES_CREATED: Final = "MachinesCreated"
MACHINES_READY: Final = "MachinesReady"
RESIZED: Final = "Resized"
NODE_HEALTHY: Final = "NodeHealthy"
HEALTH_CHECK_SUCCEEDED: Final = "HealthCheckSucceeded"
OWNER_REMEDIATED: Final = "OwnerRemediated"

# Reasons of Cluster API's MachineSet conditions.
SCALING_UP: Final = "ScalingUp"
SCALING_DOWN: Final = "ScalingDown"
MACHINE_CREATION_FAILED: Final = "MachineCreationFailed"
INFRASTRUCTURE_TEMPLATE_CLONING_FAILED: Final = "InfrastructureTemplateCloningFailed"
BOOTSTRAP_TEMPLATE_CLONING_FAILED: Final = "BootstrapTemplateCloningFailed"
WAITING_FOR_MACHINES: Final = "WaitingForMachinesReady"

DEFAULT_DELETE_POLICY: Final = DeletePolicy.NEWEST
# How long a reconcile waits for its own writes to show in the Machine cache (Cluster API waits 10 s
# too): acting on a cache that does not show them yet would create or delete machines twice.
CACHE_WAIT: Final = 10.0
_LISTED: Final = 5  # machines named in a condition message before "and N more"


# -- pure decisions ----------------------------------------------------------------------------------


def replicas_of(obj: Obj, default: int = 1) -> int:
    """``spec.replicas`` (Cluster API defaults a missing value to 1)."""
    value = (obj.get("spec") or {}).get("replicas")
    return default if value is None else int(value)


def scale_delta(desired: int, machines: Sequence[Obj]) -> int:
    """How many machines to create (positive) or delete (negative). Machines being deleted count:
    their replacement is made once they are gone, so the set never exceeds its replicas."""
    return max(desired, 0) - len(machines)


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: int) -> int:
    """An int-or-percent (``3`` or ``"25%"``) of ``total``, as apimachinery's
    ``GetScaledValueFromIntOrPercent``: a percentage is rounded up or down as asked. Raises
    ValueError for anything else (a string without ``%``, a negative number)."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer or a percentage")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and value.endswith("%") and value[:-1].strip().isdigit():
        scaled = int(value[:-1]) * total / 100
        result = math.ceil(scaled) if round_up else math.floor(scaled)
    else:
        raise ValueError(f"{value!r} is not an integer or a percentage such as '25%'")
    if result < 0:
        raise ValueError(f"{value!r} must not be negative")
    return result


def _created(machine: Obj) -> float:
    return parse_time((machine.get("metadata") or {}).get("creationTimestamp")) or 0.0


def is_ready(machine: Obj) -> bool:
    """Ready = the Machine's condition Ready is True (its Node is Ready), and it is not going away."""
    return not deleting(machine) and conditions.is_true(machine, conditions.READY)


def is_available(machine: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds``."""
    if not is_ready(machine):
        return False
    if min_ready_seconds <= 0:
        return True
    ready = conditions.get_condition(machine, conditions.READY) or {}
    since = parse_time(ready.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def _is_failed(machine: Obj) -> bool:
    status = machine.get("status") or {}
    return bool(
        status.get("failureReason")
        or status.get("failureMessage")
        or status.get("phase") == MachinePhase.FAILED
    )


def _is_unhealthy(machine: Obj) -> bool:
    return (
        _is_failed(machine)
        or conditions.is_false(machine, NODE_HEALTHY)
        or conditions.is_false(machine, HEALTH_CHECK_SUCCEEDED)
        or conditions.is_false(machine, OWNER_REMEDIATED)
    )


def delete_tier(machine: Obj, *, min_ready_seconds: int = 0, now: float = 0.0) -> int:
    """How eagerly a machine goes on scale-down: 0 first (already deleting), 5 last (healthy)."""
    if deleting(machine):
        return 0
    if DELETE_MACHINE_ANNOTATION in annotations_of(machine):
        return 1
    if _is_unhealthy(machine):
        return 2
    if not is_ready(machine):
        return 3
    if not is_available(machine, min_ready_seconds, now):
        return 4
    return 5


def machines_to_delete(
    machines: Sequence[Obj],
    count: int,
    *,
    policy: str | None = None,
    min_ready_seconds: int = 0,
    now: float | None = None,
) -> list[Obj]:
    """The ``count`` machines a scale-down deletes, in the order of :func:`delete_tier`, then of
    ``policy`` (None: :data:`DEFAULT_DELETE_POLICY`); ties go by name. Raises ValueError for an
    unknown policy."""
    policy = policy or DEFAULT_DELETE_POLICY
    if policy not in DeletePolicy.ALL:
        raise ValueError(f"deletePolicy {policy!r} is not one of {', '.join(DeletePolicy.ALL)}")
    if count <= 0:
        return []
    when = time.time() if now is None else now

    def order(machine: Obj) -> tuple[int, float, str]:
        created = _created(machine)
        age_key = {DeletePolicy.NEWEST: -created, DeletePolicy.OLDEST: created}.get(policy, 0.0)
        return (
            delete_tier(machine, min_ready_seconds=min_ready_seconds, now=when),
            age_key,
            name_of(machine),
        )

    return sorted(machines, key=order)[:count]


def remediation_plan(
    machines: Sequence[Obj], *, max_in_flight: int | None = None
) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """``(remediate, deferred, recovered)``: the machines to delete now (newest first, as Cluster API:
    a machine failing to come up likely hosts nothing yet), those over the ``max_in_flight`` budget
    (None: no limit; remediations already under way use it up), and those whose mark is stale
    because their health check succeeds again."""
    live = [m for m in machines if not deleting(m)]
    recovered = [
        m
        for m in live
        if conditions.is_false(m, OWNER_REMEDIATED) and conditions.is_true(m, HEALTH_CHECK_SUCCEEDED)
    ]
    marked = [
        m
        for m in live
        if conditions.is_false(m, OWNER_REMEDIATED) and not conditions.is_true(m, HEALTH_CHECK_SUCCEEDED)
    ]
    marked.sort(key=lambda m: (-_created(m), name_of(m)))
    if max_in_flight is None:
        return marked, [], recovered
    in_flight = sum(1 for m in machines if deleting(m) and conditions.is_true(m, OWNER_REMEDIATED))
    budget = max(0, max_in_flight - in_flight)
    return marked[:budget], marked[budget:], recovered


def machine_labels(ms: Obj) -> dict[str, str]:
    """The labels a Machine of ``ms`` carries: its template's, its set's name, its deployment's."""
    template_meta = ((ms.get("spec") or {}).get("template") or {}).get("metadata") or {}
    wanted = dict(template_meta.get("labels") or {})
    wanted[MACHINE_SET_NAME_LABEL] = name_of(ms)
    deployment = labels_of(ms).get(MACHINE_DEPLOYMENT_NAME_LABEL)
    if deployment:
        wanted[MACHINE_DEPLOYMENT_NAME_LABEL] = deployment
    return wanted


def _selector(ms: Obj) -> LabelSelector:
    """The MS's label selector; ValueError when it is malformed."""
    try:
        return label_selector_from_dict((ms.get("spec") or {}).get("selector") or {})
    except StatusError as exc:
        raise ValueError(f"MachineSet {namespace_of(ms)}/{name_of(ms)}: spec.selector: {exc}") from None


def _severity_rank(condition: Obj) -> int:
    return {conditions.ERROR: 0, conditions.WARNING: 1}.get(str(condition.get("severity") or ""), 2)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def machine_set_status(
    ms: Obj,
    machines: Sequence[Obj],
    *,
    now: float,
    creation_error: tuple[str, str] | None = None,
) -> tuple[Obj, float | None]:
    """The MS's new status from its machines (those it controls, deleting ones included), and when
    to look again (a machine becomes available after ``minReadySeconds`` without any event).

    ``creation_error`` is ``(reason, message)`` of a failure to make machines (MachinesCreated
    False, severity Error).
    """
    spec = ms.get("spec") or {}
    status: Obj = copy.deepcopy(ms.get("status") or {})
    min_ready = int(spec.get("minReadySeconds") or 0)
    desired = 0 if deleting(ms) else replicas_of(ms)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}

    replicas = len(machines)
    ready = [m for m in machines if is_ready(m)]
    available = [m for m in ready if is_available(m, min_ready, now)]
    status["replicas"] = replicas
    status["fullyLabeledReplicas"] = sum(1 for m in machines if contains(labels_of(m), template_labels))
    status["readyReplicas"] = len(ready)
    status["availableReplicas"] = len(available)
    status["observedGeneration"] = (ms.get("metadata") or {}).get("generation", 0)
    try:
        status["selector"] = str(_selector(ms))
    except ValueError:
        status.pop("selector", None)

    failed = sorted((m for m in machines if _is_failed(m) and not deleting(m)), key=name_of)
    if failed:
        first = failed[0].get("status") or {}
        status["failureReason"] = first.get("failureReason") or "MachineFailed"
        status["failureMessage"] = f"Machine {name_of(failed[0])}: " + str(
            first.get("failureMessage") or first.get("failureReason") or "failed"
        )
    else:
        status.pop("failureReason", None)
        status.pop("failureMessage", None)

    if replicas < desired:
        conditions.set_false(
            status,
            RESIZED,
            SCALING_UP,
            f"Scaling up MachineSet to {desired} replicas (actual {replicas})",
            conditions.WARNING,
        )
    elif replicas > desired:
        conditions.set_false(
            status,
            RESIZED,
            SCALING_DOWN,
            f"Scaling down MachineSet to {desired} replicas (actual {replicas})",
            conditions.WARNING,
        )
        conditions.set_true(status, MACHINES_CREATED)
    else:
        # Resized only once the machines are ready, not as soon as their objects exist (as KCP does).
        if len(ready) == replicas:
            conditions.set_true(status, RESIZED)
        conditions.set_true(status, MACHINES_CREATED)
    if creation_error is not None:
        conditions.set_false(status, MACHINES_CREATED, creation_error[0], creation_error[1], conditions.ERROR)

    live = [m for m in machines if not deleting(m)]
    waiting = [m for m in live if not is_ready(m)]
    if not waiting:
        conditions.set_true(status, MACHINES_READY)
    else:
        causes = sorted(
            ((conditions.get_condition(m, conditions.READY) or {}, m) for m in waiting),
            key=lambda pair: (_severity_rank(pair[0]), name_of(pair[1])),
        )
        worst, _ = causes[0]
        described = [
            f"{name_of(m)} ({c.get('reason') or 'no Ready condition yet'})"
            if c
            else f"{name_of(m)} (starting)"
            for c, m in causes
        ]
        conditions.set_false(
            status,
            MACHINES_READY,
            str(worst.get("reason") or WAITING_FOR_MACHINES),
            f"{len(waiting)} of {len(live)} machines are not ready: {_listing(described)}",
            str(worst.get("severity") or conditions.INFO),
        )

    _summarize(status, (MACHINES_CREATED, RESIZED, MACHINES_READY))

    pending = [
        since + min_ready - now
        for m in ready
        if m not in available
        and (
            since := parse_time(
                (conditions.get_condition(m, conditions.READY) or {}).get("lastTransitionTime")
            )
        )
        is not None
    ]
    requeue = max(0.5, min(pending)) if pending else None
    return status, requeue


def _summarize(status: Obj, types: Iterable[str]) -> None:
    """Ready = the worst of ``types`` (False Error, then Warning, then Info, in the given order), as
    Cluster API's ``conditions.SetSummary``; True when all present ones are True."""
    present = [c for c in status.get("conditions") or () if c.get("type") in set(types)]
    falses = [c for c in present if c.get("status") != "True"]
    order = list(types)
    if falses:
        worst = min(falses, key=lambda c: (_severity_rank(c), order.index(str(c.get("type")))))
        conditions.set_condition(
            status,
            conditions.READY,
            str(worst.get("status") or "False"),
            str(worst.get("reason") or ""),
            str(worst.get("message") or ""),
            str(worst.get("severity") or conditions.INFO),
        )
    elif present:
        conditions.set_true(status, conditions.READY)


# -- the controller ----------------------------------------------------------------------------------


class LazyInformers:
    """Informers of kinds known only from references (an infrastructure provider's templates and
    machines): started on first use, then shared through the manager like any other."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self._handled: set[Resource] = set()

    async def synced(
        self,
        resource: Resource,
        on_event: Callable[[Obj], None] | None = None,
        *,
        timeout: float = CACHE_WAIT,
    ) -> Informer:
        informer = self.manager.informer(resource)
        if on_event is not None and resource not in self._handled:
            self._handled.add(resource)
            informer.add_handler(on_event, lambda _old, new: on_event(new), on_event)
        informer.start()
        if not informer.synced:
            try:
                await asyncio.wait_for(asyncio.shield(informer.wait_synced()), timeout)
            except TimeoutError:
                raise RuntimeError(f"the cache of {resource} did not fill within {timeout:g} s") from None
        return informer


async def wait_for_cache(check: Callable[[], bool], what: str, timeout: float = CACHE_WAIT) -> None:
    """Wait until the caches show a write of ours (as Cluster API's waitForMachineCreation): the next
    reconcile must not act on a cache that predates it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise RuntimeError(f"the cache did not show {what} within {timeout:g} s")
        await asyncio.sleep(0.02)


class _Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client = ctx.client
        manager = ctx.manager
        self.sets = manager.informer(MACHINE_SETS)
        self.machines = manager.informer(MACHINES)
        self.deployments = manager.informer(MACHINE_DEPLOYMENTS)
        self.clusters = manager.informer(CAPI_CLUSTERS)
        self.bootstrap_templates = manager.informer(KUBEADM_CONFIG_TEMPLATES)
        self.bootstrap_configs = manager.informer(KUBEADM_CONFIGS)
        self.lazy = LazyInformers(manager)
        self.controller: Controller | None = None

    # -- event mapping ----------------------------------------------------------------------------

    def _sets_in(self, namespace: str) -> list[Obj]:
        return [ms for ms in self.sets.list() if namespace_of(ms) == namespace]

    def sets_of_machine(self, machine: Obj) -> list[str]:
        namespace = namespace_of(machine)
        ref = controller_of(machine)
        if ref is not None:
            return [f"{namespace}/{ref['name']}"] if ref.get("kind") == "MachineSet" else []
        keys = []
        for ms in self._sets_in(namespace):
            with contextlib.suppress(ValueError):
                if _selector(ms).matches(labels_of(machine)):
                    keys.append(f"{namespace}/{name_of(ms)}")
        return keys

    def sets_of_deployment(self, md: Obj) -> list[str]:
        return [
            f"{namespace_of(ms)}/{name_of(ms)}"
            for ms in labelled(self.sets, MACHINE_DEPLOYMENT_NAME_LABEL, namespace_of(md), name_of(md))
        ]

    def sets_of_cluster(self, cluster: Obj) -> list[str]:
        return [
            f"{namespace_of(ms)}/{name_of(ms)}"
            for ms in of_cluster(self.sets, namespace_of(cluster), name_of(cluster))
            if _cluster_name(ms) == name_of(cluster)
        ]

    def _sets_referencing(self, template: Obj, path: Callable[[Obj], Obj | None]) -> list[str]:
        keys = []
        for ms in self._sets_in(namespace_of(template)):
            ref = path(ms) or {}
            if ref.get("name") == name_of(template) and ref.get("kind") == template.get("kind"):
                keys.append(f"{namespace_of(ms)}/{name_of(ms)}")
        return keys

    def sets_of_bootstrap_template(self, template: Obj) -> list[str]:
        return self._sets_referencing(
            template, lambda ms: _template_spec(ms).get("bootstrap", {}).get("configRef")
        )

    def _infra_template_event(self, template: Obj) -> None:
        if self.controller is None:
            return
        for key in self._sets_referencing(template, lambda ms: _template_spec(ms).get("infrastructureRef")):
            self.controller.enqueue(key)

    def sets_of_part(self, part: Obj) -> list[str]:
        ref = controller_of(part)
        if ref is None or ref.get("kind") != "Machine":
            return []
        machine = self.machines.get(f"{namespace_of(part)}/{ref['name']}")
        return self.sets_of_machine(machine) if machine is not None else []

    # -- reconcile ----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        ms = self.sets.get(key)
        if ms is None:
            return None
        namespace = namespace_of(ms)
        cluster = self.clusters.get(f"{namespace}/{_cluster_name(ms)}")
        if is_paused(ms) or cluster_paused(cluster):
            return None

        machines = controlled_by(self.machines, ms)
        if deleting(ms):
            await self._delete_all(ms, machines)
            return None
        machines += await self._adopt(ms)

        machines = await self._remediate(ms, machines)
        templates, template_error = await self._templates(ms)
        live = [m for m in machines if not deleting(m)]
        if templates is not None:
            infra_template, bootstrap_spec = templates
            await self._ensure_parts(live, infra_template, bootstrap_spec)
        await self._sync_labels(ms, live)

        creation_error = template_error
        failure: Exception | None = None
        delta = scale_delta(replicas_of(ms), machines)
        if delta and inplace.HOLD_ANNOTATION in annotations_of(ms):
            log.info("MachineSet %s: held by its deployment (in-place move): not scaling by %d", key, delta)
        elif delta > 0 and templates is not None:
            if cluster is not None and deleting(cluster):
                log.info("MachineSet %s: not scaling up, cluster %s is being deleted", key, name_of(cluster))
            else:
                made, failure = await self._create(ms, delta, templates)
                machines += made
                if failure is not None:
                    creation_error = (MACHINE_CREATION_FAILED, str(failure))
        elif delta < 0:
            machines = await self._scale_down(ms, machines, -delta)

        status, requeue = machine_set_status(ms, machines, now=time.time(), creation_error=creation_error)
        await write_status(self.client, MACHINE_SETS, ms, status)
        if failure is not None:
            raise failure
        return Result(requeue_after=requeue) if requeue is not None else None

    async def _delete_all(self, ms: Obj, machines: list[Obj]) -> None:
        for machine in machines:
            if not deleting(machine):
                log.info("MachineSet %s is being deleted: deleting Machine %s", name_of(ms), name_of(machine))
                with contextlib.suppress(NotFoundError):
                    await self.client.delete(MACHINES, name_of(machine), namespace_of(machine))

    async def _adopt(self, ms: Obj) -> list[Obj]:
        """Orphan Machines the selector matches become the MS's (a controller reference, CAS)."""
        selector = _selector(ms)
        if selector.empty:  # an empty selector would adopt every machine of the namespace
            return []
        adopted = []
        for machine in of_cluster(self.machines, namespace_of(ms), _cluster_name(ms)):
            if (
                controller_of(machine) is not None
                or deleting(machine)
                or (machine.get("spec") or {}).get("clusterName") != _cluster_name(ms)
                or not selector.matches(labels_of(machine))
            ):
                continue
            refs = [
                *((machine["metadata"].get("ownerReferences")) or ()),
                owner_reference(ms, controller=True),
            ]
            patched = await self.client.patch(
                MACHINES,
                name_of(machine),
                {
                    "metadata": {
                        "ownerReferences": refs,
                        "resourceVersion": machine["metadata"]["resourceVersion"],
                    }
                },
                namespace_of(machine),
            )
            log.info("MachineSet %s adopted Machine %s", name_of(ms), name_of(machine))
            adopted.append(patched)
        return adopted

    async def _remediate(self, ms: Obj, machines: list[Obj]) -> list[Obj]:
        """Delete machines marked for remediation; returns the machines as they now stand."""
        md = self._deployment(ms)
        max_in_flight: int | None = None
        if md is not None:
            remediation = ((md.get("spec") or {}).get("strategy") or {}).get("remediation") or {}
            if remediation.get("maxInFlight") is not None:
                max_in_flight = scaled_value(
                    remediation["maxInFlight"], replicas_of(md), round_up=True, default=0
                )
        remediate, deferred, recovered = remediation_plan(machines, max_in_flight=max_in_flight)
        for machine in recovered:
            status = copy.deepcopy(machine.get("status") or {})
            status["conditions"] = [
                c for c in status.get("conditions") or () if c.get("type") != OWNER_REMEDIATED
            ]
            await write_status(self.client, MACHINES, machine, status)
        if not remediate:
            return machines
        in_place = (((md or {}).get("spec") or {}).get("strategy") or {}).get("type") == inplace.IN_PLACE
        if (
            md is not None
            and not in_place
            and annotations_of(md).get(REVISION_ANNOTATION) != annotations_of(ms).get(REVISION_ANNOTATION)
        ):
            log.info(
                "MachineSet %s: not remediating %s: the set is not its deployment's current revision",
                name_of(ms),
                _listing([name_of(m) for m in remediate]),
            )
            return machines
        if deferred:
            log.info(
                "MachineSet %s: remediation of %s deferred (maxInFlight)",
                name_of(ms),
                _listing([name_of(m) for m in deferred]),
            )
        gone = set()
        for machine in remediate:
            # Marked before the delete, so that a crash in between still counts it as in flight.
            status = copy.deepcopy(machine.get("status") or {})
            conditions.set_true(status, OWNER_REMEDIATED)
            with contextlib.suppress(NotFoundError):
                await write_status(self.client, MACHINES, machine, status)
                log.info(
                    "MachineSet %s: remediating unhealthy Machine %s by deleting it",
                    name_of(ms),
                    name_of(machine),
                )
                await self.client.delete(MACHINES, name_of(machine), namespace_of(machine))
            gone.add(name_of(machine))
        await self._wait_deleted(ms, gone)
        return [_marked_deleting(m) if name_of(m) in gone else m for m in machines]

    def _deployment(self, ms: Obj) -> Obj | None:
        name = labels_of(ms).get(MACHINE_DEPLOYMENT_NAME_LABEL)
        return self.deployments.get(f"{namespace_of(ms)}/{name}") if name else None

    async def _templates(self, ms: Obj) -> tuple[tuple[Obj, Obj] | None, tuple[str, str] | None]:
        """``((infrastructure template, bootstrap spec), None)``, or ``(None, (reason, message))``."""
        spec = _template_spec(ms)
        namespace = namespace_of(ms)
        infra_ref = spec.get("infrastructureRef") or {}
        if not infra_ref.get("kind") or not infra_ref.get("name"):
            return None, (
                INFRASTRUCTURE_TEMPLATE_CLONING_FAILED,
                "spec.template.spec.infrastructureRef is not set",
            )
        informer = await self.lazy.synced(resource_of(infra_ref), self._infra_template_event)
        where = f"{infra_ref.get('namespace') or namespace}/{infra_ref['name']}"
        infra_template = informer.get(where)
        if infra_template is None:
            return None, (INFRASTRUCTURE_TEMPLATE_CLONING_FAILED, f"{infra_ref['kind']} {where} not found")
        config_ref = (spec.get("bootstrap") or {}).get("configRef")
        if not config_ref:
            return (infra_template, {}), None
        if config_ref.get("kind") != KUBEADM_CONFIG_TEMPLATES.kind:
            return None, (
                BOOTSTRAP_TEMPLATE_CLONING_FAILED,
                f"bootstrap template kind {config_ref.get('kind')!r} is not supported (only KubeadmConfigTemplate)",
            )
        bootstrap_spec = bootstrap_template_spec(self.bootstrap_templates, namespace, config_ref)
        if bootstrap_spec is None:
            where = f"{config_ref.get('namespace') or namespace}/{config_ref.get('name')}"
            return None, (BOOTSTRAP_TEMPLATE_CLONING_FAILED, f"KubeadmConfigTemplate {where} not found")
        return (infra_template, bootstrap_spec), None

    async def _ensure_parts(self, machines: Iterable[Obj], infra_template: Obj, bootstrap_spec: Obj) -> None:
        infra_machines = await self.lazy.synced(infra_machine_resource(infra_template))
        for machine in machines:
            await ensure_machine_parts(
                self.client,
                machine,
                infrastructure_template=infra_template,
                bootstrap_spec=bootstrap_spec,
                infra_machines=infra_machines,
                bootstrap_configs=self.bootstrap_configs,
            )

    async def _sync_labels(self, ms: Obj, machines: Iterable[Obj]) -> None:
        """Template labels changed in place (a MachineDeployment propagates its template's metadata
        without a rollout) reach the existing Machines."""
        wanted = machine_labels(ms)
        for machine in machines:
            if not contains(labels_of(machine), wanted):
                with contextlib.suppress(NotFoundError):
                    await self.client.patch(
                        MACHINES, name_of(machine), {"metadata": {"labels": wanted}}, namespace_of(machine)
                    )

    async def _create(
        self, ms: Obj, count: int, templates: tuple[Obj, Obj]
    ) -> tuple[list[Obj], Exception | None]:
        infra_template, bootstrap_spec = templates
        spec = _template_spec(ms)
        template_meta = ((ms.get("spec") or {}).get("template") or {}).get("metadata") or {}
        cluster = _cluster_name(ms)
        made: list[Obj] = []
        failure: Exception | None = None
        log.info("MachineSet %s/%s: scaling up by %d machine(s)", namespace_of(ms), name_of(ms), count)
        for _ in range(count):
            machine = new_machine(
                ms,
                cluster=cluster,
                version=str(spec.get("version") or ""),
                infrastructure_template=spec["infrastructureRef"],
                labels=machine_labels(ms),
                annotations=dict(template_meta.get("annotations") or {}) or None,
                failure_domain=spec.get("failureDomain"),
            )
            if not spec.get("version"):
                machine["spec"].pop("version", None)
            for field in ("nodeDrainTimeout", "nodeVolumeDetachTimeout", "nodeDeletionTimeout"):
                if spec.get(field):
                    machine["spec"][field] = spec[field]
            try:
                created = await self.client.create(MACHINES, machine, field_manager=FIELD_MANAGER)
            except Exception as exc:
                log.warning("MachineSet %s: creating a Machine failed: %s", name_of(ms), exc)
                failure = exc
                break
            made.append(created)
        names = {name_of(m) for m in made}
        await wait_for_cache(
            lambda: all(self.machines.get(f"{namespace_of(ms)}/{n}") is not None for n in names),
            f"the new machines of MachineSet {name_of(ms)}",
        )
        await self._ensure_parts(made, infra_template, bootstrap_spec)
        return made, failure

    async def _scale_down(self, ms: Obj, machines: list[Obj], count: int) -> list[Obj]:
        spec = ms.get("spec") or {}
        doomed = machines_to_delete(
            machines,
            count,
            policy=spec.get("deletePolicy"),
            min_ready_seconds=int(spec.get("minReadySeconds") or 0),
        )
        gone = set()
        for machine in doomed:
            gone.add(name_of(machine))
            if deleting(machine):
                continue
            log.info(
                "MachineSet %s/%s: scaling down: deleting Machine %s",
                namespace_of(ms),
                name_of(ms),
                name_of(machine),
            )
            with contextlib.suppress(NotFoundError):
                await self.client.delete(MACHINES, name_of(machine), namespace_of(machine))
        await self._wait_deleted(ms, gone)
        return [_marked_deleting(m) if name_of(m) in gone else m for m in machines]

    async def _wait_deleted(self, ms: Obj, names: set[str]) -> None:
        def shown() -> bool:
            for name in names:
                cached = self.machines.get(f"{namespace_of(ms)}/{name}")
                if cached is not None and not deleting(cached):
                    return False
            return True

        await wait_for_cache(shown, f"the deletion of machines of MachineSet {name_of(ms)}")


def bootstrap_template_spec(templates: Informer, namespace: str, config_ref: Obj) -> Obj | None:
    """A copy of the KubeadmConfig spec in the KubeadmConfigTemplate ``config_ref`` names (in
    ``namespace`` unless it says otherwise); None when it names another kind or is not cached."""
    if config_ref.get("kind") != KUBEADM_CONFIG_TEMPLATES.kind:
        return None
    template = templates.get(f"{config_ref.get('namespace') or namespace}/{config_ref.get('name')}")
    if template is None:
        return None
    return copy.deepcopy(((template.get("spec") or {}).get("template") or {}).get("spec") or {})


def _cluster_name(ms: Obj) -> str:
    return str((ms.get("spec") or {}).get("clusterName") or labels_of(ms).get(CLUSTER_NAME_LABEL) or "")


def _template_spec(ms: Obj) -> Obj:
    return ((ms.get("spec") or {}).get("template") or {}).get("spec") or {}


def _marked_deleting(machine: Obj) -> Obj:
    """A copy of a machine we just deleted, as the next read will show it (for this reconcile's
    status)."""
    copied = copy.deepcopy(machine)
    copied["metadata"]["deletionTimestamp"] = copied["metadata"].get("deletionTimestamp") or conditions.now()
    return copied


def controller(ctx: Context, *, workers: int = 2) -> Controller:
    """The MachineSet controller, with its watches: MachineSets, their Machines (and orphans their
    selectors match), the parts of those Machines, bootstrap templates, MachineDeployments (for the
    revision and remediation budget) and Clusters (for pausing). Infrastructure templates are watched
    from the first reconcile that meets their kind."""
    reconciler = _Reconciler(ctx)
    ctrl = Controller("machineset", reconciler.reconcile, workers=workers)
    reconciler.controller = ctrl
    ctrl.watch(MACHINE_SETS)
    ctrl.watch(MACHINES, enqueue_mapped(reconciler.sets_of_machine))
    ctrl.watch(KUBEADM_CONFIGS, enqueue_mapped(reconciler.sets_of_part))
    ctrl.watch(KUBEADM_CONFIG_TEMPLATES, enqueue_mapped(reconciler.sets_of_bootstrap_template))
    ctrl.watch(MACHINE_DEPLOYMENTS, enqueue_mapped(reconciler.sets_of_deployment))
    ctrl.watch(CAPI_CLUSTERS, enqueue_mapped(reconciler.sets_of_cluster))
    return ctrl
