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
from anywhere.controllers import conditions
from anywhere.controllers.context import Context
from anywhere.controllers.machineset import replicas_of, scaled_value, wait_for_cache
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
    short_hash,
    write_status,
)
from anywhere.controllers.resources import CAPI_CLUSTERS, MACHINE_DEPLOYMENTS, MACHINE_SETS
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
    md: Obj, sets: Sequence[Obj], new: Obj | None, *, strategy_error: str | None = None
) -> Obj:
    """The MD's status from its MachineSets (``new``: the current template's, if it exists)."""
    status: Obj = copy.deepcopy(md.get("status") or {})
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


class _Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.client = ctx.client
        self.deployments = ctx.manager.informer(MACHINE_DEPLOYMENTS)
        self.sets = ctx.manager.informer(MACHINE_SETS)
        self.clusters = ctx.manager.informer(CAPI_CLUSTERS)

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

        if not (md.get("spec") or {}).get("paused"):
            md, owned, new = await self._rollout(md, owned, new, digest)
        await write_status(self.client, MACHINE_DEPLOYMENTS, md, deployment_status(md, owned, new))
        return None

    async def _rollout(
        self, md: Obj, owned: list[Obj], new: Obj | None, digest: str
    ) -> tuple[Obj, list[Obj], Obj | None]:
        """Make the current MS exist, scale the sets one step, delete spent ones; returns the MD
        (as last written) and its sets."""
        desired = replicas_of(md)
        strategy_type, rolling, _ = _strategy(md)
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
        return md, owned, new

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
    return ctrl
