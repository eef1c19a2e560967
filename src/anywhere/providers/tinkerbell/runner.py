"""The netbooted server's side of provisioning, played by the plane: tink-worker running workflows.

Why: on real bare metal, a server that PXE boots gets HookOS from Tinkerbell, whose tink-worker
fetches the workflow for its MAC and runs its actions (stream the OS image to disk, write the
network and cloud-init configuration, reboot) and reports each to Tinkerbell. No server boots
here — the Redfish emulator has power switches, not CPUs — so this controller plays tink-worker.

It is strict about when a server could have booted, so that provisioning only completes when the
provider did its part: a Workflow runs only once its machine asked the BMC for a netboot (its
``status.bootRequested``, no older than the workflow), while its hardware may netboot and run workflows
(``netboot.allowPXE`` and ``allowWorkflow``), holds the machine's bootstrap data (``userData``),
has its MAC reserved in its cluster's DHCP configuration, and its BMC reports the server powered
on. Then the actions succeed one per step (:func:`~anywhere.providers.tinkerbell.workflow.run_next_action`),
each written to the Workflow's status, until the workflow is ``STATE_SUCCESS``.
"""

from __future__ import annotations

import logging
from typing import Any

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.controllers.conditions import now
from anywhere.controllers.context import Context
from anywhere.controllers.objects import labels_of, name_of, namespace_of, parse_time, write_status
from anywhere.controllers.resources import CONFIGMAPS, HARDWARE, SECRETS, TINKERBELL_MACHINES, WORKFLOWS
from anywhere.providers.tinkerbell import pool as hw
from anywhere.providers.tinkerbell.bmc import ON, BMCError, BMCs
from anywhere.providers.tinkerbell.names import bmc_endpoint, dhcp_reserves
from anywhere.providers.tinkerbell.workflow import STATE_PENDING, STATE_RUNNING, run_next_action
from anywhere.runtime import Controller, Result, enqueue_mapped, enqueue_self

__all__ = ["WorkflowRunner", "controller"]

log = logging.getLogger("anywhere.providers.tinkerbell.runner")
Obj = dict[str, Any]

# How soon to look at a server that is not up yet again (its power state comes from its BMC).
POLL = 1.0


class WorkflowRunner(Controller):
    """Runs the Workflows of netbooted servers on their behalf (see the module doc)."""

    def __init__(self, ctx: Context, bmcs: BMCs, *, workers: int = 2) -> None:
        super().__init__("tinkerbellworkflow", self._reconcile, workers=workers)
        self.ctx = ctx
        self.bmcs = bmcs
        self.workflows = ctx.manager.informer(WORKFLOWS)
        self.hardware = ctx.manager.informer(HARDWARE)
        self.secrets = ctx.manager.informer(SECRETS)
        self.configmaps = ctx.manager.informer(CONFIGMAPS)
        self.machines = ctx.manager.informer(TINKERBELL_MACHINES)
        self.watch(WORKFLOWS, enqueue_self)
        self.watch(HARDWARE, enqueue_mapped(self._workflow_of_hardware))
        self.watch(TINKERBELL_MACHINES, enqueue_mapped(lambda m: [f"{namespace_of(m)}/{name_of(m)}"]))

    def _workflow_of_hardware(self, hardware: Obj) -> list[str]:
        owner = hw.owner_of(hardware)
        return [f"{owner[0]}/{owner[1]}"] if owner is not None else []

    async def _reconcile(self, key: str) -> Result | None:
        workflow = self.workflows.get(key)
        if workflow is None:
            return None
        status = workflow.get("status") or {}
        if status.get("state") not in (None, STATE_PENDING, STATE_RUNNING):
            return None  # done (a status the API server dropped on create is a pending one)
        namespace = namespace_of(workflow)
        hardware_name = str((workflow.get("spec") or {}).get("hardwareRef") or "")
        hardware = self.hardware.get(f"{namespace}/{hardware_name}")
        if hardware is None:
            return None  # the machine controller reports hardware that went away
        booted = await self._netbooted(workflow, hardware)
        if not booted:
            return Result(requeue_after=POLL)
        new_status = run_next_action(workflow, now())
        if new_status is None:
            return None
        await write_status(self.ctx.client, WORKFLOWS, workflow, new_status)
        if new_status.get("state") != STATE_RUNNING:
            log.info("workflow %s on hardware %s: %s", key, hardware_name, new_status.get("state"))
        return None  # the status write brings the workflow back for its next action

    async def _netbooted(self, workflow: Obj, hardware: Obj) -> bool:
        """Whether the server could be running HookOS now (see the module doc)."""
        machine = self.machines.get(f"{namespace_of(workflow)}/{name_of(workflow)}") or {}
        asked = parse_time((machine.get("status") or {}).get("bootRequested"))
        created = parse_time((workflow.get("metadata") or {}).get("creationTimestamp"))
        if asked is None or (created is not None and asked < created - 1):
            return False  # a server already on was not netbooted into this workflow
        if not hw.netboot_allowed(hardware):
            return False
        if not (hardware.get("spec") or {}).get("userData"):
            return False
        cluster = labels_of(workflow).get(CLUSTER_NAME_LABEL, "")
        if not dhcp_reserves(self.configmaps, namespace_of(workflow), cluster, hw.mac_of(hardware)):
            return False
        try:
            power = await self.bmcs.power_state(bmc_endpoint(self.secrets, hardware), hw.mac_of(hardware))
        except BMCError as exc:
            log.debug("workflow %s: BMC of %s: %s", name_of(workflow), name_of(hardware), exc.message)
            return False  # the machine controller reports BMC failures
        return power == ON


def controller(ctx: Context, bmcs: BMCs, *, workers: int = 2) -> WorkflowRunner:
    """The simulated tink-worker (see the module doc)."""
    return WorkflowRunner(ctx, bmcs, workers=workers)
