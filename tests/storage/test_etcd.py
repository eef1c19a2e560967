"""What only the etcd backend has to show: several stores on one etcd, member loss, outages, compaction
while a watch was broken, TLS. Every test runs real etcd processes (tests/etcd_fixtures.py).

Some tests block the event loop on purpose while etcd restarts: the store's background stream cannot
run meanwhile, which is how "the history was compacted while this server was cut off" is made to
happen deterministically rather than by a race.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from anywhere.storage import Compacted, Event, KeyExists, Unavailable, ValueTooLarge, Watch, _hub
from anywhere.storage import etcd as etcd_backend
from anywhere.storage.etcd import EtcdStorage, parse_endpoints
from tests.conftest import stop_server
from tests.etcd_fixtures import (
    EtcdCluster,
    etcd_revision,
    etcdctl,
    free_ports,
    make_tls,
    start_etcd,
    start_etcd_server,
)

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


def etcd_watchers(cluster: EtcdCluster, index: int = 0) -> int:
    """How many watchers the member holds, from its metrics (etcd's own count, not ours)."""
    with urllib.request.urlopen(f"{cluster.endpoints[index]}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    raise AssertionError("etcd reports no etcd_debugging_mvcc_watcher_total")


def wait_for_watchers(cluster: EtcdCluster, count: int) -> None:
    """Poll the member's metrics (an external process) until it holds ``count`` watchers."""
    deadline = time.monotonic() + GUARD
    while (found := etcd_watchers(cluster)) != count:
        assert time.monotonic() < deadline, f"etcd holds {found} watchers, not {count}"
        time.sleep(0.05)


def a_follower(cluster: EtcdCluster) -> int:
    """A member that is not the leader. Freezing the leader would also lose the writes proposed
    until another is elected (their fate unknown to the client: etcd's, not the store's, doing)."""
    statuses = json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))
    by_url = {s["Endpoint"]: s["Status"] for s in statuses}
    for index, url in enumerate(cluster.endpoints):
        status = by_url[url]
        if status["header"]["member_id"] != status["leader"]:
            return index
    raise AssertionError("every member says it leads")


def freeze(cluster: EtcdCluster, index: int, frozen: bool) -> None:
    """SIGSTOP (or SIGCONT) a member: its sockets stay open and it answers nothing, like a hung host."""
    process = cluster.members[index].process
    assert process is not None
    process.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)


async def test_a_frozen_member_does_not_stall_writes_or_the_watch(etcd_cluster: EtcdCluster) -> None:
    """The member serving the shared watch (and the writes) freezes: the write sent to it fails (its
    fate unknown, so it is not retried), then writes go elsewhere and the watch follows."""
    frozen = a_follower(etcd_cluster)
    endpoints = etcd_cluster.endpoints
    store = await EtcdStorage.open(
        [endpoints[frozen], *endpoints[:frozen], *endpoints[frozen + 1 :]], timeout=2.0
    )
    try:
        watch = await store.watch("/f/", await store.revision())
        first = await store.create("/f/0", b"0")
        assert [e.rv for e in await events(watch, 1)] == [first.mod_rv]  # the stream is on that member
        freeze(etcd_cluster, frozen, True)
        written, failures = [], []
        async with asyncio.timeout(GUARD):
            for attempt in range(1, 10):
                try:
                    written.append(await store.create(f"/f/{attempt}", b"x"))
                except Unavailable as exc:
                    failures.append(str(exc))
                if len(written) == 3:
                    break
        # (without failing over, every write went to the frozen member and failed)
        assert len(written) == 3, failures
        assert all("may or may not have been applied" in failure for failure in failures), failures
        seen: list[Event] = []
        async with asyncio.timeout(GUARD):
            while not seen or seen[-1].rv < written[-1].mod_rv:
                if (event := await watch.next()) is not None:
                    seen.append(event)
        # (a write whose fate was unknown may show up too)
        assert {(r.key, r.mod_rv) for r in written} <= {(e.key, e.rv) for e in seen}
        assert await store.revision() >= written[-1].mod_rv
    finally:
        freeze(etcd_cluster, frozen, False)
        await store.close()


async def test_a_frozen_member_is_noticed_when_only_others_write(
    etcd_cluster: EtcdCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing this store wrote is missing, yet its stream went silent: the watchdog pings the
    member, finds it frozen, and resumes elsewhere; this store's own calls then avoid it too."""
    monkeypatch.setattr(etcd_backend, "WATCH_IDLE", 0.5)  # (the default is a few seconds)
    frozen = a_follower(etcd_cluster)
    endpoints = etcd_cluster.endpoints
    others = [*endpoints[:frozen], *endpoints[frozen + 1 :]]
    store = await EtcdStorage.open([endpoints[frozen], *others], timeout=2.0)
    other = await EtcdStorage.open(others, timeout=2.0)
    try:
        watch = await store.watch("/g/", await store.revision())
        first = await other.create("/g/0", b"0")
        assert [e.rv for e in await events(watch, 1)] == [first.mod_rv]
        freeze(etcd_cluster, frozen, True)
        second = await other.create("/g/1", b"1")
        assert [e.rv for e in await events(watch, 1)] == [second.mod_rv]
        async with asyncio.timeout(GUARD):
            mine = await store.create("/g/2", b"2")  # no Unavailable: that member is avoided already
        assert [e.rv for e in await events(watch, 1)] == [mine.mod_rv]
    finally:
        freeze(etcd_cluster, frozen, False)
        await other.close()
        await store.close()


async def test_a_watch_from_before_the_store_moves_to_the_shared_stream(single: EtcdCluster) -> None:
    """A watch older than the store reads etcd's history with a stream of its own only until it
    reaches the store's first revision; then the shared stream serves it and etcd holds one watcher."""
    writer = await EtcdStorage.open(single.endpoints)
    try:
        a = await writer.create("/h/a", b"1")
        b = await writer.create("/h/b", b"2")
        await writer.create("/q/x", b"outside the watched prefix")  # the revision the store starts at
    finally:
        await writer.close()
    store = await EtcdStorage.open(single.endpoints)
    try:
        watch = await store.watch("/h/", a.mod_rv - 1)
        assert [(e.key, e.rv) for e in await events(watch, 2)] == [("/h/a", a.mod_rv), ("/h/b", b.mod_rv)]
        await asyncio.to_thread(wait_for_watchers, single, 1)  # the store's shared stream alone
        c = await store.update("/h/a", b"3")
        seen = await events(watch, 1)
        assert [(e.type, e.key, e.rv, e.prev) for e in seen] == [("MODIFIED", "/h/a", c.mod_rv, b"1")]
        assert store.hub.watcher_count == 1
        await store.close()
        async with asyncio.timeout(GUARD):
            with pytest.raises(StopAsyncIteration):
                await watch.next()
        assert watch.closed_reason == "the store is closing"
    finally:
        await store.close()


async def test_too_large_a_value_is_refused_for_good(etcd_member: EtcdCluster, tmp_path: Path) -> None:
    """etcd's size limit is an answer, not an outage: ValueTooLarge, never Unavailable (503)."""
    store = await EtcdStorage.open(etcd_member.endpoints, prefix=f"/big/{tmp_path.name}/")
    try:
        # over etcd's own limit (1.5 MiB), and over the gRPC message limit above it (2 MiB)
        for size in (1_700_000, 2_200_000):
            with pytest.raises(ValueTooLarge, match=r"at most 1\.5 MiB"):
                await store.create("/k", b"x" * size)
        kept = await store.create("/k", b"small")  # nothing broken meanwhile
        with pytest.raises(ValueTooLarge):
            await store.update("/k", b"x" * 1_700_000, expected_rv=kept.mod_rv)
        assert await store.get("/k") == kept
    finally:
        await store.close()


async def test_too_large_an_object_is_413_from_the_api(etcd_member: EtcdCluster, tmp_path: Path) -> None:
    server = await asyncio.to_thread(
        start_etcd_server, tmp_path / "serve", etcd_member, "--etcd-prefix", f"/api-{tmp_path.name}/"
    )
    try:
        tls = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
        tls.load_cert_chain(str(server.data_dir / "admin.crt"), str(server.data_dir / "admin.key"))
        # under the API's 3 MiB body limit, over etcd's 1.5 MiB
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "big"},
            "data": {"k": "x" * 1_700_000},
        }
        url = f"{server.url}/api/v1/namespaces/default/configmaps"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
            async with session.post(url, json=body) as response:
                status = await response.json()
                assert response.status == 413
            assert status["reason"] == "RequestEntityTooLarge"
            assert "1.5 MiB" in status["message"]
            async with session.get(f"{url}/big") as response:
                assert response.status == 404
    finally:
        await asyncio.to_thread(stop_server, server)


async def test_waiters_that_gave_up_are_forgotten(
    etcd_member: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(etcd_backend, "CATCH_UP_TIMEOUT", 0.05)
    store = await EtcdStorage.open(etcd_member.endpoints, prefix=f"/wait/{tmp_path.name}/")
    try:
        for _ in range(3):
            await store._caught_up(10**12)  # a revision the hub will not reach: each one times out
        waiting = asyncio.create_task(store._caught_up(10**12))
        await asyncio.sleep(0)  # (let it register)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert store._seen_waiters == []
    finally:
        await store.close()


async def test_the_watch_cache_is_capped_by_bytes(
    etcd_member: EtcdCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big events push old ones out of memory by their size; a watch from before them reads etcd."""
    monkeypatch.setattr(_hub, "HISTORY_BYTES", 10_000)
    store = await EtcdStorage.open(etcd_member.endpoints, prefix=f"/cap/{tmp_path.name}/")
    try:
        start = await store.revision()
        live = await store.watch("/", start)
        written = [await store.create(f"/v/{i}", bytes([65 + i]) * 4_000) for i in range(5)]
        await events(live, 5)  # the hub has published them all
        count, size = store.hub.held
        assert count == 2
        assert size <= 10_000
        replay = await store.watch("/v/", start)  # older than memory: from etcd
        assert [(e.key, e.value) for e in await events(replay, 5)] == [(r.key, r.value) for r in written]
    finally:
        await store.close()


async def test_reading_history_gives_up_at_the_request_deadline(
    etcd_member: EtcdCluster, tmp_path: Path
) -> None:
    """History that does not come (a member gone quiet) fails the watch within the store's timeout."""
    store = await EtcdStorage.open(etcd_member.endpoints, prefix=f"/late/{tmp_path.name}/", timeout=1.0)
    try:
        now = etcd_revision(etcd_member)
        async with asyncio.timeout(10):  # against the hang this fixes (it waited 30 s): not a measurement
            with pytest.raises(Unavailable, match="reading etcd's history failed"):
                await store._history("/", now, now + 1000)  # events that will never arrive
    finally:
        await store.close()


async def test_a_store_given_one_member_learns_the_others_and_outlives_it(etcd_cluster: EtcdCluster) -> None:
    """As etcd's client with AutoSyncInterval: a store started with its machine's member only learns
    the membership, keeps its own member first, and serves through the others when it freezes (the
    member of a machine being replaced; without the sync every request would wait on it)."""
    alone = a_follower(etcd_cluster)
    own = etcd_cluster.endpoints[alone]
    store = await EtcdStorage.open([own], timeout=2.0, auto_sync_interval=30.0)
    try:
        assert store.endpoints[0] == own
        assert sorted(store.endpoints) == sorted(etcd_cluster.endpoints)
        written = await store.create("/sync/a", b"1")
        freeze(etcd_cluster, alone, True)
        async with asyncio.timeout(GUARD):
            record = await store.get("/sync/a")
        assert record is not None
        assert record.mod_rv == written.mod_rv
    finally:
        freeze(etcd_cluster, alone, False)
        await store.close()


async def test_without_auto_sync_a_store_keeps_the_members_it_was_given(etcd_cluster: EtcdCluster) -> None:
    store = await EtcdStorage.open(etcd_cluster.endpoints[:1], timeout=2.0)
    try:
        assert store.endpoints == etcd_cluster.endpoints[:1]
    finally:
        await store.close()
