"""The kinds of ``anywhere.eks.amazonaws.com/v1alpha1``, by kind name."""

from __future__ import annotations

from anywhere.api.v1alpha1 import (
    cloudstack,
    docker,
    gitops,
    identity,
    netns,
    nutanix,
    sim,
    snow,
    tinkerbell,
    vsphere,
)
from anywhere.api.v1alpha1._base import API_VERSION, GROUP, VERSION, Object
from anywhere.api.v1alpha1.cluster import Cluster

ALL_KINDS: tuple[type[Object], ...] = (
    Cluster,
    sim.SimDatacenterConfig,
    sim.SimMachineConfig,
    netns.NetnsDatacenterConfig,
    netns.NetnsMachineConfig,
    vsphere.VSphereDatacenterConfig,
    vsphere.VSphereMachineConfig,
    tinkerbell.TinkerbellDatacenterConfig,
    tinkerbell.TinkerbellMachineConfig,
    tinkerbell.TinkerbellTemplateConfig,
    docker.DockerDatacenterConfig,
    cloudstack.CloudStackDatacenterConfig,
    cloudstack.CloudStackMachineConfig,
    nutanix.NutanixDatacenterConfig,
    nutanix.NutanixMachineConfig,
    snow.SnowDatacenterConfig,
    snow.SnowMachineConfig,
    snow.SnowIPPool,
    gitops.FluxConfig,
    gitops.GitOpsConfig,
    identity.OIDCConfig,
    identity.AWSIamConfig,
)

KINDS: dict[str, type[Object]] = {kind.KIND: kind for kind in ALL_KINDS}

__all__ = ["ALL_KINDS", "API_VERSION", "GROUP", "KINDS", "VERSION", "Cluster", "Object"]
