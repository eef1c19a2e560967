"""The next single action of a KubeadmControlPlane controller, decided as Cluster API decides it.

Why this exists: scaling and rolling a control plane is where a careless controller loses etcd
quorum and with it the cluster. Keeping the decision a pure function of plain data (no I/O, no
clock, no asyncio) lets every rule be tested directly, and lets a simulation apply the actions to
an :class:`~anywhere.providers.sim.etcd.EtcdCluster` and check that quorum is never lost.

The rules (those of Cluster API's KubeadmControlPlane controller):

* One machine at a time: nothing is done while a machine is being deleted, has not yet become
  healthy (it is being created, or failed), or its etcd member is still a learner.
* A machine that is healthy but no longer has an etcd member is one whose member was removed on
  the way to deleting it: it is deleted next (member removal always comes before the deletion).
* Preflight before every step (scale up included, as in Cluster API): all machines healthy, all
  etcd members healthy voters with a machine each, and quorum. A removal must also keep quorum.
* Rolling update (some machine's version or spec hash differs from the desired ones): with
  ``maxSurge`` 1, scale up first (to ``replicas + 1``) and then remove the oldest outdated machine;
  with ``maxSurge`` 0, remove the oldest outdated machine first and then scale up. ``maxSurge`` 0
  needs 3 or more replicas (with fewer, removing first would leave no fault tolerance or no
  machine at all), so below that it behaves as ``maxSurge`` 1.
* Without outdated machines, scale up or down to ``replicas`` (never below 1 machine).
* The machine to remove: outdated ones first, oldest first. If its etcd member is the leader,
  leadership is moved first, to the newest healthy up-to-date machine (or, when no machine is up
  to date yet, as in the first step of a ``maxSurge`` 0 rollout, the newest other one).
* ``InPlace`` (EKS Anywhere's bare metal strategy, see :mod:`anywhere.controllers.inplace`): no
  machine is made to replace an outdated one. With more machines than ``replicas``, outdated ones
  go first (deleting beats upgrading); otherwise the oldest outdated machine is asked to upgrade in
  place, after the same preflight as any step. While a machine is being upgraded nothing else is
  done; once it is, it is recorded as up to date (its version and spec hash). Scaling up waits
  until no machine is outdated. An upgrade asked for another version than the desired one (the
  spec changed meanwhile) is asked again for the desired one.

:func:`plan` returns exactly one action; the caller carries it out and calls again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from anywhere.controllers.etcd import EtcdView

__all__ = [
    "Action",
    "DeleteMachine",
    "Desired",
    "Done",
    "Init",
    "MachineView",
    "MoveLeader",
    "RecordInPlace",
    "RemoveEtcdMember",
    "ScaleUp",
    "UpgradeInPlace",
    "Wait",
    "max_surge_from",
    "plan",
]


# -- inputs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Desired:
    """What the KubeadmControlPlane asks for. ``spec_hash`` stands for the machine template and
    kubeadm configuration: a machine with another hash is outdated even at the right version."""

    replicas: int
    version: str
    spec_hash: str
    max_surge: int = 1
    in_place: bool = False

    def __post_init__(self) -> None:
        if self.max_surge not in (0, 1):
            raise ValueError(f"maxSurge must be 0 or 1 for a control plane, got {self.max_surge}")
        if self.replicas < 0:
            raise ValueError(f"replicas cannot be negative, got {self.replicas}")


@dataclass(frozen=True)
class MachineView:
    """One control plane machine. ``created`` orders machines by age (lower is older; ties are
    broken by name). ``healthy`` means provisioned, with a ready node and control plane pods.
    ``upgrading_to`` is the version of the in-place upgrade it was asked for ("" for none), and
    ``upgraded`` whether that upgrade is done."""

    name: str
    version: str
    spec_hash: str
    created: int
    healthy: bool = True
    deleting: bool = False
    upgrading_to: str = ""
    upgraded: bool = False

    def up_to_date(self, desired: Desired) -> bool:
        return self.version == desired.version and self.spec_hash == desired.spec_hash


def max_surge_from(value: int | str | None) -> int:
    """``spec.rolloutStrategy.rollingUpdate.maxSurge`` as 0 or 1 (Cluster API's default is 1)."""
    if value is None:
        return 1
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise ValueError(f"maxSurge must be 0 or 1 for a control plane, got {value!r}")
        value = int(value)
    if value not in (0, 1):
        raise ValueError(f"maxSurge must be 0 or 1 for a control plane, got {value}")
    return value


# -- actions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """Do nothing now; ``reason`` says what is awaited (usable as a condition message)."""

    reason: str


@dataclass(frozen=True)
class Init:
    """Create the first control plane machine (``kubeadm init``)."""

    reason: str = "Initializing control plane: creating the first machine"


@dataclass(frozen=True)
class ScaleUp:
    """Create one control plane machine at the desired version (``kubeadm join``)."""

    reason: str


@dataclass(frozen=True)
class MoveLeader:
    """Move etcd leadership from ``source``'s member to ``target``'s, before removing ``source``."""

    source: str
    target: str
    reason: str


@dataclass(frozen=True)
class RemoveEtcdMember:
    """Remove ``machine``'s etcd member; the machine is deleted on a later call."""

    machine: str
    reason: str


@dataclass(frozen=True)
class DeleteMachine:
    """Delete ``machine``, whose etcd member has already been removed."""

    machine: str
    reason: str


@dataclass(frozen=True)
class UpgradeInPlace:
    """Ask ``machine`` to upgrade in place to ``version`` (cordon, drain, kubelet, uncordon)."""

    machine: str
    version: str
    reason: str


@dataclass(frozen=True)
class RecordInPlace:
    """``machine`` was upgraded in place to the desired version: record it as up to date."""

    machine: str
    reason: str


@dataclass(frozen=True)
class Done:
    """The control plane matches the spec."""

    reason: str


Action: TypeAlias = (
    Wait
    | Init
    | ScaleUp
    | MoveLeader
    | RemoveEtcdMember
    | DeleteMachine
    | UpgradeInPlace
    | RecordInPlace
    | Done
)


# -- the planner --------------------------------------------------------------------------------------


def _age(machine: MachineView) -> tuple[int, str]:
    return (machine.created, machine.name)


def _names(machines: Iterable[MachineView]) -> str:
    return ", ".join(m.name for m in machines)


def plan(desired: Desired, machines: Iterable[MachineView], etcd: EtcdView) -> Action:
    """The next single action towards ``desired``, given the machines and the etcd membership."""
    current = sorted(machines, key=_age)

    deleting = [m for m in current if m.deleting]
    if deleting:
        return Wait(f"Waiting for machine {_names(deleting)} to be deleted")

    if not current:
        return Init()

    # A healthy machine without a member had its member removed by an earlier step: finish that.
    if etcd.members:
        orphaned = [m for m in current if m.healthy and m.name not in etcd.members]
        if orphaned:
            machine = orphaned[0]
            return DeleteMachine(
                machine.name, f"Deleting machine {machine.name}: its etcd member has been removed"
            )

    # An in-place upgrade under way is finished (or re-aimed) before anything else is done.
    upgrading = [m for m in current if m.upgrading_to]
    if upgrading:
        machine = upgrading[0]
        if machine.upgrading_to != desired.version and desired.in_place:
            return UpgradeInPlace(
                machine.name,
                desired.version,
                f"Upgrading machine {machine.name} in place to {desired.version} "
                f"(it was asked for {machine.upgrading_to})",
            )
        if machine.upgraded and machine.upgrading_to == desired.version:
            return RecordInPlace(
                machine.name, f"Machine {machine.name} was upgraded in place to {desired.version}"
            )
        if desired.in_place:
            return Wait(f"Upgrading machine {machine.name} in place to {machine.upgrading_to}")
        # No longer InPlace: the rolling update below replaces it like any outdated machine.

    unhealthy = [m for m in current if not m.healthy]
    if unhealthy:
        return Wait(f"Waiting for machine {_names(unhealthy)} to become healthy")

    problem = _etcd_preflight(current, etcd)
    if problem is not None:
        return Wait(problem)

    outdated = [m for m in current if not m.up_to_date(desired)]
    up_to_date = len(current) - len(outdated)
    target = max(desired.replicas, 1)

    if outdated and desired.in_place:
        progress = (
            f"Upgrading to {desired.version} in place: {len(outdated)} of {len(current)} machines not "
            f"up to date ({up_to_date} up to date)"
        )
        if len(current) > target:
            return _scale_down(outdated[0], current, desired, etcd, progress)
        machine = outdated[0]
        return UpgradeInPlace(machine.name, desired.version, f"{progress}; upgrading {machine.name}")

    if outdated:
        # maxSurge 0 removes before adding: with fewer than 3 replicas that would leave no
        # fault tolerance (or no machine), so such control planes surge anyway.
        surge = desired.max_surge if target >= 3 else 1
        progress = (
            f"Rolling out {desired.version}: {len(outdated)} of {len(current)} machines not up to date "
            f"({up_to_date} up to date)"
        )
        if len(current) < target + surge:
            return ScaleUp(f"{progress}; creating a machine")
        return _scale_down(outdated[0], current, desired, etcd, progress)

    if len(current) < target:
        return ScaleUp(f"Scaling up control plane to {target} replicas ({len(current)} current)")
    if len(current) > target:
        progress = f"Scaling down control plane to {target} replicas ({len(current)} current)"
        return _scale_down(current[0], current, desired, etcd, progress)
    return Done(f"Control plane has {target} up-to-date replicas at {desired.version}")


def _etcd_preflight(machines: list[MachineView], etcd: EtcdView) -> str | None:
    """Why the control plane is not fit for any change, or ``None`` when it is."""
    names = {m.name for m in machines}
    learners = [name for name in etcd.members if name in etcd.learners]
    if learners:
        return f"Waiting for etcd member {', '.join(learners)} to be promoted"
    down = [name for name, healthy in etcd.members.items() if not healthy]
    if down:
        return f"Preflight failed: etcd member {', '.join(down)} unhealthy"
    if not etcd.has_quorum:
        return "Preflight failed: etcd has no quorum"
    missing = sorted(names - set(etcd.members))
    if missing:
        return f"Preflight failed: machine {', '.join(missing)} has no etcd member"
    strays = [name for name in etcd.members if name not in names]
    if strays:
        return f"Preflight failed: etcd member {', '.join(strays)} has no machine"
    return None


def _scale_down(
    machine: MachineView, current: list[MachineView], desired: Desired, etcd: EtcdView, progress: str
) -> Action:
    if len(current) <= 1:
        return Wait(f"{progress}; cannot remove the last machine")
    if not etcd.keeps_quorum_without(machine.name):
        return Wait(f"{progress}; preflight failed: removing {machine.name} would lose etcd quorum")
    if etcd.leader == machine.name:
        others = [m for m in current if m.name != machine.name and etcd.members.get(m.name)]
        candidates = [m for m in others if m.up_to_date(desired)] or others
        if not candidates:
            return Wait(f"{progress}; no healthy machine to take etcd leadership from {machine.name}")
        newest = candidates[-1]
        return MoveLeader(
            machine.name,
            newest.name,
            f"{progress}; moving etcd leadership from {machine.name} to {newest.name}",
        )
    return RemoveEtcdMember(machine.name, f"{progress}; removing etcd member {machine.name}")
