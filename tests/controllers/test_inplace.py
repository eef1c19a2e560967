"""In-place upgrades, the pure parts: the Machine controller's steps, the KubeadmControlPlane
planner's InPlace rules (and a simulated control plane upgraded in place), the MachineDeployment's
replica arithmetic and conditions, and the Cluster's reasons. The controllers together, against
real APIs, are in ``test_inplace_upgrade.py``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from anywhere.api import ClusterConfig
from anywhere.controllers import inplace
from anywhere.controllers.cluster_status import CniState, set_conditions
from anywhere.controllers.conditions import get_condition, set_condition
from anywhere.controllers.kcp_plan import (
    Action,
    Desired,
    Done,
    RecordInPlace,
    RemoveEtcdMember,
    ScaleUp,
    UpgradeInPlace,
    Wait,
    plan,
)
from anywhere.controllers.machinedeployment import SetView, deployment_status, plan_in_place
from anywhere.providers.sim.etcd import etcd_view
from tests.controllers.test_kcp_plan import NEW, OLD, Sim, etcd, machine

Obj = dict[str, Any]
NEEDED, TO = inplace.UPGRADE_NEEDED_ANNOTATION, inplace.UPGRADE_TO_ANNOTATION


# -- the contract ------------------------------------------------------------------------------------------


def a_machine(
    annotations: dict[str, str] | None = None, upgraded: bool | None = None, version: str = OLD
) -> Obj:
    obj: Obj = {
        "metadata": {"name": "m1", "annotations": dict(annotations or {})},
        "spec": {"version": version},
        "status": {},
    }
    if upgraded is not None:
        set_condition(obj["status"], inplace.IN_PLACE_UPGRADED, upgraded, "" if upgraded else "Upgrading")
    return obj


def a_node(version: str = OLD, *, cordoned: bool = False, ready: bool = True) -> Obj:
    return {
        "metadata": {"name": "m1"},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "nodeInfo": {"kubeletVersion": version},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_versions_match_with_or_without_v_and_build_suffix() -> None:
    assert inplace.version_matches("v1.34.1", "v1.34.1")
    assert inplace.version_matches("v1.34.1-eks-1-34-3", "v1.34.1")
    assert inplace.version_matches("1.34.1", "v1.34.1")
    assert not inplace.version_matches("v1.34.10", "v1.34.1")
    assert not inplace.version_matches("", "v1.34.1")
    assert inplace.version_key("v1.34.1-eks-1-34-3") == (1, 34, 1)
    assert inplace.version_key("v1.9.0") < inplace.version_key("v1.10.0")


def test_the_agent_runs_the_requested_version_else_the_machine_spec() -> None:
    assert inplace.kubelet_version(a_machine()) == OLD
    assert inplace.kubelet_version(a_machine({NEEDED: NEW})) == OLD  # not asked yet: drained first
    assert inplace.kubelet_version(a_machine({NEEDED: NEW, TO: NEW})) == NEW


def test_upgraded_needs_the_agent_asked_for_this_version_and_the_condition() -> None:
    assert not inplace.upgraded(a_machine())
    assert not inplace.upgraded(a_machine({NEEDED: NEW}, upgraded=True))  # True from an earlier one
    assert not inplace.upgraded(a_machine({NEEDED: NEW, TO: NEW}, upgraded=False))
    assert not inplace.upgraded(a_machine({NEEDED: NEW, TO: OLD}, upgraded=True))
    assert inplace.upgraded(a_machine({NEEDED: NEW, TO: NEW}, upgraded=True))


def step(machine: Obj, node: Obj | None) -> tuple[str, str] | None:
    found = inplace.next_step(machine, node)
    return None if found is None else (found.action, found.reason)


def test_the_steps_of_one_machine() -> None:
    asked = {NEEDED: NEW}
    assert step(a_machine(), a_node()) is None
    assert step(a_machine(asked), None) == ("wait", inplace.CORDONING)
    assert step(a_machine(asked), a_node()) == ("drain", inplace.CORDONING)
    assert step(a_machine(asked), a_node(cordoned=True)) == ("drain", inplace.DRAINING)
    both = {NEEDED: NEW, TO: NEW}
    assert step(a_machine(both), a_node(cordoned=True)) == ("wait", inplace.UPGRADING)
    assert step(a_machine(both), a_node(NEW, cordoned=True, ready=False)) == ("wait", inplace.UPGRADING)
    assert step(a_machine(both), a_node(NEW, cordoned=True)) == ("uncordon", inplace.UNCORDONING)
    assert step(a_machine(both), a_node(NEW)) == ("done", "")
    # Asked for another version meanwhile: drained again, then the agent asked again.
    again = {NEEDED: "v1.35.0", TO: NEW}
    assert step(a_machine(again), a_node(NEW)) == ("drain", inplace.CORDONING)
    message = inplace.next_step(a_machine(both), a_node(cordoned=True))
    assert message is not None
    assert message.message == f"Waiting for Node m1 to run kubelet {NEW} (kubelet {OLD})"


# -- the control plane planner -------------------------------------------------------------------------------


def in_place(replicas: int = 3, version: str = NEW) -> Desired:
    return Desired(replicas=replicas, version=version, spec_hash="h1", in_place=True)


THREE = [machine("a", 1, OLD), machine("b", 2, OLD), machine("c", 3, OLD)]
VOTERS = etcd("a", "b", "c")


def test_outdated_machines_are_upgraded_in_place_oldest_first_never_replaced() -> None:
    action = plan(in_place(), THREE, VOTERS)
    assert isinstance(action, UpgradeInPlace)
    assert (action.machine, action.version) == ("a", NEW)


def test_a_spec_hash_change_alone_is_applied_in_place_too() -> None:
    machines = [replace(m, version=NEW, spec_hash="h0") for m in THREE]
    action = plan(in_place(), machines, VOTERS)
    assert isinstance(action, UpgradeInPlace)
    assert action.machine == "a"


def test_nothing_else_happens_while_a_machine_is_upgraded() -> None:
    machines = [replace(THREE[0], upgrading_to=NEW), *THREE[1:]]
    assert plan(in_place(), machines, VOTERS) == Wait(f"Upgrading machine a in place to {NEW}")
    # Even with a machine unhealthy meanwhile (a real kubelet restarting).
    sick = [replace(THREE[0], upgrading_to=NEW, healthy=False), *THREE[1:]]
    assert plan(in_place(), sick, VOTERS) == Wait(f"Upgrading machine a in place to {NEW}")


def test_a_finished_upgrade_is_recorded_then_the_next_goes() -> None:
    machines = [replace(THREE[0], upgrading_to=NEW, upgraded=True), *THREE[1:]]
    assert isinstance(plan(in_place(), machines, VOTERS), RecordInPlace)
    recorded = [replace(THREE[0], version=NEW), *THREE[1:]]
    action = plan(in_place(), recorded, VOTERS)
    assert isinstance(action, UpgradeInPlace)
    assert action.machine == "b"


def test_an_upgrade_for_an_older_spec_is_re_aimed() -> None:
    machines = [replace(THREE[0], upgrading_to="v1.34.0", upgraded=True), *THREE[1:]]
    action = plan(in_place(), machines, VOTERS)
    assert action == UpgradeInPlace(
        "a", NEW, f"Upgrading machine a in place to {NEW} (it was asked for v1.34.0)"
    )


def test_preflight_gates_the_next_upgrade() -> None:
    assert plan(in_place(), THREE, etcd("a", "b", "c", down=("b",))) == Wait(
        "Preflight failed: etcd member b unhealthy"
    )
    unhealthy = [THREE[0], replace(THREE[1], healthy=False), THREE[2]]
    assert isinstance(plan(in_place(), unhealthy, VOTERS), Wait)


def test_scale_down_removes_outdated_before_upgrading_and_scale_up_waits() -> None:
    removal = plan(in_place(replicas=1), THREE, etcd("a", "b", "c", leader="c"))
    assert isinstance(removal, RemoveEtcdMember)
    assert removal.machine == "a"
    two = THREE[:2]
    assert isinstance(plan(in_place(replicas=3), two, etcd("a", "b")), UpgradeInPlace)
    upgraded = [replace(m, version=NEW) for m in two]
    assert isinstance(plan(in_place(replicas=3), upgraded, etcd("a", "b")), ScaleUp)


def test_a_rolling_update_does_not_wait_on_an_unfinished_in_place_upgrade() -> None:
    rolling = Desired(replicas=3, version=NEW, spec_hash="h1")
    machines = [replace(THREE[0], upgrading_to=NEW), *THREE[1:]]
    assert isinstance(plan(rolling, machines, VOTERS), ScaleUp)


class InPlaceSim(Sim):
    """The planner's simulation, with machines upgraded in place: an upgrade asked for finishes at
    the next tick (the Machine controller's steps), and a recorded one takes the desired version."""

    def apply(self, d: Desired, action: Action) -> None:
        match action:
            case UpgradeInPlace(machine=name, version=version):
                self.log.append(action)
                self.machines[name] = replace(self.machines[name], upgrading_to=version, upgraded=False)
            case RecordInPlace(machine=name):
                self.log.append(action)
                self.machines[name] = replace(
                    self.machines[name],
                    version=d.version,
                    spec_hash=d.spec_hash,
                    upgrading_to="",
                    upgraded=False,
                )
            case _:
                super().apply(d, action)

    def tick(self) -> None:
        super().tick()
        for name, m in list(self.machines.items()):
            if m.upgrading_to and not m.upgraded:
                self.machines[name] = replace(m, upgraded=True)


def test_simulated_in_place_upgrade_keeps_every_machine() -> None:
    sim = InPlaceSim()
    sim.run(Desired(replicas=3, version=OLD, spec_hash="h1"))
    before = sorted(sim.machines)
    sim.log.clear()
    d = in_place()
    sim.run(d)
    assert sorted(sim.machines) == before  # nothing made, nothing deleted
    assert all(m.version == NEW and not m.upgrading_to for m in sim.machines.values())
    assert len(sim.etcd.voters) == 3
    steps = [type(a).__name__ for a in sim.log if not isinstance(a, Wait)]
    assert steps == ["UpgradeInPlace", "RecordInPlace"] * 3
    assert [a.machine for a in sim.log if isinstance(a, UpgradeInPlace)] == before  # oldest first
    assert isinstance(plan(d, sim.machines.values(), etcd_view(sim.etcd)), Done)


# -- the machine deployment ---------------------------------------------------------------------------------


def test_in_place_replicas_keep_old_sets_whole_and_give_the_rest_to_the_new_one() -> None:
    sets = [SetView("old", False, 3, 0, 1.0), SetView("new", True, 0, 0, 2.0)]
    assert plan_in_place(3, sets) == {"old": 3, "new": 0}
    # One machine moved: the old set has 2, the new one its 1.
    moved = [SetView("old", False, 2, 0, 1.0), SetView("new", True, 1, 0, 2.0)]
    assert plan_in_place(3, moved) == {"old": 2, "new": 1}
    # Scaling up during the upgrade: the new set makes the machines, at the new version.
    assert plan_in_place(5, sets) == {"old": 3, "new": 2}
    # Scaling down: outdated machines go first, oldest sets first.
    two_olds = [SetView("older", False, 2, 0, 0.0), *sets]
    assert plan_in_place(3, two_olds) == {"older": 0, "old": 3, "new": 0}
    assert plan_in_place(1, two_olds) == {"older": 0, "old": 1, "new": 0}
    assert plan_in_place(0, two_olds) == {"older": 0, "old": 0, "new": 0}
    with pytest.raises(ValueError, match="exactly one new MachineSet"):
        plan_in_place(1, [SetView("old", False, 1, 0)])


def test_deployment_status_says_how_far_an_in_place_rollout_is() -> None:
    md: Obj = {"metadata": {"name": "md", "generation": 1}, "spec": {"replicas": 2}, "status": {}}
    going = deployment_status(
        md, [], None, in_place=(inplace.IN_PROGRESS_REASON, "2 machines not up to date")
    )
    condition = get_condition({"status": going}, "MachinesSpecUpToDate")
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", inplace.IN_PROGRESS_REASON)
    done = deployment_status({**md, "status": going}, [], None, in_place=("", ""))
    assert (get_condition({"status": done}, "MachinesSpecUpToDate") or {})["status"] == "True"
    rolling = deployment_status({**md, "status": done}, [], None)
    assert get_condition({"status": rolling}, "MachinesSpecUpToDate") is None


# -- the anywhere Cluster's reasons -----------------------------------------------------------------------


def test_workers_upgraded_in_place_say_so(sim_config: ClusterConfig) -> None:
    kcp: Obj = {
        "metadata": {"name": "demo", "generation": 1},
        "spec": {"rolloutStrategy": {"type": "InPlace"}},
        "status": {
            "observedGeneration": 1,
            "initialized": True,
            "replicas": 3,
            "updatedReplicas": 1,
            "readyReplicas": 3,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    md: Obj = {
        "metadata": {"name": "demo-md-0", "generation": 1},
        "spec": {"strategy": {"type": "InPlace"}},
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0, "readyReplicas": 1},
    }
    status: Obj = {}
    set_conditions(status, sim_config.cluster, kcp, [md], CniState(configured=True))
    control_plane = get_condition({"status": status}, "ControlPlaneReady") or {}
    workers = get_condition({"status": status}, "WorkersReady") or {}
    assert (control_plane["reason"], control_plane["message"]) == (
        "InPlaceUpgradeInProgress",
        "Control plane nodes not up-to-date yet, 2 upgrading (1 up to date)",
    )
    assert (workers["reason"], workers["message"]) == (
        "InPlaceUpgradeInProgress",
        "Worker nodes not up-to-date yet, 1 upgrading (0 up to date)",
    )
    md["spec"]["strategy"]["type"] = "RollingUpdate"
    status = {}
    set_conditions(status, sim_config.cluster, kcp, [md], CniState(configured=True))
    assert (get_condition({"status": status}, "WorkersReady") or {})["reason"] == "RollingUpgradeInProgress"
