"""The resource types the server serves: built-in kinds, and custom resources from CRDs.

A :class:`ResourceType` says everything the generic handlers need to store and serve a kind: its
group/version/plural, scope, subresources and how to key it in storage. Built-in kinds are a static
table; CRD-backed types are added and removed as CRDs are written (see :class:`Registry`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    builtin: bool = True
    # Built-in kinds whose status is set by the system, not by the creator (cleared on create).
    reset_status_on_create: bool = False
    # Extra fields usable in fieldSelector beyond metadata.name/namespace.
    selectable_fields: frozenset[str] = frozenset()
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a CRD version
    printer_columns: tuple[dict[str, Any], ...] = ()
    # The scale subresource's paths (spec replicas, status replicas, label selector), where served.
    scale_paths: tuple[str, str, str] | None = None
    storage_version: str = ""  # for CRDs: the version objects are stored as
    served_versions: tuple[str, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified(self) -> str:
        """``plural.group`` as Kubernetes names resources in messages (just ``plural`` for core)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def storage_prefix(self, namespace: str | None = None) -> str:
        """Objects of every served version of a kind share one prefix (keyed by group, not version)."""
        base = f"/registry/{self.group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def storage_key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix(namespace)}{name}"
        return f"{self.storage_prefix()}{name}"


def _core(kind: str, plural: str, namespaced: bool = True, **extra: Any) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, **extra)


STATUS = frozenset({"status"})

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core(
        "Namespace",
        "namespaces",
        False,
        short_names=("ns",),
        subresources=frozenset({"status", "finalize"}),
        selectable_fields=frozenset({"status.phase"}),
    ),
    _core(
        "Node",
        "nodes",
        False,
        short_names=("no",),
        subresources=STATUS,
        selectable_fields=frozenset({"spec.unschedulable"}),
    ),
    _core(
        "Pod",
        "pods",
        short_names=("po",),
        categories=("all",),
        subresources=STATUS,
        reset_status_on_create=True,
        selectable_fields=frozenset(
            {
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            }
        ),
    ),
    _core("Service", "services", short_names=("svc",), categories=("all",), subresources=STATUS),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Secret", "secrets", selectable_fields=frozenset({"type"})),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",)),
    _core(
        "Event",
        "events",
        short_names=("ev",),
        selectable_fields=frozenset(
            {
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            }
        ),
    ),
    ResourceType("events.k8s.io", "v1", "Event", "events", True, short_names=("ev",)),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True),
    ResourceType(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        short_names=("deploy",),
        categories=("all",),
        subresources=frozenset({"status", "scale"}),
        reset_status_on_create=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        True,
        short_names=("ds",),
        categories=("all",),
        subresources=STATUS,
        reset_status_on_create=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        short_names=("sts",),
        categories=("all",),
        subresources=frozenset({"status", "scale"}),
        reset_status_on_create=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        True,
        short_names=("rs",),
        categories=("all",),
        subresources=frozenset({"status", "scale"}),
        reset_status_on_create=True,
    ),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=STATUS,
    ),
)

CRD_TYPE = BUILTIN_TYPES[-1]
NAMESPACE_TYPE = BUILTIN_TYPES[0]


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One :class:`ResourceType` per served version of a CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served")]
    storage = next((v["name"] for v in spec.get("versions") or [] if v.get("storage")), "")
    served = tuple(v["name"] for v in versions)
    result = []
    for version in versions:
        subresources = set((version.get("subresources") or {}).keys())
        result.append(
            ResourceType(
                group=spec.get("group", ""),
                version=version["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(subresources),
                scale_paths=_scale_paths((version.get("subresources") or {}).get("scale")),
                builtin=False,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                storage_version=storage,
                served_versions=served,
            )
        )
    return result


def _scale_paths(scale: dict[str, Any] | None) -> tuple[str, str, str] | None:
    if not scale:
        return None
    return (
        scale.get("specReplicasPath", ".spec.replicas"),
        scale.get("statusReplicasPath", ".status.replicas"),
        scale.get("labelSelectorPath", ""),
    )


# Built-in workloads keep replicas and their selector at the same places.
WORKLOAD_SCALE = (".spec.replicas", ".status.replicas", ".spec.selector")


class Registry:
    """The served types by group/version and plural, rebuilt as CRDs come and go."""

    def __init__(self) -> None:
        self._builtin = list(BUILTIN_TYPES)
        self._crds: dict[str, list[ResourceType]] = {}  # CRD name -> its served versions
        self._index: dict[tuple[str, str, str], ResourceType] = {}
        self._by_group_plural: dict[tuple[str, str], ResourceType] = {}
        self._reindex()

    def _reindex(self) -> None:
        index: dict[tuple[str, str, str], ResourceType] = {}
        for rt in self.all():
            index[(rt.group, rt.version, rt.plural)] = rt
        self._index = index
        self._by_group_plural = {(rt.group, rt.plural): rt for rt in self.all()}

    def all(self) -> list[ResourceType]:
        return [*self._builtin, *(rt for types in self._crds.values() for rt in types)]

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._index.get((group, version, plural))

    def for_key(self, key: str) -> tuple[ResourceType, str | None, str] | None:
        """The type, namespace and name a storage key belongs to (any served version of its kind)."""
        parts = key.split("/")
        if len(parts) < 5 or parts[1] != "registry":
            return None
        group = "" if parts[2] == "core" else parts[2]
        rt = self._by_group_plural.get((group, parts[3]))
        if rt is None:
            return None
        if rt.namespaced and len(parts) == 6:
            return rt, parts[4], parts[5]
        if not rt.namespaced and len(parts) == 5:
            return rt, None, parts[4]
        return None

    def set_crd(self, name: str, crd: dict[str, Any] | None) -> None:
        """Serve (or stop serving, with ``None``) the versions of one CRD."""
        if crd is None or not _crd_established(crd):
            self._crds.pop(name, None)
        else:
            self._crds[name] = types_from_crd(crd)
        self._reindex()

    def groups(self) -> dict[str, list[str]]:
        """Group -> served versions, preferred (first) version first, core ("") included."""
        found: dict[str, list[str]] = {}
        for rt in self.all():
            versions = found.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return found

    def in_group_version(self, group: str, version: str) -> Iterable[ResourceType]:
        return (rt for rt in self.all() if rt.group == group and rt.version == version)


def _crd_established(crd: dict[str, Any]) -> bool:
    """A CRD being deleted stops being served for writes only once its objects are gone; keep it."""
    spec = crd.get("spec") or {}
    return bool(spec.get("group") and (spec.get("names") or {}).get("plural") and spec.get("versions"))
