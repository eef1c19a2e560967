"""``infrastructure.cluster.x-k8s.io/v1beta1`` kinds of our own providers: ``sim``, ``netns``
and ``vsphere``.

They follow Cluster API's provider contract: the infrastructure cluster reports ``status.ready``
and the control plane endpoint; an infrastructure machine carries ``spec.providerID`` and reports
``status.ready`` and ``status.addresses``; a machine template wraps a machine spec as
``spec.template.spec``. Their behaviour settings are copied from the machine configs of the
``anywhere`` cluster specification (SimMachineConfig, NetnsMachineConfig,
VSphereMachineConfig).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from anywhere.api.capi._base import (
    CLUSTER_LABEL_COLUMN,
    APIEndpoint,
    InfrastructureObject,
    MachineAddress,
    TemplateMeta,
    age,
    column,
)
from anywhere.api.v1alpha1._base import Condition, Model
from anywhere.api.v1alpha1.vsphere import FailureDomain as VSphereFailureDomain

_READY = column("Ready", ".status.ready", "boolean", "Whether the infrastructure is ready")
_ENDPOINT = column("Endpoint", ".spec.controlPlaneEndpoint.host", description="Control plane endpoint")
_MACHINE = column(
    "Machine", '.metadata.ownerReferences[?(@.kind=="Machine")].name', description="Machine that owns it"
)
_PROVIDER_ID = column("ProviderID", ".spec.providerID", description="Provider ID")


class FailureDomain(Model):
    """A failure domain an infrastructure cluster offers."""

    control_plane: bool | None = None
    attributes: dict[str, str] | None = None


class InfraClusterSpec(Model):
    control_plane_endpoint: APIEndpoint | None = None


class InfraClusterStatus(Model):
    ready: bool | None = None
    failure_domains: dict[str, FailureDomain] | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


class InfraMachineStatus(Model):
    ready: bool | None = None
    addresses: list[MachineAddress] | None = None
    failure_reason: str | None = None
    failure_message: str | None = None
    conditions: list[Condition] | None = None
    observed_generation: int | None = None


_CLUSTER_COLUMNS = (CLUSTER_LABEL_COLUMN, _READY, _ENDPOINT)
_MACHINE_COLUMNS = (CLUSTER_LABEL_COLUMN, _MACHINE, _PROVIDER_ID, _READY)


class SimIPRange(Model):
    """An inclusive range of IPv4 addresses."""

    start: str | None = None
    end: str | None = None


class SimClusterSpec(InfraClusterSpec):
    """Where the simulated machines of a cluster live: the node network of its SimDatacenterConfig,
    and the control plane endpoint (VIP) the user chose, which no machine may be given."""

    node_subnet: str | None = None
    gateway: str | None = None
    dhcp_range: SimIPRange | None = None
    control_plane_vip: str | None = Field(default=None, alias="controlPlaneVIP")


class SimCluster(InfrastructureObject):
    """The simulated infrastructure of one cluster: ready once its control plane endpoint is served."""

    KIND: ClassVar[str] = "SimCluster"
    PLURAL: ClassVar[str] = "simclusters"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (*_CLUSTER_COLUMNS, age("SimCluster"))
    kind: Literal["SimCluster"] = "SimCluster"
    spec: SimClusterSpec = Field(default_factory=SimClusterSpec)
    status: InfraClusterStatus | None = None


class SimMachineSpec(Model):
    provider_id: str | None = Field(default=None, alias="providerID")
    boot_delay: str | None = None
    boot_jitter: str | None = None
    failure_rate: float | None = None


class SimMachine(InfrastructureObject):
    """An in-memory machine: how long it takes to boot and how likely its boot fails."""

    KIND: ClassVar[str] = "SimMachine"
    PLURAL: ClassVar[str] = "simmachines"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (*_MACHINE_COLUMNS, age("SimMachine"))
    kind: Literal["SimMachine"] = "SimMachine"
    spec: SimMachineSpec = Field(default_factory=SimMachineSpec)
    status: InfraMachineStatus | None = None


class SimMachineTemplateResource(Model):
    """The SimMachine each machine made from the template gets."""

    metadata: TemplateMeta | None = None
    spec: SimMachineSpec | None = None


class SimMachineTemplateSpec(Model):
    template: SimMachineTemplateResource | None = None


class SimMachineTemplate(InfrastructureObject):
    """A SimMachine to copy for every machine of a control plane, MachineDeployment or MachineSet."""

    KIND: ClassVar[str] = "SimMachineTemplate"
    PLURAL: ClassVar[str] = "simmachinetemplates"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (age("SimMachineTemplate"),)
    kind: Literal["SimMachineTemplate"] = "SimMachineTemplate"
    spec: SimMachineTemplateSpec = Field(default_factory=SimMachineTemplateSpec)


class NetnsClusterSpec(InfraClusterSpec):
    """The fabric a cluster's machines hang off (from its NetnsDatacenterConfig: the bridge, its
    subnet, gateway and DHCP range) and the control plane VIP the user chose.

    ``selfManaged``: the cluster manages itself (EKS Anywhere's management cluster), so each of its
    control plane machines runs the lifecycle controllers, leader-elected, against the cluster's
    own API; they take over once the cluster's objects are moved in from the bootstrap plane.
    """

    bridge_name: str | None = None
    bridge_subnet: str | None = None
    gateway: str | None = None
    dhcp_range: SimIPRange | None = None
    control_plane_vip: str | None = Field(default=None, alias="controlPlaneVIP")
    self_managed: bool | None = None


class NetnsCluster(InfrastructureObject):
    """The network namespace infrastructure of one cluster: its bridge and control plane VIP."""

    KIND: ClassVar[str] = "NetnsCluster"
    PLURAL: ClassVar[str] = "netnsclusters"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (*_CLUSTER_COLUMNS, age("NetnsCluster"))
    kind: Literal["NetnsCluster"] = "NetnsCluster"
    spec: NetnsClusterSpec = Field(default_factory=NetnsClusterSpec)
    status: InfraClusterStatus | None = None


class NetnsMachineSpec(Model):
    provider_id: str | None = Field(default=None, alias="providerID")
    boot_timeout: str | None = None


class NetnsMachine(InfrastructureObject):
    """A machine in its own network namespace on this host."""

    KIND: ClassVar[str] = "NetnsMachine"
    PLURAL: ClassVar[str] = "netnsmachines"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (*_MACHINE_COLUMNS, age("NetnsMachine"))
    kind: Literal["NetnsMachine"] = "NetnsMachine"
    spec: NetnsMachineSpec = Field(default_factory=NetnsMachineSpec)
    status: InfraMachineStatus | None = None


class NetnsMachineTemplateResource(Model):
    """The NetnsMachine each machine made from the template gets."""

    metadata: TemplateMeta | None = None
    spec: NetnsMachineSpec | None = None


class NetnsMachineTemplateSpec(Model):
    template: NetnsMachineTemplateResource | None = None


class NetnsMachineTemplate(InfrastructureObject):
    """A NetnsMachine to copy for every machine of a control plane, MachineDeployment or MachineSet."""

    KIND: ClassVar[str] = "NetnsMachineTemplate"
    PLURAL: ClassVar[str] = "netnsmachinetemplates"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (age("NetnsMachineTemplate"),)
    kind: Literal["NetnsMachineTemplate"] = "NetnsMachineTemplate"
    spec: NetnsMachineTemplateSpec = Field(default_factory=NetnsMachineTemplateSpec)


class SecretRef(Model):
    """A Secret in the object's namespace (or ``namespace``) holding ``username`` and ``password``."""

    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


class VSphereClusterSpec(InfraClusterSpec):
    """The vCenter a cluster lives in (from its VSphereDatacenterConfig): server, how to trust it,
    the credentials Secret, the datacenter and VM network, the failure domains machines spread
    over, and the control plane VIP the user chose."""

    server: str | None = None
    thumbprint: str | None = None
    insecure: bool | None = None
    identity_ref: SecretRef | None = None
    datacenter: str | None = None
    network: str | None = None
    failure_domains: list[VSphereFailureDomain] | None = None
    control_plane_vip: str | None = Field(default=None, alias="controlPlaneVIP")


class VSphereCluster(InfrastructureObject):
    """The vSphere infrastructure of one cluster: ready once vCenter answers and the datacenter exists."""

    KIND: ClassVar[str] = "VSphereCluster"
    PLURAL: ClassVar[str] = "vsphereclusters"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        *_CLUSTER_COLUMNS,
        column("Server", ".spec.server", description="vCenter server"),
        age("VSphereCluster"),
    )
    kind: Literal["VSphereCluster"] = "VSphereCluster"
    spec: VSphereClusterSpec = Field(default_factory=VSphereClusterSpec)
    status: InfraClusterStatus | None = None


class VSphereMachineSpec(Model):
    """One VM: the template it is cloned from and how, its size, and where it goes in vCenter.

    Placement fields left empty come from the machine's failure domain, if the cluster has any.
    ``tags`` are vSphere tag IDs attached to the VM; ``osFamily`` says which bootstrap format the
    guest reads (cloud-init for ubuntu/redhat, TOML user data for bottlerocket).
    """

    provider_id: str | None = Field(default=None, alias="providerID")
    template: str | None = None
    clone_mode: str | None = None
    num_cpus: int | None = Field(default=None, alias="numCPUs")
    memory_mib: int | None = Field(default=None, alias="memoryMiB")
    disk_gib: int | None = Field(default=None, alias="diskGiB")
    datastore: str | None = None
    folder: str | None = None
    resource_pool: str | None = None
    storage_policy_name: str | None = None
    networks: list[str] | None = None
    tags: list[str] | None = None
    os_family: str | None = None


class VSphereMachineStatus(InfraMachineStatus):
    """What vCenter says about the VM: its managed object ID and instance UUID, the failure domain it
    was placed in, and the vCenter task in flight (so a restarted controller follows it)."""

    vm_ref: str | None = None
    instance_uuid: str | None = None
    failure_domain: str | None = None
    task_ref: str | None = None


class VSphereMachine(InfrastructureObject):
    """A VM in vCenter, cloned from a template for one Machine."""

    KIND: ClassVar[str] = "VSphereMachine"
    PLURAL: ClassVar[str] = "vspheremachines"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (*_MACHINE_COLUMNS, age("VSphereMachine"))
    kind: Literal["VSphereMachine"] = "VSphereMachine"
    spec: VSphereMachineSpec = Field(default_factory=VSphereMachineSpec)
    status: VSphereMachineStatus | None = None


class VSphereMachineTemplateResource(Model):
    """The VSphereMachine each machine made from the template gets."""

    metadata: TemplateMeta | None = None
    spec: VSphereMachineSpec | None = None


class VSphereMachineTemplateSpec(Model):
    template: VSphereMachineTemplateResource | None = None


class VSphereMachineTemplate(InfrastructureObject):
    """A VSphereMachine to copy for every machine of a control plane, MachineDeployment or MachineSet."""

    KIND: ClassVar[str] = "VSphereMachineTemplate"
    PLURAL: ClassVar[str] = "vspheremachinetemplates"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (age("VSphereMachineTemplate"),)
    kind: Literal["VSphereMachineTemplate"] = "VSphereMachineTemplate"
    spec: VSphereMachineTemplateSpec = Field(default_factory=VSphereMachineTemplateSpec)
