"""The manager: one client, one informer factory, the controllers, and (optionally) an election.

A controller process is a handful of controllers that share caches and must act only while this
replica leads. The manager holds those pieces together: controllers added to it share its
informers (one watch per resource for the whole process); with leader election configured, they
run only while the lease is held, and are cancelled (and awaited) the moment it is lost, after
which the manager campaigns again. Informers keep running across terms, so a replica that becomes
leader again starts from a warm cache. Cancelling :meth:`Manager.run` stops everything and
releases the lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from anywhere.runtime.client import Client, Resource
from anywhere.runtime.controller import Controller
from anywhere.runtime.informer import Informer, InformerFactory
from anywhere.runtime.leaderelection import LeaderElector

__all__ = ["LeaderElection", "Manager"]

log = logging.getLogger("anywhere.runtime.manager")


@dataclass(frozen=True, slots=True)
class LeaderElection:
    """Where the lease is and how it is held (see :class:`LeaderElector` for the timings)."""

    namespace: str
    name: str
    identity: str | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True


class Manager:
    """Runs controllers over shared informers, only while leading when ``leader_election`` is set.

    The manager owns ``client``: :meth:`close` (or leaving ``async with``) closes it.
    """

    def __init__(
        self,
        client: Client,
        *,
        leader_election: LeaderElection | None = None,
        resync_period: float | None = None,
    ) -> None:
        self.client = client
        self.informers = InformerFactory(client, resync_period=resync_period)
        self.controllers: list[Controller] = []
        self.elector: LeaderElector | None = None
        if leader_election is not None:
            self.elector = LeaderElector(
                client,
                leader_election.namespace,
                leader_election.name,
                leader_election.identity,
                lease_duration=leader_election.lease_duration,
                renew_deadline=leader_election.renew_deadline,
                retry_period=leader_election.retry_period,
                release_on_cancel=leader_election.release_on_cancel,
            )
        self._running = False

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None, **options: Any
    ) -> Manager:
        return cls(Client.from_kubeconfig(path, context=context), **options)

    def add(self, controller: Controller) -> Controller:
        """Run ``controller`` with the others (before :meth:`run`)."""
        if self._running:
            raise RuntimeError("add controllers before the manager runs")
        self.controllers.append(controller)
        return controller

    def informer(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> Informer:
        """The shared informer a reconciler reads its cache from (the one controllers watch with)."""
        return self.informers.informer(resource, namespace=namespace, label_selector=label_selector)

    @property
    def is_leader(self) -> bool:
        """Whether the controllers may run now (always, without leader election)."""
        return self.elector is None or self.elector.is_leader

    async def run(self) -> None:
        """Run until cancelled (or until a controller fails, whose error then propagates); the
        informers stop with it."""
        if self._running:
            raise RuntimeError("the manager is running already")
        self._running = True
        try:
            if self.elector is None:
                await self._lead()
                return
            while True:
                await self.elector.run(self._lead)
                log.warning("%r lost the lease; campaigning again", self.elector)
        finally:
            self._running = False
            await self.informers.stop()

    async def _lead(self) -> None:
        if not self.controllers:
            await asyncio.get_running_loop().create_future()  # lead (hold the lease) until cancelled
        async with asyncio.TaskGroup() as group:
            for controller in self.controllers:
                group.create_task(controller.run(self.informers), name=f"controller {controller.name}")

    async def close(self) -> None:
        """Stop the informers and close the client."""
        await self.informers.stop()
        await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
