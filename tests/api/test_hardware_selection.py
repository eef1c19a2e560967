"""Hardware selection as CAPT does it (label selectors, required terms ORed, preferred terms weighted),
the hardware a cluster needs (with spares for rolling upgrades), and shortages found by an exact
assignment of hardware to machine groups."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anywhere.api.config import ClusterConfig
from anywhere.api.generate import generate_config
from anywhere.api.infra.hardware import (
    Requirement,
    affinity_of,
    affinity_score,
    describe_affinity,
    hardware_requirements,
    pick_hardware,
    selector_matches,
    shortages,
)
from anywhere.api.v1alpha1._base import Ref
from anywhere.api.v1alpha1.cluster import (
    AutoScalingConfiguration,
    ControlPlaneRollingUpdateParams,
    ControlPlaneUpgradeRolloutStrategy,
    WorkerNodeGroupConfiguration,
    WorkerNodesRollingUpdateParams,
    WorkerNodesUpgradeRolloutStrategy,
)
from anywhere.api.v1alpha1.tinkerbell import TinkerbellMachineConfig, TinkerbellMachineConfigSpec

CP = {"type": "cp"}
WORKER = {"type": "worker", "rack": "r1"}


def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        out["values"] = list(values)
    return out


def selector_of(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"required": [{"labelSelector": {"matchLabels": dict(labels)}}]}


# ---- label selectors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (None, {}, True),
        ({}, WORKER, True),
        ({"matchLabels": {}}, WORKER, True),
        ({"matchLabels": {"type": "worker"}}, WORKER, True),
        ({"matchLabels": {"type": "worker", "rack": "r2"}}, WORKER, False),
        ({"matchLabels": {"zone": ""}}, WORKER, False),
        ({"matchExpressions": [expression("type", "In", "cp", "worker")]}, WORKER, True),
        ({"matchExpressions": [expression("type", "In", "cp")]}, WORKER, False),
        ({"matchExpressions": [expression("zone", "In", "a")]}, WORKER, False),
        ({"matchExpressions": [expression("type", "NotIn", "cp")]}, WORKER, True),
        ({"matchExpressions": [expression("type", "NotIn", "worker")]}, WORKER, False),
        ({"matchExpressions": [expression("zone", "NotIn", "a")]}, WORKER, True),  # absent: not in
        ({"matchExpressions": [expression("rack", "Exists")]}, WORKER, True),
        ({"matchExpressions": [expression("zone", "Exists")]}, WORKER, False),
        ({"matchExpressions": [expression("zone", "DoesNotExist")]}, WORKER, True),
        ({"matchExpressions": [expression("rack", "DoesNotExist")]}, WORKER, False),
        ({"matchExpressions": [expression("rack", "Near", "r1")]}, WORKER, False),  # unknown operator
        (
            {"matchLabels": {"type": "worker"}, "matchExpressions": [expression("rack", "In", "r2")]},
            WORKER,
            False,
        ),
    ],
)
def test_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(selector, labels) is matches


# ---- affinity -----------------------------------------------------------------------------------

AFFINITY = {
    "required": [
        {"labelSelector": {"matchLabels": {"type": "cp"}}},
        {"labelSelector": {"matchExpressions": [expression("type", "In", "cp2")]}},
    ],
    "preferred": [
        {"weight": 50, "hardwareAffinityTerm": {"labelSelector": {"matchLabels": {"rack": "r1"}}}},
        {"weight": 20, "hardwareAffinityTerm": {"labelSelector": {"matchLabels": {"disk": "nvme"}}}},
    ],
}


def test_affinity_score() -> None:
    assert affinity_score(AFFINITY, {"type": "cp"}) == 0
    assert affinity_score(AFFINITY, {"type": "cp2", "rack": "r1"}) == 50  # required terms are ORed
    assert affinity_score(AFFINITY, {"type": "cp", "rack": "r1", "disk": "nvme"}) == 70
    assert affinity_score(AFFINITY, {"type": "worker", "rack": "r1"}) is None
    assert affinity_score({}, {"anything": "x"}) == 0  # no required term: any hardware
    only_preferred = {"preferred": AFFINITY["preferred"]}
    assert affinity_score(only_preferred, {"rack": "r1"}) == 50


def test_pick_hardware() -> None:
    candidates = [
        ("hw-c", {"type": "cp"}),
        ("hw-b", {"type": "cp", "disk": "nvme"}),
        ("hw-a", {"type": "cp2", "rack": "r1"}),
        ("hw-0", {"type": "worker", "rack": "r1", "disk": "nvme"}),
    ]
    assert pick_hardware(AFFINITY, candidates) == "hw-a"  # weight 50 beats 20
    assert pick_hardware(AFFINITY, candidates[:2]) == "hw-b"
    assert pick_hardware(AFFINITY, [("hw-z", {"type": "cp"}), ("hw-y", {"type": "cp"})]) == "hw-y"  # by name
    assert pick_hardware(AFFINITY, candidates[3:]) is None
    assert pick_hardware(AFFINITY, []) is None


def test_affinity_of_a_machine_config() -> None:
    assert affinity_of({"hardwareSelector": {"type": "cp"}}) == {
        "required": [{"labelSelector": {"matchLabels": {"type": "cp"}}}]
    }
    copied = affinity_of({"hardwareAffinity": AFFINITY})
    assert copied == AFFINITY
    assert copied is not AFFINITY
    assert copied["required"] is not AFFINITY["required"]
    assert affinity_of({}) == {}
    spec = TinkerbellMachineConfigSpec(hardware_selector={"type": "cp"}).to_dict()
    assert affinity_score(affinity_of(spec), {"type": "cp"}) == 0


def test_describe_affinity() -> None:
    assert describe_affinity(selector_of({"type": "cp"})) == "type=cp"
    assert describe_affinity(selector_of({"type": "cp", "rack": "r1"})) == "rack=r1,type=cp"
    one_of = {"required": [{"labelSelector": {"matchExpressions": [expression("type", "In", "cp", "cp2")]}}]}
    assert describe_affinity(one_of) == "type In (cp,cp2)"
    exists = {"required": [{"labelSelector": {"matchExpressions": [expression("gpu", "Exists")]}}]}
    assert describe_affinity(exists) == "gpu Exists"
    assert describe_affinity(AFFINITY) == (
        "type=cp or type In (cp2); preferring rack=r1 (weight 50), disk=nvme (weight 20)"
    )
    assert describe_affinity({}) == "any hardware"
    assert describe_affinity({"required": [{"labelSelector": {}}]}) == "any hardware"


# ---- requirements -------------------------------------------------------------------------------


def config(*, control_plane: int = 3, workers: int = 2) -> ClusterConfig:
    generated = generate_config("c1", "tinkerbell")
    spec = generated.cluster.spec
    assert spec.control_plane_configuration is not None
    assert spec.worker_node_group_configurations
    spec.control_plane_configuration.count = control_plane
    spec.worker_node_group_configurations[0].count = workers
    return generated


def test_requirements_of_a_cluster() -> None:
    requirements = hardware_requirements(config(), rolling_spare=False)
    assert requirements == [
        Requirement("control plane", "c1-cp", selector_of({"type": "cp"}), 3),
        Requirement("worker node group md-0", "c1", selector_of({"type": "worker"}), 2),
    ]
    with_spares = hardware_requirements(config(), rolling_spare=True)
    assert [(r.count, r.spare, r.total) for r in with_spares] == [(3, 1, 4), (2, 1, 3)]


def test_spares_follow_the_rollout_strategies() -> None:
    cfg = config()
    spec = cfg.cluster.spec
    assert spec.control_plane_configuration is not None
    spec.control_plane_configuration.upgrade_rollout_strategy = ControlPlaneUpgradeRolloutStrategy(
        type="RollingUpdate", rolling_update=ControlPlaneRollingUpdateParams(max_surge=0)
    )
    groups = spec.worker_node_group_configurations
    assert groups is not None
    groups[0].upgrade_rollout_strategy = WorkerNodesUpgradeRolloutStrategy(
        type="RollingUpdate", rolling_update=WorkerNodesRollingUpdateParams(max_surge=2, max_unavailable=0)
    )
    ref = Ref(kind="TinkerbellMachineConfig", name="c1")
    groups.append(
        WorkerNodeGroupConfiguration(name="md-1", count=0, machine_group_ref=ref)  # no machines: no spare
    )
    groups.append(
        WorkerNodeGroupConfiguration(
            name="md-2",
            machine_group_ref=ref,
            autoscaling_configuration=AutoScalingConfiguration(min_count=2, max_count=5),
        )
    )
    groups.append(  # not a machine config of the configuration: nothing to count
        WorkerNodeGroupConfiguration(name="md-3", count=4, machine_group_ref=Ref(kind="X", name="c1"))
    )
    requirements = hardware_requirements(cfg, rolling_spare=True)
    assert [(r.role, r.count, r.spare) for r in requirements] == [
        ("control plane", 3, 0),
        ("worker node group md-0", 2, 2),
        ("worker node group md-1", 0, 0),
        ("worker node group md-2", 2, 1),
    ]
    spec.control_plane_configuration.upgrade_rollout_strategy = ControlPlaneUpgradeRolloutStrategy(
        type="InPlace"
    )
    groups[0].upgrade_rollout_strategy = WorkerNodesUpgradeRolloutStrategy(type="InPlace")
    assert [r.spare for r in hardware_requirements(cfg, rolling_spare=True)][:2] == [0, 0]


def test_machine_configs_with_affinity() -> None:
    cfg = config(workers=1)
    machine = cfg.get("TinkerbellMachineConfig", "c1")
    assert isinstance(machine, TinkerbellMachineConfig)
    machine.spec.hardware_selector = None
    machine.spec.hardware_affinity = TinkerbellMachineConfigSpec.model_validate(
        {"hardwareAffinity": AFFINITY}, by_name=False
    ).hardware_affinity
    [_, worker] = hardware_requirements(cfg, rolling_spare=False)
    assert worker.affinity == AFFINITY


# ---- shortages ----------------------------------------------------------------------------------


def hardware(count: int, labels: Mapping[str, str], prefix: str = "hw") -> list[tuple[str, dict[str, str]]]:
    return [(f"{prefix}-{i}", dict(labels)) for i in range(count)]


def test_enough_hardware() -> None:
    requirements = hardware_requirements(config(), rolling_spare=True)
    pool = hardware(4, CP, "cp") + hardware(3, {"type": "worker"}, "wk") + hardware(2, {"type": "spare"})
    assert shortages(requirements, pool) == []


def test_shortage_messages() -> None:
    requirements = hardware_requirements(config(control_plane=1, workers=2), rolling_spare=True)
    pool = hardware(1, CP, "cp") + hardware(1, {"type": "worker"}, "wk")
    assert shortages(requirements, pool) == [
        "control plane (TinkerbellMachineConfig c1-cp, type=cp): needs 2 (1 + 1 spare for a rolling "
        "upgrade), 1 available",
        "worker node group md-0 (TinkerbellMachineConfig c1, type=worker): needs 3 (2 + 1 spare for a "
        "rolling upgrade), 1 available",
    ]
    requirements = hardware_requirements(config(control_plane=3), rolling_spare=False)
    assert shortages(requirements, hardware(2, {"type": "worker"})) == [
        "control plane (TinkerbellMachineConfig c1-cp, type=cp): needs 3, 0 available"
    ]


def test_groups_with_the_same_selector_are_counted_together() -> None:
    cp = Requirement("control plane", "c1-cp", selector_of(CP), 1)
    md0 = Requirement("worker node group md-0", "c1", selector_of({"type": "node"}), 2, 1)
    md1 = Requirement("worker node group md-1", "c1-b", selector_of({"type": "node"}), 1)
    pool = hardware(1, CP, "cp") + hardware(3, {"type": "node"})
    assert shortages([cp, md0, md1], pool) == [
        "worker node group md-0 and worker node group md-1 (TinkerbellMachineConfigs c1, c1-b, type=node; "
        "counted together: they select the same hardware): needs 4 (3 + 1 spare for a rolling upgrade), "
        "3 available"
    ]
    assert shortages([cp, md0, md1], [*pool, ("hw-9", {"type": "node"})]) == []


def test_overlapping_selectors_share_hardware_without_double_counting() -> None:
    """Hardware matching two groups serves one machine; the groups that can only use it get it."""
    any_node = {
        "required": [{"labelSelector": {"matchExpressions": [expression("type", "In", "cp", "node")]}}]
    }
    flexible = Requirement("worker node group md-0", "c1", any_node, 2)
    strict = Requirement("control plane", "c1-cp", selector_of(CP), 2)
    pool = hardware(2, CP, "cp") + hardware(1, {"type": "node"})
    [message] = shortages([flexible, strict], pool)
    assert message == (
        "worker node group md-0 (TinkerbellMachineConfig c1, type In (cp,node)): needs 2, 1 available "
        "(3 match, 2 of them needed by other machine groups)"
    )
    assert shortages([flexible, strict], [*pool, ("zz", {"type": "node"})]) == []


def feasible(demands: list[int], eligible: list[set[int]], count: int) -> bool:
    """Brute force: some assignment of each piece of hardware to one group (or none) serves all."""
    for assignment in itertools.product(range(-1, len(demands)), repeat=count):
        served = [0] * len(demands)
        ok = True
        for piece, group in enumerate(assignment):
            if group >= 0:
                if piece not in eligible[group]:
                    ok = False
                    break
                served[group] += 1
        if ok and all(s >= d for s, d in zip(served, demands, strict=True)):
            return True
    return False


LABEL_VALUES = ("a", "b", "c")


@given(
    demands=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    selectors=st.lists(st.sets(st.sampled_from(LABEL_VALUES), min_size=1), min_size=3, max_size=3),
    pieces=st.lists(st.sampled_from(LABEL_VALUES), max_size=6),
)
def test_a_shortage_is_reported_only_when_no_assignment_serves_every_group(
    demands: list[int], selectors: list[set[str]], pieces: list[str]
) -> None:
    requirements = [
        Requirement(
            f"group {i}",
            f"m{i}",
            {"required": [{"labelSelector": {"matchExpressions": [expression("t", "In", *sorted(values))]}}]},
            demand,
        )
        for i, (demand, values) in enumerate(zip(demands, selectors, strict=False))
    ]
    pool = [(f"hw-{i}", {"t": value}) for i, value in enumerate(pieces)]
    # Groups with the same selector are one group of their summed demand.
    merged: dict[frozenset[str], int] = {}
    for demand, values in zip(demands, selectors, strict=False):
        merged[frozenset(values)] = merged.get(frozenset(values), 0) + demand
    eligible = [{i for i, value in enumerate(pieces) if value in values} for values in merged]
    assert (shortages(requirements, pool) == []) == feasible(list(merged.values()), eligible, len(pieces))
