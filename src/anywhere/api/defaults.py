"""Defaulting: filling what the user left out, as EKS Anywhere does before it validates.

Defaulting is idempotent (applying it twice changes nothing) and never overwrites what a user set,
so the API server can run it on every create and update.
"""

from __future__ import annotations

from anywhere.api.config import ClusterConfig
from anywhere.api.infra import rules_for_datacenter
from anywhere.api.v1alpha1._base import Object
from anywhere.api.v1alpha1.cluster import (
    CiliumConfig,
    Cluster,
    ClusterNetwork,
    CNIConfig,
    ControlPlaneRollingUpdateParams,
    ControlPlaneUpgradeRolloutStrategy,
    KindnetdConfig,
    MachineHealthCheck,
    ManagementCluster,
    Nodes,
    WorkerNodeGroupConfiguration,
    WorkerNodesRollingUpdateParams,
    WorkerNodesUpgradeRolloutStrategy,
)

DEFAULT_WORKER_GROUP_NAME = "md-0"
DEFAULT_POD_CIDR = "192.168.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_CIDR_MASK_SIZE = 24
DEFAULT_REGISTRY_MIRROR_PORT = "443"
DEFAULT_NODE_STARTUP_TIMEOUT = "10m0s"
DEFAULT_TINKERBELL_NODE_STARTUP_TIMEOUT = "20m0s"
DEFAULT_UNHEALTHY_MACHINE_TIMEOUT = "5m0s"
DEFAULT_CONTROL_PLANE_MAX_UNHEALTHY = "100%"
DEFAULT_WORKER_MAX_UNHEALTHY = "40%"
ROLLING_UPDATE = "RollingUpdate"
IN_PLACE = "InPlace"


def default_cluster(cluster: Cluster, *, datacenter_kind: str | None = None) -> None:
    """Apply every cluster-level default in place."""
    spec = cluster.spec
    if spec.management_cluster is None or not spec.management_cluster.name:
        spec.management_cluster = ManagementCluster(name=cluster.name)
    _default_network(cluster)
    _default_workers(cluster)
    _default_health_checks(cluster, tinkerbell=datacenter_kind == "TinkerbellDatacenterConfig")
    mirror = spec.registry_mirror_configuration
    if mirror is not None and not mirror.port:
        mirror.port = DEFAULT_REGISTRY_MIRROR_PORT


def default_config(config: ClusterConfig) -> None:
    """Defaults for the Cluster and, through its provider's rules, its datacenter and machine configs."""
    cluster = config.cluster
    datacenter = config.datacenter
    default_cluster(cluster, datacenter_kind=datacenter.kind if datacenter is not None else None)
    if datacenter is None:
        return
    rules = rules_for_datacenter(datacenter.kind)
    if rules is None:
        return
    rules.default_datacenter(datacenter)
    for obj in config.objects:
        if rules.machine_kind is not None and isinstance(obj, rules.machine_kind):
            rules.default_machine(obj)


def with_defaults(obj: Object) -> Object:
    """A defaulted deep copy, for callers that must keep the original."""
    copy = obj.model_copy(deep=True)
    if isinstance(copy, Cluster):
        default_cluster(copy)
    return copy


def _default_network(cluster: Cluster) -> None:
    spec = cluster.spec
    if spec.cluster_network is None:
        spec.cluster_network = ClusterNetwork()
    network = spec.cluster_network
    if network.cni_config is None and network.cni:
        # The deprecated `cni` string becomes the structured form EKS Anywhere now uses.
        if network.cni in ("cilium", "cilium-enterprise"):
            network.cni_config = CNIConfig(cilium=CiliumConfig())
            network.cni = None
        elif network.cni == "kindnetd":
            network.cni_config = CNIConfig(kindnetd=KindnetdConfig())
            network.cni = None
    if network.nodes is None:
        network.nodes = Nodes()
    if network.nodes.cidr_mask_size is None:
        network.nodes.cidr_mask_size = DEFAULT_NODE_CIDR_MASK_SIZE


def _default_workers(cluster: Cluster) -> None:
    groups = cluster.spec.worker_node_group_configurations or []
    if len(groups) == 1 and not groups[0].name:
        groups[0].name = DEFAULT_WORKER_GROUP_NAME
    for group in groups:
        if group.count is None:
            autoscaling = group.autoscaling_configuration
            group.count = autoscaling.min_count if autoscaling and autoscaling.min_count is not None else 1


def control_plane_rollout(cluster: Cluster) -> ControlPlaneUpgradeRolloutStrategy:
    """The control plane's effective rollout: what the user set, else RollingUpdate with maxSurge 1.

    EKS Anywhere applies this default when it renders the control plane, not in the spec (some
    providers refuse any customization of the strategy), so it is computed here rather than stored.
    """
    control_plane = cluster.spec.control_plane_configuration
    strategy = control_plane.upgrade_rollout_strategy if control_plane else None
    kind = strategy.type if strategy and strategy.type else ROLLING_UPDATE
    if kind != ROLLING_UPDATE:
        return ControlPlaneUpgradeRolloutStrategy(type=kind)
    surge = strategy.rolling_update.max_surge if strategy and strategy.rolling_update else None
    return ControlPlaneUpgradeRolloutStrategy(
        type=kind, rolling_update=ControlPlaneRollingUpdateParams(max_surge=1 if surge is None else surge)
    )


def worker_rollout(group: WorkerNodeGroupConfiguration) -> WorkerNodesUpgradeRolloutStrategy:
    """A worker group's effective rollout: what the user set, else maxSurge 1 and maxUnavailable 0."""
    strategy = group.upgrade_rollout_strategy
    kind = strategy.type if strategy and strategy.type else ROLLING_UPDATE
    if kind != ROLLING_UPDATE:
        return WorkerNodesUpgradeRolloutStrategy(type=kind)
    params = strategy.rolling_update if strategy else None
    surge = params.max_surge if params else None
    unavailable = params.max_unavailable if params else None
    return WorkerNodesUpgradeRolloutStrategy(
        type=kind,
        rolling_update=WorkerNodesRollingUpdateParams(
            max_surge=1 if surge is None else surge, max_unavailable=0 if unavailable is None else unavailable
        ),
    )


def _default_health_checks(cluster: Cluster, *, tinkerbell: bool) -> None:
    spec = cluster.spec
    if spec.machine_health_check is None:
        spec.machine_health_check = MachineHealthCheck()
    check = spec.machine_health_check
    if check.node_startup_timeout is None:
        check.node_startup_timeout = (
            DEFAULT_TINKERBELL_NODE_STARTUP_TIMEOUT if tinkerbell else DEFAULT_NODE_STARTUP_TIMEOUT
        )
    if check.unhealthy_machine_timeout is None:
        check.unhealthy_machine_timeout = DEFAULT_UNHEALTHY_MACHINE_TIMEOUT
    if check.max_unhealthy is None:
        check.max_unhealthy = DEFAULT_CONTROL_PLANE_MAX_UNHEALTHY
