"""Rules of this project's own providers: sim (in-memory) and netns (network namespaces)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from anywhere.api import check_config
from anywhere.api.generate import generate_config
from anywhere.api.infra import netns, sim
from anywhere.api.v1alpha1.netns import NetnsDatacenterConfig, NetnsMachineConfig
from anywhere.api.v1alpha1.sim import IPRange, SimDatacenterConfig, SimMachineConfig


def sim_datacenter() -> SimDatacenterConfig:
    datacenter = sim.sample("demo").datacenter
    assert isinstance(datacenter, SimDatacenterConfig)
    return datacenter


def netns_datacenter() -> NetnsDatacenterConfig:
    datacenter = netns.sample("demo").datacenter
    assert isinstance(datacenter, NetnsDatacenterConfig)
    return datacenter


NETWORK_CASES: list[tuple[str, Callable[[Any], None], str, str]] = [
    ("no subnet", lambda s: setattr(s, "node_subnet", None), "spec.nodeSubnet", "subnet is required"),
    (
        "bad subnet",
        lambda s: setattr(s, "node_subnet", "10.10.0.1/24"),
        "spec.nodeSubnet",
        "is not an IPv4 network",
    ),
    (
        "tiny subnet",
        lambda s: setattr(s, "node_subnet", "10.10.0.0/30"),
        "spec.nodeSubnet",
        "must be between /8 and /29",
    ),
    ("no gateway", lambda s: setattr(s, "gateway", None), "spec.gateway", "gateway is required"),
    (
        "gateway outside",
        lambda s: setattr(s, "gateway", "10.11.0.1"),
        "spec.gateway",
        "not a usable address of 10.10.0.0/24",
    ),
    (
        "gateway is network",
        lambda s: setattr(s, "gateway", "10.10.0.0"),
        "spec.gateway",
        "not a usable address",
    ),
    ("no range", lambda s: setattr(s, "dhcp_range", None), "spec.dhcpRange", "DHCP range is required"),
    (
        "range reversed",
        lambda s: setattr(s, "dhcp_range", IPRange(start="10.10.0.200", end="10.10.0.100")),
        "spec.dhcpRange",
        "start 10.10.0.200 is after end 10.10.0.100",
    ),
    (
        "range outside",
        lambda s: setattr(s, "dhcp_range", IPRange(start="10.10.0.100", end="10.10.1.5")),
        "spec.dhcpRange.end",
        "10.10.1.5 is not a usable address of 10.10.0.0/24",
    ),
    (
        "range holds the gateway",
        lambda s: setattr(s, "dhcp_range", IPRange(start="10.10.0.1", end="10.10.0.50")),
        "spec.dhcpRange",
        "contains the gateway 10.10.0.1",
    ),
    (
        "range start not an address",
        lambda s: setattr(s, "dhcp_range", IPRange(start="ten", end="10.10.0.50")),
        "spec.dhcpRange.start",
        "'ten' is not an IPv4 address",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "message"), [c[1:] for c in NETWORK_CASES], ids=[c[0] for c in NETWORK_CASES]
)
def test_sim_node_network_rules(change: Callable[[Any], None], field: str, message: str) -> None:
    datacenter = sim_datacenter()
    assert sim.validate_datacenter(datacenter) == []
    change(datacenter.spec)
    errors = sim.validate_datacenter(datacenter)
    assert any(e.field == field and message in e.message for e in errors), [str(e) for e in errors]


def test_netns_reports_on_its_own_subnet_field() -> None:
    datacenter = netns_datacenter()
    assert netns.validate_datacenter(datacenter) == []
    datacenter.spec.bridge_subnet = "nonsense"
    assert any(e.field == "spec.bridgeSubnet" for e in netns.validate_datacenter(datacenter))


def test_netns_bridge_name_is_a_linux_interface_name() -> None:
    datacenter = netns_datacenter()
    datacenter.spec.bridge_name = "a-name-that-is-far-too-long"
    errors = netns.validate_datacenter(datacenter)
    assert any(e.field == "spec.bridgeName" and "is not a Linux interface name" in e.message for e in errors)


@pytest.mark.parametrize(
    ("field", "value", "path", "message"),
    [
        ("boot_delay", "soon", "spec.bootDelay", "is not a duration"),
        ("boot_jitter", "-1s", "spec.bootJitter", "is negative"),
        ("failure_rate", 1.0, "spec.failureRate", "must be at least 0 and below 1"),
        ("os_family", "windows", "spec.osFamily", "use one of ubuntu, bottlerocket, redhat"),
    ],
)
def test_sim_machine_rules(field: str, value: object, path: str, message: str) -> None:
    machine = SimMachineConfig.model_validate({"metadata": {"name": "m"}, "kind": "SimMachineConfig"})
    sim.default_machine(machine)
    assert sim.validate_machine(machine) == []
    setattr(machine.spec, field, value)
    assert any(e.field == path and message in e.message for e in sim.validate_machine(machine))


def test_netns_machine_boot_timeout() -> None:
    machine = NetnsMachineConfig.model_validate({"metadata": {"name": "m"}, "kind": "NetnsMachineConfig"})
    netns.default_machine(machine)
    assert machine.spec.boot_timeout == "2m"
    machine.spec.boot_timeout = "0s"
    assert any(e.field == "spec.bootTimeout" for e in netns.validate_machine(machine))


def test_defaults_fill_only_what_is_missing() -> None:
    machine = SimMachineConfig.model_validate(
        {"metadata": {"name": "m"}, "kind": "SimMachineConfig", "spec": {"bootDelay": "5s"}}
    )
    sim.default_machine(machine)
    assert (machine.spec.boot_delay, machine.spec.boot_jitter, machine.spec.failure_rate) == ("5s", "1s", 0.0)


@pytest.mark.parametrize("provider", ["sim", "netns"])
def test_datacenter_fields_are_immutable(provider: str) -> None:
    rules = sim if provider == "sim" else netns
    old = rules.sample("demo").datacenter
    new = old.model_copy(deep=True)
    new.spec.gateway = "10.99.0.1"  # type: ignore[attr-defined]
    assert any(
        e.field == "spec.gateway" and "field is immutable" in e.message
        for e in rules.datacenter_update(old, new)
    )


def test_endpoint_must_be_outside_netns_dhcp_range() -> None:
    config = generate_config("demo", "netns")
    config.cluster.spec.control_plane_configuration.endpoint.host = "10.20.0.150"  # type: ignore[union-attr]
    errors = check_config(config)
    assert any("inside the DHCP range 10.20.0.100-10.20.0.200" in e.message for e in errors)
