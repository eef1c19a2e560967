"""The anywhere Cluster's conditions, with EKS Anywhere's reasons and messages (pure)."""

from __future__ import annotations

from typing import Any

from anywhere.api import ClusterConfig, check_config
from anywhere.controllers.cluster_status import CniState, set_conditions
from anywhere.controllers.conditions import get_condition


def kcp(
    replicas: int, updated: int, ready: int, *, initialized: bool = True, generation: int = 1
) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "generation": generation},
        "status": {
            "observedGeneration": 1,
            "initialized": initialized,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "conditions": [{"type": "Ready", "status": "True" if ready == replicas else "False"}],
        },
    }


def md(name: str, replicas: int, updated: int, ready: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def conditions(
    config: ClusterConfig, control_plane: Any, deployments: list[Any], cni: CniState
) -> dict[str, Any]:
    assert check_config(config) == []
    status: dict[str, Any] = {}
    set_conditions(status, config.cluster, control_plane, deployments, cni)
    return {c["type"]: c for c in status["conditions"]}


def test_nothing_yet(sim_config: ClusterConfig) -> None:
    got = conditions(sim_config, None, [], CniState(configured=False))
    assert got["ControlPlaneInitialized"]["reason"] == "ControlPlaneInitializationInProgress"
    assert (
        got["ControlPlaneInitialized"]["message"] == "The first control plane instance is not available yet"
    )
    assert got["WorkersReady"]["reason"] == "ControlPlaneNotInitialized"
    assert got["Ready"]["status"] == "False"


def test_control_plane_upgrading_message(sim_config: ClusterConfig) -> None:
    got = conditions(sim_config, kcp(4, 2, 4), [md("demo-md-0", 1, 1, 1)], CniState(configured=True))
    assert got["ControlPlaneReady"]["reason"] == "RollingUpgradeInProgress"
    assert (
        got["ControlPlaneReady"]["message"]
        == "Control plane nodes not up-to-date yet, 2 upgrading (2 up to date)"
    )
    assert got["Ready"]["message"] == got["ControlPlaneReady"]["message"]


def test_workers_scaling_up_message(sim_config: ClusterConfig) -> None:
    sim_config.cluster.spec.worker_node_group_configurations[0].count = 3  # type: ignore[index]
    got = conditions(sim_config, kcp(3, 3, 3), [md("demo-md-0", 2, 2, 2)], CniState(configured=True))
    assert got["ControlPlaneReady"]["status"] == "True"
    assert got["WorkersReady"]["reason"] == "ScalingUp"
    assert got["WorkersReady"]["message"] == "Scaling up worker nodes, 3 expected (2 actual)"


def test_all_ready(sim_config: ClusterConfig) -> None:
    count = sim_config.cluster.spec.worker_node_group_configurations[0].count or 0  # type: ignore[index]
    got = conditions(
        sim_config, kcp(3, 3, 3), [md("demo-md-0", count, count, count)], CniState(configured=True)
    )
    assert {k: v["status"] for k, v in got.items()} == dict.fromkeys(got, "True")


def test_skip_upgrade_leaves_cni_out_of_ready(sim_config: ClusterConfig) -> None:
    count = sim_config.cluster.spec.worker_node_group_configurations[0].count or 0  # type: ignore[index]
    got = conditions(
        sim_config,
        kcp(3, 3, 3),
        [md("demo-md-0", count, count, count)],
        CniState(configured=True, skip_upgrade=True),
    )
    assert got["DefaultCNIConfigured"]["reason"] == "SkipUpgradesForDefaultCNIConfigured"
    assert got["Ready"]["status"] == "True"


def test_initialized_is_never_reverted(sim_config: ClusterConfig) -> None:
    assert check_config(sim_config) == []
    status: dict[str, Any] = {}
    set_conditions(status, sim_config.cluster, kcp(1, 1, 1), [], CniState(configured=True))
    set_conditions(status, sim_config.cluster, None, [], CniState(configured=True))
    condition = get_condition({"status": status}, "ControlPlaneInitialized")
    assert condition is not None
    assert condition["status"] == "True"
