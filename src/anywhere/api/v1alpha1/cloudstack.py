"""Kinds of the ``cloudstack`` provider: Apache CloudStack zones, networks, offerings and templates.

A CloudStackDatacenterConfig lists availability zones (each one CloudStack zone and network, reached
through one management endpoint with one set of credentials); a CloudStackMachineConfig says which
template, compute offering and optional data disk the machines of a group get. Resources are named
either by ``id`` (a CloudStack UUID) or by ``name``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object
from anywhere.api.v1alpha1._machine import UserConfiguration


class CloudStackResourceIdentifier(Model):
    """A CloudStack resource named by ``id`` (UUID) or by ``name``."""

    id: str | None = None
    name: str | None = None


class CloudStackZone(Model):
    """A CloudStack zone (by id or name) and the network in it that machines attach to."""

    id: str | None = None
    name: str | None = None
    network: CloudStackResourceIdentifier | None = None


class CloudStackAvailabilityZone(Model):
    """One failure domain: a zone and network, its domain and account, endpoint and credentials."""

    name: str | None = None
    credentials_ref: str | None = None
    zone: CloudStackZone | None = None
    domain: str | None = None
    account: str | None = None
    management_api_endpoint: str | None = None


class CloudStackDatacenterConfigSpec(Model):
    # domain, zones, account and managementApiEndpoint are deprecated: defaulting moves them into
    # availabilityZones, which is what the rest of the system reads.
    domain: str | None = None
    zones: list[CloudStackZone] | None = None
    account: str | None = None
    management_api_endpoint: str | None = None
    availability_zones: list[CloudStackAvailabilityZone] | None = None


class CloudStackDatacenterConfigStatus(Model):
    spec_valid: bool | None = None
    observed_generation: int | None = None
    failure_message: str | None = None


class CloudStackDatacenterConfig(Object):
    """Where a CloudStack cluster runs: its availability zones and how to reach each one."""

    KIND: ClassVar[str] = "CloudStackDatacenterConfig"
    PLURAL: ClassVar[str] = "cloudstackdatacenterconfigs"
    kind: Literal["CloudStackDatacenterConfig"] = "CloudStackDatacenterConfig"
    spec: CloudStackDatacenterConfigSpec = Field(default_factory=CloudStackDatacenterConfigSpec)
    status: CloudStackDatacenterConfigStatus | None = None


class CloudStackResourceDiskOffering(Model):
    """A data disk from a disk offering, and how it is formatted and mounted in the machine."""

    id: str | None = None
    name: str | None = None
    custom_size_in_gb: int | None = Field(default=None, alias="customSizeInGB")
    mount_path: str | None = None
    device: str | None = None
    filesystem: str | None = None
    label: str | None = None


class CloudStackMachineConfigSpec(Model):
    template: CloudStackResourceIdentifier | None = None
    compute_offering: CloudStackResourceIdentifier | None = None
    disk_offering: CloudStackResourceDiskOffering | None = None
    users: list[UserConfiguration] | None = None
    affinity: str | None = None
    affinity_group_ids: list[str] | None = None
    user_custom_details: dict[str, str] | None = None
    symlinks: dict[str, str] | None = None


class CloudStackMachineConfigStatus(Model):
    spec_valid: bool | None = None
    failure_message: str | None = None


class CloudStackMachineConfig(Object):
    """The machines of one node group on CloudStack: template, offerings, disk, users and affinity."""

    KIND: ClassVar[str] = "CloudStackMachineConfig"
    PLURAL: ClassVar[str] = "cloudstackmachineconfigs"
    kind: Literal["CloudStackMachineConfig"] = "CloudStackMachineConfig"
    spec: CloudStackMachineConfigSpec = Field(default_factory=CloudStackMachineConfigSpec)
    status: CloudStackMachineConfigStatus | None = None
