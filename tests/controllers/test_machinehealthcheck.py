"""MachineHealthCheck: the pure decision (each rule of Cluster API, maxUnhealthy and unhealthyRange,
when to look again) and the controller marking machines in a real API.

No Machine controller or infrastructure provider runs here: the tests write what they would (a
Machine's ``status.nodeRef``) and play the kubelet (Nodes in the workload cluster, a second
`anywhere serve`, reporting Ready or not) themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from anywhere.api.capi import CLUSTER_API_VERSION, CLUSTER_NAME_LABEL
from anywhere.controllers import machinehealthcheck
from anywhere.controllers.conditions import get_condition, is_true
from anywhere.controllers.context import Context
from anywhere.controllers.machinehealthcheck import Target, assess, max_unhealthy, selects
from anywhere.controllers.resources import MACHINE_HEALTH_CHECKS, MACHINES
from anywhere.runtime import Client
from tests.conftest import Server
from tests.controllers.conftest import eventually, running
from tests.controllers.workload import connect, register_node, report_ready, workload_server

workload = pytest.fixture(scope="module", name="workload")(workload_server)

Obj = dict[str, Any]
CLUSTER = "demo"
NOW = 1_750_000_000.0


def _at(seconds_ago: float) -> str:
    return dt.datetime.fromtimestamp(NOW - seconds_ago, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mhc(**spec: Any) -> Obj:
    return {
        "metadata": {"name": "mhc", "namespace": "ns"},
        "spec": {
            "clusterName": CLUSTER,
            "selector": {"matchLabels": {"pool": "a"}},
            "unhealthyConditions": [
                {"type": "Ready", "status": "Unknown", "timeout": "5m"},
                {"type": "Ready", "status": "False", "timeout": "5m"},
            ],
            **spec,
        },
    }


def _m(name: str, *, age: float = 3600, node: bool = True, **status: Any) -> Obj:
    machine: Obj = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": _at(age),
            "labels": {CLUSTER_NAME_LABEL: CLUSTER, "pool": "a"},
        },
        "spec": {"clusterName": CLUSTER},
        "status": dict(status),
    }
    if node:
        machine["status"]["nodeRef"] = {"kind": "Node", "name": name}
    return machine


def _node(name: str, ready: str = "True", since: float = 3600) -> Obj:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": _at(since)}]},
    }


def _verdicts(mhc: Obj, targets: list[Target]) -> dict[str, tuple[bool, bool, str]]:
    return {v.name: (v.healthy, v.unhealthy, v.reason) for v in assess(mhc, targets, NOW).verdicts}


# -- the decision ------------------------------------------------------------------------------------


def test_each_rule_of_cluster_api() -> None:
    targets = [
        Target(_m("ok"), _node("ok")),
        Target(_m("failed", failureReason="CreateError"), _node("failed")),
        Target(_m("gone"), None),
        Target(_m("late", node=False, age=601), None),
        Target(_m("booting", node=False, age=30), None),
        Target(_m("notready"), _node("notready", "False", since=301)),
        Target(_m("flapping"), _node("flapping", "Unknown", since=10)),
        Target(_m("pressure"), _node("pressure", "True")),
    ]
    assert _verdicts(_mhc(), targets) == {
        "ok": (True, False, ""),
        "failed": (False, True, "MachineHasFailure"),
        "gone": (False, True, "NodeNotFound"),
        "late": (False, True, "NodeStartupTimeout"),
        "booting": (False, False, ""),
        "notready": (False, True, "UnhealthyNode"),
        "flapping": (False, False, ""),
        "pressure": (True, False, ""),
    }


def test_messages_are_cluster_apis() -> None:
    outcome = assess(
        _mhc(),
        [
            Target(_m("late", node=False, age=601), None),
            Target(_m("notready"), _node("notready", "False", since=301)),
            Target(_m("failed", failureMessage="disk"), _node("failed")),
        ],
        NOW,
    )
    assert [v.message for v in outcome.verdicts] == [
        "Node failed to report startup in 10m0s",
        "Condition Ready on node is reporting status False for more than 5m",
        "FailureMessage: disk",
    ]


def test_the_next_check_is_the_earliest_timeout_plus_a_second() -> None:
    outcome = assess(
        _mhc(nodeStartupTimeout="2m"),
        [
            Target(_m("booting", node=False, age=100), None),  # 20 s left
            Target(_m("flapping"), _node("flapping", "Unknown", since=290)),  # 10 s left
            Target(_m("ok"), _node("ok")),
        ],
        NOW,
    )
    assert outcome.next_check == 11.0
    assert (outcome.expected, outcome.current_healthy, outcome.unhealthy) == (3, 1, [])
    assert assess(_mhc(), [Target(_m("ok"), _node("ok"))], NOW).next_check is None


def test_a_zero_node_startup_timeout_disables_it() -> None:
    assert _verdicts(_mhc(nodeStartupTimeout="0s"), [Target(_m("late", node=False, age=10**6), None)]) == {
        "late": (False, False, "")
    }


def test_unknown_nodes_prove_nothing() -> None:
    """The workload cluster could not be read: a nodeRef without a known Node is not NodeNotFound."""
    targets = [
        Target(_m("a"), None, nodes_known=False),
        Target(_m("b", node=False, age=601), None, nodes_known=False),
    ]
    assert _verdicts(_mhc(), targets) == {"a": (False, False, ""), "b": (False, True, "NodeStartupTimeout")}


@pytest.mark.parametrize(
    ("value", "total", "limit"),
    [
        (None, 7, 7),
        ("100%", 3, 3),
        ("40%", 3, 1),
        ("40%", 5, 2),
        ("34%", 3, 1),
        ("33%", 3, 0),
        (2, 10, 2),
        ("2", 10, 2),
    ],
)
def test_max_unhealthy_rounds_percentages_down(value: Any, total: int, limit: int) -> None:
    assert max_unhealthy(value, total) == limit


@pytest.mark.parametrize("value", ["forty%", "%", "4.5", True])
def test_a_malformed_max_unhealthy_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="neither a number nor a percentage"):
        max_unhealthy(value, 3)


def _three(unhealthy: int, pending: int = 0) -> list[Target]:
    targets = [Target(_m(f"u{i}"), _node(f"u{i}", "False", since=600)) for i in range(unhealthy)]
    targets += [Target(_m(f"p{i}"), _node(f"p{i}", "False", since=1)) for i in range(pending)]
    return targets + [Target(_m(f"h{i}"), _node(f"h{i}")) for i in range(3 - unhealthy - pending)]


def test_too_many_unhealthy_short_circuits_remediation() -> None:
    allowed = assess(_mhc(maxUnhealthy="40%"), _three(1), NOW)
    assert (allowed.allowed, allowed.remediations_allowed, allowed.unhealthy) == (True, 0, ["u0"])
    refused = assess(_mhc(maxUnhealthy="40%"), _three(2), NOW)
    assert (refused.allowed, refused.remediations_allowed) == (False, 0)
    assert refused.message == (
        "Remediation is not allowed, the number of not started or unhealthy machines exceeds maxUnhealthy "
        "(total: 3, unhealthy: 2, maxUnhealthy: 40%)"
    )
    # Machines not yet unhealthy but not healthy either count against maxUnhealthy (Cluster API's rule).
    assert not assess(_mhc(maxUnhealthy=1), _three(1, pending=1), NOW).allowed
    assert assess(_mhc(), _three(3), NOW).remediations_allowed == 0


def test_unhealthy_range() -> None:
    assert assess(_mhc(unhealthyRange="[1-2]"), _three(0), NOW).allowed is False
    in_range = assess(_mhc(unhealthyRange="[1-2]"), _three(1), NOW)
    assert (in_range.allowed, in_range.remediations_allowed) == (True, 1)
    above = assess(_mhc(unhealthyRange="[1-2]"), _three(3), NOW)
    assert not above.allowed
    assert "does not fall within the range (total: 3, unhealthy: 3, unhealthyRange: [1-2])" in above.message
    with pytest.raises(ValueError, match="cannot be less than"):
        assess(_mhc(unhealthyRange="[3-1]"), _three(0), NOW)


def test_targets_are_the_clusters_selected_machines_without_skipped_ones() -> None:
    mhc = _mhc()
    other_pool = _m("x")
    other_pool["metadata"]["labels"]["pool"] = "b"
    other_cluster = _m("y")
    other_cluster["spec"]["clusterName"] = "other"
    other_namespace = _m("z")
    other_namespace["metadata"]["namespace"] = "elsewhere"
    assert selects(mhc, _m("a"))
    assert not any(selects(mhc, m) for m in (other_pool, other_cluster, other_namespace))
    skipped = _m("s")
    skipped["metadata"]["annotations"] = {"cluster.x-k8s.io/skip-remediation": ""}
    paused = _m("p")
    paused["metadata"]["annotations"] = {"cluster.x-k8s.io/paused": "true"}
    upgrading = _m("u")
    upgrading["metadata"]["annotations"] = {"anywhere.eks.amazonaws.com/in-place-upgrade-needed": "v1.31.0"}
    outcome = assess(
        mhc,
        [Target(skipped, None), Target(paused, None), Target(upgrading, None), Target(_m("a"), _node("a"))],
        NOW,
    )
    assert [v.name for v in outcome.verdicts] == ["a"]


# -- against the API ---------------------------------------------------------------------------------


@pytest.fixture
async def remote(workload: Server) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(workload.kubeconfig) as api:
        yield api


async def _machines(client: Client, namespace: str, count: int, *, with_nodes: bool = True) -> list[str]:
    """Machines as the Machine controller leaves them once their Nodes registered."""
    names = []
    for index in range(count):
        name = f"{namespace}-{index}"
        machine = await client.create(
            MACHINES,
            {
                "apiVersion": CLUSTER_API_VERSION,
                "kind": "Machine",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {CLUSTER_NAME_LABEL: CLUSTER, "pool": "a"},
                },
                "spec": {"clusterName": CLUSTER, "bootstrap": {"dataSecretName": name}},
            },
        )
        if with_nodes:
            machine["status"] = {
                "nodeRef": {"apiVersion": "v1", "kind": "Node", "name": name},
                "phase": "Running",
            }
            await client.update_status(MACHINES, machine)
        names.append(name)
    return names


async def _check(client: Client, namespace: str, **spec: Any) -> None:
    await client.create(
        MACHINE_HEALTH_CHECKS,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "MachineHealthCheck",
            "metadata": {"name": "workers", "namespace": namespace},
            "spec": {
                "clusterName": CLUSTER,
                "selector": {"matchLabels": {"pool": "a"}},
                "unhealthyConditions": [
                    {"type": "Ready", "status": "Unknown", "timeout": "1s"},
                    {"type": "Ready", "status": "False", "timeout": "1s"},
                ],
                **spec,
            },
        },
    )


def _reason(obj: Obj, type_: str) -> str | None:
    condition = get_condition(obj, type_)
    return None if condition is None else str(condition.get("reason") or condition["status"])


def _by_name(predicate: Callable[[dict[str, Obj]], bool]) -> Callable[[list[Obj]], bool]:
    return lambda items: predicate({i["metadata"]["name"]: i for i in items})


def _status(mhc: Obj) -> tuple[Any, ...]:
    status = mhc.get("status") or {}
    return (status.get("expectedMachines"), status.get("currentHealthy"), status.get("remediationsAllowed"))


async def test_a_machine_whose_node_stays_not_ready_is_marked(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    await connect(client, namespace, CLUSTER, workload)
    names = await _machines(client, namespace, 3)
    for name in names:
        await register_node(remote, name, f"sim://{namespace}/{CLUSTER}/{name}")
    await _check(client, namespace)
    async with running(context, [machinehealthcheck.controller(context)]):
        (mhc,) = await eventually(
            client, MACHINE_HEALTH_CHECKS, namespace, lambda items: _status(items[0]) == (3, 3, 3)
        )
        assert mhc["status"]["targets"] == sorted(names)
        assert is_true(mhc, "RemediationAllowed")
        assert mhc["status"]["observedGeneration"] == mhc["metadata"]["generation"]
        await eventually(
            client, MACHINES, namespace, lambda items: all(is_true(m, "HealthCheckSucceeded") for m in items)
        )

        await report_ready(remote, names[0], "Unknown", "NodeStatusUnknown")
        machines = await eventually(
            client,
            MACHINES,
            namespace,
            _by_name(lambda ms: _reason(ms[names[0]], "OwnerRemediated") is not None),
        )
        sick = {m["metadata"]["name"]: m for m in machines}[names[0]]
        condition = get_condition(sick, "HealthCheckSucceeded")
        assert condition is not None
        assert (condition["status"], condition["reason"], condition["message"]) == (
            "False",
            "UnhealthyNode",
            "Condition Ready on node is reporting status Unknown for more than 1s",
        )
        assert _reason(sick, "OwnerRemediated") == "WaitingForRemediation"
        assert all(_reason(m, "OwnerRemediated") is None for m in machines if m is not sick)
        (mhc,) = await eventually(
            client, MACHINE_HEALTH_CHECKS, namespace, lambda items: _status(items[0]) == (3, 2, 2)
        )


async def test_too_many_unhealthy_machines_are_not_marked(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    await connect(client, namespace, CLUSTER, workload)
    names = await _machines(client, namespace, 3)
    for name in names:
        await register_node(remote, name, f"sim://{namespace}/{CLUSTER}/{name}")
    await _check(client, namespace, maxUnhealthy="40%")
    async with running(context, [machinehealthcheck.controller(context)]):
        await eventually(
            client, MACHINE_HEALTH_CHECKS, namespace, lambda items: _status(items[0]) == (3, 3, 1)
        )
        await report_ready(remote, names[0], "False", "KubeletNotReady")
        await report_ready(remote, names[1], "Unknown", "NodeStatusUnknown")
        machines = await eventually(
            client,
            MACHINES,
            namespace,
            _by_name(
                lambda ms: all(_reason(ms[n], "HealthCheckSucceeded") == "UnhealthyNode" for n in names[:2])
            ),
        )
        assert all(_reason(m, "OwnerRemediated") is None for m in machines)
        # The message counts the machines found unhealthy (Cluster API's count), pending ones not.
        (mhc,) = await eventually(
            client,
            MACHINE_HEALTH_CHECKS,
            namespace,
            lambda items: (
                "unhealthy: 2," in str((get_condition(items[0], "RemediationAllowed") or {}).get("message"))
            ),
        )
        assert _status(mhc) == (3, 1, 0)
        condition = get_condition(mhc, "RemediationAllowed")
        assert "(total: 3, unhealthy: 2, maxUnhealthy: 40%)" in condition["message"]

        # One recovers: the other is marked now.
        await report_ready(remote, names[1], "True")
        await eventually(
            client,
            MACHINES,
            namespace,
            _by_name(lambda ms: _reason(ms[names[0]], "OwnerRemediated") == "WaitingForRemediation"),
        )
        (mhc,) = await eventually(
            client, MACHINE_HEALTH_CHECKS, namespace, lambda items: is_true(items[0], "RemediationAllowed")
        )


async def test_node_startup_timeout_and_a_deleted_node(
    client: Client, namespace: str, context: Context, workload: Server
) -> None:
    await connect(client, namespace, CLUSTER, workload)
    (never_booted,) = await _machines(client, namespace, 1, with_nodes=False)
    gone = f"{namespace}-gone"
    machine = await client.create(
        MACHINES,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Machine",
            "metadata": {
                "name": gone,
                "namespace": namespace,
                "labels": {CLUSTER_NAME_LABEL: CLUSTER, "pool": "a"},
            },
            "spec": {"clusterName": CLUSTER, "bootstrap": {"dataSecretName": gone}},
        },
    )
    machine["status"] = {"nodeRef": {"apiVersion": "v1", "kind": "Node", "name": gone}}
    await client.update_status(MACHINES, machine)
    await _check(client, namespace, nodeStartupTimeout="2s")
    async with running(context, [machinehealthcheck.controller(context)]):
        machines = await eventually(
            client,
            MACHINES,
            namespace,
            _by_name(lambda ms: _reason(ms[never_booted], "HealthCheckSucceeded") == "NodeStartupTimeout"),
        )
    found = {m["metadata"]["name"]: m for m in machines}
    assert _reason(found[gone], "HealthCheckSucceeded") == "NodeNotFound"
    assert _reason(found[gone], "OwnerRemediated") == "WaitingForRemediation"
    assert _reason(found[never_booted], "OwnerRemediated") == "WaitingForRemediation"
    condition = get_condition(found[never_booted], "HealthCheckSucceeded")
    assert condition is not None
    assert condition["message"] == "Node failed to report startup in 2s"
