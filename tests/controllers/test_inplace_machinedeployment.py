"""An InPlace MachineDeployment's bookkeeping against a real API, with only the MachineDeployment
and MachineSet controllers running: the test plays the Machine controller (it reports machines
Ready, and upgraded once asked) and stops the controllers at the most delicate moment of a move
(the machine re-owned by the new set, both sets still held), as a crash would leave it."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from anywhere.api.capi import MACHINE_SET_NAME_LABEL
from anywhere.api.capi._base import MACHINE_TEMPLATE_HASH_LABEL
from anywhere.controllers import inplace, machinedeployment, machineset
from anywhere.controllers.conditions import is_true, set_condition
from anywhere.controllers.context import Context
from anywhere.controllers.objects import annotations_of, owner_reference
from anywhere.controllers.resources import MACHINE_DEPLOYMENTS, MACHINE_SETS, MACHINES
from anywhere.runtime import Client, ConflictError, Controller
from tests.controllers.conftest import eventually, running
from tests.controllers.test_inplace_upgrade import Tracker, follow
from tests.controllers.test_machinedeployment import machine_deployment, make_ready, ms_name, patch_md
from tests.controllers.test_machineset import make_templates

Obj = dict[str, Any]
OLD, NEW = "v1.33.4", "v1.34.1"


def controllers(ctx: Context) -> list[Controller]:
    return [machinedeployment.controller(ctx), machineset.controller(ctx)]


async def play_upgrade(client: Client, machine: Obj) -> None:
    """What the Machine controller does for an asked machine, in its final state: the agent asked
    for the version and the condition True."""
    for _ in range(20):
        current = await client.get(MACHINES, machine["metadata"]["name"], machine["metadata"]["namespace"])
        wanted = inplace.requested(current)
        try:
            current = await client.patch(
                MACHINES,
                current["metadata"]["name"],
                {
                    "metadata": {
                        "annotations": {inplace.UPGRADE_TO_ANNOTATION: wanted},
                        "resourceVersion": current["metadata"]["resourceVersion"],
                    }
                },
                current["metadata"]["namespace"],
            )
            status = current.setdefault("status", {})
            set_condition(status, inplace.IN_PLACE_UPGRADED, True)
            await client.update_status(MACHINES, current)
            return
        except ConflictError:
            continue
    raise AssertionError("could not play the Machine controller")


def asked(items: list[Obj]) -> list[Obj]:
    return [m for m in items if inplace.in_flight(m)]


async def test_a_move_cut_short_by_a_crash_is_finished_without_making_or_deleting_machines(
    context: Context, client: Client, namespace: str
) -> None:
    await make_templates(client, namespace)
    md = machine_deployment(namespace, "md", 2, OLD)
    md["spec"]["strategy"] = {"type": "InPlace"}
    await client.create(MACHINE_DEPLOYMENTS, md)
    first, second = ms_name("md", OLD), ms_name("md", NEW)

    async with running(context, controllers(context)):
        made = await eventually(client, MACHINES, namespace, lambda items: len(items) == 2)
        for m in made:
            await make_ready(client, m)
        await eventually(
            client,
            MACHINE_DEPLOYMENTS,
            namespace,
            lambda items: items[0].get("status", {}).get("readyReplicas") == 2,
        )
        names = sorted(m["metadata"]["name"] for m in made)
        await patch_md(client, namespace, "md", {"spec": {"template": {"spec": {"version": NEW}}}})
        # The new set is made empty; the oldest machine is asked to upgrade in place.
        [target] = asked(await eventually(client, MACHINES, namespace, lambda items: len(asked(items)) == 1))
        assert inplace.requested(target) == NEW
        sets = {ms["metadata"]["name"]: ms for ms in (await client.list(MACHINE_SETS, namespace))["items"]}
        assert set(sets) == {first, second}
        assert (sets[first]["spec"]["replicas"], sets[second]["spec"]["replicas"]) == (2, 0)
        [md] = (await client.list(MACHINE_DEPLOYMENTS, namespace))["items"]
        condition = next(c for c in md["status"]["conditions"] if c["type"] == "MachinesSpecUpToDate")
        assert condition["reason"] == inplace.IN_PROGRESS_REASON

    # The plane is down. The state a crash right after a move leaves: both sets held, the machine
    # already the new set's, the replica counts not yet changed.
    old_set, new_set = sets[first], sets[second]
    for ms in (old_set, new_set):
        await client.patch(
            MACHINE_SETS,
            ms["metadata"]["name"],
            {"metadata": {"annotations": {inplace.HOLD_ANNOTATION: "true"}}},
            namespace,
        )
    moved = await client.get(MACHINES, target["metadata"]["name"], namespace)
    labels = dict(moved["metadata"]["labels"])
    labels.update({MACHINE_SET_NAME_LABEL: second, MACHINE_TEMPLATE_HASH_LABEL: second.rpartition("-")[2]})
    await client.patch(
        MACHINES,
        moved["metadata"]["name"],
        {
            "metadata": {
                "labels": labels,
                "ownerReferences": [owner_reference(new_set, controller=True)],
                "annotations": {inplace.UPGRADE_NEEDED_ANNOTATION: None},
            },
            "spec": {"version": NEW},
        },
        namespace,
    )
    tracker = Tracker()

    async def management() -> Client:
        return client

    watching = asyncio.create_task(
        follow(management, MACHINES, namespace, tracker.on_machine, tracker.sync_machines)
    )
    await tracker.wait_for(lambda: len(tracker.machines) == 2)
    tracker.started = True
    async with running(context, controllers(context)):

        def released(items: list[Obj]) -> bool:
            by_name = {ms["metadata"]["name"]: ms for ms in items}
            return all(
                inplace.HOLD_ANNOTATION not in annotations_of(ms)
                and ms.get("status", {}).get("replicas") == 1
                for ms in (by_name.get(first), by_name.get(second))
                if ms is not None
            ) and {first, second} <= set(by_name)

        sets_now = await eventually(client, MACHINE_SETS, namespace, released)
        assert {ms["metadata"]["name"]: ms["spec"]["replicas"] for ms in sets_now} == {first: 1, second: 1}
        # The other machine goes next; once it is upgraded it moves too, and the old set goes.
        [other] = asked(await eventually(client, MACHINES, namespace, lambda items: len(asked(items)) == 1))
        assert other["metadata"]["name"] != target["metadata"]["name"]
        await play_upgrade(client, other)
        sets_now = await eventually(client, MACHINE_SETS, namespace, lambda items: len(items) == 1)
        assert sets_now[0]["metadata"]["name"] == second
        [md] = await eventually(
            client,
            MACHINE_DEPLOYMENTS,
            namespace,
            lambda items: (
                items[0].get("status", {}).get("updatedReplicas") == 2
                and is_true(items[0], "MachinesSpecUpToDate")
            ),
        )
        machines = (await client.list(MACHINES, namespace))["items"]
        assert sorted(m["metadata"]["name"] for m in machines) == names
        for m in machines:
            assert m["spec"]["version"] == NEW
            assert m["metadata"]["labels"][MACHINE_SET_NAME_LABEL] == second
            assert not inplace.in_flight(m)
            assert inplace.UPGRADE_TO_ANNOTATION not in annotations_of(m)
        assert md["metadata"]["annotations"]["machinedeployment.clusters.x-k8s.io/revision"] == "2"
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    # Never a machine made or deleted, never more than one asked at once.
    assert (tracker.created, tracker.deleted) == (set(), set())
    assert tracker.annotated_at_once == 1
