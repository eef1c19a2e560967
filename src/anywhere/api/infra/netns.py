"""Specification rules of the ``netns`` provider (machines as network namespaces on this host)."""

from __future__ import annotations

import re

from anywhere.api.duration import parse_duration
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._network import node_network, validate_node_network
from anywhere.api.infra._rules import NodeNetwork, ProviderRules, ProviderSample, immutable
from anywhere.api.infra.sim import validate_os_family
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1.netns import (
    NetnsDatacenterConfig,
    NetnsDatacenterConfigSpec,
    NetnsMachineConfig,
    NetnsMachineConfigSpec,
)
from anywhere.api.v1alpha1.sim import IPRange

DEFAULT_BRIDGE = "aw-br0"
DEFAULT_BOOT_TIMEOUT = "2m"
# Linux interface names: at most 15 bytes, no '/', ':' or white space.
_INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def default_datacenter(datacenter: NetnsDatacenterConfig) -> None:
    if datacenter.spec.bridge_name is None:
        datacenter.spec.bridge_name = DEFAULT_BRIDGE


def default_machine(machine: NetnsMachineConfig) -> None:
    if machine.spec.os_family is None:
        machine.spec.os_family = "ubuntu"
    if machine.spec.boot_timeout is None:
        machine.spec.boot_timeout = DEFAULT_BOOT_TIMEOUT


def validate_datacenter(datacenter: NetnsDatacenterConfig) -> list[FieldError]:
    spec = datacenter.spec
    errors = ErrorList(datacenter.ref)
    if spec.bridge_name is not None and not _INTERFACE_NAME.match(spec.bridge_name):
        errors.add(
            "spec.bridgeName",
            f"{spec.bridge_name!r} is not a Linux interface name (1-15 letters, digits, '_', '.', '-')",
        )
    errors.extend(
        validate_node_network(
            datacenter.ref, "spec.bridgeSubnet", spec.bridge_subnet, spec.gateway, spec.dhcp_range
        )
    )
    return errors.errors


def validate_machine(machine: NetnsMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    validate_os_family(errors, machine.spec.os_family)
    if machine.spec.boot_timeout is not None:
        try:
            if parse_duration(machine.spec.boot_timeout) <= 0:
                errors.add("spec.bootTimeout", "must be a positive duration, e.g. 2m")
        except ValueError as exc:
            errors.add("spec.bootTimeout", str(exc))
    return errors.errors


def datacenter_update(old: NetnsDatacenterConfig, new: NetnsDatacenterConfig) -> list[FieldError]:
    return [
        *immutable(new.ref, "spec.bridgeName", old.spec.bridge_name, new.spec.bridge_name),
        *immutable(new.ref, "spec.bridgeSubnet", old.spec.bridge_subnet, new.spec.bridge_subnet),
        *immutable(new.ref, "spec.gateway", old.spec.gateway, new.spec.gateway),
        *immutable(new.ref, "spec.dhcpRange", old.spec.dhcp_range, new.spec.dhcp_range),
    ]


def machine_update(old: NetnsMachineConfig, new: NetnsMachineConfig) -> list[FieldError]:
    return immutable(new.ref, "spec.osFamily", old.spec.os_family, new.spec.os_family)


def network(datacenter: NetnsDatacenterConfig) -> NodeNetwork | None:
    spec = datacenter.spec
    return node_network(spec.bridge_subnet, spec.gateway, spec.dhcp_range)


def sample(cluster_name: str) -> ProviderSample:
    datacenter = NetnsDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=NetnsDatacenterConfigSpec(
            bridge_name=DEFAULT_BRIDGE,
            bridge_subnet="10.20.0.0/24",
            gateway="10.20.0.1",
            dhcp_range=IPRange(start="10.20.0.100", end="10.20.0.200"),
        ),
    )
    control_plane = NetnsMachineConfig(
        metadata=ObjectMeta(name=f"{cluster_name}-cp"),
        spec=NetnsMachineConfigSpec(os_family="ubuntu", boot_timeout=DEFAULT_BOOT_TIMEOUT),
    )
    workers = control_plane.model_copy(deep=True, update={"metadata": ObjectMeta(name=cluster_name)})
    return ProviderSample(datacenter, control_plane, workers, endpoint_host="10.20.0.10")


RULES = ProviderRules(
    name="netns",
    datacenter_kind=NetnsDatacenterConfig,
    machine_kind=NetnsMachineConfig,
    sample=sample,
    default_datacenter=default_datacenter,
    default_machine=default_machine,
    validate_datacenter=validate_datacenter,
    validate_machine=validate_machine,
    datacenter_update=datacenter_update,
    machine_update=machine_update,
    node_network=network,
)
