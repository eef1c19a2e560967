"""The SimMachine controller: simulated machines, and the kubelet each of them runs.

A SimMachine is made (by the KubeadmControlPlane or MachineSet machinery) for one Machine. Once
that Machine has its bootstrap data, the machine:

1. leases a node IP from its cluster's DHCP range (:class:`~anywhere.providers.sim.dhcp.LeasePool`
   rules) and records it in ``status.addresses`` before anything uses it;
2. boots: after ``bootDelay`` ± ``bootJitter`` it is up, or, at ``failureRate`` (or when annotated
   ``anywhere.eks.amazonaws.com/sim-fail-boot: "true"``), it fails with ``status.failureReason``.
   The plan (when the boot started, when it ends, whether it fails) is recorded in annotations
   before the wait, so a restarted plane neither re-rolls the dice nor restarts the delay;
3. gets ``spec.providerID`` and ``status.ready``; then, once its SimCluster's API is served, the
   plane plays its guest (:class:`~anywhere.providers.sim.guest.SimulatedGuest`, which the
   ``vsphere`` provider's empty VMs use too): a control plane machine joins the cluster's etcd
   (the first one bootstraps it), and its "kubelet" registers Node ``<machine>``, keeps its status
   (Ready once the node has a pod CIDR and the CNI is configured, i.e. DaemonSet
   ``kube-system/cilium`` exists) and renews its Lease ``kube-node-lease/<machine>`` every
   :data:`HEARTBEAT_PERIOD` seconds. Annotating the SimMachine
   ``anywhere.eks.amazonaws.com/sim-fail: "true"`` stops the kubelet: the Node's conditions go
   Unknown (as the node lifecycle controller sets them) and its etcd member becomes unhealthy;
   removing the annotation brings both back. A new boot plan is a reboot: the Node's ``bootID``
   changes.

The simulated network is one network per plane: machines of clusters that share a node subnet
share its addresses, and no machine is given a control plane VIP of any cluster. The pool is
rebuilt from the addresses recorded in the SimMachines (the informer cache) at every allocation,
so nothing but the API holds it; allocations this process made that the cache does not show yet
are remembered until it does.

Deletion (finalizer ``simmachine.infrastructure.cluster.x-k8s.io``) stops the kubelet (deletes
its Lease when the cluster is reachable) and releases the address. The Node and the etcd member
are left to the Machine and control plane controllers.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import ipaddress
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.api.duration import parse_duration
from anywhere.controllers.conditions import ERROR, READY, WARNING, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    annotations_of,
    cluster_paused,
    controlling,
    deleting,
    flag_is_true,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    parse_time,
    patch_at_version,
    referenced_infrastructure,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    MACHINES,
    SIM_CLUSTERS,
    SIM_MACHINES,
)
from anywhere.providers.base import CREATE_ERROR
from anywhere.providers.kubelet import (
    CNI_DAEMONSET,
    HEARTBEAT_PERIOD,
    LEASE_DURATION_SECONDS,
    NODE_LEASE_NAMESPACE,
    internal_ip,
    node_addresses,
    node_conditions,
    rfc3339,
)
from anywhere.providers.sim.dhcp import DhcpError, LeasePool, PoolExhaustedError
from anywhere.providers.sim.guest import ETCD_JOINED_ANNOTATION, FAIL_ANNOTATION, RETRY, SimulatedGuest
from anywhere.runtime import (
    Controller,
    Result,
    enqueue_mapped,
    enqueue_self,
    split_key,
)

__all__ = [
    "BOOT_FAILS_ANNOTATION",
    "BOOT_READY_AT_ANNOTATION",
    "BOOT_STARTED_ANNOTATION",
    "CNI_DAEMONSET",
    "ETCD_JOINED_ANNOTATION",
    "FAIL_ANNOTATION",
    "FAIL_BOOT_ANNOTATION",
    "FINALIZER",
    "HEARTBEAT_PERIOD",
    "LEASE_DURATION_SECONDS",
    "NODE_LEASE_NAMESPACE",
    "BootPlan",
    "SimMachineController",
    "build_pool",
    "controller",
    "mac_of",
    "node_conditions",
    "plan_boot",
]

log = logging.getLogger("anywhere.controllers.simmachine")
Obj = dict[str, Any]

FINALIZER: Final = "simmachine.infrastructure.cluster.x-k8s.io"
FAIL_BOOT_ANNOTATION: Final = "anywhere.eks.amazonaws.com/sim-fail-boot"
BOOT_STARTED_ANNOTATION: Final = "anywhere.eks.amazonaws.com/sim-boot-started"
BOOT_READY_AT_ANNOTATION: Final = "anywhere.eks.amazonaws.com/sim-boot-ready-at"
BOOT_FAILS_ANNOTATION: Final = "anywhere.eks.amazonaws.com/sim-boot-fails"
# How soon to look again when a full DHCP range may have room (RETRY, from the guest: when a
# workload API that is not served yet may be).
EXHAUSTED_RETRY: Final = 30.0
# What the simulated machines' Nodes say they run.
OS_IMAGE: Final = "Ubuntu 22.04.5 LTS"
KERNEL_VERSION: Final = "6.8.0-sim"

# What a failed boot is to Cluster API: a terminal error creating the machine.
BOOT_FAILURE_REASON: Final = CREATE_ERROR


# -- pure decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootPlan:
    """When a boot started, when it ends, and whether it fails: decided once, then recorded."""

    started: float
    ready_at: float
    fails: bool

    def annotations(self) -> dict[str, str]:
        return {
            BOOT_STARTED_ANNOTATION: rfc3339(self.started, micro=True),
            BOOT_READY_AT_ANNOTATION: rfc3339(self.ready_at, micro=True),
            BOOT_FAILS_ANNOTATION: "true" if self.fails else "false",
        }

    @classmethod
    def recorded(cls, obj: Obj) -> BootPlan | None:
        meta = annotations_of(obj)
        started = parse_time(meta.get(BOOT_STARTED_ANNOTATION))
        ready_at = parse_time(meta.get(BOOT_READY_AT_ANNOTATION))
        fails = meta.get(BOOT_FAILS_ANNOTATION)
        if started is None or ready_at is None or fails not in ("true", "false"):
            return None
        return cls(started, ready_at, fails == "true")


def plan_boot(
    spec: Obj, annotations: dict[str, str], now: float, rng: random.Random | None = None
) -> BootPlan:
    """A boot starting ``now``: ``bootDelay`` ± a uniform ``bootJitter`` (never below 0); it fails
    with probability ``failureRate``, or surely when annotated to fail."""
    rng = rng or random.Random()
    delay = _seconds(spec.get("bootDelay"))
    jitter = _seconds(spec.get("bootJitter"))
    if jitter:
        delay += rng.uniform(-jitter, jitter)
    rate = spec.get("failureRate") or 0.0
    fails = flag_is_true(annotations.get(FAIL_BOOT_ANNOTATION)) or (
        isinstance(rate, int | float) and rate > 0 and rng.random() < rate
    )
    return BootPlan(now, now + max(0.0, delay), fails)


def _seconds(value: Any) -> float:
    if not isinstance(value, str) or not value:
        return 0.0
    try:
        return max(0.0, parse_duration(value))
    except ValueError:
        return 0.0


def mac_of(machine: Obj) -> str:
    """The simulated network card's MAC: locally administered, derived from the object's uid (a
    machine made again under the same name is a new machine, with a new MAC)."""
    uid = str((machine.get("metadata") or {}).get("uid") or f"{namespace_of(machine)}/{name_of(machine)}")
    digest = hashlib.sha256(uid.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def build_pool(
    cluster: Obj,
    clusters: Iterable[Obj],
    machines: Iterable[Obj],
    pending: Iterable[tuple[str, str, str]] = (),
) -> LeasePool:
    """The DHCP pool of ``cluster``'s node network as the plane's objects say it is now.

    Reserved: the gateway and the control plane VIP of every cluster. Leased: every address a
    machine recorded (and every ``(mac, hostname, address)`` in ``pending``: allocations not in
    the cache yet) that falls in the range. Raises :class:`DhcpError` when the cluster's node
    network makes no sense.
    """
    spec = cluster.get("spec") or {}
    span = spec.get("dhcpRange") or {}
    reserved: dict[str, str] = {}
    if spec.get("gateway"):
        reserved[str(spec["gateway"])] = "gateway"
    for other in clusters:
        vip = (other.get("spec") or {}).get("controlPlaneVIP")
        if vip:
            reserved.setdefault(
                str(vip), f"control plane endpoint of cluster {namespace_of(other)}/{name_of(other)}"
            )
    pool = LeasePool(
        str(spec.get("nodeSubnet") or ""),
        str(span.get("start") or ""),
        str(span.get("end") or ""),
        reserved=reserved,
    )
    taken: set[ipaddress.IPv4Address] = set(pool.reserved)
    macs: set[str] = set()
    leases: list[Obj] = []
    entries = [(mac_of(m), name_of(m), internal_ip(m)) for m in machines]
    for mac, hostname, text in [*entries, *pending]:
        if not text or mac in macs:
            continue
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if not pool.start <= address <= pool.end or address in taken:
            continue
        taken.add(address)
        macs.add(mac)
        leases.append({"mac": mac, "hostname": hostname, "address": text, "expiresAt": None})
    return LeasePool.from_dict({**pool.to_dict(), "leases": leases})


# -- the controller --------------------------------------------------------------------------------------


class SimMachineController(Controller):
    """Reconciles SimMachines (see the module doc)."""

    def __init__(self, ctx: Context, *, workers: int = 2) -> None:
        super().__init__("simmachine", self._reconcile, workers=workers)
        self.ctx = ctx
        self.machines = ctx.manager.informer(SIM_MACHINES)
        self.owners = ctx.manager.informer(MACHINES)
        self.clusters = ctx.manager.informer(SIM_CLUSTERS)
        self.capi_clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.watch(SIM_MACHINES, enqueue_self)
        self.watch(MACHINES, enqueue_mapped(lambda m: referenced_infrastructure(m, SIM_MACHINES.kind)))
        self.watch(SIM_CLUSTERS, enqueue_mapped(self._machines_of_cluster))
        self.watch(CAPI_CLUSTERS, enqueue_mapped(self._machines_of_cluster))
        self.guest = SimulatedGuest(
            ctx,
            SIM_MACHINES,
            os_image=OS_IMAGE,
            kernel_version=KERNEL_VERSION,
            boot_of=_boot_of,
        )
        ctx.clusters.add_node_listener(self.guest.node_listener(self.enqueue))
        self._lease_lock = asyncio.Lock()
        # Derived, in-memory only (a restart rebuilds them from the API):
        self._pending: dict[str, tuple[str, str, str]] = {}  # key -> (mac, hostname, address) not cached yet
        self._starved: set[str] = set()  # machines waiting for an address to come free

    # -- event mapping -------------------------------------------------------------------------------

    def _machines_of_cluster(self, cluster: Obj) -> Iterable[str]:
        namespace, name = namespace_of(cluster), name_of(cluster)
        for machine in of_cluster(self.machines, namespace, name):
            if labels_of(machine).get(CLUSTER_NAME_LABEL) == name:
                yield f"{namespace}/{name_of(machine)}"

    # -- reconcile -----------------------------------------------------------------------------------

    def _forget(self, key: str) -> None:
        self._pending.pop(key, None)
        self._starved.discard(key)
        self.guest.forget(key)

    def _released(self) -> None:
        """An address came free: the machines waiting for one try again now."""
        starved, self._starved = self._starved, set()
        for key in starved:
            self.enqueue(key)

    async def _reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        obj = self.machines.get(key)
        if obj is None or namespace is None:
            self._forget(key)
            self._released()  # its address, if it had one, is free now
            return None
        cluster_name = labels_of(obj).get(CLUSTER_NAME_LABEL, "")
        capi = self.capi_clusters.get(f"{namespace}/{cluster_name}") if cluster_name else None
        if is_paused(obj) or cluster_paused(capi):
            return None
        if deleting(obj):
            await self._delete(obj, cluster_name, capi)
            return None
        obj = await add_finalizer(self.ctx.client, SIM_MACHINES, obj, FINALIZER)
        status = obj.get("status") or {}
        if status.get("failureReason"):
            return None  # terminal: the machine is replaced, not repaired

        owner = controlling(self.owners, obj, "Machine")
        if owner is None:
            return await self._waiting(obj, "WaitingForMachine", "waiting for the owner Machine")
        owner_spec = owner.get("spec") or {}
        if not ((owner_spec.get("bootstrap") or {}).get("dataSecretName")):
            return await self._waiting(obj, "WaitingForBootstrapData", "waiting for the bootstrap data")
        cluster_name = cluster_name or str(owner_spec.get("clusterName") or "")
        sim_cluster = self._sim_cluster(namespace, cluster_name, capi)
        if sim_cluster is None:
            return await self._waiting(
                obj, "WaitingForInfrastructure", f"waiting for SimCluster {cluster_name}"
            )

        address = internal_ip(obj)
        if address is None:
            leased = await self._lease(key, obj, sim_cluster)
            if isinstance(leased, Result):
                return leased
            obj, address = leased

        plan = BootPlan.recorded(obj)
        if plan is None:
            plan = plan_boot(obj.get("spec") or {}, annotations_of(obj), time.time())
            obj = await patch_at_version(
                self.ctx.client, SIM_MACHINES, obj, {"metadata": {"annotations": plan.annotations()}}
            )
            log.info(
                "machine %s: booting with address %s, up in %.1f s%s",
                key,
                address,
                plan.ready_at - plan.started,
                " (this boot will fail)" if plan.fails else "",
            )
        remaining = plan.ready_at - time.time()
        if remaining > 0:
            return Result(requeue_after=remaining)

        booted = bool((obj.get("status") or {}).get("ready"))
        if not booted and (plan.fails or flag_is_true(annotations_of(obj).get(FAIL_BOOT_ANNOTATION))):
            await self._boot_failed(obj)
            return None

        provider_id = f"sim://{namespace}/{cluster_name}/{name}"
        if (obj.get("spec") or {}).get("providerID") != provider_id:
            obj = await patch_at_version(
                self.ctx.client, SIM_MACHINES, obj, {"spec": {"providerID": provider_id}}
            )
        new_status = copy.deepcopy(obj.get("status") or {})
        new_status["ready"] = True
        new_status["addresses"] = _addresses(address, name)
        set_true(new_status, READY)
        obj = await write_status(self.ctx.client, SIM_MACHINES, obj, new_status)

        if deleting(sim_cluster):
            return None  # its API is going away, and this machine with it
        if not (sim_cluster.get("status") or {}).get("ready"):
            return Result(requeue_after=RETRY)  # the workload API is not served yet
        return await self.guest.run(key, obj, owner, cluster_name, address, provider_id)

    def _sim_cluster(self, namespace: str, cluster_name: str, capi: Obj | None) -> Obj | None:
        ref = ((capi or {}).get("spec") or {}).get("infrastructureRef") or {}
        name = ref.get("name") if ref.get("kind") == "SimCluster" else None
        return self.clusters.get(f"{namespace}/{name or cluster_name}")

    async def _waiting(self, obj: Obj, reason: str, message: str, severity: str = "Info") -> Result | None:
        """Report what the machine waits for; an event of a watched kind brings it back."""
        status = copy.deepcopy(obj.get("status") or {})
        status.setdefault("ready", False)
        set_false(status, READY, reason, message, severity)
        await write_status(self.ctx.client, SIM_MACHINES, obj, status)
        return None

    # -- addresses ------------------------------------------------------------------------------------

    async def _lease(self, key: str, obj: Obj, sim_cluster: Obj) -> tuple[Obj, str] | Result:
        """Lease an address and record it in the SimMachine's status."""
        mac = mac_of(obj)
        async with self._lease_lock:
            cached = {f"{namespace_of(m)}/{name_of(m)}" for m in self.machines.list() if internal_ip(m)}
            for done in [k for k in self._pending if k in cached]:
                del self._pending[done]
            try:
                pool = build_pool(
                    sim_cluster, self.clusters.list(), self.machines.list(), self._pending.values()
                )
                address = str(pool.lease(mac, name_of(obj)))
            except PoolExhaustedError as exc:
                log.warning("machine %s: %s", key, exc)
                self._starved.add(key)
                await self._waiting(obj, "DHCPExhausted", str(exc), WARNING)
                return Result(requeue_after=EXHAUSTED_RETRY)
            except DhcpError as exc:
                message = f"the node network of SimCluster {name_of(sim_cluster)} is unusable: {exc}"
                await self._waiting(obj, "InvalidNodeNetwork", message, ERROR)
                return Result(requeue_after=EXHAUSTED_RETRY)
            self._pending[key] = (mac, name_of(obj), address)
            self._starved.discard(key)
        status = copy.deepcopy(obj.get("status") or {})
        status["ready"] = False
        status["addresses"] = _addresses(address, name_of(obj))
        set_false(status, READY, "Booting", f"booting with address {address}")
        obj = await write_status(self.ctx.client, SIM_MACHINES, obj, status)
        return obj, address

    # -- boot ------------------------------------------------------------------------------------------

    async def _boot_failed(self, obj: Obj) -> None:
        annotated = flag_is_true(annotations_of(obj).get(FAIL_BOOT_ANNOTATION))
        cause = (
            f"annotation {FAIL_BOOT_ANNOTATION}"
            if annotated
            else f"failureRate {(obj.get('spec') or {}).get('failureRate')}"
        )
        message = f"machine {name_of(obj)} failed to boot (simulated failure, {cause})"
        status = copy.deepcopy(obj.get("status") or {})
        status.update(ready=False, failureReason=BOOT_FAILURE_REASON, failureMessage=message)
        set_false(status, READY, "BootFailed", message, ERROR)
        await write_status(self.ctx.client, SIM_MACHINES, obj, status)
        log.info("machine %s/%s: %s", namespace_of(obj), name_of(obj), message)

    # -- deletion ----------------------------------------------------------------------------------------

    async def _delete(self, obj: Obj, cluster: str, capi: Obj | None) -> None:
        key = f"{namespace_of(obj)}/{name_of(obj)}"
        sim_cluster = self._sim_cluster(namespace_of(obj), cluster, capi) if cluster else None
        going = (capi is not None and deleting(capi)) or sim_cluster is None or deleting(sim_cluster)
        await self.guest.stop(obj, cluster, cluster_going=going)
        self._forget(key)  # the address is free once the object is gone from the cache
        await remove_finalizer(self.ctx.client, SIM_MACHINES, obj, FINALIZER)


def _addresses(address: str, hostname: str) -> list[Obj]:
    return node_addresses(address, hostname)


def _boot_of(obj: Obj) -> str:
    """A SimMachine's boot is named by when its boot plan started: a new plan, a new ``bootID``."""
    return annotations_of(obj).get(BOOT_STARTED_ANNOTATION, "")


def controller(ctx: Context, *, workers: int = 2) -> SimMachineController:
    """The SimMachine controller (see the module doc)."""
    return SimMachineController(ctx, workers=workers)
