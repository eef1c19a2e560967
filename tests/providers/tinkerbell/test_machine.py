"""The TinkerbellMachine controller's boot phase after a crash, against a real management API and the
real Redfish emulator.

The boot is recorded (``status.bootRequested``) before the BMC is asked, so a plane killed between
the two leaves a request the BMC never saw. The restarted controller must ask again once the
server has stayed off longer than a BMC takes to apply a change, and must not while the request is
fresh (asking twice would reset a server that is already booting).

The phase is called directly, with the controller's informers synced: running the whole controller
would need a Cluster, Machine and bootstrap data that this phase never reads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from anywhere.api.capi import INFRASTRUCTURE_API_VERSION
from anywhere.controllers.context import Context
from anywhere.controllers.objects import write_status
from anywhere.controllers.resources import HARDWARE, TINKERBELL_MACHINES
from anywhere.providers.tinkerbell import machine
from anywhere.providers.tinkerbell.bmc import OFF, ON, BMCs
from anywhere.runtime import SECRETS, Client
from tests.controllers.conftest import client, context, namespace, server
from tests.redfish import Emulator

__all__ = ["client", "context", "namespace", "server"]

Obj = dict[str, Any]


async def started(context: Context, bmcs: BMCs) -> machine.TinkerbellMachineController:
    """The controller, its caches synced (after the test made its objects, so they hold them)."""
    made = machine.controller(context, bmcs)
    context.manager.informers.start()
    await context.manager.informers.wait_synced()
    return made


async def boot_recorded(client: Client, namespace: str, redfish: Emulator, system: str, age: float) -> Obj:
    """A TinkerbellMachine holding ``system``'s Hardware, its boot recorded ``age`` seconds ago."""
    await client.create(SECRETS, redfish.secret(system, namespace=namespace), namespace)
    await client.create(HARDWARE, redfish.hardware(system, namespace=namespace), namespace)
    created = await client.create(
        TINKERBELL_MACHINES,
        {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "TinkerbellMachine",
            "metadata": {"name": f"m-{system}", "namespace": namespace},
            "spec": {"hardwareName": system},
        },
        namespace,
    )
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    return await write_status(
        client, TINKERBELL_MACHINES, created, {"bootRequested": moment.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )


async def test_a_boot_the_bmc_never_saw_is_asked_again(
    client: Client, namespace: str, redfish: Emulator, context: Context, bmcs: BMCs
) -> None:
    system = "hw-1"
    assert redfish.power_state(system) == OFF
    obj = await boot_recorded(client, namespace, redfish, system, machine.BOOT_REASK_AFTER + 5)
    controller = await started(context, bmcs)

    result = await controller._boot(
        f"{namespace}/{obj['metadata']['name']}", obj, redfish.hardware(system, namespace=namespace)
    )

    assert result is not None
    assert result.requeue_after == machine.POWER_POLL
    assert redfish.boot_override(system)[0] == "Pxe"
    assert await asyncio.to_thread(redfish.wait_power, system, ON) == ON


async def test_a_fresh_boot_request_is_not_asked_again(
    client: Client, namespace: str, redfish: Emulator, context: Context, bmcs: BMCs
) -> None:
    system = "hw-2"
    obj = await boot_recorded(client, namespace, redfish, system, 1)
    controller = await started(context, bmcs)

    result = await controller._boot(
        f"{namespace}/{obj['metadata']['name']}", obj, redfish.hardware(system, namespace=namespace)
    )

    assert result is not None
    assert result.requeue_after == machine.POWER_POLL
    assert redfish.boot_override(system)[0] == "Hdd"  # set synchronously when asked: it was not
    assert redfish.power_state(system) == OFF
