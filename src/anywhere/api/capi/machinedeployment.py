"""``cluster.x-k8s.io/v1beta1`` MachineDeployment: rolls machines out through MachineSets."""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from anywhere.api.capi._base import CapiObject, LabelSelector, age, column
from anywhere.api.capi.machine import MachineTemplateSpec
from anywhere.api.v1alpha1._base import Condition, Model


class StrategyType:
    """The values of ``spec.strategy.type``."""

    ROLLING_UPDATE: Final = "RollingUpdate"
    ON_DELETE: Final = "OnDelete"
    # EKS Anywhere's: machines upgraded where they stand (anywhere.controllers.inplace).
    IN_PLACE: Final = "InPlace"
    ALL: Final = (ROLLING_UPDATE, ON_DELETE, IN_PLACE)


class MachineDeploymentPhase:
    """The values of ``status.phase`` of a MachineDeployment."""

    SCALING_UP: Final = "ScalingUp"
    SCALING_DOWN: Final = "ScalingDown"
    RUNNING: Final = "Running"
    FAILED: Final = "Failed"
    UNKNOWN: Final = "Unknown"


class MachineRollingUpdateDeployment(Model):
    """How far a rolling update may go above (maxSurge) or below (maxUnavailable) the replicas."""

    max_unavailable: int | str | None = None
    max_surge: int | str | None = None
    delete_policy: str | None = None


class MachineDeploymentRemediation(Model):
    """How many machines of the deployment may be remediated at once."""

    max_in_flight: int | str | None = None


class MachineDeploymentStrategy(Model):
    """How old machines are replaced by new ones: RollingUpdate or OnDelete."""

    type: str | None = None
    rolling_update: MachineRollingUpdateDeployment | None = None
    remediation: MachineDeploymentRemediation | None = None


class MachineDeploymentSpec(Model):
    cluster_name: str | None = None
    replicas: int | None = None
    rollout_after: str | None = None
    selector: LabelSelector | None = None
    template: MachineTemplateSpec | None = None
    strategy: MachineDeploymentStrategy | None = None
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    paused: bool | None = None
    progress_deadline_seconds: int | None = None


class MachineDeploymentStatus(Model):
    observed_generation: int | None = None
    selector: str | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    unavailable_replicas: int | None = None
    phase: str | None = None
    conditions: list[Condition] | None = None


class MachineDeployment(CapiObject):
    """Declarative updates of machines: a new MachineSet per template change, rolled out by strategy."""

    KIND: ClassVar[str] = "MachineDeployment"
    PLURAL: ClassVar[str] = "machinedeployments"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("md",)
    SCALE: ClassVar[bool] = True
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column("Cluster", ".spec.clusterName", description="Cluster"),
        column("Desired", ".spec.replicas", "integer", "Number of machines wanted", priority=10),
        column("Replicas", ".status.replicas", "integer", "Number of machines, those being deleted included"),
        column("Ready", ".status.readyReplicas", "integer", "Number of ready machines"),
        column(
            "Updated", ".status.updatedReplicas", "integer", "Number of machines with the current template"
        ),
        column(
            "Unavailable", ".status.unavailableReplicas", "integer", "Number of machines not yet available"
        ),
        column("Phase", ".status.phase", description="ScalingUp, ScalingDown, Running, Failed or Unknown"),
        age("MachineDeployment"),
        column("Version", ".spec.template.spec.version", description="Kubernetes version of the machines"),
    )
    kind: Literal["MachineDeployment"] = "MachineDeployment"
    spec: MachineDeploymentSpec = Field(default_factory=MachineDeploymentSpec)
    status: MachineDeploymentStatus | None = None
