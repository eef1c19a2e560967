"""The etcd membership of ``netns`` clusters, read from and changed on their real etcd members.

:class:`NetnsEtcdAdmin` is the :class:`~anywhere.controllers.etcd.EtcdAdmin` the KubeadmControlPlane
controller uses on ``netns`` (:meth:`~NetnsEtcdAdmin.view`, :meth:`~NetnsEtcdAdmin.move_leader`,
:meth:`~NetnsEtcdAdmin.remove_member`), plus what the netns machine controller needs to grow the
membership safely: :meth:`~NetnsEtcdAdmin.add_learner` then :meth:`~NetnsEtcdAdmin.promote` (etcd
3.5's learners: a new member cannot vote, so cannot cost quorum, until it has caught up),
:meth:`~NetnsEtcdAdmin.member_list` and :meth:`~NetnsEtcdAdmin.status` (per-member health).

It speaks etcd's v3 API through the gRPC-JSON gateway (``/v3/cluster/member/*``,
``/v3/maintenance/*``) with our aiohttp client, like the storage backend.

**Finding a cluster's members.** The admin holds no addresses; the provider passes a resolver,
``endpoints(namespace, cluster) -> {machine name: client URL}`` (a plain function or a coroutine
function), listing the cluster's control plane machines that run (or are about to run) a member,
e.g. ``{"c1-cp-abcde": "http://10.10.0.23:2379"}``. The machine controller knows these from its
machines' DHCP addresses. The list need not be complete or current: one member that answers is
enough to read the membership, and every member is then probed at the client URL etcd itself
advertises. The names serve one more purpose: etcd learns a member's name only when it starts, so
a member that was added but has not started yet is named by matching the host of its peer URL
against the resolver's addresses (failing that, it is named by its peer URL).

**Health.** A member is healthy when its Status answers, from the member listed (not another one
at a recycled address), with no errors (alarms) and a known leader — a member cut off from a quorum
loses its leader within an election timeout. A member that was added but never started is unhealthy.

**Safety.** Every operation reads the membership first and refuses, with
:class:`EtcdOperationRefused`, what would lose quorum or what etcd would refuse anyway (removing the
leader, moving leadership to a learner or an unhealthy member, a second learner). Writes go to the
leader. A write whose answer was lost is not blindly resent: the operation reads the membership
again and finds it done or not (every operation here is idempotent by that check). Everything that
goes wrong ends as :class:`~anywhere.controllers.etcd.EtcdUnavailable` (or a subclass) with a
message naming the cluster, the member and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from anywhere.controllers.etcd import EtcdUnavailable, EtcdView
from anywhere.storage._etcd_gateway import (
    EtcdError,
    Json,
    NoResponse,
    parse_endpoints,
    post,
)
from anywhere.storage.etcd_server import ready_problem

__all__ = [
    "AddedMember",
    "EndpointResolver",
    "EtcdOperationRefused",
    "EtcdStatus",
    "LearnerNotReady",
    "MemberHealth",
    "MemberInfo",
    "MembershipBusy",
    "NetnsEtcdAdmin",
]

log = logging.getLogger("anywhere.providers.netns.etcd")

# Maps a cluster (namespace, name) to its control plane machines' etcd client URLs, by machine name.
EndpointResolver = Callable[[str, str], Mapping[str, str] | Awaitable[Mapping[str, str]]]

# A member on this host or a local bridge answers a read in milliseconds; a second means it is gone.
PROBE_TIMEOUT = 1.0
# etcd gives up on a proposal after 5 s plus two election timeouts; wait a little longer, so that
# its own answer (done, or timed out) arrives rather than our timeout.
WRITE_TIMEOUT = 8.0
# An operation reads the membership and tries again this often when its write met a leader change
# or lost its answer; more means the cluster is not settling, which is worth an error.
ATTEMPTS = 4
RETRY_PAUSE = 0.1
# etcd's health interval is 5 s (see MembershipBusy): waiting a little longer than that by default
# spares the controllers a retry for what is only etcd letting a new connection prove itself.
BUSY_WAIT = 6.0
# How often a caller that chose to wait asks again (a learner catching up, etcd's health interval).
POLL = 0.1
# etcd's answers that mean "not now, ask again": the leader moved, or the proposal did not make it.
_AGAIN = (
    "etcdserver: not leader",
    "etcdserver: leader changed",
    "etcdserver: no leader",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "raft proposal dropped",
)


class EtcdOperationRefused(EtcdUnavailable):
    """The operation would lose quorum, or etcd would refuse it; the message says what to do instead."""


class LearnerNotReady(EtcdUnavailable):
    """The learner has not started or not caught up with the leader yet; promote it later."""


class MembershipBusy(EtcdUnavailable):
    """etcd refuses membership changes for a few seconds more: with its strict reconfiguration check
    it adds a member (or removes a voter) only when every voter (a quorum, for a removal) has been
    connected for its health interval, 5 s. Right after a member joined, try again shortly."""


@dataclass(frozen=True)
class MemberInfo:
    """One member as etcd's member list shows it. ``name`` and ``client_urls`` are empty until the
    member has started (it publishes them itself)."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        return bool(self.client_urls)

    @classmethod
    def from_json(cls, data: Json) -> MemberInfo:
        return cls(
            id=int(data.get("ID") or 0),
            name=str(data.get("name") or ""),
            peer_urls=tuple(str(u) for u in data.get("peerURLs") or ()),
            client_urls=tuple(str(u) for u in data.get("clientURLs") or ()),
            is_learner=bool(data.get("isLearner")),
        )


@dataclass(frozen=True)
class MemberHealth:
    """A member and what its Status said. ``name`` is the name the view uses (etcd's; for a member
    not started yet, its machine's by address, else its peer URL); ``problem`` says why it is not
    healthy ("" when it is); the numbers are etcd's (0 when it did not answer)."""

    member: MemberInfo
    name: str
    healthy: bool
    problem: str = ""
    leader_id: int = 0
    raft_term: int = 0
    raft_index: int = 0
    raft_applied_index: int = 0
    revision: int = 0
    db_size: int = 0
    version: str = ""
    errors: tuple[str, ...] = ()

    @property
    def id(self) -> int:
        return self.member.id

    @property
    def is_learner(self) -> bool:
        return self.member.is_learner

    @property
    def client_url(self) -> str:
        return self.member.client_urls[0] if self.member.client_urls else ""

    @property
    def is_leader(self) -> bool:
        return self.healthy and self.leader_id == self.member.id


@dataclass(frozen=True)
class EtcdStatus:
    """The membership of one cluster's etcd with every member's health, read at one moment."""

    namespace: str
    cluster: str
    cluster_id: int
    members: tuple[MemberHealth, ...]
    leader: MemberHealth | None

    @property
    def where(self) -> str:
        return f"etcd of cluster {self.namespace}/{self.cluster}"

    def member(self, name: str) -> MemberHealth | None:
        return next((m for m in self.members if m.name == name), None)

    def view(self) -> EtcdView:
        """The controller's view: health by name, learners, and the leader when there is quorum."""
        view = EtcdView(
            members={m.name: m.healthy for m in self.members},
            learners=frozenset(m.name for m in self.members if m.is_learner),
        )
        if self.leader is not None and view.has_quorum:
            return EtcdView(members=view.members, learners=view.learners, leader=self.leader.name)
        return view

    def describe_unhealthy(self) -> str:
        sick = [f"{m.name} ({m.problem})" for m in self.members if not m.healthy]
        return ", ".join(sick) if sick else "none"

    def healthy_voter_names(self, but: str = "") -> list[str]:
        return [m.name for m in self.members if m.healthy and not m.is_learner and m.name != but]


@dataclass(frozen=True)
class AddedMember:
    """A member added as a learner: start it with ``EtcdMember.join(initial_cluster)``."""

    id: int
    name: str
    peer_url: str
    initial_cluster: str


class _Again(Exception):
    """Read the membership again and retry the operation (a leader change, a lost answer)."""


class NetnsEtcdAdmin:
    """etcd membership operations on ``netns`` clusters (see the module doc).

    ``endpoints`` resolves a cluster to its machines' client URLs. ``ssl_context`` authenticates to
    https members (their CA, and a client certificate). ``connector`` makes the aiohttp connector,
    for a caller that must reach the machines' addresses through a socket factory of its own (from
    another network namespace). Call :meth:`close` when done.
    """

    def __init__(
        self,
        endpoints: EndpointResolver,
        *,
        ssl_context: ssl.SSLContext | None = None,
        connector: Callable[[], aiohttp.BaseConnector] | None = None,
        probe_timeout: float = PROBE_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        # (namespace, cluster) -> {machine name: client URL}; may raise EtcdUnavailable itself
        self._endpoints = endpoints
        self._ssl = ssl_context
        self._connector = connector
        self.probe_timeout = probe_timeout
        self.write_timeout = write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        # per cluster: the client URL that answered the member list last, asked first next time
        self._preferred: dict[tuple[str, str], str] = {}

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            connector = (
                self._connector()
                if self._connector is not None
                else aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=32)
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"Content-Type": "application/json"}
            )
            self._session_loop = loop
        return self._session

    async def _call(self, url: str, method: str, body: Json, timeout: float) -> Json:
        return await post(self._http(), url, method, orjson.dumps(body), timeout)

    # -- reading -----------------------------------------------------------------------------------

    async def _resolve(self, namespace: str, cluster: str) -> dict[str, str]:
        answer = self._endpoints(namespace, cluster)
        resolved = await answer if inspect.isawaitable(answer) else answer
        if not isinstance(resolved, Mapping):
            raise TypeError(f"the etcd endpoint resolver returned {type(resolved).__name__}, not a mapping")
        urls: dict[str, str] = {}
        for name, url in resolved.items():
            try:
                (urls[str(name)],) = parse_endpoints([str(url)])
            except ValueError as exc:
                raise EtcdUnavailable(
                    f"etcd of cluster {namespace}/{cluster}: machine {name}'s address is unusable: {exc}"
                ) from None
        if not urls:
            raise EtcdUnavailable(
                f"etcd of cluster {namespace}/{cluster}: no control plane machine has an address yet, so "
                "there is no etcd member to ask"
            )
        return urls

    async def _list_from(self, urls: Sequence[str], where: str) -> tuple[list[MemberInfo], int, str]:
        """The member list from the first of ``urls`` that answers it (a learner does not)."""
        failures: dict[str, str] = {}
        for url in urls:
            try:
                answer = await self._call(url, "cluster/member/list", {}, self.probe_timeout)
            except (EtcdError, NoResponse) as exc:
                failures[url] = str(exc)
                continue
            members = [MemberInfo.from_json(m) for m in answer.get("members") or [] if isinstance(m, dict)]
            cluster_id = int((answer.get("header") or {}).get("cluster_id") or 0)
            return members, cluster_id, url
        detail = "; ".join(f"{url}: {why}" for url, why in failures.items())
        raise EtcdUnavailable(
            f"{where}: no member answers the member list ({detail}); the control plane machines may be "
            "down or still starting"
        )

    async def member_list(self, namespace: str, cluster: str) -> tuple[MemberInfo, ...]:
        """etcd's member list, from any member that answers (no quorum needed, no health probes)."""
        resolved = await self._resolve(namespace, cluster)
        members, _, _ = await self._list_from(
            self._ordered(namespace, cluster, resolved.values()), _where(namespace, cluster)
        )
        return tuple(members)

    def _ordered(self, namespace: str, cluster: str, urls: Iterable[str]) -> list[str]:
        ordered = list(dict.fromkeys(urls))
        preferred = self._preferred.get((namespace, cluster))
        if preferred in ordered:
            ordered.remove(preferred)
            ordered.insert(0, preferred)
        return ordered

    async def _probe(self, member: MemberInfo, name: str, cluster_id: int) -> MemberHealth:
        if not member.started:
            return MemberHealth(member, name, False, "added but not started yet")
        url = member.client_urls[0]
        try:
            status = await self._call(url, "maintenance/status", {}, self.probe_timeout)
        except NoResponse as exc:
            return MemberHealth(member, name, False, f"no answer at {url}: {exc}")
        except EtcdError as exc:
            return MemberHealth(member, name, False, f"its status at {url} failed: {exc.message}")
        header = status.get("header") or {}
        numbers: dict[str, Any] = {
            "leader_id": _int(status.get("leader")),
            "raft_term": _int(status.get("raftTerm")),
            "raft_index": _int(status.get("raftIndex")),
            "raft_applied_index": _int(status.get("raftAppliedIndex")),
            "revision": _int(header.get("revision")),
            "db_size": _int(status.get("dbSize")),
            "version": str(status.get("version") or ""),
            "errors": tuple(str(e) for e in status.get("errors") or ()),
        }
        answered_by, answered_cluster = _int(header.get("member_id")), _int(header.get("cluster_id"))
        if answered_by != member.id or (cluster_id and answered_cluster != cluster_id):
            return MemberHealth(
                member, name, False, f"another etcd member ({answered_by:x}) answers at {url}", **numbers
            )
        problem = ready_problem(status)
        return MemberHealth(member, name, not problem, problem, **numbers)

    async def _probe_all(
        self, members: Sequence[MemberInfo], resolved: Mapping[str, str], cluster_id: int
    ) -> list[MemberHealth]:
        names = [_view_name(m, resolved) for m in members]
        return list(
            await asyncio.gather(
                *(self._probe(m, n, cluster_id) for m, n in zip(members, names, strict=True))
            )
        )

    async def status(self, namespace: str, cluster: str) -> EtcdStatus:
        """The membership with every member's health (see the module doc); EtcdUnavailable when
        no member answers. The member list is the leader's when there is one: a member that was
        cut off may hold an older list."""
        where = _where(namespace, cluster)
        resolved = await self._resolve(namespace, cluster)
        members, cluster_id, source = await self._list_from(
            self._ordered(namespace, cluster, resolved.values()), where
        )
        health = await self._probe_all(members, resolved, cluster_id)
        leader = _leader(health)
        if leader is not None and leader.client_url and leader.client_url != source:
            with contextlib.suppress(EtcdUnavailable):
                members, cluster_id, source = await self._list_from([leader.client_url], where)
                known = {h.id: h for h in health}
                fresh = [m for m in members if m.id not in known or known[m.id].member != m]
                probed = {h.id: h for h in await self._probe_all(fresh, resolved, cluster_id)}
                health = [probed.get(m.id) or known[m.id] for m in members]
                leader = _leader(health)
        self._preferred[(namespace, cluster)] = source
        return EtcdStatus(namespace, cluster, cluster_id, tuple(health), leader)

    async def view(self, namespace: str, cluster: str) -> EtcdView:
        return (await self.status(namespace, cluster)).view()

    # -- changing ----------------------------------------------------------------------------------

    async def _write(self, status: EtcdStatus, method: str, body: Json) -> Json:
        """Send a membership write to the leader. EtcdError when etcd refused it; _Again when the
        leader changed or the answer was lost (the caller reads the membership again)."""
        leader = status.leader
        if leader is None or not status.view().has_quorum:
            raise EtcdUnavailable(
                f"{status.where} has no leader now, so its membership cannot change (unhealthy: "
                f"{status.describe_unhealthy()}); it needs a quorum of its members up"
            )
        try:
            return await self._call(leader.client_url, method, body, self.write_timeout)
        except NoResponse as exc:
            log.info("%s: %s at %s: %s; reading the membership again", status.where, method, leader.name, exc)
            raise _Again(f"the leader {leader.name} did not answer: {exc}") from None
        except EtcdError as exc:
            if exc.message.startswith(_AGAIN):
                raise _Again(f"{leader.name}: {exc.message}") from None
            if "unhealthy cluster" in exc.message:
                raise MembershipBusy(
                    f"{status.where}: etcd accepts no membership change yet ({exc.message}): it waits until "
                    "its voting members have been connected for 5 s; try again in a few seconds"
                ) from None
            raise

    @staticmethod
    async def _waiting(
        busy: type[EtcdUnavailable], timeout: float, operation: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run ``operation`` until it does not raise ``busy``, for at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                return await operation()
            except busy:
                if loop.time() + POLL > deadline:
                    raise
            await asyncio.sleep(POLL)

    async def _attempts(
        self, namespace: str, cluster: str, what: str, step: Callable[[EtcdStatus], Awaitable[Any]]
    ) -> Any:
        """Run ``step`` on a fresh status until it returns; retries a few times on _Again."""
        problems: list[str] = []
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE * attempt)
            status = await self.status(namespace, cluster)
            try:
                return await step(status)
            except _Again as exc:
                problems.append(str(exc))
        raise EtcdUnavailable(
            f"{_where(namespace, cluster)}: could not {what} after {ATTEMPTS} attempts "
            f"({'; '.join(problems)}); the membership is changing, try again"
        )

    async def add_learner(
        self, namespace: str, cluster: str, name: str, peer_url: str, *, timeout: float = BUSY_WAIT
    ) -> AddedMember:
        """Add the member of machine ``name`` (peer URL ``peer_url``) as a learner.

        Idempotent: when a member with that peer URL exists already (an earlier add whose answer
        was lost), it is answered as added. Refused (:class:`EtcdOperationRefused`): a peer URL or
        name taken by another member, a second learner (etcd 3.5 allows one at a time).
        :class:`MembershipBusy` when etcd still wants its members connected longer after trying for
        ``timeout`` seconds (0: at once). EtcdUnavailable without quorum.
        """
        (peer,) = _peer_urls(peer_url)

        async def step(status: EtcdStatus) -> AddedMember:
            where = status.where
            same_peer = next((m for m in status.members if peer in m.member.peer_urls), None)
            if same_peer is not None:
                if same_peer.member.name and same_peer.member.name != name:
                    raise EtcdOperationRefused(
                        f"{where}: cannot add member {name}: its peer URL {peer} belongs to member "
                        f"{same_peer.member.name}; remove that member first"
                    )
                return _added(status, same_peer.member, name, peer)
            same_name = next((m for m in status.members if m.member.name == name), None)
            if same_name is not None:
                raise EtcdOperationRefused(
                    f"{where}: cannot add member {name} at {peer}: a member of that name exists at "
                    f"{', '.join(same_name.member.peer_urls)}; remove it first"
                )
            learners = [m.name for m in status.members if m.is_learner]
            if learners:
                raise EtcdOperationRefused(
                    f"{where}: cannot add member {name}: learner {', '.join(learners)} is not promoted yet "
                    "and etcd allows one learner at a time; promote or remove it first"
                )
            try:
                answer = await self._write(
                    status, "cluster/member/add", {"peerURLs": [peer], "isLearner": True}
                )
            except EtcdError as exc:
                raise self._refused(where, f"add member {name} at {peer}", exc) from None
            added = MemberInfo.from_json(answer.get("member") or {})
            members = [MemberInfo.from_json(m) for m in answer.get("members") or [] if isinstance(m, dict)]
            log.info("%s: added %s (%x) as a learner at %s", where, name, added.id, peer)
            return _added_from(members, added, name, peer, status)

        result: AddedMember = await self._waiting(
            MembershipBusy, timeout, lambda: self._attempts(namespace, cluster, f"add member {name}", step)
        )
        return result

    async def promote(self, namespace: str, cluster: str, name: str, *, timeout: float = 0.0) -> None:
        """Make learner ``name`` a voting member. A voter already is fine. When the learner has not
        started or caught up, raises :class:`LearnerNotReady` — at once, or after trying for
        ``timeout`` seconds (for callers that would rather wait than requeue)."""

        async def step(status: EtcdStatus) -> None:
            member = status.member(name)
            if member is None:
                raise EtcdOperationRefused(
                    f"{status.where}: cannot promote {name}: no such member (members: "
                    f"{', '.join(m.name for m in status.members)}); add it first"
                )
            if not member.is_learner:
                return
            if not member.healthy:
                raise LearnerNotReady(f"{status.where}: cannot promote {name} yet: {member.problem}")
            try:
                await self._write(status, "cluster/member/promote", {"ID": str(member.id)})
            except EtcdError as exc:
                if "in sync with leader" in exc.message:
                    raise LearnerNotReady(
                        f"{status.where}: cannot promote {name} yet: it has not caught up with the leader"
                    ) from None
                if "can only promote a learner member" in exc.message:
                    return  # promoted meanwhile
                if "member not found" in exc.message:
                    raise EtcdOperationRefused(
                        f"{status.where}: cannot promote {name}: it was removed meanwhile"
                    ) from None
                raise self._refused(status.where, f"promote {name}", exc) from None
            log.info("%s: promoted %s to a voting member", status.where, name)

        await self._waiting(
            LearnerNotReady, timeout, lambda: self._attempts(namespace, cluster, f"promote {name}", step)
        )

    async def move_leader(self, namespace: str, cluster: str, to: str) -> None:
        """Make member ``to`` the leader (a no-op when it leads). Refused when it is a learner, not
        healthy, or no member; etcd answers once the new leader has taken over."""

        async def step(status: EtcdStatus) -> None:
            where = status.where
            target = status.member(to)
            if target is None:
                raise EtcdOperationRefused(
                    f"{where}: cannot move leadership to {to}: no such member (members: "
                    f"{', '.join(m.name for m in status.members)})"
                )
            if status.leader is not None and status.leader.id == target.id:
                return
            candidates = ", ".join(status.healthy_voter_names(but=to)) or "none"
            if target.is_learner:
                raise EtcdOperationRefused(
                    f"{where}: cannot move leadership to {to}: it is a learner, which cannot lead; promote "
                    f"it first (healthy voters: {candidates})"
                )
            if not target.healthy:
                raise EtcdOperationRefused(
                    f"{where}: cannot move leadership to {to}: it is not healthy ({target.problem}); "
                    f"choose a healthy voter: {candidates}"
                )
            try:
                await self._write(status, "maintenance/transfer-leadership", {"targetID": str(target.id)})
            except EtcdError as exc:
                raise self._refused(where, f"move leadership to {to}", exc) from None
            log.info("%s: moved leadership to %s", where, to)

        await self._attempts(namespace, cluster, f"move leadership to {to}", step)

    async def remove_member(
        self, namespace: str, cluster: str, name: str, *, timeout: float = BUSY_WAIT
    ) -> None:
        """Remove member ``name`` (gone already is fine). Refused when the voters left would not
        have a quorum of healthy members, and when it is the leader (move leadership first: etcd
        would accept it, but the cluster would be leaderless until an election).
        :class:`MembershipBusy` as for :meth:`add_learner`."""

        async def step(status: EtcdStatus) -> None:
            where = status.where
            member = status.member(name)
            if member is None:
                return
            view = status.view()
            if not member.is_learner:
                if not view.keeps_quorum_without(name):
                    raise EtcdOperationRefused(
                        f"{where}: refusing to remove member {name}: the {len(view.voters) - 1} voting "
                        f"member(s) left would not have a healthy quorum (unhealthy: "
                        f"{status.describe_unhealthy()}); bring the unhealthy members back or remove them first"
                    )
                if status.leader is not None and status.leader.id == member.id:
                    raise EtcdOperationRefused(
                        f"{where}: refusing to remove member {name}: it is the leader; move leadership to "
                        f"another healthy voter first ({', '.join(status.healthy_voter_names(but=name))})"
                    )
            try:
                await self._write(status, "cluster/member/remove", {"ID": str(member.id)})
            except EtcdError as exc:
                if "member not found" in exc.message:
                    return
                raise self._refused(where, f"remove member {name}", exc) from None
            log.info("%s: removed member %s", where, name)

        await self._waiting(
            MembershipBusy, timeout, lambda: self._attempts(namespace, cluster, f"remove member {name}", step)
        )

    @staticmethod
    def _refused(where: str, what: str, exc: EtcdError) -> EtcdUnavailable:
        if "not enough started members" in exc.message:
            return EtcdOperationRefused(
                f"{where}: etcd refused to {what}: too few members are up to keep quorum ({exc.message})"
            )
        if "too many learner members" in exc.message:
            return EtcdOperationRefused(
                f"{where}: etcd refused to {what}: it allows one learner at a time; promote or remove the "
                "current learner first"
            )
        return EtcdOperationRefused(f"{where}: etcd refused to {what}: {exc.message}")


def _where(namespace: str, cluster: str) -> str:
    return f"etcd of cluster {namespace}/{cluster}"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _peer_urls(peer_url: str) -> list[str]:
    try:
        return parse_endpoints([peer_url])
    except ValueError as exc:
        raise EtcdOperationRefused(f"bad etcd peer URL: {exc}") from None


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _view_name(member: MemberInfo, resolved: Mapping[str, str]) -> str:
    """etcd's name; for a member not started yet, the machine whose address its peer URL has."""
    if member.name:
        return member.name
    hosts = {_host(u) for u in member.peer_urls}
    owners = [name for name, url in resolved.items() if _host(url) in hosts]
    if len(owners) == 1:
        return owners[0]
    return member.peer_urls[0] if member.peer_urls else f"member-{member.id:x}"


def _leader(health: Sequence[MemberHealth]) -> MemberHealth | None:
    """The healthy member that says it leads (the newest term's, if a cut-off one still thinks so)."""
    leaders = [h for h in health if h.is_leader]
    return max(leaders, key=lambda h: h.raft_term) if leaders else None


def _added(status: EtcdStatus, member: MemberInfo, name: str, peer: str) -> AddedMember:
    return _added_from([h.member for h in status.members], member, name, peer, status)


def _added_from(
    members: Sequence[MemberInfo], added: MemberInfo, name: str, peer: str, status: EtcdStatus
) -> AddedMember:
    """The ``--initial-cluster`` for the new member: every member's peer URLs, by name (a member not
    started yet by its view name, as ``etcdctl member add`` does it with the name it knows)."""
    names = {h.id: h.name for h in status.members}
    entries: list[str] = []
    for member in members:
        label = name if member.id == added.id else (member.name or names.get(member.id, ""))
        for url in member.peer_urls:
            entries.append(f"{label}={url}")
    if f"{name}={peer}" not in entries:
        entries.append(f"{name}={peer}")
    return AddedMember(id=added.id, name=name, peer_url=peer, initial_cluster=",".join(entries))
