"""A cluster configuration: one Cluster and the objects it refers to, as one unit.

This is what a user's file holds and what every validation level works on. It is built by the
loader (from YAML) or by the API server (from stored objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from anywhere.api.v1alpha1._base import Object
from anywhere.api.v1alpha1.cluster import Cluster


@dataclass
class ClusterConfig:
    """One Cluster plus every other anywhere object of the same file or namespace."""

    cluster: Cluster
    objects: list[Object] = field(default_factory=list)
    source: str | None = None
    # True where the other objects may legitimately be missing: API admission sees one object at a
    # time, in any order, so refs are resolved later by the controllers rather than refused.
    partial: bool = False

    def get(self, kind: str | None, name: str | None) -> Object | None:
        """The object of this kind and name, if the configuration holds one."""
        for obj in self.objects:
            if obj.kind == kind and obj.name == name:
                return obj
        return None

    def of_kind(self, kind: str) -> list[Object]:
        return [obj for obj in self.objects if obj.kind == kind]

    @property
    def datacenter(self) -> Object | None:
        ref = self.cluster.spec.datacenter_ref
        return self.get(ref.kind, ref.name) if ref is not None else None

    def all_objects(self) -> list[Object]:
        """The Cluster first, then the others in file order."""
        return [self.cluster, *self.objects]
