"""What only the etcd backend has to show: several stores on one etcd, member loss, outages, compaction
while a watch was broken, TLS. Every test runs real etcd processes (tests/etcd_fixtures.py).

Some tests block the event loop on purpose while etcd restarts: the store's background stream cannot
run meanwhile, which is how "the history was compacted while this server was cut off" is made to
happen deterministically rather than by a race.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from anywhere.storage import Compacted, Event, KeyExists, Unavailable, Watch
from anywhere.storage.etcd import EtcdStorage, parse_endpoints
from tests.etcd_fixtures import EtcdCluster, etcd_revision, etcdctl, free_ports, make_tls, start_etcd

# A guard against a hang, far above anything expected: not a measurement.
GUARD = 30


async def events(watch: Watch, count: int) -> list[Event]:
    found: list[Event] = []
    async with asyncio.timeout(GUARD):
        while len(found) < count:
            event = await watch.next()
            if event is not None:
                found.append(event)
    return found


@pytest.fixture
def single(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A one-member etcd of this test's own, which the test may kill and restart."""
    cluster = start_etcd(tmp_path / "etcd", 1)
    yield cluster
    cluster.stop()


def restart(cluster: EtcdCluster, index: int = 0) -> None:
    cluster.kill(index)
    cluster.start(index)
    cluster.wait_healthy([index])


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("", "no etcd endpoint given"),
        ("127.0.0.1:2379", "is not a URL like http://127.0.0.1:2379"),
        ("ftp://127.0.0.1:2379", "is not a URL"),
        ("http://user:secret@127.0.0.1:2379", "carries credentials in the URL"),
        ("http://127.0.0.1:2379/v3", "has a path"),
        ("http://127.0.0.1:99999", "invalid port"),
    ],
)
def test_bad_endpoints_are_named(given: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as error:
        parse_endpoints(given)
    assert "secret" not in str(error.value)


def test_endpoints_are_a_list_or_comma_separated() -> None:
    assert parse_endpoints(" http://a:1, https://b:2 ,") == ["http://a:1", "https://b:2"]
    assert parse_endpoints(["http://[::1]:2379"]) == ["http://[::1]:2379"]


async def test_nothing_listening_is_unavailable_not_a_hang() -> None:
    (port,) = free_ports(1)
    async with asyncio.timeout(GUARD):
        with pytest.raises(Unavailable, match=f"127.0.0.1:{port}: Connection refused"):
            await EtcdStorage.open(f"http://127.0.0.1:{port}")


async def test_two_stores_on_one_etcd_see_each_other(etcd_member: EtcdCluster, tmp_path: Path) -> None:
    prefix = f"/share/{tmp_path.name}/"
    first = await EtcdStorage.open(etcd_member.endpoints, prefix=prefix)
    second = await EtcdStorage.open(etcd_member.endpoints, prefix=prefix)
    try:
        watch = await second.watch("/r/", await second.revision())
        created = await first.create("/r/a", b"1")
        updated = await first.update("/r/a", b"2", expected_rv=created.mod_rv)
        with pytest.raises(KeyExists):
            await second.create("/r/a", b"x")
        seen = await events(watch, 2)
        assert [(e.type, e.value, e.rv, e.prev) for e in seen] == [
            ("ADDED", b"1", created.mod_rv, None),
            ("MODIFIED", b"2", updated.mod_rv, b"1"),
        ]
        assert await second.get("/r/a") == updated
    finally:
        await first.close()
        await second.close()


async def test_prefixes_keep_stores_apart(etcd_member: EtcdCluster, tmp_path: Path) -> None:
    one = await EtcdStorage.open(etcd_member.endpoints, prefix=f"/one-{tmp_path.name}/")
    two = await EtcdStorage.open(etcd_member.endpoints, prefix=f"/one-{tmp_path.name}-two/")
    try:
        await one.create("/k", b"1")
        await two.create("/k", b"2")
        assert [r.value for r in (await one.list("")).records] == [b"1"]
        assert [r.value for r in (await two.list("")).records] == [b"2"]
        raw = etcdctl(etcd_member, "get", "--prefix", f"/one-{tmp_path.name}/", "--keys-only")
        assert raw.split() == [f"/one-{tmp_path.name}/k"]
    finally:
        await one.close()
        await two.close()


async def test_losing_one_member_of_three(etcd_cluster: EtcdCluster, tmp_path: Path) -> None:
    store = await EtcdStorage.open(etcd_cluster.endpoints)
    try:
        early = await store.create("/m/0", b"0")
        watch = await store.watch("/m/", early.mod_rv)
        etcd_cluster.kill(0)  # the member the store was talking to
        # the other two have (re)elected a leader; the store's loop runs meanwhile, as a server's
        # would, and sees its connections to the dead member close
        await asyncio.to_thread(etcd_cluster.wait_healthy, [1, 2])
        written = [await store.create(f"/m/{i}", str(i).encode()) for i in range(1, 6)]
        assert [(e.key, e.rv) for e in await events(watch, 5)] == [(r.key, r.mod_rv) for r in written]
        # a store opened now, watching from before it existed, reads etcd's history
        later = await EtcdStorage.open(etcd_cluster.endpoints)
        try:
            replay = await later.watch("/m/", early.mod_rv)
            assert [e.key for e in await events(replay, 5)] == [f"/m/{i}" for i in range(1, 6)]
            assert len((await later.list("/m/")).records) == 6
        finally:
            await later.close()
    finally:
        await store.close()


async def test_etcd_down_then_back(single: EtcdCluster) -> None:
    store = await EtcdStorage.open(single.endpoints, timeout=2.0)
    try:
        watch = await store.watch("/o/", await store.revision())
        single.kill(0)
        async with asyncio.timeout(GUARD):
            with pytest.raises(Unavailable, match="Connection refused"):
                await store.get("/o/a")
            with pytest.raises(Unavailable):
                await store.create("/o/a", b"1")
        single.start(0)
        single.wait_healthy()
        created = await store.create("/o/a", b"1")  # the same store, nothing reopened
        assert [(e.key, e.rv) for e in await events(watch, 1)] == [("/o/a", created.mod_rv)]
    finally:
        await store.close()


async def test_history_compacted_while_the_stream_was_broken(single: EtcdCluster) -> None:
    """Watchers of the store end (list and watch again); old revisions answer Compacted."""
    store = await EtcdStorage.open(single.endpoints)
    try:
        first = await store.create("/c/a", b"1")
        watch = await store.watch("/c/", first.mod_rv)
        # Blocking: the store's stream cannot resume before the compaction is done.
        restart(single)
        etcdctl(single, "put", "/anywhere/c/b", "2")
        etcdctl(single, "del", "/anywhere/c/a")
        etcdctl(single, "put", "/anywhere/c/c", "3")
        etcdctl(single, "compaction", str(etcd_revision(single)))
        async with asyncio.timeout(GUARD):
            with pytest.raises(StopAsyncIteration):
                await watch.next()
        assert "compacted" in (watch.closed_reason or "")
        with pytest.raises(Compacted):
            await store.watch("/c/", first.mod_rv)
        listed = await store.list("/c/")
        assert [r.key for r in listed.records] == ["/c/b", "/c/c"]
        fresh = await store.watch("/c/", listed.revision)
        latest = await store.update("/c/b", b"changed")
        assert [(e.type, e.rv) for e in await events(fresh, 1)] == [("MODIFIED", latest.mod_rv)]
    finally:
        await store.close()


async def test_tls_with_client_certificates(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "pki")
    cluster = start_etcd(tmp_path / "etcd", 1, tls=tls)
    try:
        store = await EtcdStorage.open(
            cluster.endpoints, ca_file=tls.ca, cert_file=tls.client_cert, key_file=tls.client_key
        )
        try:
            watch = await store.watch("/t/", await store.revision())
            created = await store.create("/t/a", b"secret-free")
            assert [e.rv for e in await events(watch, 1)] == [created.mod_rv]
        finally:
            await store.close()
        async with asyncio.timeout(GUARD):
            with pytest.raises(Unavailable):  # no client certificate: etcd refuses the handshake
                await EtcdStorage.open(cluster.endpoints, ca_file=tls.ca, timeout=2.0)
            with pytest.raises(Unavailable, match="TLS"):  # etcd's certificate is not trusted
                await EtcdStorage.open(
                    cluster.endpoints, cert_file=tls.client_cert, key_file=tls.client_key, timeout=2.0
                )
        with pytest.raises(ValueError, match="both"):
            await EtcdStorage.open(cluster.endpoints, cert_file=tls.client_cert)
    finally:
        cluster.stop()
