"""Specification rules of the ``tinkerbell`` (bare metal) provider.

Static validation is what EKS Anywhere's own Tinkerbell kinds and Cluster validation check. What its
Tinkerbell provider validator checks when a cluster is created, short of looking at hardware (one OS
family, OS image URLs naming the Kubernetes version, rollout strategies, distinct Tinkerbell and
endpoint IPs, ...), is in ``create_checks``. Hardware inventory, BMC reachability and whether an IP is
already taken are checked by the provider when it runs. ``images_without_bundle`` is anywhere's own
rule on top: with no EKS Anywhere release bundle to take a Bottlerocket image from, every machine
config needs an ``osImageURL`` (or a template of its own).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, TypeVar
from urllib.parse import urlsplit

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._machine import (
    BOTTLEROCKET,
    IN_PLACE,
    REDHAT,
    ROLLING_UPDATE,
    UBUNTU,
    find_machine,
    in_place_needs_ubuntu,
    is_paused,
    name_has_kube_version,
    validate_host_os,
    validate_ssh_keys,
    versioned_machines,
)
from anywhere.api.infra._rules import ProviderRules, ProviderSample, immutable
from anywhere.api.v1alpha1._base import ObjectMeta, Ref
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.cluster import (
    Cluster,
    ControlPlaneConfiguration,
    Taint,
    WorkerNodeGroupConfiguration,
)
from anywhere.api.v1alpha1.tinkerbell import (
    LabelSelector,
    TinkerbellDatacenterConfig,
    TinkerbellDatacenterConfigSpec,
    TinkerbellMachineConfig,
    TinkerbellMachineConfigSpec,
    TinkerbellTemplateConfig,
)

OS_FAMILIES = (UBUNTU, BOTTLEROCKET, REDHAT)
DEFAULT_OS_FAMILY = BOTTLEROCKET
DEFAULT_USER = "ec2-user"
TEMPLATE_KIND = TinkerbellTemplateConfig.KIND
TEMPLATE_VERSION = "0.1"
# While the CLI runs an operation it may change fields that are otherwise fixed.
MANAGED_BY_CLI_ANNOTATION = "anywhere.eks.amazonaws.com/managed-by-cli"

LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_OPERATORS_WITH_VALUES = ("In", "NotIn")
_MAX_NAME_LENGTH = 200
_MIN_WORKERLESS_VERSION = (1, 22)
_UNSUPPORTED_VERSION = (1, 20)

_T = TypeVar("_T")

# --------------------------------------------------------------------------- defaults


def default_machine(machine: TinkerbellMachineConfig) -> None:
    """osFamily defaults to bottlerocket, the one OS whose images EKS Anywhere imports itself."""
    if not machine.spec.os_family:
        machine.spec.os_family = DEFAULT_OS_FAMILY


# --------------------------------------------------------------------------- datacenter


def validate_datacenter(datacenter: TinkerbellDatacenterConfig) -> list[FieldError]:
    errors = ErrorList(datacenter.ref)
    spec = datacenter.spec
    if not spec.tinkerbell_ip:
        errors.add("spec.tinkerbellIP", "tinkerbellIP is required: a free IP for the Tinkerbell stack")
    else:
        try:
            ipaddress.ip_address(spec.tinkerbell_ip)
        except ValueError:
            errors.add("spec.tinkerbellIP", f"{spec.tinkerbell_ip!r} is not a valid IP address")
    _check_url(errors, "spec.osImageURL", spec.os_image_url)
    _check_url(errors, "spec.hookImagesURLPath", spec.hook_images_url_path)
    if spec.hook_iso_url:
        if spec.iso_boot:
            _check_url(errors, "spec.hookIsoURL", spec.hook_iso_url)
        else:
            errors.add("spec.hookIsoURL", "hookIsoURL can only be set when isoBoot is true")
    return errors.errors


def datacenter_update(old: TinkerbellDatacenterConfig, new: TinkerbellDatacenterConfig) -> list[FieldError]:
    errors = immutable(new.ref, "spec.tinkerbellIP", old.spec.tinkerbell_ip, new.spec.tinkerbell_ip)
    if MANAGED_BY_CLI_ANNOTATION not in new.annotations:
        errors += immutable(
            new.ref, "spec.hookImagesURLPath", old.spec.hook_images_url_path, new.spec.hook_images_url_path
        )
        errors += immutable(
            new.ref,
            "spec.skipLoadBalancerDeployment",
            bool(old.spec.skip_load_balancer_deployment),
            bool(new.spec.skip_load_balancer_deployment),
        )
    return errors


# --------------------------------------------------------------------------- machine


def validate_machine(machine: TinkerbellMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    spec = machine.spec
    _validate_hardware_selection(errors, spec)

    if not spec.os_family:
        errors.add("spec.osFamily", f"osFamily is required; use one of {', '.join(OS_FAMILIES)}")
    elif spec.os_family not in OS_FAMILIES:
        errors.add(
            "spec.osFamily", f"{spec.os_family!r} is not supported; use one of {', '.join(OS_FAMILIES)}"
        )

    _check_url(errors, "spec.osImageURL", spec.os_image_url)

    ref = spec.template_ref
    if ref is not None:
        if ref.kind and ref.kind != TEMPLATE_KIND:
            errors.add(
                "spec.templateRef.kind",
                f"{ref.kind!r} is not supported; templateRef must name a {TEMPLATE_KIND}",
            )
        if ref.kind and not ref.name:
            errors.add(
                "spec.templateRef.name", f"name the {TEMPLATE_KIND} to use, or leave templateRef empty"
            )

    # Users may be left out: the CLI adds ec2-user and generates a key for users without one.
    for i, user in enumerate(spec.users or []):
        if not user.name:
            errors.add(f"spec.users[{i}].name", f"user name is required, e.g. {DEFAULT_USER}")
    validate_ssh_keys(errors, spec.users)

    validate_host_os(errors, "spec.hostOSConfiguration", spec.host_os_configuration, spec.os_family)
    return errors.errors


def _validate_hardware_selection(errors: ErrorList, spec: TinkerbellMachineConfigSpec) -> None:
    selector = spec.hardware_selector or {}
    affinity = spec.hardware_affinity
    if selector and affinity is not None:
        errors.add(
            "spec.hardwareAffinity", "hardwareSelector and hardwareAffinity are mutually exclusive; use one"
        )
        return
    if not selector and affinity is None:
        errors.add(
            "spec.hardwareSelector",
            "hardware selection is required: "
            "set hardwareSelector (one label, e.g. type: cp) or hardwareAffinity",
        )
        return
    if selector:
        if len(selector) != 1:
            errors.add(
                "spec.hardwareSelector",
                f"hardwareSelector must hold exactly one key-value pair, found {len(selector)}",
            )
        return
    assert affinity is not None
    if not affinity.required:
        errors.add("spec.hardwareAffinity.required", "hardwareAffinity.required must have at least one term")
    for i, required in enumerate(affinity.required or []):
        _validate_label_selector(
            errors, f"spec.hardwareAffinity.required[{i}].labelSelector", required.label_selector
        )
    for i, weighted in enumerate(affinity.preferred or []):
        path = f"spec.hardwareAffinity.preferred[{i}]"
        if weighted.weight is None or not 1 <= weighted.weight <= 100:
            errors.add(f"{path}.weight", f"weight must be between 1 and 100, got {weighted.weight}")
        term = weighted.hardware_affinity_term
        _validate_label_selector(
            errors, f"{path}.hardwareAffinityTerm.labelSelector", term.label_selector if term else None
        )


def _validate_label_selector(errors: ErrorList, path: str, selector: LabelSelector | None) -> None:
    if selector is None:
        return
    for j, expr in enumerate(selector.match_expressions or []):
        field = f"{path}.matchExpressions[{j}]"
        if expr.operator not in LABEL_OPERATORS:
            errors.add(
                f"{field}.operator",
                f"{expr.operator!r} is not a label selector operator; "
                f"use one of {', '.join(LABEL_OPERATORS)}",
            )
        elif expr.operator in _OPERATORS_WITH_VALUES and not expr.values:
            errors.add(f"{field}.values", f"operator {expr.operator} needs at least one value")
        elif expr.operator not in _OPERATORS_WITH_VALUES and expr.values:
            errors.add(f"{field}.values", f"operator {expr.operator} takes no values")


def machine_update(old: TinkerbellMachineConfig, new: TinkerbellMachineConfig) -> list[FieldError]:
    """osFamily and the first user (name and first key) are fixed once machines exist."""
    ref = new.ref
    errors = immutable(ref, "spec.osFamily", old.spec.os_family, new.spec.os_family)
    old_users, new_users = old.spec.users or [], new.spec.users or []
    errors += immutable(ref, "spec.users", len(old_users), len(new_users))
    if old_users and new_users:
        errors += immutable(ref, "spec.users[0].name", old_users[0].name, new_users[0].name)
        old_keys = old_users[0].ssh_authorized_keys or []
        new_keys = new_users[0].ssh_authorized_keys or []
        errors += immutable(ref, "spec.users[0].sshAuthorizedKeys", len(old_keys), len(new_keys))
        if old_keys and new_keys:
            errors += immutable(ref, "spec.users[0].sshAuthorizedKeys[0]", old_keys[0], new_keys[0])
    return errors


# --------------------------------------------------------------------------- template


def validate_template(template_config: TinkerbellTemplateConfig) -> list[FieldError]:
    """The checks Tinkerbell applies when it parses a workflow template, all at once."""
    errors = ErrorList(template_config.ref)
    workflow = template_config.spec.template
    if workflow is None:
        errors.add("spec.template", "template is required: a Tinkerbell workflow with at least one task")
        return errors.errors
    _check_name(errors, "spec.template.name", workflow.name, "template")
    if workflow.version != TEMPLATE_VERSION:
        errors.add(
            "spec.template.version",
            f"template version must be {TEMPLATE_VERSION!r}, got {workflow.version!r}",
        )
    if workflow.global_timeout is not None and workflow.global_timeout < 0:
        errors.add("spec.template.global_timeout", "global_timeout cannot be negative")
    if not workflow.tasks:
        errors.add("spec.template.tasks", "template must have at least one task")
    task_names: set[str] = set()
    for i, task in enumerate(workflow.tasks or []):
        path = f"spec.template.tasks[{i}]"
        _check_unique_name(errors, f"{path}.name", task.name, task_names, "task", "template")
        if not task.worker:
            errors.add(
                f"{path}.worker", "worker is required, e.g. '{{.device_1}}' (the machine being provisioned)"
            )
        action_names: set[str] = set()
        for j, action in enumerate(task.actions or []):
            action_path = f"{path}.actions[{j}]"
            _check_unique_name(errors, f"{action_path}.name", action.name, action_names, "action", "task")
            if not action.image:
                errors.add(f"{action_path}.image", "action image is required")
            elif not valid_image_reference(action.image):
                errors.add(
                    f"{action_path}.image", f"{action.image!r} is not a valid container image reference"
                )
            if action.timeout is not None and action.timeout < 0:
                errors.add(f"{action_path}.timeout", "timeout cannot be negative (seconds)")
    return errors.errors


def _check_name(errors: ErrorList, field: str, name: str | None, what: str) -> None:
    if not name:
        errors.add(field, f"{what} name is required")
    elif len(name) >= _MAX_NAME_LENGTH:
        errors.add(field, f"{what} name must be shorter than {_MAX_NAME_LENGTH} characters")


def _check_unique_name(
    errors: ErrorList, field: str, name: str | None, seen: set[str], what: str, where: str
) -> None:
    """A named ``what`` whose name no other ``what`` of the same ``where`` has."""
    _check_name(errors, field, name, what)
    if name:
        if name in seen:
            errors.add(field, f"two {what}s in a {where} cannot have the same name ({name!r})")
        seen.add(name)


# --------------------------------------------------------------------------- cluster-wide


def validate_cluster(config: ClusterConfig) -> list[FieldError]:
    """What EKS Anywhere's Cluster validation checks of a bare metal cluster (no external etcd; a
    cluster without workers needs Kubernetes 1.22 and an untainted control plane), and that every
    templateRef names a template of the configuration."""
    datacenter = config.datacenter
    if not isinstance(datacenter, TinkerbellDatacenterConfig):
        return []
    cluster = config.cluster
    spec = cluster.spec
    errors = ErrorList(cluster.ref)
    version = _minor_version(spec.kubernetes_version)
    control_plane = spec.control_plane_configuration

    if spec.external_etcd_configuration is not None:
        errors.add(
            "spec.externalEtcdConfiguration",
            "external etcd is not supported on bare metal; remove it to run etcd on the control plane nodes",
        )
    if not cluster.worker_groups:
        if version is not None and version < _MIN_WORKERLESS_VERSION:
            errors.add(
                "spec.workerNodeGroupConfigurations",
                f"a cluster without worker node groups needs Kubernetes 1.22 or later "
                f"(kubernetesVersion is {spec.kubernetes_version})",
            )
        if control_plane is not None and control_plane.taints:
            errors.add(
                "spec.controlPlaneConfiguration.taints",
                "control plane nodes cannot be tainted when there are no worker node groups: "
                "every pod has to run on them",
            )

    found: list[FieldError] = []
    for machine in used_machines(config):
        ref = machine.spec.template_ref
        if (
            ref is not None
            and ref.name
            and (ref.kind or TEMPLATE_KIND) == TEMPLATE_KIND
            and not isinstance(config.get(TEMPLATE_KIND, ref.name), TinkerbellTemplateConfig)
        ):
            found.append(
                FieldError(
                    machine.ref,
                    "spec.templateRef.name",
                    f"{TEMPLATE_KIND} {ref.name!r} is not in the configuration",
                )
            )
    return _unique([*errors.errors, *found])


def create_checks(config: ClusterConfig) -> list[FieldError]:
    """What EKS Anywhere's Tinkerbell provider validator refuses when a cluster is created, short of
    looking at hardware: Kubernetes 1.20, a Tinkerbell IP equal to the control plane endpoint, a proxy
    without locally hosted HookOS images, machine configs outside the datacenter's namespace, more
    than one OS family, missing or misplaced OS image URLs and URLs not naming the Kubernetes version,
    InPlace upgrades off Ubuntu, different rollout types for the control plane and workers, and
    autoscaling with InPlace upgrades."""
    datacenter = config.datacenter
    if not isinstance(datacenter, TinkerbellDatacenterConfig):
        return []
    cluster = config.cluster
    spec = cluster.spec
    errors = ErrorList(cluster.ref)
    found: list[FieldError] = []
    control_plane = spec.control_plane_configuration

    if _minor_version(spec.kubernetes_version) == _UNSUPPORTED_VERSION:
        errors.add("spec.kubernetesVersion", "Kubernetes 1.20 is not supported on bare metal")
    endpoint = control_plane.endpoint.host if control_plane and control_plane.endpoint else None
    if datacenter.spec.tinkerbell_ip and datacenter.spec.tinkerbell_ip == endpoint:
        found.append(
            FieldError(
                datacenter.ref,
                "spec.tinkerbellIP",
                f"tinkerbellIP {endpoint} is also the control plane endpoint "
                "(Cluster spec.controlPlaneConfiguration.endpoint.host); give them two distinct IPs",
            )
        )
    if spec.proxy_configuration is not None and not datacenter.spec.hook_images_url_path:
        found.append(
            FieldError(
                datacenter.ref,
                "spec.hookImagesURLPath",
                "a locally hosted hookImagesURLPath is required when the cluster uses a proxy "
                "(spec.proxyConfiguration)",
            )
        )

    cp_machine = _machine(config, control_plane.machine_group_ref if control_plane else None)
    groups = [_machine(config, group.machine_group_ref) for group in cluster.worker_groups]
    etcd = spec.external_etcd_configuration
    etcd_machine = _machine(config, etcd.machine_group_ref if etcd else None)
    used = used_machines(config)

    for machine in used:
        if machine.namespace != datacenter.namespace:
            found.append(
                FieldError(
                    machine.ref,
                    "metadata.namespace",
                    f"namespace {machine.namespace!r} must match the namespace of {datacenter.ref} "
                    f"({datacenter.namespace!r})",
                )
            )

    cp_family = cp_machine.spec.os_family if cp_machine else None
    if cp_machine is not None and cp_family:
        others = [(m, "worker node group") for m in groups] + [(etcd_machine, "etcd")]
        for other, role in others:
            if other is not None and other.spec.os_family and other.spec.os_family != cp_family:
                found.append(
                    FieldError(
                        other.ref,
                        "spec.osFamily",
                        f"{role} osFamily {other.spec.os_family!r} differs from the control plane's "
                        f"{cp_family!r} ({cp_machine.ref}); all machines of a cluster share one osFamily",
                    )
                )

    found += _os_image_errors(config, datacenter, used)

    def os_family_of(ref: Ref | None) -> tuple[str, str | None] | None:
        machine = _machine(config, ref)
        return (machine.ref, machine.spec.os_family) if machine is not None else None

    errors.errors.extend(in_place_needs_ubuntu(cluster, os_family_of))
    _rollout_rules(errors, cluster)
    return _unique([*errors.errors, *found])


def images_without_bundle(config: ClusterConfig) -> list[FieldError]:
    """The Bottlerocket machine configs in use that neither name an ``osImageURL`` (nor does the
    datacenter) nor bring a template: EKS Anywhere streams its release bundle's image to those, and
    anywhere has no release bundles. (Other OS families need the URL by EKS Anywhere's own rules.)"""
    datacenter = config.datacenter
    if not isinstance(datacenter, TinkerbellDatacenterConfig) or datacenter.spec.os_image_url:
        return []
    return [
        FieldError(
            machine.ref,
            "spec.osImageURL",
            f"osImageURL is required: anywhere has no EKS Anywhere release bundle to take the Bottlerocket "
            f"image from; set it here or on {datacenter.ref}, or name a TinkerbellTemplateConfig",
        )
        for machine in used_machines(config)
        if machine.spec.os_family == BOTTLEROCKET
        and not machine.spec.os_image_url
        and not (machine.spec.template_ref and machine.spec.template_ref.name)
    ]


def used_machines(config: ClusterConfig) -> list[TinkerbellMachineConfig]:
    """The machine configs the Cluster's control plane, worker groups and etcd refer to, once each."""
    spec = config.cluster.spec
    control_plane = spec.control_plane_configuration
    etcd = spec.external_etcd_configuration
    refs = [
        control_plane.machine_group_ref if control_plane else None,
        *(group.machine_group_ref for group in config.cluster.worker_groups),
        etcd.machine_group_ref if etcd else None,
    ]
    return _unique([m for m in (_machine(config, ref) for ref in refs) if m is not None])


def _os_image_errors(
    config: ClusterConfig, datacenter: TinkerbellDatacenterConfig, used: list[TinkerbellMachineConfig]
) -> list[FieldError]:
    found: list[FieldError] = []
    dc_url = datacenter.spec.os_image_url
    for machine in used:
        url = machine.spec.os_image_url
        if url and dc_url:
            found.append(
                FieldError(
                    machine.ref,
                    "spec.osImageURL",
                    f"osImageURL is also set on {datacenter.ref}; set it on the datacenter or on the "
                    "machine configs, not both",
                )
            )
        elif not url and not dc_url and machine.spec.os_family and machine.spec.os_family != BOTTLEROCKET:
            found.append(
                FieldError(
                    machine.ref,
                    "spec.osImageURL",
                    f"osImageURL is required for osFamily {machine.spec.os_family}: only bottlerocket images "
                    f"are imported automatically; set it here or on {datacenter.ref}",
                )
            )
    cluster = config.cluster
    cluster_version = cluster.spec.kubernetes_version
    if not cluster_version:
        return found
    if dc_url:
        versions = [
            cluster_version,
            *(g.kubernetes_version for g in cluster.worker_groups if g.kubernetes_version),
        ]
        for version in dict.fromkeys(versions):
            if not name_has_kube_version(dc_url, version):
                found.append(FieldError(datacenter.ref, "spec.osImageURL", _missing_version_message(version)))
        return found
    # Bottlerocket machines without a URL get the image of the release bundle.
    for machine, version in versioned_machines(config, TinkerbellMachineConfig, with_etcd=False):
        url = machine.spec.os_image_url
        if url and not name_has_kube_version(url, version):
            found.append(FieldError(machine.ref, "spec.osImageURL", _missing_version_message(version)))
    return found


def _rollout_rules(errors: ErrorList, cluster: Cluster) -> None:
    """Workers roll out as the control plane does; InPlace upgrades cannot autoscale."""
    control_plane = cluster.spec.control_plane_configuration
    cp_strategy = control_plane.upgrade_rollout_strategy if control_plane else None
    cp_type = (cp_strategy.type if cp_strategy else None) or ROLLING_UPDATE
    for i, group in enumerate(cluster.worker_groups):
        strategy = group.upgrade_rollout_strategy
        group_type = (strategy.type if strategy else None) or ROLLING_UPDATE
        path = f"spec.workerNodeGroupConfigurations[{i}]"
        if group_type != cp_type:
            errors.add(
                f"{path}.upgradeRolloutStrategy.type",
                f"upgrade rollout strategy {group_type} differs from the control plane's {cp_type}; "
                "they must be the same",
            )
        if cp_type == IN_PLACE and group.autoscaling_configuration is not None:
            errors.add(
                f"{path}.autoscalingConfiguration", "autoscaling is not supported with InPlace upgrades"
            )


# --------------------------------------------------------------------------- cluster updates


def cluster_update(old: Cluster, new: Cluster) -> list[FieldError]:
    """EKS Anywhere's webhook rules for changing a bare metal Cluster.

    Node labels and taints are fixed: those of the control plane, and those of every worker group
    that stays (groups are matched by name); a paused cluster lifts this, as it lifts every immutable
    field. While the Kubernetes version changes (a rolling upgrade), nothing may scale: the control
    plane keeps its count, and the worker groups their number, names and counts. EKS Anywhere's
    webhook applies this one to paused clusters too, so it is not skipped here for them.
    """
    errors = ErrorList(new.ref)
    old_groups = {group.name: group for group in old.worker_groups}
    if not is_paused(old):
        old_cp = old.spec.control_plane_configuration
        new_cp = new.spec.control_plane_configuration
        for field in ("labels", "taints"):
            errors.extend(
                immutable(
                    new.ref,
                    f"spec.controlPlaneConfiguration.{field}",
                    _node_setting(old_cp, field),
                    _node_setting(new_cp, field),
                )
            )
        for i, group in enumerate(new.worker_groups):
            before = old_groups.get(group.name)
            for field in ("labels", "taints") if before is not None else ():
                errors.extend(
                    immutable(
                        new.ref,
                        f"spec.workerNodeGroupConfigurations[{i}].{field}",
                        _node_setting(before, field),
                        _node_setting(group, field),
                    )
                )
    old_version, new_version = old.spec.kubernetes_version, new.spec.kubernetes_version
    if old_version is not None and new_version is not None and old_version != new_version:
        _no_scaling_during_upgrade(errors, old, new, old_groups)
    return errors.errors


def _node_setting(
    nodes: ControlPlaneConfiguration | WorkerNodeGroupConfiguration | None, field: str
) -> dict[str, str] | list[dict[str, Any]]:
    """The labels (a map) or taints (a list) of some nodes; unset and empty are the same."""
    if field == "labels":
        return dict(nodes.labels or {}) if nodes is not None else {}
    taints: list[Taint] = (nodes.taints if nodes is not None else None) or []
    return [taint.to_dict() for taint in taints]


def _no_scaling_during_upgrade(
    errors: ErrorList, old: Cluster, new: Cluster, old_groups: dict[str | None, WorkerNodeGroupConfiguration]
) -> None:
    upgrade = (
        "cannot perform scale up or down during rolling upgrades "
        f"(kubernetesVersion {old.spec.kubernetes_version} -> {new.spec.kubernetes_version})"
    )
    old_cp, new_cp = old.spec.control_plane_configuration, new.spec.control_plane_configuration
    old_count = old_cp.count if old_cp else None
    if old_count != (new_cp.count if new_cp else None):
        errors.add(
            "spec.controlPlaneConfiguration.count",
            f"{upgrade}; previous control plane node count {old_count}",
        )
    if len(old.worker_groups) != len(new.worker_groups):
        errors.add(
            "spec.workerNodeGroupConfigurations",
            f"{upgrade}; revert to the previous {len(old.worker_groups)} worker node groups",
        )
    for i, group in enumerate(new.worker_groups):
        before = old_groups.get(group.name)
        if before is None:
            errors.add(
                f"spec.workerNodeGroupConfigurations[{i}]",
                f"{upgrade}; remove the new worker node group {group.name!r}",
            )
        elif before.count != group.count:
            errors.add(
                f"spec.workerNodeGroupConfigurations[{i}].count",
                f"{upgrade}; previous worker node count {before.count}",
            )


# --------------------------------------------------------------------------- helpers


def _machine(config: ClusterConfig, ref: Ref | None) -> TinkerbellMachineConfig | None:
    return find_machine(config, TinkerbellMachineConfig, ref)


def _minor_version(version: str | None) -> tuple[int, int] | None:
    match = re.fullmatch(r"v?(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if match else None


def _missing_version_message(version: str) -> str:
    spellings = ", ".join(version.replace(".", sep) for sep in (".", "-", "_"))
    return f"osImageURL must name Kubernetes version {version} (as {spellings} or {version.replace('.', '')})"


def _unique(items: list[_T]) -> list[_T]:
    seen: list[_T] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# --------------------------------------------------------------------------- value checks


def _check_url(errors: ErrorList, field: str, value: str | None) -> None:
    if value and not valid_url(value):
        errors.add(field, f"{value!r} is not a valid URL; give an absolute URL such as http://host/path")


def valid_url(value: str) -> bool:
    """An absolute URL with a scheme and a host, and no whitespace."""
    if any(ch.isspace() for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", parts.scheme) and parts.netloc)


_DOMAIN_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?"
    rf"{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


def valid_image_reference(image: str) -> bool:
    """A container image reference: ``[registry[:port]/]path[:tag][@digest]``, lower-case path."""
    if not _IMAGE_REFERENCE.fullmatch(image):
        return False
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return len(name) <= 255


# --------------------------------------------------------------------------- sample


def sample(cluster_name: str) -> ProviderSample:
    datacenter = TinkerbellDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=TinkerbellDatacenterConfigSpec(tinkerbell_ip="10.80.8.91"),
    )

    def machine(name: str, role: str) -> TinkerbellMachineConfig:
        return TinkerbellMachineConfig(
            metadata=ObjectMeta(name=name),
            spec=TinkerbellMachineConfigSpec(
                hardware_selector={"type": role},
                os_family=DEFAULT_OS_FAMILY,
                template_ref=Ref(),
                # An empty key asks the CLI to generate a key pair for the user.
                users=[UserConfiguration(name=DEFAULT_USER, ssh_authorized_keys=[""])],
            ),
        )

    return ProviderSample(
        datacenter,
        machine(f"{cluster_name}-cp", "cp"),
        machine(cluster_name, "worker"),
        endpoint_host="10.80.8.90",
    )


RULES = ProviderRules(
    name="tinkerbell",
    datacenter_kind=TinkerbellDatacenterConfig,
    machine_kind=TinkerbellMachineConfig,
    sample=sample,
    endpoint_required=True,
    control_plane_only_allowed=True,
    in_place_upgrade_allowed=True,
    kindnetd_allowed=False,
    default_machine=default_machine,
    validate_datacenter=validate_datacenter,
    validate_machine=validate_machine,
    validate_cluster=validate_cluster,
    create_checks=create_checks,
    cluster_update=cluster_update,
    datacenter_update=datacenter_update,
    machine_update=machine_update,
    extra_kinds=(TinkerbellTemplateConfig,),
)
