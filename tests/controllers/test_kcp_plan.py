"""The KubeadmControlPlane planner: each rule, and simulated rollouts applied to an EtcdCluster
(quorum never lost, never more than replicas + maxSurge machines)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from anywhere.controllers.etcd import EtcdView
from anywhere.controllers.kcp_plan import (
    Action,
    DeleteMachine,
    Desired,
    Done,
    Init,
    MachineView,
    MoveLeader,
    RemoveEtcdMember,
    ScaleUp,
    Wait,
    max_surge_from,
    plan,
)
from anywhere.providers.sim.etcd import EtcdCluster, etcd_view

OLD, NEW = "v1.33.4", "v1.34.1"


def desired(replicas: int = 3, version: str = NEW, max_surge: int = 1, spec_hash: str = "h1") -> Desired:
    return Desired(replicas=replicas, version=version, spec_hash=spec_hash, max_surge=max_surge)


def machine(name: str, created: int, version: str = NEW, **kwargs: object) -> MachineView:
    return MachineView(name=name, version=version, spec_hash="h1", created=created, **kwargs)  # type: ignore[arg-type]


def etcd(
    *names: str, leader: str | None = None, down: tuple[str, ...] = (), learners: tuple[str, ...] = ()
) -> EtcdView:
    return EtcdView(
        members={n: n not in down for n in names},
        learners=frozenset(learners),
        leader=leader if leader is not None else (names[0] if names else None),
    )


THREE = [machine("a", 1), machine("b", 2), machine("c", 3)]
THREE_OLD = [replace(m, version=OLD) for m in THREE]


# -- gating: one machine at a time, preflight ------------------------------------------------------


def test_init_when_no_machines() -> None:
    assert isinstance(plan(desired(), [], EtcdView()), Init)


def test_done_when_converged() -> None:
    action = plan(desired(), THREE, etcd("a", "b", "c"))
    assert action == Done(f"Control plane has 3 up-to-date replicas at {NEW}")


def test_waits_while_a_machine_is_deleted() -> None:
    machines = [*THREE, machine("d", 4, deleting=True)]
    assert plan(desired(), machines, etcd("a", "b", "c")) == Wait("Waiting for machine d to be deleted")


def test_waits_while_a_machine_is_created() -> None:
    machines = [machine("a", 1), machine("b", 2, healthy=False)]
    action = plan(desired(), machines, etcd("a", "b", down=("b",), learners=("b",)))
    assert action == Wait("Waiting for machine b to become healthy")


def test_waits_for_learner_promotion() -> None:
    machines = [machine("a", 1), machine("b", 2)]
    assert plan(desired(), machines, etcd("a", "b", learners=("b",))) == Wait(
        "Waiting for etcd member b to be promoted"
    )


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_unhealthy_etcd_member_blocks_every_change(replicas: int) -> None:
    action = plan(desired(replicas=replicas), THREE, etcd("a", "b", "c", down=("c",)))
    assert action == Wait("Preflight failed: etcd member c unhealthy")


def test_unhealthy_etcd_blocks_rollout() -> None:
    action = plan(desired(), THREE_OLD, etcd("a", "b", "c", down=("b",)))
    assert isinstance(action, Wait)


def test_no_quorum_blocks() -> None:
    view = EtcdView(members={"a": False, "b": False, "c": True}, leader=None)
    assert not view.has_quorum
    assert isinstance(plan(desired(), THREE, view), Wait)


def test_machine_without_member_and_stray_member_block() -> None:
    machines = [machine("a", 1), machine("b", 2, healthy=False)]
    assert plan(desired(), machines, etcd("a")) == Wait("Waiting for machine b to become healthy")
    assert plan(desired(), THREE[:2], etcd("a", "b", "z")) == Wait(
        "Preflight failed: etcd member z has no machine"
    )


# -- plain scaling ----------------------------------------------------------------------------------


def test_scale_up_to_replicas() -> None:
    action = plan(desired(replicas=3), [machine("a", 1)], etcd("a"))
    assert action == ScaleUp("Scaling up control plane to 3 replicas (1 current)")


def test_scale_down_removes_oldest_member_then_machine() -> None:
    view = etcd("a", "b", "c", leader="c")
    action = plan(desired(replicas=1), THREE, view)
    assert isinstance(action, RemoveEtcdMember)
    assert action.machine == "a"
    assert "Scaling down control plane to 1 replicas (3 current)" in action.reason
    # Member gone, machine still there: delete it.
    assert plan(desired(replicas=1), THREE, etcd("b", "c", leader="c")) == DeleteMachine(
        "a", "Deleting machine a: its etcd member has been removed"
    )


def test_never_below_one_machine() -> None:
    assert isinstance(plan(desired(replicas=0), [machine("a", 1)], etcd("a")), Done)


def test_scale_down_two_to_one_keeps_quorum() -> None:
    action = plan(desired(replicas=1), THREE[:2], etcd("a", "b", leader="b"))
    assert isinstance(action, RemoveEtcdMember)
    assert action.machine == "a"


# -- leader handling --------------------------------------------------------------------------------


def test_moves_leader_to_newest_up_to_date_machine_first() -> None:
    machines = [*THREE_OLD, machine("d", 4)]
    action = plan(desired(), machines, etcd("a", "b", "c", "d", leader="a"))
    assert isinstance(action, MoveLeader)
    assert (action.source, action.target) == ("a", "d")
    assert "moving etcd leadership from a to d" in action.reason


def test_moves_leader_to_newest_other_when_none_up_to_date() -> None:
    action = plan(desired(max_surge=0), THREE_OLD, etcd("a", "b", "c", leader="a"))
    assert isinstance(action, MoveLeader)
    assert (action.source, action.target) == ("a", "c")


# -- rolling updates --------------------------------------------------------------------------------


def test_surge_one_scales_up_first() -> None:
    action = plan(desired(), THREE_OLD, etcd("a", "b", "c"))
    assert action == ScaleUp(
        f"Rolling out {NEW}: 3 of 3 machines not up to date (0 up to date); creating a machine"
    )


def test_surge_one_then_removes_oldest_outdated() -> None:
    machines = [*THREE_OLD, machine("d", 4)]
    action = plan(desired(), machines, etcd("a", "b", "c", "d", leader="d"))
    assert isinstance(action, RemoveEtcdMember)
    assert action.machine == "a"
    assert f"Rolling out {NEW}: 3 of 4 machines not up to date (1 up to date)" in action.reason


def test_surge_zero_scales_down_first_then_up() -> None:
    action = plan(desired(max_surge=0), THREE_OLD, etcd("a", "b", "c", leader="c"))
    assert isinstance(action, RemoveEtcdMember)
    assert action.machine == "a"
    action = plan(desired(max_surge=0), THREE_OLD[1:], etcd("b", "c", leader="c"))
    assert isinstance(action, ScaleUp)


@pytest.mark.parametrize("replicas", [1, 2])
def test_surge_zero_below_three_replicas_behaves_as_surge_one(replicas: int) -> None:
    machines = THREE_OLD[:replicas]
    action = plan(desired(replicas=replicas, max_surge=0), machines, etcd(*(m.name for m in machines)))
    assert isinstance(action, ScaleUp)


def test_outdated_removed_before_older_up_to_date() -> None:
    machines = [machine("a", 1), machine("b", 2, version=OLD), machine("c", 3), machine("d", 4)]
    action = plan(desired(), machines, etcd("a", "b", "c", "d", leader="a"))
    assert isinstance(action, RemoveEtcdMember)
    assert action.machine == "b"


def test_spec_hash_change_alone_rolls_out() -> None:
    action = plan(desired(spec_hash="h2"), THREE, etcd("a", "b", "c"))
    assert isinstance(action, ScaleUp)
    assert "3 of 3 machines not up to date" in action.reason


# -- inputs ------------------------------------------------------------------------------------------


def test_keeps_quorum_without() -> None:
    view = etcd("a", "b", down=("b",))
    assert not view.keeps_quorum_without("a")
    assert view.keeps_quorum_without("b") is True
    assert not etcd("a").keeps_quorum_without("a")
    assert etcd("a", "b", "c").keeps_quorum_without("a")


@pytest.mark.parametrize(("value", "expected"), [(None, 1), (0, 0), (1, 1), ("0", 0), ("1", 1)])
def test_max_surge_from(value: int | str | None, expected: int) -> None:
    assert max_surge_from(value) == expected


@pytest.mark.parametrize("value", [2, -1, "50%", "x"])
def test_max_surge_from_rejects(value: int | str) -> None:
    with pytest.raises(ValueError, match="maxSurge must be 0 or 1"):
        max_surge_from(value)


def test_desired_validation() -> None:
    with pytest.raises(ValueError, match="maxSurge"):
        desired(max_surge=2)
    with pytest.raises(ValueError, match="replicas"):
        desired(replicas=-1)


def test_etcd_view_from_cluster() -> None:
    cluster = EtcdCluster("c1")
    cluster.bootstrap("a", "https://10.0.0.1:2380", "https://10.0.0.1:2379")
    cluster.add_member("b", "https://10.0.0.2:2380", "https://10.0.0.2:2379")
    view = etcd_view(cluster)
    assert view.members == {"a": True, "b": False}
    assert view.learners == frozenset({"b"})
    assert view.leader == "a"


# -- simulation ----------------------------------------------------------------------------------------


class Sim:
    """Machines plus an EtcdCluster; applies actions, and on Wait lets time pass (machines being
    created come up and join etcd as voters, machines being deleted go away)."""

    def __init__(self) -> None:
        self.etcd = EtcdCluster("wl")
        self.machines: dict[str, MachineView] = {}
        self.serial = 0
        self.log: list[Action] = []

    def _urls(self, n: int) -> tuple[str, str]:
        return f"https://10.0.0.{n}:2380", f"https://10.0.0.{n}:2379"

    def create(self, d: Desired) -> None:
        self.serial += 1
        name = f"m{self.serial}"
        if self.etcd.members:
            self.etcd.add_member(name, *self._urls(self.serial))
        else:
            self.etcd.bootstrap(name, *self._urls(self.serial))
        self.machines[name] = MachineView(name, d.version, d.spec_hash, self.serial, healthy=False)

    def tick(self) -> None:
        for name, m in list(self.machines.items()):
            if m.deleting:
                del self.machines[name]
            elif not m.healthy:
                self.etcd.mark_healthy(name)
                if self.etcd.member(name).is_learner:
                    self.etcd.promote(name)
                self.machines[name] = replace(m, healthy=True)

    def apply(self, d: Desired, action: Action) -> None:
        self.log.append(action)
        match action:
            case Init() | ScaleUp():
                self.create(d)
            case MoveLeader(source=source, target=target):
                assert self.etcd.is_leader(source)
                self.etcd.move_leader(target)
            case RemoveEtcdMember(machine=name):
                self.etcd.remove_member(name)  # raises if quorum or leadership would be at risk
            case DeleteMachine(machine=name):
                assert name not in self.etcd
                self.machines[name] = replace(self.machines[name], deleting=True)
            case Wait():
                self.tick()
            case Done():
                pass

    def run(self, d: Desired, limit: int = 200) -> list[Action]:
        surge = d.max_surge if d.replicas >= 3 else 1
        cap = max(len(self.machines), max(d.replicas, 1) + surge)
        for _ in range(limit):
            action = plan(d, self.machines.values(), etcd_view(self.etcd))
            if isinstance(action, Done):
                return self.log
            self.apply(d, action)
            assert self.etcd.has_quorum, f"quorum lost after {action}"
            assert len(self.machines) <= cap, f"{len(self.machines)} machines after {action}"
        raise AssertionError(f"no convergence: {self.log[-5:]}")


def kinds(log: list[Action]) -> list[str]:
    return [type(a).__name__ for a in log if not isinstance(a, Wait)]


def test_simulated_bootstrap_and_scale() -> None:
    sim = Sim()
    sim.run(desired(version=OLD, replicas=3))
    assert len(sim.machines) == 3
    assert len(sim.etcd.voters) == 3
    assert kinds(sim.log) == ["Init", "ScaleUp", "ScaleUp"]
    sim.log.clear()
    sim.run(desired(version=OLD, replicas=1))
    assert list(sim.machines) == ["m3"]
    assert kinds(sim.log).count("DeleteMachine") == 2


@pytest.mark.parametrize("max_surge", [1, 0])
def test_simulated_rolling_upgrade(max_surge: int) -> None:
    sim = Sim()
    sim.run(desired(version=OLD))
    # Worst case: the oldest machine leads.
    sim.etcd.move_leader("m1")
    sim.log.clear()
    d = desired(version=NEW, max_surge=max_surge)
    sim.run(d)
    assert sorted(m.version for m in sim.machines.values()) == [NEW] * 3
    assert sorted(sim.machines) == ["m4", "m5", "m6"]
    assert len(sim.etcd.voters) == 3
    steps = kinds(sim.log)
    assert steps.count("ScaleUp") == 3
    assert steps.count("RemoveEtcdMember") == 3
    # maxSurge 0 has no up-to-date machine at first, so leadership goes to m3, which moves it again.
    assert steps.count("MoveLeader") == (1 if max_surge == 1 else 2)
    assert steps[0] == ("ScaleUp" if max_surge == 1 else "MoveLeader")
    # Member removal always right before deleting that machine.
    removals = [a for a in sim.log if isinstance(a, RemoveEtcdMember | DeleteMachine)]
    for remove, delete in zip(removals[::2], removals[1::2], strict=True):
        assert isinstance(remove, RemoveEtcdMember)
        assert isinstance(delete, DeleteMachine)
        assert remove.machine == delete.machine
    # Oldest outdated first.
    assert [a.machine for a in removals[::2]] == ["m1", "m2", "m3"]


def test_simulated_rollout_pauses_on_fault() -> None:
    sim = Sim()
    sim.run(desired(version=OLD))
    d = desired(version=NEW)
    sim.apply(d, plan(d, sim.machines.values(), etcd_view(sim.etcd)))  # ScaleUp
    sim.tick()
    sim.etcd.mark_unhealthy("m2")
    for _ in range(3):
        action = plan(d, sim.machines.values(), etcd_view(sim.etcd))
        assert action == Wait("Preflight failed: etcd member m2 unhealthy")
    assert len(sim.etcd.voters) == 4
