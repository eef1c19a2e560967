"""The NetnsCluster controller on real namespaces: the fabric made, the VIP checked, the cluster's
credentials kept in Secrets, and everything removed with the last cluster of a fabric."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from anywhere.api.capi import CLUSTER_NAME_LABEL, INFRASTRUCTURE_API_VERSION
from anywhere.apiserver import pki
from anywhere.controllers.context import Context
from anywhere.controllers.resources import NETNS_CLUSTERS
from anywhere.providers.netns import cluster as netnscluster
from anywhere.providers.netns.fabric import Fabric
from anywhere.runtime import SECRETS, Client
from tests.controllers.conftest import client, context, eventually, namespace, running, server
from tests.providers.netns.hardware import GATEWAY, SUBNET, requires_root, state_dir

__all__ = ["client", "context", "namespace", "server", "state_dir"]

pytestmark = requires_root
Obj = dict[str, Any]


def netns_cluster(name: str, vip: str, bridge: str = "awt-br0") -> Obj:
    return {
        "apiVersion": INFRASTRUCTURE_API_VERSION,
        "kind": "NetnsCluster",
        "metadata": {"name": name, "labels": {CLUSTER_NAME_LABEL: name}},
        "spec": {
            "bridgeName": bridge,
            "bridgeSubnet": SUBNET,
            "gateway": GATEWAY,
            "dhcpRange": {"start": "10.231.0.100", "end": "10.231.0.120"},
            "controlPlaneVIP": vip,
        },
    }


def settled(name: str) -> Any:
    def check(items: list[Obj]) -> bool:
        status = next((i.get("status") or {} for i in items if i["metadata"]["name"] == name), {})
        return bool(status.get("ready") or status.get("failureReason"))

    return check


def by_name(items: list[Obj], name: str) -> Obj:
    return next(i for i in items if i["metadata"]["name"] == name)


async def test_a_cluster_gets_its_fabric_endpoint_and_credentials(
    context: Context, client: Client, namespace: str, state_dir: Path
) -> None:
    await client.create(NETNS_CLUSTERS, netns_cluster("alpha", "10.231.0.10"), namespace)
    await client.create(NETNS_CLUSTERS, netns_cluster("inrange", "10.231.0.105"), namespace)
    async with running(context, [netnscluster.controller(context, state_dir)]):
        items = await eventually(
            client, NETNS_CLUSTERS, namespace, lambda i: settled("alpha")(i) and settled("inrange")(i)
        )
        alpha = by_name(items, "alpha")
        assert alpha["status"]["ready"] is True
        assert alpha["spec"]["controlPlaneEndpoint"] == {"host": "10.231.0.10", "port": 6443}
        fabric = Fabric.load(state_dir, "awt-br0")
        assert fabric is not None
        assert fabric.exists()
        assert fabric.dnsmasq.running()

        refused = by_name(items, "inrange")["status"]
        assert refused["failureReason"] == "UnavailableControlPlaneIP"
        assert "10.231.0.105" in refused["failureMessage"]
        assert "DHCP range" in refused["failureMessage"]

        shared = await client.get(SECRETS, "alpha-apiserver", namespace)
        assert set(shared["data"]) == {"ca.crt", "ca.key", "sa.key", "sa.pub", "token"}
        secret = await client.get(SECRETS, "alpha-kubeconfig", namespace)
        kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["value"]))
        assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.231.0.10:6443"
        ca = base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"])
        assert ca == base64.b64decode(shared["data"][pki.CA_CERT_FILE])

        for name in ("alpha", "inrange"):
            await client.delete(NETNS_CLUSTERS, name, namespace)
        await eventually(client, NETNS_CLUSTERS, namespace, lambda i: not i)
    assert not fabric.exists()  # the last cluster of the fabric took it along
