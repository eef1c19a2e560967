"""Access to workload clusters: a client and a Node cache per cluster (what Cluster API's
ClusterCacheTracker is).

Controllers of the management cluster read the workload clusters' Nodes (a Machine is Running
when its Node is; a health check watches node conditions; node IPAM gives Nodes their pod CIDRs).
One client and one Node informer per workload cluster serve them all: the first controller that
asks starts them, from the cluster's kubeconfig Secret (``NAME-kubeconfig``, key ``value``, in the
Cluster API Cluster's namespace, as Cluster API stores it); every registered node listener hears
every cluster's Node events, and maps them to keys of its own controller.

As Cluster API's tracker does, a connection is kept once made: the Secret is read again (and the
connection remade if its kubeconfig changed) at most every :data:`RECHECK_SECONDS`, not on every
call, which would cost a request per reconcile of every controller that looks at a workload
cluster. Connections to different clusters are made concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anywhere.runtime import (
    NODES,
    SECRETS,
    Client,
    Informer,
    KubeConfig,
    KubeConfigError,
    NotFoundError,
    SocketFactory,
    parse_kubeconfig,
)

__all__ = ["ClusterCache", "ClusterNotReachable", "Dialer", "NodeListener", "kubeconfig_secret_name"]

log = logging.getLogger("anywhere.controllers.remote")
Obj = dict[str, Any]
# Called as listener(namespace, cluster_name, node) for every add, update and delete of a Node.
NodeListener = Callable[[str, str, Obj], None]
# Called as dialer(namespace, cluster_name, kubeconfig) when a cluster's client is made: the socket
# factory its connections need (a cluster whose endpoint only another network namespace reaches),
# or None for plain sockets. The plane fills it from its providers; the cache knows none of them.
Dialer = Callable[[str, str, KubeConfig], SocketFactory | None]
# How long a connection is used before its kubeconfig Secret is read again.
RECHECK_SECONDS = 30.0


class ClusterNotReachable(Exception):
    """The workload cluster has no usable kubeconfig yet (its Secret is missing or broken)."""


def kubeconfig_secret_name(cluster_name: str) -> str:
    """Cluster API's name of the Secret holding a cluster's admin kubeconfig."""
    return f"{cluster_name}-kubeconfig"


@dataclass
class _Remote:
    secret_version: str
    client: Client
    nodes: Informer
    checked_at: float  # monotonic time the Secret was last seen at ``secret_version``


class ClusterCache:
    """Clients and Node informers of workload clusters, made on first use and kept until forgotten.

    ``management`` reads the kubeconfig Secrets. The cache owns the clients it makes (closed by
    :meth:`forget` and :meth:`close`), not ``management``. ``dialer`` (see :data:`Dialer`) gives
    the clients of clusters that need one a socket factory.
    """

    def __init__(self, management: Client, *, dialer: Dialer | None = None) -> None:
        self.management = management
        self.dialer = dialer
        self._remotes: dict[tuple[str, str], _Remote] = {}
        self._listeners: list[NodeListener] = []
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def add_node_listener(self, listener: NodeListener) -> None:
        """Hear every Node event of every cluster (of clusters connected later too)."""
        self._listeners.append(listener)

    async def client(self, namespace: str, cluster: str) -> Client:
        """The client of a workload cluster; raises :class:`ClusterNotReachable` without a kubeconfig."""
        return (await self._remote(namespace, cluster)).client

    async def nodes(self, namespace: str, cluster: str) -> Informer:
        """The cluster's Node informer, started (it may still be filling: see :meth:`synced`)."""
        return (await self._remote(namespace, cluster)).nodes

    async def synced_nodes(self, namespace: str, cluster: str, timeout: float = 10.0) -> Informer:
        """The cluster's Node informer once it has listed; raises :class:`ClusterNotReachable` if it
        cannot list within ``timeout`` seconds (the controller retries later)."""
        informer = await self.nodes(namespace, cluster)
        if not informer.synced:
            try:
                await asyncio.wait_for(asyncio.shield(informer.wait_synced()), timeout)
            except TimeoutError:
                raise ClusterNotReachable(
                    f"the API of cluster {namespace}/{cluster} did not answer within {timeout:g} s"
                ) from None
        return informer

    def connected(self, namespace: str, cluster: str) -> bool:
        return (namespace, cluster) in self._remotes

    async def forget(self, namespace: str, cluster: str) -> None:
        """Stop watching a cluster and close its client (the cluster is being deleted)."""
        remote = self._remotes.pop((namespace, cluster), None)
        if remote is not None:
            await self._close(remote)

    async def close(self) -> None:
        for key in list(self._remotes):
            await self.forget(*key)

    async def _remote(self, namespace: str, cluster: str) -> _Remote:
        key = (namespace, cluster)
        remote = self._remotes.get(key)
        if remote is not None and time.monotonic() - remote.checked_at < RECHECK_SECONDS:
            return remote
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            try:
                secret = await self.management.get(SECRETS, kubeconfig_secret_name(cluster), namespace)
            except NotFoundError:
                raise ClusterNotReachable(
                    f"the kubeconfig of cluster {namespace}/{cluster} does not exist yet"
                ) from None
            version = str(secret["metadata"].get("resourceVersion", ""))
            remote = self._remotes.get(key)
            if remote is not None and remote.secret_version == version:
                remote.checked_at = time.monotonic()
                return remote
            if remote is not None:  # the kubeconfig changed (a new endpoint or new credentials)
                del self._remotes[key]
                await self._close(remote)
            config = _kubeconfig(secret, namespace, cluster)
            factory = self.dialer(namespace, cluster, config) if self.dialer is not None else None
            client = Client(config, socket_factory=factory)
            informer = Informer(client, NODES, max_retry_delay=5.0)
            informer.add_handler(
                on_add=lambda node: self._tell(namespace, cluster, node),
                on_update=lambda _old, node: self._tell(namespace, cluster, node),
                on_delete=lambda node: self._tell(namespace, cluster, node),
            )
            informer.start()
            remote = _Remote(version, client, informer, time.monotonic())
            self._remotes[key] = remote
            log.info("watching the nodes of cluster %s/%s", namespace, cluster)
            return remote

    def _tell(self, namespace: str, cluster: str, node: Obj) -> None:
        for listener in self._listeners:
            try:
                listener(namespace, cluster, node)
            except Exception:
                log.exception("a node listener failed on %s/%s", namespace, cluster)

    @staticmethod
    async def _close(remote: _Remote) -> None:
        await remote.nodes.stop()
        await remote.client.close()


def _kubeconfig(secret: Obj, namespace: str, cluster: str) -> Any:
    encoded = (secret.get("data") or {}).get("value")
    where = f"Secret {namespace}/{kubeconfig_secret_name(cluster)}"
    if not encoded:
        raise ClusterNotReachable(f"{where} has no 'value'")
    try:
        return parse_kubeconfig(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, KubeConfigError) as exc:
        raise ClusterNotReachable(f"{where} does not hold a usable kubeconfig: {exc}") from None
