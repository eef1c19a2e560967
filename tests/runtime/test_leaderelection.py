"""Leader election on a real Lease of a real `anywhere serve`, with short timings (2 s leases)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from anywhere.runtime import LEASES, Client, LeaderElector, LeadershipLost, elect
from tests.runtime.conftest import start, stop, within

FAST: dict[str, Any] = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.25}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Leaders:
    """Work for electors that records who leads, and fails the test if two ever do at once."""

    def __init__(self) -> None:
        self.leading: set[str] = set()
        self.overlaps: list[set[str]] = []
        self.started: dict[str, asyncio.Event] = {}
        self.stopped: dict[str, asyncio.Event] = {}

    def work(self, identity: str) -> Callable[[], Coroutine[Any, Any, None]]:
        self.started[identity] = asyncio.Event()
        self.stopped[identity] = asyncio.Event()

        async def lead() -> None:
            if self.leading:
                self.overlaps.append({*self.leading, identity})
            self.leading.add(identity)
            self.started[identity].set()
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                self.leading.discard(identity)
                self.stopped[identity].set()

        return lead


async def renewals(client: Client, namespace: str, name: str, holder: str, count: int) -> None:
    """Wait until ``holder`` has renewed the lease ``count`` more times (seen on a watch)."""
    lease = await client.get(LEASES, name, namespace)
    seen = 0
    async with client.watch(
        LEASES,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=lease["metadata"]["resourceVersion"],
    ) as stream:

        async def count_them() -> None:
            nonlocal seen
            async for kind, obj in stream:
                if kind in ("ADDED", "MODIFIED") and obj["spec"].get("holderIdentity") == holder:
                    seen += 1
                    if seen >= count:
                        return

        await within(count_them())


async def finish(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_timings_are_checked(client: Client) -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(client, "ns", "l", "me", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match="retry_period"):
        LeaderElector(client, "ns", "l", "me", lease_duration=15, renew_deadline=2, retry_period=2)


async def test_one_leads_and_a_crashed_leader_is_replaced_after_its_lease_expires(
    client: Client, namespace: str
) -> None:
    leaders = Leaders()
    first = LeaderElector(client, namespace, "lock", "first", release_on_cancel=False, **FAST)
    second = LeaderElector(client, namespace, "lock", "second", release_on_cancel=False, **FAST)
    running_first = asyncio.create_task(first.run(leaders.work("first")))
    await within(leaders.started["first"].wait())
    running_second = asyncio.create_task(second.run(leaders.work("second")))
    try:
        await renewals(client, namespace, "lock", "first", 3)
        assert first.is_leader
        assert not second.is_leader
        assert not leaders.started["second"].is_set()
        lease = await client.get(LEASES, "lock", namespace)
        assert lease["spec"]["holderIdentity"] == "first"
        assert lease["spec"]["leaseDurationSeconds"] == 2
        assert lease["spec"]["leaseTransitions"] == 0

        await finish(running_first)  # a crash: no release
        assert leaders.stopped["first"].is_set()
        last = await client.get(LEASES, "lock", namespace)
        assert last["spec"]["holderIdentity"] == "first"

        await within(leaders.started["second"].wait())
        taken = await client.get(LEASES, "lock", namespace)
        assert taken["spec"]["holderIdentity"] == "second"
        assert taken["spec"]["leaseTransitions"] == 1
        # Not before the lease had gone unrenewed for its whole duration.
        waited = _time(taken["spec"]["acquireTime"]) - _time(last["spec"]["renewTime"])
        assert waited.total_seconds() >= FAST["lease_duration"]
        assert leaders.overlaps == []
    finally:
        await finish(running_first)
        await finish(running_second)


async def test_a_clean_shutdown_releases_the_lease(client: Client, namespace: str) -> None:
    leaders = Leaders()
    stopped: list[str] = []
    first = LeaderElector(client, namespace, "lock", "first", **FAST)
    second = LeaderElector(client, namespace, "lock", "second", **FAST)
    running_first = asyncio.create_task(first.run(leaders.work("first"), lambda: stopped.append("first")))
    await within(leaders.started["first"].wait())
    running_second = asyncio.create_task(second.run(leaders.work("second")))
    try:
        await finish(running_first)
        assert stopped == ["first"]
        assert first.holder in ("", "second")  # released (the successor may be quick)
        await within(leaders.started["second"].wait())
        lease = await client.get(LEASES, "lock", namespace)
        assert lease["spec"]["holderIdentity"] == "second"
        assert lease["spec"]["leaseTransitions"] == 1
        assert leaders.overlaps == []
    finally:
        await finish(running_first)
        await finish(running_second)
    lease = await client.get(LEASES, "lock", namespace)
    assert lease["spec"]["holderIdentity"] == ""


async def test_work_that_ends_releases_and_its_error_propagates(client: Client, namespace: str) -> None:
    elector = LeaderElector(client, namespace, "lock", "solo", **FAST)

    async def fail() -> None:
        raise RuntimeError("the work broke")

    with pytest.raises(RuntimeError, match="the work broke"):
        await within(elector.run(fail))
    assert not elector.is_leader
    lease = await client.get(LEASES, "lock", namespace)
    assert lease["spec"]["holderIdentity"] == ""


async def test_elect_cancels_the_body_when_the_lease_is_taken(client: Client, namespace: str) -> None:
    body_cancelled = asyncio.Event()
    leading = asyncio.Event()

    async def lead() -> None:
        async with elect(client, namespace, "lock", "me", **FAST) as elector:
            assert elector.is_leader
            leading.set()
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                body_cancelled.set()
                raise

    task = asyncio.create_task(lead())
    await within(leading.wait())
    # Someone else writes the lease (as a partitioned-away leader's successor would).
    lease = await client.get(LEASES, "lock", namespace)
    lease["spec"].update(holderIdentity="thief", leaseDurationSeconds=60)
    await client.update(LEASES, lease)
    with pytest.raises(LeadershipLost):
        await within(task)
    assert body_cancelled.is_set()
    lease = await client.get(LEASES, "lock", namespace)
    assert lease["spec"]["holderIdentity"] == "thief"  # a lost lease is not "released"


async def test_elect_releases_at_the_end_of_the_body(client: Client, namespace: str) -> None:
    async with elect(client, namespace, "lock", "me", **FAST) as elector:
        assert (await client.get(LEASES, "lock", namespace))["spec"]["holderIdentity"] == "me"
        assert elector.is_leader
    assert not elector.is_leader
    assert (await client.get(LEASES, "lock", namespace))["spec"]["holderIdentity"] == ""


async def test_a_leader_that_cannot_renew_stops_before_its_lease_expires(tmp_path: Path) -> None:
    """The API server goes away under a leader: it must stop leading (cancel its work) within
    its renew deadline, well before anyone else could take the lease over."""
    server = await start(tmp_path / "data")
    leaders = Leaders()
    stopped_at: list[float] = []
    loop = asyncio.get_running_loop()
    timings: dict[str, Any] = {"lease_duration": 3.0, "renew_deadline": 1.5, "retry_period": 0.25}
    async with Client.from_kubeconfig(server.kubeconfig, timeout=1.0) as api:
        elector = LeaderElector(api, "default", "lock", "alone", **timings)
        running = asyncio.create_task(
            elector.run(leaders.work("alone"), lambda: stopped_at.append(loop.time()))
        )
        try:
            await within(leaders.started["alone"].wait())
            await renewals(api, "default", "lock", "alone", 1)
        finally:
            await stop(server)
        try:
            await within(running)  # returns by itself: leadership lost
            assert leaders.stopped["alone"].is_set()
            assert not elector.is_leader
            assert stopped_at[0] - elector.last_renewal < timings["lease_duration"]
        finally:
            await finish(running)
