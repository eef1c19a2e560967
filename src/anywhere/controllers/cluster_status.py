"""The status conditions of an anywhere Cluster, from its control plane and machine deployments
(a pure function, with EKS Anywhere's reasons and messages).

Users and scripts wait on these (``kubectl wait --for=condition=Ready``), and people who know EKS
Anywhere read their messages, so they say what EKS Anywhere says, in the same order of
precedence: the first thing not yet done is what a condition reports.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.controllers.conditions import ERROR, READY, get_condition, is_true, set_condition, set_false
from anywhere.controllers.inplace import IN_PLACE
from anywhere.controllers.inplace import IN_PROGRESS_REASON as IN_PLACE_UPGRADE
from anywhere.controllers.objects import annotations_of, name_of

__all__ = [
    "CONTROL_PLANE_INITIALIZED",
    "CONTROL_PLANE_READY",
    "DEFAULT_CNI_CONFIGURED",
    "WORKERS_READY",
    "CniState",
    "set_conditions",
]

Obj = dict[str, Any]
CONTROL_PLANE_INITIALIZED: Final = "ControlPlaneInitialized"
CONTROL_PLANE_READY: Final = "ControlPlaneReady"
DEFAULT_CNI_CONFIGURED: Final = "DefaultCNIConfigured"
WORKERS_READY: Final = "WorkersReady"

ROLLING_UPGRADE: Final = "RollingUpgradeInProgress"

_AUTOSCALER_MIN = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
_AUTOSCALER_MAX = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"


@dataclass(frozen=True)
class CniState:
    """Where the default CNI stands: installed and current, being installed or upgraded, or
    handed to the user (``skipUpgrade``)."""

    configured: bool
    skip_upgrade: bool = False
    message: str = ""


def _stale(obj: Obj) -> bool:
    status = obj.get("status") or {}
    return int(status.get("observedGeneration") or 0) < int(obj["metadata"].get("generation") or 0)


def set_conditions(
    status: MutableMapping[str, Any],
    cluster: Cluster,
    control_plane: Obj | None,
    deployments: list[Obj],
    cni: CniState,
) -> None:
    """Set ControlPlaneInitialized, ControlPlaneReady, DefaultCNIConfigured, WorkersReady and Ready."""
    _control_plane_initialized(status, control_plane)
    _control_plane_ready(status, cluster, control_plane)
    _default_cni(status, cni)
    _workers_ready(status, cluster, deployments)
    _ready(status, cni)


def _control_plane_initialized(status: MutableMapping[str, Any], control_plane: Obj | None) -> None:
    if is_true({"status": status}, CONTROL_PLANE_INITIALIZED):
        return  # set once, never reverted
    if control_plane is None or not (control_plane.get("status") or {}).get("initialized"):
        set_false(
            status,
            CONTROL_PLANE_INITIALIZED,
            "ControlPlaneInitializationInProgress",
            "The first control plane instance is not available yet",
        )
    elif _stale(control_plane):
        set_false(status, CONTROL_PLANE_INITIALIZED, "OutdatedInformation")
    else:
        set_condition(status, CONTROL_PLANE_INITIALIZED, True)


def _control_plane_ready(status: MutableMapping[str, Any], cluster: Cluster, kcp: Obj | None) -> None:
    initialized = get_condition({"status": status}, CONTROL_PLANE_INITIALIZED)
    if kcp is None or initialized is None or initialized.get("status") != "True":
        set_condition(
            status,
            CONTROL_PLANE_READY,
            False,
            (initialized or {}).get("reason", "ControlPlaneInitializationInProgress"),
            (initialized or {}).get("message", ""),
            (initialized or {}).get("severity", ""),
        )
        return
    if _stale(kcp):
        set_false(status, CONTROL_PLANE_READY, "OutdatedInformation")
        return
    kcp_status = kcp.get("status") or {}
    replicas = int(kcp_status.get("replicas") or 0)
    updated = int(kcp_status.get("updatedReplicas") or 0)
    ready = int(kcp_status.get("readyReplicas") or 0)
    control = cluster.spec.control_plane_configuration
    expected = (control.count if control else None) or 1
    strategy = control.upgrade_rollout_strategy if control else None
    in_place = (strategy is not None and strategy.type == IN_PLACE) or (
        ((kcp.get("spec") or {}).get("rolloutStrategy") or {}).get("type") == IN_PLACE
    )
    upgrading = IN_PLACE_UPGRADE if in_place else ROLLING_UPGRADE
    if replicas - updated > 0:
        set_false(
            status,
            CONTROL_PLANE_READY,
            upgrading,
            f"Control plane nodes not up-to-date yet, {replicas - updated} upgrading ({updated} up to date)",
        )
    elif replicas < expected:
        set_false(
            status,
            CONTROL_PLANE_READY,
            "ScalingUp",
            f"Scaling up control plane nodes, {expected} expected ({replicas} actual)",
        )
    elif replicas > expected:
        set_false(
            status,
            CONTROL_PLANE_READY,
            "ScalingDown",
            f"Scaling down control plane nodes, {expected} expected ({replicas} actual)",
        )
    elif ready != expected:
        set_false(
            status,
            CONTROL_PLANE_READY,
            "NodesNotReady",
            f"Control plane nodes not ready yet, {expected} expected ({ready} ready)",
        )
    elif not is_true(kcp, READY):
        set_false(
            status,
            CONTROL_PLANE_READY,
            "KubeadmControlPlaneNotReady",
            f"Kubeadm control plane {name_of(kcp)} not ready yet",
            ERROR,
        )
    else:
        set_condition(status, CONTROL_PLANE_READY, True)


def _default_cni(status: MutableMapping[str, Any], cni: CniState) -> None:
    if cni.skip_upgrade:
        set_false(
            status,
            DEFAULT_CNI_CONFIGURED,
            "SkipUpgradesForDefaultCNIConfigured",
            "Configured to skip default Cilium CNI upgrades",
        )
    elif cni.configured:
        set_condition(status, DEFAULT_CNI_CONFIGURED, True)
    elif not is_true({"status": status}, CONTROL_PLANE_READY) and not is_true(
        {"status": status}, CONTROL_PLANE_INITIALIZED
    ):
        set_false(status, DEFAULT_CNI_CONFIGURED, "ControlPlaneNotReady")
    else:
        set_false(status, DEFAULT_CNI_CONFIGURED, "DefaultCNIUpgradeInProgressReason", cni.message)


def _workers_ready(status: MutableMapping[str, Any], cluster: Cluster, deployments: list[Obj]) -> None:
    if not is_true({"status": status}, CONTROL_PLANE_INITIALIZED):
        set_false(status, WORKERS_READY, "ControlPlaneNotInitialized")
        return
    groups = cluster.spec.worker_node_group_configurations or []
    expected = sum(g.count or 0 for g in groups if g.autoscaling_configuration is None)
    counted = [md for md in deployments if _AUTOSCALER_MIN not in annotations_of(md)]
    # Each group rolls out by its own strategy (rendered into its MachineDeployment).
    outdated = [
        md
        for md in counted
        if int((md.get("status") or {}).get("replicas") or 0)
        > int((md.get("status") or {}).get("updatedReplicas") or 0)
    ]
    in_place = any(((md.get("spec") or {}).get("strategy") or {}).get("type") == IN_PLACE for md in outdated)
    upgrading = IN_PLACE_UPGRADE if in_place else ROLLING_UPGRADE
    for md in deployments:
        if _stale(md):
            set_false(
                status,
                WORKERS_READY,
                "OutdatedInformation",
                f"Worker node group {name_of(md)} status not up to date yet",
            )
            return
    total = updated = ready = 0
    for md in counted:
        md_status = md.get("status") or {}
        total += int(md_status.get("replicas") or 0)
        updated += int(md_status.get("updatedReplicas") or 0)
        ready += int(md_status.get("readyReplicas") or 0)
    if total - updated > 0:
        set_false(
            status,
            WORKERS_READY,
            upgrading,
            f"Worker nodes not up-to-date yet, {total - updated} upgrading ({updated} up to date)",
        )
        return
    if total < expected:
        set_false(
            status,
            WORKERS_READY,
            "ScalingUp",
            f"Scaling up worker nodes, {expected} expected ({total} actual)",
        )
        return
    if total > expected:
        set_false(
            status,
            WORKERS_READY,
            "ScalingDown",
            f"Scaling down worker nodes, {expected} expected ({total} actual)",
        )
        return
    if ready != expected:
        set_false(
            status,
            WORKERS_READY,
            "NodesNotReady",
            f"Worker nodes not ready yet, {expected} expected ({ready} ready)",
        )
        return
    for md in deployments:
        meta = annotations_of(md)
        if _AUTOSCALER_MIN not in meta:
            continue
        low, high = int(meta.get(_AUTOSCALER_MIN, "0")), int(meta.get(_AUTOSCALER_MAX, "0"))
        replicas = int((md.get("status") or {}).get("replicas") or 0)
        if not low <= replicas <= high:
            set_false(
                status,
                WORKERS_READY,
                "AutoscalerConstraintNotMet",
                f"Worker nodes count for {name_of(md)} not between {low} and {high} yet ({replicas} actual)",
            )
            return
    for md in deployments:
        if not is_true(md, READY):
            set_false(
                status,
                WORKERS_READY,
                "MachineDeploymentNotReady",
                f"Machine deployment {name_of(md)} not ready yet",
                ERROR,
            )
            return
    set_condition(status, WORKERS_READY, True)


def _ready(status: MutableMapping[str, Any], cni: CniState) -> None:
    """Ready summarizes the others (DefaultCNIConfigured only while anywhere manages the CNI): the
    first one not True gives its reason and message."""
    kinds = [CONTROL_PLANE_INITIALIZED, CONTROL_PLANE_READY, WORKERS_READY]
    if not cni.skip_upgrade:
        kinds.insert(2, DEFAULT_CNI_CONFIGURED)
    for kind in kinds:
        condition = get_condition({"status": status}, kind)
        if condition is None or condition.get("status") != "True":
            condition = condition or {}
            set_condition(
                status,
                READY,
                False,
                condition.get("reason", ""),
                condition.get("message", ""),
                condition.get("severity", ""),
            )
            return
    set_condition(status, READY, True)
