"""Cluster API style kinds (``cluster.x-k8s.io`` and its control plane, bootstrap and
infrastructure groups, all ``v1beta1``): our own implementation of Cluster API's objects, so that
``kubectl get machines -A`` shows what Cluster API users expect. Tinkerbell's ``Hardware`` and
``Workflow`` (``tinkerbell.org/v1alpha1``), which the bare metal provider works with, are here too.

Kind names repeat across groups (``Cluster`` is also an ``anywhere.eks.amazonaws.com`` kind), so
:data:`KINDS` is keyed by ``(apiVersion, kind)``.
"""

from __future__ import annotations

from anywhere.api.capi._base import (
    BOOTSTRAP_API_VERSION,
    BOOTSTRAP_GROUP,
    CLUSTER_API_VERSION,
    CLUSTER_GROUP,
    CLUSTER_NAME_LABEL,
    CONTROL_PLANE_API_VERSION,
    CONTROL_PLANE_GROUP,
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_NAME_LABEL,
    INFRASTRUCTURE_API_VERSION,
    INFRASTRUCTURE_GROUP,
    MACHINE_DEPLOYMENT_NAME_LABEL,
    MACHINE_SET_NAME_LABEL,
    PAUSED_ANNOTATION,
    VERSION,
    CapiObject,
)
from anywhere.api.capi.cluster import Cluster
from anywhere.api.capi.infrastructure import (
    NetnsCluster,
    NetnsMachine,
    NetnsMachineTemplate,
    SimCluster,
    SimMachine,
    SimMachineTemplate,
    VSphereCluster,
    VSphereMachine,
    VSphereMachineTemplate,
)
from anywhere.api.capi.kubeadm import KubeadmConfig, KubeadmConfigTemplate, KubeadmControlPlane
from anywhere.api.capi.machine import Machine
from anywhere.api.capi.machinedeployment import MachineDeployment
from anywhere.api.capi.machinehealthcheck import MachineHealthCheck
from anywhere.api.capi.machineset import MachineSet
from anywhere.api.capi.tinkerbell import (
    HARDWARE_OWNER_NAME_LABEL,
    HARDWARE_OWNER_NAMESPACE_LABEL,
    TINKERBELL_API_VERSION,
    TINKERBELL_GROUP,
    TINKERBELL_VERSION,
    Hardware,
    TinkerbellCluster,
    TinkerbellMachine,
    TinkerbellMachineTemplate,
    Workflow,
)

ALL_KINDS: tuple[type[CapiObject], ...] = (
    Cluster,
    Machine,
    MachineSet,
    MachineDeployment,
    MachineHealthCheck,
    KubeadmControlPlane,
    KubeadmConfig,
    KubeadmConfigTemplate,
    SimCluster,
    SimMachine,
    SimMachineTemplate,
    NetnsCluster,
    NetnsMachine,
    NetnsMachineTemplate,
    VSphereCluster,
    VSphereMachine,
    VSphereMachineTemplate,
    TinkerbellCluster,
    TinkerbellMachine,
    TinkerbellMachineTemplate,
    Hardware,
    Workflow,
)

KINDS: dict[tuple[str, str], type[CapiObject]] = {
    (f"{kind.GROUP}/{kind.VERSION}", kind.KIND): kind for kind in ALL_KINDS
}

__all__ = [
    "ALL_KINDS",
    "BOOTSTRAP_API_VERSION",
    "BOOTSTRAP_GROUP",
    "CLUSTER_API_VERSION",
    "CLUSTER_GROUP",
    "CLUSTER_NAME_LABEL",
    "CONTROL_PLANE_API_VERSION",
    "CONTROL_PLANE_GROUP",
    "CONTROL_PLANE_LABEL",
    "CONTROL_PLANE_NAME_LABEL",
    "HARDWARE_OWNER_NAMESPACE_LABEL",
    "HARDWARE_OWNER_NAME_LABEL",
    "INFRASTRUCTURE_API_VERSION",
    "INFRASTRUCTURE_GROUP",
    "KINDS",
    "MACHINE_DEPLOYMENT_NAME_LABEL",
    "MACHINE_SET_NAME_LABEL",
    "PAUSED_ANNOTATION",
    "TINKERBELL_API_VERSION",
    "TINKERBELL_GROUP",
    "TINKERBELL_VERSION",
    "VERSION",
    "CapiObject",
    "Cluster",
    "Hardware",
    "KubeadmConfig",
    "KubeadmConfigTemplate",
    "KubeadmControlPlane",
    "Machine",
    "MachineDeployment",
    "MachineHealthCheck",
    "MachineSet",
    "NetnsCluster",
    "NetnsMachine",
    "NetnsMachineTemplate",
    "SimCluster",
    "SimMachine",
    "SimMachineTemplate",
    "TinkerbellCluster",
    "TinkerbellMachine",
    "TinkerbellMachineTemplate",
    "VSphereCluster",
    "VSphereMachine",
    "VSphereMachineTemplate",
    "Workflow",
]
