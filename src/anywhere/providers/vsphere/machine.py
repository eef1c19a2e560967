"""The VSphereMachine controller: a VM in vCenter for every Machine, and its node.

Once its Machine has bootstrap data and its VSphereCluster is ready, a VSphereMachine goes through
small, level-triggered phases, each reading vCenter afresh:

1. **placement**: with failure domains on the cluster, the machine is placed in the domain with the
   fewest machines of its cluster (recorded in ``status.failureDomain`` before anything is made);
   the domain's compute cluster, pool, datastore, folder and network override the machine's;
2. **clone**: the template is cloned (linked when the template allows, see :func:`vm.start_clone`)
   with the machine's UID as instance UUID, CPUs, memory, the bootstrap data as guestinfo and the
   ownership marker; the clone task's ID is kept in ``status.taskRef`` and polled. A task that
   fails in vCenter is condition ``Ready=False`` (``TaskFailed``, vCenter's fault in the message)
   and is tried again with a growing delay;
3. **configure**: CPUs, memory, disk size and NICs made what the spec says, tags attached;
4. **power on**, then **wait for an IP**: the machine is provisioned when VMware Tools reports the
   guest's address. Until then ``Ready=False`` says how long it has waited and on which network —
   a guest that never gets one (no DHCP on the port group) waits there, and the Machine's health
   check (``nodeStartupTimeout``) replaces it, as in EKS Anywhere;
5. **node**: ``spec.providerID`` (``vsphere://<BIOS UUID>``), ``status.addresses``, ``status.ready``.
   In vSphere proper the guest's kubelet registers the Node. The vCenter simulator runs no guest,
   so the plane does it on the VM's behalf: :class:`~anywhere.providers.sim.guest.SimulatedGuest`
   registers the Node, keeps its status and Lease, and joins a control plane VM to the cluster's
   (simulated) etcd — the same code that stands in for the ``sim`` provider's kubelets.

vCenter unreachable, a wrong thumbprint or refused credentials are ``Ready=False`` with that reason,
tried again with a growing delay; nothing is made twice meanwhile (the VM is found by its UUID).

Deletion (finalizer ``vspheremachine.infrastructure.cluster.x-k8s.io``) waits for a clone in flight,
powers the VM off and destroys it — only a VM marked as this machine's — and keeps the finalizer
until vCenter confirms, so a VM is never leaked by an unreachable vCenter.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from anywhere.api.infra.vsphere import DEFAULT_MEMORY_MIB, DEFAULT_NUM_CPUS
from anywhere.controllers.conditions import READY, WARNING, set_false
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    name_of,
    namespace_of,
    of_cluster,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import (
    VSPHERE_CLUSTERS,
    VSPHERE_MACHINES,
)
from anywhere.providers.base import UPDATE_ERROR
from anywhere.providers.guest_machines import GuestMachineController, MachineInputs
from anywhere.providers.kubelet import node_addresses
from anywhere.providers.sim.guest import SimulatedGuest
from anywhere.providers.vsphere import vm as vms
from anywhere.providers.vsphere._vcenter import TASK_FAILED, Sessions, VCenter, VCenterError
from anywhere.providers.vsphere.inventory import (
    PlacementNames,
    placement_names,
    require_datacenter,
    resolve_placement,
    storage_policies,
)
from anywhere.providers.vsphere.session import USER_ERRORS, session_for
from anywhere.runtime import Result

__all__ = ["FINALIZER", "VSphereMachineController", "controller", "pick_failure_domain"]

Obj = dict[str, Any]

FINALIZER: Final = "vspheremachine.infrastructure.cluster.x-k8s.io"
TASK_POLL: Final = 1.0
# How often a provisioned machine's VM is looked at again (deleted or powered off behind our back).
VM_CHECK_PERIOD: Final = 60.0


def pick_failure_domain(domains: list[str], taken: Iterable[str]) -> str | None:
    """The failure domain with the fewest machines already in it (ties: in the spec's order)."""
    if not domains:
        return None
    counts = Counter(t for t in taken if t in domains)
    return min(domains, key=lambda d: (counts[d], domains.index(d)))


class VSphereMachineController(GuestMachineController):
    """Reconciles VSphereMachines (see the module doc)."""

    finalizer = FINALIZER

    def __init__(self, ctx: Context, sessions: Sessions, *, workers: int = 4) -> None:
        super().__init__(
            ctx,
            "vspheremachine",
            machines=VSPHERE_MACHINES,
            clusters=VSPHERE_CLUSTERS,
            guest=SimulatedGuest(
                ctx, VSPHERE_MACHINES, os_image="Ubuntu 22.04.5 LTS (vSphere)", kernel_version="6.8.0-vsphere"
            ),
            user_errors=USER_ERRORS,
            workers=workers,
        )
        self.sessions = sessions
        self._waiting_since: dict[str, float] = {}  # key -> when it was first seen up without an IP
        self._checked: dict[str, float] = {}  # key -> monotonic time its VM was last seen as expected
        # Failure domains chosen by this process that the cache may not show yet (rebuilt from the
        # API after a restart: a choice is in status.failureDomain before anything is made).
        self._placed: dict[str, str] = {}
        self._placing_lock = asyncio.Lock()

    def forget(self, key: str) -> None:
        super().forget(key)
        self._waiting_since.pop(key, None)
        self._checked.pop(key, None)
        self._placed.pop(key, None)

    async def provision(self, key: str, obj: Obj, inputs: MachineInputs) -> Result | None:
        cluster_name, vsphere_cluster, data_secret = inputs.cluster_name, inputs.cluster, inputs.data_secret
        vcenter = session_for(self.sessions, self.secrets, vsphere_cluster)
        status = obj.get("status") or {}
        if status.get("ready") and status.get("vmRef"):
            return await self._provisioned(key, obj, inputs, vcenter)

        obj, names = await self._placement(obj, cluster_name, vsphere_cluster)
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        found = await vcenter.call(_observe_vm, names.datacenter, uid)
        if found is None:
            return await self._clone(key, obj, names, vcenter, data_secret, cluster_name)
        state = found
        if status.get("taskRef") or status.get("vmRef") != state.moid:
            status = copy.deepcopy(obj.get("status") or {})
            status.pop("taskRef", None)
            status.update(vmRef=state.moid, instanceUuid=uid)
            obj = await write_status(self.ctx.client, VSPHERE_MACHINES, obj, status)

        if not state.powered_on:  # once on, it was configured: only its IP is awaited
            desired = self._desired(obj, data_secret, cluster_name)

            def configure(si: Any) -> vms.VMState:
                placement = resolve_placement(si, names, where=f"VSphereMachine {key}")
                found = vms.find_vm(si, placement.datacenter, uid)
                if found is None:
                    raise VCenterError("VMNotFound", f"VM {state.name} disappeared while being configured")
                vms.apply_configuration(si, found, placement, desired)
                vms.attach_tags(vcenter, state.moid, desired.tags)
                vms.power_on(si, found)
                return vms.observe(si, found)

            state = await vcenter.call(configure)
        self.retries.succeeded(key)
        if state.ip is None:
            return await self._waiting_for_ip(key, obj, state, names)
        return await self._ready(key, obj, inputs, state)

    async def _placement(
        self, obj: Obj, cluster_name: str, vsphere_cluster: Obj
    ) -> tuple[Obj, PlacementNames]:
        cluster_spec = vsphere_cluster.get("spec") or {}
        spec = obj.get("spec") or {}
        domains = {str(d.get("name")): d for d in cluster_spec.get("failureDomains") or () if d.get("name")}
        status = obj.get("status") or {}
        domain_name = status.get("failureDomain")
        if domains and domain_name not in domains:
            key = f"{namespace_of(obj)}/{name_of(obj)}"
            async with self._placing_lock:  # machines placed at once must see each other's choice
                taken = {
                    f"{namespace_of(m)}/{name_of(m)}": str((m.get("status") or {}).get("failureDomain"))
                    for m in of_cluster(self.machines, namespace_of(obj), cluster_name)
                }
                taken.update((k, d) for k, d in self._placed.items() if k in taken)
                taken.pop(key, None)
                domain_name = pick_failure_domain(list(domains), taken.values())
                new_status = copy.deepcopy(status)
                new_status["failureDomain"] = domain_name
                obj = await write_status(self.ctx.client, VSPHERE_MACHINES, obj, new_status)
                self._placed[key] = str(domain_name)
            self.log.info("machine %s: placed in failure domain %s", key, domain_name)
        return obj, placement_names(cluster_spec, spec, domains.get(str(domain_name)))

    def _desired(self, obj: Obj, data_secret: str, cluster_name: str) -> vms.Desired:
        """What the machine's VM must be, with the bootstrap data from its Secret."""
        namespace = namespace_of(obj)
        value = self.bootstrap_data(obj, data_secret)
        if value is None:
            raise VCenterError(
                "WaitingForBootstrapData", f"bootstrap data Secret {namespace}/{data_secret} is not there yet"
            )
        spec = obj.get("spec") or {}
        return vms.Desired(
            name=name_of(obj),
            uid=str((obj.get("metadata") or {}).get("uid") or ""),
            owner=f"{namespace}/{name_of(obj)}",
            cluster=f"{namespace}/{cluster_name}",
            num_cpus=int(spec.get("numCPUs") or DEFAULT_NUM_CPUS),
            memory_mib=int(spec.get("memoryMiB") or DEFAULT_MEMORY_MIB),
            disk_gib=int(spec["diskGiB"]) if spec.get("diskGiB") else None,
            clone_mode=str(spec.get("cloneMode") or ""),
            user_data=value,
            tags=tuple(str(t) for t in spec.get("tags") or ()),
        )

    async def _clone(
        self, key: str, obj: Obj, names: PlacementNames, vcenter: VCenter, data_secret: str, cluster_name: str
    ) -> Result | None:
        status = copy.deepcopy(obj.get("status") or {})
        task_ref = status.get("taskRef")
        if task_ref:
            state = await vcenter.call(vms.task_state, str(task_ref))
            if state.state in ("queued", "running"):
                return Result(requeue_after=TASK_POLL)
            status.pop("taskRef", None)
            if state.state == "error":
                failure = VCenterError(
                    TASK_FAILED, f"cloning template {names.template!r} failed in vCenter: {state.error}"
                )
                return await self.failed(key, obj, failure, status)
            await write_status(self.ctx.client, VSPHERE_MACHINES, obj, status)
            return Result(requeue_after=0.0)  # done (or gone): look for the VM again
        desired = self._desired(obj, data_secret, cluster_name)

        policy = str((obj.get("spec") or {}).get("storagePolicyName") or "")

        def clone(si: Any) -> str:
            placement = resolve_placement(si, names, where=f"VSphereMachine {key}")
            chosen = desired
            if policy:
                policies = storage_policies(vcenter, si)
                if policy not in policies:
                    raise VCenterError(
                        "StoragePolicyNotFound", f"storage policy {policy!r} was not found in vCenter"
                    )
                chosen = dataclasses.replace(desired, storage_policy_id=policies[policy])
            return vms.start_clone(si, placement, chosen)

        task_id = await vcenter.call(clone)
        status["taskRef"] = task_id
        set_false(status, READY, "Cloning", f"cloning template {names.template} into VM {name_of(obj)}")
        await write_status(self.ctx.client, VSPHERE_MACHINES, obj, status)
        self.log.info("machine %s: cloning template %s (task %s)", key, names.template, task_id)
        return Result(requeue_after=TASK_POLL)

    async def _waiting_for_ip(self, key: str, obj: Obj, state: vms.VMState, names: PlacementNames) -> Result:
        # vCenter's boot time when it has one; else since this controller first saw the VM up.
        since = state.boot_time or self._waiting_since.setdefault(key, time.time())
        waited = max(0.0, time.time() - since)
        message = (
            f"VM {state.name} is powered on and has reported no IP address for {waited:.0f}s; its guest gets one "
            f"by DHCP on network {names.network!r}: check that DHCP serves that network"
        )
        await self.waiting(obj, "WaitingForIPAddress", message, WARNING if waited > 60 else "Info")
        return Result(requeue_after=min(30.0, max(1.0, waited / 4)))

    async def _ready(self, key: str, obj: Obj, inputs: MachineInputs, state: vms.VMState) -> Result | None:
        self._waiting_since.pop(key, None)
        self._checked[key] = time.monotonic()
        return await self.mark_ready(
            key,
            obj,
            inputs,
            f"vsphere://{state.bios_uuid}",
            {"addresses": node_addresses(str(state.ip), state.name), "vmRef": state.moid},
        )

    async def _provisioned(
        self, key: str, obj: Obj, inputs: MachineInputs, vcenter: VCenter
    ) -> Result | None:
        """A provisioned machine: its node's heartbeat, and now and then a look at its VM."""
        if time.monotonic() - self._checked.get(key, 0.0) > VM_CHECK_PERIOD:
            uid = str((obj.get("metadata") or {}).get("uid") or "")
            datacenter = str((inputs.cluster.get("spec") or {}).get("datacenter") or "")
            state = await vcenter.call(_observe_vm, datacenter, uid)
            if state is None or not state.powered_on:
                message = (
                    f"VM of machine {name_of(obj)} was deleted outside of anywhere"
                    if state is None
                    else f"VM {state.name} was powered off outside of anywhere"
                )
                reason = "VMGone" if state is None else "VMPoweredOff"
                await self.fail_terminally(key, obj, UPDATE_ERROR, reason, message)
                return None
            self._checked[key] = time.monotonic()
        return await self.run_guest(key, obj, inputs)

    # -- deletion ----------------------------------------------------------------------------------------

    async def delete(self, key: str, obj: Obj, cluster: Obj | None, capi: Obj | None) -> Result | None:
        vsphere_cluster = cluster
        status = obj.get("status") or {}
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        # A machine is only ever cloned once its VSphereCluster is ready (which it never stops being):
        # if that never happened and no task or VM was recorded, vCenter holds nothing of it, and need
        # not (perhaps cannot: an untrusted server) be asked.
        never_made = not (
            status.get("taskRef")
            or status.get("vmRef")
            or (vsphere_cluster is not None and (vsphere_cluster.get("status") or {}).get("ready"))
        )
        if vsphere_cluster is not None and not never_made:
            vcenter = session_for(self.sessions, self.secrets, vsphere_cluster)
            task_ref = status.get("taskRef")
            if task_ref:
                state = await vcenter.call(vms.task_state, str(task_ref))
                if state.state in ("queued", "running"):
                    return Result(requeue_after=TASK_POLL)  # the clone's VM is destroyed once it exists
            datacenter = str((vsphere_cluster.get("spec") or {}).get("datacenter") or "")
            owner = f"{namespace_of(obj)}/{name_of(obj)}"

            def remove(si: Any) -> str | None:
                found = vms.find_vm(si, require_datacenter(si, datacenter), uid)
                if found is None:
                    return None
                name = str(found.name)
                vms.destroy(si, found, owner)
                return name

            removed = await vcenter.call(remove)
            if removed:
                self.log.info("machine %s: VM %s powered off and destroyed", key, removed)
        elif not never_made:
            self.log.warning("machine %s: its VSphereCluster is gone; no vCenter to remove a VM from", key)
        await self.stop_guest(key, obj, cluster, capi)
        await remove_finalizer(self.ctx.client, VSPHERE_MACHINES, obj, FINALIZER)
        return None


def _observe_vm(si: Any, datacenter: str, uid: str) -> vms.VMState | None:
    """The VM of the machine whose UID is ``uid``, as vCenter sees it now; None when there is none."""
    found = vms.find_vm(si, require_datacenter(si, datacenter), uid)
    return vms.observe(si, found) if found is not None else None


def controller(ctx: Context, sessions: Sessions, *, workers: int = 4) -> VSphereMachineController:
    """The VSphereMachine controller (see the module doc)."""
    return VSphereMachineController(ctx, sessions, workers=workers)
