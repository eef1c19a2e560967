"""Where every kind the controllers read or write lives in the API (one :class:`Resource` each)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from anywhere.api.capi import (
    BOOTSTRAP_GROUP,
    CLUSTER_GROUP,
    CONTROL_PLANE_GROUP,
    INFRASTRUCTURE_GROUP,
    TINKERBELL_GROUP,
    TINKERBELL_VERSION,
    VERSION,
)
from anywhere.api.v1alpha1 import GROUP as ANYWHERE_GROUP
from anywhere.api.v1alpha1 import VERSION as ANYWHERE_VERSION
from anywhere.runtime import CONFIGMAPS, LEASES, NAMESPACES, NODES, PODS, SECRETS, Resource

__all__ = [
    "CAPI_CLUSTERS",
    "CONFIGMAPS",
    "DAEMONSETS",
    "DEPLOYMENTS",
    "EKSA_CLUSTERS",
    "HARDWARE",
    "KUBEADM_CONFIGS",
    "KUBEADM_CONFIG_TEMPLATES",
    "KUBEADM_CONTROL_PLANES",
    "LEASES",
    "MACHINES",
    "MACHINE_DEPLOYMENTS",
    "MACHINE_HEALTH_CHECKS",
    "MACHINE_SETS",
    "NAMESPACES",
    "NETNS_CLUSTERS",
    "NETNS_DATACENTERS",
    "NETNS_MACHINES",
    "NETNS_MACHINE_CONFIGS",
    "NETNS_MACHINE_TEMPLATES",
    "NODES",
    "PODS",
    "SECRETS",
    "SERVICES",
    "SIM_CLUSTERS",
    "SIM_DATACENTERS",
    "SIM_MACHINES",
    "SIM_MACHINE_CONFIGS",
    "SIM_MACHINE_TEMPLATES",
    "SYSTEM_NAMESPACE",
    "TINKERBELL_CLUSTERS",
    "TINKERBELL_DATACENTERS",
    "TINKERBELL_MACHINES",
    "TINKERBELL_MACHINE_CONFIGS",
    "TINKERBELL_MACHINE_TEMPLATES",
    "TINKERBELL_TEMPLATE_CONFIGS",
    "VSPHERE_CLUSTERS",
    "VSPHERE_DATACENTERS",
    "VSPHERE_MACHINES",
    "VSPHERE_MACHINE_CONFIGS",
    "VSPHERE_MACHINE_TEMPLATES",
    "WORKFLOWS",
    "anywhere_resource",
    "resource_of",
]

# The namespace Cluster API objects of every anywhere cluster live in, as in EKS Anywhere.
SYSTEM_NAMESPACE: Final = "eksa-system"


def resource_of(ref: Mapping[str, Any]) -> Resource:
    """The namespaced kind an object reference (``apiVersion``, ``kind``) names, with the plural
    Cluster API's kinds and ours all follow (lower-case kind + "s")."""
    group, _, version = str(ref.get("apiVersion") or "").rpartition("/")
    kind = str(ref.get("kind") or "")
    return Resource(group, version, kind.lower() + "s", True, kind)


def anywhere_resource(plural: str, kind: str) -> Resource:
    """An ``anywhere.eks.amazonaws.com/v1alpha1`` kind."""
    return Resource(ANYWHERE_GROUP, ANYWHERE_VERSION, plural, True, kind)


EKSA_CLUSTERS: Final = anywhere_resource("clusters", "Cluster")
SIM_DATACENTERS: Final = anywhere_resource("simdatacenterconfigs", "SimDatacenterConfig")
SIM_MACHINE_CONFIGS: Final = anywhere_resource("simmachineconfigs", "SimMachineConfig")
NETNS_DATACENTERS: Final = anywhere_resource("netnsdatacenterconfigs", "NetnsDatacenterConfig")
NETNS_MACHINE_CONFIGS: Final = anywhere_resource("netnsmachineconfigs", "NetnsMachineConfig")
VSPHERE_DATACENTERS: Final = anywhere_resource("vspheredatacenterconfigs", "VSphereDatacenterConfig")
VSPHERE_MACHINE_CONFIGS: Final = anywhere_resource("vspheremachineconfigs", "VSphereMachineConfig")
TINKERBELL_DATACENTERS: Final = anywhere_resource("tinkerbelldatacenterconfigs", "TinkerbellDatacenterConfig")
TINKERBELL_MACHINE_CONFIGS: Final = anywhere_resource("tinkerbellmachineconfigs", "TinkerbellMachineConfig")
TINKERBELL_TEMPLATE_CONFIGS: Final = anywhere_resource(
    "tinkerbelltemplateconfigs", "TinkerbellTemplateConfig"
)

CAPI_CLUSTERS: Final = Resource(CLUSTER_GROUP, VERSION, "clusters", True, "Cluster")
MACHINES: Final = Resource(CLUSTER_GROUP, VERSION, "machines", True, "Machine")
MACHINE_SETS: Final = Resource(CLUSTER_GROUP, VERSION, "machinesets", True, "MachineSet")
MACHINE_DEPLOYMENTS: Final = Resource(CLUSTER_GROUP, VERSION, "machinedeployments", True, "MachineDeployment")
MACHINE_HEALTH_CHECKS: Final = Resource(
    CLUSTER_GROUP, VERSION, "machinehealthchecks", True, "MachineHealthCheck"
)
KUBEADM_CONTROL_PLANES: Final = Resource(
    CONTROL_PLANE_GROUP, VERSION, "kubeadmcontrolplanes", True, "KubeadmControlPlane"
)
KUBEADM_CONFIGS: Final = Resource(BOOTSTRAP_GROUP, VERSION, "kubeadmconfigs", True, "KubeadmConfig")
KUBEADM_CONFIG_TEMPLATES: Final = Resource(
    BOOTSTRAP_GROUP, VERSION, "kubeadmconfigtemplates", True, "KubeadmConfigTemplate"
)
SIM_CLUSTERS: Final = Resource(INFRASTRUCTURE_GROUP, VERSION, "simclusters", True, "SimCluster")
SIM_MACHINES: Final = Resource(INFRASTRUCTURE_GROUP, VERSION, "simmachines", True, "SimMachine")
SIM_MACHINE_TEMPLATES: Final = Resource(
    INFRASTRUCTURE_GROUP, VERSION, "simmachinetemplates", True, "SimMachineTemplate"
)
NETNS_CLUSTERS: Final = Resource(INFRASTRUCTURE_GROUP, VERSION, "netnsclusters", True, "NetnsCluster")
NETNS_MACHINES: Final = Resource(INFRASTRUCTURE_GROUP, VERSION, "netnsmachines", True, "NetnsMachine")
NETNS_MACHINE_TEMPLATES: Final = Resource(
    INFRASTRUCTURE_GROUP, VERSION, "netnsmachinetemplates", True, "NetnsMachineTemplate"
)
VSPHERE_CLUSTERS: Final = Resource(INFRASTRUCTURE_GROUP, VERSION, "vsphereclusters", True, "VSphereCluster")
VSPHERE_MACHINES: Final = Resource(INFRASTRUCTURE_GROUP, VERSION, "vspheremachines", True, "VSphereMachine")
VSPHERE_MACHINE_TEMPLATES: Final = Resource(
    INFRASTRUCTURE_GROUP, VERSION, "vspheremachinetemplates", True, "VSphereMachineTemplate"
)
TINKERBELL_CLUSTERS: Final = Resource(
    INFRASTRUCTURE_GROUP, VERSION, "tinkerbellclusters", True, "TinkerbellCluster"
)
TINKERBELL_MACHINES: Final = Resource(
    INFRASTRUCTURE_GROUP, VERSION, "tinkerbellmachines", True, "TinkerbellMachine"
)
TINKERBELL_MACHINE_TEMPLATES: Final = Resource(
    INFRASTRUCTURE_GROUP, VERSION, "tinkerbellmachinetemplates", True, "TinkerbellMachineTemplate"
)
# Tinkerbell's own kinds. "hardware" is its own plural (as in Tinkerbell's CRD): resource_of() would
# say "hardwares".
HARDWARE: Final = Resource(TINKERBELL_GROUP, TINKERBELL_VERSION, "hardware", True, "Hardware")
WORKFLOWS: Final = Resource(TINKERBELL_GROUP, TINKERBELL_VERSION, "workflows", True, "Workflow")

DAEMONSETS: Final = Resource("apps", "v1", "daemonsets", True, "DaemonSet")
DEPLOYMENTS: Final = Resource("apps", "v1", "deployments", True, "Deployment")
SERVICES: Final = Resource("", "v1", "services", True, "Service")
