"""Specification rules of the AWS Snow provider (EKS Anywhere's SnowDatacenterConfig,
SnowMachineConfig and SnowIPPool).

Only what needs no device is checked here: that an AMI, SSH key pair or device actually exists on
the Snowball is for the provider's live preflight checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._machine import BOTTLEROCKET, UBUNTU, validate_host_os
from anywhere.api.infra._rules import ProviderRules, ProviderSample, immutable
from anywhere.api.v1alpha1._base import ObjectMeta, Ref
from anywhere.api.v1alpha1.snow import (
    IPPool,
    SnowDatacenterConfig,
    SnowDatacenterConfigSpec,
    SnowDirectNetworkInterface,
    SnowIPPool,
    SnowMachineConfig,
    SnowMachineConfigSpec,
    SnowNetwork,
    SnowVolume,
)

IDENTITY_KIND = "Secret"
DEFAULT_INSTANCE_TYPE = "sbe-c.large"
PHYSICAL_NETWORK_CONNECTORS = ("SFP_PLUS", "QSFP", "RJ45")
DEFAULT_PHYSICAL_NETWORK_CONNECTOR = "SFP_PLUS"
OS_FAMILIES = (BOTTLEROCKET, UBUNTU)
MIN_CONTAINERS_VOLUME_GIB = {UBUNTU: 8, BOTTLEROCKET: 25}
MIN_VOLUME_GIB = 8
ROOT_DEVICE_PREFIX = "/dev/sda"
MAX_DNIS = 8
MAX_VLAN_ID = 4095

# Snow instance types: sbe-c.large, sbe-c.xlarge, sbe-c.2xlarge, sbe-g.4xlarge, ...
_INSTANCE_TYPE = re.compile(r"^sbe-[cg]\.\d*x?large$")

_DNIS = "spec.network.directNetworkInterfaces"


def identity_secret_name(datacenter_name: str) -> str:
    """The credentials Secret the CLI creates when the datacenter names none."""
    return f"{datacenter_name}-snow-credentials"


# --- SnowDatacenterConfig -----------------------------------------------------------------


def default_datacenter(datacenter: SnowDatacenterConfig) -> None:
    """Point ``identityRef`` at the Secret the CLI creates when neither its kind nor name is set."""
    ref = datacenter.spec.identity_ref
    if ref is None or (not ref.kind and not ref.name):
        datacenter.spec.identity_ref = Ref(kind=IDENTITY_KIND, name=identity_secret_name(datacenter.name))


def validate_datacenter(datacenter: SnowDatacenterConfig) -> list[FieldError]:
    errors = ErrorList(datacenter.ref)
    ref = datacenter.spec.identity_ref or Ref()
    if not ref.name:
        errors.add(
            "spec.identityRef.name", "identityRef name is required: the Secret with the devices' credentials"
        )
    if not ref.kind:
        errors.add(
            "spec.identityRef.kind",
            f"identityRef kind is required; the only supported kind is {IDENTITY_KIND}",
        )
    elif ref.kind != IDENTITY_KIND:
        errors.add(
            "spec.identityRef.kind",
            f"identityRef kind {ref.kind!r} is not supported; the only supported kind is {IDENTITY_KIND}",
        )
    return errors.errors


# --- SnowMachineConfig --------------------------------------------------------------------


def default_machine(machine: SnowMachineConfig) -> None:
    spec = machine.spec
    if not spec.instance_type:
        spec.instance_type = DEFAULT_INSTANCE_TYPE
    if not spec.physical_network_connector:
        spec.physical_network_connector = DEFAULT_PHYSICAL_NETWORK_CONNECTOR


def validate_machine(machine: SnowMachineConfig) -> list[FieldError]:
    """Every static problem of one SnowMachineConfig.

    ``instanceType`` and ``physicalNetworkConnector`` are checked when set (defaulting fills them).
    ``sshKeyName`` may be empty: the CLI creates a key pair then.
    """
    errors = ErrorList(machine.ref)
    spec = machine.spec
    if spec.instance_type is not None and not _INSTANCE_TYPE.match(spec.instance_type):
        errors.add(
            "spec.instanceType",
            f"instance type {spec.instance_type!r} is not supported; use an sbe-c or sbe-g type such as "
            "sbe-c.large, sbe-c.xlarge, sbe-c.2xlarge or sbe-c.4xlarge",
        )
    connector = spec.physical_network_connector
    if connector is not None and connector not in PHYSICAL_NETWORK_CONNECTORS:
        errors.add(
            "spec.physicalNetworkConnector",
            f"physical network connector {connector!r} is not supported; use one of "
            f"{', '.join(PHYSICAL_NETWORK_CONNECTORS)}",
        )
    _check_devices(errors, spec.devices)

    os_family = spec.os_family
    if not os_family:
        errors.add("spec.osFamily", f"osFamily is required; use one of {', '.join(OS_FAMILIES)}")
    elif os_family not in OS_FAMILIES:
        errors.add(
            "spec.osFamily", f"osFamily {os_family!r} is not supported; use one of {', '.join(OS_FAMILIES)}"
        )

    _check_network(errors, spec.network)
    _check_containers_volume(errors, spec.containers_volume, os_family)
    for i, volume in enumerate(spec.non_root_volumes or []):
        _check_non_root_volume(errors, f"spec.nonRootVolumes[{i}]", volume)
    validate_host_os(errors, "spec.hostOSConfiguration", spec.host_os_configuration, os_family)
    return errors.errors


def _check_devices(errors: ErrorList, devices: list[str] | None) -> None:
    if not devices:
        errors.add("spec.devices", "devices must list at least one Snow device IP address")
        return
    for i, device in enumerate(devices):
        try:
            ipaddress.ip_address(device)
        except ValueError:
            errors.add(f"spec.devices[{i}]", f"{device!r} is not a device IP address")


def _check_network(errors: ErrorList, network: SnowNetwork | None) -> None:
    dnis = (network.direct_network_interfaces if network else None) or []
    if not dnis:
        errors.add(_DNIS, "at least one direct network interface is required")
        return
    if len(dnis) > MAX_DNIS:
        errors.add(_DNIS, f"at most {MAX_DNIS} direct network interfaces are supported, got {len(dnis)}")
    primaries = sum(1 for dni in dnis if dni.primary)
    if primaries != 1:
        errors.add(_DNIS, f"exactly one direct network interface must be primary, got {primaries}")
    for i, dni in enumerate(dnis):
        _check_dni(errors, f"{_DNIS}[{i}]", dni)


def _check_dni(errors: ErrorList, path: str, dni: SnowDirectNetworkInterface) -> None:
    if dni.index is not None and not 1 <= dni.index <= MAX_DNIS:
        errors.add(f"{path}.index", f"index {dni.index} must be between 1 and {MAX_DNIS}")
    if dni.vlan_id is not None and not 0 <= dni.vlan_id <= MAX_VLAN_ID:
        errors.add(f"{path}.vlanID", f"vlanID {dni.vlan_id} must be between 0 and {MAX_VLAN_ID}")
    ref = dni.ip_pool_ref
    if ref is not None:
        if ref.kind != SnowIPPool.KIND:
            errors.add(
                f"{path}.ipPoolRef.kind", f"ipPoolRef kind {ref.kind!r} is not supported; use SnowIPPool"
            )
        if not ref.name:
            errors.add(f"{path}.ipPoolRef.name", "ipPoolRef name is required")


def _check_containers_volume(errors: ErrorList, volume: SnowVolume | None, os_family: str | None) -> None:
    field = "spec.containersVolume"
    if volume is None:
        if os_family == BOTTLEROCKET:
            errors.add(
                field,
                f"containersVolume is required for Bottlerocket (its own data volume is too small); "
                f"give at least {MIN_CONTAINERS_VOLUME_GIB[BOTTLEROCKET]} GiB",
            )
        return
    minimum = MIN_CONTAINERS_VOLUME_GIB.get(os_family or "", MIN_VOLUME_GIB)
    if volume.size is None:
        errors.add(f"{field}.size", f"size is required (GiB, at least {minimum})")
    elif volume.size < minimum:
        which = f" for {os_family}" if os_family in MIN_CONTAINERS_VOLUME_GIB else ""
        errors.add(f"{field}.size", f"size {volume.size} GiB is too small; use at least {minimum} GiB{which}")


def _check_non_root_volume(errors: ErrorList, path: str, volume: SnowVolume) -> None:
    if not volume.device_name:
        errors.add(f"{path}.deviceName", "deviceName is required, e.g. /dev/sdc")
    elif volume.device_name.startswith(ROOT_DEVICE_PREFIX):
        errors.add(
            f"{path}.deviceName",
            f"device name {volume.device_name!r} is reserved: {ROOT_DEVICE_PREFIX}* names the root and "
            "containers volumes; use another name such as /dev/sdc",
        )
    if volume.size is None:
        errors.add(f"{path}.size", f"size is required (GiB, at least {MIN_VOLUME_GIB})")
    elif volume.size < MIN_VOLUME_GIB:
        errors.add(f"{path}.size", f"size {volume.size} GiB is too small; use at least {MIN_VOLUME_GIB} GiB")


# --- rules spanning the Cluster -----------------------------------------------------------


def validate_cluster(config: ClusterConfig) -> list[FieldError]:
    """IP pools that DNIs name must be in the configuration; external etcd machines need static IPs."""
    result: list[FieldError] = []
    pools = {pool.name for pool in config.of_kind(SnowIPPool.KIND)}
    for obj in config.of_kind(SnowMachineConfig.KIND):
        if not isinstance(obj, SnowMachineConfig):
            continue
        errors = ErrorList(obj.ref)
        for i, dni in enumerate(_dnis(obj)):
            ref = dni.ip_pool_ref
            if ref is not None and ref.kind == SnowIPPool.KIND and ref.name and ref.name not in pools:
                errors.add(
                    f"{_DNIS}[{i}].ipPoolRef.name",
                    f"SnowIPPool {ref.name!r} is not in the cluster configuration",
                )
        result += errors.errors

    etcd = config.cluster.spec.external_etcd_configuration
    ref = etcd.machine_group_ref if etcd is not None else None
    machine = config.get(ref.kind, ref.name) if ref is not None else None
    if isinstance(machine, SnowMachineConfig):
        errors = ErrorList(machine.ref)
        for i, dni in enumerate(_dnis(machine)):
            if dni.dhcp:
                errors.add(
                    f"{_DNIS}[{i}].dhcp",
                    "external etcd machines can not use DHCP on Snow; use a static IP from an ipPoolRef",
                )
            elif dni.ip_pool_ref is None:
                errors.add(
                    f"{_DNIS}[{i}].ipPoolRef",
                    "external etcd machines need static IPs on Snow: an ipPoolRef is required",
                )
        result += errors.errors
    return result


def _dnis(machine: SnowMachineConfig) -> list[SnowDirectNetworkInterface]:
    network = machine.spec.network
    return (network.direct_network_interfaces if network else None) or []


# --- SnowIPPool ---------------------------------------------------------------------------


def validate_ip_pool(pool: SnowIPPool) -> list[FieldError]:
    """Every problem of a SnowIPPool: each range well-formed, ordered and inside its subnet."""
    errors = ErrorList(pool.ref)
    for i, ip_pool in enumerate(pool.spec.pools or []):
        _check_ip_pool(errors, f"spec.pools[{i}]", ip_pool)
    return errors.errors


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _check_ip_pool(errors: ErrorList, path: str, ip_pool: IPPool) -> None:
    start = _ip(errors, f"{path}.ipStart", ip_pool.ip_start, "ipStart")
    end = _ip(errors, f"{path}.ipEnd", ip_pool.ip_end, "ipEnd")
    gateway = _ip(errors, f"{path}.gateway", ip_pool.gateway, "gateway")
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    if not ip_pool.subnet:
        errors.add(f"{path}.subnet", "subnet is required, in CIDR form such as 10.0.0.0/24")
    else:
        try:
            subnet = ipaddress.ip_network(ip_pool.subnet, strict=False)
        except ValueError as exc:
            errors.add(f"{path}.subnet", f"{ip_pool.subnet!r} is not a subnet in CIDR form: {exc}")

    if start is not None and end is not None:
        if start.version != end.version:
            errors.add(path, f"ipStart {start} and ipEnd {end} are not of the same IP version")
        elif int(start) >= int(end):
            errors.add(path, f"ipStart {start} must be smaller than ipEnd {end}")
    if subnet is None:
        return
    for name, address in (("ipStart", start), ("ipEnd", end), ("gateway", gateway)):
        if address is not None and address not in subnet:
            errors.add(f"{path}.{name}", f"{name} {address} is not inside the subnet {ip_pool.subnet}")


def _ip(errors: ErrorList, field: str, text: str | None, name: str) -> _Address | None:
    if not text:
        errors.add(field, f"{name} is required")
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        errors.add(field, f"{name} {text!r} is not a valid IP address")
        return None


def ip_pool_update(old: SnowIPPool, new: SnowIPPool) -> list[FieldError]:
    """The ranges of a SnowIPPool are immutable; reordering them is not a change."""

    def key(pools: list[IPPool] | None) -> Counter[tuple[str, str, str, str]]:
        return Counter(
            (p.ip_start or "", p.ip_end or "", p.subnet or "", p.gateway or "") for p in pools or []
        )

    if key(old.spec.pools) == key(new.spec.pools):
        return []
    return immutable(
        new.ref,
        "spec.pools",
        [p.to_dict() for p in old.spec.pools or []],
        [p.to_dict() for p in new.spec.pools or []],
    )


# --- sample and registration --------------------------------------------------------------


def sample(cluster_name: str) -> ProviderSample:
    """What ``generate clusterconfig --provider snow`` writes, with placeholders that validate."""
    datacenter = SnowDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=SnowDatacenterConfigSpec(
            identity_ref=Ref(kind=IDENTITY_KIND, name=identity_secret_name(cluster_name))
        ),
    )
    control_plane = SnowMachineConfig(
        metadata=ObjectMeta(name=f"{cluster_name}-cp"),
        spec=SnowMachineConfigSpec(
            devices=["192.168.1.11"],
            instance_type=DEFAULT_INSTANCE_TYPE,
            physical_network_connector=DEFAULT_PHYSICAL_NETWORK_CONNECTOR,
            os_family=UBUNTU,
            network=SnowNetwork(
                direct_network_interfaces=[SnowDirectNetworkInterface(index=1, dhcp=True, primary=True)]
            ),
        ),
    )
    workers = control_plane.model_copy(deep=True, update={"metadata": ObjectMeta(name=cluster_name)})
    return ProviderSample(datacenter, control_plane, workers, endpoint_host="10.0.1.100")


RULES = ProviderRules(
    name="snow",
    datacenter_kind=SnowDatacenterConfig,
    machine_kind=SnowMachineConfig,
    sample=sample,
    endpoint_required=True,
    control_plane_only_allowed=False,
    in_place_upgrade_allowed=False,
    kindnetd_allowed=False,
    default_datacenter=default_datacenter,
    default_machine=default_machine,
    validate_datacenter=validate_datacenter,
    validate_machine=validate_machine,
    validate_cluster=validate_cluster,
    extra_kinds=(SnowIPPool,),
)
