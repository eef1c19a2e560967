"""Specification rules of the ``nutanix`` provider (EKS Anywhere's Nutanix kinds).

What is checked here needs no Prism Central: the endpoint, port, credentials reference and trust
bundle; identifiers (``type`` uuid or name, and the matching value); failure domains; CCM node IP
exclusions; VM sizes against EKS Anywhere's minimums; GPUs, boot type and OS family. What EKS
Anywhere's Nutanix provider validator checks across objects when a cluster is created, short of
asking Prism Central (a control plane endpoint that is an IP, no rollout strategy, image names
carrying the Kubernetes version, GPUs on worker machines only, failure domains naming real worker
groups), is in ``create_checks``.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._machine import (
    CONTROL_PLANE_ANNOTATION,
    ETCD_ANNOTATION,
    MANAGED_BY_ANNOTATION,
    default_users,
    endpoint_must_be_ip,
    is_certificates_der,
    is_paused,
    is_uuid,
    name_has_kube_version,
    pem_blocks,
    validate_users,
    versioned_machines,
)
from anywhere.api.infra._rules import ProviderRules, ProviderSample, immutable
from anywhere.api.v1alpha1._base import ObjectMeta, Ref
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.nutanix import (
    NutanixDatacenterConfig,
    NutanixDatacenterConfigSpec,
    NutanixMachineConfig,
    NutanixMachineConfigSpec,
    NutanixResourceIdentifier,
)

IDENTIFIER_TYPES = ("uuid", "name")
GPU_IDENTIFIER_TYPES = ("deviceID", "name")
BOOT_TYPES = ("legacy", "uefi")
OS_FAMILIES = ("ubuntu", "redhat")
DEFAULT_OS_FAMILY = "ubuntu"
DEFAULT_USER = "eksa"
DEFAULT_PORT = 9440
SECRET_KIND = "Secret"
DEFAULT_CREDENTIALS_NAME = "nutanix-credentials"
MIN_VCPU_SOCKETS = 2
MIN_VCPUS_PER_SOCKET = 1
MIN_MEMORY_SIZE = "4Gi"
MIN_SYSTEM_DISK_SIZE = "40Gi"

_FAILURE_DOMAIN_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


# --- helpers ----------------------------------------------------------------------------------------


def parse_quantity(text: str) -> Decimal | None:
    """A Kubernetes resource quantity (``4Gi``, ``4096Mi``, ``1e9``, ``500m``) as a number, or None."""
    match = _QUANTITY.match(text.strip())
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        return None
    if exponent:
        return value.scaleb(int(exponent[1:]))
    if suffix in _BINARY:
        return value * (Decimal(1024) ** _BINARY[suffix])
    return value.scaleb(_DECIMAL[suffix or ""])


def trust_bundle_problem(bundle: str) -> str | None:
    """Why a PEM trust bundle is unusable (its first block must hold certificates), or None."""
    blocks = pem_blocks(bundle)
    if not blocks:
        return "could not find a PEM block in the certificate"
    label, der = blocks[0]
    if der is None:
        return "the PEM block is not valid base64"
    if not is_certificates_der(der):
        return f"the PEM block ({label}) does not hold an X.509 certificate"
    return None


def ip_list_entry_problem(entry: str) -> str | None:
    """Why a ccmExcludeNodeIPs entry (IP, CIDR or start-end range) is not valid, or None."""
    text = entry.strip()
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"{text!r} is not a valid CIDR"
        return None
    if "-" in text:
        parts = text.split("-")
        if len(parts) != 2:
            return f"{text!r} is not a valid IP range; give start-end"
        try:
            start = ipaddress.ip_address(parts[0].strip())
        except ValueError:
            return f"{parts[0].strip()!r} is not a valid start IP address"
        try:
            end = ipaddress.ip_address(parts[1].strip())
        except ValueError:
            return f"{parts[1].strip()!r} is not a valid end IP address"
        if start.version != end.version:
            return f"range {text!r} mixes IPv4 and IPv6 addresses"
        if int(start) > int(end):
            return f"start IP address {start} is greater than end IP address {end}"
        return None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return f"{text!r} is not a valid IP address"
    return None


def validate_identifier(
    errors: ErrorList, path: str, ident: NutanixResourceIdentifier | None, what: str
) -> None:
    """A Prism resource identifier: a known ``type`` and the value it names."""
    if ident is None:
        errors.add(path, f"{what} is required: give type (uuid or name) and the {what}'s uuid or name")
        return
    if ident.type not in IDENTIFIER_TYPES:
        shown = "missing" if not ident.type else f"{ident.type!r} is not valid"
        errors.add(f"{path}.type", f"identifier type for the {what} is {shown}; use uuid or name")
        return
    if ident.type == "name" and not ident.name:
        errors.add(f"{path}.name", f"the {what} name is required when type is name")
    if ident.type == "uuid":
        if not ident.uuid:
            errors.add(f"{path}.uuid", f"the {what} uuid is required when type is uuid")
        elif not is_uuid(ident.uuid):
            errors.add(f"{path}.uuid", f"{ident.uuid!r} is not a UUID")


# --- defaults --------------------------------------------------------------------------------------


def default_datacenter(datacenter: NutanixDatacenterConfig) -> None:
    if datacenter.spec.credential_ref is None:
        datacenter.spec.credential_ref = Ref(kind=SECRET_KIND, name=DEFAULT_CREDENTIALS_NAME)


def default_machine(machine: NutanixMachineConfig) -> None:
    spec = machine.spec
    spec.users = default_users(spec.users, DEFAULT_USER)
    if not spec.os_family:
        spec.os_family = DEFAULT_OS_FAMILY


# --- static validation -----------------------------------------------------------------------------


def validate_datacenter(datacenter: NutanixDatacenterConfig) -> list[FieldError]:
    errors = ErrorList(datacenter.ref)
    spec = datacenter.spec
    if not spec.endpoint:
        errors.add("spec.endpoint", "endpoint is required: the Prism Central address (FQDN or IP)")
    if not spec.port:
        errors.add("spec.port", f"port is required (Prism Central listens on {DEFAULT_PORT})")
    elif not 1 <= spec.port <= 65535:
        errors.add("spec.port", f"port {spec.port} is out of range; give a port from 1 to 65535")
    if spec.additional_trust_bundle:
        problem = trust_bundle_problem(spec.additional_trust_bundle)
        if problem:
            errors.add("spec.additionalTrustBundle", f"additionalTrustBundle is not valid: {problem}")
    ref = spec.credential_ref
    if ref is None:
        errors.add(
            "spec.credentialRef", "credentialRef is required: the Secret holding Prism Central credentials"
        )
    else:
        if ref.kind != SECRET_KIND:
            errors.add(
                "spec.credentialRef.kind",
                f"credentialRef kind {ref.kind!r} is not allowed; it must be Secret",
            )
        if not ref.name:
            errors.add("spec.credentialRef.name", "credentialRef name is required")
    seen: set[str] = set()
    for index, domain in enumerate(spec.failure_domains or []):
        path = f"spec.failureDomains[{index}]"
        name = domain.name or ""
        if not _FAILURE_DOMAIN_NAME.match(name) or len(name) > 64:
            errors.add(
                f"{path}.name",
                f"failure domain name {name!r} is not valid: use 1 to 64 lower-case letters, digits and "
                "hyphens, starting and ending with a letter or digit",
            )
        elif name in seen:
            errors.add(f"{path}.name", f"failure domain names must be unique; {name!r} is used twice")
        seen.add(name)
        validate_identifier(errors, f"{path}.cluster", domain.cluster, "Prism Element cluster")
        if not domain.subnets:
            errors.add(f"{path}.subnets", "at least one subnet is required")
        for sub_index, subnet in enumerate(domain.subnets or []):
            validate_identifier(errors, f"{path}.subnets[{sub_index}]", subnet, "subnet")
    for index, entry in enumerate(spec.ccm_exclude_node_ips or []):
        problem = ip_list_entry_problem(entry)
        if problem:
            errors.add(
                f"spec.ccmExcludeNodeIPs[{index}]", f"{problem}; give an IP, a CIDR or a start-end range"
            )
    return errors.errors


def _validate_size(errors: ErrorList, field: str, value: str | None, minimum: str) -> None:
    if not value:
        errors.add(f"spec.{field}", f"{field} is required (at least {minimum})")
        return
    size = parse_quantity(value)
    if size is None:
        errors.add(f"spec.{field}", f"{value!r} is not a quantity; give a size such as {minimum}")
    elif size < (parse_quantity(minimum) or 0):
        errors.add(f"spec.{field}", f"{value} is too small; {field} must be at least {minimum}")


def validate_machine(machine: NutanixMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    spec = machine.spec
    validate_identifier(errors, "spec.subnet", spec.subnet, "subnet")
    validate_identifier(errors, "spec.cluster", spec.cluster, "Prism Element cluster")
    validate_identifier(errors, "spec.image", spec.image, "image")
    if spec.project is not None:
        validate_identifier(errors, "spec.project", spec.project, "project")
    for index, category in enumerate(spec.additional_categories or []):
        if not category.key:
            errors.add(f"spec.additionalCategories[{index}].key", "category key is required")
        if not category.value:
            errors.add(
                f"spec.additionalCategories[{index}].value",
                f"category value is required (key {category.key!r})",
            )
    for field, value, minimum in (
        ("vcpuSockets", spec.vcpu_sockets, MIN_VCPU_SOCKETS),
        ("vcpusPerSocket", spec.vcpus_per_socket, MIN_VCPUS_PER_SOCKET),
    ):
        if value is None:
            errors.add(f"spec.{field}", f"{field} is required (at least {minimum})")
        elif value < minimum:
            errors.add(f"spec.{field}", f"{field} is {value}; it must be at least {minimum}")
    _validate_size(errors, "memorySize", spec.memory_size, MIN_MEMORY_SIZE)
    _validate_size(errors, "systemDiskSize", spec.system_disk_size, MIN_SYSTEM_DISK_SIZE)
    if spec.os_family is not None and spec.os_family not in OS_FAMILIES:
        errors.add(
            "spec.osFamily", f"{spec.os_family!r} is not supported; use one of {', '.join(OS_FAMILIES)}"
        )
    if spec.boot_type and spec.boot_type not in BOOT_TYPES:
        errors.add(
            "spec.bootType",
            f"boot type {spec.boot_type!r} is not supported; use one of {', '.join(BOOT_TYPES)}",
        )
    for index, gpu in enumerate(spec.gpus or []):
        path = f"spec.gpus[{index}]"
        if not gpu.type:
            errors.add(f"{path}.type", "GPU type is required; use deviceID or name")
        elif gpu.type not in GPU_IDENTIFIER_TYPES:
            errors.add(f"{path}.type", f"GPU identifier type {gpu.type!r} is not valid; use deviceID or name")
        elif gpu.type == "deviceID" and gpu.device_id is None:
            errors.add(f"{path}.deviceID", "GPU deviceID is required when type is deviceID")
        elif gpu.type == "name" and not gpu.name:
            errors.add(f"{path}.name", "GPU name is required when type is name")
    validate_users(errors, spec.users)
    return errors.errors


def create_checks(config: ClusterConfig) -> list[FieldError]:
    """What EKS Anywhere's Nutanix provider validator refuses across objects when a cluster is
    created, short of asking Prism Central: a control plane endpoint that is not an IP, a customised
    rollout strategy, image names that do not carry the Kubernetes version of their machines (an
    image given by uuid is resolved, and checked, against Prism Central), GPUs on machines that are
    not workers, and failure domains naming what is not a worker group's machine config or spreading
    a group over fewer domains than it has machines."""
    cluster = config.cluster
    errors = ErrorList(cluster.ref)
    spec = cluster.spec
    errors.extend(endpoint_must_be_ip(cluster, "Nutanix needs the control plane endpoint as an IP"))
    control_plane = spec.control_plane_configuration
    unsupported = "upgrade rollout strategy customization is not supported for the nutanix provider"
    if control_plane and control_plane.upgrade_rollout_strategy is not None:
        errors.add("spec.controlPlaneConfiguration.upgradeRolloutStrategy", unsupported)
    for index, group in enumerate(cluster.worker_groups):
        if group.upgrade_rollout_strategy is not None:
            errors.add(f"spec.workerNodeGroupConfigurations[{index}].upgradeRolloutStrategy", unsupported)

    for machine, wanted in versioned_machines(config, NutanixMachineConfig):
        image = machine.spec.image
        if image is None or image.type != "name" or not image.name:
            continue
        if not name_has_kube_version(image.name, wanted):
            errors.errors.append(
                FieldError(
                    machine.ref,
                    "spec.image.name",
                    f"image {image.name!r} does not name Kubernetes {wanted}; image names must include the "
                    f"version they were built for (e.g. ubuntu-2204-kube-{wanted.replace('.', '-')})",
                )
            )

    cp_name = (
        control_plane.machine_group_ref.name if control_plane and control_plane.machine_group_ref else None
    )
    etcd = spec.external_etcd_configuration
    etcd_name = etcd.machine_group_ref.name if etcd and etcd.machine_group_ref else None
    worker_refs = {g.machine_group_ref.name: g for g in cluster.worker_groups if g.machine_group_ref}
    for obj in config.of_kind(NutanixMachineConfig.KIND):
        if not isinstance(obj, NutanixMachineConfig) or not obj.spec.gpus:
            continue
        if obj.name == cp_name:
            errors.errors.append(
                FieldError(obj.ref, "spec.gpus", "GPUs are not supported for control plane machines")
            )
        elif etcd_name and obj.name == etcd_name:
            errors.errors.append(
                FieldError(obj.ref, "spec.gpus", "GPUs are not supported for external etcd machines")
            )
        elif obj.name not in worker_refs:
            errors.errors.append(
                FieldError(
                    obj.ref,
                    "spec.gpus",
                    "GPUs are only for worker machines; no worker node group uses this config",
                )
            )

    datacenter = config.datacenter
    if isinstance(datacenter, NutanixDatacenterConfig):
        domains = datacenter.spec.failure_domains or []
        for index, domain in enumerate(domains):
            for group_index, group_name in enumerate(domain.worker_machine_groups or []):
                path = f"spec.failureDomains[{index}].workerMachineGroups[{group_index}]"
                worker = worker_refs.get(group_name)
                if worker is None:
                    message = f"{group_name!r} is not the machine config of any worker node group"
                    errors.errors.append(FieldError(datacenter.ref, path, message))
                elif worker.count is not None and worker.count > len(domains):
                    message = (
                        f"worker node group {worker.name!r} has {worker.count} machines, more than the "
                        f"{len(domains)} failure domains they are spread across"
                    )
                    errors.errors.append(FieldError(datacenter.ref, path, message))
    return errors.errors


# --- updates ----------------------------------------------------------------------------------------


def datacenter_update(old: NutanixDatacenterConfig, new: NutanixDatacenterConfig) -> list[FieldError]:
    if is_paused(old):
        return []
    errors = immutable(new.ref, "spec.endpoint", old.spec.endpoint, new.spec.endpoint)
    if new.spec.credential_ref is None and old.spec.credential_ref is not None:
        errors.append(FieldError(new.ref, "spec.credentialRef", "credentialRef cannot be removed once set"))
    return errors


def _same_size(old: str | None, new: str | None) -> bool:
    old_value, new_value = parse_quantity(old or ""), parse_quantity(new or "")
    if old_value is not None and new_value is not None:
        return old_value == new_value
    return old == new


def machine_update(old: NutanixMachineConfig, new: NutanixMachineConfig) -> list[FieldError]:
    """OS family, boot type, cluster and subnet never change; a management cluster's control plane
    and etcd machines also keep their size and users."""
    if is_paused(old):
        return []
    annotations = old.annotations
    old, new = old.model_copy(deep=True), new.model_copy(deep=True)
    default_machine(old)
    default_machine(new)
    ref = new.ref
    errors = [
        *immutable(ref, "spec.bootType", old.spec.boot_type or None, new.spec.boot_type or None),
        *immutable(ref, "spec.osFamily", old.spec.os_family, new.spec.os_family),
        *immutable(ref, "spec.cluster", old.spec.cluster, new.spec.cluster),
        *immutable(ref, "spec.subnet", old.spec.subnet, new.spec.subnet),
    ]
    if annotations.get(MANAGED_BY_ANNOTATION):
        return errors  # a workload cluster's machines may be resized
    if annotations.get(CONTROL_PLANE_ANNOTATION) != "true" and annotations.get(ETCD_ANNOTATION) != "true":
        return errors
    errors += immutable(ref, "spec.vcpuSockets", old.spec.vcpu_sockets, new.spec.vcpu_sockets)
    errors += immutable(ref, "spec.vcpusPerSocket", old.spec.vcpus_per_socket, new.spec.vcpus_per_socket)
    for field, before, after in (
        ("memorySize", old.spec.memory_size, new.spec.memory_size),
        ("systemDiskSize", old.spec.system_disk_size, new.spec.system_disk_size),
    ):
        if not _same_size(before, after):
            errors += immutable(ref, f"spec.{field}", before, after)
    errors += immutable(ref, "spec.users", old.spec.users, new.spec.users)
    return errors


# --- generate clusterconfig ----------------------------------------------------------------------


def sample(cluster_name: str) -> ProviderSample:
    datacenter = NutanixDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=NutanixDatacenterConfigSpec(
            endpoint="prism-central.example.com",
            port=DEFAULT_PORT,
            credential_ref=Ref(kind=SECRET_KIND, name=DEFAULT_CREDENTIALS_NAME),
        ),
    )

    def machine(name: str) -> NutanixMachineConfig:
        return NutanixMachineConfig(
            metadata=ObjectMeta(name=name),
            spec=NutanixMachineConfigSpec(
                os_family=DEFAULT_OS_FAMILY,
                users=[UserConfiguration(name=DEFAULT_USER, ssh_authorized_keys=["ssh-rsa AAAA..."])],
                vcpus_per_socket=MIN_VCPUS_PER_SOCKET,
                vcpu_sockets=MIN_VCPU_SOCKETS,
                memory_size=MIN_MEMORY_SIZE,
                system_disk_size=MIN_SYSTEM_DISK_SIZE,
                # By uuid: an image name would have to carry the cluster's Kubernetes version.
                image=NutanixResourceIdentifier(type="uuid", uuid="2c6e9f4a-7b1d-4e8a-9c3f-5a0b6d2e8f14"),
                cluster=NutanixResourceIdentifier(type="name", name="prism-element-1"),
                subnet=NutanixResourceIdentifier(type="name", name="vm-network"),
            ),
        )

    return ProviderSample(
        datacenter=datacenter,
        control_plane_machine=machine(f"{cluster_name}-cp"),
        worker_machine=machine(cluster_name),
        endpoint_host="10.0.0.10",
    )


RULES = ProviderRules(
    name="nutanix",
    datacenter_kind=NutanixDatacenterConfig,
    machine_kind=NutanixMachineConfig,
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
