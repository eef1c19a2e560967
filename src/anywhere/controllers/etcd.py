"""What the control plane controller needs of etcd, whatever runs it: a view of the membership, and
the two operations a safe rollout performs (move leadership away, remove a member).

The KubeadmControlPlane controller is provider-neutral; each provider implements :class:`EtcdAdmin`
for its clusters (``sim`` keeps the membership as data in the cluster's own API; ``netns`` talks
to real etcd members).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["EtcdAdmin", "EtcdUnavailable", "EtcdView"]


class EtcdUnavailable(Exception):
    """The cluster's etcd cannot be reached or read (yet); the message says why."""


@dataclass(frozen=True)
class EtcdView:
    """The etcd membership as the controller sees it: member name (the machine's name) to health,
    which members are learners, and the leader (``None`` without quorum)."""

    members: Mapping[str, bool] = field(default_factory=dict)
    learners: frozenset[str] = frozenset()
    leader: str | None = None

    @property
    def voters(self) -> list[str]:
        return [name for name in self.members if name not in self.learners]

    @property
    def healthy_voters(self) -> list[str]:
        return [name for name in self.voters if self.members[name]]

    @property
    def has_quorum(self) -> bool:
        voters = self.voters
        return bool(voters) and len(self.healthy_voters) >= len(voters) // 2 + 1

    def keeps_quorum_without(self, name: str) -> bool:
        """Whether removing member ``name`` leaves a quorum among the remaining voters."""
        if name not in self.members or name in self.learners:
            return self.has_quorum
        voters = len(self.voters) - 1
        healthy = len(self.healthy_voters) - (1 if self.members[name] else 0)
        return voters > 0 and healthy >= voters // 2 + 1


class EtcdAdmin(Protocol):
    """etcd membership operations for the clusters of one provider, addressed by the namespace and
    name of the Cluster API Cluster. Members are named after their machines."""

    async def view(self, namespace: str, cluster: str) -> EtcdView:
        """The membership now; raises :class:`EtcdUnavailable` when it cannot be read."""
        ...

    async def move_leader(self, namespace: str, cluster: str, to: str) -> None:
        """Make member ``to`` the leader."""
        ...

    async def remove_member(self, namespace: str, cluster: str, name: str) -> None:
        """Remove member ``name`` (gone already is fine); refuses what would lose quorum."""
        ...
