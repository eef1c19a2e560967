"""``cluster.x-k8s.io/v1beta1`` MachineSet: keeps a number of identical machines in existence."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from anywhere.api.capi._base import CapiObject, LabelSelector, age, column
from anywhere.api.capi.machine import MachineTemplateSpec
from anywhere.api.v1alpha1._base import Condition, Model


class DeletePolicy:
    """Which machines go first when a MachineSet scales down (``spec.deletePolicy``)."""

    RANDOM: Final = "Random"
    NEWEST: Final = "Newest"
    OLDEST: Final = "Oldest"
    ALL: Final = (RANDOM, NEWEST, OLDEST)


class MachineSetSpec(Model):
    cluster_name: str | None = None
    replicas: int | None = None
    min_ready_seconds: int | None = None
    delete_policy: str | None = None
    selector: LabelSelector | None = None
    template: MachineTemplateSpec | None = None


class MachineSetStatus(Model):
    selector: str | None = None
    replicas: int | None = None
    fully_labeled_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    observed_generation: int | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    conditions: list[Condition] | None = None


class MachineSet(CapiObject):
    """A set of machines made from one template, kept at the desired number of replicas."""

    KIND: ClassVar[str] = "MachineSet"
    PLURAL: ClassVar[str] = "machinesets"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ms",)
    SCALE: ClassVar[bool] = True
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column("Cluster", ".spec.clusterName", description="Cluster"),
        column("Desired", ".spec.replicas", "integer", "Number of machines wanted", priority=10),
        column("Replicas", ".status.replicas", "integer", "Number of machines, those being deleted included"),
        column("Ready", ".status.readyReplicas", "integer", "Number of ready machines"),
        column(
            "Available",
            ".status.availableReplicas",
            "integer",
            "Number of machines ready for minReadySeconds",
        ),
        age("MachineSet"),
        column("Version", ".spec.template.spec.version", description="Kubernetes version of the machines"),
    )
    kind: Literal["MachineSet"] = "MachineSet"
    spec: MachineSetSpec = Field(default_factory=MachineSetSpec)
    status: MachineSetStatus | None = None
