"""The MachineDeployment controller: rolls machines out through MachineSets, as Cluster API's does.

A MachineDeployment (MD) has one MachineSet (MS) per distinct machine template: the MS of the
current template is ``<md>-<hash8>`` (the hash of ``spec.template.spec``, also its label
``machine-template-hash``); changing the template spec makes a new MS, and the rollout moves the
replicas from the old sets to the new one. Template metadata (labels, annotations) is not part of
the hash: it is copied to the current MS in place, as Cluster API does since v1.4, and the MS puts
it on its Machines.

The rollout (``RollingUpdate``) is decided by the pure :func:`plan_rollout`, one step per reconcile,
with Cluster API's (and Kubernetes Deployments') rules:

- ``maxSurge`` (default 1; a percentage of the replicas rounds up) bounds the machines above the
  replicas; ``maxUnavailable`` (default 0; a percentage rounds down) bounds the available ones below
  it; when both resolve to 0, maxUnavailable is 1 (:func:`resolve_fenceposts`);
- the new MS grows while the total stays within replicas + maxSurge;
- old sets shrink, oldest first: first by their unavailable machines (that costs no availability),
  then by as many as keep the available machines of all sets at least replicas - maxUnavailable.
  Only available machines count (ready for ``minReadySeconds``: with the default 0, ready). This is
  safe because a MachineSet deletes its unavailable machines first;
- a set's available count is capped by its replicas: a set just scaled down may still report the
  machines it is deleting, and counting them would let the next step scale down twice.

Scaling (``spec.replicas`` changes) is simple rather than proportional: the new MS absorbs the whole
change (it is set to ``replicas`` when above it, and grows within the surge otherwise); old sets only
ever shrink. Kubernetes spreads a scale-up over old and new sets in proportion to their sizes, to
keep the old/new ratio of a paused or stuck rollout; here new capacity is always made from the
template the user asked for last, which is what a scale-up during a rollout wants.

``OnDelete`` (Cluster API's other strategy): old sets are never scaled down by the controller; each
shrinks to the machines it still has as the user deletes them, and the new set grows into the room.

``InPlace`` (EKS Anywhere's bare metal strategy, :mod:`anywhere.controllers.inplace`): no machine is
replaced. Old sets keep the machines they have (:func:`plan_in_place`: they make none, and a
scale-down takes their machines first), the new set (made with the rest of the replicas, usually 0)
absorbs any scale-up. One machine of the old sets at a time, oldest set and machine first, is asked
to upgrade in place once every machine of the deployment is ready and the cluster's control plane
runs the new version already (control plane before workers, as Kubernetes' version skew policy
wants). When the Machine controller reports it done, the machine moves to the new set: both sets
are held (:data:`~anywhere.controllers.inplace.HOLD_ANNOTATION`: they neither make nor delete
machines), the machine is re-owned, re-labelled and given the new version in one write, and each
set is released in one write with its new replica count. Every step is read from the objects, so
a restart finishes a move half made. The old sets end empty and are cleaned up as in a rolling
update; the revision is the new set's from the start. The condition ``MachinesSpecUpToDate`` says
how far it is (reason ``InPlaceUpgradeInProgress``, or ``WaitingForControlPlane``).

Revisions: each MS carries ``machinedeployment.clusters.x-k8s.io/revision``; a new MS gets the
highest revision + 1 (a template that returns to an old MS's bumps that MS's revision), and the MD
carries its current MS's revision. History is kept simple: an old MS that has been scaled to 0 and
has no machines left is deleted, except the newest ``spec.revisionHistoryLimit`` of them
(unset: 0; Cluster API keeps 1 by default, but an empty MS is of no use here, as rollback means
changing the template back, which makes or reuses the MS of that template either way).

``spec.paused`` (and a paused Cluster, or the paused annotation) freezes the MachineSets: no new MS,
no scaling; only the status is kept current (and nothing at all for a paused Cluster).

Status: replicas, updatedReplicas (machines of the current MS), readyReplicas, availableReplicas,
unavailableReplicas, observedGeneration, selector, phase and the conditions Available (True when at
least replicas - maxUnavailable machines are available; else WaitingForAvailableMachines),
MachineSetReady (the current MS's Ready) and Ready (= Available, as Cluster API's summary).
Phase: Failed when a MS reports a failed machine, ScalingUp while fewer machines are ready than
wanted, ScalingDown while there are more machines than wanted, Running otherwise.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL, MACHINE_DEPLOYMENT_NAME_LABEL
from anywhere.api.capi._base import MACHINE_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION
from anywhere.api.capi.machinedeployment import MachineDeploymentPhase, StrategyType
from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.selectors import label_selector_from_dict
from anywhere.controllers import conditions, inplace
from anywhere.controllers.context import Context
from anywhere.controllers.machineset import (
    bootstrap_template_spec,
    is_ready,
    machine_labels,
    replicas_of,
    scaled_value,
    wait_for_cache,
)
from anywhere.controllers.objects import (
    FIELD_MANAGER,
    annotations_of,
    cluster_paused,
    controlled_by,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    owner_reference,
    parse_time,
    patch_at_version,
    short_hash,
    write_status,
)
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONFIGS,
    KUBEADM_CONTROL_PLANES,
    MACHINE_DEPLOYMENTS,
    MACHINE_SETS,
    MACHINES,
)
from anywhere.runtime import (
    AlreadyExistsError,
    Controller,
    NotFoundError,
    Result,
    enqueue_mapped,
    enqueue_owner,
)

__all__ = [
    "AVAILABLE",
    "MACHINE_SET_READY",
    "RollingUpdate",
    "SetView",
    "controller",
    "deployment_status",
    "max_unavailable",
    "plan_in_place",
    "plan_on_delete",
    "plan_rollout",
    "resolve_fenceposts",
    "template_hash",
]

log = logging.getLogger("anywhere.controllers.machinedeployment")
Obj = dict[str, Any]

AVAILABLE: Final = "Available"
MACHINE_SET_READY: Final = "MachineSetReady"
WAITING_FOR_AVAILABLE_MACHINES: Final = "WaitingForAvailableMachines"
WAITING_FOR_MACHINE_SET: Final = "WaitingForMachineSet"
INVALID_STRATEGY: Final = "InvalidStrategy"
MACHINES_SPEC_UP_TO_DATE: Final = "MachinesSpecUpToDate"
WAITING_FOR_CONTROL_PLANE: Final = "WaitingForControlPlane"
DEFAULT_MAX_SURGE: Final = 1
DEFAULT_MAX_UNAVAILABLE: Final = 0


# -- pure decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollingUpdate:
    """``spec.strategy.rollingUpdate``'s bounds, as written (int, percentage string, or None)."""

    max_surge: int | str | None = None
    max_unavailable: int | str | None = None


@dataclass(frozen=True)
class SetView:
    """What the planner needs of a MachineSet. ``ready`` is its available machines (ready for
    ``minReadySeconds``; ready, with the default 0); ``created`` orders old sets (oldest first)."""

    name: str
    is_new: bool
    replicas: int
    ready: int
    created: float = 0.0


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """``(surge, unavailable)`` as Cluster API's ``mdutil.ResolveFenceposts``: maxSurge rounds up,
    maxUnavailable down; both 0 makes maxUnavailable 1 (a surge may be impossible, e.g. by quota).
    Raises ValueError for a malformed value."""
    surge = scaled_value(max_surge, desired, round_up=True, default=DEFAULT_MAX_SURGE)
    unavailable = scaled_value(max_unavailable, desired, round_up=False, default=DEFAULT_MAX_UNAVAILABLE)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(strategy: RollingUpdate | None, desired: int) -> int:
    """Cluster API's ``mdutil.MaxUnavailable``: never more than the replicas (0 for 0 replicas, and
    for a strategy other than RollingUpdate, given as None)."""
    if desired <= 0 or strategy is None:
        return 0
    return min(resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, desired)[1], desired)


def plan_rollout(desired: int, strategy: RollingUpdate, sets: Sequence[SetView]) -> dict[str, int]:
    """One step of a rolling update: the replicas each set should have now.

    ``sets`` holds exactly one new set (the current template's; ``replicas`` 0 if it does not exist
    yet). Applied step after step, with machines becoming available in between, it moves every
    machine to the new set while keeping the available machines at least
    ``desired - maxUnavailable`` (when they were to begin with) and the machines at most
    ``desired + maxSurge``.
    """
    news = [s for s in sets if s.is_new]
    if len(news) != 1:
        raise ValueError(f"a rollout needs exactly one new MachineSet, got {len(news)}")
    new = news[0]
    surge = resolve_fenceposts(strategy.max_surge, strategy.max_unavailable, max(desired, 0))[0]
    unavailable = max_unavailable(strategy, desired)
    targets = {s.name: max(s.replicas, 0) for s in sets}
    ready = {s.name: max(0, min(s.ready, targets[s.name])) for s in sets}
    olds = sorted((s for s in sets if not s.is_new), key=lambda s: (s.created, s.name))

    # The new set: down to the replicas, or up within the surge.
    if targets[new.name] > desired:
        targets[new.name] = max(desired, 0)
        ready[new.name] = min(ready[new.name], targets[new.name])
    elif targets[new.name] < desired:
        room = desired + surge - sum(targets.values())
        if room > 0:
            targets[new.name] += min(room, desired - targets[new.name])

    if not any(targets[s.name] for s in olds):
        return targets
    min_available = desired - unavailable
    new_unavailable = targets[new.name] - ready[new.name]
    max_scaled_down = sum(targets.values()) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return targets

    # Old sets' unavailable machines first: removing them costs no availability.
    cleaned = 0
    for old in olds:
        if cleaned >= max_scaled_down:
            break
        unhealthy = targets[old.name] - ready[old.name]
        if unhealthy <= 0:
            continue
        step = min(max_scaled_down - cleaned, unhealthy)
        targets[old.name] -= step
        cleaned += step

    # Then available ones, as far as the availability floor allows.
    budget = sum(min(ready[s.name], targets[s.name]) for s in sets) - min_available
    for old in olds:
        if budget <= 0:
            break
        step = min(targets[old.name], budget)
        targets[old.name] -= step
        budget -= step
    return targets


def plan_on_delete(desired: int, sets: Sequence[SetView], machines: dict[str, int]) -> dict[str, int]:
    """``OnDelete``: each old set shrinks to the machines it still has (``machines``: name -> count,
    deleting ones excluded), and the new set takes the rest of the replicas."""
    targets = {s.name: s.replicas for s in sets}
    for s in sets:
        if not s.is_new:
            targets[s.name] = min(s.replicas, machines.get(s.name, 0))
    new = next(s for s in sets if s.is_new)
    targets[new.name] = max(0, desired - sum(targets[s.name] for s in sets if not s.is_new))
    return targets


def plan_in_place(desired: int, sets: Sequence[SetView]) -> dict[str, int]:
    """``InPlace``: the replicas each set should have, given for each old set (``is_new`` False) the
    machines it has (``replicas``, those not being deleted). Old sets never grow (a set of an old
    template makes no machine: its machines are upgraded and moved instead); a scale-down takes
    their machines first, oldest sets first; the new set has the rest."""
    news = [s for s in sets if s.is_new]
    if len(news) != 1:
        raise ValueError(f"an in-place rollout needs exactly one new MachineSet, got {len(news)}")
    wanted = max(desired, 0)
    olds = sorted((s for s in sets if not s.is_new), key=lambda s: (s.created, s.name))
    excess = max(0, sum(max(s.replicas, 0) for s in olds) - wanted)
    targets: dict[str, int] = {}
    for old in olds:
        cut = min(max(old.replicas, 0), excess)
        excess -= cut
        targets[old.name] = max(old.replicas, 0) - cut
    targets[news[0].name] = wanted - sum(targets.values())
    return targets


def template_hash(md: Obj) -> str:
    """The 8-hex-digit hash of the MD's ``spec.template.spec`` that names its current MachineSet."""
    return short_hash(((md.get("spec") or {}).get("template") or {}).get("spec") or {})


def _strategy(md: Obj) -> tuple[str, RollingUpdate, str | None]:
    strategy = (md.get("spec") or {}).get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    return (
        str(strategy.get("type") or StrategyType.ROLLING_UPDATE),
        RollingUpdate(rolling.get("maxSurge"), rolling.get("maxUnavailable")),
        rolling.get("deletePolicy"),
    )


def _phase(desired: int, replicas: int, ready: int, sets: Sequence[Obj]) -> str:
    if any(
        (ms.get("status") or {}).get("failureReason") or (ms.get("status") or {}).get("failureMessage")
        for ms in sets
    ):
        return MachineDeploymentPhase.FAILED
    if ready < desired:
        return MachineDeploymentPhase.SCALING_UP
    if replicas > desired:
        return MachineDeploymentPhase.SCALING_DOWN
    return MachineDeploymentPhase.RUNNING


def deployment_status(
    md: Obj,
    sets: Sequence[Obj],
    new: Obj | None,
    *,
    strategy_error: str | None = None,
    in_place: tuple[str, str] | None = None,
) -> Obj:
    """The MD's status from its MachineSets (``new``: the current template's, if it exists).
    ``in_place`` is ``(reason, message)`` of an ``InPlace`` rollout under way (``("", "")`` when
    none is), for the condition MachinesSpecUpToDate; other strategies have no such condition."""
    status: Obj = copy.deepcopy(md.get("status") or {})
    if in_place is None:
        status["conditions"] = [
            c for c in status.get("conditions") or () if c.get("type") != MACHINES_SPEC_UP_TO_DATE
        ]
        if not status["conditions"]:
            del status["conditions"]
    elif in_place[0]:
        conditions.set_false(status, MACHINES_SPEC_UP_TO_DATE, in_place[0], in_place[1])
    else:
        conditions.set_true(status, MACHINES_SPEC_UP_TO_DATE)
    desired = replicas_of(md)

    def total(field: str) -> int:
        return sum(int((ms.get("status") or {}).get(field) or 0) for ms in sets)

    replicas, ready, available = total("replicas"), total("readyReplicas"), total("availableReplicas")
    status["replicas"] = replicas
    status["updatedReplicas"] = int(((new or {}).get("status") or {}).get("replicas") or 0)
    status["readyReplicas"] = ready
    status["availableReplicas"] = available
    status["unavailableReplicas"] = max(0, sum(replicas_of(ms, 0) for ms in sets) - available)
    status["observedGeneration"] = (md.get("metadata") or {}).get("generation", 0)
    try:
        status["selector"] = str(label_selector_from_dict((md.get("spec") or {}).get("selector") or {}))
    except StatusError:
        status.pop("selector", None)
    status["phase"] = _phase(desired, replicas, ready, sets)

    if strategy_error is not None:
        conditions.set_false(status, AVAILABLE, INVALID_STRATEGY, strategy_error, conditions.ERROR)
    else:
        strategy_type, rolling, _ = _strategy(md)
        rolling_or_none = rolling if strategy_type == StrategyType.ROLLING_UPDATE else None
        needed = desired - max_unavailable(rolling_or_none, desired)
        if available >= needed:
            conditions.set_true(status, AVAILABLE)
        else:
            conditions.set_false(
                status,
                AVAILABLE,
                WAITING_FOR_AVAILABLE_MACHINES,
                f"Minimum availability requires {needed} replicas, current {available} available",
                conditions.WARNING,
            )
    mirrored = conditions.get_condition(new, conditions.READY) if new is not None else None
    if mirrored is None:
        conditions.set_false(
            status,
            MACHINE_SET_READY,
            WAITING_FOR_MACHINE_SET,
            "MachineSet not found"
            if new is None
            else f"MachineSet {name_of(new)} reports no Ready condition yet",
        )
    else:
        conditions.set_condition(
            status,
            MACHINE_SET_READY,
            str(mirrored.get("status")),
            str(mirrored.get("reason") or ""),
            str(mirrored.get("message") or ""),
            str(mirrored.get("severity") or ""),
        )
    available_condition = conditions.get_condition({"status": status}, AVAILABLE) or {}
    conditions.set_condition(
        status,
        conditions.READY,
        str(available_condition.get("status")),
        str(available_condition.get("reason") or ""),
        str(available_condition.get("message") or ""),
        str(available_condition.get("severity") or ""),
    )
    return status


# -- the controller ----------------------------------------------------------------------------------


def _revision(obj: Obj) -> int:
    try:
        return int(annotations_of(obj).get(REVISION_ANNOTATION) or 0)
    except ValueError:
        return 0


def _created(obj: Obj) -> float:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _held(ms: Obj) -> bool:
    return inplace.HOLD_ANNOTATION in annotations_of(ms)


def _template_version(md: Obj) -> str:
    return str((((md.get("spec") or {}).get("template") or {}).get("spec") or {}).get("version") or "")


class _Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.client = ctx.client
        self.deployments = ctx.manager.informer(MACHINE_DEPLOYMENTS)
        self.sets = ctx.manager.informer(MACHINE_SETS)
        self.clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.machines = ctx.manager.informer(MACHINES)
        self.control_planes = ctx.manager.informer(KUBEADM_CONTROL_PLANES)
        self.bootstrap_templates = ctx.manager.informer(KUBEADM_CONFIG_TEMPLATES)
        self.bootstrap_configs = ctx.manager.informer(KUBEADM_CONFIGS)

    def deployment_of_machine(self, machine: Obj) -> list[str]:
        """An InPlace deployment follows its machines' upgrades (other strategies need only their
        sets' events)."""
        name = labels_of(machine).get(MACHINE_DEPLOYMENT_NAME_LABEL)
        key = f"{namespace_of(machine)}/{name}"
        md = self.deployments.get(key) if name else None
        return [key] if md is not None and _strategy(md)[0] == inplace.IN_PLACE else []

    def deployments_of_control_plane(self, kcp: Obj) -> list[str]:
        """An InPlace rollout waits for its cluster's control plane to be upgraded first."""
        cluster = labels_of(kcp).get(CLUSTER_NAME_LABEL)
        if not cluster:
            return []
        return [
            f"{namespace_of(md)}/{name_of(md)}"
            for md in of_cluster(self.deployments, namespace_of(kcp), cluster)
            if _strategy(md)[0] == inplace.IN_PLACE
        ]

    def deployments_of_cluster(self, cluster: Obj) -> list[str]:
        return [
            f"{namespace_of(md)}/{name_of(md)}"
            for md in of_cluster(self.deployments, namespace_of(cluster), name_of(cluster))
            if _cluster_name(md) == name_of(cluster)
        ]

    async def reconcile(self, key: str) -> Result | None:
        md = self.deployments.get(key)
        if md is None or deleting(md):
            return None  # the API server's garbage collector deletes the MachineSets
        cluster = self.clusters.get(f"{namespace_of(md)}/{_cluster_name(md)}")
        if is_paused(md) or cluster_paused(cluster):
            return None
        owned = controlled_by(self.sets, md)
        digest = template_hash(md)
        new = next((ms for ms in owned if labels_of(ms).get(MACHINE_TEMPLATE_HASH_LABEL) == digest), None)
        strategy_type, rolling, _ = _strategy(md)
        try:
            resolve_fenceposts(rolling.max_surge, rolling.max_unavailable, replicas_of(md))
            if strategy_type not in StrategyType.ALL:
                raise ValueError(
                    f"strategy type {strategy_type!r} is not one of {', '.join(StrategyType.ALL)}"
                )
        except ValueError as exc:
            message = f"spec.strategy: {exc}"
            await write_status(
                self.client,
                MACHINE_DEPLOYMENTS,
                md,
                deployment_status(md, owned, new, strategy_error=message),
            )
            return None

        progress: tuple[str, str] | None = None
        if not (md.get("spec") or {}).get("paused"):
            md, owned, new, progress = await self._rollout(md, owned, new, digest)
        elif strategy_type == inplace.IN_PLACE:
            progress = self._in_place_progress(md, owned, new, ("", ""))
        await write_status(
            self.client, MACHINE_DEPLOYMENTS, md, deployment_status(md, owned, new, in_place=progress)
        )
        return None

    async def _rollout(
        self, md: Obj, owned: list[Obj], new: Obj | None, digest: str
    ) -> tuple[Obj, list[Obj], Obj | None, tuple[str, str] | None]:
        """Make the current MS exist, scale the sets one step, delete spent ones, and take an
        InPlace rollout one step; returns the MD (as last written), its sets, and how far an
        InPlace rollout is (None for other strategies)."""
        desired = replicas_of(md)
        strategy_type, rolling, _ = _strategy(md)
        if any(_held(ms) for ms in owned) or strategy_type == inplace.IN_PLACE:
            owned, new, acted = await self._moves(md, owned, new, strategy_type)
            if acted:
                return md, owned, new, self._in_place_progress(md, owned, new, ("", ""))
        highest = max((_revision(ms) for ms in owned), default=0)
        new_name = name_of(new) if new is not None else f"{name_of(md)}-{digest}"
        views = [
            SetView(
                name_of(ms),
                ms is new,
                replicas_of(ms, 0),
                int((ms.get("status") or {}).get("availableReplicas") or 0),
                _created(ms),
            )
            for ms in owned
        ]
        if new is None:
            views.append(SetView(new_name, True, 0, 0))
        if strategy_type == StrategyType.ON_DELETE:
            machines = {name_of(ms): int((ms.get("status") or {}).get("replicas") or 0) for ms in owned}
            targets = plan_on_delete(desired, views, machines)
        elif strategy_type == inplace.IN_PLACE:
            targets = plan_in_place(desired, self._in_place_views(owned, new, new_name))
        else:
            targets = plan_rollout(desired, rolling, views)

        revision = _revision(new) if new is not None and _revision(new) >= highest else highest + 1
        if new is None:
            new = await self._create_set(md, new_name, digest, targets[new_name], revision)
            owned = [*owned, new]
        else:
            new = await self._update_set(md, new, targets[new_name], revision)
            owned = [new if ms is new or name_of(ms) == name_of(new) else ms for ms in owned]
        if annotations_of(md).get(REVISION_ANNOTATION) != str(revision):
            md = await self.client.patch(
                MACHINE_DEPLOYMENTS,
                name_of(md),
                {
                    "metadata": {
                        "annotations": {REVISION_ANNOTATION: str(revision)},
                        "resourceVersion": md["metadata"]["resourceVersion"],
                    }
                },
                namespace_of(md),
            )
        scaled = []
        for ms in owned:
            if ms is not new and replicas_of(ms, 0) != targets.get(name_of(ms), replicas_of(ms, 0)):
                ms = await self._scale(ms, targets[name_of(ms)])
            scaled.append(ms)
        owned = await self._clean_up(md, scaled, new)
        if strategy_type != inplace.IN_PLACE:
            return md, owned, new, None
        waiting = await self._next_in_place(md, owned, new)
        return md, owned, new, self._in_place_progress(md, owned, new, waiting)

    # -- InPlace -------------------------------------------------------------------------------------

    def _live_machines(self, ms: Obj) -> list[Obj]:
        machines = [m for m in controlled_by(self.machines, ms) if not deleting(m)]
        return sorted(machines, key=lambda m: (_created(m), name_of(m)))

    def _in_place_views(self, owned: list[Obj], new: Obj | None, new_name: str) -> list[SetView]:
        """The sets as :func:`plan_in_place` sees them: old ones by the machines they have."""
        views = [
            SetView(
                name_of(ms),
                ms is new,
                replicas_of(ms, 0) if ms is new else len(self._live_machines(ms)),
                0,
                _created(ms),
            )
            for ms in owned
            if not deleting(ms)
        ]
        if new is None:
            views.append(SetView(new_name, True, 0, 0))
        return views

    async def _moves(
        self, md: Obj, owned: list[Obj], new: Obj | None, strategy_type: str
    ) -> tuple[list[Obj], Obj | None, bool]:
        """Move the machines upgraded in place into the current set (InPlace), then release the
        held sets; returns the sets as they now are and whether anything was done (the rest of the
        rollout then waits for the next reconcile)."""
        version = _template_version(md)
        movable: list[tuple[Obj, Obj]] = []
        finished: list[Obj] = []
        if strategy_type == inplace.IN_PLACE and new is not None:
            for ms in owned:
                for machine in self._live_machines(ms):
                    if inplace.upgraded(machine) and inplace.requested(machine) == version:
                        if ms is new:
                            finished.append(machine)
                        else:
                            movable.append((ms, machine))
        held = [ms for ms in owned if _held(ms)]
        if not (movable or finished or held):
            return owned, new, False
        if new is not None:
            for machine in finished:  # upgraded back to the current set's version: no move needed
                await self._record(md, machine, new, new)
            if movable:
                await self._move(md, movable, new)
        # Release every held set, each in one write with the replicas it must have now.
        owned = controlled_by(self.sets, md)
        new = next((ms for ms in owned if new is not None and name_of(ms) == name_of(new)), None)
        targets: dict[str, int] = {}
        if strategy_type == inplace.IN_PLACE and new is not None:
            targets = plan_in_place(replicas_of(md), self._in_place_views(owned, new, name_of(new)))
        released = []
        for ms in owned:
            if _held(ms):
                patch: Obj = {
                    "metadata": {
                        "annotations": {inplace.HOLD_ANNOTATION: None},
                        "resourceVersion": ms["metadata"]["resourceVersion"],
                    }
                }
                if name_of(ms) in targets:
                    patch["spec"] = {"replicas": targets[name_of(ms)]}
                log.info(
                    "MachineDeployment %s: releasing MachineSet %s%s",
                    name_of(md),
                    name_of(ms),
                    f" at {targets[name_of(ms)]} replicas" if name_of(ms) in targets else "",
                )
                ms = await self._patch_set(ms, patch)
            released.append(ms)
        new = next((ms for ms in released if new is not None and name_of(ms) == name_of(new)), None)
        return released, new, True

    async def _move(self, md: Obj, movable: list[tuple[Obj, Obj]], new: Obj) -> None:
        """Hold the sources and the new set, then make each upgraded machine the new set's (the
        release follows)."""
        holding = {name_of(new): new, **{name_of(source): source for source, _ in movable}}
        for ms in holding.values():
            if not _held(ms):
                log.info("MachineDeployment %s: holding MachineSet %s for a move", name_of(md), name_of(ms))
                await self._patch_set(
                    ms,
                    {
                        "metadata": {
                            "annotations": {inplace.HOLD_ANNOTATION: "true"},
                            "resourceVersion": ms["metadata"]["resourceVersion"],
                        }
                    },
                )
        for source, machine in movable:
            await self._record(md, machine, source, new)
        keys = [f"{namespace_of(m)}/{name_of(m)}" for _, m in movable]
        uid = new["metadata"]["uid"]

        def moved() -> bool:
            for key in keys:
                cached = self.machines.get(key)
                refs = ((cached or {}).get("metadata") or {}).get("ownerReferences") or ()
                if cached is not None and not any(r.get("uid") == uid for r in refs):
                    return False
            return True

        await wait_for_cache(moved, f"the move of machines {', '.join(keys)} to MachineSet {name_of(new)}")

    async def _record(self, md: Obj, machine: Obj, source: Obj, target: Obj) -> None:
        """One write makes an upgraded machine ``target``'s (its parts first take the templates)."""
        template_spec = ((target.get("spec") or {}).get("template") or {}).get("spec") or {}
        config_ref = (template_spec.get("bootstrap") or {}).get("configRef") or {}
        bootstrap_spec = bootstrap_template_spec(self.bootstrap_templates, namespace_of(md), config_ref)
        await inplace.adopt_templates(
            self.client,
            machine,
            infrastructure_template=str((template_spec.get("infrastructureRef") or {}).get("name") or ""),
            bootstrap_spec=bootstrap_spec,
            bootstrap_configs=self.bootstrap_configs,
        )
        wanted = machine_labels(target)
        labels: dict[str, str | None] = {k: None for k in machine_labels(source) if k not in wanted}
        labels.update(wanted)
        spec: Obj = {"version": template_spec.get("version")}
        for field in ("nodeDrainTimeout", "nodeVolumeDetachTimeout", "nodeDeletionTimeout"):
            if template_spec.get(field):
                spec[field] = template_spec[field]
        meta: Obj = {
            "labels": labels,
            "annotations": inplace.ended(),
        }
        if source is not target:
            source_uid = source["metadata"]["uid"]
            meta["ownerReferences"] = [
                *(r for r in machine["metadata"].get("ownerReferences") or () if r.get("uid") != source_uid),
                owner_reference(target, controller=True),
            ]
        with contextlib.suppress(NotFoundError):
            await patch_at_version(self.client, MACHINES, machine, {"metadata": meta, "spec": spec})
        log.info(
            "MachineDeployment %s: machine %s upgraded in place to %s%s",
            name_of(md),
            name_of(machine),
            template_spec.get("version"),
            f", moved to MachineSet {name_of(target)}" if source is not target else "",
        )

    async def _next_in_place(self, md: Obj, owned: list[Obj], new: Obj | None) -> tuple[str, str]:
        """Ask the next machine of the old sets to upgrade in place, when none is being upgraded,
        every machine is ready and the control plane runs the version already. Returns what it
        waits for, as a reason and a message (("", "") when nothing but a machine's upgrade)."""
        if new is None:
            return "", ""
        version = _template_version(md)
        olds = sorted((ms for ms in owned if ms is not new), key=lambda ms: (_created(ms), name_of(ms)))
        flying = [m for ms in owned for m in self._live_machines(ms) if inplace.in_flight(m)]
        for machine in flying:
            if inplace.requested(machine) != version:
                await self._ask(md, machine, version, "re-aimed at the deployment's version")
        if flying:
            return "", ""
        outdated = [m for ms in olds for m in self._live_machines(ms)]
        if not outdated:
            return "", ""
        not_ready = sorted(name_of(m) for ms in owned for m in self._live_machines(ms) if not is_ready(m))
        if not_ready:
            return (
                inplace.IN_PROGRESS_REASON,
                f"Waiting for machine {', '.join(not_ready)} to be ready before upgrading the next one",
            )
        problem = self._control_plane_problem(md, version)
        if problem:
            return WAITING_FOR_CONTROL_PLANE, problem
        await self._ask(md, outdated[0], version, f"{len(outdated)} machines to upgrade")
        return "", ""

    async def _ask(self, md: Obj, machine: Obj, version: str, why: str) -> None:
        log.info(
            "MachineDeployment %s: asking machine %s to upgrade in place to %s (%s)",
            name_of(md),
            name_of(machine),
            version,
            why,
        )
        await inplace.request(self.client, machine, version)

    def _control_plane_problem(self, md: Obj, version: str) -> str:
        """Why the workers may not be upgraded to ``version`` yet: the cluster's control plane is
        being upgraded, or runs an older version (a kubelet must not be newer than its API server)."""
        namespace = namespace_of(md)
        cluster = self.clusters.get(f"{namespace}/{_cluster_name(md)}")
        ref = ((cluster or {}).get("spec") or {}).get("controlPlaneRef") or {}
        if ref.get("kind") != "KubeadmControlPlane" or not ref.get("name"):
            return ""
        kcp = self.control_planes.get(f"{namespace}/{ref['name']}")
        if kcp is None:
            return f"Waiting for KubeadmControlPlane {ref['name']} before upgrading workers to {version}"
        status = kcp.get("status") or {}
        running = str(status.get("version") or "")
        if (
            int(status.get("observedGeneration") or 0) < int(kcp["metadata"].get("generation") or 0)
            or int(status.get("updatedReplicas") or 0) < int(status.get("replicas") or 0)
            or not running
        ):
            return f"Waiting for the control plane {ref['name']} to be upgraded before the workers"
        if inplace.version_key(running) < inplace.version_key(version):
            return f"Waiting for the control plane {ref['name']} to run {version} (it runs {running})"
        return ""

    def _in_place_progress(
        self, md: Obj, owned: list[Obj], new: Obj | None, waiting: tuple[str, str]
    ) -> tuple[str, str]:
        """The MachinesSpecUpToDate condition's reason and message ("" reason: up to date)."""
        olds = [m for ms in owned if ms is not new for m in self._live_machines(ms)]
        if new is None:
            return WAITING_FOR_MACHINE_SET, "the current MachineSet does not exist yet"
        if not olds:
            return "", ""
        message = f"{len(olds)} machines not up to date"
        flying = inplace.upgrading(olds)
        if flying:
            return inplace.IN_PROGRESS_REASON, f"{message}; upgrading in place: {', '.join(flying)}"
        if waiting[0]:
            return waiting[0], f"{message}; {waiting[1]}"
        return inplace.IN_PROGRESS_REASON, message

    def _desired_set(self, md: Obj, name: str, digest: str, replicas: int, revision: int) -> Obj:
        spec = md.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        template_meta = template.setdefault("metadata", {})
        selector = copy.deepcopy(spec.get("selector") or {})
        match_labels = {
            **(selector.get("matchLabels") or {}),
            MACHINE_DEPLOYMENT_NAME_LABEL: name_of(md),
            MACHINE_TEMPLATE_HASH_LABEL: digest,
        }
        selector["matchLabels"] = match_labels
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **match_labels}
        cluster = _cluster_name(md)
        _, _, delete_policy = _strategy(md)
        ms_spec: Obj = {
            "clusterName": cluster,
            "replicas": replicas,
            "selector": selector,
            "template": template,
        }
        if spec.get("minReadySeconds") is not None:
            ms_spec["minReadySeconds"] = spec["minReadySeconds"]
        if delete_policy:
            ms_spec["deletePolicy"] = delete_policy
        return {
            "apiVersion": md["apiVersion"],
            "kind": "MachineSet",
            "metadata": {
                "name": name,
                "namespace": namespace_of(md),
                "labels": {
                    **(template_meta.get("labels") or {}),
                    CLUSTER_NAME_LABEL: cluster,
                    MACHINE_DEPLOYMENT_NAME_LABEL: name_of(md),
                    MACHINE_TEMPLATE_HASH_LABEL: digest,
                },
                "annotations": {REVISION_ANNOTATION: str(revision)},
                "ownerReferences": [owner_reference(md, controller=True)],
            },
            "spec": ms_spec,
        }

    async def _create_set(self, md: Obj, name: str, digest: str, replicas: int, revision: int) -> Obj:
        desired = self._desired_set(md, name, digest, replicas, revision)
        try:
            created = await self.client.create(MACHINE_SETS, desired, field_manager=FIELD_MANAGER)
        except AlreadyExistsError:
            # Not ours (no controller reference to this MD) or not cached yet: retry on fresh data.
            raise RuntimeError(
                f"MachineSet {namespace_of(md)}/{name} exists but is not (yet) seen as owned by "
                f"MachineDeployment {name_of(md)}"
            ) from None
        log.info(
            "MachineDeployment %s/%s: created MachineSet %s (revision %d, %d replicas)",
            namespace_of(md),
            name_of(md),
            name,
            revision,
            replicas,
        )
        key = f"{namespace_of(md)}/{name}"
        await wait_for_cache(lambda: self.sets.get(key) is not None, f"MachineSet {key}")
        return created

    async def _update_set(self, md: Obj, ms: Obj, replicas: int, revision: int) -> Obj:
        """Scale the current MS and bring its in-place fields (template metadata, minReadySeconds,
        deletePolicy, revision) to the MD's."""
        desired = self._desired_set(
            md, name_of(ms), labels_of(ms).get(MACHINE_TEMPLATE_HASH_LABEL, ""), replicas, revision
        )
        spec = ms.get("spec") or {}
        patch_spec: Obj = {}
        if replicas_of(ms, 0) != replicas:
            patch_spec["replicas"] = replicas
        meta_patch = _maps_patch(
            (spec.get("template") or {}).get("metadata") or {},
            desired["spec"]["template"].get("metadata") or {},
        )
        if meta_patch:
            patch_spec["template"] = {"metadata": meta_patch}
        for field in ("minReadySeconds", "deletePolicy"):
            # Only values the MD sets: removing one the API server defaulted would never settle.
            wanted = desired["spec"].get(field)
            if wanted is not None and spec.get(field) != wanted:
                patch_spec[field] = wanted
        patch: Obj = {}
        if patch_spec:
            patch["spec"] = patch_spec
        if annotations_of(ms).get(REVISION_ANNOTATION) != str(revision):
            patch["metadata"] = {"annotations": {REVISION_ANNOTATION: str(revision)}}
        if not patch:
            return ms
        patch.setdefault("metadata", {})["resourceVersion"] = ms["metadata"]["resourceVersion"]
        if "replicas" in patch_spec:
            log.info("MachineDeployment %s: scaling MachineSet %s to %d", name_of(md), name_of(ms), replicas)
        return await self._patch_set(ms, patch)

    async def _scale(self, ms: Obj, replicas: int) -> Obj:
        log.info(
            "MachineDeployment rollout: scaling MachineSet %s/%s to %d",
            namespace_of(ms),
            name_of(ms),
            replicas,
        )
        return await self._patch_set(
            ms,
            {
                "metadata": {"resourceVersion": ms["metadata"]["resourceVersion"]},
                "spec": {"replicas": replicas},
            },
        )

    async def _patch_set(self, ms: Obj, patch: Obj) -> Obj:
        patched = await self.client.patch(MACHINE_SETS, name_of(ms), patch, namespace_of(ms))
        key = f"{namespace_of(ms)}/{name_of(ms)}"
        version = patched["metadata"]["resourceVersion"]
        previous = ms["metadata"]["resourceVersion"]

        def shown() -> bool:
            cached = self.sets.get(key)
            rv = (cached or {}).get("metadata", {}).get("resourceVersion")
            return cached is None or rv == version or rv != previous

        await wait_for_cache(shown, f"the update of MachineSet {key}")
        return patched

    async def _clean_up(self, md: Obj, owned: list[Obj], new: Obj) -> list[Obj]:
        """Delete old MachineSets that are scaled to 0 and have no machines left, beyond
        ``spec.revisionHistoryLimit`` (default 0)."""
        limit = int((md.get("spec") or {}).get("revisionHistoryLimit") or 0)
        empty = [
            ms
            for ms in owned
            if ms is not new
            and name_of(ms) != name_of(new)
            and not deleting(ms)
            and replicas_of(ms, 0) == 0
            and int((ms.get("status") or {}).get("replicas") or 0) == 0
            and (ms.get("status") or {}).get("observedGeneration")
            == (ms.get("metadata") or {}).get("generation")
        ]
        empty.sort(key=lambda ms: (_revision(ms), _created(ms)), reverse=True)
        doomed = {name_of(ms) for ms in empty[limit:]}
        for name in sorted(doomed):
            log.info("MachineDeployment %s: deleting old MachineSet %s", name_of(md), name)
            with contextlib.suppress(NotFoundError):
                await self.client.delete(MACHINE_SETS, name, namespace_of(md))
        return [ms for ms in owned if name_of(ms) not in doomed]


def _maps_patch(current: Obj, wanted: Obj) -> Obj:
    """The merge patch that turns ``current``'s labels and annotations into ``wanted``'s (removed
    keys become nulls)."""
    patch: Obj = {}
    for field in ("labels", "annotations"):
        have, want = dict(current.get(field) or {}), dict(wanted.get(field) or {})
        if have != want:
            patch[field] = {**{k: None for k in have if k not in want}, **want}
    return patch


def _cluster_name(md: Obj) -> str:
    return str((md.get("spec") or {}).get("clusterName") or labels_of(md).get(CLUSTER_NAME_LABEL) or "")


def controller(ctx: Context, *, workers: int = 2) -> Controller:
    """The MachineDeployment controller: MachineDeployments, the MachineSets they own, and Clusters
    (for pausing)."""
    reconciler = _Reconciler(ctx)
    ctrl = Controller("machinedeployment", reconciler.reconcile, workers=workers)
    ctrl.watch(MACHINE_DEPLOYMENTS)
    ctrl.watch(MACHINE_SETS, enqueue_owner("MachineDeployment", MACHINE_DEPLOYMENTS.api_version))
    ctrl.watch(CAPI_CLUSTERS, enqueue_mapped(reconciler.deployments_of_cluster))
    # An InPlace rollout follows its machines' upgrades, and waits on the control plane.
    ctrl.watch(MACHINES, enqueue_mapped(reconciler.deployment_of_machine))
    ctrl.watch(KUBEADM_CONTROL_PLANES, enqueue_mapped(reconciler.deployments_of_control_plane))
    return ctrl
