"""Specification rules of the ``cloudstack`` provider (EKS Anywhere's CloudStack kinds).

Defaulting moves the deprecated top-level zones, domain, account and managementApiEndpoint into
``availabilityZones``; validation then checks what can be checked without a CloudStack API: that
every zone, network, template and offering is named, that ids are UUIDs, the data disk, affinity,
custom details and symlinks rules. What EKS Anywhere's CloudStack provider validator checks when a
cluster is created, short of asking CloudStack (the control plane endpoint's host and port, template
names carrying the Kubernetes version), is in ``create_checks``. Whether the named resources exist
is a live check, not made here.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._machine import (
    ENDPOINT_HOST,
    default_users,
    is_paused,
    is_uuid,
    name_has_kube_version,
    validate_users,
    versioned_machines,
)
from anywhere.api.infra._rules import ProviderRules, ProviderSample, immutable
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.cloudstack import (
    CloudStackAvailabilityZone,
    CloudStackDatacenterConfig,
    CloudStackDatacenterConfigSpec,
    CloudStackMachineConfig,
    CloudStackMachineConfigSpec,
    CloudStackResourceIdentifier,
    CloudStackZone,
)

DEFAULT_AZ_PREFIX = "default-az"
DEFAULT_CREDENTIALS_REF = "global"
DEFAULT_USER = "capc"
DEFAULT_CONTROL_PLANE_PORT = 6443
AFFINITY_TYPES = ("pro", "anti", "no")

# VM details CloudStack manages itself (VmDetailConstants): a user may not pass them as custom details.
RESTRICTED_USER_CUSTOM_DETAILS = (
    "keyboard", "cpu.corespersocket", "rootdisksize", "boot.mode", "nameonhypervisor",
    "nicAdapter", "rootDiskController", "dataDiskController", "svga.vramSize", "nestedVirtualizationFlag",
    "ramReservation", "hypervisortoolsversion", "platform", "timeoffset", "kvm.vnc.port", "kvm.vnc.address",
    "video.hardware", "video.ram", "smc.present", "firmware", "cpuNumber", "cpuSpeed", "memory",
    "cpuOvercommitRatio", "memoryOvercommitRatio", "Message.ReservedCapacityFreed.Flag", "deployvm",
    "SSH.PublicKey", "SSH.KeyPairNames", "password", "Encrypted.Password", "configDriveLocation", "nic",
    "network", "ip4Address", "ip6Address", "disk", "diskOffering", "configurationId", "keypairnames",
    "controlNodeLoginUser",
)  # fmt: skip

# Availability zone names CAPC v1beta2 generates when it converts v1beta1 zones (a version 4 UUID).
_CAPC_CONVERTED_AZ_NAME = re.compile(
    r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-4[a-fA-F0-9]{3}-[89aAbB][a-fA-F0-9]{3}-[a-fA-F0-9]{12}"
)
_PORTABLE_PATH = re.compile(r"^[a-zA-Z0-9._/-]+$")


# --- helpers ----------------------------------------------------------------------------------------


def split_host_port(host: str, default_port: int) -> tuple[str, int] | str:
    """``host[:port]`` as (host, port), or a message saying what is wrong with it."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "an IPv6 address in brackets must close them, as in [fd00::10]:6443"
        rest = host[end + 1 :]
        if rest and not rest.startswith(":"):
            return "give host or host:port"
        name, port_text = host[1:end], rest[1:] if rest else str(default_port)
    elif host.count(":") == 0:
        name, port_text = host, str(default_port)
    elif host.count(":") == 1:
        name, port_text = host.split(":")
    else:
        return "too many colons; put an IPv6 address in brackets, as in [fd00::10]:6443"
    if not name:
        return "the host part is empty"
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        return f"port {port_text!r} is not valid; give a port from 1 to 65535"
    return name, int(port_text)


# --- defaults --------------------------------------------------------------------------------------


def default_datacenter(datacenter: CloudStackDatacenterConfig) -> None:
    """Turn the deprecated single-endpoint fields into availability zones, then clear them."""
    spec = datacenter.spec
    if not spec.availability_zones:
        spec.availability_zones = [
            CloudStackAvailabilityZone(
                name=f"{DEFAULT_AZ_PREFIX}-{index}",
                zone=zone.model_copy(deep=True),
                account=spec.account or None,
                domain=spec.domain or None,
                management_api_endpoint=spec.management_api_endpoint or None,
                credentials_ref=DEFAULT_CREDENTIALS_REF,
            )
            for index, zone in enumerate(spec.zones or [])
        ]
    spec.zones = None
    spec.domain = None
    spec.account = None
    spec.management_api_endpoint = None


def default_machine(machine: CloudStackMachineConfig) -> None:
    machine.spec.users = default_users(machine.spec.users, DEFAULT_USER)


# --- static validation -----------------------------------------------------------------------------


def _validate_identifier(
    errors: ErrorList,
    path: str,
    ident: CloudStackResourceIdentifier | CloudStackZone | None,
    what: str,
    note: str = "",
) -> None:
    if ident is None or not (ident.id or ident.name):
        errors.add(path, f"{what} is required: give its name or id{note}")
        return
    if ident.id and not is_uuid(ident.id):
        errors.add(
            f"{path}.id", f"{ident.id!r} is not a CloudStack id; ids are UUIDs (or give the name instead)"
        )


def _validate_endpoint_url(errors: ErrorList, path: str, url: str | None) -> None:
    if not url:
        errors.add(
            path, "managementApiEndpoint is required, e.g. https://cloudstack.example.com:8080/client/api"
        )
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors.add(
            path, f"{url!r} is not a valid URL; give e.g. https://cloudstack.example.com:8080/client/api"
        )


def validate_datacenter(datacenter: CloudStackDatacenterConfig) -> list[FieldError]:
    errors = ErrorList(datacenter.ref)
    spec = datacenter.spec
    for field, value in (
        ("account", spec.account),
        ("domain", spec.domain),
        ("managementApiEndpoint", spec.management_api_endpoint),
        ("zones", spec.zones),
    ):
        if value:
            errors.add(
                f"spec.{field}",
                f"{field} is deprecated and must be empty here; set it in each entry of availabilityZones",
            )
    zones = spec.availability_zones or []
    if not zones:
        errors.add("spec.availabilityZones", "at least one availability zone is required")
    seen: set[str] = set()
    for index, az in enumerate(zones):
        path = f"spec.availabilityZones[{index}]"
        if not az.name:
            errors.add(f"{path}.name", "an availability zone name is required")
        elif az.name in seen:
            errors.add(f"{path}.name", f"availability zone names must be unique; {az.name!r} is used twice")
        else:
            seen.add(az.name)
        if not az.credentials_ref:
            errors.add(
                f"{path}.credentialsRef",
                "credentialsRef is required: the profile holding this zone's credentials",
            )
        if not az.domain:
            detail = " (an account is only valid within a domain)" if az.account else ""
            errors.add(f"{path}.domain", f"domain is required; use ROOT for the root domain{detail}")
        _validate_endpoint_url(errors, f"{path}.managementApiEndpoint", az.management_api_endpoint)
        _validate_identifier(errors, f"{path}.zone", az.zone, "zone")
        _validate_identifier(errors, f"{path}.zone.network", az.zone.network if az.zone else None, "network")
    return errors.errors


def _validate_disk_offering(errors: ErrorList, spec: CloudStackMachineConfigSpec) -> None:
    disk = spec.disk_offering
    if disk is None:
        return
    path = "spec.diskOffering"
    if disk.custom_size_in_gb is not None and disk.custom_size_in_gb < 0:
        errors.add(f"{path}.customSizeInGB", "must be 0 (the offering's size) or a positive size in GB")
    if disk.id or disk.name:
        if disk.id and not is_uuid(disk.id):
            errors.add(
                f"{path}.id", f"{disk.id!r} is not a CloudStack id; ids are UUIDs (or give the name instead)"
            )
        if not disk.mount_path or len(disk.mount_path) < 2 or not disk.mount_path.startswith("/"):
            errors.add(f"{path}.mountPath", "must be an absolute path other than /, e.g. /data")
        for field, value in (("filesystem", disk.filesystem), ("device", disk.device), ("label", disk.label)):
            if not value:
                errors.add(f"{path}.{field}", f"{field} is required when a disk offering is given")
    elif disk.mount_path or disk.filesystem or disk.device or disk.label:
        errors.add(
            path, "a disk offering id or name is required when mountPath, device, filesystem or label is set"
        )


def _validate_symlinks(errors: ErrorList, symlinks: dict[str, str] | None) -> None:
    for link, target in (symlinks or {}).items():
        for path in (link, target):
            if not path.startswith("/") or path.endswith("/"):
                errors.add(f"spec.symlinks[{link}]", f"{path!r} must start with / and must not end with /")
            elif not _PORTABLE_PATH.match(path):
                errors.add(
                    f"spec.symlinks[{link}]",
                    f"{path!r} has characters outside the portable file name set (letters, digits, . _ - /)",
                )


def validate_machine(machine: CloudStackMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    spec = machine.spec
    no_default = " (CloudStack has no default)"
    _validate_identifier(errors, "spec.computeOffering", spec.compute_offering, "computeOffering", no_default)
    _validate_identifier(errors, "spec.template", spec.template, "template", no_default)
    _validate_disk_offering(errors, spec)
    for key in RESTRICTED_USER_CUSTOM_DETAILS:
        if spec.user_custom_details and key in spec.user_custom_details:
            errors.add(
                f"spec.userCustomDetails[{key}]",
                f"{key!r} is a detail CloudStack manages; it cannot be given as a custom detail",
            )
    if spec.affinity and spec.affinity_group_ids:
        errors.add(
            "spec.affinity", "affinity and affinityGroupIds cannot both be set; give one of them or neither"
        )
    if spec.affinity and spec.affinity not in AFFINITY_TYPES:
        errors.add(
            "spec.affinity",
            f"{spec.affinity!r} is not an affinity type; use one of {', '.join(AFFINITY_TYPES)}",
        )
    for index, group_id in enumerate(spec.affinity_group_ids or []):
        if not is_uuid(group_id):
            errors.add(
                f"spec.affinityGroupIds[{index}]", f"{group_id!r} is not an affinity group id (a UUID)"
            )
    _validate_symlinks(errors, spec.symlinks)
    validate_users(errors, spec.users)
    return errors.errors


def create_checks(config: ClusterConfig) -> list[FieldError]:
    """What EKS Anywhere's CloudStack provider validator refuses when a cluster is created, short of
    asking CloudStack: a control plane endpoint that is not ``host[:port]``, and template names that
    do not carry the Kubernetes version of their machines (a template given by id only is resolved,
    and checked, against CloudStack)."""
    cluster = config.cluster
    errors = ErrorList(cluster.ref)
    control_plane = cluster.spec.control_plane_configuration
    host = control_plane.endpoint.host if control_plane and control_plane.endpoint else None
    if host:
        parsed = split_host_port(host, DEFAULT_CONTROL_PLANE_PORT)
        if isinstance(parsed, str):
            errors.add(ENDPOINT_HOST, f"{host!r} is not valid: {parsed}")
    for machine, wanted in versioned_machines(config, CloudStackMachineConfig):
        template = machine.spec.template.name if machine.spec.template else None
        if template and not name_has_kube_version(template, wanted):
            errors.errors.append(
                FieldError(
                    machine.ref,
                    "spec.template.name",
                    f"template {template!r} does not name Kubernetes {wanted}; template names must include "
                    f"the version they were built for (e.g. ubuntu-2204-kube-{wanted.replace('.', '-')})",
                )
            )
    return errors.errors


# --- updates ----------------------------------------------------------------------------------------


def _is_capc_az_conversion(old: CloudStackDatacenterConfigSpec, new: CloudStackDatacenterConfigSpec) -> bool:
    """Upgrading CAPC v1beta1 to v1beta2 renames default-az-N zones to UUIDs; that change is allowed."""
    old_zones, new_zones = old.availability_zones or [], new.availability_zones or []
    return (
        len(old_zones) == len(new_zones)
        and all((az.name or "").startswith(DEFAULT_AZ_PREFIX) for az in old_zones)
        and all(_CAPC_CONVERTED_AZ_NAME.match(az.name or "") for az in new_zones)
    )


def _az_key(az: CloudStackAvailabilityZone) -> tuple[str, ...]:
    """What makes two availability zones equal: unset and empty strings are the same."""
    zone = az.zone or CloudStackZone()
    network = zone.network or CloudStackResourceIdentifier()
    values = (az.name, az.credentials_ref, az.domain, az.account, az.management_api_endpoint)
    return tuple(v or "" for v in (*values, zone.id, zone.name, network.id, network.name))


def datacenter_update(old: CloudStackDatacenterConfig, new: CloudStackDatacenterConfig) -> list[FieldError]:
    """Availability zones may be added or removed, not changed, and one must stay."""
    if is_paused(old):
        return []
    old, new = old.model_copy(deep=True), new.model_copy(deep=True)
    default_datacenter(old)
    default_datacenter(new)
    if _is_capc_az_conversion(old.spec, new.spec):
        return []
    errors = ErrorList(new.ref)
    old_by_name = {az.name: az for az in old.spec.availability_zones or []}
    shared = False
    for index, az in enumerate(new.spec.availability_zones or []):
        previous = old_by_name.get(az.name)
        if previous is None:
            continue
        shared = True
        if _az_key(previous) != _az_key(az):
            errors.add(
                f"spec.availabilityZones[{index}]",
                f"availability zone {az.name!r} is immutable; add a new zone instead of changing this one",
            )
    if not shared:
        errors.add(
            "spec.availabilityZones",
            "at least one availability zone must be kept unchanged from the previous configuration",
        )
    return errors.errors


def machine_update(old: CloudStackMachineConfig, new: CloudStackMachineConfig) -> list[FieldError]:
    if is_paused(old):
        return []
    return [
        *immutable(new.ref, "spec.affinity", old.spec.affinity or None, new.spec.affinity or None),
        *immutable(
            new.ref,
            "spec.affinityGroupIds",
            old.spec.affinity_group_ids or [],
            new.spec.affinity_group_ids or [],
        ),
    ]


# --- generate clusterconfig ----------------------------------------------------------------------


def sample(cluster_name: str) -> ProviderSample:
    datacenter = CloudStackDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=CloudStackDatacenterConfigSpec(
            availability_zones=[
                CloudStackAvailabilityZone(
                    name="az-1",
                    credentials_ref=DEFAULT_CREDENTIALS_REF,
                    domain="ROOT",
                    account="admin",
                    management_api_endpoint="https://cloudstack.example.com:8080/client/api",
                    zone=CloudStackZone(
                        name="zone1", network=CloudStackResourceIdentifier(name="guest-net-1")
                    ),
                )
            ]
        ),
    )

    def machine(name: str, offering: str) -> CloudStackMachineConfig:
        return CloudStackMachineConfig(
            metadata=ObjectMeta(name=name),
            spec=CloudStackMachineConfigSpec(
                # By id: a template name would have to carry the cluster's Kubernetes version.
                template=CloudStackResourceIdentifier(id="8f4b1a52-4c3e-4f0d-9a6b-2d7e5c1f3a90"),
                compute_offering=CloudStackResourceIdentifier(name=offering),
                users=[UserConfiguration(name=DEFAULT_USER, ssh_authorized_keys=["ssh-rsa AAAA..."])],
            ),
        )

    return ProviderSample(
        datacenter=datacenter,
        control_plane_machine=machine(f"{cluster_name}-cp", "Large Instance"),
        worker_machine=machine(cluster_name, "Medium Instance"),
        endpoint_host="10.0.0.10",
    )


RULES = ProviderRules(
    name="cloudstack",
    datacenter_kind=CloudStackDatacenterConfig,
    machine_kind=CloudStackMachineConfig,
    sample=sample,
    endpoint_required=True,
    control_plane_only_allowed=False,
    in_place_upgrade_allowed=False,
    kindnetd_allowed=False,
    default_datacenter=default_datacenter,
    default_machine=default_machine,
    validate_datacenter=validate_datacenter,
    validate_machine=validate_machine,
    create_checks=create_checks,
    datacenter_update=datacenter_update,
    machine_update=machine_update,
)
