"""The Machine controller: phases, conditions, the Node found by providerID, failures copied from
the infrastructure machine, and deletion (drain, parts, Node, finalizer).

No infrastructure provider runs here: the tests play the SimMachine (they write its
``spec.providerID``, ``status.ready`` and ``status.addresses``) and the kubelet (they register
Nodes in the workload cluster, a second `anywhere serve`, and report them Ready) themselves. The
KubeadmConfig controller runs with the Machine controller, so bootstrap data is real.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from anywhere.api.capi import (
    BOOTSTRAP_API_VERSION,
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    INFRASTRUCTURE_API_VERSION,
)
from anywhere.controllers import kubeadmconfig, machine
from anywhere.controllers.conditions import get_condition, is_true
from anywhere.controllers.context import Context
from anywhere.controllers.machine import find_node, machine_phase, node_health, summarize_ready
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    KUBEADM_CONFIGS,
    MACHINES,
    NODES,
    PODS,
    SECRETS,
    SIM_MACHINES,
)
from anywhere.runtime import Client, NotFoundError
from tests.conftest import Server
from tests.controllers.conftest import eventually, running
from tests.controllers.workload import (
    connect,
    publish_kubeconfig,
    register_node,
    report_ready,
    workload_server,
)

workload = pytest.fixture(scope="module", name="workload")(workload_server)

Obj = dict[str, Any]
CLUSTER = "demo"
HOLD = "test.anywhere/hold"


# -- pure decisions ----------------------------------------------------------------------------------


def _phase(**facts: Any) -> str:
    defaults: Obj = {
        "bootstrap_ready": False,
        "infrastructure_ready": False,
        "provider_id": None,
        "node_ref": False,
        "failed": False,
        "deleting": False,
    }
    current = facts.pop("current", None)
    return machine_phase(current, **{**defaults, **facts})


def test_phases_follow_cluster_api_rules() -> None:
    assert _phase() == "Pending"
    assert _phase(bootstrap_ready=True) == "Provisioning"
    assert _phase(bootstrap_ready=True, infrastructure_ready=True, provider_id="sim://x") == "Provisioned"
    assert (
        _phase(bootstrap_ready=True, infrastructure_ready=True, provider_id="sim://x", node_ref=True)
        == "Running"
    )
    assert _phase(bootstrap_ready=True, infrastructure_ready=True, node_ref=True, failed=True) == "Failed"
    assert _phase(failed=True, deleting=True) == "Deleting"
    # No rule applies: the phase stays (Cluster API never goes back to Pending).
    assert _phase(current="Running", bootstrap_ready=True, infrastructure_ready=True) == "Running"


def test_node_health_is_the_ready_condition() -> None:
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    unknown = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "Unknown", "message": "Kubelet stopped posting node status."}
            ]
        }
    }
    assert node_health(ready) == (True, "")
    assert node_health(unknown) == (
        False,
        "Node condition Ready is Unknown (Kubelet stopped posting node status.).",
    )
    assert node_health({}) == (False, "Node condition Ready is not reported yet.")


def test_ready_summarizes_the_three_conditions_most_severe_first() -> None:
    status: Obj = {
        "conditions": [
            {"type": "BootstrapReady", "status": "True"},
            {
                "type": "InfrastructureReady",
                "status": "False",
                "reason": "WaitingForInfrastructure",
                "severity": "Info",
            },
            {
                "type": "NodeHealthy",
                "status": "False",
                "reason": "NodeNotFound",
                "severity": "Error",
                "message": "gone",
            },
        ]
    }
    summarize_ready(status)
    ready = get_condition({"status": status}, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"], ready["severity"]) == (
        "False",
        "NodeNotFound",
        "gone",
        "Error",
    )
    for condition in status["conditions"]:
        condition.update(status="True")
    summarize_ready(status)
    assert is_true({"status": status}, "Ready")
    assert status["conditions"][0]["type"] == "Ready"


class _Nodes:
    def __init__(self, *nodes: Obj) -> None:
        self.nodes = {n["metadata"]["name"]: n for n in nodes}

    def get(self, key: str) -> Obj | None:
        return self.nodes.get(key)

    def list(self) -> list[Obj]:
        return list(self.nodes.values())


def test_the_node_is_found_by_provider_id_whatever_its_name() -> None:
    a = {"metadata": {"name": "a"}, "spec": {"providerID": "sim://ns/c/a"}}
    b = {"metadata": {"name": "other-name"}, "spec": {"providerID": "sim://ns/c/b"}}
    nodes: Any = _Nodes(a, b)
    assert find_node(nodes, "sim://ns/c/a", ["a"]) is a
    assert find_node(nodes, "sim://ns/c/b", ["b", ""]) is b
    assert find_node(nodes, "sim://ns/c/a", ["other-name"]) is a  # a name with another providerID
    assert find_node(nodes, "sim://ns/c/z", ["a"]) is None


# -- against the API ---------------------------------------------------------------------------------


@pytest.fixture
async def remote(workload: Server) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(workload.kubeconfig) as api:
        yield api


def _machine(namespace: str, name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "Machine",
        "metadata": {"name": name, "namespace": namespace, "labels": {CLUSTER_NAME_LABEL: CLUSTER}},
        "spec": {
            "clusterName": CLUSTER,
            "version": "v1.33.1",
            "bootstrap": {
                "configRef": {"apiVersion": BOOTSTRAP_API_VERSION, "kind": "KubeadmConfig", "name": name}
            },
            "infrastructureRef": {
                "apiVersion": INFRASTRUCTURE_API_VERSION,
                "kind": "SimMachine",
                "name": name,
            },
            **spec,
        },
    }


def _owned(owner: Obj) -> Obj:
    return {
        "namespace": owner["metadata"]["namespace"],
        "name": owner["metadata"]["name"],
        "labels": {CLUSTER_NAME_LABEL: CLUSTER},
        "ownerReferences": [
            {
                "apiVersion": CLUSTER_API_VERSION,
                "kind": "Machine",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


async def _create_parts(client: Client, owner: Obj, *, config: bool = True, infra: bool = True) -> None:
    if config:
        await client.create(
            KUBEADM_CONFIGS,
            {
                "apiVersion": BOOTSTRAP_API_VERSION,
                "kind": "KubeadmConfig",
                "metadata": _owned(owner),
                "spec": {"joinConfiguration": {}},
            },
        )
    if infra:
        await client.create(
            SIM_MACHINES,
            {
                "apiVersion": INFRASTRUCTURE_API_VERSION,
                "kind": "SimMachine",
                "metadata": _owned(owner),
                "spec": {},
            },
        )


async def _boot(client: Client, namespace: str, name: str, **status: Any) -> str:
    """What the SimMachine controller does once booted: providerID, ready, addresses."""
    provider_id = f"sim://{namespace}/{CLUSTER}/{name}"
    await client.patch(SIM_MACHINES, name, {"spec": {"providerID": provider_id}}, namespace)
    await client.patch(
        SIM_MACHINES,
        name,
        {"status": {"ready": True, "addresses": [{"type": "InternalIP", "address": "10.0.0.7"}], **status}},
        namespace,
        subresource="status",
    )
    return provider_id


def _one(predicate: Callable[[Obj], bool]) -> Callable[[list[Obj]], bool]:
    return lambda items: len(items) == 1 and predicate(items[0])


def _reason(obj: Obj, type_: str) -> str | None:
    condition = get_condition(obj, type_)
    return None if condition is None else str(condition.get("reason") or condition["status"])


def _phase_of(obj: Obj) -> str | None:
    return (obj.get("status") or {}).get("phase")


def _controllers(context: Context) -> list[Any]:
    return [machine.controller(context, infra_machines=[SIM_MACHINES]), kubeadmconfig.controller(context)]


async def test_a_machine_goes_from_pending_to_running_and_is_deleted_with_its_parts_and_node(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    await connect(client, namespace, CLUSTER, workload)
    name = f"m-{namespace}"
    created = await client.create(MACHINES, _machine(namespace, name))
    async with running(context, _controllers(context)):
        # Pending: nothing is there yet.
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: _phase_of(m) == "Pending"))
        assert m["metadata"]["finalizers"] == ["machine.cluster.x-k8s.io"]
        assert _reason(m, "BootstrapReady") == "WaitingForDataSecret"
        assert _reason(m, "InfrastructureReady") == "WaitingForInfrastructure"
        assert _reason(m, "NodeHealthy") == "WaitingForNodeRef"
        assert _reason(m, "Ready") == "WaitingForInfrastructure"

        # Provisioning: the bootstrap data is there, the infrastructure is not ready.
        await _create_parts(client, created)
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: _phase_of(m) == "Provisioning"))
        assert m["spec"]["bootstrap"]["dataSecretName"] == name
        assert m["status"]["bootstrapReady"] is True
        assert is_true(m, "BootstrapReady")
        secret = await client.get(SECRETS, name, namespace)
        assert b"kubeadm join" in base64.b64decode(secret["data"]["value"])

        # Provisioned: the infrastructure machine is ready with a providerID; no Node yet.
        provider_id = await _boot(client, namespace, name)
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: _phase_of(m) == "Provisioned"))
        assert m["spec"]["providerID"] == provider_id
        assert m["status"]["infrastructureReady"] is True
        assert m["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.7"}]
        assert _reason(m, "NodeHealthy") == "NodeProvisioning"
        assert _reason(m, "Ready") == "NodeProvisioning"

        # Running: the kubelet registered, not Ready yet; then Ready.
        node = await register_node(remote, name, provider_id, ready="False", machine_namespace=namespace)
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: _phase_of(m) == "Running"))
        assert m["status"]["nodeRef"] == {
            "apiVersion": "v1",
            "kind": "Node",
            "name": name,
            "uid": node["metadata"]["uid"],
        }
        assert m["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.1"
        assert _reason(m, "NodeHealthy") == "NodeConditionsFailed"
        assert not is_true(m, "Ready")
        await report_ready(remote, name, "True")
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: is_true(m, "Ready")))
        assert all(is_true(m, c) for c in ("NodeHealthy", "InfrastructureReady", "BootstrapReady"))
        assert m["status"]["observedGeneration"] == m["metadata"]["generation"]

        # The kubelet stops: NodeHealthy and Ready turn False.
        await report_ready(remote, name, "Unknown", "NodeStatusUnknown")
        (m,) = await eventually(
            client, MACHINES, namespace, _one(lambda m: _reason(m, "Ready") == "NodeConditionsFailed")
        )
        assert _phase_of(m) == "Running"
        await report_ready(remote, name, "True")
        await eventually(client, MACHINES, namespace, _one(lambda m: is_true(m, "Ready")))

        # Deletion: the pods on the node go, then the parts, the Node and the Machine.
        await remote.create(
            PODS,
            {
                "metadata": {"name": f"app-{name}", "namespace": "default"},
                "spec": {"nodeName": name, "containers": [{"name": "app", "image": "nginx"}]},
            },
        )
        await client.delete(MACHINES, name, namespace)
        await eventually(client, MACHINES, namespace, lambda items: not items)
    assert not (await client.list(SIM_MACHINES, namespace))["items"]
    assert not (await client.list(KUBEADM_CONFIGS, namespace))["items"]
    with pytest.raises(NotFoundError):
        await remote.get(NODES, name)
    with pytest.raises(NotFoundError):
        await remote.get(PODS, f"app-{name}", "default")


async def test_an_unreachable_workload_cluster_only_delays_the_node(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    """No kubeconfig yet: the machine waits (NodeProvisioning) and finds its Node once there is one."""
    await client.create(
        CAPI_CLUSTERS,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Cluster",
            "metadata": {"name": CLUSTER, "namespace": namespace},
            "spec": {},
        },
    )
    name = f"u-{namespace}"
    created = await client.create(MACHINES, _machine(namespace, name))
    await _create_parts(client, created)
    provider_id = await _boot(client, namespace, name)
    await register_node(remote, name, provider_id, machine_namespace=namespace)
    async with running(context, _controllers(context)):
        (m,) = await eventually(
            client,
            MACHINES,
            namespace,
            _one(
                lambda m: (
                    "workload cluster's API" in str((get_condition(m, "NodeHealthy") or {}).get("message"))
                )
            ),
        )
        assert _reason(m, "NodeHealthy") == "NodeProvisioning"
        assert _phase_of(m) == "Provisioned"
        await publish_kubeconfig(client, namespace, CLUSTER, workload.kubeconfig)
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: is_true(m, "Ready")))
        assert _phase_of(m) == "Running"
    await remote.delete(NODES, name)


async def test_a_node_registered_just_before_the_deletion_goes_with_the_machine(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    """The kubelet registered its Node, but the Machine was deleted before it recorded the nodeRef:
    the Node is found by its machine annotation and deleted, not left behind."""
    await connect(client, namespace, CLUSTER, workload)
    name = f"r-{namespace}"
    machine_obj = _machine(namespace, name)
    machine_obj["metadata"]["finalizers"] = ["machine.cluster.x-k8s.io"]  # as a first reconcile left it
    created = await client.create(MACHINES, machine_obj)
    await _create_parts(client, created)
    await register_node(remote, name, f"sim://{namespace}/{CLUSTER}/{name}", machine_namespace=namespace)
    await register_node(remote, f"other-{name}", "sim://elsewhere", machine_namespace="elsewhere")
    await client.delete(MACHINES, name, namespace)  # before any controller saw the Node
    async with running(context, _controllers(context)):
        await eventually(client, MACHINES, namespace, lambda items: not items)
    with pytest.raises(NotFoundError):
        await remote.get(NODES, name)
    await remote.get(NODES, f"other-{name}")  # another cluster's machine: untouched
    await remote.delete(NODES, f"other-{name}")


async def test_an_infrastructure_failure_fails_the_machine(
    client: Client, namespace: str, context: Context, workload: Server
) -> None:
    await connect(client, namespace, CLUSTER, workload)
    name = f"f-{namespace}"
    created = await client.create(MACHINES, _machine(namespace, name))
    await _create_parts(client, created)
    await client.patch(
        SIM_MACHINES,
        name,
        {"status": {"failureReason": "CreateError", "failureMessage": "boot failed"}},
        namespace,
        subresource="status",
    )
    async with running(context, _controllers(context)):
        (m,) = await eventually(client, MACHINES, namespace, _one(lambda m: _phase_of(m) == "Failed"))
    assert (m["status"]["failureReason"], m["status"]["failureMessage"]) == ("CreateError", "boot failed")


async def test_the_drain_gives_up_after_node_drain_timeout(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    """A pod that never goes (a finalizer holds it) stops the drain only for spec.nodeDrainTimeout."""
    await connect(client, namespace, CLUSTER, workload)
    name = f"d-{namespace}"
    created = await client.create(MACHINES, _machine(namespace, name, nodeDrainTimeout="1s"))
    await _create_parts(client, created)
    provider_id = await _boot(client, namespace, name)
    # The Node has a finalizer too, so its cordon can be seen after the Machine deleted it.
    await register_node(remote, name, provider_id, machine_namespace=namespace, finalizers=[HOLD])
    pod = f"stuck-{name}"
    await remote.create(
        PODS,
        {
            "metadata": {"name": pod, "namespace": "default", "finalizers": [HOLD]},
            "spec": {"nodeName": name, "containers": [{"name": "app", "image": "nginx"}]},
        },
    )
    try:
        async with running(context, _controllers(context)):
            await eventually(client, MACHINES, namespace, _one(lambda m: is_true(m, "Ready")))
            await client.delete(MACHINES, name, namespace)
            await eventually(client, MACHINES, namespace, lambda items: not items)
        node = await remote.get(NODES, name)
        assert node["spec"]["unschedulable"] is True
        assert node["metadata"].get("deletionTimestamp")
        assert (await remote.get(PODS, pod, "default"))["metadata"].get("deletionTimestamp")
    finally:
        with contextlib.suppress(NotFoundError):
            await remote.patch(PODS, pod, {"metadata": {"finalizers": None}}, "default")
        with contextlib.suppress(NotFoundError):
            await remote.patch(NODES, name, {"metadata": {"finalizers": None}})


async def test_a_cluster_being_deleted_keeps_its_nodes_untouched(
    client: Client, namespace: str, context: Context, workload: Server, remote: Client
) -> None:
    """The workload cluster is going away: no drain, no Node deletion, only the management objects."""
    await connect(client, namespace, CLUSTER, workload)
    await client.patch(CAPI_CLUSTERS, CLUSTER, {"metadata": {"finalizers": [HOLD]}}, namespace)
    name = f"c-{namespace}"
    created = await client.create(MACHINES, _machine(namespace, name))
    await _create_parts(client, created)
    provider_id = await _boot(client, namespace, name)
    await register_node(remote, name, provider_id, machine_namespace=namespace)
    try:
        async with running(context, _controllers(context)):
            await eventually(client, MACHINES, namespace, _one(lambda m: is_true(m, "Ready")))
            await client.delete(CAPI_CLUSTERS, CLUSTER, namespace)
            await client.delete(MACHINES, name, namespace)
            await eventually(client, MACHINES, namespace, lambda items: not items)
        node = await remote.get(NODES, name)
        assert not node["spec"].get("unschedulable")
        assert not node["metadata"].get("deletionTimestamp")
        assert not (await client.list(SIM_MACHINES, namespace))["items"]
    finally:
        await client.patch(CAPI_CLUSTERS, CLUSTER, {"metadata": {"finalizers": None}}, namespace)
        with contextlib.suppress(NotFoundError):
            await remote.delete(NODES, name)
