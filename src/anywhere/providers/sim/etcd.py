"""The membership of a simulated etcd cluster, with raft's quorum rules enforced.

Why this exists: the ``sim`` provider runs no etcd, yet the controllers that scale and roll
control planes must meet the same refusals a real etcd would give them. On real hardware,
removing the wrong member first during a rolling upgrade loses quorum and with it the cluster;
keeping the membership as real data per cluster lets the simulation refuse exactly that, so such
a bug shows up in a test instead.

The rules, as etcd applies them (with ``--strict-reconfig-check``, its default):

* Only voting members count. A cluster of ``n`` voters needs ``n // 2 + 1`` of them healthy
  (its *quorum*) to commit anything, membership changes included; without quorum there is no
  leader (raft's check-quorum makes a leader that cannot reach a quorum step down).
* New members join as *learners*: non-voting, so adding one can never cost quorum, even when
  the new machine never comes up. A learner is promoted to a voter once it has started and
  caught up with the leader (here: once it is healthy). etcd allows one learner at a time by
  default (``--experimental-max-learners=1``).
* A removal must leave a quorum among the members still healthy: removing a healthy voter while
  another is down can be the step that loses the cluster.
* The leader is not removed: leadership is moved to another healthy voter first (``etcdctl
  move-leader``), as Cluster API's KubeadmControlPlane does before it deletes the leader's
  machine. etcd itself would accept the removal and then go leaderless until an election; the
  simulation insists on the careful order because that is what our controllers must do.
* When the leader fails, a new one is elected among the healthy voters if they have quorum. Real
  raft elects whichever candidate wins the race; the simulation picks the healthy voter with the
  lowest name so that runs are reproducible.

All state is plain data and round-trips through :meth:`EtcdCluster.to_dict` /
:meth:`EtcdCluster.from_dict`: controllers keep it in API objects and reload it after a restart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from anywhere.controllers.etcd import EtcdView

__all__ = [
    "DEFAULT_MAX_LEARNERS",
    "EtcdCluster",
    "EtcdError",
    "EtcdStateError",
    "HealthCheck",
    "HealthReport",
    "InvalidMemberError",
    "LeaderRemovalError",
    "LeaderTransferError",
    "LearnerError",
    "Member",
    "MemberExistsError",
    "MemberNotFoundError",
    "NoQuorumError",
    "QuorumRiskError",
    "etcd_view",
]

DEFAULT_MAX_LEARNERS = 1


class EtcdError(Exception):
    """A membership operation etcd would refuse; the message says what is wrong and what to do."""


class MemberNotFoundError(EtcdError, LookupError):
    """No member of that name."""


class InvalidMemberError(EtcdError, ValueError):
    """A new member's name or URLs are malformed."""


class MemberExistsError(EtcdError):
    """The name, peer URL or client URL of a new member is already taken."""


class NoQuorumError(EtcdError):
    """The cluster has no quorum (or no members), so no membership change can be committed."""


class QuorumRiskError(EtcdError):
    """The operation would leave the cluster without quorum."""


class LeaderRemovalError(EtcdError):
    """The member to remove is the leader; leadership must be moved first."""


class LearnerError(EtcdError):
    """A learner rule: too many learners, or promoting a member that is not a ready learner."""


class LeaderTransferError(EtcdError):
    """Leadership cannot go to that member (a learner, or unhealthy)."""


class EtcdStateError(EtcdError, ValueError):
    """Stored state that is malformed or breaks an invariant (and was therefore not loaded)."""


@dataclass(frozen=True)
class Member:
    """One etcd member, as ``etcdctl member list`` shows it, plus whether it is healthy.

    ``id`` is a 16-hex-digit member ID like etcd's (a string, because 64-bit numbers do not
    survive JSON readers that use doubles). ``healthy`` means started, reachable and in sync.
    """

    id: str
    name: str
    peer_url: str
    client_url: str
    is_learner: bool = False
    healthy: bool = True

    @property
    def is_voter(self) -> bool:
        return not self.is_learner

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "peerURL": self.peer_url,
            "clientURL": self.client_url,
            "isLearner": self.is_learner,
            "healthy": self.healthy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "member") -> Member:
        if not isinstance(data, Mapping):
            raise EtcdStateError(f"{where}: expected an object, got {type(data).__name__}")
        return cls(
            id=_get(data, "id", str, where),
            name=_get(data, "name", str, where),
            peer_url=_get(data, "peerURL", str, where),
            client_url=_get(data, "clientURL", str, where),
            is_learner=_get(data, "isLearner", bool, where),
            healthy=_get(data, "healthy", bool, where),
        )


@dataclass(frozen=True)
class HealthCheck:
    """One line of a preflight: what was checked, whether it passed, and the details."""

    name: str
    ok: bool
    message: str

    def __str__(self) -> str:
        return f"[{'ok' if self.ok else 'FAIL'}] {self.message}"


@dataclass(frozen=True)
class HealthReport:
    """What a preflight prints before touching the control plane, and whether it may go on."""

    cluster: str
    checks: tuple[HealthCheck, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[HealthCheck, ...]:
        return tuple(check for check in self.checks if not check.ok)

    def __str__(self) -> str:
        return "\n".join([f"etcd cluster {self.cluster}:", *(f"  {check}" for check in self.checks)])


class EtcdCluster:
    """The members of one etcd cluster, their health and its leader.

    Start with :meth:`bootstrap` (the first member, as ``kubeadm init`` creates it), then grow
    with :meth:`add_member` + :meth:`mark_healthy` (the member's machine came up) +
    :meth:`promote`, and shrink with :meth:`move_leader` (if needed) + :meth:`remove_member`.
    Faults are injected with :meth:`mark_unhealthy`. Refused operations raise an
    :class:`EtcdError` and change nothing.
    """

    def __init__(self, name: str, *, max_learners: int = DEFAULT_MAX_LEARNERS) -> None:
        if not name:
            raise ValueError("an etcd cluster needs a name (the workload cluster's name will do)")
        if max_learners < 1:
            raise ValueError(f"max_learners must be at least 1 to add members at all, got {max_learners}")
        self.name = name
        self.max_learners = max_learners
        # Raft term: goes up with every new leader, so observers can tell elections apart.
        self.term = 0
        # Members ever added; feeds the member IDs so a re-added name gets a new ID, as in etcd.
        self._serial = 0
        self._members: dict[str, Member] = {}
        self._leader: str | None = None

    # -- views ---------------------------------------------------------------------------

    @property
    def members(self) -> tuple[Member, ...]:
        """Every member, in the order they joined."""
        return tuple(self._members.values())

    @property
    def voters(self) -> tuple[Member, ...]:
        return tuple(m for m in self._members.values() if m.is_voter)

    @property
    def learners(self) -> tuple[Member, ...]:
        return tuple(m for m in self._members.values() if m.is_learner)

    @property
    def healthy_voters(self) -> tuple[Member, ...]:
        return tuple(m for m in self._members.values() if m.is_voter and m.healthy)

    @property
    def quorum_size(self) -> int:
        """How many healthy voters the cluster needs: a majority of its voters."""
        return len(self.voters) // 2 + 1

    @property
    def has_quorum(self) -> bool:
        return bool(self.voters) and len(self.healthy_voters) >= self.quorum_size

    @property
    def fault_tolerance(self) -> int:
        """How many more voters may fail before quorum is lost (0 without quorum)."""
        return len(self.healthy_voters) - self.quorum_size if self.has_quorum else 0

    @property
    def leader(self) -> Member | None:
        return self._members[self._leader] if self._leader is not None else None

    def is_leader(self, name: str) -> bool:
        return self._leader == name

    def member(self, name: str) -> Member:
        """The member called ``name``; :class:`MemberNotFoundError` names the existing ones."""
        try:
            return self._members[name]
        except KeyError:
            known = ", ".join(self._members) or "none"
            raise MemberNotFoundError(
                f"etcd cluster {self.name} has no member named {name!r} (members: {known})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return (
            f"EtcdCluster({self.name!r}, voters={[m.name for m in self.voters]}, "
            f"learners={[m.name for m in self.learners]}, leader={self._leader!r})"
        )

    # -- membership ----------------------------------------------------------------------

    def bootstrap(self, name: str, peer_url: str, client_url: str) -> Member:
        """Create the cluster with its first member: a healthy voter, and therefore its leader."""
        if self._members:
            raise MemberExistsError(
                f"etcd cluster {self.name} is already bootstrapped (members: {', '.join(self._members)}); "
                "add further members with add_member"
            )
        member = self._new_member(name, peer_url, client_url, is_learner=False, healthy=True)
        self._members[name] = member
        self._settle()
        return member

    def add_member(self, name: str, peer_url: str, client_url: str) -> Member:
        """Add a member as a learner (not yet started, so not healthy).

        Refused without quorum (the change could not be committed), when the name or a URL is
        taken, and when the cluster already has as many learners as it allows.
        """
        self._require_quorum(f"add member {name}")
        if len(self.learners) >= self.max_learners:
            pending = ", ".join(m.name for m in self.learners)
            raise LearnerError(
                f"cannot add member {name}: etcd cluster {self.name} already has {len(self.learners)} "
                f"learner(s) ({pending}), the most it allows; promote or remove them first"
            )
        member = self._new_member(name, peer_url, client_url, is_learner=True, healthy=False)
        self._members[name] = member
        self._settle()
        return member

    def promote(self, name: str) -> Member:
        """Make a healthy (started, in-sync) learner a voting member."""
        member = self.member(name)
        if member.is_voter:
            raise LearnerError(f"cannot promote {name}: it is already a voting member")
        self._require_quorum(f"promote {name}")
        if not member.healthy:
            raise LearnerError(
                f"cannot promote {name}: the learner has not started or is not in sync with the leader; "
                "wait until it is healthy"
            )
        # A healthy new voter raises the quorum by at most one and adds one healthy voter, so a
        # cluster with quorum keeps it; no further check is needed.
        promoted = replace(member, is_learner=False)
        self._members[name] = promoted
        self._settle()
        return promoted

    def remove_member(self, name: str) -> Member:
        """Remove a member; see :meth:`check_remove` for when that is refused."""
        self.check_remove(name)
        member = self._members.pop(name)
        self._settle()
        return member

    def check_remove(self, name: str) -> None:
        """Raise what :meth:`remove_member` would raise for ``name``, changing nothing."""
        problem = self._removal_problem(name)
        if problem is not None:
            raise problem
        if self._leader == name:
            others = [m.name for m in self.healthy_voters if m.name != name]
            hint = f", e.g. move_leader({others[0]!r})" if others else ""
            raise LeaderRemovalError(
                f"cannot remove {name}: it is the leader of etcd cluster {self.name}; move leadership "
                f"to another healthy voting member first{hint}"
            )

    def move_leader(self, to: str) -> Member:
        """Hand leadership to ``to``, a healthy voter (``etcdctl move-leader``). Idempotent."""
        target = self.member(to)
        self._require_quorum(f"move leadership to {to}")
        if target.is_learner:
            raise LeaderTransferError(
                f"cannot move leadership to {to}: it is a learner, which cannot lead; promote it first"
            )
        if not target.healthy:
            candidates = ", ".join(m.name for m in self.healthy_voters)
            raise LeaderTransferError(
                f"cannot move leadership to {to}: it is unhealthy; pick a healthy voting member ({candidates})"
            )
        if self._leader != to:
            self._leader = to
            self.term += 1
        return target

    # -- health (fault injection) ----------------------------------------------------------

    def mark_unhealthy(self, name: str) -> Member:
        """The member stopped or lost contact. A failed leader is replaced if a quorum remains."""
        return self._set_health(name, healthy=False)

    def mark_healthy(self, name: str) -> Member:
        """The member is up and in sync again (or, for a new learner, has started)."""
        return self._set_health(name, healthy=True)

    def health_report(self, removing: Iterable[str] = ()) -> HealthReport:
        """A preflight: all members healthy? quorum? a leader? and, for each name in
        ``removing``, whether removing that member keeps quorum."""
        checks: list[HealthCheck] = []
        unhealthy = [m for m in self._members.values() if not m.healthy]
        if not self._members:
            checks.append(HealthCheck("members", False, "no members; bootstrap the cluster first"))
        elif unhealthy:
            listed = ", ".join(m.name + (" (learner)" if m.is_learner else "") for m in unhealthy)
            checks.append(
                HealthCheck(
                    "members", False, f"{len(unhealthy)} of {len(self._members)} members unhealthy: {listed}"
                )
            )
        else:
            checks.append(HealthCheck("members", True, f"all {len(self._members)} members healthy"))
        counts = f"{len(self.healthy_voters)} of {len(self.voters)} voting members healthy, {self.quorum_size} needed"
        if self.has_quorum:
            checks.append(
                HealthCheck(
                    "quorum", True, f"quorum: {counts}; tolerates {self.fault_tolerance} more failure(s)"
                )
            )
        else:
            checks.append(HealthCheck("quorum", False, f"no quorum: {counts}"))
        leader = self.leader
        checks.append(
            HealthCheck("leader", True, f"leader is {leader.name} (term {self.term})")
            if leader is not None
            else HealthCheck("leader", False, "no leader")
        )
        for name in removing:
            problem = self._removal_problem(name)
            if problem is not None:
                checks.append(HealthCheck(f"remove {name}", False, str(problem)))
                continue
            member = self._members[name]
            if member.is_learner:
                message = f"removing {name} keeps quorum (it is a learner and does not vote)"
            else:
                after = len(self.healthy_voters) - (1 if member.healthy else 0)
                voters = len(self.voters) - 1
                message = (
                    f"removing {name} keeps quorum ({after} of {voters} voting members healthy after, "
                    f"{voters // 2 + 1} needed)"
                )
            if self._leader == name:
                message += "; it is the leader, so move leadership first"
            checks.append(HealthCheck(f"remove {name}", True, message))
        return HealthReport(self.name, tuple(checks))

    # -- serialization ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (camelCase, as in API objects)."""
        return {
            "cluster": self.name,
            "maxLearners": self.max_learners,
            "term": self.term,
            "serial": self._serial,
            "leader": self._leader,
            "members": [m.to_dict() for m in self._members.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EtcdCluster:
        """Reload :meth:`to_dict` output, checking every invariant (:class:`EtcdStateError` if
        broken) so that a corrupted record is reported rather than acted upon."""
        where = "etcd state"
        if not isinstance(data, Mapping):
            raise EtcdStateError(f"{where}: expected an object, got {type(data).__name__}")
        name = _get(data, "cluster", str, where)
        max_learners = _get(data, "maxLearners", int, where)
        try:
            cluster = cls(name, max_learners=max_learners)
        except ValueError as exc:
            raise EtcdStateError(f"{where}: {exc}") from None
        cluster.term = _get(data, "term", int, where)
        cluster._serial = _get(data, "serial", int, where)
        if cluster.term < 0 or cluster._serial < 0:
            raise EtcdStateError(f"{where}: term and serial cannot be negative")
        members = _get(data, "members", list, where)
        ids: set[str] = set()
        for i, raw in enumerate(members):
            member = Member.from_dict(raw, f"{where}: members[{i}]")
            try:
                cluster._check_new(member.name, member.peer_url, member.client_url)
            except EtcdError as exc:
                raise EtcdStateError(f"{where}: members[{i}]: {exc}") from None
            if member.id in ids:
                raise EtcdStateError(f"{where}: members[{i}]: member ID {member.id} appears twice")
            ids.add(member.id)
            cluster._members[member.name] = member
        if len(cluster.learners) > cluster.max_learners:
            raise EtcdStateError(
                f"{where}: {len(cluster.learners)} learners, more than maxLearners={cluster.max_learners}"
            )
        leader = data.get("leader")
        if leader is not None and not isinstance(leader, str):
            raise EtcdStateError(f"{where}: leader must be a member name or null")
        if cluster.has_quorum:
            if leader is None:
                raise EtcdStateError(f"{where}: the cluster has quorum but no leader")
            chosen = cluster._members.get(leader)
            if chosen is None or chosen.is_learner or not chosen.healthy:
                raise EtcdStateError(f"{where}: leader {leader!r} is not a healthy voting member")
        elif leader is not None:
            raise EtcdStateError(f"{where}: leader {leader!r} recorded, but the cluster has no quorum")
        cluster._leader = leader
        return cluster

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EtcdCluster) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- internals --------------------------------------------------------------------------

    def _new_member(
        self, name: str, peer_url: str, client_url: str, *, is_learner: bool, healthy: bool
    ) -> Member:
        self._check_new(name, peer_url, client_url)
        self._serial += 1
        digest = hashlib.sha256(f"{self.name}\0{self._serial}\0{name}\0{peer_url}".encode()).hexdigest()
        return Member(digest[:16], name, peer_url, client_url, is_learner=is_learner, healthy=healthy)

    def _check_new(self, name: str, peer_url: str, client_url: str) -> None:
        if not name:
            raise InvalidMemberError("a member needs a name (its machine's name will do)")
        for label, url in (("peer", peer_url), ("client", client_url)):
            _check_url(name, label, url)
        existing = self._members.get(name)
        if existing is not None:
            raise MemberExistsError(
                f"cannot add member {name}: etcd cluster {self.name} already has a member of that name "
                f"(ID {existing.id}); remove it first or pick another name"
            )
        for other in self._members.values():
            for label, url in (("peer", peer_url), ("client", client_url)):
                if url in (other.peer_url, other.client_url):
                    raise MemberExistsError(
                        f"cannot add member {name}: {label} URL {url} is already used by member {other.name}; "
                        "every member needs its own URLs"
                    )

    def _require_quorum(self, action: str) -> None:
        if not self._members:
            raise NoQuorumError(
                f"cannot {action}: etcd cluster {self.name} has no members yet; bootstrap it with its first member"
            )
        if not self.has_quorum:
            down = ", ".join(m.name for m in self.voters if not m.healthy)
            raise NoQuorumError(
                f"cannot {action}: etcd cluster {self.name} has no quorum ({len(self.healthy_voters)} of "
                f"{len(self.voters)} voting members healthy, {self.quorum_size} needed), so no change can be "
                f"committed; bring the unhealthy members ({down}) back, or restore the cluster from a snapshot"
            )

    def _removal_problem(self, name: str) -> EtcdError | None:
        """Why removing ``name`` is refused, leaving aside leadership (which can be moved)."""
        try:
            member = self.member(name)
            self._require_quorum(f"remove {name}")
        except EtcdError as exc:
            return exc
        if member.is_learner:
            return None  # learners do not vote: removing one never changes quorum
        voters = len(self.voters) - 1
        if voters == 0:
            return QuorumRiskError(
                f"cannot remove {name}: it is the last voting member of etcd cluster {self.name}; "
                "delete the whole cluster instead"
            )
        healthy_after = len(self.healthy_voters) - (1 if member.healthy else 0)
        needed = voters // 2 + 1
        if healthy_after < needed:
            down = ", ".join(m.name for m in self.voters if not m.healthy)
            return QuorumRiskError(
                f"cannot remove {name}: it would leave {healthy_after} of {voters} voting members healthy, "
                f"{needed} needed for quorum; repair or remove the unhealthy members ({down}) first"
            )
        return None

    def _set_health(self, name: str, *, healthy: bool) -> Member:
        member = self.member(name)
        if member.healthy != healthy:
            member = replace(member, healthy=healthy)
            self._members[name] = member
            self._settle()
        return member

    def _settle(self) -> None:
        """Restore the leader invariant: a healthy voting leader exactly when there is quorum."""
        if not self.has_quorum:
            self._leader = None
            return
        current = self._members.get(self._leader) if self._leader is not None else None
        if current is None or current.is_learner or not current.healthy:
            self._leader = min(m.name for m in self.healthy_voters)
            self.term += 1


def _check_url(member: str, label: str, url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        raise InvalidMemberError(
            f"member {member}: {label} URL {url!r} is not a URL of the form https://HOST:PORT "
            f"(e.g. https://10.0.0.5:{2380 if label == 'peer' else 2379})"
        )


def _get(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise EtcdStateError(f"{where}: {key} is missing")
    value = data[key]
    # bool is an int in Python; a stored true must not pass for a count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EtcdStateError(f"{where}: {key} must be of type {kind.__name__}, got {value!r}")
    return value


def etcd_view(cluster: EtcdCluster) -> EtcdView:
    """The membership as the control plane controller reads it."""
    leader = cluster.leader
    return EtcdView(
        members={m.name: m.healthy for m in cluster.members},
        learners=frozenset(m.name for m in cluster.learners),
        leader=leader.name if leader is not None else None,
    )
