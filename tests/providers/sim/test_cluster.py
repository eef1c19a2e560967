"""The SimCluster controller: a served API per cluster, its kubeconfig Secret, the endpoint kept
across restarts, the self-managed cluster, a control plane VIP already in use, and deletion."""

from __future__ import annotations

import base64
import socket
from typing import Any

import yaml

from anywhere.api.capi import CLUSTER_NAME_LABEL, INFRASTRUCTURE_API_VERSION
from anywhere.controllers.context import Context
from anywhere.controllers.resources import SIM_CLUSTERS, SIM_MACHINES
from anywhere.providers.sim import cluster as simcluster
from anywhere.providers.sim.cluster import FINALIZER, vip_conflict
from anywhere.runtime import NAMESPACES, SECRETS, Client
from tests.controllers.conftest import eventually, running, within

Obj = dict[str, Any]


def sim_cluster(name: str, vip: str = "10.10.0.10") -> Obj:
    return {
        "apiVersion": INFRASTRUCTURE_API_VERSION,
        "kind": "SimCluster",
        "metadata": {"name": name, "labels": {CLUSTER_NAME_LABEL: name}},
        "spec": {
            "nodeSubnet": "10.10.0.0/24",
            "gateway": "10.10.0.1",
            "dhcpRange": {"start": "10.10.0.100", "end": "10.10.0.110"},
            "controlPlaneVIP": vip,
        },
    }


async def delete_all(client: Client, namespace: str) -> None:
    """Delete the namespace's SimClusters (while their controller runs) and wait until they are gone,
    so that no test's VIP outlives it on the shared management API."""
    for item in (await client.list(SIM_CLUSTERS, namespace))["items"]:
        await client.delete(SIM_CLUSTERS, item["metadata"]["name"], namespace)
    await eventually(client, SIM_CLUSTERS, namespace, lambda items: not items)


def ready(name: str) -> Any:
    return lambda items: any(
        i["metadata"]["name"] == name and (i.get("status") or {}).get("ready") is True for i in items
    )


def failed(name: str) -> Any:
    return lambda items: any(
        i["metadata"]["name"] == name and (i.get("status") or {}).get("failureReason") for i in items
    )


def by_name(items: list[Obj], name: str) -> Obj:
    return next(i for i in items if i["metadata"]["name"] == name)


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_a_cluster_gets_an_endpoint_and_keeps_it_across_restarts(
    context: Context, client: Client, namespace: str
) -> None:
    await client.create(SIM_CLUSTERS, sim_cluster("alpha", "10.10.0.11"), namespace)
    async with running(context, [simcluster.controller(context)]):
        items = await eventually(client, SIM_CLUSTERS, namespace, ready("alpha"))
    obj = by_name(items, "alpha")
    assert FINALIZER in obj["metadata"]["finalizers"]
    endpoint = obj["spec"]["controlPlaneEndpoint"]
    assert endpoint["host"] == "127.0.0.1"
    conditions = obj["status"]["conditions"]
    assert [(c["type"], c["status"]) for c in conditions] == [("Ready", "True")]
    assert not port_open(endpoint["port"])  # the endpoints stop with the controller

    secret = await client.get(SECRETS, "alpha-kubeconfig", namespace)
    assert secret["type"] == "cluster.x-k8s.io/secret"
    assert secret["metadata"]["labels"] == {CLUSTER_NAME_LABEL: "alpha"}
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("SimCluster", "alpha", obj["metadata"]["uid"])
    kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["value"]))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{endpoint['port']}"

    restarted = simcluster.controller(context)
    async with running(context, [restarted]):  # a restarted plane
        served = await within(restarted.host.served(namespace, "alpha"))
        assert served.port == endpoint["port"]
        workload = await context.clusters.client(namespace, "alpha")
        names = {n["metadata"]["name"] for n in (await workload.list(NAMESPACES))["items"]}
        assert {"kube-system", "kube-node-lease"} <= names
        again = await client.get(SIM_CLUSTERS, "alpha", namespace)
        assert again["spec"]["controlPlaneEndpoint"] == endpoint
        unchanged = await client.get(SECRETS, "alpha-kubeconfig", namespace)
        assert unchanged["metadata"]["resourceVersion"] == secret["metadata"]["resourceVersion"]
        await delete_all(client, namespace)
    assert not (context.data_dir / "sim" / namespace / "alpha").exists()


async def test_a_vip_in_use_fails_the_later_cluster_until_it_is_free(
    context: Context, client: Client, namespace: str
) -> None:
    await client.create(SIM_CLUSTERS, sim_cluster("first", "10.10.0.14"), namespace)
    async with running(context, [simcluster.controller(context)]):
        await eventually(client, SIM_CLUSTERS, namespace, ready("first"))
        await client.create(SIM_CLUSTERS, sim_cluster("second", "10.10.0.14"), namespace)
        items = await eventually(client, SIM_CLUSTERS, namespace, failed("second"))
        status = by_name(items, "second")["status"]
        assert status["ready"] is False
        assert status["failureReason"] == "UnavailableControlPlaneIP"
        assert status["failureMessage"].startswith(
            f"control plane endpoint 10.10.0.14 is already in use by cluster {namespace}/first;"
        )
        [condition] = status["conditions"]
        assert (condition["type"], condition["status"], condition["reason"], condition["severity"]) == (
            "Ready",
            "False",
            "UnavailableControlPlaneIP",
            "Error",
        )
        assert "controlPlaneEndpoint" not in by_name(items, "second")["spec"]

        first = by_name(items, "first")
        folder = context.data_dir / "sim" / namespace / "first"
        assert folder.is_dir()
        await client.delete(SIM_CLUSTERS, "first", namespace)
        items = await eventually(client, SIM_CLUSTERS, namespace, ready("second"))
        assert [i["metadata"]["name"] for i in items] == ["second"]
        assert "failureReason" not in items[0]["status"]
        assert not folder.exists()
        assert not port_open(first["spec"]["controlPlaneEndpoint"]["port"])
        await delete_all(client, namespace)


def test_a_machine_holding_the_vip_makes_it_unavailable() -> None:
    cluster = {
        **sim_cluster("alpha"),
        "metadata": {"name": "alpha", "namespace": "ns", "creationTimestamp": "b"},
    }
    machine = {
        "metadata": {"name": "beta-md-x", "namespace": "ns", "labels": {CLUSTER_NAME_LABEL: "beta"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.10.0.10"}]},
    }
    assert vip_conflict(cluster, [cluster], []) is None
    message = vip_conflict(cluster, [cluster], [machine])
    assert message is not None
    assert message.startswith(
        "control plane endpoint 10.10.0.10 is already in use: it is the address of machine ns/beta-md-x "
        "of cluster beta;"
    )
    older = {**sim_cluster("zeta"), "metadata": {"name": "zeta", "namespace": "ns", "creationTimestamp": "a"}}
    assert vip_conflict(cluster, [cluster, older], []) is not None
    assert vip_conflict(older, [cluster, older], []) is None  # the first one keeps it


async def test_a_machine_with_the_vip_fails_the_cluster(
    context: Context, client: Client, namespace: str
) -> None:
    machine = await client.create(
        SIM_MACHINES,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "SimMachine",
            "metadata": {"name": "other-x", "labels": {CLUSTER_NAME_LABEL: "other"}},
        },
        namespace,
    )
    await client.update_status(
        SIM_MACHINES, {**machine, "status": {"addresses": [{"type": "InternalIP", "address": "10.10.0.12"}]}}
    )
    await client.create(SIM_CLUSTERS, sim_cluster("alpha", "10.10.0.12"), namespace)
    async with running(context, [simcluster.controller(context)]):
        items = await eventually(client, SIM_CLUSTERS, namespace, failed("alpha"))
        assert items[0]["status"]["failureMessage"].startswith(
            f"control plane endpoint 10.10.0.12 is already in use: it is the address of machine {namespace}/other-x"
        )
        await client.delete(SIM_MACHINES, "other-x", namespace)
        await eventually(client, SIM_CLUSTERS, namespace, ready("alpha"))  # free again
        await delete_all(client, namespace)


async def test_the_self_managed_cluster_hands_out_the_planes_own_api(
    context: Context, client: Client, namespace: str, server: Any
) -> None:
    context.self_cluster = f"{namespace}/mgmt"
    context.self_kubeconfig = server.kubeconfig.read_bytes()
    await client.create(SIM_CLUSTERS, sim_cluster("mgmt", "10.10.0.13"), namespace)
    async with running(context, [simcluster.controller(context)]):
        items = await eventually(client, SIM_CLUSTERS, namespace, ready("mgmt"))
        port = int(server.url.rsplit(":", 1)[1])
        assert items[0]["spec"]["controlPlaneEndpoint"] == {"host": "127.0.0.1", "port": port}
        secret = await client.get(SECRETS, "mgmt-kubeconfig", namespace)
        assert base64.b64decode(secret["data"]["value"]) == context.self_kubeconfig
        assert not (context.data_dir / "sim").exists()  # no endpoint of its own
        await delete_all(client, namespace)
