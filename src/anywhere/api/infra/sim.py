"""Specification rules of the embedded ``sim`` provider."""

from __future__ import annotations

from anywhere.api.duration import parse_duration
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._network import node_network, validate_node_network
from anywhere.api.infra._rules import NodeNetwork, ProviderRules, ProviderSample, immutable
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1.sim import (
    IPRange,
    SimDatacenterConfig,
    SimDatacenterConfigSpec,
    SimMachineConfig,
    SimMachineConfigSpec,
)

OS_FAMILIES = ("ubuntu", "bottlerocket", "redhat")
DEFAULT_BOOT_DELAY = "2s"
DEFAULT_BOOT_JITTER = "1s"


def default_machine(machine: SimMachineConfig) -> None:
    spec = machine.spec
    if spec.os_family is None:
        spec.os_family = "ubuntu"
    if spec.boot_delay is None:
        spec.boot_delay = DEFAULT_BOOT_DELAY
    if spec.boot_jitter is None:
        spec.boot_jitter = DEFAULT_BOOT_JITTER
    if spec.failure_rate is None:
        spec.failure_rate = 0.0


def validate_datacenter(datacenter: SimDatacenterConfig) -> list[FieldError]:
    spec = datacenter.spec
    return validate_node_network(
        datacenter.ref, "spec.nodeSubnet", spec.node_subnet, spec.gateway, spec.dhcp_range
    )


def validate_machine(machine: SimMachineConfig) -> list[FieldError]:
    errors = ErrorList(machine.ref)
    spec = machine.spec
    validate_os_family(errors, spec.os_family)
    for field, value in (("spec.bootDelay", spec.boot_delay), ("spec.bootJitter", spec.boot_jitter)):
        if value is None:
            continue
        try:
            if parse_duration(value) < 0:
                errors.add(field, f"{value!r} is negative; give a duration of 0s or more")
        except ValueError as exc:
            errors.add(field, str(exc))
    if spec.failure_rate is not None and not 0.0 <= spec.failure_rate < 1.0:
        errors.add(
            "spec.failureRate", f"{spec.failure_rate} must be at least 0 and below 1 (a fraction of boots)"
        )
    return errors.errors


def validate_os_family(errors: ErrorList, os_family: str | None) -> None:
    if os_family is not None and os_family not in OS_FAMILIES:
        errors.add("spec.osFamily", f"{os_family!r} is not supported; use one of {', '.join(OS_FAMILIES)}")


def datacenter_update(old: SimDatacenterConfig, new: SimDatacenterConfig) -> list[FieldError]:
    return [
        *immutable(new.ref, "spec.nodeSubnet", old.spec.node_subnet, new.spec.node_subnet),
        *immutable(new.ref, "spec.gateway", old.spec.gateway, new.spec.gateway),
        *immutable(new.ref, "spec.dhcpRange", old.spec.dhcp_range, new.spec.dhcp_range),
    ]


def machine_update(old: SimMachineConfig, new: SimMachineConfig) -> list[FieldError]:
    return immutable(new.ref, "spec.osFamily", old.spec.os_family, new.spec.os_family)


def network(datacenter: SimDatacenterConfig) -> NodeNetwork | None:
    spec = datacenter.spec
    return node_network(spec.node_subnet, spec.gateway, spec.dhcp_range)


def sample(cluster_name: str) -> ProviderSample:
    datacenter = SimDatacenterConfig(
        metadata=ObjectMeta(name=cluster_name),
        spec=SimDatacenterConfigSpec(
            node_subnet="10.10.0.0/24",
            gateway="10.10.0.1",
            dhcp_range=IPRange(start="10.10.0.100", end="10.10.0.250"),
        ),
    )
    control_plane = SimMachineConfig(
        metadata=ObjectMeta(name=f"{cluster_name}-cp"),
        spec=SimMachineConfigSpec(
            os_family="ubuntu",
            boot_delay=DEFAULT_BOOT_DELAY,
            boot_jitter=DEFAULT_BOOT_JITTER,
            failure_rate=0.0,
        ),
    )
    workers = control_plane.model_copy(deep=True, update={"metadata": ObjectMeta(name=cluster_name)})
    return ProviderSample(
        datacenter, control_plane, workers, endpoint_host="10.10.0.10", control_plane_count=3, worker_count=2
    )


RULES = ProviderRules(
    name="sim",
    datacenter_kind=SimDatacenterConfig,
    machine_kind=SimMachineConfig,
    sample=sample,
    default_machine=default_machine,
    validate_datacenter=validate_datacenter,
    validate_machine=validate_machine,
    datacenter_update=datacenter_update,
    machine_update=machine_update,
    node_network=network,
)
