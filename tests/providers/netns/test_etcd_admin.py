"""The netns provider's etcd admin against real etcd members.

Every test runs real etcd 3.5 processes on loopback, one per "machine": each machine has an address
of its own (127.x.y.N, as a control plane machine has its DHCP address) and free ports there. The
members are built exactly as the provider builds them (:class:`EtcdMember`) and run as local
subprocesses instead of inside network namespaces, so these tests need no root. The admin finds
them through a resolver, as the machine controller will give it one.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from anywhere.controllers.etcd import EtcdView
from anywhere.providers.netns.etcd_admin import (
    EtcdOperationRefused,
    LearnerNotReady,
    NetnsEtcdAdmin,
)
from anywhere.providers.netns.etcd_member import EtcdMember, cluster_token
from anywhere.storage import KeyExists, Unavailable
from anywhere.storage.etcd import EtcdStorage
from anywhere.storage.etcd_server import LocalMember, free_ports

NAMESPACE, CLUSTER = "default", "c1"
# A member's process is external: these bound the polling for what it does by itself.
SETTLE_TIMEOUT = 15.0
PROMOTE_TIMEOUT = 15.0
# A client's attempts at one request during the rolling replacement (see the test).
CLIENT_ATTEMPTS = 3


class Machines:
    """Control plane machines of one cluster on loopback, and the admin that manages their etcd."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # a /24 of loopback of this test's own, so concurrent runs do not meet
        self.prefix = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self.token = f"{cluster_token(NAMESPACE, CLUSTER)}-{root.name}"
        self.members: dict[str, EtcdMember] = {}
        self.runners: dict[str, LocalMember] = {}
        self.admin = NetnsEtcdAdmin(self.endpoints)

    def endpoints(self, namespace: str, cluster: str) -> dict[str, str]:
        """The resolver: the cluster's machines by name, with their client URLs."""
        assert (namespace, cluster) == (NAMESPACE, CLUSTER)
        return {name: member.client_url for name, member in self.members.items()}

    def machine(self, name: str) -> EtcdMember:
        """A new machine with its address (and ports free there)."""
        ip = f"{self.prefix}.{len(self.members) + 1}"
        client, peer = free_ports(2, ip)
        member = EtcdMember(name, ip, self.root / name, self.token, client_port=client, peer_port=peer)
        self.members[name] = member
        return member

    async def bootstrap(self, name: str) -> None:
        member = self.members.get(name) or self.machine(name)
        runner = self.runners[name] = member.local(member.bootstrap())
        await runner.start()
        await runner.wait_ready()

    async def join(self, name: str) -> None:
        """What the machine controller does for a new control plane machine."""
        member = self.members.get(name) or self.machine(name)
        # etcd takes a new member only once every voter has been connected for 5 s: this waits for that
        added = await self.admin.add_learner(NAMESPACE, CLUSTER, name, member.peer_url)
        runner = self.runners[name] = member.local(member.join(added.initial_cluster))
        await runner.start()
        await runner.wait_ready()
        await self.admin.promote(NAMESPACE, CLUSTER, name, timeout=PROMOTE_TIMEOUT)

    async def kill(self, name: str) -> None:
        await self.runners[name].kill()

    async def close(self) -> None:
        try:
            # one at a time: a member stopping (SIGTERM) hands leadership on, which needs the others up
            for runner in self.runners.values():
                await runner.stop()
        finally:
            await self.admin.close()


@pytest.fixture
async def machines(tmp_path: Path) -> AsyncIterator[Machines]:
    cluster = Machines(tmp_path)
    try:
        yield cluster
    finally:
        await cluster.close()


@pytest.fixture
async def three(machines: Machines) -> Machines:
    """A three-member cluster grown the provider's way: bootstrap one, join two."""
    await machines.bootstrap("cp-1")
    await machines.join("cp-2")
    await machines.join("cp-3")
    return machines


async def settled(machines: Machines, predicate_name: str, check: Callable[[EtcdView], bool]) -> None:
    """Poll the view until ``check(view)`` holds (etcd elects and notices by itself)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    while True:
        view = await machines.admin.view(NAMESPACE, CLUSTER)
        if check(view):
            return
        if loop.time() > deadline:
            raise AssertionError(f"etcd did not reach '{predicate_name}' in {SETTLE_TIMEOUT}s: {view}")
        await asyncio.sleep(0.05)


async def test_a_cluster_forms_and_grows_by_learners_to_three_voters(machines: Machines) -> None:
    admin = machines.admin
    await machines.bootstrap("cp-1")
    view = await admin.view(NAMESPACE, CLUSTER)
    assert dict(view.members) == {"cp-1": True}
    assert view.leader == "cp-1"
    assert not view.learners

    # added, not started: a learner named after its machine (by address), not healthy, not promotable
    cp2 = machines.machine("cp-2")
    added = await admin.add_learner(NAMESPACE, CLUSTER, "cp-2", cp2.peer_url)
    assert set(added.initial_cluster.split(",")) == {
        f"cp-1={machines.members['cp-1'].peer_url}",
        f"cp-2={cp2.peer_url}",
    }
    view = await admin.view(NAMESPACE, CLUSTER)
    assert dict(view.members) == {"cp-1": True, "cp-2": False}
    assert view.learners == {"cp-2"}
    assert view.leader == "cp-1"
    with pytest.raises(LearnerNotReady, match="cp-2 yet: added but not started"):
        await admin.promote(NAMESPACE, CLUSTER, "cp-2")
    # a second learner is refused while one is pending; the same add again is fine (idempotent)
    with pytest.raises(EtcdOperationRefused, match="learner cp-2 is not promoted yet"):
        await admin.add_learner(NAMESPACE, CLUSTER, "cp-3", machines.machine("cp-3").peer_url)
    again = await admin.add_learner(NAMESPACE, CLUSTER, "cp-2", cp2.peer_url)
    assert (again.id, again.initial_cluster) == (added.id, added.initial_cluster)

    runner = machines.runners["cp-2"] = cp2.local(cp2.join(added.initial_cluster))
    await runner.start()
    await runner.wait_ready()
    await admin.promote(NAMESPACE, CLUSTER, "cp-2", timeout=PROMOTE_TIMEOUT)
    await admin.promote(NAMESPACE, CLUSTER, "cp-2")  # a voter already: nothing to do
    await machines.join("cp-3")

    status = await admin.status(NAMESPACE, CLUSTER)
    view = status.view()
    assert dict(view.members) == {"cp-1": True, "cp-2": True, "cp-3": True}
    assert not view.learners
    assert view.has_quorum
    assert view.leader in {"cp-1", "cp-2", "cp-3"}
    assert status.leader is not None
    assert status.leader.name == view.leader
    for member in status.members:
        assert member.leader_id == status.leader.id
        assert member.raft_index > 0
        assert member.version.startswith("3.5")
        assert member.client_url == machines.members[member.name].client_url
    listed = await admin.member_list(NAMESPACE, CLUSTER)
    assert sorted(m.name for m in listed) == ["cp-1", "cp-2", "cp-3"]
    assert not any(m.is_learner for m in listed)


async def test_leadership_moves_to_the_named_member_and_removals_keep_quorum(three: Machines) -> None:
    admin = three.admin
    leader = (await admin.view(NAMESPACE, CLUSTER)).leader
    target = next(name for name in ("cp-1", "cp-2", "cp-3") if name != leader)
    await admin.move_leader(NAMESPACE, CLUSTER, target)
    assert (await admin.view(NAMESPACE, CLUSTER)).leader == target
    await admin.move_leader(NAMESPACE, CLUSTER, target)  # it leads already: nothing to do
    assert (await admin.view(NAMESPACE, CLUSTER)).leader == target
    with pytest.raises(EtcdOperationRefused, match="cannot move leadership to cp-9: no such member"):
        await admin.move_leader(NAMESPACE, CLUSTER, "cp-9")

    with pytest.raises(EtcdOperationRefused, match=f"remove member {target}: it is the leader"):
        await admin.remove_member(NAMESPACE, CLUSTER, target)
    follower = next(name for name in ("cp-1", "cp-2", "cp-3") if name != target)
    await admin.remove_member(NAMESPACE, CLUSTER, follower)
    view = await admin.view(NAMESPACE, CLUSTER)
    assert set(view.members) == {"cp-1", "cp-2", "cp-3"} - {follower}
    assert all(view.members.values())
    assert view.has_quorum
    assert view.leader == target
    # etcd stops a removed member by itself
    process = three.runners[follower].process
    assert process is not None
    await asyncio.wait_for(process.wait(), SETTLE_TIMEOUT)
    await admin.remove_member(NAMESPACE, CLUSTER, follower)  # gone already: fine


async def test_a_killed_member_is_unhealthy_and_removals_that_would_lose_quorum_are_refused(
    three: Machines,
) -> None:
    admin = three.admin
    leader = (await admin.view(NAMESPACE, CLUSTER)).leader
    assert leader is not None
    await three.kill(leader)  # kill -9 the leader: the other two elect a new one
    await settled(three, "a new leader", lambda v: v.leader is not None and v.leader != leader)
    status = await admin.status(NAMESPACE, CLUSTER)
    view = status.view()
    assert view.members[leader] is False
    assert "no answer" in (status.member(leader) or pytest.fail("member gone")).problem
    assert view.has_quorum
    healthy = [name for name in view.healthy_voters if name != view.leader]
    assert len(healthy) == 1
    with pytest.raises(EtcdOperationRefused, match="would not have a healthy quorum") as refused:
        await admin.remove_member(NAMESPACE, CLUSTER, healthy[0])
    assert f"{leader} (no answer" in str(refused.value)
    assert (await admin.view(NAMESPACE, CLUSTER)).members.keys() == {"cp-1", "cp-2", "cp-3"}
    with pytest.raises(EtcdOperationRefused, match="it is not healthy"):
        await admin.move_leader(NAMESPACE, CLUSTER, leader)

    # the dead member itself may go: the two left are a healthy quorum
    await admin.remove_member(NAMESPACE, CLUSTER, leader)
    view = await admin.view(NAMESPACE, CLUSTER)
    assert leader not in view.members
    assert view.has_quorum
    assert all(view.members.values())


async def test_three_rolling_replacements_keep_quorum_and_keep_serving(three: Machines) -> None:
    admin = three.admin
    replacements = [("cp-1", "cp-4"), ("cp-2", "cp-5"), ("cp-3", "cp-6")]
    for _, new in replacements:
        three.machine(new)
    # the API servers' view of etcd: every member's address, old and new (a refused address is skipped)
    store = await EtcdStorage.open(
        [m.client_url for m in three.members.values()], prefix=f"/roll-{three.root.name}/"
    )
    written: list[str] = []
    failures: list[str] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        """Writes and reads all along. A request to the member being removed can lose its answer;
        the store then moves to another member and the request is sent again (a create whose first
        answer was lost may find its key written). A request failing every time would mean etcd
        could not serve: no quorum."""
        n = 0
        while not stop.is_set():
            key = f"/k{n:05}"
            for attempt in range(1, CLIENT_ATTEMPTS + 1):
                try:
                    await store.create(key, b"v")
                    written.append(key)
                    break
                except KeyExists:
                    assert attempt > 1, f"{key} existed before it was written"
                    written.append(key)
                    break  # an earlier attempt had been applied after all
                except Unavailable as exc:
                    if attempt == CLIENT_ATTEMPTS:
                        failures.append(f"create {key}: {exc}")  # reported at the end, with the reason
            n += 1
            if not written:
                continue
            for attempt in range(1, CLIENT_ATTEMPTS + 1):
                try:
                    record = await store.get(written[random.randrange(len(written))])
                    assert record is not None
                    break
                except Unavailable as exc:
                    if attempt == CLIENT_ATTEMPTS:
                        failures.append(f"get: {exc}")
            await asyncio.sleep(0.01)

    runner = asyncio.create_task(traffic())
    try:
        for old, new in replacements:
            before = len(written)
            await three.join(new)
            assert (await admin.view(NAMESPACE, CLUSTER)).has_quorum
            if (await admin.view(NAMESPACE, CLUSTER)).leader == old:
                await admin.move_leader(NAMESPACE, CLUSTER, new)
            await admin.remove_member(NAMESPACE, CLUSTER, old)
            await three.runners[old].stop()
            view = await admin.view(NAMESPACE, CLUSTER)
            assert view.has_quorum
            assert old not in view.members
            assert all(view.members.values())
            assert len(view.members) == 3
            # traffic went on through the step (it runs beside the awaits above)
            while len(written) == before:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await runner
    try:
        assert failures == []
        view = await admin.view(NAMESPACE, CLUSTER)
        assert set(view.members) == {"cp-4", "cp-5", "cp-6"}
        assert view.has_quorum
        listing = await store.list("")
        assert [r.key for r in listing.records] == written
    finally:
        await store.close()
