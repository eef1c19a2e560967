"""The MachineDeployment controller: the rolling-update planner (rules, and a property test that
simulates whole rollouts), the status, and the controller with the MachineSet controller against a
real API server (create, roll out a new template, scale, pause, delete).

No Machine controller runs: nothing makes machines ready but the tests, which play that part by
writing a Machine's status (condition Ready True, phase Running) themselves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anywhere.api.capi import (
    BOOTSTRAP_API_VERSION,
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    INFRASTRUCTURE_API_VERSION,
    MACHINE_DEPLOYMENT_NAME_LABEL,
)
from anywhere.api.capi._base import MACHINE_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION
from anywhere.controllers import machinedeployment, machineset
from anywhere.controllers.conditions import get_condition, is_true, set_condition
from anywhere.controllers.context import Context
from anywhere.controllers.machinedeployment import (
    RollingUpdate,
    SetView,
    deployment_status,
    max_unavailable,
    plan_on_delete,
    plan_rollout,
    resolve_fenceposts,
    template_hash,
)
from anywhere.controllers.resources import MACHINE_DEPLOYMENTS, MACHINE_SETS, MACHINES
from anywhere.runtime import Client, ConflictError
from tests.controllers.conftest import eventually, running
from tests.controllers.test_machineset import make_templates

Obj = dict[str, Any]
CLUSTER = "c1"


# -- fenceposts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        (None, None, 3, (1, 0)),  # Cluster API's defaults
        (2, 1, 3, (2, 1)),
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
        ("50%", "50%", 3, (2, 1)),
        (0, 0, 5, (0, 1)),  # both zero: one may be unavailable
        ("0%", "10%", 5, (0, 1)),  # 10% of 5 rounds down to 0
    ],
)
def test_resolve_fenceposts(
    surge: int | str | None, unavailable: int | str | None, desired: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == expected


def test_max_unavailable_is_capped() -> None:
    assert max_unavailable(RollingUpdate(0, 5), 3) == 3
    assert max_unavailable(RollingUpdate(1, 1), 0) == 0
    assert max_unavailable(None, 3) == 0
    with pytest.raises(ValueError, match="percentage"):
        resolve_fenceposts("2", 0, 3)


# -- the planner, rule by rule -------------------------------------------------------------------------

DEFAULT = RollingUpdate()


def test_fresh_deployment_gets_all_replicas_at_once() -> None:
    assert plan_rollout(3, DEFAULT, [SetView("new", True, 0, 0)]) == {"new": 3}


def test_rollout_surges_then_trades_ready_for_ready() -> None:
    old = SetView("old", False, 3, 3)
    assert plan_rollout(3, DEFAULT, [old, SetView("new", True, 0, 0)]) == {"old": 3, "new": 1}
    # The new machine is not ready yet: nothing moves.
    assert plan_rollout(3, DEFAULT, [old, SetView("new", True, 1, 0)]) == {"old": 3, "new": 1}
    # Ready: one old machine can go.
    assert plan_rollout(3, DEFAULT, [old, SetView("new", True, 1, 1)]) == {"old": 2, "new": 1}
    # The next step surges again.
    assert plan_rollout(3, DEFAULT, [SetView("old", False, 2, 2), SetView("new", True, 1, 1)]) == {
        "old": 2,
        "new": 2,
    }


def test_max_unavailable_without_surge_deletes_first() -> None:
    strategy = RollingUpdate(max_surge=0, max_unavailable=1)
    assert plan_rollout(3, strategy, [SetView("old", False, 3, 3), SetView("new", True, 0, 0)]) == {
        "old": 2,
        "new": 0,
    }
    assert plan_rollout(3, strategy, [SetView("old", False, 2, 2), SetView("new", True, 0, 0)]) == {
        "old": 2,
        "new": 1,
    }


def test_unavailable_old_machines_go_first() -> None:
    # Two of the old set's machines are not ready: they can go without losing availability.
    sets = [SetView("old", False, 3, 1), SetView("new", True, 1, 1)]
    assert plan_rollout(2, RollingUpdate(max_surge=1, max_unavailable=0), sets) == {"old": 1, "new": 1}


def test_oldest_old_set_shrinks_first() -> None:
    sets = [
        SetView("older", False, 1, 1, created=1),
        SetView("old", False, 2, 2, created=2),
        SetView("new", True, 1, 1, created=3),
    ]
    assert plan_rollout(3, DEFAULT, sets) == {"older": 0, "old": 2, "new": 1}


def test_stale_ready_count_is_capped_by_replicas() -> None:
    """The old set was just scaled to 2 but still reports 3 ready (its machine is being deleted):
    counting 3 would let this step remove two more, below the floor of 3 available."""
    sets = [SetView("old", False, 2, 3), SetView("new", True, 2, 2)]
    assert plan_rollout(3, DEFAULT, sets) == {"old": 1, "new": 2}


def test_scaling_goes_to_the_new_set() -> None:
    assert plan_rollout(5, DEFAULT, [SetView("new", True, 3, 3)]) == {"new": 5}
    assert plan_rollout(2, DEFAULT, [SetView("new", True, 5, 5)]) == {"new": 2}
    # Down to zero mid-rollout: everything goes.
    sets = [SetView("old", False, 2, 2), SetView("new", True, 2, 1)]
    assert plan_rollout(0, DEFAULT, sets) == {"old": 0, "new": 0}


def test_exactly_one_new_set() -> None:
    with pytest.raises(ValueError, match="exactly one new"):
        plan_rollout(1, DEFAULT, [SetView("a", False, 1, 1)])


def test_on_delete_follows_deletions() -> None:
    sets = [SetView("old", False, 3, 3), SetView("new", True, 0, 0)]
    assert plan_on_delete(3, sets, {"old": 3}) == {"old": 3, "new": 0}
    assert plan_on_delete(3, sets, {"old": 2}) == {"old": 2, "new": 1}


# -- the planner, simulated -----------------------------------------------------------------------------


@dataclass
class FakeSet:
    """A MachineSet as the simulation sees it: machines appear (not ready) and go at once, the
    unready ones first (as the MachineSet controller deletes)."""

    name: str
    is_new: bool
    created: float
    spec: int
    ready: int = 0
    unready: int = 0

    def scale(self, target: int) -> None:
        self.spec = target
        have = self.ready + self.unready
        if target > have:
            self.unready += target - have
        else:
            drop = have - target
            unready_gone = min(drop, self.unready)
            self.unready -= unready_gone
            self.ready -= drop - unready_gone


def step(desired: int, strategy: RollingUpdate, sets: list[FakeSet]) -> None:
    views = [SetView(s.name, s.is_new, s.spec, s.ready, s.created) for s in sets]
    targets = plan_rollout(desired, strategy, views)
    assert set(targets) == {s.name for s in sets}
    for s in sets:
        s.scale(targets[s.name])


bounds = st.one_of(st.integers(0, 3), st.sampled_from(["0%", "10%", "25%", "50%", "100%"]))


@settings(max_examples=300, deadline=None)
@given(
    desired=st.integers(0, 8),
    max_surge=bounds,
    max_unavail=bounds,
    old_sets=st.integers(1, 3),
    data=st.data(),
)
def test_rollouts_keep_their_bounds_and_finish(
    desired: int, max_surge: int | str, max_unavail: int | str, old_sets: int, data: st.DataObject
) -> None:
    """Start from old sets holding ``desired`` ready machines in all; each step plans, applies, and
    then some new machines become ready (hypothesis picks how many; after a while, all of them)."""
    strategy = RollingUpdate(max_surge, max_unavail)
    surge, _ = resolve_fenceposts(max_surge, max_unavail, desired)
    floor = desired - max_unavailable(strategy, desired)
    cuts = sorted(data.draw(st.lists(st.integers(0, desired), min_size=old_sets - 1, max_size=old_sets - 1)))
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, desired], strict=True)]
    sets = [FakeSet(f"old{i}", False, i, n, ready=n) for i, n in enumerate(sizes)]
    sets.append(FakeSet("new", True, 99, 0))
    new = sets[-1]
    slow_steps = data.draw(st.integers(0, 20), label="steps with slow machines")
    for index in range(200):
        step(desired, strategy, sets)
        total = sum(s.ready + s.unready for s in sets)
        ready = sum(s.ready for s in sets)
        assert total <= desired + surge, f"step {index}: {total} machines > {desired} + {surge}"
        assert ready >= floor, f"step {index}: {ready} ready < {floor}"
        if (
            all(s.spec == 0 and s.ready + s.unready == 0 for s in sets if not s.is_new)
            and new.ready == desired
        ):
            break
        if index < slow_steps:
            newly = data.draw(st.integers(0, new.unready), label="machines becoming ready")
        else:
            newly = new.unready
        new.ready += newly
        new.unready -= newly
    else:
        pytest.fail(f"the rollout did not finish: {sets}")
    assert new.spec == desired
    assert new.unready == 0


@settings(max_examples=150, deadline=None)
@given(
    max_surge=bounds,
    max_unavail=bounds,
    plan=st.lists(st.tuples(st.integers(0, 8), st.booleans()), min_size=1, max_size=15),
    final=st.integers(0, 8),
)
def test_rollouts_finish_while_scaling(
    max_surge: int | str, max_unavail: int | str, plan: list[tuple[int, bool]], final: int
) -> None:
    """The replicas change between steps (and new machines are sometimes slow): the rollout still
    ends with ``final`` ready machines, all in the new set."""
    strategy = RollingUpdate(max_surge, max_unavail)
    sets = [FakeSet("old", False, 0, 3, ready=3), FakeSet("new", True, 1, 0)]
    new = sets[-1]
    for desired, becomes_ready in plan:
        step(desired, strategy, sets)
        if becomes_ready:
            new.ready += new.unready
            new.unready = 0
    for _ in range(100):
        step(final, strategy, sets)
        new.ready += new.unready
        new.unready = 0
        if sets[0].spec == 0 and sets[0].ready == 0 and new.spec == final and new.ready == final:
            break
    else:
        pytest.fail(f"did not converge to {final}: {sets}")


# -- status ----------------------------------------------------------------------------------------------


def set_object(name: str, replicas: int, ready: int, available: int, *, status: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            **(status or {}),
        },
    }


def md_object(replicas: int = 3) -> Obj:
    return {
        "metadata": {"name": "md", "generation": 7},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"pool": "md"}},
            "template": {"metadata": {"labels": {"a": "1"}}, "spec": {"version": "v1"}},
        },
    }


def test_status_during_a_rollout() -> None:
    new = set_object("new", 1, 0, 0)
    set_condition(new["status"], "Ready", False, "ScalingUp", "Scaling up", "Warning")
    status = deployment_status(md_object(), [set_object("old", 3, 3, 3), new], new)
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (4, 1, 3)
    assert (status["availableReplicas"], status["unavailableReplicas"]) == (3, 1)
    assert status["observedGeneration"] == 7
    assert status["selector"] == "pool=md"
    assert status["phase"] == "ScalingDown"
    assert is_true({"status": status}, "Available")
    assert is_true({"status": status}, "Ready")
    machine_set_ready = get_condition({"status": status}, "MachineSetReady")
    assert machine_set_ready is not None
    assert (machine_set_ready["status"], machine_set_ready["reason"]) == ("False", "ScalingUp")


def test_status_waiting_and_failed() -> None:
    status = deployment_status(md_object(), [set_object("new", 3, 1, 1)], None)
    available = get_condition({"status": status}, "Available")
    assert available is not None
    assert available["reason"] == "WaitingForAvailableMachines"
    assert available["message"] == "Minimum availability requires 3 replicas, current 1 available"
    assert get_condition({"status": status}, "Ready")["reason"] == "WaitingForAvailableMachines"  # type: ignore[index]
    assert get_condition({"status": status}, "MachineSetReady")["reason"] == "WaitingForMachineSet"  # type: ignore[index]
    assert status["phase"] == "ScalingUp"
    failed = set_object("new", 3, 3, 3, status={"failureReason": "CreateError"})
    assert deployment_status(md_object(), [failed], failed)["phase"] == "Failed"
    assert deployment_status(md_object(), [set_object("new", 3, 3, 3)], None)["phase"] == "Running"


def test_status_with_a_bad_strategy() -> None:
    status = deployment_status(
        md_object(),
        [set_object("new", 3, 3, 3)],
        None,
        strategy_error="spec.strategy: '2' is not a percentage",
    )
    available = get_condition({"status": status}, "Available")
    assert available is not None
    assert (available["reason"], available["severity"]) == ("InvalidStrategy", "Error")
    assert get_condition({"status": status}, "Ready")["reason"] == "InvalidStrategy"  # type: ignore[index]


def test_template_hash_ignores_metadata() -> None:
    md = md_object()
    relabeled = copy.deepcopy(md)
    relabeled["spec"]["template"]["metadata"]["labels"]["b"] = "2"
    upgraded = copy.deepcopy(md)
    upgraded["spec"]["template"]["spec"]["version"] = "v2"
    assert template_hash(md) == template_hash(relabeled)
    assert template_hash(md) != template_hash(upgraded)
    assert len(template_hash(md)) == 8


# -- the controllers against a real API server -------------------------------------------------------------


def machine_deployment(namespace: str, name: str, replicas: int, version: str = "v1.33.4") -> Obj:
    return {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "MachineDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {CLUSTER_NAME_LABEL: CLUSTER}},
        "spec": {
            "clusterName": CLUSTER,
            "replicas": replicas,
            "selector": {"matchLabels": {"pool": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"pool": name}},
                "spec": {
                    "clusterName": CLUSTER,
                    "version": version,
                    "bootstrap": {
                        "configRef": {
                            "apiVersion": BOOTSTRAP_API_VERSION,
                            "kind": "KubeadmConfigTemplate",
                            "name": "workers",
                        }
                    },
                    "infrastructureRef": {
                        "apiVersion": INFRASTRUCTURE_API_VERSION,
                        "kind": "SimMachineTemplate",
                        "name": "workers",
                    },
                },
            },
        },
    }


async def make_ready(client: Client, machine: Obj) -> None:
    """Play the Machine controller: the machine's Node is Ready."""
    for _ in range(10):
        current = await client.get(MACHINES, machine["metadata"]["name"], machine["metadata"]["namespace"])
        status = current.setdefault("status", {})
        set_condition(status, "Ready", True)
        status["phase"] = "Running"
        try:
            await client.update_status(MACHINES, current)
            return
        except ConflictError:
            continue


def is_ready(machine: Obj) -> bool:
    return is_true(machine, "Ready") and not machine["metadata"].get("deletionTimestamp")


def live(items: list[Obj]) -> list[Obj]:
    return [m for m in items if not m["metadata"].get("deletionTimestamp")]


def ms_name(md: str, version: str) -> str:
    return f"{md}-{template_hash(machine_deployment('x', md, 1, version))}"


async def patch_md(client: Client, namespace: str, name: str, patch: Obj) -> None:
    """A merge patch of the MD (retried when the API server answers 409 because the controller
    wrote in between: kube-apiserver would retry such a patch itself)."""
    for _ in range(10):
        try:
            await client.patch(MACHINE_DEPLOYMENTS, name, patch, namespace)
            return
        except ConflictError:
            continue


async def test_rollout_replaces_every_machine_within_its_bounds(
    context: Context, client: Client, namespace: str
) -> None:
    """maxSurge 1, maxUnavailable 0, 3 replicas: every snapshot of the machines during the rollout
    has at most 4 machines and at least 3 ready ones."""
    await make_templates(client, namespace)
    await client.create(MACHINE_DEPLOYMENTS, machine_deployment(namespace, "md", 3))
    first, second = ms_name("md", "v1.33.4"), ms_name("md", "v1.34.1")
    md_ctrl, ms_ctrl = machinedeployment.controller(context), machineset.controller(context)
    async with running(context, [md_ctrl, ms_ctrl]):
        made = await eventually(client, MACHINES, namespace, lambda items: len(items) == 3)
        assert {m["metadata"]["labels"]["cluster.x-k8s.io/set-name"] for m in made} == {first}
        assert all(m["metadata"]["labels"][MACHINE_DEPLOYMENT_NAME_LABEL] == "md" for m in made)
        ms = await client.get(MACHINE_SETS, first, namespace)
        assert ms["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
        assert ms["metadata"]["ownerReferences"][0]["kind"] == "MachineDeployment"
        for m in made:
            await make_ready(client, m)

        def md_status(**fields: Any) -> Callable[[list[Obj]], bool]:
            return lambda items: all((items[0].get("status") or {}).get(k) == v for k, v in fields.items())

        [md] = await eventually(
            client, MACHINE_DEPLOYMENTS, namespace, md_status(readyReplicas=3, phase="Running")
        )
        assert is_true(md, "Available")
        assert is_true(md, "Ready")
        assert md["metadata"]["annotations"][REVISION_ANNOTATION] == "1"

        await patch_md(client, namespace, "md", {"spec": {"template": {"spec": {"version": "v1.34.1"}}}})

        def settled(items: list[Obj]) -> bool:
            current = live(items)
            done = len(current) == 3 and all(
                m["metadata"]["labels"]["cluster.x-k8s.io/set-name"] == second and is_ready(m)
                for m in current
            )
            return done or any(not is_ready(m) for m in current)

        while True:
            snapshot = await eventually(client, MACHINES, namespace, settled)
            current = live(snapshot)
            assert len(snapshot) <= 4, [m["metadata"]["name"] for m in snapshot]
            assert sum(1 for m in current if is_ready(m)) >= 3
            waiting = [m for m in current if not is_ready(m)]
            if not waiting:
                break
            for m in waiting:
                assert m["metadata"]["labels"]["cluster.x-k8s.io/set-name"] == second
                assert m["spec"]["version"] == "v1.34.1"
                await make_ready(client, m)

        sets = await eventually(client, MACHINE_SETS, namespace, lambda items: len(items) == 1)
        assert sets[0]["metadata"]["name"] == second
        assert sets[0]["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
        assert sets[0]["metadata"]["labels"][MACHINE_TEMPLATE_HASH_LABEL] == second.rpartition("-")[2]
        [md] = await eventually(
            client, MACHINE_DEPLOYMENTS, namespace, md_status(updatedReplicas=3, readyReplicas=3, replicas=3)
        )
        assert md["metadata"]["annotations"][REVISION_ANNOTATION] == "2"

        # Converged: another look writes nothing.
        async def versions() -> list[str]:
            listed = [await client.list(r, namespace) for r in (MACHINE_DEPLOYMENTS, MACHINE_SETS, MACHINES)]
            return sorted(i["metadata"]["resourceVersion"] for page in listed for i in page["items"])

        before = await versions()
        await md_ctrl.reconcile(f"{namespace}/md")
        await ms_ctrl.reconcile(f"{namespace}/{second}")
        assert await versions() == before

        await client.delete(MACHINE_DEPLOYMENTS, "md", namespace)
        await eventually(client, MACHINE_SETS, namespace, lambda items: not items)
        await eventually(client, MACHINES, namespace, lambda items: not items)


async def test_scaling_pausing_and_template_metadata(
    context: Context, client: Client, namespace: str
) -> None:
    await make_templates(client, namespace)
    await client.create(MACHINE_DEPLOYMENTS, machine_deployment(namespace, "md", 1))
    first, second = ms_name("md", "v1.33.4"), ms_name("md", "v1.34.1")
    ctrl = machinedeployment.controller(context)
    async with running(context, [ctrl, machineset.controller(context)]):
        await eventually(client, MACHINES, namespace, lambda items: len(items) == 1)
        for _ in range(10):
            try:
                await client.patch(
                    MACHINE_DEPLOYMENTS, "md", {"spec": {"replicas": 3}}, namespace, subresource="scale"
                )
                break
            except ConflictError:
                continue
        made = await eventually(client, MACHINES, namespace, lambda items: len(items) == 3)
        assert {m["metadata"]["labels"]["cluster.x-k8s.io/set-name"] for m in made} == {first}

        # Labels of the template reach the set and its machines without a rollout.
        await patch_md(
            client, namespace, "md", {"spec": {"template": {"metadata": {"labels": {"tier": "gold"}}}}}
        )
        await eventually(
            client,
            MACHINES,
            namespace,
            lambda items: all(m["metadata"]["labels"].get("tier") == "gold" for m in items),
        )
        assert [ms["metadata"]["name"] for ms in (await client.list(MACHINE_SETS, namespace))["items"]] == [
            first
        ]

        # Paused: a template change makes no new set.
        await patch_md(
            client, namespace, "md", {"spec": {"paused": True, "template": {"spec": {"version": "v1.34.1"}}}}
        )
        await eventually(
            client,
            MACHINE_DEPLOYMENTS,
            namespace,
            lambda items: (
                items[0]["spec"].get("paused") is True
                and (items[0].get("status") or {}).get("observedGeneration")
                == items[0]["metadata"]["generation"]
            ),
        )
        await context.manager.informer(MACHINE_DEPLOYMENTS).wait_synced()
        await ctrl.reconcile(f"{namespace}/md")
        assert [ms["metadata"]["name"] for ms in (await client.list(MACHINE_SETS, namespace))["items"]] == [
            first
        ]

        await patch_md(client, namespace, "md", {"spec": {"paused": False}})
        sets = await eventually(client, MACHINE_SETS, namespace, lambda items: len(items) == 2)
        assert {ms["metadata"]["name"] for ms in sets} == {first, second}
