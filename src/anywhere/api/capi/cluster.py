"""``cluster.x-k8s.io/v1beta1`` Cluster: the Cluster API view of one workload cluster.

ClusterClass-managed topologies are out of scope; ``spec.topology`` is accepted with its class and
version typed and the rest kept as given, so that Cluster API objects load and the Version column
Cluster API prints has its field.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from anywhere.api.capi._base import APIEndpoint, CapiObject, ObjectReference, age, column
from anywhere.api.v1alpha1._base import Condition, Model


class ClusterPhase:
    """The values of ``status.phase`` of a Cluster."""

    PENDING: Final = "Pending"
    PROVISIONING: Final = "Provisioning"
    PROVISIONED: Final = "Provisioned"
    DELETING: Final = "Deleting"
    FAILED: Final = "Failed"
    UNKNOWN: Final = "Unknown"


class NetworkRanges(Model):
    """Ranges of network addresses, as CIDR blocks."""

    cidr_blocks: list[str] | None = None


class ClusterNetwork(Model):
    """The cluster's networking: API server port, service and pod ranges, service domain."""

    api_server_port: int | None = None
    services: NetworkRanges | None = None
    pods: NetworkRanges | None = None
    service_domain: str | None = None


class Topology(Model):
    """A ClusterClass-managed topology; only its class and version are typed here."""

    class_: str | None = Field(default=None, alias="class")
    version: str | None = None
    rollout_after: str | None = None
    control_plane: dict[str, Any] | None = None
    workers: dict[str, Any] | None = None
    variables: list[dict[str, Any]] | None = None


class ClusterSpec(Model):
    paused: bool | None = None
    cluster_network: ClusterNetwork | None = None
    control_plane_endpoint: APIEndpoint | None = None
    control_plane_ref: ObjectReference | None = None
    infrastructure_ref: ObjectReference | None = None
    topology: Topology | None = None


class FailureDomainSpec(Model):
    """A failure domain the infrastructure offers, and whether control plane machines may use it."""

    control_plane: bool | None = None
    attributes: dict[str, str] | None = None


class ClusterStatus(Model):
    failure_domains: dict[str, FailureDomainSpec] | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    phase: str | None = None
    infrastructure_ready: bool | None = None
    control_plane_ready: bool | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class Cluster(CapiObject):
    """A Cluster API cluster: its network, control plane endpoint, control plane and infrastructure."""

    KIND: ClassVar[str] = "Cluster"
    PLURAL: ClassVar[str] = "clusters"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("cl",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column(
            "Phase",
            ".status.phase",
            description="Lifecycle phase: Pending, Provisioning, Provisioned, Deleting, Failed",
        ),
        age("Cluster"),
        column(
            "Version",
            ".spec.topology.version",
            description="Kubernetes version of a ClusterClass-managed topology",
        ),
    )
    kind: Literal["Cluster"] = "Cluster"
    spec: ClusterSpec = Field(default_factory=ClusterSpec)
    status: ClusterStatus | None = None
