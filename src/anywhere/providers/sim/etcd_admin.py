"""The etcd membership of ``sim`` clusters, kept as data in each cluster's own API.

A simulated cluster runs no etcd, but its membership is real data with raft's rules
(:class:`~anywhere.providers.sim.etcd.EtcdCluster`): ConfigMap ``kube-system/etcd-members``
(key ``members.json``) in the workload cluster's API. Control plane machines join it when they
boot; the control plane controller reads it and removes members through :class:`SimEtcdAdmin`.
Every change is a read-modify-write guarded by the ConfigMap's resourceVersion, retried on
conflict, so concurrent writers (a booting machine, a rollout) never lose each other's changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from anywhere.controllers.context import Context
from anywhere.controllers.etcd import EtcdUnavailable, EtcdView
from anywhere.controllers.remote import ClusterNotReachable
from anywhere.providers.sim.etcd import EtcdCluster, EtcdStateError, MemberNotFoundError, etcd_view
from anywhere.runtime import (
    CONFIGMAPS,
    AlreadyExistsError,
    Client,
    ConflictError,
    NotFoundError,
    TransportError,
)

__all__ = [
    "MEMBERS_CONFIGMAP",
    "MEMBERS_KEY",
    "MEMBERS_NAMESPACE",
    "SimEtcdAdmin",
    "change_members",
    "read_members",
]

Obj = dict[str, Any]
MEMBERS_NAMESPACE = "kube-system"
MEMBERS_CONFIGMAP = "etcd-members"
MEMBERS_KEY = "members.json"
# Writers of one membership are few (a booting machine, the control plane controller): a handful
# of retries always suffices; more would mean something keeps rewriting it, which is worth an error.
MAX_CONFLICT_RETRIES = 20

# Receives the membership (None: none yet) and returns the new one, or None to write nothing.
Change = Callable[[EtcdCluster | None], EtcdCluster | None]


def _decode(configmap: Obj, where: str) -> EtcdCluster:
    raw = (configmap.get("data") or {}).get(MEMBERS_KEY)
    if raw is None:
        raise EtcdStateError(f"{where} has no {MEMBERS_KEY}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise EtcdStateError(f"{where}: {MEMBERS_KEY} is not JSON: {exc}") from None
    return EtcdCluster.from_dict(data)


def _where(cluster: str) -> str:
    return f"ConfigMap {MEMBERS_NAMESPACE}/{MEMBERS_CONFIGMAP} of cluster {cluster}"


async def read_members(client: Client, cluster: str) -> tuple[EtcdCluster | None, Obj | None]:
    """The membership and the ConfigMap it came from (both None when there is no etcd yet)."""
    try:
        configmap = await client.get(CONFIGMAPS, MEMBERS_CONFIGMAP, MEMBERS_NAMESPACE)
    except NotFoundError:
        return None, None
    return _decode(configmap, _where(cluster)), configmap


async def change_members(client: Client, cluster: str, change: Change) -> EtcdCluster | None:
    """Apply ``change`` to the membership as one compare-and-swap, retried on conflict.

    ``change`` may raise (an :class:`~anywhere.providers.sim.etcd.EtcdError` refusing an unsafe
    operation): nothing is written and the error propagates. Returns the membership as stored.
    """
    for _ in range(MAX_CONFLICT_RETRIES):
        members, configmap = await read_members(client, cluster)
        before = members.to_dict() if members is not None else None
        # ``change`` gets its own copy: a refused operation changes nothing, but a partly applied
        # sequence of them must not leak into the next attempt.
        changed = change(EtcdCluster.from_dict(before) if before is not None else None)
        if changed is None or changed.to_dict() == before:
            return members
        data = {MEMBERS_KEY: json.dumps(changed.to_dict(), sort_keys=True)}
        try:
            if configmap is None:
                await client.create(
                    CONFIGMAPS,
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": MEMBERS_CONFIGMAP, "namespace": MEMBERS_NAMESPACE},
                        "data": data,
                    },
                )
            else:
                await client.update(CONFIGMAPS, {**configmap, "data": data})
        except (ConflictError, AlreadyExistsError):
            continue
        return changed
    raise EtcdUnavailable(
        f"the etcd membership of cluster {cluster} changed under every one of {MAX_CONFLICT_RETRIES} attempts "
        "to update it; try again"
    )


class SimEtcdAdmin:
    """:class:`~anywhere.controllers.etcd.EtcdAdmin` for ``sim`` clusters (see the module doc)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def _client(self, namespace: str, cluster: str) -> Client:
        try:
            return await self.context.clusters.client(namespace, cluster)
        except ClusterNotReachable as exc:
            raise EtcdUnavailable(f"etcd of cluster {namespace}/{cluster} is not reachable: {exc}") from None

    async def view(self, namespace: str, cluster: str) -> EtcdView:
        client = await self._client(namespace, cluster)
        try:
            members, _ = await read_members(client, cluster)
        except TransportError as exc:
            raise EtcdUnavailable(
                f"the API of cluster {namespace}/{cluster} is not reachable: {exc}"
            ) from None
        except EtcdStateError as exc:
            raise EtcdUnavailable(
                f"the etcd membership of cluster {namespace}/{cluster} is unreadable: {exc}"
            ) from None
        if members is None:
            raise EtcdUnavailable(
                f"cluster {namespace}/{cluster} has no etcd yet (no {_where(cluster)}); its first control "
                "plane machine creates it when it boots"
            )
        return etcd_view(members)

    async def move_leader(self, namespace: str, cluster: str, to: str) -> None:
        def move(members: EtcdCluster | None) -> EtcdCluster:
            members = self._require(members, namespace, cluster)
            members.move_leader(to)
            return members

        await self._change(namespace, cluster, move)

    async def remove_member(self, namespace: str, cluster: str, name: str) -> None:
        def remove(members: EtcdCluster | None) -> EtcdCluster | None:
            members = self._require(members, namespace, cluster)
            try:
                members.member(name)
            except MemberNotFoundError:
                return None  # gone already
            members.remove_member(name)
            return members

        await self._change(namespace, cluster, remove)

    async def _change(self, namespace: str, cluster: str, change: Change) -> None:
        client = await self._client(namespace, cluster)
        try:
            await change_members(client, cluster, change)
        except TransportError as exc:
            raise EtcdUnavailable(
                f"the API of cluster {namespace}/{cluster} is not reachable: {exc}"
            ) from None
        except EtcdStateError as exc:
            raise EtcdUnavailable(
                f"the etcd membership of cluster {namespace}/{cluster} is unreadable: {exc}"
            ) from None

    @staticmethod
    def _require(members: EtcdCluster | None, namespace: str, cluster: str) -> EtcdCluster:
        if members is None:
            raise EtcdUnavailable(f"cluster {namespace}/{cluster} has no etcd yet (no {_where(cluster)})")
        return members
