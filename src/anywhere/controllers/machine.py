"""The Machine controller: what Cluster API's machine controller does.

A Machine is the intent that one node exist. Its controller does not make anything itself: it
follows the machine's two parts and its Node, and says how far along the machine is.

- Bootstrap: once the bootstrap config (KubeadmConfig) is ready, its data Secret's name goes into
  ``spec.bootstrap.dataSecretName`` (the infrastructure provider boots with it) and
  ``status.bootstrapReady`` becomes true.
- Infrastructure: once the infrastructure machine (SimMachine...) is ready, its
  ``spec.providerID`` goes into the Machine's, its addresses into ``status.addresses``;
  ``status.infrastructureReady`` becomes (and stays) true. Its failureReason/failureMessage are
  copied: the machine has failed for good.
- Node: the workload cluster's Node with the machine's providerID (found through the cluster
  cache's Node informer) gives ``status.nodeRef`` and ``status.nodeInfo``; its Ready condition
  gives the NodeHealthy condition. A nodeRef stays after the Node is gone, so that a health check
  sees the Node missing.
- ``status.phase`` (Pending, Provisioning, Provisioned, Running, Failed, Deleting) and the
  conditions BootstrapReady, InfrastructureReady, NodeHealthy and Ready (true when those three are)
  with Cluster API's reasons.

In-place upgrades (see :mod:`anywhere.controllers.inplace` for the contract): a Machine whose owner
annotated it ``anywhere.eks.amazonaws.com/in-place-upgrade-needed: <version>`` has its Node
cordoned and drained (:func:`drain_node`, the drain of a deletion too), then the node agent asked
for the version (``anywhere.eks.amazonaws.com/in-place-upgrade-to``); once the Node runs it and is
Ready, the Node is uncordoned. The condition ``InPlaceUpgraded`` says where it stands (reasons
Cordoning, Draining, Upgrading, Uncordoning; True when done); the owner records the machine as up to
date.

Deletion, held by the finalizer ``machine.cluster.x-k8s.io``: cordon and drain the Node (unless the
cluster is going away or unreachable; ``spec.nodeDrainTimeout`` bounds it), delete the
infrastructure machine and the bootstrap config and wait until both are gone, delete the Node,
then let the Machine go.

The workload cluster's API may not be reachable yet (no kubeconfig, the API server starting): the
controller then looks again shortly and never fails the machine for it.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from anywhere.api.capi import CLUSTER_API_VERSION
from anywhere.api.capi.machine import MachinePhase
from anywhere.api.duration import parse_duration
from anywhere.controllers import conditions, inplace
from anywhere.controllers.context import Context
from anywhere.controllers.machines import infra_machine_resource
from anywhere.controllers.objects import (
    add_finalizer,
    annotations_of,
    cluster_paused,
    deleting,
    has_finalizer,
    is_paused,
    name_of,
    namespace_of,
    of_cluster,
    parse_time,
    patch_at_version,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.remote import ClusterCache, ClusterNotReachable
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    KUBEADM_CONFIGS,
    MACHINES,
    NODES,
    PODS,
    SIM_MACHINES,
)
from anywhere.runtime import (
    Client,
    Controller,
    Informer,
    NotFoundError,
    Resource,
    Result,
    TransportError,
    enqueue_mapped,
    enqueue_owner,
)

__all__ = [
    "BOOTSTRAP_READY",
    "DRAINING_SUCCEEDED",
    "FINALIZER",
    "INFRASTRUCTURE_READY",
    "NODE_HEALTHY",
    "controller",
    "drain_node",
    "find_node",
    "machine_phase",
    "node_health",
    "set_unschedulable",
    "summarize_ready",
]

log = logging.getLogger("anywhere.controllers.machine")
Obj = dict[str, Any]

FINALIZER: Final = "machine.cluster.x-k8s.io"
# Conditions and reasons, as Cluster API v1beta1 names them.
BOOTSTRAP_READY: Final = "BootstrapReady"
INFRASTRUCTURE_READY: Final = "InfrastructureReady"
NODE_HEALTHY: Final = "NodeHealthy"
DRAINING_SUCCEEDED: Final = "DrainingSucceeded"
WAITING_FOR_DATA_SECRET: Final = "WaitingForDataSecret"
WAITING_FOR_INFRASTRUCTURE: Final = "WaitingForInfrastructure"
WAITING_FOR_NODE_REF: Final = "WaitingForNodeRef"
NODE_PROVISIONING: Final = "NodeProvisioning"
NODE_NOT_FOUND: Final = "NodeNotFound"
NODE_CONDITIONS_FAILED: Final = "NodeConditionsFailed"
DELETING_REASON: Final = "Deleting"
DRAINING: Final = "Draining"
DRAINING_FAILED: Final = "DrainingFailed"
INVALID_CONFIGURATION: Final = "InvalidConfiguration"

# Annotations with Cluster API's meaning.
MACHINE_ANNOTATION: Final = "cluster.x-k8s.io/machine"
CLUSTER_NAMESPACE_ANNOTATION: Final = "cluster.x-k8s.io/cluster-namespace"
EXCLUDE_DRAIN_ANNOTATION: Final = "machine.cluster.x-k8s.io/exclude-node-draining"
MIRROR_POD_ANNOTATION: Final = "kubernetes.io/config.mirror"

# How long to wait for a workload cluster's Node cache to fill within one reconcile, and how soon
# to look again when the workload API is not reachable yet.
NODE_SYNC_TIMEOUT: Final = 1.0
UNREACHABLE_RETRY: Final = 3.0
DRAIN_RETRY: Final = 2.0
# Cluster API's default spec.nodeDeletionTimeout: how long to retry deleting the Node.
DEFAULT_NODE_DELETION_TIMEOUT: Final = 10.0

_SEVERITY_RANK: Final = {conditions.ERROR: 0, conditions.WARNING: 1, conditions.INFO: 2}


# -- pure decisions ----------------------------------------------------------------------------------


def node_health(node: Obj) -> tuple[bool, str]:
    """Whether the Node is healthy (its Ready condition is True), and if not, why."""
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            status = str(condition.get("status") or "Unknown")
            if status == "True":
                return True, ""
            detail = f" ({condition['message']})" if condition.get("message") else ""
            return False, f"Node condition Ready is {status}{detail}."
    return False, "Node condition Ready is not reported yet."


def machine_phase(
    current: str | None,
    *,
    bootstrap_ready: bool,
    infrastructure_ready: bool,
    provider_id: str | None,
    node_ref: bool,
    failed: bool,
    deleting: bool,
) -> str:
    """Cluster API's phase rules, in its order (a later rule wins; none keeps the current phase)."""
    phase = current or MachinePhase.PENDING
    if bootstrap_ready and not infrastructure_ready:
        phase = MachinePhase.PROVISIONING
    if provider_id:
        phase = MachinePhase.PROVISIONED
    if node_ref and infrastructure_ready:
        phase = MachinePhase.RUNNING
    if failed:
        phase = MachinePhase.FAILED
    if deleting:
        phase = MachinePhase.DELETING
    return phase


def summarize_ready(status: Obj) -> None:
    """Set Ready from InfrastructureReady, BootstrapReady and NodeHealthy: True when all are; else
    False with the reason, message and severity of the most severe (then first) of those not True."""
    holder = {"status": status}
    worst: Obj | None = None
    worst_rank: tuple[int, int] | None = None
    for order, type_ in enumerate((INFRASTRUCTURE_READY, BOOTSTRAP_READY, NODE_HEALTHY)):
        condition = conditions.get_condition(holder, type_)
        if condition is not None and condition.get("status") == "True":
            continue
        if condition is None:
            condition = {"reason": f"Waiting{type_}", "severity": conditions.INFO}
        rank = (_SEVERITY_RANK.get(str(condition.get("severity")), 2), order)
        if worst_rank is None or rank < worst_rank:
            worst, worst_rank = condition, rank
    if worst is None:
        conditions.set_true(status, conditions.READY)
    else:
        conditions.set_false(
            status,
            conditions.READY,
            str(worst.get("reason") or ""),
            str(worst.get("message") or ""),
            str(worst.get("severity") or conditions.INFO),
        )


def find_node(nodes: Informer, provider_id: str, names: Iterable[str]) -> Obj | None:
    """The Node with ``spec.providerID == provider_id``: first among the Nodes named ``names``
    (the nodeRef, the machine's name, an index entry), then by a scan of the cache."""
    for name in names:
        node = nodes.get(name) if name else None
        if node is not None and (node.get("spec") or {}).get("providerID") == provider_id:
            return node
    for node in nodes.list():
        if (node.get("spec") or {}).get("providerID") == provider_id:
            return node
    return None


async def _unreferenced_node(ctx: Context, namespace: str, cluster: str, machine: str) -> str:
    """The name of a Node of ``cluster`` annotated as ``machine``'s, or "" (none, or no way to tell)."""
    try:
        nodes = await ctx.clusters.synced_nodes(namespace, cluster, timeout=3.0)
    except (ClusterNotReachable, TransportError):
        return ""
    for node in nodes.list():
        annotations = annotations_of(node)
        if (
            annotations.get(MACHINE_ANNOTATION) == machine
            and (annotations.get(CLUSTER_NAMESPACE_ANNOTATION) or namespace) == namespace
        ):
            return name_of(node)
    return ""


def _mirror_or(
    status: Obj, type_: str, part: Obj | None, ready: bool, fallback_reason: str, fallback_message: str
) -> None:
    """Set ``type_`` True when ``ready``; else copy the part's own Ready condition when it is False
    (it knows best why), or fall back to ``fallback_reason``."""
    if ready:
        conditions.set_true(status, type_)
        return
    mirrored = conditions.get_condition(part, conditions.READY) if part is not None else None
    if mirrored is not None and mirrored.get("status") == "False" and mirrored.get("reason"):
        conditions.set_false(
            status,
            type_,
            str(mirrored["reason"]),
            str(mirrored.get("message") or ""),
            str(mirrored.get("severity") or conditions.INFO),
        )
    else:
        conditions.set_false(status, type_, fallback_reason, fallback_message)


def _seconds(value: Any) -> float | None:
    if not value:
        return None
    try:
        return parse_duration(str(value))
    except ValueError:
        return None


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


def _sooner(first: Result | None, second: Result | None) -> Result | None:
    """The result that comes back sooner (a requeue after a delay beats none at all)."""
    if first is None or first.requeue_after is None:
        return second if second is not None else first
    if second is None or second.requeue_after is None:
        return first
    return first if first.requeue_after <= second.requeue_after else second


def _evictable(pod: Obj) -> bool:
    """What ``kubectl drain --ignore-daemonsets`` evicts: not DaemonSet pods, not mirror pods."""
    meta = pod.get("metadata") or {}
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return False
    return not any(
        ref.get("kind") == "DaemonSet" and ref.get("controller") for ref in meta.get("ownerReferences") or ()
    )


# -- the Node: cordon, drain, uncordon ------------------------------------------------------------------


async def _cordon(remote: Client, node_name: str, value: bool) -> bool:
    """Set the Node's ``spec.unschedulable`` to ``value`` unless it is already; False if there is no
    such Node."""
    try:
        node = await remote.get(NODES, node_name)
    except NotFoundError:
        return False
    if bool((node.get("spec") or {}).get("unschedulable")) != value:
        await remote.patch(NODES, node_name, {"spec": {"unschedulable": value}})
    return True


async def set_unschedulable(
    clusters: ClusterCache, namespace: str, cluster: str, node_name: str, value: bool
) -> bool:
    """Cordon (``value`` True) or uncordon the Node; whether that could be done (False when the
    workload cluster cannot be reached; a Node that is gone needs nothing)."""
    try:
        await _cordon(await clusters.client(namespace, cluster), node_name, value)
        return True
    except (ClusterNotReachable, TransportError) as exc:
        action = "cordon" if value else "uncordon"
        log.info("cannot %s Node %s of %s/%s: %s", action, node_name, namespace, cluster, exc)
        return False


async def drain_node(clusters: ClusterCache, namespace: str, cluster: str, node_name: str) -> int | None:
    """Cordon the Node and delete the pods bound to it (``kubectl drain --ignore-daemonsets``, without
    eviction): what a Machine's deletion and an in-place upgrade do first. Returns the number of
    pods still there (0 when the Node is gone), or None when the workload cluster cannot be
    reached."""
    try:
        remote: Client = await clusters.client(namespace, cluster)
        if not await _cordon(remote, node_name, True):
            return 0
        pods = await remote.list_all(PODS, None, field_selector=f"spec.nodeName={node_name}")
        left = 0
        for pod in pods.get("items") or ():
            if not _evictable(pod):
                continue
            left += 1
            if not deleting(pod):
                with contextlib.suppress(NotFoundError):
                    await remote.delete(PODS, name_of(pod), namespace_of(pod))
        if left:
            # Pods without finalizers go at once; count again what is really left.
            again = await remote.list_all(PODS, None, field_selector=f"spec.nodeName={node_name}")
            left = sum(1 for pod in again.get("items") or () if _evictable(pod))
        return left
    except (ClusterNotReachable, TransportError) as exc:
        log.info("not draining Node %s of %s/%s: %s", node_name, namespace, cluster, exc)
        return None


# -- the controller ----------------------------------------------------------------------------------


def controller(
    ctx: Context, *, infra_machines: Sequence[Resource] = (SIM_MACHINES,), workers: int = 2
) -> Controller:
    """The Machine controller, following the infrastructure machine kinds ``infra_machines``."""
    machines = ctx.manager.informer(MACHINES)
    clusters = ctx.manager.informer(CAPI_CLUSTERS)
    known: dict[tuple[str, str], Resource] = {(r.group, r.kind): r for r in infra_machines}
    # (namespace, cluster, providerID) -> node name, from node events; checked on every use.
    node_names: dict[tuple[str, str, str], str] = {}

    def infra_resource(ref: Mapping[str, Any]) -> Resource:
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        return known.get((group, str(ref.get("kind") or ""))) or infra_machine_resource(dict(ref))

    async def get_part(resource: Resource, namespace: str, name: str) -> Obj | None:
        """From the cache when the controller watches the kind; from the API otherwise."""
        if resource == KUBEADM_CONFIGS or (resource.group, resource.kind) in known:
            return ctx.manager.informer(resource).get(f"{namespace}/{name}")
        try:
            return await ctx.client.get(resource, name, namespace)
        except NotFoundError:
            return None

    def cluster_of(machine: Obj) -> Obj | None:
        name = (machine.get("spec") or {}).get("clusterName")
        return clusters.get(f"{namespace_of(machine)}/{name}") if name else None

    async def reconcile(key: str) -> Result | None:
        machine = machines.get(key)
        if machine is None:
            return None
        cluster = cluster_of(machine)
        if is_paused(machine) or cluster_paused(cluster):
            return None
        if deleting(machine):
            return await reconcile_delete(machine, cluster)
        if not has_finalizer(machine, FINALIZER):
            machine = await add_finalizer(ctx.client, MACHINES, machine, FINALIZER)
        return await reconcile_normal(machine)

    async def reconcile_normal(machine: Obj) -> Result | None:
        namespace = namespace_of(machine)
        spec: Obj = machine.get("spec") or {}
        status: Obj = copy.deepcopy(machine.get("status") or {})
        spec_patch: Obj = {}
        result: Result | None = None

        # Bootstrap.
        bootstrap: Obj = spec.get("bootstrap") or {}
        config_ref = bootstrap.get("configRef")
        if bootstrap.get("dataSecretName"):
            status["bootstrapReady"] = True
            conditions.set_true(status, BOOTSTRAP_READY)
        elif config_ref:
            config = await get_part(KUBEADM_CONFIGS, namespace, str(config_ref.get("name")))
            config_status = (config or {}).get("status") or {}
            secret_name = config_status.get("dataSecretName")
            ready = bool(config_status.get("ready") and secret_name)
            if ready:
                spec_patch.setdefault("bootstrap", {})["dataSecretName"] = secret_name
                status["bootstrapReady"] = True
            else:
                status["bootstrapReady"] = False
            message = (
                f"{config_ref.get('kind')} {config_ref.get('name')} does not exist yet"
                if config is None
                else ""
            )
            _mirror_or(status, BOOTSTRAP_READY, config, ready, WAITING_FOR_DATA_SECRET, message)
        else:
            status["bootstrapReady"] = False
            conditions.set_false(
                status, BOOTSTRAP_READY, WAITING_FOR_DATA_SECRET, "spec.bootstrap names no config nor secret"
            )

        # Infrastructure.
        provider_id = spec.get("providerID")
        infra_ref = spec.get("infrastructureRef") or {}
        infra = (
            await get_part(infra_resource(infra_ref), namespace, str(infra_ref.get("name")))
            if infra_ref
            else None
        )
        if infra is None:
            if status.get("infrastructureReady"):
                status["failureReason"] = INVALID_CONFIGURATION
                status["failureMessage"] = (
                    f"Machine infrastructure resource {infra_ref.get('kind')} with name "
                    f"{infra_ref.get('name')!r} has been deleted after being ready"
                )
                conditions.set_false(
                    status,
                    INFRASTRUCTURE_READY,
                    WAITING_FOR_INFRASTRUCTURE,
                    status["failureMessage"],
                    "Error",
                )
            else:
                conditions.set_false(
                    status,
                    INFRASTRUCTURE_READY,
                    WAITING_FOR_INFRASTRUCTURE,
                    f"{infra_ref.get('kind')} {infra_ref.get('name')} does not exist yet",
                )
        else:
            infra_status: Obj = infra.get("status") or {}
            for field in ("failureReason", "failureMessage"):
                if infra_status.get(field):
                    status[field] = infra_status[field]
            infra_id = (infra.get("spec") or {}).get("providerID")
            ready = bool(infra_status.get("ready") and infra_id)
            if ready:
                status["infrastructureReady"] = True
                if infra_id != provider_id:
                    spec_patch["providerID"] = provider_id = infra_id
                if infra_status.get("addresses") is not None:
                    status["addresses"] = infra_status["addresses"]
            _mirror_or(status, INFRASTRUCTURE_READY, infra, ready, WAITING_FOR_INFRASTRUCTURE, "")

        # Node, and an in-place upgrade of it.
        if not provider_id:
            conditions.set_false(status, NODE_HEALTHY, WAITING_FOR_NODE_REF, "")
        else:
            result, reached, node = await reconcile_node(machine, str(provider_id), status)
            if reached:
                machine, upgrade_result = await reconcile_in_place(machine, node, status)
                result = _sooner(result, upgrade_result)

        failed = bool(status.get("failureReason") or status.get("failureMessage"))
        phase = machine_phase(
            status.get("phase"),
            bootstrap_ready=bool(status.get("bootstrapReady")),
            infrastructure_ready=bool(status.get("infrastructureReady")),
            provider_id=provider_id,
            node_ref=bool(status.get("nodeRef")),
            failed=failed,
            deleting=False,
        )
        if phase != status.get("phase"):
            status["phase"] = phase
            status["lastUpdated"] = conditions.now()
        summarize_ready(status)
        status["observedGeneration"] = int(machine["metadata"].get("generation") or 0)

        if spec_patch:
            machine = await ctx.client.patch(
                MACHINES,
                name_of(machine),
                {"metadata": {"resourceVersion": machine["metadata"]["resourceVersion"]}, "spec": spec_patch},
                namespace,
            )
        await write_status(ctx.client, MACHINES, machine, status)
        return result

    async def reconcile_node(
        machine: Obj, provider_id: str, status: Obj
    ) -> tuple[Result | None, bool, Obj | None]:
        """Follow the machine's Node; returns when to look again, whether the workload cluster's
        Nodes could be read, and the Node (None if there is none)."""
        namespace, cluster = namespace_of(machine), str(machine["spec"].get("clusterName") or "")
        node_ref = status.get("nodeRef") or {}
        try:
            nodes = await ctx.clusters.synced_nodes(namespace, cluster, timeout=NODE_SYNC_TIMEOUT)
        except ClusterNotReachable as exc:
            if not node_ref:
                conditions.set_false(
                    status, NODE_HEALTHY, NODE_PROVISIONING, f"Waiting for the workload cluster's API: {exc}"
                )
            log.debug("machine %s/%s: %s", namespace, name_of(machine), exc)
            return Result(requeue_after=UNREACHABLE_RETRY), False, None
        index_key = (namespace, cluster, provider_id)
        hint = node_names.get(index_key, "")
        node = find_node(nodes, provider_id, (str(node_ref.get("name") or ""), name_of(machine), hint))
        if node is None:
            node_names.pop(index_key, None)
            if node_ref:
                conditions.set_false(
                    status,
                    NODE_HEALTHY,
                    NODE_NOT_FOUND,
                    f"Node {node_ref.get('name')} was deleted from the workload cluster",
                    conditions.ERROR,
                )
            else:
                conditions.set_false(
                    status,
                    NODE_HEALTHY,
                    NODE_PROVISIONING,
                    f"Waiting for a Node with providerID {provider_id} to register",
                    conditions.WARNING,
                )
            return None, True, None
        meta = node.get("metadata") or {}
        status["nodeRef"] = {
            "apiVersion": "v1",
            "kind": "Node",
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        }
        node_info = (node.get("status") or {}).get("nodeInfo")
        if node_info is not None:
            status["nodeInfo"] = node_info
        healthy, message = node_health(node)
        if healthy:
            conditions.set_true(status, NODE_HEALTHY)
        else:
            conditions.set_false(status, NODE_HEALTHY, NODE_CONDITIONS_FAILED, message, conditions.WARNING)
        return None, True, node

    async def reconcile_in_place(machine: Obj, node: Obj | None, status: Obj) -> tuple[Obj, Result | None]:
        """One step of the in-place upgrade the machine's owner asked for (see
        :mod:`anywhere.controllers.inplace`); the condition InPlaceUpgraded says which. Returns the
        machine as written and when to look again (Node events bring the controller back too)."""
        step = inplace.next_step(machine, node)
        if step is None:
            return machine, None
        namespace, name = namespace_of(machine), name_of(machine)
        cluster = str((machine.get("spec") or {}).get("clusterName") or "")
        wanted = inplace.requested(machine)
        holder = {"status": status}

        def unreachable(step: inplace.Step) -> Result:
            message = f"{step.message}: the workload cluster's API is not reachable"
            conditions.set_false(status, inplace.IN_PLACE_UPGRADED, step.reason, message)
            return Result(requeue_after=UNREACHABLE_RETRY)

        if step.action == "wait" or node is None:
            conditions.set_false(status, inplace.IN_PLACE_UPGRADED, step.reason, step.message)
            return machine, None
        node_name = name_of(node)
        if step.action in ("uncordon", "done"):
            if step.action == "uncordon" and not await set_unschedulable(
                ctx.clusters, namespace, cluster, node_name, False
            ):
                return machine, unreachable(step)
            if not conditions.is_true(holder, inplace.IN_PLACE_UPGRADED):
                log.info("machine %s/%s: upgraded in place to %s", namespace, name, wanted)
            conditions.set_true(status, inplace.IN_PLACE_UPGRADED)
            return machine, None
        # Cordon and drain, then ask the node agent.
        conditions.set_false(status, inplace.IN_PLACE_UPGRADED, step.reason, step.message)
        if EXCLUDE_DRAIN_ANNOTATION in annotations_of(machine):
            cordoned = await set_unschedulable(ctx.clusters, namespace, cluster, node_name, True)
            left: int | None = 0 if cordoned else None
        else:
            left = await drain_node(ctx.clusters, namespace, cluster, node_name)
        if left is None:
            return machine, unreachable(step)
        if left:
            conditions.set_false(
                status,
                inplace.IN_PLACE_UPGRADED,
                inplace.DRAINING,
                f"Draining Node {node_name} to upgrade it in place to {wanted}: {left} pods left",
            )
            return machine, Result(requeue_after=DRAIN_RETRY)
        if conditions.is_true(machine, inplace.IN_PLACE_UPGRADED):
            # True from an earlier upgrade: say False before asking the agent, so that the owner
            # never takes the request for done (the status write brings the machine back).
            conditions.set_false(
                status, inplace.IN_PLACE_UPGRADED, inplace.DRAINING, f"Node {node_name} drained"
            )
            return machine, None
        machine = await patch_at_version(
            ctx.client,
            MACHINES,
            machine,
            {"metadata": {"annotations": {inplace.UPGRADE_TO_ANNOTATION: wanted}}},
        )
        log.info(
            "machine %s/%s: Node %s drained; node agent asked for kubelet %s",
            namespace,
            name,
            node_name,
            wanted,
        )
        conditions.set_false(
            status,
            inplace.IN_PLACE_UPGRADED,
            inplace.UPGRADING,
            f"Waiting for Node {node_name} to run kubelet {wanted}",
        )
        return machine, None

    async def reconcile_delete(machine: Obj, cluster: Obj | None) -> Result | None:
        if not has_finalizer(machine, FINALIZER):
            return None
        namespace, name = namespace_of(machine), name_of(machine)
        spec: Obj = machine.get("spec") or {}
        cluster_name = str(spec.get("clusterName") or "")
        # Without a live Cluster there is no workload cluster to be nice to.
        cluster_going = cluster is None or deleting(cluster)
        status: Obj = copy.deepcopy(machine.get("status") or {})
        status["phase"] = machine_phase(
            status.get("phase"),
            bootstrap_ready=False,
            infrastructure_ready=False,
            provider_id=None,
            node_ref=False,
            failed=False,
            deleting=True,
        )
        node_name = str((status.get("nodeRef") or {}).get("name") or "")

        async def say(message: str) -> None:
            nonlocal machine
            conditions.set_false(status, conditions.READY, DELETING_REASON, message)
            machine = await write_status(ctx.client, MACHINES, machine, status)

        # 1. Cordon and drain the node.
        if node_name and not cluster_going and EXCLUDE_DRAIN_ANNOTATION not in annotations_of(machine):
            deletion: Obj = dict(status.get("deletion") or {})
            started = parse_time(deletion.get("nodeDrainStartTime"))
            if started is None:
                deletion["nodeDrainStartTime"] = conditions.now()
                status["deletion"] = deletion
                started = _now()
            timeout = _seconds(spec.get("nodeDrainTimeout"))
            if timeout and _now() - started > timeout:
                conditions.set_false(
                    status,
                    DRAINING_SUCCEEDED,
                    DRAINING_FAILED,
                    f"Drain not completed within nodeDrainTimeout {spec.get('nodeDrainTimeout')}; "
                    "deleting the machine anyway",
                    conditions.WARNING,
                )
            elif not conditions.is_true({"status": status}, DRAINING_SUCCEEDED):
                # An unreachable workload cluster is not drained (its nodes may be gone with it).
                left = await drain_node(ctx.clusters, namespace, cluster_name, node_name) or 0
                if left:
                    conditions.set_false(
                        status, DRAINING_SUCCEEDED, DRAINING, f"Draining the node: {left} pods left"
                    )
                    await say(f"Draining node {node_name}")
                    return Result(requeue_after=DRAIN_RETRY)
                conditions.set_true(status, DRAINING_SUCCEEDED)

        # 2. Delete the parts and wait until they are gone.
        waiting: list[str] = []
        for resource, ref in (
            (infra_resource(spec.get("infrastructureRef") or {}), spec.get("infrastructureRef")),
            (KUBEADM_CONFIGS, (spec.get("bootstrap") or {}).get("configRef")),
        ):
            if not ref or not ref.get("name"):
                continue
            part = await get_part(resource, namespace, str(ref["name"]))
            if part is None:
                continue
            waiting.append(f"{ref.get('kind')} {ref['name']}")
            if not deleting(part):
                with contextlib.suppress(NotFoundError):
                    await ctx.client.delete(resource, str(ref["name"]), namespace)
        if waiting:
            await say(f"Waiting for {' and '.join(waiting)} to be deleted")
            return None

        # 3. Delete the Node. One registered just before the deletion began has no nodeRef yet:
        #    it is found by the machine annotation its kubelet wrote (Cluster API's).
        if not node_name and not cluster_going:
            node_name = await _unreferenced_node(ctx, namespace, cluster_name, name)
        if node_name and not cluster_going:
            try:
                remote = await ctx.clusters.client(namespace, cluster_name)
                with contextlib.suppress(NotFoundError):
                    await remote.delete(NODES, node_name)
            except ClusterNotReachable:
                log.info(
                    "machine %s/%s: workload cluster unreachable; Node %s left", namespace, name, node_name
                )
            except TransportError as exc:
                since = parse_time(machine["metadata"].get("deletionTimestamp")) or _now()
                timeout = _seconds(spec.get("nodeDeletionTimeout")) or DEFAULT_NODE_DELETION_TIMEOUT
                if _now() - since < timeout:
                    await say(f"Deleting Node {node_name}: {exc}")
                    return Result(requeue_after=DRAIN_RETRY)
                log.warning("machine %s/%s: gave up deleting Node %s: %s", namespace, name, node_name, exc)

        # 4. Let the Machine go.
        await say("Deleting the machine")
        await remove_finalizer(ctx.client, MACHINES, machine, FINALIZER)
        log.info("machine %s/%s deleted", namespace, name)
        return None

    ctrl = Controller("machine", reconcile, workers=workers)

    def on_node(namespace: str, cluster: str, node: Obj) -> None:
        annotations = annotations_of(node)
        provider_id = str((node.get("spec") or {}).get("providerID") or "")
        if provider_id:
            node_names[(namespace, cluster, provider_id)] = name_of(node)
        machine_name = annotations.get(MACHINE_ANNOTATION)
        if machine_name:
            ctrl.enqueue(f"{annotations.get(CLUSTER_NAMESPACE_ANNOTATION) or namespace}/{machine_name}")
            return
        same_name = machines.get(f"{namespace}/{name_of(node)}")
        if same_name is not None and (same_name.get("spec") or {}).get("clusterName") == cluster:
            ctrl.enqueue(f"{namespace}/{name_of(node)}")
            return
        if provider_id:
            for machine in of_cluster(machines, namespace, cluster):
                machine_spec = machine.get("spec") or {}
                if (
                    machine_spec.get("clusterName") == cluster
                    and machine_spec.get("providerID") == provider_id
                ):
                    ctrl.enqueue(f"{namespace}/{name_of(machine)}")

    ctx.clusters.add_node_listener(on_node)

    def machines_of_cluster(cluster: Obj) -> list[str]:
        """A Cluster's pause or deletion concerns its machines; other changes do not."""
        if not (cluster_paused(cluster) or deleting(cluster)):
            return []
        namespace, name = namespace_of(cluster), name_of(cluster)
        return [
            f"{namespace}/{name_of(m)}"
            for m in of_cluster(machines, namespace, name)
            if (m.get("spec") or {}).get("clusterName") == name
        ]

    owner = enqueue_owner(MACHINES.kind, CLUSTER_API_VERSION)
    ctrl.watch(MACHINES).watch(KUBEADM_CONFIGS, owner).watch(
        CAPI_CLUSTERS, enqueue_mapped(machines_of_cluster)
    )
    for resource in infra_machines:
        ctrl.watch(resource, owner)
    return ctrl
