"""The simulated guest and the served cluster API on their own, as another provider's controllers
use them: the test plays the infrastructure controllers (it makes the machine objects and says
when a machine is up), against a real management API and a real served workload API."""

from __future__ import annotations

from typing import Any

import pytest

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, INFRASTRUCTURE_API_VERSION
from anywhere.controllers.context import Context
from anywhere.controllers.resources import LEASES, NODES, SIM_CLUSTERS, SIM_MACHINES
from anywhere.providers.kubelet import HEARTBEAT_PERIOD, NODE_LEASE_NAMESPACE
from anywhere.providers.sim.endpoints import HOST, EndpointHost
from anywhere.providers.sim.etcd_admin import SimEtcdAdmin
from anywhere.providers.sim.guest import ETCD_JOINED_ANNOTATION, RETRY, SimulatedGuest
from anywhere.providers.sim.served import ServedClusterAPI, shared_host
from anywhere.runtime import SECRETS, Client, NotFoundError, Result
from tests.providers.sim.conftest import serve_workload

Obj = dict[str, Any]
CLUSTER = "g1"
VERSION = "v1.33.1"


def guest(ctx: Context, boot: str = "") -> SimulatedGuest:
    return SimulatedGuest(
        ctx,
        SIM_MACHINES,
        os_image="Test OS 1.0",
        kernel_version="6.1.0-test",
        container_runtime="containerd://2.0.0",
        boot_of=lambda _obj: boot,
    )


async def infra_machine(client: Client, namespace: str, name: str, *, control_plane: bool = False) -> Obj:
    labels = {CLUSTER_NAME_LABEL: CLUSTER}
    if control_plane:
        labels[CONTROL_PLANE_LABEL] = ""
    return await client.create(
        SIM_MACHINES,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "SimMachine",
            "metadata": {"name": name, "labels": labels},
        },
        namespace,
    )


def owner_of(name: str) -> Obj:
    """The Machine as the guest reads it (only its version, labels and deletion matter)."""
    return {"metadata": {"name": name, "labels": {CLUSTER_NAME_LABEL: CLUSTER}}, "spec": {"version": VERSION}}


async def test_a_guest_registers_its_node_renews_its_lease_and_stop_deletes_it(
    context: Context, client: Client, endpoints: EndpointHost, namespace: str
) -> None:
    await serve_workload(context, endpoints, namespace, CLUSTER)
    workload = await context.clusters.client(namespace, CLUSTER)
    node_guest = guest(context, boot="first")
    obj = await infra_machine(client, namespace, "g1-md-1")
    key = f"{namespace}/g1-md-1"

    result = await node_guest.run(key, obj, owner_of("g1-md-1"), CLUSTER, "10.30.0.5", "vsphere://4201-ab")
    assert isinstance(result, Result)
    assert result.requeue_after is not None
    assert 0 < result.requeue_after <= HEARTBEAT_PERIOD
    node = await workload.get(NODES, "g1-md-1")
    assert node["spec"]["providerID"] == "vsphere://4201-ab"
    info = node["status"]["nodeInfo"]
    assert (
        info["osImage"],
        info["kernelVersion"],
        info["containerRuntimeVersion"],
        info["kubeletVersion"],
    ) == (
        "Test OS 1.0",
        "6.1.0-test",
        "containerd://2.0.0",
        VERSION,
    )
    assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "10.30.0.5"}
    assert node["metadata"]["annotations"][CLUSTER_NAME_LABEL] == CLUSTER
    lease = await workload.get(LEASES, "g1-md-1", NODE_LEASE_NAMESPACE)
    assert lease["spec"]["holderIdentity"] == "g1-md-1"

    # Within a heartbeat the Lease is left alone; once forgotten, it is renewed at once.
    await node_guest.run(key, obj, owner_of("g1-md-1"), CLUSTER, "10.30.0.5", "vsphere://4201-ab")
    same = await workload.get(LEASES, "g1-md-1", NODE_LEASE_NAMESPACE)
    assert same["spec"]["renewTime"] == lease["spec"]["renewTime"]
    node_guest.forget(key)
    await node_guest.run(key, obj, owner_of("g1-md-1"), CLUSTER, "10.30.0.5", "vsphere://4201-ab")
    renewed = await workload.get(LEASES, "g1-md-1", NODE_LEASE_NAMESPACE)
    assert renewed["spec"]["renewTime"] > lease["spec"]["renewTime"]

    # A new boot is a new bootID; the machine stays the same machine.
    rebooted = guest(context, boot="second")
    await rebooted.run(key, obj, owner_of("g1-md-1"), CLUSTER, "10.30.0.5", "vsphere://4201-ab")
    after = (await workload.get(NODES, "g1-md-1"))["status"]["nodeInfo"]
    assert after["bootID"] != info["bootID"]
    assert after["systemUUID"] == info["systemUUID"]

    await node_guest.stop(obj, CLUSTER, cluster_going=True)  # nobody to tell: the Lease stays
    assert await workload.get(LEASES, "g1-md-1", NODE_LEASE_NAMESPACE)
    await node_guest.stop(obj, CLUSTER, cluster_going=False)
    with pytest.raises(NotFoundError):
        await workload.get(LEASES, "g1-md-1", NODE_LEASE_NAMESPACE)
    assert (await workload.get(NODES, "g1-md-1"))["metadata"][
        "name"
    ] == "g1-md-1"  # not the guest's to remove


async def test_a_control_plane_guest_joins_etcd_and_an_unserved_cluster_is_retried(
    context: Context, client: Client, endpoints: EndpointHost, namespace: str
) -> None:
    node_guest = guest(context)
    obj = await infra_machine(client, namespace, "g1-cp-1", control_plane=True)
    key = f"{namespace}/g1-cp-1"
    unserved = await node_guest.run(key, obj, owner_of("g1-cp-1"), CLUSTER, "10.30.0.6", "sim://x")
    assert unserved == Result(requeue_after=RETRY)  # no kubeconfig yet: not an error, a wait

    await serve_workload(context, endpoints, namespace, CLUSTER)
    await node_guest.run(key, obj, owner_of("g1-cp-1"), CLUSTER, "10.30.0.6", "sim://x")
    view = await SimEtcdAdmin(context).view(namespace, CLUSTER)
    assert (dict(view.members), view.leader) == ({"g1-cp-1": True}, "g1-cp-1")
    joined = await client.get(SIM_MACHINES, "g1-cp-1", namespace)
    assert joined["metadata"]["annotations"][ETCD_JOINED_ANNOTATION] == "true"


def test_the_node_listener_maps_nodes_of_the_cluster_to_their_machines() -> None:
    heard: list[str] = []
    listener = SimulatedGuest.node_listener(heard.append)
    annotated = {
        "metadata": {
            "name": "g1-md-1",
            "annotations": {CLUSTER_NAME_LABEL: CLUSTER, "cluster.x-k8s.io/cluster-namespace": "ns"},
        }
    }
    listener("ns", CLUSTER, annotated)
    listener("other", CLUSTER, annotated)  # a cluster of the same name elsewhere: not this Node
    listener("ns", CLUSTER, {"metadata": {"name": "kubelet-made"}})  # a Node no machine of ours made
    assert heard == ["ns/g1-md-1"]


async def test_served_apis_share_one_host_per_plane_and_each_stops_its_own(
    context: Context, client: Client, namespace: str
) -> None:
    first, second = ServedClusterAPI(context), ServedClusterAPI(context)
    assert first.host is second.host is shared_host(context.data_dir / "sim" / "..")
    clusters = []
    for name in ("s1", "s2"):
        clusters.append(
            await client.create(
                SIM_CLUSTERS,
                {
                    "apiVersion": INFRASTRUCTURE_API_VERSION,
                    "kind": "SimCluster",
                    "metadata": {"name": name, "labels": {CLUSTER_NAME_LABEL: name}},
                },
                namespace,
            )
        )
    try:
        served = await first.serve(clusters[0], SIM_CLUSTERS)
        host, port = (
            served["spec"]["controlPlaneEndpoint"]["host"],
            served["spec"]["controlPlaneEndpoint"]["port"],
        )
        assert host == HOST
        secret = await client.get(SECRETS, "s1-kubeconfig", namespace)
        [owner] = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("SimCluster", "s1")

        recorded = await second.serve(clusters[1], SIM_CLUSTERS)
        assert recorded["spec"]["controlPlaneEndpoint"]["host"] == HOST
        assert recorded["spec"]["controlPlaneEndpoint"]["port"] != port

        await first.close()  # its endpoint stops; the other helper's does not
        assert first.host.get(namespace, "s1") is None
        assert second.host.get(namespace, "s2") is not None
        again = await first.serve(served, SIM_CLUSTERS)  # its port is kept for it
        assert again["spec"]["controlPlaneEndpoint"] == {"host": host, "port": port}

        await second.remove(recorded)
        assert second.host.get(namespace, "s2") is None
        assert not second.host.folder(namespace, "s2").exists()
    finally:
        await first.close()
        await second.close()
    assert len(first.host) == 0
