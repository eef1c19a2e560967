"""Kubeadm kinds: ``controlplane.cluster.x-k8s.io/v1beta1`` KubeadmControlPlane and
``bootstrap.cluster.x-k8s.io/v1beta1`` KubeadmConfig / KubeadmConfigTemplate.

The kubeadm configuration documents (``clusterConfiguration``, ``initConfiguration``,
``joinConfiguration``) and disk setup are kept free-form: they are handed on to bootstrap data
as given, and typing kubeadm's whole API would add nothing the controllers read.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from anywhere.api.capi._base import (
    CLUSTER_LABEL_COLUMN,
    BootstrapObject,
    ControlPlaneObject,
    ObjectReference,
    TemplateMeta,
    age,
    column,
)
from anywhere.api.v1alpha1._base import Condition, Model

# Bootstrap data formats (``spec.format``) and file encodings (``files[].encoding``). ``cloud-config``
# (cloud-init user data, the default) and ``bottlerocket`` (Bottlerocket's TOML settings, the format
# EKS Anywhere's Cluster API adds for Bottlerocket machines) are rendered; ``ignition`` is Cluster API's
# too, but not rendered. The field is a plain string in the schema, not an enum: a format the
# controller cannot render is refused by it with a condition that names the ones it can.
FORMAT_CLOUD_CONFIG: Final = "cloud-config"
FORMAT_IGNITION: Final = "ignition"
FORMAT_BOTTLEROCKET: Final = "bottlerocket"
ENCODINGS: Final = ("base64", "gzip", "gzip+base64")


class SecretKeyRef(Model):
    """A key of a Secret in the object's namespace."""

    name: str | None = None
    key: str | None = None


class FileSource(Model):
    """Where a file's content comes from instead of ``content``."""

    secret: SecretKeyRef | None = None


class File(Model):
    """A file written on the machine before kubeadm runs."""

    path: str | None = None
    owner: str | None = None
    permissions: str | None = None
    encoding: str | None = None
    append: bool | None = None
    content: str | None = None
    content_from: FileSource | None = None


class PasswdSource(Model):
    """Where a user's hashed password comes from instead of ``passwd``."""

    secret: SecretKeyRef | None = None


class User(Model):
    """An OS user created on the machine."""

    name: str | None = None
    gecos: str | None = None
    groups: str | None = None
    home_dir: str | None = None
    inactive: bool | None = None
    shell: str | None = None
    passwd: str | None = None
    passwd_from: PasswdSource | None = None
    primary_group: str | None = None
    lock_password: bool | None = None
    sudo: str | None = None
    ssh_authorized_keys: list[str] | None = None


class NTP(Model):
    """NTP servers, and whether NTP is enabled."""

    servers: list[str] | None = None
    enabled: bool | None = None


class KubeadmConfigSpec(Model):
    """How a machine is bootstrapped with kubeadm: its configuration, files, users and commands."""

    cluster_configuration: dict[str, Any] | None = None
    init_configuration: dict[str, Any] | None = None
    join_configuration: dict[str, Any] | None = None
    files: list[File] | None = None
    disk_setup: dict[str, Any] | None = None
    mounts: list[list[str]] | None = None
    pre_kubeadm_commands: list[str] | None = None
    post_kubeadm_commands: list[str] | None = None
    users: list[User] | None = None
    ntp: NTP | None = None
    format: str | None = None
    verbosity: int | None = None
    use_experimental_retry_join: bool | None = None
    ignition: dict[str, Any] | None = None


class KubeadmControlPlaneMachineTemplate(Model):
    """What control plane machines look like: metadata, infrastructure template, node timeouts."""

    metadata: TemplateMeta | None = None
    infrastructure_ref: ObjectReference | None = None
    node_drain_timeout: str | None = None
    node_volume_detach_timeout: str | None = None
    node_deletion_timeout: str | None = None


class RolloutBefore(Model):
    """Conditions that start a rollout: certificates expiring within so many days."""

    certificates_expiry_days: int | None = None


class RollingUpdate(Model):
    """How many control plane machines a rolling update may add above the replicas (0 or 1)."""

    max_surge: int | str | None = None


class RolloutStrategy(Model):
    """How control plane machines are changed: RollingUpdate (replaced, ``maxSurge`` 0 or 1) or InPlace
    (upgraded where they stand, one at a time: anywhere.controllers.inplace)."""

    type: str | None = None
    rolling_update: RollingUpdate | None = None


class RemediationStrategy(Model):
    """How control plane remediation retries: how often, how soon, and when a failure is a new one."""

    max_retry: int | None = None
    retry_period: str | None = None
    min_healthy_period: str | None = None


class KubeadmControlPlaneSpec(Model):
    replicas: int | None = None
    version: str | None = None
    machine_template: KubeadmControlPlaneMachineTemplate | None = None
    kubeadm_config_spec: KubeadmConfigSpec | None = None
    rollout_before: RolloutBefore | None = None
    rollout_after: str | None = None
    rollout_strategy: RolloutStrategy | None = None
    remediation_strategy: RemediationStrategy | None = None


class LastRemediationStatus(Model):
    """The last control plane remediation: which machine, when, and how many retries so far."""

    machine: str | None = None
    timestamp: str | None = None
    retry_count: int | None = None


class KubeadmControlPlaneStatus(Model):
    selector: str | None = None
    replicas: int | None = None
    version: str | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    unavailable_replicas: int | None = None
    initialized: bool | None = None
    ready: bool | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] | None = None
    last_remediation: LastRemediationStatus | None = None


class KubeadmControlPlane(ControlPlaneObject):
    """A kubeadm control plane: its machines, Kubernetes version, kubeadm configuration and rollouts."""

    KIND: ClassVar[str] = "KubeadmControlPlane"
    PLURAL: ClassVar[str] = "kubeadmcontrolplanes"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("kcp",)
    SCALE: ClassVar[bool] = True
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        CLUSTER_LABEL_COLUMN,
        column("Initialized", ".status.initialized", "boolean", "Whether the control plane was initialized"),
        column("API Server Available", ".status.ready", "boolean", "Whether the API server takes requests"),
        column("Desired", ".spec.replicas", "integer", "Number of machines wanted", priority=10),
        column("Replicas", ".status.replicas", "integer", "Number of machines, those being deleted included"),
        column("Ready", ".status.readyReplicas", "integer", "Number of ready control plane machines"),
        column("Updated", ".status.updatedReplicas", "integer", "Number of machines with the current spec"),
        column("Unavailable", ".status.unavailableReplicas", "integer", "Number of machines not yet ready"),
        age("KubeadmControlPlane"),
        column("Version", ".spec.version", description="Kubernetes version of the control plane"),
    )
    kind: Literal["KubeadmControlPlane"] = "KubeadmControlPlane"
    spec: KubeadmControlPlaneSpec = Field(default_factory=KubeadmControlPlaneSpec)
    status: KubeadmControlPlaneStatus | None = None


class KubeadmConfigStatus(Model):
    ready: bool | None = None
    data_secret_name: str | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] | None = None


class KubeadmConfig(BootstrapObject):
    """The kubeadm bootstrap configuration of one machine, and the secret its bootstrap data went to."""

    KIND: ClassVar[str] = "KubeadmConfig"
    PLURAL: ClassVar[str] = "kubeadmconfigs"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (CLUSTER_LABEL_COLUMN, age("KubeadmConfig"))
    kind: Literal["KubeadmConfig"] = "KubeadmConfig"
    spec: KubeadmConfigSpec = Field(default_factory=KubeadmConfigSpec)
    status: KubeadmConfigStatus | None = None


class KubeadmConfigTemplateResource(Model):
    """The KubeadmConfig each machine made from the template gets."""

    metadata: TemplateMeta | None = None
    spec: KubeadmConfigSpec | None = None


class KubeadmConfigTemplateSpec(Model):
    template: KubeadmConfigTemplateResource | None = None


class KubeadmConfigTemplate(BootstrapObject):
    """A KubeadmConfig to copy for every machine of a MachineDeployment or MachineSet."""

    KIND: ClassVar[str] = "KubeadmConfigTemplate"
    PLURAL: ClassVar[str] = "kubeadmconfigtemplates"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (age("KubeadmConfigTemplate"),)
    kind: Literal["KubeadmConfigTemplate"] = "KubeadmConfigTemplate"
    spec: KubeadmConfigTemplateSpec = Field(default_factory=KubeadmConfigTemplateSpec)
