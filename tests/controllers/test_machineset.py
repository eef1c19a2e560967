"""The MachineSet controller: which machines a scale-down deletes, remediation, status, and the
controller against a real API server (scale up with parts, scale down through the scale
subresource, remediation, adoption, pause, deletion).

Only the MachineSet controller runs: no Machine controller makes machines ready, so the tests play
that part themselves by writing a Machine's status (condition Ready True, phase Running).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from anywhere.api.capi import (
    BOOTSTRAP_API_VERSION,
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    INFRASTRUCTURE_API_VERSION,
    MACHINE_SET_NAME_LABEL,
    PAUSED_ANNOTATION,
)
from anywhere.api.capi._base import DELETE_MACHINE_ANNOTATION
from anywhere.controllers import machineset
from anywhere.controllers.conditions import get_condition, is_true, set_condition
from anywhere.controllers.context import Context
from anywhere.controllers.machineset import (
    HEALTH_CHECK_SUCCEEDED,
    MACHINES_CREATED,
    MACHINES_READY,
    OWNER_REMEDIATED,
    RESIZED,
    delete_tier,
    machine_set_status,
    machines_to_delete,
    remediation_plan,
    scale_delta,
    scaled_value,
)
from anywhere.controllers.resources import (
    KUBEADM_CONFIG_TEMPLATES,
    KUBEADM_CONFIGS,
    MACHINE_SETS,
    MACHINES,
    SIM_MACHINE_TEMPLATES,
    SIM_MACHINES,
)
from anywhere.runtime import Client, ConflictError
from tests.controllers.conftest import eventually, running

Obj = dict[str, Any]
CLUSTER = "c1"
NOW = 1_700_000_000.0


def iso(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def machine(
    name: str,
    created: float = 0,
    *,
    ready: bool | None = None,
    ready_since: float | None = None,
    annotations: dict[str, str] | None = None,
    deleting: bool = False,
    **status: Any,
) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "creationTimestamp": iso(NOW - 1000 + created)}
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = iso(NOW)
    st: Obj = dict(status)
    if ready is not None:
        set_condition(st, "Ready", ready)
        st["conditions"][0]["lastTransitionTime"] = iso(ready_since if ready_since is not None else NOW - 500)
    return {"metadata": meta, "status": st}


def names(machines: list[Obj]) -> list[str]:
    return [m["metadata"]["name"] for m in machines]


# -- scale-down order ------------------------------------------------------------------------------


def test_delete_order_by_tier() -> None:
    fleet = [
        machine("healthy-old", 1, ready=True),
        machine("healthy-new", 9, ready=True),
        machine("annotated", 2, ready=True, annotations={DELETE_MACHINE_ANNOTATION: ""}),
        machine("failed", 3, ready=True, failureReason="CreateError"),
        machine("booting", 4),
        machine("gone", 5, ready=True, deleting=True),
    ]
    order = names(machines_to_delete(fleet, 6, now=NOW))
    assert order == ["gone", "annotated", "failed", "booting", "healthy-new", "healthy-old"]
    assert names(machines_to_delete(fleet, 2, now=NOW)) == ["gone", "annotated"]
    assert machines_to_delete(fleet, 0, now=NOW) == []


def test_unhealthy_marks_come_before_unready() -> None:
    fleet = [
        machine("unready", 1, ready=False),
        machine("node-sick", 2, ready=True, conditions=[{"type": "NodeHealthy", "status": "False"}]),
    ]
    assert names(machines_to_delete(fleet, 1, now=NOW)) == ["node-sick"]
    marked = machine("marked", 3, ready=True)
    marked["status"]["conditions"].append({"type": HEALTH_CHECK_SUCCEEDED, "status": "False"})
    assert delete_tier(marked, now=NOW) == 2


def test_delete_policies_among_healthy_machines() -> None:
    fleet = [machine("b", 1, ready=True), machine("c", 3, ready=True), machine("a", 2, ready=True)]
    assert names(machines_to_delete(fleet, 3, now=NOW)) == ["c", "a", "b"]  # default: Newest
    assert names(machines_to_delete(fleet, 3, policy="Newest", now=NOW)) == ["c", "a", "b"]
    assert names(machines_to_delete(fleet, 3, policy="Oldest", now=NOW)) == ["b", "a", "c"]
    assert names(machines_to_delete(fleet, 3, policy="Random", now=NOW)) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="deletePolicy 'Youngest'"):
        machines_to_delete(fleet, 1, policy="Youngest", now=NOW)


def test_scale_delta_counts_deleting_machines() -> None:
    fleet = [machine("a", 1, ready=True), machine("b", 2, deleting=True)]
    assert scale_delta(3, fleet) == 1
    assert scale_delta(2, fleet) == 0  # the replacement of b comes once b is gone
    assert scale_delta(0, fleet) == -2


def test_not_yet_available_goes_before_available() -> None:
    fleet = [
        machine("settled", 9, ready=True, ready_since=NOW - 600),
        machine("fresh", 1, ready=True, ready_since=NOW - 5),
    ]
    assert names(machines_to_delete(fleet, 1, min_ready_seconds=60, now=NOW)) == ["fresh"]
    assert names(machines_to_delete(fleet, 1, min_ready_seconds=0, now=NOW)) == ["settled"]


# -- remediation ------------------------------------------------------------------------------------


def with_conditions(m: Obj, **values: bool) -> Obj:
    for type_, value in values.items():
        set_condition(m["status"], type_, value)
    return m


def test_remediation_plan() -> None:
    fleet = [
        with_conditions(machine("old-sick", 1), OwnerRemediated=False, HealthCheckSucceeded=False),
        with_conditions(machine("new-sick", 5), OwnerRemediated=False),
        with_conditions(machine("recovered", 2), OwnerRemediated=False, HealthCheckSucceeded=True),
        machine("fine", 3, ready=True),
    ]
    remediate, deferred, recovered = remediation_plan(fleet)
    assert names(remediate) == ["new-sick", "old-sick"]
    assert deferred == []
    assert names(recovered) == ["recovered"]

    in_flight = with_conditions(machine("in-flight", 4, deleting=True), OwnerRemediated=True)
    remediate, deferred, _ = remediation_plan([*fleet, in_flight], max_in_flight=2)
    assert names(remediate) == ["new-sick"]
    assert names(deferred) == ["old-sick"]
    remediate, deferred, _ = remediation_plan([*fleet, in_flight], max_in_flight=1)
    assert remediate == []
    assert names(deferred) == ["new-sick", "old-sick"]


def test_scaled_value() -> None:
    assert scaled_value(None, 10, round_up=True, default=1) == 1
    assert scaled_value(3, 10, round_up=True, default=1) == 3
    assert scaled_value("25%", 10, round_up=True, default=1) == 3
    assert scaled_value("25%", 10, round_up=False, default=1) == 2
    for bad in ("3", "x%", -1, True):
        with pytest.raises(ValueError, match=r"integer or a percentage|negative"):
            scaled_value(bad, 10, round_up=True, default=1)


# -- status -------------------------------------------------------------------------------------------


def ms_object(replicas: int, *, min_ready: int = 0, status: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": "ms", "namespace": "ns", "generation": 4},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"pool": "p"}},
            "template": {"metadata": {"labels": {"pool": "p"}}},
        },
        "status": status or {},
    }


def labeled(m: Obj) -> Obj:
    m["metadata"]["labels"] = {"pool": "p"}
    return m


def test_status_while_scaling_up() -> None:
    fleet = [labeled(machine("a", 1, ready=True)), machine("b", 2)]
    status, requeue = machine_set_status(ms_object(3), fleet, now=NOW)
    assert (status["replicas"], status["fullyLabeledReplicas"], status["readyReplicas"]) == (2, 1, 1)
    assert status["availableReplicas"] == 1
    assert status["observedGeneration"] == 4
    assert status["selector"] == "pool=p"
    resized = get_condition({"status": status}, RESIZED)
    assert resized is not None
    assert (resized["reason"], resized["message"]) == (
        "ScalingUp",
        "Scaling up MachineSet to 3 replicas (actual 2)",
    )
    ready = get_condition({"status": status}, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "ScalingUp")
    machines_ready = get_condition({"status": status}, MACHINES_READY)
    assert machines_ready is not None
    assert "1 of 2 machines are not ready: b" in machines_ready["message"]
    assert requeue is None


def test_status_resized_only_when_ready_and_failure_reported() -> None:
    fleet = [machine("a", 1, ready=True), machine("b", 2)]
    status, _ = machine_set_status(ms_object(2), fleet, now=NOW)
    assert get_condition({"status": status}, RESIZED) is None
    assert is_true({"status": status}, MACHINES_CREATED)
    fleet[1] = machine("b", 2, ready=True)
    status, _ = machine_set_status(ms_object(2, status=status), fleet, now=NOW)
    assert is_true({"status": status}, RESIZED)
    assert is_true({"status": status}, "Ready")
    fleet.append(machine("c", 3, failureReason="CreateError", failureMessage="no capacity"))
    status, _ = machine_set_status(ms_object(2, status=status), fleet, now=NOW)
    assert status["failureReason"] == "CreateError"
    assert status["failureMessage"] == "Machine c: no capacity"
    assert get_condition({"status": status}, RESIZED)["reason"] == "ScalingDown"  # type: ignore[index]


def test_status_min_ready_seconds_and_creation_error() -> None:
    fleet = [machine("a", 1, ready=True, ready_since=NOW - 10)]
    status, requeue = machine_set_status(
        ms_object(1, min_ready=30), fleet, now=NOW, creation_error=("MachineCreationFailed", "boom")
    )
    assert (status["readyReplicas"], status["availableReplicas"]) == (1, 0)
    assert requeue == pytest.approx(20)
    created = get_condition({"status": status}, MACHINES_CREATED)
    assert created is not None
    assert (created["status"], created["reason"], created["severity"]) == (
        "False",
        "MachineCreationFailed",
        "Error",
    )
    assert get_condition({"status": status}, "Ready")["reason"] == "MachineCreationFailed"  # type: ignore[index]


# -- the controller against a real API server -----------------------------------------------------------


async def make_templates(client: Client, namespace: str) -> None:
    await client.create(
        SIM_MACHINE_TEMPLATES,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "SimMachineTemplate",
            "metadata": {"name": "workers", "namespace": namespace},
            "spec": {"template": {"spec": {"bootDelay": "1s"}}},
        },
    )
    await client.create(
        KUBEADM_CONFIG_TEMPLATES,
        {
            "apiVersion": BOOTSTRAP_API_VERSION,
            "kind": "KubeadmConfigTemplate",
            "metadata": {"name": "workers", "namespace": namespace},
            "spec": {"template": {"spec": {}}},
        },
    )


def machine_set(
    namespace: str, name: str, replicas: int, *, annotations: dict[str, str] | None = None
) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace, "labels": {CLUSTER_NAME_LABEL: CLUSTER}}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "MachineSet",
        "metadata": meta,
        "spec": {
            "clusterName": CLUSTER,
            "replicas": replicas,
            "selector": {"matchLabels": {"pool": name}},
            "template": {
                "metadata": {"labels": {"pool": name}},
                "spec": {
                    "clusterName": CLUSTER,
                    "version": "v1.33.4",
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


async def mark(client: Client, m: Obj, **values: bool) -> Obj:
    """Play the Machine controller (or a health check): write conditions on a Machine's status."""
    current = await client.get(MACHINES, m["metadata"]["name"], m["metadata"]["namespace"])
    status = current.setdefault("status", {})
    for type_, value in values.items():
        set_condition(status, type_, value, "" if value else "Testing", "" if value else "set by the test")
    if values.get("Ready"):
        status["phase"] = "Running"
    return await client.update_status(MACHINES, current)


async def scale_to(client: Client, namespace: str, name: str, replicas: int) -> Obj:
    """Set the replicas through the scale subresource (what ``kubectl scale`` does). The API server
    answers 409 when the controller wrote the status in between (kube-apiserver would retry such a
    patch itself), so this retries a few times."""
    for _ in range(10):
        try:
            return await client.patch(
                MACHINE_SETS, name, {"spec": {"replicas": replicas}}, namespace, subresource="scale"
            )
        except ConflictError:
            continue
    raise AssertionError(f"could not scale MachineSet {name}")


def count(n: int, extra: Callable[[list[Obj]], bool] = lambda _items: True) -> Callable[[list[Obj]], bool]:
    return lambda items: len(items) == n and extra(items)


def by_set(name: str) -> str:
    return f"{MACHINE_SET_NAME_LABEL}={name}"


async def test_scale_up_makes_machines_parts_and_status(
    context: Context, client: Client, namespace: str
) -> None:
    await make_templates(client, namespace)
    await client.create(MACHINE_SETS, machine_set(namespace, "pool", 3))
    async with running(context, [machineset.controller(context)]):
        made = await eventually(client, MACHINES, namespace, count(3), label_selector=by_set("pool"))
        for m in made:
            assert m["metadata"]["name"].startswith("pool-")
            assert m["metadata"]["labels"]["pool"] == "pool"
            assert m["metadata"]["labels"][CLUSTER_NAME_LABEL] == CLUSTER
            assert m["metadata"]["ownerReferences"][0]["kind"] == "MachineSet"
            assert m["spec"]["version"] == "v1.33.4"
            assert m["spec"]["infrastructureRef"]["kind"] == "SimMachine"
        wanted = sorted(names(made))
        sims = await eventually(client, SIM_MACHINES, namespace, lambda items: sorted(names(items)) == wanted)
        assert all(s["spec"]["bootDelay"] == "1s" for s in sims)
        await eventually(client, KUBEADM_CONFIGS, namespace, lambda items: sorted(names(items)) == wanted)

        def status_is(**fields: int) -> Callable[[list[Obj]], bool]:
            return lambda items: any(
                all((ms.get("status") or {}).get(k) == v for k, v in fields.items()) for ms in items
            )

        [ms] = await eventually(client, MACHINE_SETS, namespace, status_is(replicas=3, readyReplicas=0))
        assert is_true(ms, MACHINES_CREATED)
        assert not is_true(ms, "Ready")
        for m in made:
            await mark(client, m, Ready=True)
        [ms] = await eventually(
            client, MACHINE_SETS, namespace, status_is(readyReplicas=3, availableReplicas=3)
        )
        await eventually(client, MACHINE_SETS, namespace, lambda items: is_true(items[0], "Ready"))


async def test_scale_down_through_the_scale_subresource_by_priority(
    context: Context, client: Client, namespace: str
) -> None:
    await make_templates(client, namespace)
    await client.create(MACHINE_SETS, machine_set(namespace, "pool", 3))
    async with running(context, [machineset.controller(context)]):
        made = sorted(
            await eventually(client, MACHINES, namespace, count(3), label_selector=by_set("pool")),
            key=lambda m: m["metadata"]["name"],
        )
        keep, annotated, _unready = made
        await mark(client, keep, Ready=True)
        await mark(client, annotated, Ready=True)
        await client.patch(
            MACHINES,
            annotated["metadata"]["name"],
            {"metadata": {"annotations": {DELETE_MACHINE_ANNOTATION: "yes"}}},
            namespace,
        )
        scale = await scale_to(client, namespace, "pool", 1)
        assert scale["spec"]["replicas"] == 1
        left = await eventually(client, MACHINES, namespace, count(1), label_selector=by_set("pool"))
        assert names(left) == [keep["metadata"]["name"]]
        await eventually(
            client, MACHINE_SETS, namespace, lambda items: items[0].get("status", {}).get("replicas") == 1
        )
        selector = (await client.get(MACHINE_SETS, "pool", namespace))["status"]["selector"]
        assert selector == "pool=pool"


async def test_remediation_replaces_a_marked_machine(
    context: Context, client: Client, namespace: str
) -> None:
    await make_templates(client, namespace)
    await client.create(MACHINE_SETS, machine_set(namespace, "pool", 2))
    async with running(context, [machineset.controller(context)]):
        made = await eventually(client, MACHINES, namespace, count(2), label_selector=by_set("pool"))
        sick = made[0]["metadata"]["name"]
        await mark(client, made[0], HealthCheckSucceeded=False, OwnerRemediated=False)
        now = await eventually(
            client,
            MACHINES,
            namespace,
            count(2, lambda items: sick not in names(items)),
            label_selector=by_set("pool"),
        )
        assert made[1]["metadata"]["name"] in names(now)


async def test_adopts_orphans_and_honours_pause(context: Context, client: Client, namespace: str) -> None:
    """Both sets and the orphan exist before the controller starts, so its first look at each
    already sees everything; the paused set is reconciled directly, so its "nothing happened" is
    not a race."""
    await make_templates(client, namespace)
    orphan = {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "Machine",
        "metadata": {"name": "orphan", "namespace": namespace, "labels": {"pool": "adopter"}},
        "spec": {
            "clusterName": CLUSTER,
            "bootstrap": {"dataSecretName": "x"},
            "infrastructureRef": {
                "apiVersion": INFRASTRUCTURE_API_VERSION,
                "kind": "SimMachine",
                "name": "orphan",
            },
        },
    }
    await client.create(MACHINES, orphan)
    await client.create(
        MACHINE_SETS, machine_set(namespace, "paused", 2, annotations={PAUSED_ANNOTATION: "true"})
    )
    await client.create(MACHINE_SETS, machine_set(namespace, "adopter", 1))
    ctrl = machineset.controller(context)
    async with running(context, [ctrl]):
        await eventually(client, MACHINE_SETS, namespace, lambda items: any(ms.get("status") for ms in items))
        machines = (await client.list(MACHINES, namespace))["items"]
        assert names(machines) == ["orphan"]
        assert machines[0]["metadata"]["ownerReferences"][0]["name"] == "adopter"
        assert machines[0]["metadata"]["ownerReferences"][0]["controller"] is True

        await context.manager.informer(MACHINE_SETS).wait_synced()
        assert await ctrl.reconcile(f"{namespace}/paused") is None
        assert (await client.list(MACHINES, namespace, label_selector=by_set("paused")))["items"] == []
        paused = await client.get(MACHINE_SETS, "paused", namespace)
        assert not paused.get("status")
        await client.patch(
            MACHINE_SETS, "paused", {"metadata": {"annotations": {PAUSED_ANNOTATION: None}}}, namespace
        )
        await eventually(client, MACHINES, namespace, count(2), label_selector=by_set("paused"))


async def test_deleting_the_set_deletes_its_machines(
    context: Context, client: Client, namespace: str
) -> None:
    await make_templates(client, namespace)
    await client.create(MACHINE_SETS, machine_set(namespace, "pool", 2))
    async with running(context, [machineset.controller(context)]):
        await eventually(client, MACHINES, namespace, count(2))
        await eventually(client, SIM_MACHINES, namespace, count(2))
        await client.delete(MACHINE_SETS, "pool", namespace)
        await eventually(client, MACHINES, namespace, count(0))
        await eventually(client, SIM_MACHINES, namespace, count(0))
        await eventually(client, KUBEADM_CONFIGS, namespace, count(0))


def test_owner_remediated_constant_matches_the_health_check() -> None:
    from anywhere.controllers import machinehealthcheck

    assert machinehealthcheck.OWNER_REMEDIATED == OWNER_REMEDIATED
    assert machinehealthcheck.HEALTH_CHECK_SUCCEEDED == HEALTH_CHECK_SUCCEEDED
