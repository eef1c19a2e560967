"""The TinkerbellMachine controller: a bare metal server for every Machine, and its node.

Once its Machine has bootstrap data and its TinkerbellCluster is ready, a TinkerbellMachine goes
through small, level-triggered phases, each reading the API (and the BMC) afresh:

1. **hardware**: the Hardware this machine holds, or else the free Hardware that best matches its
   ``hardwareAffinity`` (required terms OR'ed; preferred terms ranked by weight) is claimed — see
   :mod:`~anywhere.providers.tinkerbell.pool` — and named in ``spec.hardwareName``. With none
   free, ``Ready=False`` (``NoHardwareAvailable``) says which selector is short and who holds what
   matches; any Hardware change brings the machine back;
2. **workflow**: the machine's Tinkerbell workflow (its ``templateOverride`` or the OS family's
   default, rendered for this hardware: :mod:`~anywhere.providers.tinkerbell.workflow`) is stored
   as Workflow ``<machine>``;
3. **DHCP**: the hardware's MAC must be reserved in its cluster's dnsmasq configuration (written
   by the TinkerbellCluster controller from the hardware its machines hold) before the server is
   booted, or it would PXE boot into nothing;
4. **boot**: ``status.bootRequested`` is written first (so neither a conflict nor a crash resets a
   server twice), then over Redfish a one-time PXE boot is set and the server powered on
   (power-cycled if it was on), and its power state is polled until the BMC reports it on. A
   server still off :data:`BOOT_REASK_AFTER` later is asked again for PXE and power on (harmless
   to a server already on, unlike a second cycle); :data:`BOOT_TIMEOUT` later the attempt fails
   and is made again;
5. **workflow runs**: the netbooted server runs the workflow (stream the OS image, write its
   configuration, reboot). No server boots here: :mod:`~anywhere.providers.tinkerbell.runner`
   plays its tink-worker;
6. **node**: once the workflow succeeded, ``spec.providerID`` (``tinkerbell://<ns>/<hardware>``),
   ``status.addresses`` and ``status.ready``; the installed OS's kubelet registers the Node — here
   :class:`~anywhere.providers.sim.guest.SimulatedGuest` does, on the server's behalf, as it does for
   the vCenter simulator's empty VMs.

A provisioned machine's power state is looked at again every :data:`POWER_CHECK_PERIOD`: a server
powered off outside anywhere fails the machine, and its health check replaces it.

BMC failures (refused credentials, unreachable, no system with the hardware's MAC, a timeout) are
``Ready=False`` with that reason, tried again 2 s doubling to a minute; the TinkerbellCluster reports
them as the cluster's failure.

Deletion (finalizer ``tinkerbellmachine.infrastructure.cluster.x-k8s.io``) powers the server off
and waits until the BMC says it is off, removes the workflow, and returns the hardware to the pool
(its reservation leaves the DHCP configuration with it). The finalizer stays while the BMC cannot
be reached: hardware is never handed out again while it may still run a node.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.api.capi.tinkerbell import HARDWARE_OWNER_NAME_LABEL, HARDWARE_OWNER_NAMESPACE_LABEL
from anywhere.api.infra.hardware import affinity_score, describe_affinity, pick_hardware
from anywhere.controllers.conditions import READY, WARNING, now, set_false
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    deleting,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    parse_time,
    patch_at_version,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import (
    CONFIGMAPS,
    HARDWARE,
    SECRETS,
    TINKERBELL_CLUSTERS,
    TINKERBELL_MACHINES,
    WORKFLOWS,
)
from anywhere.providers.base import CREATE_ERROR, UPDATE_ERROR
from anywhere.providers.guest_machines import GuestMachineController, MachineInputs
from anywhere.providers.kubelet import node_addresses
from anywhere.providers.sim.guest import SimulatedGuest
from anywhere.providers.tinkerbell import pool as hw
from anywhere.providers.tinkerbell.bmc import (
    OFF,
    ON,
    BMCEndpoint,
    BMCError,
    BMCs,
    auth_secret_ref,
    power_reached,
)
from anywhere.providers.tinkerbell.bmc import TIMEOUT as BMC_TIMEOUT
from anywhere.providers.tinkerbell.names import BMC_USER_ERRORS, bmc_endpoint, dhcp_config_name, dhcp_reserves
from anywhere.providers.tinkerbell.workflow import (
    STATE_FAILED,
    STATE_SUCCESS,
    STATE_TIMEOUT,
    WorkflowValues,
    render_workflow,
    workflow_object,
)
from anywhere.runtime import (
    NotFoundError,
    Result,
    enqueue_mapped,
)

__all__ = ["FINALIZER", "TinkerbellMachineController", "controller"]

Obj = dict[str, Any]

FINALIZER: Final = "tinkerbellmachine.infrastructure.cluster.x-k8s.io"
NO_HARDWARE: Final = "NoHardwareAvailable"
# How often the power state is polled while a server boots or powers off (the BMC applies a change
# seconds after it accepts it).
POWER_POLL: Final = 1.0
# How long a server may take to report the power state asked of it before the request is repeated.
BOOT_TIMEOUT: Final = 120.0
# How long a server may still report off after its boot was recorded before PXE and power on are
# asked again: longer than a BMC takes to apply a change, so a request that never reached the BMC
# (the plane stopped between recording and asking) is made again well before BOOT_TIMEOUT.
BOOT_REASK_AFTER: Final = 15.0
# How often a provisioned machine's power state is looked at again.
POWER_CHECK_PERIOD: Final = 60.0


def _age(stamp: str | None) -> float:
    """Seconds since a timestamp we wrote (infinite when there is none)."""
    moment = parse_time(stamp)
    return float("inf") if moment is None else time.time() - moment


class TinkerbellMachineController(GuestMachineController):
    """Reconciles TinkerbellMachines (see the module doc)."""

    finalizer = FINALIZER

    def __init__(self, ctx: Context, bmcs: BMCs, *, workers: int = 4) -> None:
        super().__init__(
            ctx,
            "tinkerbellmachine",
            machines=TINKERBELL_MACHINES,
            clusters=TINKERBELL_CLUSTERS,
            guest=SimulatedGuest(
                ctx,
                TINKERBELL_MACHINES,
                os_image="Ubuntu 22.04.5 LTS (bare metal)",
                kernel_version="6.8.0-metal",
            ),
            user_errors=BMC_USER_ERRORS,
            workers=workers,
        )
        self.bmcs = bmcs
        self.hardware = ctx.manager.informer(HARDWARE)
        self.workflows = ctx.manager.informer(WORKFLOWS)
        self.configmaps = ctx.manager.informer(CONFIGMAPS)
        self.watch(HARDWARE, enqueue_mapped(self._machines_for_hardware))
        self.watch(WORKFLOWS, enqueue_mapped(lambda w: [f"{namespace_of(w)}/{name_of(w)}"]))
        self.watch(CONFIGMAPS, enqueue_mapped(self._machines_of_dhcp_config))
        self.watch(SECRETS, enqueue_mapped(self._machine_of_bmc_secret))
        self._checked: dict[str, float] = {}  # key -> monotonic time its power was last seen on
        self._reasked: dict[str, float] = {}  # key -> monotonic time a boot was last asked again

    # -- what brings a machine back ------------------------------------------------------------------

    def _machines_for_hardware(self, hardware: Obj) -> Iterable[str]:
        """Its holder; and, for free hardware, every machine still looking for some."""
        owner = hw.owner_of(hardware)
        if owner is not None:
            yield f"{owner[0]}/{owner[1]}"
            return
        for machine in self.machines.list():
            if not (machine.get("spec") or {}).get("hardwareName") and not deleting(machine):
                yield f"{namespace_of(machine)}/{name_of(machine)}"

    def _machines_of_dhcp_config(self, configmap: Obj) -> Iterable[str]:
        cluster = labels_of(configmap).get(CLUSTER_NAME_LABEL)
        if cluster and name_of(configmap) == dhcp_config_name(cluster):
            for machine in of_cluster(self.machines, namespace_of(configmap), cluster):
                yield f"{namespace_of(machine)}/{name_of(machine)}"

    def _machine_of_bmc_secret(self, secret: Obj) -> Iterable[str]:
        """The holder of the hardware whose BMC credentials ``secret`` is: new credentials are tried
        at once, not after the delay the refused ones earned."""
        for hardware in self.hardware.list():
            owner = hw.owner_of(hardware)
            if owner is not None and auth_secret_ref(hardware) == (namespace_of(secret), name_of(secret)):
                key = f"{owner[0]}/{owner[1]}"
                self.retries.succeeded(key)
                yield key

    def forget(self, key: str) -> None:
        super().forget(key)
        self._checked.pop(key, None)
        self._reasked.pop(key, None)

    def _may_reask(self, key: str) -> bool:
        """Whether a boot may be asked of the BMC again: at most once every
        :data:`BOOT_REASK_AFTER`, so a slow BMC is not flooded while it applies the last one."""
        at = time.monotonic()
        last = self._reasked.get(key)
        if last is not None and at - last < BOOT_REASK_AFTER:
            return False
        self._reasked[key] = at
        return True

    # -- provisioning --------------------------------------------------------------------------------

    async def provision(self, key: str, obj: Obj, inputs: MachineInputs) -> Result | None:
        data = self.bootstrap_data(obj, inputs.data_secret)
        user_data = data.decode() if data is not None else None
        if user_data is None:
            message = f"waiting for bootstrap data Secret {inputs.data_secret}"
            await self.waiting(obj, "WaitingForBootstrapData", message)
            return None
        obj, hardware = await self._hardware(key, obj, user_data)
        if hardware is None:
            return None
        status = obj.get("status") or {}
        if status.get("ready") and (obj.get("spec") or {}).get("providerID"):
            return await self._provisioned(key, obj, inputs, hardware)

        workflow = self.workflows.get(key)
        if workflow is None:
            await self._create_workflow(key, obj, inputs.owner, inputs.cluster, hardware)
            return None  # its creation brings the machine back
        state = str((workflow.get("status") or {}).get("state") or "")
        if state == STATE_SUCCESS:
            return await self._ready(key, obj, inputs, hardware)
        if state in (STATE_FAILED, STATE_TIMEOUT):
            await self._workflow_failed(key, obj, workflow)
            return None

        mac = hw.mac_of(hardware)
        if not dhcp_reserves(self.configmaps, namespace_of(obj), inputs.cluster_name, mac):
            await self.waiting(
                obj,
                "WaitingForDHCPReservation",
                f"waiting for the DHCP reservation of {mac} (hardware {name_of(hardware)}) in "
                f"ConfigMap {dhcp_config_name(inputs.cluster_name)}",
            )
            return None
        return await self._boot(key, obj, hardware)

    # -- phase 1: hardware ---------------------------------------------------------------------------

    async def _hardware(self, key: str, obj: Obj, user_data: str) -> tuple[Obj, Obj | None]:
        """The machine (as written) and the hardware it holds, claimed now if need be (None while
        there is none to claim).

        What the machine holds is asked of the API, not the cache, whenever the cache shows nothing:
        a claim the cache does not show yet must not lead to a second one. Claiming gives the
        hardware the machine's bootstrap data as ``spec.userData``, which Tinkerbell's metadata
        service hands the installed OS on its first boot."""
        namespace, name = namespace_of(obj), name_of(obj)
        candidates = [h for h in self.hardware.list() if namespace_of(h) == namespace]
        held = hw.owned_by(candidates, namespace, name)
        if held is None:
            from_api = await self._held(namespace, name)
            held = from_api[0] if from_api else None
        if held is None:
            affinity = (obj.get("spec") or {}).get("hardwareAffinity") or {}
            pool = hw.free(candidates)
            chosen = pick_hardware(affinity, [(name_of(h), labels_of(h)) for h in pool])
            if chosen is None:
                await self._no_hardware(obj, affinity, candidates)
                return obj, None
            picked = next(h for h in pool if name_of(h) == chosen)
            held = await patch_at_version(
                self.ctx.client, HARDWARE, picked, hw.claim_patch(picked, namespace, name, user_data)
            )
            self.log.info("machine %s: claimed hardware %s (%s)", key, chosen, hw.mac_of(held))
        if (obj.get("spec") or {}).get("hardwareName") != name_of(held):
            obj = await patch_at_version(
                self.ctx.client, TINKERBELL_MACHINES, obj, {"spec": {"hardwareName": name_of(held)}}
            )
        return obj, held

    async def _held(self, namespace: str, name: str) -> list[Obj]:
        """The hardware TinkerbellMachine ``namespace/name`` holds, as the API (not the cache) has it."""
        selector = f"{HARDWARE_OWNER_NAME_LABEL}={name},{HARDWARE_OWNER_NAMESPACE_LABEL}={namespace}"
        listed = await self.ctx.client.list(HARDWARE, namespace, label_selector=selector)
        return sorted(listed.get("items") or [], key=name_of)

    async def _no_hardware(self, obj: Obj, affinity: Obj, candidates: list[Obj]) -> None:
        matching = [h for h in candidates if affinity_score(affinity, labels_of(h)) is not None]
        held = ", ".join(
            f"{name_of(h)} by {'/'.join(o)}" for h in matching if (o := hw.owner_of(h)) is not None
        )
        message = (
            f"no free Hardware matches {describe_affinity(affinity)} in namespace {namespace_of(obj)}: "
            f"{len(matching)} match{'es' if len(matching) == 1 else ''}"
            + (f", all in use ({held})" if matching else "")
            + "; add hardware (anywhere upgrade cluster --hardware-csv FILE) or free some"
        )
        await self.waiting(obj, NO_HARDWARE, message, WARNING)

    # -- phase 2: workflow ---------------------------------------------------------------------------

    async def _create_workflow(self, key: str, obj: Obj, owner: Obj, cluster: Obj, hardware: Obj) -> None:
        spec = obj.get("spec") or {}
        dhcp = hw.interface_of(hardware)
        ip = dhcp.get("ip") or {}
        disks = (hardware.get("spec") or {}).get("disks") or [{}]
        values = WorkflowValues(
            hardware_name=name_of(hardware),
            mac=hw.mac_of(hardware),
            disk=str(disks[0].get("device") or "/dev/sda"),
            os_family=str(spec.get("osFamily") or "bottlerocket"),
            os_image_url=str(spec.get("osImageURL") or (cluster.get("spec") or {}).get("osImageURL") or ""),
            tinkerbell_ip=str((cluster.get("spec") or {}).get("tinkerbellIP") or ""),
            hostname=str(dhcp.get("hostname") or name_of(hardware)),
            ip=str(ip.get("address") or ""),
            netmask=str(ip.get("netmask") or ""),
            gateway=str(ip.get("gateway") or ""),
            nameservers=hw.name_servers_of(hardware),
            kubernetes_version=str((owner.get("spec") or {}).get("version") or ""),
        )
        override = spec.get("templateOverride")
        try:
            rendered = render_workflow(str(override) if override else None, values)
        except ValueError as exc:
            message = f"the workflow template cannot be rendered for hardware {name_of(hardware)}: {exc}"
            await self.fail_terminally(key, obj, CREATE_ERROR, "WorkflowTemplateInvalid", message)
            return
        await self.ctx.client.create(WORKFLOWS, workflow_object(obj, hardware, rendered), namespace_of(obj))
        await self.waiting(
            obj, "Provisioning", f"workflow rendered for hardware {name_of(hardware)} ({hw.mac_of(hardware)})"
        )

    async def _workflow_failed(self, key: str, obj: Obj, workflow: Obj) -> None:
        wstatus = workflow.get("status") or {}
        failed = [
            f"{task.get('name')}/{action.get('name')}: {action.get('message') or action.get('status')}"
            for task in wstatus.get("tasks") or ()
            for action in task.get("actions") or ()
            if action.get("status") in (STATE_FAILED, STATE_TIMEOUT)
        ]
        message = f"workflow {name_of(workflow)} ended {wstatus.get('state')}" + (
            f" at {failed[0]}" if failed else ""
        )
        await self.fail_terminally(key, obj, CREATE_ERROR, "WorkflowFailed", message)

    # -- phase 4: boot -------------------------------------------------------------------------------

    async def _boot(self, key: str, obj: Obj, hardware: Obj) -> Result | None:
        """Netboot the server once: the request is recorded (``status.bootRequested``) before the
        BMC is asked, so neither a conflict nor a crash makes a second reset of a server already in
        PXE; then its power is polled until on, after which only the workflow is waited for."""
        endpoint = bmc_endpoint(self.secrets, hardware)
        mac = hw.mac_of(hardware)
        status = copy.deepcopy(obj.get("status") or {})
        requested = status.get("bootRequested")
        if requested:
            power = await self.bmcs.power_state(endpoint, mac)
            self.retries.succeeded(key)
            if power_reached(power, ON):
                message = f"server {name_of(hardware)} netbooted; waiting for its workflow to finish"
                await self.waiting(obj, "Provisioning", message)
                return None  # the workflow's progress brings the machine back
            age = _age(requested)
            if age < BOOT_TIMEOUT:
                if power_reached(power, OFF) and age >= BOOT_REASK_AFTER and self._may_reask(key):
                    await self.bmcs.set_pxe_once(endpoint, mac)
                    await self.bmcs.power_on(endpoint, mac)
                    self.log.info("machine %s: %s still off; netboot asked again", key, name_of(hardware))
                message = f"waiting for the BMC of {name_of(hardware)} to report power on (is {power})"
                await self.waiting(obj, "PoweringOn", message)
                return Result(requeue_after=POWER_POLL)
            status.pop("bootRequested")  # asked again on the next attempt
            timeout = BMCError(
                BMC_TIMEOUT,
                f"{endpoint.describe()} did not report power on within {BOOT_TIMEOUT:.0f}s of the boot "
                f"request (it reports {power})",
            )
            return await self.failed(key, obj, timeout, status)
        # Its condition is left as it is (a failure of the last attempt stays until this one is
        # through), so that the cluster's failure does not flicker on every retry.
        status["bootRequested"] = now()
        obj = await write_status(self.ctx.client, TINKERBELL_MACHINES, obj, status)
        try:
            await self.bmcs.set_pxe_once(endpoint, mac)
            power = await self.bmcs.power_cycle(endpoint, mac)  # powers on a server that is not on
        except BMCError as exc:
            status = copy.deepcopy(obj.get("status") or {})
            status.pop("bootRequested", None)
            return await self.failed(key, obj, exc, status)
        self.retries.succeeded(key)
        await self.waiting(obj, "PoweringOn", f"PXE boot of {name_of(hardware)} requested over Redfish")
        self.log.info("machine %s: netbooting hardware %s (was %s)", key, name_of(hardware), power)
        return Result(requeue_after=POWER_POLL)

    # -- phase 6: node -------------------------------------------------------------------------------

    async def _ready(self, key: str, obj: Obj, inputs: MachineInputs, hardware: Obj) -> Result | None:
        hostname = str(hw.interface_of(hardware).get("hostname") or name_of(hardware))
        status = obj.get("status") or {}
        if "bootRequested" in status:
            status = copy.deepcopy(status)
            status.pop("bootRequested")
            obj = await write_status(self.ctx.client, TINKERBELL_MACHINES, obj, status)
        self._checked[key] = time.monotonic()
        return await self.mark_ready(
            key,
            obj,
            inputs,
            f"tinkerbell://{namespace_of(hardware)}/{name_of(hardware)}",
            {"addresses": node_addresses(hw.address_of(hardware), hostname)},
        )

    async def _provisioned(self, key: str, obj: Obj, inputs: MachineInputs, hardware: Obj) -> Result | None:
        """A provisioned machine: its node's heartbeat, and now and then a look at its power."""
        if time.monotonic() - self._checked.get(key, 0.0) > POWER_CHECK_PERIOD:
            endpoint = bmc_endpoint(self.secrets, hardware)
            power = await self.bmcs.power_state(endpoint, hw.mac_of(hardware))
            self.retries.succeeded(key)
            if power_reached(power, OFF):  # a transient reading (PoweringOn, a BMC reset) is not
                message = (
                    f"server {name_of(hardware)} was powered off outside of anywhere (BMC reports {power})"
                )
                await self.fail_terminally(key, obj, UPDATE_ERROR, "PoweredOff", message)
                return None
            self._checked[key] = time.monotonic()
        return await self.run_guest(key, obj, inputs)

    # -- deletion ------------------------------------------------------------------------------------

    async def delete(self, key: str, obj: Obj, cluster: Obj | None, capi: Obj | None) -> Result | None:
        """Power off every server the machine holds (as the API has it) and wait for the BMCs to say
        so; then remove the workflow and return the hardware to the pool. Hardware without a BMC is
        returned as it is: it was powered by hand."""
        namespace, name = namespace_of(obj), name_of(obj)
        held = await self._held(namespace, name)
        powering_off = False
        for hardware in held:
            if not hw.has_bmc(hardware):
                self.log.warning(
                    "machine %s: hardware %s has no BMC; power it off by hand", key, name_of(hardware)
                )
                continue
            endpoint = bmc_endpoint(self.secrets, hardware)
            mac = hw.mac_of(hardware)
            if not power_reached(await self.bmcs.power_state(endpoint, mac), OFF):
                powering_off = True
                await self._power_off(key, obj, hardware, endpoint, mac)
        self.retries.succeeded(key)
        if powering_off:
            return Result(requeue_after=POWER_POLL)
        with contextlib.suppress(NotFoundError):
            await self.ctx.client.delete(WORKFLOWS, name, namespace)
        for hardware in held:
            await patch_at_version(self.ctx.client, HARDWARE, hardware, hw.release_patch(hardware))
            self.log.info(
                "machine %s: hardware %s powered off and returned to the pool", key, name_of(hardware)
            )
        await self.stop_guest(key, obj, cluster, capi)
        await remove_finalizer(self.ctx.client, TINKERBELL_MACHINES, obj, FINALIZER)
        return None

    async def _power_off(self, key: str, obj: Obj, hardware: Obj, endpoint: BMCEndpoint, mac: str) -> None:
        """Ask for power off once (again after :data:`BOOT_TIMEOUT` without effect), recorded first."""
        current = self.machines.get(key) or obj
        status = copy.deepcopy(current.get("status") or {})
        requested = status.get("powerOffRequested")
        if requested and _age(requested) < BOOT_TIMEOUT:
            return
        status["powerOffRequested"] = now()
        set_false(status, READY, "Deprovisioning", f"powering off server {name_of(hardware)}")
        await write_status(self.ctx.client, TINKERBELL_MACHINES, current, status)
        await self.bmcs.power_off(endpoint, mac)
        self.log.info("machine %s: powering off hardware %s", key, name_of(hardware))


def controller(ctx: Context, bmcs: BMCs, *, workers: int = 4) -> TinkerbellMachineController:
    """The TinkerbellMachine controller (see the module doc)."""
    return TinkerbellMachineController(ctx, bmcs, workers=workers)
