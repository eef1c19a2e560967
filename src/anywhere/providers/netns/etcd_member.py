"""The stacked etcd member of a ``netns`` control plane machine: how it is named, where it listens,
where it keeps its data, and the command line that starts it.

Stacked etcd, as kubeadm runs it: every control plane machine runs one member, named after the
machine, listening on the machine's address (client port 2379, peer port 2380), with its data in
the machine's state folder. The first control plane machine forms the cluster alone
(:meth:`EtcdMember.bootstrap`, ``--initial-cluster-state new``); every later one is first added to
the cluster as a learner (:meth:`~anywhere.providers.netns.etcd_admin.NetnsEtcdAdmin.add_learner`,
which answers the ``--initial-cluster`` to use), then started with :meth:`EtcdMember.join`
(``--initial-cluster-state existing``), then promoted once it has caught up. A member whose data
dir already holds its state restarts with :meth:`EtcdMember.restart` (etcd then ignores the
initial-cluster flags).

This module only describes the member: :class:`~anywhere.storage.etcd_server.MemberConfig` gives the
argv and environment, which the provider's spawner runs inside the machine's network namespace, and
:meth:`EtcdMember.local` wraps them in a plain local subprocess for loopback tests. Raft timers are
:data:`~anywhere.storage.etcd_server.FAST_FAILOVER` (a lost leader replaced in about a second; the
reasons are beside that constant).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from anywhere.storage._etcd_gateway import Json
from anywhere.storage.etcd_server import (
    FAST_FAILOVER,
    START_TIMEOUT,
    EtcdNotInstalled,
    EtcdStartError,
    LocalMember,
    MemberConfig,
    RaftTimers,
    ServerTLS,
    etcd_binary,
    initial_cluster,
    member_url,
    wait_ready,
)

__all__ = [
    "CLIENT_PORT",
    "DATA_DIR",
    "LOG_FILE",
    "PEER_PORT",
    "EtcdMember",
    "EtcdNotInstalled",
    "EtcdStartError",
    "cluster_token",
    "etcd_binary",
]

CLIENT_PORT = 2379
PEER_PORT = 2380
DATA_DIR = "etcd"  # inside the machine's state folder
LOG_FILE = "etcd.log"


def cluster_token(namespace: str, cluster: str) -> str:
    """``--initial-cluster-token`` for the members of one cluster: it is mixed into the cluster and
    member IDs, so members of two clusters on one bridge can never take each other for peers (a
    recycled DHCP address that still has an old member's peer URL is refused, not merged)."""
    return f"anywhere-{namespace}-{cluster}"


@dataclass(frozen=True)
class EtcdMember:
    """The etcd member of control plane machine ``machine`` at ``ip``.

    ``state_dir`` is the machine's state folder (the member keeps :data:`DATA_DIR` and
    :data:`LOG_FILE` in it). Ports are etcd's standard ones; loopback tests, where several members
    share a host, pass others. TLS is optional: with ``client_tls`` the client URL is https and
    clients must present a certificate of its CA; with ``peer_tls`` the same holds between members.
    """

    machine: str
    ip: str
    state_dir: Path
    token: str
    client_port: int = CLIENT_PORT
    peer_port: int = PEER_PORT
    client_tls: ServerTLS | None = None
    peer_tls: ServerTLS | None = None
    timers: RaftTimers = FAST_FAILOVER

    def __post_init__(self) -> None:
        if not self.machine:
            raise ValueError("an etcd member needs a name (its machine's)")
        try:
            ipaddress.ip_address(self.ip)
        except ValueError:
            raise ValueError(
                f"the etcd member of machine {self.machine}: {self.ip!r} is not an IP address"
            ) from None

    @property
    def client_url(self) -> str:
        return member_url("https" if self.client_tls else "http", self.ip, self.client_port)

    @property
    def peer_url(self) -> str:
        return member_url("https" if self.peer_tls else "http", self.ip, self.peer_port)

    @property
    def data_dir(self) -> Path:
        return self.state_dir / DATA_DIR

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG_FILE

    @property
    def initialized(self) -> bool:
        """Whether the data dir holds the member's state (it has run, and restarts from it)."""
        return (self.data_dir / "member" / "wal").is_dir()

    def _config(self, cluster: str, state: str) -> MemberConfig:
        return MemberConfig(
            name=self.machine,
            data_dir=self.data_dir,
            client_url=self.client_url,
            peer_url=self.peer_url,
            initial_cluster=cluster,
            state="new" if state == "new" else "existing",
            token=self.token,
            timers=self.timers,
            client_tls=self.client_tls,
            peer_tls=self.peer_tls,
        )

    def bootstrap(self) -> MemberConfig:
        """The first member: forms a new one-member cluster (the cluster's ``kubeadm init``)."""
        return self._config(initial_cluster({self.machine: self.peer_url}), "new")

    def join(self, initial_cluster: str) -> MemberConfig:
        """A member joining after it was added (``AddedMember.initial_cluster`` from the add)."""
        if f"{self.machine}={self.peer_url}" not in initial_cluster.split(","):
            raise ValueError(
                f"the initial cluster {initial_cluster!r} does not list member {self.machine} at "
                f"{self.peer_url}; use the one the member add answered"
            )
        return self._config(initial_cluster, "existing")

    def restart(self) -> MemberConfig:
        """The member again, from its data dir (etcd ignores the initial-cluster flags then)."""
        if not self.initialized:
            raise ValueError(
                f"the etcd member of machine {self.machine} has no data in {self.data_dir}: it must "
                "bootstrap a cluster or join one, not restart"
            )
        return self._config(initial_cluster({self.machine: self.peer_url}), "existing")

    def local(self, config: MemberConfig, *, ssl_context: ssl.SSLContext | None = None) -> LocalMember:
        """A runner for ``config`` as a plain subprocess on this host (loopback tests)."""
        return LocalMember(config, log=self.log_path, ssl_context=ssl_context)

    async def wait_ready(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = START_TIMEOUT,
        exited: Callable[[], int | None] | None = None,
        describe: Callable[[], str] | None = None,
        connector: Callable[[], aiohttp.BaseConnector] | None = None,
    ) -> Json:
        """Wait until the member answers and knows a leader (see
        :func:`~anywhere.storage.etcd_server.wait_ready`); ``describe`` defaults to its log's tail.
        ``connector`` lets the caller reach the machine's address from another network namespace."""
        return await wait_ready(
            self.client_url,
            ssl_context=ssl_context,
            timeout=timeout,
            exited=exited,
            describe=describe or self._log_tail,
            connector=connector,
        )

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""
