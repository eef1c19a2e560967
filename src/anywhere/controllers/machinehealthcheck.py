"""The MachineHealthCheck controller: finds unhealthy machines and marks them for remediation, as
Cluster API's does.

The targets of a check are the Machines of ``spec.clusterName`` that ``spec.selector`` matches. A
target is unhealthy when

- it is annotated ``cluster.x-k8s.io/remediate-machine``, or has a failureReason/failureMessage
  (MachineHasFailure);
- its Node is gone: it had a nodeRef, and the workload cluster has no such Node (NodeNotFound);
- it has no Node ``spec.nodeStartupTimeout`` (default 10m, 0 disables) after it was created
  (NodeStartupTimeout). Cluster API measures from the latest of the machine's creation, the
  Cluster's ControlPlaneInitialized and InfrastructureReady times; here it is simply the machine's
  creation;
- one of its Node's conditions has had the type and status of an entry of
  ``spec.unhealthyConditions`` for longer than that entry's timeout (UnhealthyNode).

Every target gets the condition HealthCheckSucceeded (True, or False with that reason); a target
that will turn unhealthy unless something changes is left as it is, and the check looks again when
its time is up. When the unhealthy targets (those not healthy, pending ones included) are more than
``spec.maxUnhealthy`` (a number or a percentage of the targets, default 100%) or outside
``spec.unhealthyRange`` ("[min-max]"), remediation is short-circuited: the check's condition
RemediationAllowed is False (TooManyUnhealthy) and no machine is marked. Otherwise each unhealthy
machine gets OwnerRemediated False (WaitingForRemediation), which its owner acts on: a MachineSet
replaces the machine, a KubeadmControlPlane remediates its own. Paused machines, those annotated
``cluster.x-k8s.io/skip-remediation`` and those being upgraded in place are not targets.

The decisions are the pure function :func:`assess`; the controller only gathers its inputs (the
targets from the Machine cache, their Nodes from the workload cluster's Node cache) and writes
its outcome.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.api.duration import format_duration, parse_duration
from anywhere.apiserver.selectors import label_selector_from_dict
from anywhere.controllers import conditions, inplace
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    annotations_of,
    cluster_paused,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    parse_time,
    write_status,
)
from anywhere.controllers.remote import ClusterNotReachable
from anywhere.controllers.resources import CAPI_CLUSTERS, MACHINE_HEALTH_CHECKS, MACHINES
from anywhere.runtime import ConflictError, Controller, Result, enqueue_mapped

__all__ = [
    "HEALTH_CHECK_SUCCEEDED",
    "OWNER_REMEDIATED",
    "REMEDIATION_ALLOWED",
    "Assessment",
    "Target",
    "Verdict",
    "assess",
    "controller",
    "max_unhealthy",
    "selects",
]

log = logging.getLogger("anywhere.controllers.machinehealthcheck")
Obj = dict[str, Any]

# Conditions and reasons, as Cluster API v1beta1 names them.
HEALTH_CHECK_SUCCEEDED: Final = "HealthCheckSucceeded"
OWNER_REMEDIATED: Final = "OwnerRemediated"
REMEDIATION_ALLOWED: Final = "RemediationAllowed"
MACHINE_HAS_FAILURE: Final = "MachineHasFailure"
HAS_REMEDIATE_ANNOTATION: Final = "HasRemediateMachineAnnotation"
NODE_STARTUP_TIMEOUT: Final = "NodeStartupTimeout"
NODE_NOT_FOUND: Final = "NodeNotFound"
UNHEALTHY_NODE: Final = "UnhealthyNode"
WAITING_FOR_REMEDIATION: Final = "WaitingForRemediation"
TOO_MANY_UNHEALTHY: Final = "TooManyUnhealthy"
INVALID_CONFIGURATION: Final = "InvalidConfiguration"

REMEDIATE_MACHINE_ANNOTATION: Final = "cluster.x-k8s.io/remediate-machine"
SKIP_REMEDIATION_ANNOTATION: Final = "cluster.x-k8s.io/skip-remediation"
DEFAULT_NODE_STARTUP_TIMEOUT: Final = 600.0
DEFAULT_MAX_UNHEALTHY: Final = "100%"
# Cluster API looks again one second after a timeout would expire, so that it has.
RECHECK_MARGIN: Final = 1.0
UNREACHABLE_RETRY: Final = 3.0
NODE_SYNC_TIMEOUT: Final = 1.0
CONFLICT_RETRY: Final = 1.0
_RANGE = re.compile(r"^\[(\d+)-(\d+)\]$")


# -- pure decisions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A machine under check and what is known of its Node: ``node`` when found; ``nodes_known``
    False when the workload cluster could not be read (then a missing node proves nothing)."""

    machine: Obj
    node: Obj | None = None
    nodes_known: bool = True


@dataclass(frozen=True)
class Verdict:
    """One target's health: ``healthy`` (counted in currentHealthy), ``unhealthy`` (to remediate,
    with Cluster API's reason and message), or neither (``next_check``: seconds until it may turn
    unhealthy; or nothing known)."""

    name: str
    healthy: bool = False
    unhealthy: bool = False
    reason: str = ""
    message: str = ""
    next_check: float | None = None


@dataclass(frozen=True)
class Assessment:
    verdicts: list[Verdict]
    expected: int
    current_healthy: int
    allowed: bool
    remediations_allowed: int
    message: str = ""
    next_check: float | None = None
    unhealthy: list[str] = field(default_factory=list)


def _duration(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    return parse_duration(str(value))


def max_unhealthy(value: int | str | None, total: int) -> int:
    """``spec.maxUnhealthy`` as a number of machines: an int, or a percentage of ``total`` rounded
    down (intstr.GetScaledValueFromIntOrPercent with roundUp false). ValueError when malformed."""
    if value is None:
        value = DEFAULT_MAX_UNHEALTHY
    if isinstance(value, bool):
        raise ValueError(f"maxUnhealthy {value!r} is neither a number nor a percentage")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%") and text[:-1].isdigit():
        return int(text[:-1]) * total // 100
    if text.isdigit():
        return int(text)
    raise ValueError(f"maxUnhealthy {value!r} is neither a number nor a percentage such as 40%")


def _unhealthy_range(value: str) -> tuple[int, int]:
    match = _RANGE.match(value.strip())
    if match is None:
        raise ValueError(f"unhealthyRange {value!r} is not a range such as [1-3]")
    low, high = int(match.group(1)), int(match.group(2))
    if high < low:
        raise ValueError(f"unhealthyRange {value!r}: max value {high} cannot be less than min value {low}")
    return low, high


def _node_condition(node: Obj, type_: str) -> Obj | None:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == type_:
            return dict(condition)
    return None


def check_target(target: Target, spec: Mapping[str, Any], now: float) -> Verdict:
    """One target's verdict at ``now`` (seconds since the epoch), in Cluster API's order of rules."""
    machine = target.machine
    name = name_of(machine)
    status: Obj = machine.get("status") or {}
    if REMEDIATE_MACHINE_ANNOTATION in annotations_of(machine):
        return Verdict(
            name,
            unhealthy=True,
            reason=HAS_REMEDIATE_ANNOTATION,
            message="Marked for remediation via remediate-machine annotation",
        )
    if status.get("failureReason"):
        return Verdict(
            name,
            unhealthy=True,
            reason=MACHINE_HAS_FAILURE,
            message=f"FailureReason: {status['failureReason']}",
        )
    if status.get("failureMessage"):
        return Verdict(
            name,
            unhealthy=True,
            reason=MACHINE_HAS_FAILURE,
            message=f"FailureMessage: {status['failureMessage']}",
        )
    node_ref = status.get("nodeRef") or {}
    if node_ref and target.node is None:
        if not target.nodes_known:
            return Verdict(name)
        return Verdict(
            name,
            unhealthy=True,
            reason=NODE_NOT_FOUND,
            message=f"Node {node_ref.get('name')} has been deleted",
        )
    node = target.node
    if node is None:
        timeout = _duration(spec.get("nodeStartupTimeout"), DEFAULT_NODE_STARTUP_TIMEOUT)
        if timeout <= 0:
            return Verdict(name)
        created = parse_time((machine.get("metadata") or {}).get("creationTimestamp")) or now
        if created + timeout < now:
            return Verdict(
                name,
                unhealthy=True,
                reason=NODE_STARTUP_TIMEOUT,
                message=f"Node failed to report startup in {format_duration(timeout)}",
            )
        return Verdict(name, next_check=timeout - (now - created) + RECHECK_MARGIN)
    pending: list[float] = []
    for rule in spec.get("unhealthyConditions") or ():
        condition = _node_condition(node, str(rule.get("type")))
        if condition is None or condition.get("status") != rule.get("status"):
            continue
        timeout = _duration(rule.get("timeout"), 0.0)
        since = parse_time(condition.get("lastTransitionTime")) or now
        if since + timeout < now:
            return Verdict(
                name,
                unhealthy=True,
                reason=UNHEALTHY_NODE,
                message=(
                    f"Condition {rule.get('type')} on node is reporting status {rule.get('status')} "
                    f"for more than {rule.get('timeout')}"
                ),
            )
        pending.append(timeout - (now - since) + RECHECK_MARGIN)
    if pending:
        return Verdict(name, next_check=min(pending))
    return Verdict(name, healthy=not deleting(machine))


def selects(mhc: Obj, machine: Obj) -> bool:
    """Whether ``machine`` is a target of ``mhc``: same namespace, its cluster, selector matches.
    ValueError when the selector is malformed."""
    spec: Obj = mhc.get("spec") or {}
    if namespace_of(machine) != namespace_of(mhc):
        return False
    cluster = spec.get("clusterName")
    if (machine.get("spec") or {}).get("clusterName") != cluster:
        return False
    labels = labels_of(machine)
    if labels.get(CLUSTER_NAME_LABEL) != cluster:
        return False
    try:
        selector = label_selector_from_dict(spec.get("selector") or {})
    except Exception as exc:  # the API server's StatusError: a malformed selector
        raise ValueError(f"spec.selector is invalid: {exc}") from None
    return selector.matches(labels)


def _skipped(machine: Obj) -> bool:
    """Paused machines, those annotated to skip remediation, as in Cluster API, and those being
    upgraded in place: their Node is cordoned and restarts its kubelet on purpose, and replacing
    it midway would undo the upgrade strategy the user chose (the InPlaceUpgraded condition
    reports an upgrade that does not finish)."""
    return (
        is_paused(machine)
        or SKIP_REMEDIATION_ANNOTATION in annotations_of(machine)
        or inplace.in_flight(machine)
    )


def assess(mhc: Obj, targets: Sequence[Target], now: float) -> Assessment:
    """The whole decision of one check at ``now``: each target's verdict, the counts of its status,
    whether remediation is allowed and when to look again. ValueError for a malformed spec."""
    spec: Obj = mhc.get("spec") or {}
    _duration(spec.get("nodeStartupTimeout"), DEFAULT_NODE_STARTUP_TIMEOUT)  # malformed: ValueError
    for rule in spec.get("unhealthyConditions") or ():
        _duration(rule.get("timeout"), 0.0)
    verdicts = [check_target(t, spec, now) for t in targets if not _skipped(t.machine)]
    expected = len(verdicts)
    healthy = sum(1 for v in verdicts if v.healthy)
    unhealthy = [v.name for v in verdicts if v.unhealthy]
    not_healthy = expected - healthy
    pending = [v.next_check for v in verdicts if v.next_check is not None and v.next_check > 0]
    next_check = min(pending) if pending else None
    if spec.get("unhealthyRange"):
        low, high = _unhealthy_range(str(spec["unhealthyRange"]))
        allowed = low <= not_healthy <= high
        remediations = high - not_healthy
        message = (
            "Remediation is not allowed, the number of not started or unhealthy machines does not fall "
            f"within the range (total: {expected}, unhealthy: {len(unhealthy)}, "
            f"unhealthyRange: {spec['unhealthyRange']})"
        )
    else:
        limit = max_unhealthy(spec.get("maxUnhealthy"), expected)
        allowed = not_healthy <= limit
        remediations = limit - not_healthy
        shown = spec.get("maxUnhealthy") if spec.get("maxUnhealthy") is not None else DEFAULT_MAX_UNHEALTHY
        message = (
            "Remediation is not allowed, the number of not started or unhealthy machines exceeds "
            f"maxUnhealthy (total: {expected}, unhealthy: {len(unhealthy)}, maxUnhealthy: {shown})"
        )
    return Assessment(
        verdicts=verdicts,
        expected=expected,
        current_healthy=healthy,
        allowed=allowed,
        remediations_allowed=max(remediations, 0) if allowed else 0,
        message="" if allowed else message,
        next_check=next_check,
        unhealthy=unhealthy,
    )


def machine_status(machine: Obj, verdict: Verdict, *, mark: bool) -> Obj:
    """The machine's status with the verdict's HealthCheckSucceeded and, when ``mark`` and the
    machine is unhealthy, OwnerRemediated False (unless a remediation is already under way)."""
    status: Obj = copy.deepcopy(machine.get("status") or {})
    if verdict.healthy:
        conditions.set_true(status, HEALTH_CHECK_SUCCEEDED)
    elif verdict.unhealthy:
        conditions.set_false(
            status, HEALTH_CHECK_SUCCEEDED, verdict.reason, verdict.message, conditions.WARNING
        )
        remediated = conditions.get_condition(machine, OWNER_REMEDIATED)
        if mark and (remediated is None or remediated.get("status") == "True"):
            conditions.set_false(status, OWNER_REMEDIATED, WAITING_FOR_REMEDIATION, "", conditions.WARNING)
    return status


# -- the controller ----------------------------------------------------------------------------------


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


def controller(ctx: Context, *, workers: int = 2) -> Controller:
    """Health checks of every MachineHealthCheck."""
    checks = ctx.manager.informer(MACHINE_HEALTH_CHECKS)
    machines = ctx.manager.informer(MACHINES)
    clusters = ctx.manager.informer(CAPI_CLUSTERS)

    async def reconcile(key: str) -> Result | None:
        mhc = checks.get(key)
        if mhc is None or deleting(mhc) or is_paused(mhc):
            return None
        spec: Obj = mhc.get("spec") or {}
        namespace, cluster_name = namespace_of(mhc), str(spec.get("clusterName") or "")
        cluster = clusters.get(f"{namespace}/{cluster_name}")
        if cluster is not None and (cluster_paused(cluster) or deleting(cluster)):
            return None
        status: Obj = copy.deepcopy(mhc.get("status") or {})
        status["observedGeneration"] = int(mhc["metadata"].get("generation") or 0)
        try:
            candidates = [m for m in of_cluster(machines, namespace, cluster_name) if selects(mhc, m)]
        except ValueError as exc:
            await refuse(mhc, status, str(exc))
            return None

        nodes = None
        retry: float | None = None
        try:
            nodes = await ctx.clusters.synced_nodes(namespace, cluster_name, timeout=NODE_SYNC_TIMEOUT)
        except ClusterNotReachable as exc:
            log.debug("health check %s: %s", key, exc)
            retry = UNREACHABLE_RETRY
        targets = [
            Target(
                m,
                nodes.get(str(((m.get("status") or {}).get("nodeRef") or {}).get("name") or ""))
                if nodes is not None
                else None,
                nodes_known=nodes is not None,
            )
            for m in candidates
        ]
        try:
            outcome = assess(mhc, targets, _now())
        except ValueError as exc:
            await refuse(mhc, status, str(exc))
            return None

        by_name = {name_of(t.machine): t.machine for t in targets}
        conflicts = False
        for verdict in outcome.verdicts:
            machine = by_name[verdict.name]
            mark = outcome.allowed and not is_paused(machine)
            new_status = machine_status(machine, verdict, mark=mark)
            if new_status != (machine.get("status") or {}):
                try:
                    await write_status(ctx.client, MACHINES, machine, new_status)
                except ConflictError:
                    # Someone wrote the machine since the cache saw it; its event brings us back.
                    conflicts = True
                    continue
                if verdict.unhealthy and mark:
                    log.info(
                        "health check %s: machine %s is unhealthy (%s: %s); marked for remediation",
                        key,
                        verdict.name,
                        verdict.reason,
                        verdict.message,
                    )
        status["expectedMachines"] = outcome.expected
        status["currentHealthy"] = outcome.current_healthy
        status["remediationsAllowed"] = outcome.remediations_allowed
        status["targets"] = sorted(v.name for v in outcome.verdicts)
        if outcome.allowed:
            conditions.set_true(status, REMEDIATION_ALLOWED)
        else:
            if (
                conditions.is_true(mhc, REMEDIATION_ALLOWED)
                or conditions.get_condition(mhc, REMEDIATION_ALLOWED) is None
            ):
                log.warning("health check %s: %s", key, outcome.message)
            conditions.set_false(
                status, REMEDIATION_ALLOWED, TOO_MANY_UNHEALTHY, outcome.message, conditions.WARNING
            )
        await write_status(ctx.client, MACHINE_HEALTH_CHECKS, mhc, status)
        waits = [
            w for w in (outcome.next_check, retry, CONFLICT_RETRY if conflicts else None) if w is not None
        ]
        return Result(requeue_after=min(waits)) if waits else None

    async def refuse(mhc: Obj, status: Obj, message: str) -> None:
        status["remediationsAllowed"] = 0
        conditions.set_false(status, REMEDIATION_ALLOWED, INVALID_CONFIGURATION, message, conditions.ERROR)
        await write_status(ctx.client, MACHINE_HEALTH_CHECKS, mhc, status)

    def checks_of(namespace: str, cluster: str) -> list[str]:
        return [
            f"{namespace}/{name_of(c)}"
            for c in of_cluster(checks, namespace, cluster)
            if (c.get("spec") or {}).get("clusterName") == cluster
        ]

    def checks_of_machine(machine: Obj) -> list[str]:
        out = []
        cluster = (machine.get("spec") or {}).get("clusterName")
        for mhc in of_cluster(checks, namespace_of(machine), cluster) if isinstance(cluster, str) else ():
            try:
                if selects(mhc, machine):
                    out.append(f"{namespace_of(mhc)}/{name_of(mhc)}")
            except ValueError:
                continue
        return out

    def checks_of_cluster(cluster: Obj) -> list[str]:
        """Pause and deletion of a Cluster concern its checks; other changes do not."""
        if not (cluster_paused(cluster) or deleting(cluster)):
            return []
        return checks_of(namespace_of(cluster), name_of(cluster))

    ctrl = Controller("machinehealthcheck", reconcile, workers=workers)

    def on_node(namespace: str, cluster: str, _node: Obj) -> None:
        for key in checks_of(namespace, cluster):
            ctrl.enqueue(key)

    ctx.clusters.add_node_listener(on_node)
    return (
        ctrl.watch(MACHINE_HEALTH_CHECKS)
        .watch(MACHINES, enqueue_mapped(checks_of_machine))
        .watch(CAPI_CLUSTERS, enqueue_mapped(checks_of_cluster))
    )
