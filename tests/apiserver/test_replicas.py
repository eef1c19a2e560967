"""Several `anywhere serve` replicas over one etcd behave as one API, and survive what HA is for.

Real processes throughout: etcd members (tests/etcd_fixtures.py), `anywhere serve --storage etcd`
replicas (the second started with a copy of the first's --data-dir, so it has the same CA, keys and
admin credentials), the machine's kubectl and the official Kubernetes Python client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from tests.conftest import Server, stop_server
from tests.etcd_fixtures import (
    EtcdCluster,
    etcd_cluster,
    etcd_revision,
    etcdctl,
    free_ports,
    start_etcd,
    start_etcd_server,
)

__all__ = ["etcd_cluster"]

GUARD = 60  # against hangs only; nothing here measures time


def replica_of(first: Server, root: Path, cluster: EtcdCluster, *extra: str, endpoints: str = "") -> Server:
    """A second replica: a copy of the first one's data dir (CA, keys, tokens), over the same etcd."""
    data = root / f"replica-{time.monotonic_ns()}"
    shutil.copytree(first.data_dir, data, ignore=shutil.ignore_patterns("port", "*.kubeconfig"))
    return start_etcd_server(data, cluster, *extra, endpoints=endpoints)


def kill9(server: Server) -> None:
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)


def tls_context(server: Server) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
    context.load_cert_chain(str(server.data_dir / "admin.crt"), str(server.data_dir / "admin.key"))
    return context


def configmap(name: str) -> bytes:
    return orjson.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}
    )


@pytest.fixture
def replicas(etcd_cluster: EtcdCluster, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    first = start_etcd_server(tmp_path / "replica-1", etcd_cluster)
    second = replica_of(first, tmp_path, etcd_cluster)
    yield first, second
    for server in (first, second):
        if server.process.poll() is None:
            stop_server(server)


def test_a_write_on_one_replica_is_seen_by_a_watch_on_the_other(
    replicas: tuple[Server, Server], etcd_cluster: EtcdCluster
) -> None:
    first, second = replicas
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(second.kubeconfig)))
    start = api.list_namespaced_config_map("default").metadata.resource_version

    def watch_second() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        for event in k8s_watch.Watch().stream(
            api.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=GUARD
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 3:
                break
        return seen

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        watching = pool.submit(watch_second)
        first.kubectl("create", "configmap", "across", "--from-literal=a=1")
        first.kubectl("label", "configmap", "across", "replica=first")
        second.kubectl("delete", "configmap", "across")
        assert watching.result(timeout=GUARD) == [
            ("ADDED", "across"),
            ("MODIFIED", "across"),
            ("DELETED", "across"),
        ]
    # the second replica authenticates the first one's admin credentials (same CA, same token)
    token = (first.data_dir / "token").read_text().strip()
    whoami = second.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", f"--token={token}"
    )
    assert whoami.stdout == "admin"


def test_losing_one_etcd_member_of_three_leaves_the_api_writable(
    replicas: tuple[Server, Server], etcd_cluster: EtcdCluster
) -> None:
    first, second = replicas
    first.kubectl("create", "namespace", "ha")
    etcd_cluster.kill(0)  # the member both replicas were talking to
    etcd_cluster.wait_healthy([1, 2])  # the other two have a leader
    for index, server in enumerate((first, second, first, second)):
        server.kubectl("-n", "ha", "create", "configmap", f"after-{index}", "--from-literal=k=v")
    names = second.kubectl("-n", "ha", "get", "configmaps", "-o", "name").stdout.split()
    assert names == [f"configmap/after-{i}" for i in range(4)]


async def test_killing_a_replica_loses_no_acknowledged_write(
    replicas: tuple[Server, Server], etcd_cluster: EtcdCluster
) -> None:
    first, second = replicas
    acknowledged: list[str] = []
    kill_after = 150
    killed = asyncio.Event()
    url = f"{first.url}/api/v1/namespaces/default/configmaps"

    async def writer(session: aiohttp.ClientSession, worker: int) -> None:
        for i in range(10_000):
            name = f"burst-{worker}-{i:05}"
            try:
                async with session.post(url, data=configmap(name)) as response:
                    await response.read()
            except (aiohttp.ClientError, OSError):
                return  # the replica is gone: this write was never acknowledged
            if response.status != 201:
                raise AssertionError(f"create {name}: HTTP {response.status}")
            acknowledged.append(name)
            if len(acknowledged) == kill_after and not killed.is_set():
                killed.set()
                kill9(first)  # mid-burst: the other writers have requests in flight

    connector = aiohttp.TCPConnector(ssl=tls_context(first), limit=8)
    async with (
        aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json"}) as session,
        asyncio.timeout(GUARD),
    ):
        await asyncio.gather(*(writer(session, worker) for worker in range(8)))
    assert killed.is_set()
    listed = second.kubectl("get", "configmaps", "-o", "name").stdout.split()
    present = {name.removeprefix("configmap/") for name in listed}
    missing = [name for name in acknowledged if name not in present]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    assert len(acknowledged) >= kill_after


@pytest.fixture
def lone_etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_etcd(tmp_path / "etcd", 1)
    yield cluster
    cluster.stop()


async def test_etcd_down_answers_503_and_the_server_recovers_by_itself(
    lone_etcd: EtcdCluster, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(start_etcd_server, tmp_path / "serve", lone_etcd)
    base = f"{server.url}/api/v1/namespaces/default/configmaps"
    try:
        connector = aiohttp.TCPConnector(ssl=tls_context(server))
        async with aiohttp.ClientSession(
            connector=connector, headers={"Content-Type": "application/json"}
        ) as session:
            async with session.get(base) as response:
                start = (await response.json())["metadata"]["resourceVersion"]
            watch = await session.get(base, params={"watch": "1", "resourceVersion": start})
            lone_etcd.kill(0)
            async with asyncio.timeout(GUARD):
                for method, data in (("GET", None), ("POST", configmap("during"))):
                    async with session.request(method, base, data=data) as response:
                        status = await response.json()
                    assert response.status in (503, 504), (method, response.status, status)
                    assert status["kind"] == "Status"
                    assert status["code"] == response.status
            await asyncio.to_thread(lone_etcd.start, 0)
            await asyncio.to_thread(lone_etcd.wait_healthy)
            async with session.post(base, data=configmap("after")) as response:
                assert response.status == 201, await response.text()
            async with asyncio.timeout(GUARD):
                line = await watch.content.readline()  # the watch opened before the outage goes on
            event = orjson.loads(line)
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "after")
            watch.close()
    finally:
        stop_server(server)


def test_in_memory_views_survive_compaction_while_cut_off(lone_etcd: EtcdCluster, tmp_path: Path) -> None:
    """Deleted while this replica could not watch, and the history compacted: it must still notice."""
    server = start_etcd_server(tmp_path / "serve", lone_etcd)
    try:
        server.kubectl("create", "namespace", "doomed")
        server.kubectl("-n", "doomed", "create", "configmap", "before", "--dry-run=server")
        server.process.send_signal(signal.SIGSTOP)  # cut off: it cannot follow what happens next
        try:
            lone_etcd.kill(0)  # its watch on etcd breaks
            lone_etcd.start(0)
            lone_etcd.wait_healthy()
            etcdctl(lone_etcd, "del", "/anywhere/registry/core/namespaces/doomed")  # as another replica
            etcdctl(lone_etcd, "compaction", str(etcd_revision(lone_etcd)))
        finally:
            server.process.send_signal(signal.SIGCONT)
        # The server resumes its watch, finds the history gone, and lists again. It runs in another
        # process, so poll (server-side dry runs: nothing is written) until its view has caught up.
        deadline = time.monotonic() + GUARD
        while True:
            probe = server.kubectl(
                "-n", "doomed", "create", "configmap", "probe", "--dry-run=server", check=False
            )
            if probe.returncode != 0:
                break
            assert time.monotonic() < deadline, "the server still believes namespace doomed exists"
            time.sleep(0.1)
        assert 'namespaces "doomed" not found' in probe.stderr
        server.kubectl("create", "namespace", "reborn")  # and it goes on working
        server.kubectl("-n", "reborn", "create", "configmap", "fine")
    finally:
        stop_server(server)


def run_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anywhere", "serve", "--data-dir", str(tmp_path / "d"), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=GUARD,
        check=False,
    )


def test_etcd_options_are_checked(tmp_path: Path) -> None:
    missing = run_serve(tmp_path, "--storage", "etcd")
    assert missing.returncode == 2
    assert "--storage etcd needs --etcd-endpoints" in missing.stderr
    bad = run_serve(tmp_path, "--storage", "etcd", "--etcd-endpoints", "localhost:2379")
    assert bad.returncode == 2
    assert "is not a URL like http://127.0.0.1:2379" in bad.stderr
    stray = run_serve(tmp_path, "--etcd-endpoints", "http://127.0.0.1:2379")
    assert stray.returncode == 2
    assert "need --storage etcd" in stray.stderr
    stray_sync = run_serve(tmp_path, "--etcd-auto-sync-interval", "5")
    assert stray_sync.returncode == 2
    assert "need --storage etcd" in stray_sync.stderr
    negative = run_serve(
        tmp_path,
        "--storage",
        "etcd",
        "--etcd-endpoints",
        "http://127.0.0.1:2379",
        "--etcd-auto-sync-interval",
        "-1",
    )
    assert negative.returncode == 2
    assert "--etcd-auto-sync-interval -1: give 0 (off) or a number of seconds" in negative.stderr
    (port,) = free_ports(1)
    down = run_serve(tmp_path, "--storage", "etcd", "--etcd-endpoints", f"http://127.0.0.1:{port}")
    assert down.returncode == 1
    assert f"error: cannot reach etcd at http://127.0.0.1:{port}" in down.stderr
    assert "is etcd running?" in down.stderr
    for result in (missing, bad, stray, stray_sync, negative, down):
        assert "Traceback" not in result.stderr
