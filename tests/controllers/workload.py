"""A workload cluster for controller tests, and the parts of it no controller under test plays.

The workload cluster is a second `anywhere serve` (a module-scoped fixture): its admin kubeconfig
goes into the management namespace's Secret ``<cluster>-kubeconfig`` (key ``value``), where the
ClusterCache finds it. No infrastructure provider runs in these tests, so the tests play the
SimMachine (``spec.providerID``, ``status.ready``, ``status.addresses``) and the kubelet (Nodes
registering and reporting Ready) themselves with the helpers here.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anywhere.api.capi import CLUSTER_API_VERSION
from anywhere.controllers.conditions import now
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import CAPI_CLUSTERS, NODES, SECRETS
from anywhere.runtime import Client
from tests.conftest import Server, start_server, stop_server

Obj = dict[str, Any]


def workload_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The workload cluster's API server; a test module makes it its fixture with
    ``workload = pytest.fixture(scope="module", name="workload")(workload_server)``."""
    running = start_server(tmp_path_factory.mktemp("workload-serve"))
    yield running
    stop_server(running)


async def connect(client: Client, namespace: str, cluster: str, workload: Server) -> None:
    """Make ``cluster`` of ``namespace`` reachable: its CAPI Cluster and its kubeconfig Secret."""
    await client.create(
        CAPI_CLUSTERS,
        {
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "Cluster",
            "metadata": {"name": cluster, "namespace": namespace},
            "spec": {},
        },
    )
    await publish_kubeconfig(client, namespace, cluster, workload.kubeconfig)


async def publish_kubeconfig(client: Client, namespace: str, cluster: str, kubeconfig: Path) -> None:
    await client.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": kubeconfig_secret_name(cluster), "namespace": namespace},
            "type": "cluster.x-k8s.io/secret",
            "data": {"value": base64.b64encode(kubeconfig.read_bytes()).decode()},
        },
    )


def node_condition(status: str, reason: str = "", message: str = "") -> Obj:
    condition: Obj = {
        "type": "Ready",
        "status": status,
        "lastTransitionTime": now(),
        "lastHeartbeatTime": now(),
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


async def register_node(
    remote: Client,
    name: str,
    provider_id: str,
    *,
    ready: str = "True",
    machine_namespace: str | None = None,
    finalizers: list[str] | None = None,
) -> Obj:
    """What the kubelet does when it starts: register its Node (with the annotations the sim
    provider puts on it) reporting Ready ``ready``."""
    metadata: Obj = {"name": name, "labels": {"kubernetes.io/hostname": name}}
    if machine_namespace:
        metadata["annotations"] = {
            "cluster.x-k8s.io/machine": name,
            "cluster.x-k8s.io/cluster-namespace": machine_namespace,
        }
    if finalizers:
        metadata["finalizers"] = finalizers
    return await remote.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": metadata,
            "spec": {"providerID": provider_id},
            "status": {
                "conditions": [node_condition(ready)],
                "addresses": [{"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "kubeletVersion": "v1.33.1",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            },
        },
    )


async def report_ready(remote: Client, name: str, status: str, reason: str = "") -> Obj:
    """The kubelet's status update: Ready becomes ``status`` (now)."""
    node = await remote.get(NODES, name)
    node["status"]["conditions"] = [node_condition(status, reason)]
    return await remote.update_status(NODES, node)
