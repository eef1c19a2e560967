"""``cluster.x-k8s.io/v1beta1`` Machine: one node to be, its bootstrap data and infrastructure."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from anywhere.api.capi._base import (
    CapiObject,
    MachineAddress,
    ObjectReference,
    TemplateMeta,
    age,
    column,
)
from anywhere.api.v1alpha1._base import Condition, Model


class MachinePhase:
    """The values of ``status.phase`` of a Machine, in lifecycle order."""

    PENDING: Final = "Pending"
    PROVISIONING: Final = "Provisioning"
    PROVISIONED: Final = "Provisioned"
    RUNNING: Final = "Running"
    DELETING: Final = "Deleting"
    DELETED: Final = "Deleted"
    FAILED: Final = "Failed"
    UNKNOWN: Final = "Unknown"
    ALL: Final = (PENDING, PROVISIONING, PROVISIONED, RUNNING, DELETING, DELETED, FAILED)


class Bootstrap(Model):
    """Where a machine's bootstrap data comes from: a bootstrap config, or a secret named directly."""

    config_ref: ObjectReference | None = None
    data_secret_name: str | None = None


class MachineSpec(Model):
    cluster_name: str | None = None
    bootstrap: Bootstrap | None = None
    infrastructure_ref: ObjectReference | None = None
    version: str | None = None
    provider_id: str | None = Field(default=None, alias="providerID")
    failure_domain: str | None = None
    node_drain_timeout: str | None = None
    node_volume_detach_timeout: str | None = None
    node_deletion_timeout: str | None = None


class NodeSystemInfo(Model):
    """What a node reports about its system (Kubernetes' NodeSystemInfo)."""

    machine_id: str | None = Field(default=None, alias="machineID")
    system_uuid: str | None = Field(default=None, alias="systemUUID")
    boot_id: str | None = Field(default=None, alias="bootID")
    kernel_version: str | None = None
    os_image: str | None = None
    container_runtime_version: str | None = None
    kubelet_version: str | None = None
    kube_proxy_version: str | None = None
    operating_system: str | None = None
    architecture: str | None = None


class MachineDeletionStatus(Model):
    """When the steps of a machine's deletion started."""

    node_drain_start_time: str | None = None
    wait_for_node_volume_detach_start_time: str | None = None


class MachineStatus(Model):
    node_ref: ObjectReference | None = None
    node_info: NodeSystemInfo | None = None
    last_updated: str | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    addresses: list[MachineAddress] | None = None
    phase: str | None = None
    certificates_expiry_date: str | None = None
    bootstrap_ready: bool | None = None
    infrastructure_ready: bool | None = None
    observed_generation: int | None = None
    conditions: list[Condition] | None = None
    deletion: MachineDeletionStatus | None = None


class Machine(CapiObject):
    """A Cluster API machine: the intent that one node exist, with its bootstrap and infrastructure."""

    KIND: ClassVar[str] = "Machine"
    PLURAL: ClassVar[str] = "machines"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ma",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column("Cluster", ".spec.clusterName", description="Cluster"),
        column("NodeName", ".status.nodeRef.name", description="Node of the machine"),
        column("ProviderID", ".spec.providerID", description="Provider ID"),
        column(
            "Phase",
            ".status.phase",
            description="Lifecycle phase: Pending, Provisioning, Provisioned, Running, Deleting, Failed",
        ),
        age("Machine"),
        column("Version", ".spec.version", description="Kubernetes version of the machine"),
    )
    kind: Literal["Machine"] = "Machine"
    spec: MachineSpec = Field(default_factory=MachineSpec)
    status: MachineStatus | None = None


class MachineTemplateSpec(Model):
    """What a machine made from a template looks like: its labels and annotations, and its spec."""

    metadata: TemplateMeta | None = None
    spec: MachineSpec | None = None
