"""Kinds of the ``tinkerbell`` (bare metal) provider.

A TinkerbellDatacenterConfig names the address of the Tinkerbell stack and where OS and HookOS
images come from; a TinkerbellMachineConfig picks hardware by labels and says how to set up its OS;
a TinkerbellTemplateConfig overrides the Tinkerbell workflow that installs a machine. The workflow
keeps Tinkerbell's own key names (``global_timeout``, ``on-failure``), which are not camelCase.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object, Ref
from anywhere.api.v1alpha1._machine import HostOSConfiguration, UserConfiguration

# --------------------------------------------------------------------------- datacenter


class TinkerbellDatacenterConfigSpec(Model):
    tinkerbell_ip: str | None = Field(default=None, alias="tinkerbellIP")
    os_image_url: str | None = Field(default=None, alias="osImageURL")
    hook_images_url_path: str | None = Field(default=None, alias="hookImagesURLPath")
    skip_load_balancer_deployment: bool | None = None
    load_balancer_interface: str | None = None
    iso_boot: bool | None = None
    hook_iso_url: str | None = Field(default=None, alias="hookIsoURL")


class TinkerbellDatacenterConfigStatus(Model):
    """Tinkerbell datacenters report no status."""


class TinkerbellDatacenterConfig(Object):
    """A bare metal site: the Tinkerbell stack's IP and where OS and HookOS images are served from."""

    KIND: ClassVar[str] = "TinkerbellDatacenterConfig"
    PLURAL: ClassVar[str] = "tinkerbelldatacenterconfigs"
    kind: Literal["TinkerbellDatacenterConfig"] = "TinkerbellDatacenterConfig"
    spec: TinkerbellDatacenterConfigSpec = Field(default_factory=TinkerbellDatacenterConfigSpec)
    status: TinkerbellDatacenterConfigStatus | None = None


# --------------------------------------------------------------------------- machine


class LabelSelectorRequirement(Model):
    """One Kubernetes label selector expression: ``key operator values``."""

    key: str | None = None
    operator: str | None = None
    values: list[str] | None = None


class LabelSelector(Model):
    """A Kubernetes label selector: exact labels and/or set-based expressions, all ANDed."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class HardwareAffinityTerm(Model):
    """Hardware whose labels match the selector."""

    label_selector: LabelSelector | None = None


class WeightedHardwareAffinityTerm(Model):
    """A preferred term; hardware matching heavier terms (1-100) is picked first."""

    weight: int | None = None
    hardware_affinity_term: HardwareAffinityTerm | None = None


class HardwareAffinity(Model):
    """Hardware selection by label selectors: any required term must match, preferred ones rank."""

    required: list[HardwareAffinityTerm] | None = None
    preferred: list[WeightedHardwareAffinityTerm] | None = None


class TinkerbellMachineConfigSpec(Model):
    hardware_selector: dict[str, str] | None = None
    hardware_affinity: HardwareAffinity | None = None
    template_ref: Ref | None = None
    os_family: str | None = None
    os_image_url: str | None = Field(default=None, alias="osImageURL")
    users: list[UserConfiguration] | None = None
    host_os_configuration: HostOSConfiguration | None = Field(default=None, alias="hostOSConfiguration")


class TinkerbellMachineConfigStatus(Model):
    """Tinkerbell machine configs report no status."""


class TinkerbellMachineConfig(Object):
    """A group of bare metal machines: which hardware to take, which OS to install, who may log in."""

    KIND: ClassVar[str] = "TinkerbellMachineConfig"
    PLURAL: ClassVar[str] = "tinkerbellmachineconfigs"
    kind: Literal["TinkerbellMachineConfig"] = "TinkerbellMachineConfig"
    spec: TinkerbellMachineConfigSpec = Field(default_factory=TinkerbellMachineConfigSpec)
    status: TinkerbellMachineConfigStatus | None = None


# --------------------------------------------------------------------------- template


class Action(Model):
    """One step of a Tinkerbell task: a container image run on the machine being provisioned."""

    name: str | None = None
    image: str | None = None
    timeout: int | None = None
    command: list[str] | None = None
    on_timeout: list[str] | None = Field(default=None, alias="on-timeout")
    on_failure: list[str] | None = Field(default=None, alias="on-failure")
    volumes: list[str] | None = None
    environment: dict[str, str] | None = None
    pid: str | None = None


class Task(Model):
    """A sequence of actions run by one worker (the machine, usually ``{{.device_1}}``)."""

    name: str | None = None
    worker: str | None = None
    actions: list[Action] | None = None
    volumes: list[str] | None = None
    environment: dict[str, str] | None = None


class Workflow(Model):
    """A Tinkerbell workflow template, with Tinkerbell's own key names."""

    version: str | None = None
    name: str | None = None
    id: str | None = None
    global_timeout: int | None = Field(default=None, alias="global_timeout")
    tasks: list[Task] | None = None


class TinkerbellTemplateConfigSpec(Model):
    template: Workflow | None = None


class TinkerbellTemplateConfigStatus(Model):
    """Tinkerbell template configs report no status."""


class TinkerbellTemplateConfig(Object):
    """A custom Tinkerbell workflow that machine configs name in ``templateRef`` to replace the default."""

    KIND: ClassVar[str] = "TinkerbellTemplateConfig"
    PLURAL: ClassVar[str] = "tinkerbelltemplateconfigs"
    kind: Literal["TinkerbellTemplateConfig"] = "TinkerbellTemplateConfig"
    spec: TinkerbellTemplateConfigSpec = Field(default_factory=TinkerbellTemplateConfigSpec)
    status: TinkerbellTemplateConfigStatus | None = None
