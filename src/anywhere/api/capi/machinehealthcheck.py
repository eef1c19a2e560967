"""``cluster.x-k8s.io/v1beta1`` MachineHealthCheck: finds unhealthy machines and has them remediated."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from anywhere.api.capi._base import CapiObject, LabelSelector, ObjectReference, age, column
from anywhere.api.v1alpha1._base import Condition, Model


class UnhealthyCondition(Model):
    """A node condition (type and status) that makes a node unhealthy once it has lasted ``timeout``."""

    type: str | None = None
    status: str | None = None
    timeout: str | None = None


class MachineHealthCheckSpec(Model):
    cluster_name: str | None = None
    selector: LabelSelector | None = None
    unhealthy_conditions: list[UnhealthyCondition] | None = None
    max_unhealthy: int | str | None = None
    unhealthy_range: str | None = None
    node_startup_timeout: str | None = None
    remediation_template: ObjectReference | None = None


class MachineHealthCheckStatus(Model):
    expected_machines: int | None = None
    current_healthy: int | None = None
    remediations_allowed: int | None = None
    observed_generation: int | None = None
    targets: list[str] | None = None
    conditions: list[Condition] | None = None


class MachineHealthCheck(CapiObject):
    """Which machines to watch, what makes them unhealthy, and how many may be remediated at once."""

    KIND: ClassVar[str] = "MachineHealthCheck"
    PLURAL: ClassVar[str] = "machinehealthchecks"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("mhc", "mhcs")
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column("Cluster", ".spec.clusterName", description="Cluster"),
        column("ExpectedMachines", ".status.expectedMachines", "integer", "Number of machines watched"),
        column("MaxUnhealthy", ".spec.maxUnhealthy", description="Most unhealthy machines still remediated"),
        column("CurrentHealthy", ".status.currentHealthy", "integer", "Number of healthy machines"),
        age("MachineHealthCheck"),
    )
    kind: Literal["MachineHealthCheck"] = "MachineHealthCheck"
    spec: MachineHealthCheckSpec = Field(default_factory=MachineHealthCheckSpec)
    status: MachineHealthCheckStatus | None = None
