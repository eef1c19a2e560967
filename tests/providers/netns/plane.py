"""Shared setup of the netns tests that run real plane controllers in-process.

A plane's :class:`Context` as ``anywhere`` runs one (its cluster cache dialling through the
providers, so the plane reaches VIPs inside fabrics), the documents of a netns cluster on the
tests' private subnet, and the checks the end-to-end tests share. The state folder comes from
:mod:`tests.providers.netns.hardware`, which removes every trace afterwards.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from anywhere.api import dump_config
from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.api.generate import generate_config
from anywhere.api.v1alpha1.cluster import ManagementCluster
from anywhere.api.v1alpha1.sim import IPRange
from anywhere.controllers.context import Context
from anywhere.controllers.plane import provider_dialer
from anywhere.controllers.remote import ClusterCache
from anywhere.controllers.resources import EKSA_CLUSTERS, NETNS_DATACENTERS, NETNS_MACHINE_CONFIGS
from anywhere.providers.netns._host import list_netns, scope_of
from anywhere.providers.netns.provider import PROVIDER, STATE_ENV
from anywhere.runtime import Client, Manager
from tests.conftest import Server
from tests.providers.netns.hardware import GATEWAY, SUBNET

__all__ = [
    "RESOURCES",
    "SETTLE",
    "VIP",
    "address_of",
    "cluster_documents",
    "cluster_ready",
    "context",
    "mine",
    "our_namespaces",
    "ready",
    "until",
]

Obj = dict[str, Any]

VIP = "10.231.0.10"
DHCP_START = "10.231.0.100"
DHCP_END = "10.231.0.120"
# Bounds of waiting for external processes (etcd, anywhere serve, DHCP), not expectations.
SETTLE = 90.0


@pytest.fixture
async def context(
    server: Server, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Context]:
    """A plane's context as `anywhere` runs one: the cluster cache dials through the providers."""
    monkeypatch.setenv(STATE_ENV, str(state_dir))
    manager_client = Client.from_kubeconfig(server.kubeconfig)
    manager = Manager(manager_client)
    ctx: Context
    clusters = ClusterCache(manager_client, dialer=provider_dialer(lambda: ctx))
    ctx = Context(client=manager_client, manager=manager, clusters=clusters, data_dir=tmp_path / "plane")
    ctx.data_dir.mkdir()
    try:
        yield ctx
    finally:
        await PROVIDER.close(ctx)
        await clusters.close()
        await manager.close()


def cluster_documents(
    name: str,
    control_planes: int,
    workers: int = 1,
    version: str = "1.33",
    vip: str = VIP,
    *,
    self_managed: bool = False,
) -> list[Obj]:
    """A netns cluster of ``control_planes`` control plane machines and ``workers`` workers (one
    group), on the tests' subnet, as `anywhere generate clusterconfig` writes one. The plane of
    these tests plays a management cluster, so the cluster is its workload cluster unless
    ``self_managed`` (which runs the lifecycle controllers on the control plane machines too)."""
    config = generate_config(name, "netns", version)
    spec = config.cluster.spec
    if not self_managed:
        spec.management_cluster = ManagementCluster(name="mgmt")
    assert spec.control_plane_configuration is not None
    assert spec.control_plane_configuration.endpoint is not None
    spec.control_plane_configuration.count = control_planes
    spec.control_plane_configuration.endpoint.host = vip
    for group in spec.worker_node_group_configurations or []:
        group.count = workers
    for datacenter in config.of_kind("NetnsDatacenterConfig"):
        datacenter.spec.bridge_name = "awt-br0"  # type: ignore[attr-defined]
        datacenter.spec.bridge_subnet = SUBNET  # type: ignore[attr-defined]
        datacenter.spec.gateway = GATEWAY  # type: ignore[attr-defined]
        datacenter.spec.dhcp_range = IPRange(start=DHCP_START, end=DHCP_END)  # type: ignore[attr-defined]
    return [d for d in yaml.safe_load_all(dump_config(config)) if d]


RESOURCES = {
    "Cluster": EKSA_CLUSTERS,
    "NetnsDatacenterConfig": NETNS_DATACENTERS,
    "NetnsMachineConfig": NETNS_MACHINE_CONFIGS,
}


def cluster_ready(name: str) -> Callable[[list[Obj]], bool]:
    def check(items: list[Obj]) -> bool:
        cluster = next((i for i in items if i["metadata"]["name"] == name), None)
        conditions = ((cluster or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return check


def ready(*names: str) -> Callable[[list[Obj]], bool]:
    """NetnsMachines ``names`` all ready (an AssertionError as soon as one failed)."""

    def check(items: list[Obj]) -> bool:
        by_name = {i["metadata"]["name"]: i for i in items}
        for name in names:
            status = (by_name.get(name) or {}).get("status") or {}
            if status.get("failureReason"):
                raise AssertionError(f"{name} failed: {status.get('failureMessage')}")
            if not status.get("ready"):
                return False
        return True

    return check


def address_of(items: list[Obj], name: str) -> ipaddress.IPv4Address:
    machine = next(i for i in items if i["metadata"]["name"] == name)
    internal = next(a for a in machine["status"]["addresses"] if a["type"] == "InternalIP")
    return ipaddress.IPv4Address(internal["address"])


def mine(items: list[Obj], cluster: str) -> list[Obj]:
    return [i for i in items if (i["metadata"].get("labels") or {}).get(CLUSTER_NAME_LABEL) == cluster]


async def until(check: Callable[[], Any], timeout: float = SETTLE, interval: float = 0.2) -> Any:
    """Poll an external system (etcd, a workload API through the VIP) until ``check`` answers."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: BaseException | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            result = await check()
            if result:
                return result
        except Exception as exc:  # not up yet: the next poll tells
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout:g}s (last error: {last!r})")


def our_namespaces(state: Path) -> list[str]:
    scope = scope_of(state)
    return [n for n in list_netns("aw-") if scope in n]
