"""Benchmark of `anywhere serve`: writes, lists and watch delivery, beside raw storage in the same run.

    .venv/bin/python bench/apiserver.py [--objects 10000] [--clients 16] [--watchers 100] [--watch-objects 2000]
    .venv/bin/python bench/apiserver.py --storage etcd [--members 1|3] [...]

It starts a real server process (HTTPS, client certificate auth, SQLite storage in a temporary
folder, or etcd: real members started here on loopback) and drives it over real connections. The
baseline is the storage alone: the same writes through the same backend client (SQLiteStorage, or
EtcdStorage against the same etcd members), `--clients` at a time, in the same run on the same
machine, so the ratio API/raw holds even when the machine is slow or noisy. Times are wall-clock;
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
from _serve import start_serve, stop_serve  # bench/_serve.py (bench/ is on the path of a script run from it)

from anywhere.storage import Storage
from anywhere.storage.etcd import EtcdStorage
from anywhere.storage.etcd_server import LocalCluster, start_local_cluster
from anywhere.storage.sqlite import SQLiteStorage


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def configmap(name: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"bench": "yes"}},
            "data": {"key": "value", "name": name},
        }
    )


class Client:
    def __init__(self, data_dir: Path, url: str) -> None:
        context = ssl.create_default_context(cafile=str(data_dir / "ca.crt"))
        context.load_cert_chain(str(data_dir / "admin.crt"), str(data_dir / "admin.key"))
        self.url = url
        self.ssl = context

    def session(self, limit: int = 100) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=limit),
            headers={"Content-Type": "application/json"},
        )


async def create_many(client: Client, namespace: str, names: list[str], clients: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            name = queue.get_nowait()
            start = time.perf_counter()
            async with session.post(
                f"{client.url}/api/v1/namespaces/{namespace}/configmaps", data=configmap(name)
            ) as response:
                await response.read()
                if response.status != 201:
                    raise RuntimeError(f"create {name}: HTTP {response.status}")
            latencies.append(time.perf_counter() - start)

    sessions = [client.session(limit=1) for _ in range(clients)]
    try:
        await asyncio.gather(*(worker(s) for s in sessions))
    finally:
        for session in sessions:
            await session.close()
    return latencies


async def create_namespace(client: Client, name: str) -> None:
    async with client.session() as session:
        body = orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        async with session.post(f"{client.url}/api/v1/namespaces", data=body) as response:
            await response.read()


async def list_all(client: Client, namespace: str, limit: int) -> tuple[float, int]:
    async with client.session() as session:
        start = time.perf_counter()
        count, token = 0, ""
        while True:
            params = {"limit": str(limit)} if limit else {}
            if token:
                params["continue"] = token
            async with session.get(
                f"{client.url}/api/v1/namespaces/{namespace}/configmaps", params=params
            ) as response:
                body = orjson.loads(await response.read())
            count += len(body["items"])
            token = body["metadata"].get("continue", "")
            if not token:
                return time.perf_counter() - start, count


async def watch_lag(client: Client, namespace: str, watchers: int, objects: int) -> list[float]:
    sent: dict[str, float] = {}
    lags: list[float] = []
    ready = 0
    all_ready = asyncio.Event()

    async def watcher(session: aiohttp.ClientSession, rv: str) -> None:
        nonlocal ready
        url = f"{client.url}/api/v1/namespaces/{namespace}/configmaps"
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "600"}
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=None)) as response:
            ready += 1
            if ready == watchers:
                all_ready.set()
            seen = 0
            async for line in response.content:
                event = orjson.loads(line)
                name = event["object"]["metadata"]["name"]
                lags.append(time.perf_counter() - sent[name])
                seen += 1
                if seen == objects:
                    return

    async with client.session(limit=watchers + 20) as session:
        async with session.get(
            f"{client.url}/api/v1/namespaces/{namespace}/configmaps", params={"limit": "1"}
        ) as response:
            rv = orjson.loads(await response.read())["metadata"]["resourceVersion"]
        tasks = [asyncio.create_task(watcher(session, rv)) for _ in range(watchers)]
        await asyncio.wait_for(all_ready.wait(), 60)

        async def create(name: str) -> None:
            sent[name] = time.perf_counter()
            async with session.post(
                f"{client.url}/api/v1/namespaces/{namespace}/configmaps", data=configmap(name)
            ) as response:
                await response.read()

        names = [f"w-{i:05}" for i in range(objects)]
        for start in range(0, objects, 16):
            await asyncio.gather(*(create(n) for n in names[start : start + 16]))
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
    return lags


async def raw_storage(store: Storage, objects: int, clients: int) -> tuple[float, list[float]]:
    """The same writes (same keys, same bytes) straight into a storage backend, `clients` at a time."""
    latencies: list[float] = []
    try:
        names = [f"raw-{i:05}" for i in range(objects)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in names:
            queue.put_nowait(name)

        async def worker() -> None:
            while not queue.empty():
                name = queue.get_nowait()
                began = time.perf_counter()
                await store.create(f"/registry/core/configmaps/bench/{name}", configmap(name))
                latencies.append(time.perf_counter() - began)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return objects / (time.perf_counter() - start), latencies
    finally:
        await store.close()


def raw_transactions(path: Path, objects: int, clients: int) -> float:
    """The same writes as plain SQLite transactions, one per write, from `clients` threads.

    Same schema and durability (WAL, synchronous=FULL) as the backend, without its group commit:
    what a straightforward store would do per request.
    """
    import sqlite3
    import threading

    from anywhere.storage.sqlite import _SCHEMA, _connect

    setup = _connect(str(path))
    setup.executescript(_SCHEMA)
    setup.close()
    names = iter([f"tx-{i:05}" for i in range(objects)])
    lock = threading.Lock()
    revision = [0]

    def worker() -> None:
        conn = _connect(str(path))
        try:
            while True:
                with lock:
                    name = next(names, None)
                if name is None:
                    return
                key, value = f"/registry/core/configmaps/bench/{name}", configmap(name)
                while True:
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        break
                    except sqlite3.OperationalError:
                        continue
                with lock:
                    revision[0] += 1
                    rv = revision[0]
                conn.execute("INSERT INTO kv VALUES (?, ?, ?, ?)", (key, value, rv, rv))
                conn.execute("INSERT INTO log VALUES (?, ?, 0, ?)", (rv, key, value))
                conn.execute("COMMIT")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return objects / (time.perf_counter() - start)


async def server_side_create_latency(client: Client) -> float:
    """Mean time the server spent on a create, from its own /metrics (receipt to response)."""
    async with client.session() as session, session.get(f"{client.url}/metrics") as response:
        text = await response.text()
    values = {}
    for line in text.splitlines():
        if (
            line.startswith("apiserver_request_duration_seconds_")
            and 'verb="create"' in line
            and 'resource="configmaps"' in line
        ):
            name, value = line.split("{")[0], float(line.rsplit(" ", 1)[1])
            values[name] = value
    count = values.get("apiserver_request_duration_seconds_count", 0.0)
    return values.get("apiserver_request_duration_seconds_sum", 0.0) / count if count else 0.0


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="anywhere-bench-") as tmp:
        root = Path(tmp)
        cluster: LocalCluster | None = None
        extra: tuple[str, ...] = ()
        tx_rate = 0.0
        try:
            if args.storage == "etcd":
                cluster = await start_local_cluster(root / "etcd", args.members)
                extra = ("--storage", "etcd", "--etcd-endpoints", cluster.endpoint_arg)
                # the raw baseline writes under another prefix of the same members, before the API runs
                raw_store: Storage = await EtcdStorage.open(cluster.endpoints, prefix="/raw/")
            else:
                raw_store = await SQLiteStorage.open(root / "raw.db")
            raw_rate, raw_latencies = await raw_storage(raw_store, args.objects, args.clients)
            if cluster is None:
                tx_rate = await asyncio.to_thread(
                    raw_transactions, root / "tx.db", args.objects, args.clients
                )
            process, url = start_serve(root / "server", *extra)
            try:
                client = Client(root / "server", url)
                await create_namespace(client, "bench")
                names = [f"cm-{i:05}" for i in range(args.objects)]
                start, cpu_start = time.perf_counter(), time.process_time()
                latencies = await create_many(client, "bench", names, args.clients)
                elapsed = time.perf_counter() - start
                api_rate = args.objects / elapsed
                client_cores = (time.process_time() - cpu_start) / elapsed
                server_mean = await server_side_create_latency(client)
                unpaged, count = await list_all(client, "bench", 0)
                paged, paged_count = await list_all(client, "bench", 500)
                await create_namespace(client, "watch")
                lags = await watch_lag(client, "watch", args.watchers, args.watch_objects)
            finally:
                stop_serve(process)
        finally:
            if cluster is not None:
                await cluster.stop()
    backend = f"etcd, {args.members} member{'s' if args.members > 1 else ''}" if cluster else "SQLite"
    print(f"creates ({args.objects} ConfigMaps, {args.clients} clients, storage: {backend}):")
    print(
        f"  API             {api_rate:8.0f} creates/s   p50 {statistics.median(latencies) * 1000:6.1f} ms   "
        f"p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
    )
    print(f"  (the load generator itself kept {client_cores:.2f} of the machine's cores busy meanwhile;")
    print(
        f"   the server's own time per create, receipt to response incl. the durable commit: {server_mean * 1000:.1f} ms)"
    )
    raw_p50, raw_p99 = statistics.median(raw_latencies) * 1000, percentile(raw_latencies, 0.99) * 1000
    if cluster is not None:
        print(
            f"  raw etcd puts   {raw_rate:8.0f} creates/s   p50 {raw_p50:6.1f} ms   p99 {raw_p99:6.1f} ms"
            f"   (EtcdStorage.create, the server's own client, {args.clients} at a time)"
        )
        print(f"  ratio API/raw etcd      {api_rate / raw_rate:6.2f}")
    else:
        print(
            f"  raw storage     {raw_rate:8.0f} creates/s   p50 {raw_p50:6.1f} ms   p99 {raw_p99:6.1f} ms"
            "   (same writes through the storage backend alone, group commit)"
        )
        print(
            f"  raw SQLite tx   {tx_rate:8.0f} creates/s   (same writes as one SQLite transaction each, {args.clients} threads)"
        )
        print(
            f"  ratio API/raw SQLite tx {api_rate / tx_rate:6.2f}   (the baseline: plain SQLite transactions)"
        )
        print(
            f"  ratio API/raw storage   {api_rate / raw_rate:6.2f}   (against our own group-commit backend)"
        )
    print(f"list of {count} ConfigMaps:")
    print(f"  unpaged         {unpaged * 1000:8.0f} ms")
    print(f"  paged (500)     {paged * 1000:8.0f} ms   ({paged_count} items)")
    print(f"watch delivery ({args.watchers} watchers, {args.watch_objects} creates, {len(lags)} events):")
    print(f"  lag p50         {percentile(lags, 0.5) * 1000:8.1f} ms")
    print(f"  lag p99         {percentile(lags, 0.99) * 1000:8.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--watch-objects", type=int, default=2_000)
    parser.add_argument("--storage", choices=("sqlite", "etcd"), default="sqlite")
    parser.add_argument(
        "--members", type=int, choices=(1, 3), default=1, help="etcd members (--storage etcd)"
    )
    try:
        import uvloop

        uvloop.run(main(parser.parse_args()))
    except ImportError:
        asyncio.run(main(parser.parse_args()))
