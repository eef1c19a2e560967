"""The simulated etcd membership: every rule with its message, a rolling replacement as a
controller would do it, and a model-based state machine that checks raft's invariants after
every step of random operation sequences."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from anywhere.providers.sim.etcd import (
    EtcdCluster,
    EtcdError,
    EtcdStateError,
    InvalidMemberError,
    LeaderRemovalError,
    LeaderTransferError,
    LearnerError,
    MemberExistsError,
    MemberNotFoundError,
    NoQuorumError,
    QuorumRiskError,
)


def peer(name: str) -> str:
    return f"https://{name}.demo:2380"


def client(name: str) -> str:
    return f"https://{name}.demo:2379"


def join(cluster: EtcdCluster, name: str) -> None:
    """What a controller does to add a control plane machine's member."""
    cluster.add_member(name, peer(name), client(name))
    cluster.mark_healthy(name)
    cluster.promote(name)


def make(*names: str, max_learners: int = 1) -> EtcdCluster:
    cluster = EtcdCluster("demo", max_learners=max_learners)
    first, *rest = names
    cluster.bootstrap(first, peer(first), client(first))
    for name in rest:
        join(cluster, name)
    return cluster


# -- bootstrap and views --------------------------------------------------------------------------


def test_bootstrap_makes_a_single_healthy_voting_leader() -> None:
    cluster = make("cp-1")
    (member,) = cluster.members
    assert (member.name, member.is_voter, member.healthy) == ("cp-1", True, True)
    assert cluster.leader == member
    assert cluster.term == 1
    assert cluster.quorum_size == 1
    assert cluster.has_quorum
    assert cluster.fault_tolerance == 0
    assert len(member.id) == 16
    int(member.id, 16)


def test_bootstrap_twice_is_refused() -> None:
    cluster = make("cp-1")
    with pytest.raises(
        MemberExistsError, match=r"already bootstrapped \(members: cp-1\); add further members"
    ):
        cluster.bootstrap("cp-2", peer("cp-2"), client("cp-2"))


def test_an_empty_cluster_has_no_quorum_and_asks_for_bootstrap() -> None:
    cluster = EtcdCluster("demo")
    assert not cluster.has_quorum
    assert cluster.leader is None
    with pytest.raises(NoQuorumError, match="has no members yet; bootstrap it with its first member"):
        cluster.add_member("cp-1", peer("cp-1"), client("cp-1"))


@pytest.mark.parametrize(
    ("voters", "quorum", "tolerance"), [(1, 1, 0), (2, 2, 0), (3, 2, 1), (4, 3, 1), (5, 3, 2)]
)
def test_quorum_is_a_majority_of_voters(voters: int, quorum: int, tolerance: int) -> None:
    cluster = make(*(f"cp-{i}" for i in range(voters)))
    assert cluster.quorum_size == quorum
    assert cluster.fault_tolerance == tolerance


def test_constructor_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        EtcdCluster("")
    with pytest.raises(ValueError, match="max_learners must be at least 1"):
        EtcdCluster("demo", max_learners=0)


def test_unknown_members_are_named_with_the_known_ones() -> None:
    cluster = make("cp-1", "cp-2")
    with pytest.raises(MemberNotFoundError, match=r"no member named 'cp-9' \(members: cp-1, cp-2\)"):
        cluster.member("cp-9")
    for operation in (cluster.promote, cluster.remove_member, cluster.move_leader, cluster.mark_unhealthy):
        with pytest.raises(MemberNotFoundError):
            operation("cp-9")
    assert isinstance(MemberNotFoundError("x"), LookupError)
    assert "cp-1" in cluster
    assert "cp-9" not in cluster
    assert len(cluster) == 2


# -- adding and promoting -------------------------------------------------------------------------


def test_a_new_member_is_an_unstarted_learner_that_does_not_change_quorum() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    member = cluster.add_member("cp-4", peer("cp-4"), client("cp-4"))
    assert member.is_learner
    assert not member.healthy
    assert cluster.quorum_size == 2
    assert cluster.has_quorum
    assert [m.name for m in cluster.learners] == ["cp-4"]


def test_only_one_learner_at_a_time_by_default() -> None:
    cluster = make("cp-1")
    cluster.add_member("cp-2", peer("cp-2"), client("cp-2"))
    with pytest.raises(
        LearnerError,
        match=r"already has 1 learner\(s\) \(cp-2\), the most it allows; promote or remove them first",
    ):
        cluster.add_member("cp-3", peer("cp-3"), client("cp-3"))


def test_max_learners_allows_more() -> None:
    cluster = make("cp-1", max_learners=2)
    cluster.add_member("cp-2", peer("cp-2"), client("cp-2"))
    cluster.add_member("cp-3", peer("cp-3"), client("cp-3"))
    assert len(cluster.learners) == 2


def test_names_and_urls_must_be_unique() -> None:
    cluster = make("cp-1")
    with pytest.raises(
        MemberExistsError, match=r"already has a member of that name .*remove it first or pick another"
    ):
        cluster.add_member("cp-1", peer("x"), client("x"))
    with pytest.raises(
        MemberExistsError, match=r"peer URL https://cp-1.demo:2380 is already used by member cp-1"
    ):
        cluster.add_member("cp-2", peer("cp-1"), client("cp-2"))
    with pytest.raises(
        MemberExistsError, match=r"client URL https://cp-1.demo:2380 is already used by member cp-1"
    ):
        cluster.add_member("cp-2", peer("cp-2"), peer("cp-1"))


@pytest.mark.parametrize(
    "url", ["cp-2:2380", "ftp://cp-2:2380", "https://cp-2", "https://:2380", "https://cp-2:x"]
)
def test_urls_must_be_http_with_host_and_port(url: str) -> None:
    cluster = make("cp-1")
    with pytest.raises(InvalidMemberError, match=r"peer URL .* is not a URL of the form https://HOST:PORT"):
        cluster.add_member("cp-2", url, client("cp-2"))
    assert isinstance(InvalidMemberError("x"), ValueError)


def test_a_member_needs_a_name() -> None:
    with pytest.raises(InvalidMemberError, match="needs a name"):
        make("cp-1").add_member("", peer("x"), client("x"))


def test_only_a_healthy_learner_is_promoted() -> None:
    cluster = make("cp-1")
    cluster.add_member("cp-2", peer("cp-2"), client("cp-2"))
    with pytest.raises(
        LearnerError, match="has not started or is not in sync with the leader; wait until it is healthy"
    ):
        cluster.promote("cp-2")
    with pytest.raises(LearnerError, match="cannot promote cp-1: it is already a voting member"):
        cluster.promote("cp-1")
    cluster.mark_healthy("cp-2")
    promoted = cluster.promote("cp-2")
    assert promoted.is_voter
    assert cluster.quorum_size == 2
    assert cluster.has_quorum


def test_adding_and_promoting_need_quorum() -> None:
    cluster = make("cp-1", "cp-2", "cp-3", max_learners=2)
    cluster.add_member("cp-4", peer("cp-4"), client("cp-4"))
    cluster.mark_healthy("cp-4")
    cluster.mark_unhealthy("cp-2")
    cluster.mark_unhealthy("cp-3")
    message = (
        r"has no quorum \(1 of 3 voting members healthy, 2 needed\), so no change can be committed; "
        r"bring the unhealthy members \(cp-2, cp-3\) back, or restore the cluster from a snapshot"
    )
    with pytest.raises(NoQuorumError, match="cannot add member cp-5: etcd cluster demo " + message):
        cluster.add_member("cp-5", peer("cp-5"), client("cp-5"))
    with pytest.raises(NoQuorumError, match="cannot promote cp-4"):
        cluster.promote("cp-4")


# -- removing and leadership ------------------------------------------------------------------------


def test_a_learner_can_always_be_removed_while_there_is_quorum() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.add_member("cp-4", peer("cp-4"), client("cp-4"))  # never started
    cluster.mark_unhealthy("cp-3")
    assert cluster.remove_member("cp-4").name == "cp-4"
    assert cluster.has_quorum


def test_the_last_voter_cannot_be_removed() -> None:
    cluster = make("cp-1")
    with pytest.raises(
        QuorumRiskError, match=r"it is the last voting member .*delete the whole cluster instead"
    ):
        cluster.remove_member("cp-1")


def test_the_leader_cannot_be_removed_until_leadership_moves() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    assert cluster.is_leader("cp-1")
    with pytest.raises(
        LeaderRemovalError,
        match=r"cp-1: it is the leader of etcd cluster demo; move leadership to another healthy voting member "
        r"first, e.g. move_leader\('cp-2'\)",
    ):
        cluster.remove_member("cp-1")
    cluster.move_leader("cp-3")
    cluster.remove_member("cp-1")
    assert cluster.is_leader("cp-3")
    assert [m.name for m in cluster.voters] == ["cp-2", "cp-3"]


def test_removing_a_healthy_voter_while_another_is_down_is_refused() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.mark_unhealthy("cp-3")
    with pytest.raises(
        QuorumRiskError,
        match=r"cannot remove cp-2: it would leave 1 of 2 voting members healthy, 2 needed for quorum; "
        r"repair or remove the unhealthy members \(cp-3\) first",
    ):
        cluster.remove_member("cp-2")
    cluster.remove_member("cp-3")  # the broken one goes first
    assert cluster.has_quorum
    assert cluster.quorum_size == 2


def test_removal_needs_quorum() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.mark_unhealthy("cp-2")
    cluster.mark_unhealthy("cp-3")
    with pytest.raises(NoQuorumError, match=r"cannot remove cp-3: .*restore the cluster from a snapshot"):
        cluster.remove_member("cp-3")


def test_a_refused_operation_changes_nothing() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.mark_unhealthy("cp-3")
    before = cluster.to_dict()
    attempts: list[Callable[[], object]] = [
        lambda: cluster.remove_member("cp-2"),
        lambda: cluster.remove_member("cp-1"),
        lambda: cluster.move_leader("cp-3"),
        lambda: cluster.promote("cp-2"),
        lambda: cluster.add_member("cp-2", peer("cp-9"), client("cp-9")),
    ]
    for attempt in attempts:
        with pytest.raises(EtcdError):
            attempt()
        assert cluster.to_dict() == before


def test_check_remove_raises_what_remove_would_and_changes_nothing() -> None:
    cluster = make("cp-1", "cp-2")
    before = cluster.to_dict()
    with pytest.raises(LeaderRemovalError):
        cluster.check_remove("cp-1")
    cluster.check_remove("cp-2")
    assert cluster.to_dict() == before


def test_leadership_moves_only_to_a_healthy_voter() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.add_member("cp-4", peer("cp-4"), client("cp-4"))
    cluster.mark_healthy("cp-4")
    with pytest.raises(
        LeaderTransferError, match="cp-4: it is a learner, which cannot lead; promote it first"
    ):
        cluster.move_leader("cp-4")
    cluster.mark_unhealthy("cp-3")
    with pytest.raises(
        LeaderTransferError, match=r"cp-3: it is unhealthy; pick a healthy voting member \(cp-1, cp-2\)"
    ):
        cluster.move_leader("cp-3")
    term = cluster.term
    assert cluster.move_leader("cp-2").name == "cp-2"
    assert cluster.is_leader("cp-2")
    assert cluster.term == term + 1
    cluster.move_leader("cp-2")  # idempotent: no new term
    assert cluster.term == term + 1


def test_leadership_cannot_move_without_quorum() -> None:
    cluster = make("cp-1", "cp-2")
    cluster.mark_unhealthy("cp-2")
    with pytest.raises(NoQuorumError, match="cannot move leadership to cp-1"):
        cluster.move_leader("cp-1")


# -- health and elections ------------------------------------------------------------------------


def test_a_failed_leader_is_replaced_by_the_lowest_named_healthy_voter() -> None:
    cluster = make("cp-3", "cp-1", "cp-2")
    assert cluster.is_leader("cp-3")
    term = cluster.term
    cluster.mark_unhealthy("cp-3")
    assert cluster.is_leader("cp-1")
    assert cluster.term == term + 1
    cluster.mark_healthy("cp-3")  # coming back does not take leadership back
    assert cluster.is_leader("cp-1")


def test_no_leader_without_quorum_and_an_election_when_it_returns() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.mark_unhealthy("cp-2")
    assert cluster.is_leader("cp-1")  # a follower failing does not disturb the leader
    cluster.mark_unhealthy("cp-3")
    assert not cluster.has_quorum
    assert cluster.leader is None  # the leader cannot reach a quorum and steps down
    cluster.mark_healthy("cp-3")
    assert cluster.has_quorum
    assert cluster.is_leader("cp-1")


def test_marking_health_is_idempotent_and_learners_do_not_count() -> None:
    cluster = make("cp-1", "cp-2")
    term = cluster.term
    cluster.mark_healthy("cp-2")
    assert cluster.term == term
    cluster.add_member("cp-3", peer("cp-3"), client("cp-3"))
    cluster.mark_healthy("cp-3")
    cluster.mark_unhealthy("cp-3")
    assert cluster.has_quorum
    assert cluster.is_leader("cp-1")


def test_member_ids_are_new_for_a_re_added_name() -> None:
    cluster = make("cp-1", "cp-2")
    first = cluster.member("cp-2").id
    cluster.remove_member("cp-2")
    cluster.add_member("cp-2", peer("cp-2"), client("cp-2"))
    assert cluster.member("cp-2").id != first
    assert len({m.id for m in cluster.members}) == 2


def test_a_rolling_replacement_keeps_quorum_throughout() -> None:
    """The order KubeadmControlPlane uses: scale up one, then remove one old member, leader last."""
    cluster = make("old-1", "old-2", "old-3")
    for i, old in enumerate(["old-1", "old-2", "old-3"], start=1):
        join(cluster, f"new-{i}")
        assert cluster.has_quorum
        if cluster.is_leader(old):
            cluster.move_leader(f"new-{i}")
        cluster.remove_member(old)
        assert cluster.has_quorum
    assert sorted(m.name for m in cluster.voters) == ["new-1", "new-2", "new-3"]
    assert cluster.leader is not None
    assert cluster.leader.name == "new-1"


# -- preflight report ---------------------------------------------------------------------------------


def test_health_report_of_a_healthy_cluster() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    report = cluster.health_report(["cp-2", "cp-1"])
    assert report.ok
    assert report.failures == ()
    assert [str(check) for check in report.checks] == [
        "[ok] all 3 members healthy",
        "[ok] quorum: 3 of 3 voting members healthy, 2 needed; tolerates 1 more failure(s)",
        "[ok] leader is cp-1 (term 1)",
        "[ok] removing cp-2 keeps quorum (2 of 2 voting members healthy after, 2 needed)",
        "[ok] removing cp-1 keeps quorum (2 of 2 voting members healthy after, 2 needed); it is the leader, "
        "so move leadership first",
    ]
    assert str(report).splitlines()[0] == "etcd cluster demo:"


def test_health_report_names_what_is_wrong() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.add_member("cp-4", peer("cp-4"), client("cp-4"))
    cluster.mark_unhealthy("cp-2")
    report = cluster.health_report(["cp-3", "cp-4", "cp-9"])
    assert not report.ok
    by_name = {check.name: check for check in report.checks}
    assert by_name["members"].message == "2 of 4 members unhealthy: cp-2, cp-4 (learner)"
    assert by_name["quorum"].ok
    assert by_name["quorum"].message.endswith("tolerates 0 more failure(s)")
    assert not by_name["remove cp-3"].ok
    assert "would leave 1 of 2 voting members healthy" in by_name["remove cp-3"].message
    assert by_name["remove cp-4"].message == "removing cp-4 keeps quorum (it is a learner and does not vote)"
    assert "no member named 'cp-9'" in by_name["remove cp-9"].message
    assert {check.name for check in report.failures} == {"members", "remove cp-3", "remove cp-9"}


def test_health_report_without_quorum_or_members() -> None:
    cluster = make("cp-1", "cp-2")
    cluster.mark_unhealthy("cp-2")
    checks = {check.name: check for check in cluster.health_report().checks}
    assert checks["quorum"].message == "no quorum: 1 of 2 voting members healthy, 2 needed"
    assert checks["leader"].message == "no leader"
    empty = EtcdCluster("demo").health_report()
    assert not empty.ok
    assert empty.checks[0].message == "no members; bootstrap the cluster first"


# -- serialization -----------------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    cluster = make("cp-1", "cp-2", "cp-3")
    cluster.add_member("cp-4", peer("cp-4"), client("cp-4"))
    cluster.mark_unhealthy("cp-1")
    data = json.loads(json.dumps(cluster.to_dict()))
    again = EtcdCluster.from_dict(data)
    assert again == cluster
    assert again.to_dict() == cluster.to_dict()
    assert again.is_leader("cp-2")
    # behaviour continues identically, including fresh member IDs
    cluster.mark_healthy("cp-4")
    again.mark_healthy("cp-4")
    cluster.promote("cp-4")
    again.promote("cp-4")
    cluster.add_member("cp-5", peer("cp-5"), client("cp-5"))
    again.add_member("cp-5", peer("cp-5"), client("cp-5"))
    assert again.to_dict() == cluster.to_dict()


def _state() -> dict[str, Any]:
    return make("cp-1", "cp-2", "cp-3").to_dict()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        key: Any = int(last) if last.isdigit() else last
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("cluster", _DELETE), "cluster is missing"),
        (_set("term", "1"), "term must be of type int"),
        (_set("term", True), "term must be of type int"),
        (_set("term", -1), "cannot be negative"),
        (_set("maxLearners", 0), "max_learners must be at least 1"),
        (_set("members", {}), "members must be of type list"),
        (_set("members.1", "cp-2"), r"members\[1\]: expected an object"),
        (_set("members.1.healthy", "yes"), r"members\[1\]: healthy must be of type bool"),
        (_set("members.1.name", "cp-1"), r"members\[1\]: .*already has a member of that name"),
        (_set("members.1.peerURL", "https://cp-1.demo:2380"), r"members\[1\]: .*already used by member cp-1"),
        (_set("members.1.peerURL", "nonsense"), r"members\[1\]: .*not a URL"),
        (_set("members.1.id", None), r"id must be of type str"),
        (_set("leader", None), "has quorum but no leader"),
        (_set("leader", 3), "leader must be a member name or null"),
        (_set("leader", "cp-9"), "leader 'cp-9' is not a healthy voting member"),
        (_set("members.0.healthy", False), "leader 'cp-1' is not a healthy voting member"),
    ],
)
def test_from_dict_rejects_broken_state(change: Callable[[dict[str, Any]], None], message: str) -> None:
    data = _state()
    change(data)
    with pytest.raises(EtcdStateError, match=message):
        EtcdCluster.from_dict(data)


def test_from_dict_rejects_duplicate_ids_extra_learners_and_a_leader_without_quorum() -> None:
    data = _state()
    data["members"][2]["id"] = data["members"][1]["id"]
    with pytest.raises(EtcdStateError, match="appears twice"):
        EtcdCluster.from_dict(data)
    data = _state()
    for member in data["members"][1:]:
        member["isLearner"] = True
    with pytest.raises(EtcdStateError, match="2 learners, more than maxLearners=1"):
        EtcdCluster.from_dict(data)
    data = _state()
    data["members"][1]["healthy"] = data["members"][2]["healthy"] = False
    with pytest.raises(EtcdStateError, match="leader 'cp-1' recorded, but the cluster has no quorum"):
        EtcdCluster.from_dict(data)
    with pytest.raises(EtcdStateError, match="expected an object"):
        EtcdCluster.from_dict([])  # type: ignore[arg-type]


# -- model-based state machine ------------------------------------------------------------------------

NAMES = [f"m{i}" for i in range(7)]


class EtcdMembership(RuleBasedStateMachine):
    """Random sequences of every operation against a tiny independent model of the rules.

    The model predicts which operations etcd accepts and who leads; the invariants are raft's:
    never two leaders, a healthy voting leader exactly when there is quorum, no accepted
    membership change that loses quorum, and no refused one that changes anything.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cluster = EtcdCluster("sm")
        # The model: name -> [is_learner, healthy], and the leader.
        self.model: dict[str, list[bool]] = {}
        self.leader: str | None = None

    @initialize(
        voters=st.integers(min_value=1, max_value=5), max_learners=st.integers(min_value=1, max_value=2)
    )
    def bootstrap(self, voters: int, max_learners: int) -> None:
        """Start from a cluster of 1 to 5 voters, so that few steps reach the interesting states."""
        self.cluster = make(*NAMES[:voters], max_learners=max_learners)
        self.model = {name: [False, True] for name in NAMES[:voters]}
        self.leader = NAMES[0]

    # The model's view of the rules, written independently of the implementation.

    def voters(self) -> list[str]:
        return [n for n, (learner, _) in self.model.items() if not learner]

    def healthy_voters(self, model: dict[str, list[bool]] | None = None) -> list[str]:
        model = self.model if model is None else model
        return [n for n, (learner, healthy) in model.items() if not learner and healthy]

    def quorate(self, model: dict[str, list[bool]] | None = None) -> bool:
        model = self.model if model is None else model
        voters = [n for n, (learner, _) in model.items() if not learner]
        return bool(voters) and len(self.healthy_voters(model)) >= len(voters) // 2 + 1

    def settle(self) -> None:
        if not self.quorate():
            self.leader = None
        elif self.leader not in self.healthy_voters():
            self.leader = min(self.healthy_voters())

    def attempt(self, operation: Callable[[], object], expected: bool, membership_change: bool) -> bool:
        before = self.cluster.to_dict()
        had_quorum = self.cluster.has_quorum
        try:
            operation()
        except EtcdError:
            assert not expected, f"refused, but the model accepts it: {self.cluster!r}"
            assert self.cluster.to_dict() == before, "a refused operation changed the cluster"
            return False
        assert expected, f"accepted, but the model refuses it: {before}"
        if membership_change and had_quorum:
            assert self.cluster.has_quorum, "an accepted change lost quorum"
        return True

    def pick(self, data: st.DataObject) -> str:
        """Mostly a member (so that rules reach deep states), sometimes a stranger."""
        return data.draw(st.sampled_from([*sorted(self.model), "stranger"]))

    def add(self, name: str) -> bool:
        expected = (
            self.quorate()
            and name not in self.model
            and sum(learner for learner, _ in self.model.values()) < self.cluster.max_learners
        )
        if self.attempt(lambda: self.cluster.add_member(name, peer(name), client(name)), expected, True):
            self.model[name] = [True, False]
            return True
        return False

    def promote(self, name: str) -> None:
        expected = self.quorate() and self.model.get(name) == [True, True]
        if self.attempt(lambda: self.cluster.promote(name), expected, True):
            self.model[name][0] = False
            self.settle()

    def set_health(self, name: str, healthy: bool) -> None:
        change = self.cluster.mark_healthy if healthy else self.cluster.mark_unhealthy
        if self.attempt(lambda: change(name), name in self.model, False):
            self.model[name][1] = healthy
            self.settle()

    @rule(name=st.sampled_from(NAMES))
    def add_member(self, name: str) -> None:
        self.add(name)

    @rule(name=st.sampled_from(NAMES))
    def join(self, name: str) -> None:
        """What a controller does for a new control plane machine: add, start, promote."""
        if self.add(name):
            self.set_health(name, True)
            self.promote(name)

    @rule(data=st.data())
    def promote_member(self, data: st.DataObject) -> None:
        self.promote(self.pick(data))

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        name = self.pick(data)
        after = {n: state for n, state in self.model.items() if n != name}
        learner = self.model.get(name, [False])[0]
        expected = (
            name in self.model
            and self.quorate()
            and (learner or (self.quorate(after) and name != self.leader))
        )
        if self.attempt(lambda: self.cluster.remove_member(name), expected, True):
            del self.model[name]
            self.settle()

    @rule(data=st.data())
    def move_leader(self, data: st.DataObject) -> None:
        name = self.pick(data)
        expected = self.quorate() and name in self.healthy_voters()
        if self.attempt(lambda: self.cluster.move_leader(name), expected, True):
            self.leader = name

    @rule(data=st.data(), healthy=st.booleans())
    def mark(self, data: st.DataObject, healthy: bool) -> None:
        self.set_health(self.pick(data), healthy)

    @rule()
    def restart(self) -> None:
        """A controller restart: the state comes back from JSON and behaves the same."""
        data = json.loads(json.dumps(self.cluster.to_dict()))
        self.cluster = EtcdCluster.from_dict(data)
        assert self.cluster.to_dict() == data

    @invariant()
    def matches_the_model(self) -> None:
        actual = {m.name: [m.is_learner, m.healthy] for m in self.cluster.members}
        assert actual == self.model
        assert self.cluster.has_quorum == self.quorate()
        leader = self.cluster.leader
        assert (leader.name if leader else None) == self.leader

    @invariant()
    def never_two_leaders(self) -> None:
        assert sum(self.cluster.is_leader(m.name) for m in self.cluster.members) <= 1

    @invariant()
    def a_healthy_voting_leader_exactly_when_there_is_quorum(self) -> None:
        leader = self.cluster.leader
        if self.cluster.has_quorum:
            assert leader is not None
            assert leader.is_voter
            assert leader.healthy
        else:
            assert leader is None

    @invariant()
    def ids_are_unique(self) -> None:
        assert len({m.id for m in self.cluster.members}) == len(self.cluster)


EtcdMembership.TestCase.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)
test_etcd_membership = EtcdMembership.TestCase
