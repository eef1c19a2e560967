"""Workload cluster endpoints: a real Kubernetes API per cluster, in this process, that the
official Python client and kubectl use, and that a restarted plane serves again unchanged."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from anywhere.providers.sim.endpoints import Endpoint, EndpointError, EndpointHost
from anywhere.runtime import CONFIGMAPS, NAMESPACES, NODES, Client, parse_kubeconfig


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[EndpointHost]:
    endpoints = EndpointHost(tmp_path / "plane")
    try:
        yield endpoints
    finally:
        await endpoints.close()


def official_core(endpoint: Endpoint, tmp_path: Path) -> k8s.CoreV1Api:
    path = tmp_path / "workload.kubeconfig"
    path.write_bytes(endpoint.kubeconfig)
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(path)))


async def test_an_endpoint_serves_the_api_and_a_restart_keeps_port_data_and_ca(
    host: EndpointHost, tmp_path: Path
) -> None:
    endpoint = await host.ensure("ns1", "alpha", None)
    assert endpoint.server_url == f"https://127.0.0.1:{endpoint.port}"
    document = yaml.safe_load(endpoint.kubeconfig)
    assert document["current-context"] == "alpha-admin@alpha"
    assert repr(endpoint) == f"Endpoint({endpoint.server_url})"  # credentials stay out of logs

    core = official_core(endpoint, tmp_path)
    names = {ns.metadata.name for ns in (await asyncio.to_thread(core.list_namespace)).items}
    assert {"default", "kube-system", "kube-node-lease", "kube-public"} <= names
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="kept"), data={"a": "1"})
    await asyncio.to_thread(core.create_namespaced_config_map, "kube-system", body)
    assert await host.ensure("ns1", "alpha", None) == endpoint  # already served: the same

    await host.stop("ns1", "alpha")
    assert host.get("ns1", "alpha") is None
    again = await host.ensure("ns1", "alpha", endpoint.port)
    assert again.port == endpoint.port
    assert again.kubeconfig == endpoint.kubeconfig  # same CA, same credentials
    async with Client(parse_kubeconfig(again.kubeconfig)) as api:
        kept = await api.get(CONFIGMAPS, "kept", "kube-system")
    assert kept["data"] == {"a": "1"}


async def test_a_restarted_host_reuses_the_recorded_port_and_new_endpoints_avoid_it(tmp_path: Path) -> None:
    first = EndpointHost(tmp_path / "plane")
    try:
        alpha = await first.ensure("ns1", "alpha", None)
    finally:
        await first.close()
    second = EndpointHost(tmp_path / "plane")
    try:
        beta = await second.ensure("ns1", "beta", None)  # must not take alpha's port while it is down
        assert beta.port != alpha.port
        again = await second.ensure("ns1", "alpha", None)  # no port given: the folder's
        assert again.port == alpha.port
        assert len(second) == 2
    finally:
        await second.close()


async def test_a_port_held_by_another_process_is_a_clear_error(host: EndpointHost) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EndpointError, match=rf"ns1/alpha on 127.0.0.1:{port}: the port is in use"):
            await host.ensure("ns1", "alpha", port)
    assert host.get("ns1", "alpha") is None
    assert (await host.ensure("ns1", "alpha", port)).port == port  # free again: served


async def test_destroy_deletes_the_state(host: EndpointHost) -> None:
    endpoint = await host.ensure("ns1", "alpha", None)
    folder = host.folder("ns1", "alpha")
    assert (folder / "state.db").exists()
    await host.destroy("ns1", "alpha")
    assert not folder.exists()
    assert host.get("ns1", "alpha") is None
    fresh = await host.ensure("ns1", "alpha", None)
    assert fresh.kubeconfig != endpoint.kubeconfig  # a new cluster: a new CA


async def test_kubectl_works_against_a_workload_endpoint(host: EndpointHost, tmp_path: Path) -> None:
    endpoint = await host.ensure("ns1", "alpha", None)
    async with Client(parse_kubeconfig(endpoint.kubeconfig)) as api:
        await api.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "alpha-cp-x1"}})
        assert (await api.get(NAMESPACES, "kube-node-lease"))["status"]["phase"] == "Active"
    path = tmp_path / "alpha.kubeconfig"
    path.write_bytes(endpoint.kubeconfig)
    result = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "--kubeconfig", str(path), "get", "nodes", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["node/alpha-cp-x1"]
