"""The sim provider as the cluster controller sees it: kinds, rendered specs, controllers."""

from __future__ import annotations

import pytest

from anywhere.api.generate import generate_config
from anywhere.api.v1alpha1.sim import SimMachineConfig
from anywhere.controllers.resources import SIM_CLUSTERS, SIM_MACHINE_TEMPLATES, SIM_MACHINES
from anywhere.providers.registry import provider_for_datacenter
from anywhere.providers.sim import PROVIDER


def test_the_provider_is_registered_for_its_datacenter_kind() -> None:
    assert provider_for_datacenter("SimDatacenterConfig") is PROVIDER
    assert (PROVIDER.name, PROVIDER.machine_config_kind) == ("sim", "SimMachineConfig")
    assert (PROVIDER.infra_cluster, PROVIDER.infra_machine, PROVIDER.infra_machine_template) == (
        SIM_CLUSTERS,
        SIM_MACHINES,
        SIM_MACHINE_TEMPLATES,
    )


def test_specs_come_from_the_datacenter_the_endpoint_and_the_defaulted_machine_config() -> None:
    config = generate_config("demo", "sim")
    datacenter = config.datacenter
    assert datacenter is not None
    assert PROVIDER.infra_cluster_spec(config.cluster, datacenter) == {
        "nodeSubnet": "10.10.0.0/24",
        "gateway": "10.10.0.1",
        "dhcpRange": {"start": "10.10.0.100", "end": "10.10.0.250"},
        "controlPlaneVIP": "10.10.0.10",
    }
    bare = SimMachineConfig.model_validate({"kind": "SimMachineConfig", "metadata": {"name": "m"}})
    assert PROVIDER.machine_template_spec(bare) == {"bootDelay": "2s", "bootJitter": "1s", "failureRate": 0.0}
    assert bare.spec.boot_delay is None  # defaults applied to a copy
    with pytest.raises(TypeError, match="needs a SimMachineConfig"):
        PROVIDER.machine_template_spec(datacenter)
