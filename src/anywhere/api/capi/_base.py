"""Building blocks of the Cluster API style kinds: groups, well-known labels, shared field groups.

The kinds follow Cluster API's ``v1beta1`` wire format (camelCase JSON names, the same optional
fields), so that people who know Cluster API read ``kubectl get machines -A -o yaml`` as they
expect. They reuse :class:`~anywhere.api.v1alpha1._base.Model` (strict, unknown fields refused,
every field optional) and differ from the ``anywhere`` kinds only in their API groups, CRD
categories, printer columns and scale subresources, which each kind declares in class variables.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from pydantic import Field

from anywhere.api.v1alpha1._base import Condition, Model, Object

VERSION: Final = "v1beta1"
CLUSTER_GROUP: Final = "cluster.x-k8s.io"
CONTROL_PLANE_GROUP: Final = "controlplane.cluster.x-k8s.io"
BOOTSTRAP_GROUP: Final = "bootstrap.cluster.x-k8s.io"
INFRASTRUCTURE_GROUP: Final = "infrastructure.cluster.x-k8s.io"

CLUSTER_API_VERSION: Final = f"{CLUSTER_GROUP}/{VERSION}"
CONTROL_PLANE_API_VERSION: Final = f"{CONTROL_PLANE_GROUP}/{VERSION}"
BOOTSTRAP_API_VERSION: Final = f"{BOOTSTRAP_GROUP}/{VERSION}"
INFRASTRUCTURE_API_VERSION: Final = f"{INFRASTRUCTURE_GROUP}/{VERSION}"

# Labels and annotations with Cluster API's meaning.
CLUSTER_NAME_LABEL: Final = "cluster.x-k8s.io/cluster-name"
CONTROL_PLANE_LABEL: Final = "cluster.x-k8s.io/control-plane"
CONTROL_PLANE_NAME_LABEL: Final = "cluster.x-k8s.io/control-plane-name"
MACHINE_SET_NAME_LABEL: Final = "cluster.x-k8s.io/set-name"
MACHINE_DEPLOYMENT_NAME_LABEL: Final = "cluster.x-k8s.io/deployment-name"
MACHINE_TEMPLATE_HASH_LABEL: Final = "machine-template-hash"
PAUSED_ANNOTATION: Final = "cluster.x-k8s.io/paused"
DELETE_MACHINE_ANNOTATION: Final = "cluster.x-k8s.io/delete-machine"
REVISION_ANNOTATION: Final = "machinedeployment.clusters.x-k8s.io/revision"
# The label a provider's CRD carries to say which of its versions implements the v1beta1 contract.
CONTRACT_LABEL: Final = "cluster.x-k8s.io/v1beta1"

Column = dict[str, Any]


def column(name: str, path: str, type_: str = "string", description: str = "", priority: int = 0) -> Column:
    """One ``additionalPrinterColumns`` entry."""
    out: Column = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        out["priority"] = priority
    if description:
        out["description"] = description
    return out


def age(kind: str) -> Column:
    return column("Age", ".metadata.creationTimestamp", "date", f"Time duration since creation of {kind}")


CLUSTER_LABEL_COLUMN: Final = column(
    "Cluster", ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']", description="Cluster"
)


class CapiObject(Object):
    """Base of the kinds of ``cluster.x-k8s.io``; the other groups' bases override the group."""

    GROUP: ClassVar[str] = CLUSTER_GROUP
    VERSION: ClassVar[str] = VERSION
    CATEGORIES: ClassVar[tuple[str, ...]] = ("cluster-api",)
    # ``kubectl get`` columns, in Cluster API's order (Age included where Cluster API puts it).
    PRINTER_COLUMNS: ClassVar[tuple[Column, ...]] = ()
    # Whether the kind has a scale subresource (.spec.replicas, .status.replicas, .status.selector).
    SCALE: ClassVar[bool] = False

    api_version: str = Field(default=CLUSTER_API_VERSION)


class ControlPlaneObject(CapiObject):
    """Base of the kinds of ``controlplane.cluster.x-k8s.io``."""

    GROUP: ClassVar[str] = CONTROL_PLANE_GROUP
    api_version: str = Field(default=CONTROL_PLANE_API_VERSION)


class BootstrapObject(CapiObject):
    """Base of the kinds of ``bootstrap.cluster.x-k8s.io``."""

    GROUP: ClassVar[str] = BOOTSTRAP_GROUP
    api_version: str = Field(default=BOOTSTRAP_API_VERSION)


class InfrastructureObject(CapiObject):
    """Base of the kinds of ``infrastructure.cluster.x-k8s.io``."""

    GROUP: ClassVar[str] = INFRASTRUCTURE_GROUP
    api_version: str = Field(default=INFRASTRUCTURE_API_VERSION)


class ObjectReference(Model):
    """A reference to another object (Kubernetes' ObjectReference)."""

    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    field_path: str | None = None


class LabelSelectorRequirement(Model):
    """One expression of a label selector: key, operator (In, NotIn, Exists, DoesNotExist), values."""

    key: str | None = None
    operator: str | None = None
    values: list[str] | None = None


class LabelSelector(Model):
    """A Kubernetes label selector: labels that must match, and expressions that must hold."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class TemplateMeta(Model):
    """The metadata a template gives the objects made from it: labels and annotations only."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class MachineAddress(Model):
    """An address of a machine; type is Hostname, ExternalIP, InternalIP, ExternalDNS or InternalDNS."""

    type: str | None = None
    address: str | None = None


class APIEndpoint(Model):
    """A reachable Kubernetes API endpoint."""

    host: str | None = None
    port: int | None = None


__all__ = [
    "APIEndpoint",
    "BootstrapObject",
    "CapiObject",
    "Condition",
    "ControlPlaneObject",
    "InfrastructureObject",
    "LabelSelector",
    "LabelSelectorRequirement",
    "MachineAddress",
    "ObjectReference",
    "TemplateMeta",
]
