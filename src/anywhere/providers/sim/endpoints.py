"""One Kubernetes API per simulated workload cluster, all served by this process.

Why: a ``sim`` cluster has no machines, yet its users, kubectl and our own controllers must find a
real Kubernetes API where its Nodes register and heartbeat (DESIGN.md §2). Each cluster gets an
:class:`~anywhere.apiserver.server.APIServer` of its own on its own 127.0.0.1 port, with its state
(PKI + SQLite) in ``DATA_DIR/sim/NAMESPACE/CLUSTER``: a restarted plane serves the same cluster
with the same CA, credentials, data and port, so kubeconfigs handed out keep working.

Ports: a new endpoint gets a free port *below* the kernel's ephemeral range, never one the
kernel may hand to an outgoing connection; otherwise, after a restart, a client of this very
process could hold a recorded port before its cluster binds it again. Every endpoint records
its port in its folder, and new endpoints avoid every recorded port.

Endpoints must scale to hundreds per process: each costs its storage's threads, its server's
few tasks and a listening socket; compaction of all their stores is one task for the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from anywhere.apiserver import authn, pki
from anywhere.apiserver.server import APIServer
from anywhere.storage.sqlite import SQLiteStorage

__all__ = ["COMPACT_EVERY", "HISTORY", "Endpoint", "EndpointError", "EndpointHost"]

log = logging.getLogger("anywhere.providers.sim.endpoints")

HOST = "127.0.0.1"
# Every store is compacted this often, keeping the last HISTORY revisions for watches to resume.
COMPACT_EVERY = 300.0
HISTORY = 10_000
PORT_FILE = "port"
# A request still running when an endpoint stops (a watch a client opened just before) is cut
# after this long; watches open before the stop end at once.
SHUTDOWN_TIMEOUT = 2.0
# Where new endpoints' ports come from when the kernel's ephemeral range leaves room below it.
FIRST_PORT = 20000
MIN_RANGE = 1000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


class EndpointError(Exception):
    """An endpoint cannot be served (its port is taken, its folder is damaged); the message says
    what to do."""


@dataclass(frozen=True)
class Endpoint:
    """Where a workload cluster's API is reached, and an admin kubeconfig for it."""

    port: int
    server_url: str
    kubeconfig: bytes

    def __repr__(self) -> str:  # keep credentials out of logs
        return f"Endpoint({self.server_url})"


@dataclass
class _Served:
    endpoint: Endpoint
    storage: SQLiteStorage
    server: APIServer
    runner: web.AppRunner


def port_range() -> range:
    """Ports for new endpoints: from FIRST_PORT up to the kernel's ephemeral range (if that leaves
    at least MIN_RANGE ports), else an empty range (the kernel then picks)."""
    try:
        low = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(FIRST_PORT, low) if low - FIRST_PORT >= MIN_RANGE else range(0)


class EndpointHost:
    """The workload cluster APIs of one management plane, keyed by (namespace, cluster)."""

    def __init__(self, data_dir: Path, *, ports: range | None = None) -> None:
        self.root = Path(data_dir) / "sim"
        self._ports = port_range() if ports is None else ports
        self._served: dict[tuple[str, str], _Served] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._pick_lock = asyncio.Lock()
        self._recorded: dict[tuple[str, str], int] | None = None  # every folder's port, read once
        self._compactor: asyncio.Task[None] | None = None
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}

    def folder(self, namespace: str, cluster: str) -> Path:
        return self.root / namespace / cluster

    def get(self, namespace: str, cluster: str) -> Endpoint | None:
        """The endpoint if it is being served now."""
        served = self._served.get((namespace, cluster))
        return served.endpoint if served is not None else None

    async def served(self, namespace: str, cluster: str) -> Endpoint:
        """The endpoint, once it is served (by whoever calls :meth:`ensure`)."""
        key = (namespace, cluster)
        while (served := self._served.get(key)) is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(key, []).append(waiter)
            await waiter
        return served.endpoint

    def __len__(self) -> int:
        return len(self._served)

    async def ensure(self, namespace: str, cluster: str, port: int | None = None) -> Endpoint:
        """Serve the cluster's API (if not served yet) and say where.

        ``port`` is the port recorded for it (bound again; :class:`EndpointError` when another
        process holds it); ``None`` takes the port recorded in its folder, or a free one.
        """
        key = (namespace, cluster)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            served = self._served.get(key)
            if served is not None:
                return served.endpoint
            folder = self.folder(namespace, cluster)
            served = await self._start(key, folder, port)
            self._served[key] = served
            for waiter in self._waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(None)
            if self._compactor is None or self._compactor.done():
                self._compactor = asyncio.create_task(self._compact_forever(), name="sim endpoint compaction")
            log.info("serving the API of cluster %s/%s at %s", namespace, cluster, served.endpoint.server_url)
            return served.endpoint

    async def stop(self, namespace: str, cluster: str) -> None:
        """Stop serving the cluster's API (its state stays for a later :meth:`ensure`)."""
        key = (namespace, cluster)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            served = self._served.pop(key, None)
            if served is not None:
                await _shutdown(served)
                log.info("stopped the API of cluster %s/%s", namespace, cluster)
            if not self._served:  # nothing left to compact: no task outlives the last endpoint
                await self._stop_compactor()

    async def destroy(self, namespace: str, cluster: str) -> None:
        """Stop serving the cluster's API and delete its state (the cluster is gone)."""
        await self.stop(namespace, cluster)
        folder = self.folder(namespace, cluster)
        await asyncio.to_thread(shutil.rmtree, folder, True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the namespace's folder, once empty
        if self._recorded is not None:
            self._recorded.pop((namespace, cluster), None)
        lock = self._locks.get((namespace, cluster))
        if lock is not None and not lock.locked():
            del self._locks[(namespace, cluster)]

    async def close(self) -> None:
        """Stop every endpoint (the plane stops)."""
        await self._stop_compactor()
        served, self._served = list(self._served.values()), {}
        for one in served:
            with contextlib.suppress(Exception):
                await _shutdown(one)

    # -- internals -------------------------------------------------------------------------------

    async def _stop_compactor(self) -> None:
        compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await compactor

    async def _start(self, key: tuple[str, str], folder: Path, port: int | None) -> _Served:
        namespace, cluster = key
        try:
            keys = await asyncio.to_thread(pki.load_or_create, folder)
        except (pki.PKIError, OSError) as exc:
            raise EndpointError(
                f"cannot load the PKI of cluster {namespace}/{cluster} in {folder}: {exc}"
            ) from exc
        recorded = await asyncio.to_thread(_read_port, folder)
        if port is not None:
            sock = self._bind(key, port)
        else:
            try:  # the port this folder had before, if it is still free
                sock = self._bind(key, recorded) if recorded else await self._pick(key)
            except EndpointError:
                sock = await self._pick(key)
        storage: SQLiteStorage | None = None
        server: APIServer | None = None
        runner: web.AppRunner | None = None
        try:
            bound = int(sock.getsockname()[1])
            if bound != recorded:
                await asyncio.to_thread(_write_port, folder, bound)
            (await self._recorded_ports())[key] = bound
            storage = await SQLiteStorage.open(folder / "state.db")
            authenticator = authn.Authenticator({keys.admin_token: authn.ADMIN})
            server = APIServer(storage, authenticator, install_crds=False)
            await server.start()
            runner = web.AppRunner(
                server.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
            )
            await runner.setup()
            site = web.SockSite(runner, sock, ssl_context=pki.server_ssl_context(keys))
            await site.start()
        except BaseException:
            sock.close()
            if runner is not None:
                await runner.cleanup()
            if server is not None:
                await server.stop()
            if storage is not None:
                await storage.close()
            raise
        url = f"https://{HOST}:{bound}"
        kubeconfig = pki.render_kubeconfig(
            url,
            keys.ca_cert_pem,
            user=f"{cluster}-admin",
            client_cert_pem=keys.admin_cert_pem,
            client_key_pem=keys.admin_key_pem,
            cluster_name=cluster,
            context_name=f"{cluster}-admin@{cluster}",
        ).encode()
        return _Served(Endpoint(bound, url, kubeconfig), storage, server, runner)

    @staticmethod
    def _bind(key: tuple[str, str], port: int) -> socket.socket:
        namespace, cluster = key
        try:
            return _listen(port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise EndpointError(
                    f"cannot serve the API of cluster {namespace}/{cluster} on {HOST}:{port}: the port is "
                    "in use by another process; stop that process (or delete the cluster to give it "
                    "a new endpoint)"
                ) from None
            raise EndpointError(
                f"cannot serve the API of cluster {namespace}/{cluster} on {HOST}:{port}: {exc.strerror or exc}"
            ) from None

    async def _pick(self, key: tuple[str, str]) -> socket.socket:
        async with self._pick_lock:
            recorded = await self._recorded_ports()
            taken = {p for k, p in recorded.items() if k != key}
            taken.update(s.endpoint.port for s in self._served.values())
            sock = _listen_free(self._ports, taken)
            recorded[key] = int(sock.getsockname()[1])  # before the lock goes: nobody else takes it
            return sock

    async def _recorded_ports(self) -> dict[tuple[str, str], int]:
        if self._recorded is None:
            self._recorded = await asyncio.to_thread(_scan_ports, self.root)
        return self._recorded

    async def _compact_forever(self) -> None:
        while True:
            await asyncio.sleep(COMPACT_EVERY)
            for key, served in list(self._served.items()):
                try:
                    await served.storage.compact(HISTORY)
                except Exception as exc:  # the store may be closing; the next round tries again
                    log.debug("compacting the store of %s/%s failed: %s", *key, exc)


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _listen_free(ports: range, taken: set[int]) -> socket.socket:
    """A listening socket on a free port of ``ports`` not in ``taken`` (any free port if ``ports``
    is empty), starting at a random place so that planes sharing a host rarely collide."""
    if len(ports):
        start = random.randrange(len(ports))
        for i in range(len(ports)):
            candidate = ports[(start + i) % len(ports)]
            if candidate in taken:
                continue
            try:
                return _listen(candidate)
            except OSError:
                continue
        raise EndpointError(
            f"no free port left in {ports.start}-{ports.stop - 1} for another cluster API; delete clusters "
            "that are no longer needed"
        )
    while True:
        sock = _listen(0)
        if int(sock.getsockname()[1]) not in taken:
            return sock
        sock.close()


def _read_port(folder: Path) -> int | None:
    try:
        return int((folder / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _write_port(folder: Path, port: int) -> None:
    temporary = folder / f".{PORT_FILE}.tmp"
    temporary.write_text(f"{port}\n")
    temporary.replace(folder / PORT_FILE)


def _scan_ports(root: Path) -> dict[tuple[str, str], int]:
    recorded: dict[tuple[str, str], int] = {}
    if not root.is_dir():
        return recorded
    for namespace in root.iterdir():
        if not namespace.is_dir():
            continue
        for cluster in namespace.iterdir():
            port = _read_port(cluster)
            if port is not None:
                recorded[(namespace.name, cluster.name)] = port
    return recorded


async def _shutdown(served: _Served) -> None:
    """Stop accepting connections, end the open watches (clients would open new ones at once
    otherwise), then close the connections and the store."""
    try:
        for site in list(served.runner.sites):
            await site.stop()
        await served.server.stop()
        await served.runner.cleanup()
    finally:
        await served.storage.close()
