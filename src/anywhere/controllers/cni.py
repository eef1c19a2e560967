"""The cluster add-ons anywhere installs in every cluster it creates: Cilium (the default CNI, in
Kubernetes host-scope IPAM mode, reading each node's podCIDR) and CoreDNS.

On ``sim`` nothing executes these workloads; their objects are still the real ones (a DaemonSet
and Deployments in kube-system, Cilium's ConfigMap rendered from ``cniConfig.cilium``), and the
simulated kubelets report their nodes Ready once the Cilium DaemonSet exists, which is when a real
node's network plugin would come up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from typing import Any, Final

import orjson

from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.controllers.objects import create_or_patch
from anywhere.controllers.resources import CONFIGMAPS, DAEMONSETS, DEPLOYMENTS, SERVICES
from anywhere.runtime import Client, NotFoundError, Resource

__all__ = [
    "CILIUM_VERSION",
    "COREDNS_VERSION",
    "AddonInstaller",
    "cilium_settings",
    "install",
    "installed",
    "render_addons",
]

Obj = dict[str, Any]
CILIUM_VERSION: Final = "v1.16.10-eksa.1"
COREDNS_VERSION: Final = "v1.11.4-eks-1-33-1"
NAMESPACE: Final = "kube-system"
FIELD_MANAGER: Final = "anywhere-cni"
# How long an installation is trusted before its objects are read back again (someone may have
# deleted or edited them in the workload cluster).
RECHECK_SECONDS: Final = 300.0


def cilium_settings(cluster: Cluster) -> dict[str, str]:
    """Cilium's ConfigMap data for the cluster's ``cniConfig.cilium``."""
    network = cluster.spec.cluster_network
    cilium = network.cni_config.cilium if network and network.cni_config else None
    pods = network.pods.cidr_blocks if network and network.pods and network.pods.cidr_blocks else []
    settings = {
        "ipam": "kubernetes",
        "cluster-pool-ipv4-cidr": pods[0] if pods else "",
        "enable-policy": (
            cilium.policy_enforcement_mode if cilium and cilium.policy_enforcement_mode else "default"
        ),
        "routing-mode": (cilium.routing_mode if cilium and cilium.routing_mode else "tunnel").replace(
            "overlay", "tunnel"
        ),
        "tunnel-protocol": "geneve",
    }
    if cilium and cilium.egress_masquerade_interfaces:
        settings["egress-masquerade-interfaces"] = cilium.egress_masquerade_interfaces
    if cilium and cilium.ipv4_native_routing_cidr:
        settings["ipv4-native-routing-cidr"] = cilium.ipv4_native_routing_cidr
    return settings


def _dns_ip(cluster: Cluster) -> str:
    """The tenth address of the service CIDR, where kubeadm puts the cluster's DNS service."""
    network = cluster.spec.cluster_network
    services = (
        network.services.cidr_blocks if network and network.services and network.services.cidr_blocks else []
    )
    subnet = ipaddress.ip_network(services[0] if services else "10.96.0.0/12", strict=False)
    return str(subnet.network_address + 10)


def _meta(name: str, app: str) -> Obj:
    return {"name": name, "namespace": NAMESPACE, "labels": {"k8s-app": app}}


def _pod_template(app: str, image: str, version: str) -> Obj:
    return {
        "metadata": {"labels": {"k8s-app": app}},
        "spec": {
            "priorityClassName": "system-node-critical",
            "containers": [{"name": app, "image": f"{image}:{version}"}],
        },
    }


def render_addons(cluster: Cluster) -> list[tuple[Resource, Obj]]:
    """The add-on objects, in the order to apply them (the Cilium DaemonSet last: it is what says
    the CNI is configured)."""
    cilium_image = "public.ecr.aws/isovalent/cilium"
    return [
        (
            CONFIGMAPS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta("cilium-config", "cilium"),
                "data": cilium_settings(cluster),
            },
        ),
        (
            DEPLOYMENTS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": _meta("coredns", "kube-dns"),
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "template": _pod_template(
                        "kube-dns", "public.ecr.aws/eks-distro/coredns/coredns", COREDNS_VERSION
                    ),
                },
            },
        ),
        (
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta("kube-dns", "kube-dns"),
                "spec": {
                    "clusterIP": _dns_ip(cluster),
                    "selector": {"k8s-app": "kube-dns"},
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    ],
                },
            },
        ),
        (
            DEPLOYMENTS,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": _meta("cilium-operator", "cilium-operator"),
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"k8s-app": "cilium-operator"}},
                    "template": _pod_template(
                        "cilium-operator", f"{cilium_image}/operator-generic", CILIUM_VERSION
                    ),
                },
            },
        ),
        (
            DAEMONSETS,
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": _meta("cilium", "cilium"),
                "spec": {
                    "selector": {"matchLabels": {"k8s-app": "cilium"}},
                    "template": _pod_template("cilium-agent", f"{cilium_image}/cilium", CILIUM_VERSION),
                },
            },
        ),
    ]


async def installed(client: Client) -> bool:
    """Whether the Cilium DaemonSet exists in the cluster (then the CNI was installed once)."""
    try:
        await client.get(DAEMONSETS, "cilium", NAMESPACE)
    except NotFoundError:
        return False
    return True


async def install(client: Client, cluster: Cluster) -> None:
    """Create or bring up to date every add-on object (a no-op request each when they are)."""
    for resource, obj in render_addons(cluster):
        try:
            current: Obj | None = await client.get(resource, obj["metadata"]["name"], NAMESPACE)
        except NotFoundError:
            current = None
        await create_or_patch(client, resource, obj, current, field_manager=FIELD_MANAGER)


class AddonInstaller:
    """:func:`install`, skipped when the same objects were installed through the same client
    recently: a cluster's controller reconciles it often, and each full check reads every add-on
    object of the workload cluster. Memory only; a restarted plane checks everything once."""

    def __init__(self) -> None:
        self._done: dict[str, tuple[Client, str, float]] = {}

    async def ensure(self, key: str, client: Client, cluster: Cluster) -> None:
        digest = hashlib.sha256(
            orjson.dumps([obj for _, obj in render_addons(cluster)], option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        done = self._done.get(key)
        fresh = done is not None and time.monotonic() - done[2] < RECHECK_SECONDS
        if fresh and done is not None and done[0] is client and done[1] == digest:
            return
        await install(client, cluster)
        self._done[key] = (client, digest, time.monotonic())

    def forget(self, key: str) -> None:
        self._done.pop(key, None)
