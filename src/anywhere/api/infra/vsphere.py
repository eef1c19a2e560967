"""Specification rules of the vSphere provider: defaults, static validation, immutable fields, sample.

Static validation (``validate_datacenter``, ``validate_machine``) is what EKS Anywhere's own
``VSphereDatacenterConfig``/``VSphereMachineConfig`` validation checks. What its vSphere provider
validator checks when a cluster is created, but that still needs no vCenter (thumbprint and SSH key
formats, endpoint IP, template names, matching OS families, ...), is in ``create_checks``: EKS
Anywhere's own spec test files break those rules with placeholders and are still valid specs.
Whether the datacenter, network, datastore or template exist, whether the thumbprint matches the
server's certificate and whether a datastore has room are questions for vCenter, not this layer.
"""

from __future__ import annotations

import posixpath
import re

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._machine import (
    BOTTLEROCKET,
    REDHAT,
    UBUNTU,
    endpoint_must_be_ip,
    find_machine,
    is_paused,
    name_has_kube_version,
    validate_host_os,
    validate_ssh_keys,
    versioned_machines,
)
from anywhere.api.infra._rules import ProviderRules, ProviderSample, immutable
from anywhere.api.v1alpha1._base import ObjectMeta, Ref
from anywhere.api.v1alpha1._machine import UserConfiguration
from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.api.v1alpha1.vsphere import (
    FailureDomain,
    VSphereDatacenterConfig,
    VSphereDatacenterConfigSpec,
    VSphereMachineConfig,
    VSphereMachineConfigSpec,
)

OS_FAMILIES = (BOTTLEROCKET, UBUNTU, REDHAT)
CLONE_MODES = ("fullClone", "linkedClone")
BOTTLEROCKET_DEFAULT_USER = "ec2-user"
DEFAULT_USER = "capv"
DEFAULT_OS_FAMILY = BOTTLEROCKET
DEFAULT_MEMORY_MIB = 8192
MIN_MEMORY_MIB = 2048
DEFAULT_NUM_CPUS = 2
DEFAULT_DISK_GIB = 25
MAX_NETWORKS = 2

_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){19}(?:(?::[0-9A-Fa-f]{2}){12})?$")

# --- helpers shared by defaults, validation and updates -------------------------------------------


def full_network_path(network: str | None, datacenter: str | None) -> str | None:
    """A network name made absolute (``/<datacenter>/network/<name>``), as EKS Anywhere defaults it.

    Any value starting with ``/`` is kept as written: EKS Anywhere would prefix one naming another
    datacenter too, producing a path vCenter cannot find; validation reports it instead.
    """
    if not network or not datacenter:
        return network
    if network.startswith("/"):
        return network
    return f"/{datacenter}/network/{network}"


def effective_os_family(machine: VSphereMachineConfig) -> str:
    """The OS family the machine config will have once defaulted."""
    return machine.spec.os_family or DEFAULT_OS_FAMILY


def _network_prefix(datacenter: str) -> str:
    return posixpath.join(f"/{datacenter}", "network")


# --- defaults -------------------------------------------------------------------------------------


def default_datacenter(datacenter: VSphereDatacenterConfig) -> None:
    """Make network paths absolute and drop the thumbprint in insecure mode."""
    spec = datacenter.spec
    spec.network = full_network_path(spec.network, spec.datacenter)
    for domain in spec.failure_domains or []:
        domain.network = full_network_path(domain.network, spec.datacenter)
    if spec.insecure:
        spec.thumbprint = None


def default_machine(machine: VSphereMachineConfig) -> None:
    """OS family, memory (at least 2048 MiB), CPUs and the first user, as the EKS Anywhere CLI does.

    Disk size and clone mode depend on the template (does it have snapshots, how large is its disk)
    and so are left to the provider, which can ask vCenter.
    """
    spec = machine.spec
    if not spec.os_family:
        spec.os_family = DEFAULT_OS_FAMILY
    if spec.memory_mib is None or spec.memory_mib <= 0:
        spec.memory_mib = DEFAULT_MEMORY_MIB
    if spec.memory_mib < MIN_MEMORY_MIB:
        spec.memory_mib = MIN_MEMORY_MIB
    if spec.num_cpus is None or spec.num_cpus <= 0:
        spec.num_cpus = DEFAULT_NUM_CPUS
    if not spec.users:
        spec.users = [UserConfiguration()]
    first = spec.users[0]
    if not first.name:
        first.name = BOTTLEROCKET_DEFAULT_USER if spec.os_family == BOTTLEROCKET else DEFAULT_USER


# --- datacenter -----------------------------------------------------------------------------------


def validate_datacenter(datacenter: VSphereDatacenterConfig) -> list[FieldError]:
    errors = ErrorList(datacenter.ref)
    spec = datacenter.spec
    if not spec.server:
        errors.add("spec.server", "server is required: the vCenter server's FQDN or IP address")
    if not spec.datacenter:
        errors.add("spec.datacenter", "datacenter is required: the name of the vSphere datacenter")
    if not spec.network:
        errors.add("spec.network", "network is required: the VM network, e.g. /<datacenter>/network/<name>")
    else:
        _check_network_path(errors, "spec.network", spec.network, spec.datacenter)
    _validate_failure_domains(errors, spec)
    return errors.errors


def _check_network_path(errors: ErrorList, field: str, network: str, datacenter: str | None) -> None:
    if not datacenter:
        return
    path = full_network_path(network, datacenter) or ""
    prefix = _network_prefix(datacenter)
    if not path.startswith(prefix):
        errors.add(
            field,
            f"invalid path {path!r}: a network must be under {prefix!r}; give its name or its full path",
        )


def _validate_failure_domains(errors: ErrorList, spec: VSphereDatacenterConfigSpec) -> None:
    seen: set[str] = set()
    for i, domain in enumerate(spec.failure_domains or []):
        path = f"spec.failureDomains[{i}]"
        for field, value in _failure_domain_fields(domain):
            if not value:
                errors.add(f"{path}.{field}", f"{field} is not set or is empty; a failure domain needs it")
        if domain.name:
            if domain.name in seen:
                errors.add(f"{path}.name", f"failure domain name {domain.name!r} is used more than once")
            seen.add(domain.name)
        if domain.network:
            _check_network_path(errors, f"{path}.network", domain.network, spec.datacenter)


def _failure_domain_fields(domain: FailureDomain) -> list[tuple[str, str | None]]:
    return [
        ("name", domain.name),
        ("computeCluster", domain.compute_cluster),
        ("resourcePool", domain.resource_pool),
        ("datastore", domain.datastore),
        ("folder", domain.folder),
        ("network", domain.network),
    ]


def datacenter_update(old: VSphereDatacenterConfig, new: VSphereDatacenterConfig) -> list[FieldError]:
    """Server, datacenter and network cannot change (compared once network paths are made absolute)."""
    if is_paused(old):
        return []
    return [
        *immutable(new.ref, "spec.server", old.spec.server, new.spec.server),
        *immutable(new.ref, "spec.datacenter", old.spec.datacenter, new.spec.datacenter),
        *immutable(
            new.ref,
            "spec.network",
            full_network_path(old.spec.network, old.spec.datacenter),
            full_network_path(new.spec.network, new.spec.datacenter),
        ),
    ]


# --- machine --------------------------------------------------------------------------------------


def validate_machine(machine: VSphereMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    spec = machine.spec
    if not spec.datastore:
        errors.add("spec.datastore", "datastore is required, e.g. /<datacenter>/datastore/<name>")
    if not spec.resource_pool:
        errors.add(
            "spec.resourcePool", "resourcePool is required, e.g. /<datacenter>/host/<cluster>/Resources"
        )
    if spec.os_family and spec.os_family not in OS_FAMILIES:
        errors.add(
            "spec.osFamily",
            f"osFamily {spec.os_family!r} is not supported; use one of {', '.join(OS_FAMILIES)}",
        )
    validate_host_os(
        errors, "spec.hostOSConfiguration", spec.host_os_configuration, effective_os_family(machine)
    )
    return errors.errors


def machine_update(old: VSphereMachineConfig, new: VSphereMachineConfig) -> list[FieldError]:
    """osFamily and storagePolicyName cannot change, as EKS Anywhere's webhook has it.

    The webhook distinguishes machine configs of management and workload clusters, of control
    plane, etcd and workers, but in every case only these two fields are refused.
    """
    if is_paused(old):
        return []
    return [
        *immutable(new.ref, "spec.osFamily", effective_os_family(old), effective_os_family(new)),
        *immutable(
            new.ref,
            "spec.storagePolicyName",
            old.spec.storage_policy_name or None,
            new.spec.storage_policy_name or None,
        ),
    ]


# --- create-time checks ---------------------------------------------------------------------------


def _machine(config: ClusterConfig, ref: Ref | None) -> VSphereMachineConfig | None:
    return find_machine(config, VSphereMachineConfig, ref)


def create_checks(config: ClusterConfig) -> list[FieldError]:
    """What EKS Anywhere's vSphere provider validator refuses when a cluster is created, short of
    asking vCenter: formats of the thumbprint and SSH keys, sizes, clone mode, networks, templates
    (present for Ubuntu and RHEL, naming the Kubernetes version, shared by etcd and the control
    plane), a control plane endpoint that is an IP, and one OS family for every node. References
    that resolve to nothing are cluster validation's to report."""
    errors: list[FieldError] = []
    datacenter = config.datacenter
    if isinstance(datacenter, VSphereDatacenterConfig):
        errors.extend(_datacenter_create_checks(datacenter))
    for obj in config.of_kind(VSphereMachineConfig.KIND):
        if isinstance(obj, VSphereMachineConfig):
            errors.extend(_machine_create_checks(obj))
    errors.extend(_cluster_create_checks(config))
    return errors


def _datacenter_create_checks(datacenter: VSphereDatacenterConfig) -> list[FieldError]:
    errors = ErrorList(datacenter.ref)
    spec = datacenter.spec
    if spec.thumbprint and not spec.insecure and not _THUMBPRINT.match(spec.thumbprint):
        errors.add(
            "spec.thumbprint",
            f"{spec.thumbprint!r} is not a certificate thumbprint; give the SHA-1 fingerprint as "
            "colon-separated hex pairs, e.g. 1E:3B:A1:...:9F (govc about.cert -thumbprint -k)",
        )
    return errors.errors


def _machine_create_checks(machine: VSphereMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    spec = machine.spec
    first = spec.users[0] if spec.users else None
    # EKS Anywhere's machine config validation has this rule, but its own spec test files (which this
    # project must accept) break it, because only the CLI applies it before creating a cluster.
    if (
        effective_os_family(machine) == BOTTLEROCKET
        and first is not None
        and first.name not in (None, "", BOTTLEROCKET_DEFAULT_USER)
    ):
        errors.add(
            "spec.users[0].name",
            f"users[0].name {first.name!r} is invalid; use {BOTTLEROCKET_DEFAULT_USER!r} for Bottlerocket",
        )
    if spec.memory_mib is not None and spec.memory_mib < MIN_MEMORY_MIB:
        errors.add("spec.memoryMiB", f"memoryMiB {spec.memory_mib} is below the minimum of {MIN_MEMORY_MIB}")
    if spec.num_cpus is not None and spec.num_cpus < 1:
        errors.add("spec.numCPUs", f"numCPUs {spec.num_cpus} must be at least 1")
    if spec.disk_gib is not None and spec.disk_gib < 0:
        errors.add("spec.diskGiB", f"diskGiB {spec.disk_gib} cannot be negative")
    if spec.clone_mode and spec.clone_mode not in CLONE_MODES:
        allowed = ", ".join(CLONE_MODES)
        errors.add("spec.cloneMode", f"cloneMode {spec.clone_mode!r} is not supported; use one of {allowed}")
    if spec.os_family in (UBUNTU, REDHAT) and not spec.template:
        errors.add(
            "spec.template",
            f"template is required for osFamily {spec.os_family!r}: only Bottlerocket templates are "
            "imported automatically",
        )
    networks = spec.networks or []
    if len(networks) > MAX_NETWORKS:
        errors.add("spec.networks", f"at most {MAX_NETWORKS} networks can be given, got {len(networks)}")
    for i, network in enumerate(networks):
        if not network:
            errors.add(f"spec.networks[{i}]", "network name cannot be empty")
    validate_ssh_keys(errors, spec.users)
    return errors.errors


def _cluster_create_checks(config: ClusterConfig) -> list[FieldError]:
    cluster = config.cluster
    spec = cluster.spec
    control_plane = spec.control_plane_configuration
    cp_machine = _machine(config, control_plane.machine_group_ref if control_plane else None)
    etcd = spec.external_etcd_configuration
    etcd_machine = _machine(config, etcd.machine_group_ref if etcd else None)

    errors = endpoint_must_be_ip(cluster, "vSphere needs a free IP for the control plane endpoint")
    if cp_machine is not None:
        errors.extend(_same_os_and_template(config, cluster, cp_machine, etcd_machine))
    errors.extend(_template_versions(config))

    return errors


def _same_os_and_template(
    config: ClusterConfig,
    cluster: Cluster,
    cp_machine: VSphereMachineConfig,
    etcd_machine: VSphereMachineConfig | None,
) -> list[FieldError]:
    """Workers and etcd run the control plane's OS family; etcd also runs its template."""
    errors = ErrorList(cluster.ref)
    cp_os = effective_os_family(cp_machine)
    for i, group in enumerate(cluster.worker_groups):
        worker = _machine(config, group.machine_group_ref)
        if worker is not None and effective_os_family(worker) != cp_os:
            errors.add(
                f"spec.workerNodeGroupConfigurations[{i}].machineGroupRef",
                f"{worker.ref} has osFamily {effective_os_family(worker)!r} but the control plane's "
                f"{cp_machine.ref} has {cp_os!r}; control plane and worker nodes must have the same "
                "osFamily",
            )
    if etcd_machine is None:
        return errors.errors
    field = "spec.externalEtcdConfiguration.machineGroupRef"
    if effective_os_family(etcd_machine) != cp_os:
        errors.add(
            field,
            f"{etcd_machine.ref} has osFamily {effective_os_family(etcd_machine)!r} but the control "
            f"plane's {cp_machine.ref} has {cp_os!r}; control plane and etcd machines must have the "
            "same osFamily",
        )
    etcd_template, cp_template = etcd_machine.spec.template or None, cp_machine.spec.template or None
    if etcd_template != cp_template:
        errors.add(
            field,
            f"{etcd_machine.ref} uses template {etcd_template!r} but the control plane's "
            f"{cp_machine.ref} uses {cp_template!r}; control plane and etcd machines must have the "
            "same template",
        )
    return errors.errors


def _template_versions(config: ClusterConfig) -> list[FieldError]:
    """Each template must name the Kubernetes version its machines run (1.30, 1-30, 1_30 or 130)."""
    errors: list[FieldError] = []
    for machine, version in versioned_machines(config, VSphereMachineConfig):
        template = machine.spec.template
        if template and not name_has_kube_version(template, version):
            errors.append(
                FieldError(
                    machine.ref,
                    "spec.template",
                    f"template {template!r} does not name Kubernetes version {version}; its name must "
                    f"contain it (e.g. {version}, {version.replace('.', '-')} or {version.replace('.', '')})",
                )
            )
    return errors


# --- sample ---------------------------------------------------------------------------------------


def sample(cluster_name: str) -> ProviderSample:
    """What ``generate clusterconfig --provider vsphere`` writes: placeholders to replace with real
    vCenter paths. Without an SSH key, one is generated at create time; Bottlerocket needs no template."""
    datacenter = VSphereDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=VSphereDatacenterConfigSpec(
            server="vcenter.example.com",
            datacenter="Datacenter",
            network="/Datacenter/network/VM Network",
            insecure=False,
        ),
    )

    def machine(name: str) -> VSphereMachineConfig:
        return VSphereMachineConfig(
            metadata=ObjectMeta(name=name),
            spec=VSphereMachineConfigSpec(
                disk_gib=DEFAULT_DISK_GIB,
                datastore="/Datacenter/datastore/datastore1",
                folder=f"/Datacenter/vm/{cluster_name}",
                num_cpus=DEFAULT_NUM_CPUS,
                memory_mib=DEFAULT_MEMORY_MIB,
                os_family=DEFAULT_OS_FAMILY,
                resource_pool="/Datacenter/host/Cluster/Resources",
                users=[UserConfiguration(name=BOTTLEROCKET_DEFAULT_USER)],
            ),
        )

    return ProviderSample(
        datacenter, machine(f"{cluster_name}-cp"), machine(cluster_name), endpoint_host="10.0.0.10"
    )


RULES = ProviderRules(
    name="vsphere",
    datacenter_kind=VSphereDatacenterConfig,
    machine_kind=VSphereMachineConfig,
    sample=sample,
    endpoint_required=True,
    control_plane_only_allowed=False,
    # Current EKS Anywhere refuses InPlace on vSphere unless a developer feature flag is set.
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
