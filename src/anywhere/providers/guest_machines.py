"""What the machine controllers of providers whose guests the plane plays have in common.

The ``vsphere`` provider's VMs (in the vCenter simulator) and the ``tinkerbell`` provider's servers
(behind a Redfish emulator) run no OS here, so once one is up the plane plays its node agent
(:class:`~anywhere.providers.sim.guest.SimulatedGuest`). Their controllers differ in how a machine
comes up; the rest is the same and lives here: which objects bring a machine back, the reconcile's
frame (paused, retry delay, finalizer, terminal failure, deletion; a conflict, someone having
written first, goes back to the runtime, which tries again shortly on fresh data), the inputs every machine waits
for (its Machine, the bootstrap data, a ready infrastructure cluster), conditions while waiting or
after a failed attempt at the infrastructure (retried 2 s doubling to a minute,
:class:`~anywhere.providers.retries.Retries`), and the end: ``providerID``, addresses, ``ready`` and
the guest's node.
"""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.controllers.conditions import ERROR, READY, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    cluster_paused,
    controlling,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    patch_at_version,
    referenced_infrastructure,
    write_status,
)
from anywhere.controllers.resources import CAPI_CLUSTERS, MACHINES, SECRETS
from anywhere.providers.kubelet import internal_ip
from anywhere.providers.retries import InfrastructureError, Retries
from anywhere.providers.sim.guest import SimulatedGuest
from anywhere.providers.sim.served import cluster_name_of
from anywhere.runtime import (
    Controller,
    Resource,
    Result,
    enqueue_mapped,
    enqueue_self,
    split_key,
)

__all__ = ["GuestMachineController", "MachineInputs"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class MachineInputs:
    """What a machine is made from: its Machine, the name of its bootstrap data Secret, its cluster's
    name and (ready) infrastructure cluster."""

    owner: Obj
    data_secret: str
    cluster_name: str
    cluster: Obj


class GuestMachineController(Controller):
    """The frame of an infrastructure machine controller (see the module doc). Subclasses make the
    machine in :meth:`provision` and remove it in :meth:`delete`; both may raise
    :class:`InfrastructureError` for a failed attempt, which is retried."""

    finalizer: str

    def __init__(
        self,
        ctx: Context,
        name: str,
        *,
        machines: Resource,
        clusters: Resource,
        guest: SimulatedGuest,
        user_errors: frozenset[str],
        workers: int,
    ) -> None:
        super().__init__(name, self._reconcile, workers=workers)
        self.ctx = ctx
        self.resource = machines
        self.machines = ctx.manager.informer(machines)
        self.owners = ctx.manager.informer(MACHINES)
        self.clusters = ctx.manager.informer(clusters)
        self.capi_clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.secrets = ctx.manager.informer(SECRETS)
        self.guest = guest
        self.retries = Retries(user_errors)
        self.log = logging.getLogger(f"anywhere.controllers.{name}")
        self.watch(machines, enqueue_self)
        self.watch(MACHINES, enqueue_mapped(lambda m: referenced_infrastructure(m, machines.kind)))
        self.watch(clusters, enqueue_mapped(self._machines_of_cluster))
        self.watch(CAPI_CLUSTERS, enqueue_mapped(self._machines_of_cluster))
        ctx.clusters.add_node_listener(guest.node_listener(self.enqueue))

    # -- to provide ----------------------------------------------------------------------------------

    async def provision(self, key: str, obj: Obj, inputs: MachineInputs) -> Result | None:
        """Make the machine real, one step per call (the finalizer is on)."""
        raise NotImplementedError

    async def delete(self, key: str, obj: Obj, cluster: Obj | None, capi: Obj | None) -> Result | None:
        """Remove what the machine made, then :meth:`release` it."""
        raise NotImplementedError

    def forget(self, key: str) -> None:
        """Drop what is remembered of machine ``key`` (it is gone); subclasses add theirs."""
        self.retries.succeeded(key)
        self.guest.forget(key)

    # -- what brings a machine back ------------------------------------------------------------------

    def _machines_of_cluster(self, cluster: Obj) -> Iterable[str]:
        namespace = namespace_of(cluster)
        name = cluster_name_of(cluster)
        for machine in of_cluster(self.machines, namespace, name):
            yield f"{namespace}/{name_of(machine)}"

    # -- the frame -----------------------------------------------------------------------------------

    def infra_cluster(self, namespace: str, cluster_name: str, capi: Obj | None) -> Obj | None:
        """The infrastructure cluster the Cluster API cluster names (else the one of its name)."""
        ref = ((capi or {}).get("spec") or {}).get("infrastructureRef") or {}
        name = ref.get("name") if ref.get("kind") == self.clusters.resource.kind else None
        return self.clusters.get(f"{namespace}/{name or cluster_name}")

    async def _reconcile(self, key: str) -> Result | None:
        namespace, _ = split_key(key)
        obj = self.machines.get(key)
        if obj is None or namespace is None:
            self.forget(key)
            return None
        cluster_name = labels_of(obj).get(CLUSTER_NAME_LABEL, "")
        capi = self.capi_clusters.get(f"{namespace}/{cluster_name}") if cluster_name else None
        if is_paused(obj) or cluster_paused(capi):
            return None
        cluster = self.infra_cluster(namespace, cluster_name, capi)
        wait = self.retries.wait(key, obj)
        if wait is not None:
            return Result(requeue_after=wait)
        try:
            if deleting(obj):
                if self.finalizer not in ((obj.get("metadata") or {}).get("finalizers") or ()):
                    return None
                return await self.delete(key, obj, cluster, capi)
            obj = await add_finalizer(self.ctx.client, self.resource, obj, self.finalizer)
            if (obj.get("status") or {}).get("failureReason"):
                return None  # terminal: the machine is replaced, not repaired
            inputs = await self._inputs(obj, cluster_name, cluster)
            if inputs is None:
                return None
            return await self.provision(key, obj, inputs)
        except InfrastructureError as exc:
            return await self.failed(key, obj, exc)

    async def _inputs(self, obj: Obj, cluster_name: str, cluster: Obj | None) -> MachineInputs | None:
        owner = controlling(self.owners, obj, "Machine")
        if owner is None:
            await self.waiting(obj, "WaitingForMachine", "waiting for the owner Machine")
            return None
        owner_spec = owner.get("spec") or {}
        data_secret = (owner_spec.get("bootstrap") or {}).get("dataSecretName")
        if not data_secret:
            await self.waiting(obj, "WaitingForBootstrapData", "waiting for the bootstrap data")
            return None
        cluster_name = cluster_name or str(owner_spec.get("clusterName") or "")
        if cluster is None or not (cluster.get("status") or {}).get("ready"):
            kind = self.clusters.resource.kind
            await self.waiting(
                obj, "WaitingForInfrastructure", f"waiting for {kind} {cluster_name} to be ready"
            )
            return None
        return MachineInputs(owner, str(data_secret), cluster_name, cluster)

    def bootstrap_data(self, obj: Obj, data_secret: str) -> bytes | None:
        """The bootstrap data (cloud-init or Bottlerocket settings) in Secret ``data_secret`` of the
        machine's namespace, as cached; None while the Secret is not there."""
        secret = self.secrets.get(f"{namespace_of(obj)}/{data_secret}")
        if secret is None:
            return None
        return base64.b64decode(str((secret.get("data") or {}).get("value") or ""))

    # -- conditions ----------------------------------------------------------------------------------

    async def fail_terminally(
        self, key: str, obj: Obj, failure_reason: str, reason: str, message: str
    ) -> None:
        """Mark the machine failed for good (``failureReason``, ``Ready=False`` as an error): it is
        not repaired but replaced, by its MachineSet or control plane after its health check."""
        status = copy.deepcopy(obj.get("status") or {})
        status.update(ready=False, failureReason=failure_reason, failureMessage=message)
        set_false(status, READY, reason, message, ERROR)
        await write_status(self.ctx.client, self.resource, obj, status)
        self.log.warning("machine %s: %s", key, message)

    async def waiting(self, obj: Obj, reason: str, message: str, severity: str = "Info") -> Obj:
        """``Ready=False`` with why the machine is not there yet."""
        status = copy.deepcopy(obj.get("status") or {})
        status.setdefault("ready", False)
        set_false(status, READY, reason, message, severity)
        return await write_status(self.ctx.client, self.resource, obj, status)

    async def failed(self, key: str, obj: Obj, exc: InfrastructureError, status: Obj | None = None) -> Result:
        """A failed attempt: say why on the machine (in ``status``, when the caller has changes of its
        own to write with it), and try again later (2 s doubling to a minute)."""
        failure = self.retries.failed(key, obj, exc.reason, exc.message)
        self.log.warning("machine %s: %s", key, failure.message)
        current = obj if status is not None else self.machines.get(key) or obj
        status = copy.deepcopy(status if status is not None else current.get("status") or {})
        if not status.get("ready") or deleting(current):
            set_false(status, READY, failure.reason, failure.message, failure.severity)
            await write_status(self.ctx.client, self.resource, current, status)
        return Result(requeue_after=failure.delay)

    # -- the end -------------------------------------------------------------------------------------

    async def mark_ready(
        self, key: str, obj: Obj, inputs: MachineInputs, provider_id: str, status_update: Obj
    ) -> Result | None:
        """The machine is up: its ``providerID``, ``ready`` and ``status_update`` (its addresses, ...)
        written, then its guest's node."""
        if (obj.get("spec") or {}).get("providerID") != provider_id:
            obj = await patch_at_version(
                self.ctx.client, self.resource, obj, {"spec": {"providerID": provider_id}}
            )
        status = copy.deepcopy(obj.get("status") or {})
        if not status.get("ready"):
            self.log.info("machine %s: up as %s", key, provider_id)
        status.update(ready=True, **status_update)
        set_true(status, READY)
        obj = await write_status(self.ctx.client, self.resource, obj, status)
        return await self.run_guest(key, obj, inputs)

    async def run_guest(self, key: str, obj: Obj, inputs: MachineInputs) -> Result | None:
        """What the machine's node agent does now (see :class:`SimulatedGuest`)."""
        provider_id = str((obj.get("spec") or {}).get("providerID") or "")
        return await self.guest.run(
            key, obj, inputs.owner, inputs.cluster_name, internal_ip(obj) or "", provider_id
        )

    async def stop_guest(self, key: str, obj: Obj, cluster: Obj | None, capi: Obj | None) -> None:
        """The machine is gone from its infrastructure: its node agent stops, and it is forgotten."""
        cluster_name = labels_of(obj).get(CLUSTER_NAME_LABEL, "")
        if cluster_name:
            going = capi is None or deleting(capi) or cluster is None or deleting(cluster)
            await self.guest.stop(obj, cluster_name, cluster_going=going)
        self.forget(key)
