"""The controllers of a management plane, run together under one leader election.

Two management planes pointed at the same API never act at once: every controller runs only while
this process holds the Lease ``eksa-system/anywhere-controller-manager``; the other waits, with
warm caches, and takes over when the Lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from anywhere._signals import until_signalled
from anywhere.controllers.context import Context
from anywhere.controllers.remote import ClusterCache, Dialer
from anywhere.controllers.resources import NAMESPACES, SYSTEM_NAMESPACE
from anywhere.providers.registry import all_providers
from anywhere.runtime import (
    AlreadyExistsError,
    Client,
    Controller,
    KubeConfig,
    LeaderElection,
    Manager,
    SocketFactory,
)

__all__ = ["LEASE_NAME", "all_controllers", "main", "provider_dialer", "run"]

log = logging.getLogger("anywhere.controllers.plane")
LEASE_NAME: Final = "anywhere-controller-manager"


def all_controllers(ctx: Context) -> list[Controller]:
    """Every controller of the plane: anywhere's, the Cluster API ones, and the providers'."""
    from anywhere.controllers import (
        capicluster,
        cluster,
        kubeadmconfig,
        kubeadmcontrolplane,
        machine,
        machinedeployment,
        machinehealthcheck,
        machineset,
        nodeipam,
    )

    providers = all_providers()
    controllers = [
        cluster.controller(ctx),
        capicluster.controller(ctx),
        kubeadmcontrolplane.controller(ctx),
        machinedeployment.controller(ctx),
        machineset.controller(ctx),
        machine.controller(ctx, infra_machines=[p.infra_machine for p in providers]),
        kubeadmconfig.controller(ctx),
        machinehealthcheck.controller(ctx),
        nodeipam.controller(ctx),
    ]
    for provider in providers:
        controllers += provider.controllers(ctx)
    return controllers


def provider_dialer(context: Callable[[], Context]) -> Dialer:
    """The cluster cache's dialer: the socket factory of the first provider that has one for the
    cluster (a provider whose clusters are reachable only from elsewhere, e.g. another network
    namespace). ``context`` gives the plane's context, which is made after the cache."""

    def dial(namespace: str, cluster: str, kubeconfig: KubeConfig) -> SocketFactory | None:
        for provider in all_providers():
            factory = provider.socket_factory(context(), namespace, cluster, kubeconfig)
            if factory is not None:
                return factory
        return None

    return dial


async def run(
    kubeconfig: Path,
    data_dir: Path,
    *,
    self_cluster: str | None = None,
    identity: str | None = None,
    lease_duration: float = 15.0,
) -> None:
    """Run the plane's controllers against the API of ``kubeconfig`` until cancelled."""
    client = Client.from_kubeconfig(kubeconfig)
    with contextlib.suppress(AlreadyExistsError):
        await client.create(NAMESPACES, {"metadata": {"name": SYSTEM_NAMESPACE}})
    manager = Manager(
        client,
        leader_election=LeaderElection(
            namespace=SYSTEM_NAMESPACE,
            name=LEASE_NAME,
            identity=identity,
            lease_duration=lease_duration,
            renew_deadline=lease_duration * 2 / 3,
            retry_period=lease_duration / 7.5,
        ),
    )
    clusters = ClusterCache(client, dialer=provider_dialer(lambda: ctx))
    ctx = Context(
        client=client,
        manager=manager,
        clusters=clusters,
        data_dir=data_dir,
        self_cluster=self_cluster,
        self_kubeconfig=kubeconfig.read_bytes(),
    )
    for controller in all_controllers(ctx):
        manager.add(controller)
    log.info("controllers ready; campaigning for the lease %s/%s", SYSTEM_NAMESPACE, LEASE_NAME)
    try:
        await manager.run()
    finally:
        for provider in all_providers():
            with contextlib.suppress(Exception):
                await provider.close(ctx)
        await clusters.close()
        await manager.close()


def main(kubeconfig: Path, data_dir: Path, *, self_cluster: str | None, identity: str | None) -> int:
    """Run the controllers against an existing API until SIGTERM or SIGINT (``anywhere controllers``:
    a self-managed cluster's own management, on each of its control plane machines). On a signal
    the leader releases its Lease, so another candidate takes over at once."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(until_signalled(run(kubeconfig, data_dir, self_cluster=self_cluster, identity=identity)))
    return 0
