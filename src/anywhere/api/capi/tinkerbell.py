"""Kinds of the ``tinkerbell`` (bare metal) provider: Cluster API Provider Tinkerbell's infrastructure
kinds (``infrastructure.cluster.x-k8s.io/v1beta1``) and Tinkerbell's own ``Hardware`` and ``Workflow``
(``tinkerbell.org/v1alpha1``).

The infrastructure kinds keep CAPT's field names (``hardwareAffinity``, ``templateOverride``,
``bootOptions``, ``hardwareName``) so that people who run CAPT read them as they expect. ``Hardware``
is one bare metal server: its NIC's DHCP settings, its disks, and (our deviation from Tinkerbell) its
BMC connection, folded in from Rufio's ``Machine`` kind, whose name would make ``kubectl get
machines`` ambiguous. A ``Workflow`` keeps the workflow rendered for the machine it provisions, where
Tinkerbell keeps a separate ``Template`` object.

Hardware is claimed as CAPT claims it: a TinkerbellMachine sets the owner labels
(:data:`HARDWARE_OWNER_NAME_LABEL`, :data:`HARDWARE_OWNER_NAMESPACE_LABEL`) on it; hardware without
them is free.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from anywhere.api.capi._base import (
    CLUSTER_LABEL_COLUMN,
    CapiObject,
    InfrastructureObject,
    TemplateMeta,
    age,
    column,
)
from anywhere.api.capi.infrastructure import InfraClusterSpec, InfraClusterStatus, InfraMachineStatus
from anywhere.api.v1alpha1._base import Condition, Model
from anywhere.api.v1alpha1.tinkerbell import HardwareAffinity

TINKERBELL_GROUP: Final = "tinkerbell.org"
TINKERBELL_VERSION: Final = "v1alpha1"
TINKERBELL_API_VERSION: Final = f"{TINKERBELL_GROUP}/{TINKERBELL_VERSION}"

# The labels by which a TinkerbellMachine holds a Hardware (CAPT's names). Hardware without them is free.
HARDWARE_OWNER_NAME_LABEL: Final = "v1alpha1.tinkerbell.org/ownerName"
HARDWARE_OWNER_NAMESPACE_LABEL: Final = "v1alpha1.tinkerbell.org/ownerNamespace"

# Workflow states (Tinkerbell's names).
STATE_PENDING: Final = "STATE_PENDING"
STATE_RUNNING: Final = "STATE_RUNNING"
STATE_SUCCESS: Final = "STATE_SUCCESS"
STATE_FAILED: Final = "STATE_FAILED"
STATE_TIMEOUT: Final = "STATE_TIMEOUT"

_READY = column("Ready", ".status.ready", "boolean", "Whether the infrastructure is ready")


def _label_path(label: str) -> str:
    """A JSONPath to a label's value, dots escaped as kubectl wants them."""
    escaped = label.replace(".", "\\.")
    return f".metadata.labels['{escaped}']"


class TinkerbellObject(CapiObject):
    """Base of the kinds of ``tinkerbell.org/v1alpha1``: Tinkerbell's own group, not Cluster API's."""

    GROUP: ClassVar[str] = TINKERBELL_GROUP
    VERSION: ClassVar[str] = TINKERBELL_VERSION
    CATEGORIES: ClassVar[tuple[str, ...]] = ("tinkerbell",)
    api_version: str = Field(default=TINKERBELL_API_VERSION)


# --------------------------------------------------------------------------- TinkerbellCluster


class TinkerbellClusterSpec(InfraClusterSpec):
    """Where the Tinkerbell stack of a cluster is (from its TinkerbellDatacenterConfig), where OS and
    HookOS images come from, and the control plane VIP the user chose, which no machine may be given."""

    tinkerbell_ip: str | None = Field(default=None, alias="tinkerbellIP")
    os_image_url: str | None = Field(default=None, alias="osImageURL")
    hook_images_url_path: str | None = Field(default=None, alias="hookImagesURLPath")
    control_plane_vip: str | None = Field(default=None, alias="controlPlaneVIP")


class TinkerbellCluster(InfrastructureObject):
    """The bare metal infrastructure of one cluster: ready once its Tinkerbell stack serves DHCP and
    netboot for its machines and the control plane endpoint is set."""

    KIND: ClassVar[str] = "TinkerbellCluster"
    PLURAL: ClassVar[str] = "tinkerbellclusters"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        CLUSTER_LABEL_COLUMN,
        _READY,
        column("Endpoint", ".spec.controlPlaneEndpoint.host", description="Control plane endpoint"),
        column("Tinkerbell IP", ".spec.tinkerbellIP", description="IP of the Tinkerbell stack"),
        age("TinkerbellCluster"),
    )
    kind: Literal["TinkerbellCluster"] = "TinkerbellCluster"
    spec: TinkerbellClusterSpec = Field(default_factory=TinkerbellClusterSpec)
    status: InfraClusterStatus | None = None


# --------------------------------------------------------------------------- TinkerbellMachine


class BootOptions(Model):
    """How the machine boots into the provisioning OS: ``netboot`` (PXE/iPXE), or ``isoboot`` from
    ``isoURL``."""

    boot_mode: str | None = None
    iso_url: str | None = Field(default=None, alias="isoURL")


class TinkerbellMachineSpec(Model):
    """One bare metal machine: which hardware it may take (``hardwareAffinity``), the hardware it took
    (``hardwareName``, set once claimed), the workflow that installs it (``templateOverride``, a
    Tinkerbell workflow as YAML; the default workflow when empty) and the OS it installs."""

    provider_id: str | None = Field(default=None, alias="providerID")
    hardware_name: str | None = None
    hardware_affinity: HardwareAffinity | None = None
    template_override: str | None = None
    os_family: str | None = None
    os_image_url: str | None = Field(default=None, alias="osImageURL")
    boot_options: BootOptions | None = None


class TinkerbellMachineStatus(InfraMachineStatus):
    """When the server was asked to netboot (``bootRequested``) or power off (``powerOffRequested``):
    the BMC applies a power change some seconds later, and an unanswered request is made again."""

    boot_requested: str | None = None
    power_off_requested: str | None = None


class TinkerbellMachine(InfrastructureObject):
    """A bare metal server provisioned for one Machine: hardware claimed from the pool, installed by a
    Tinkerbell workflow."""

    KIND: ClassVar[str] = "TinkerbellMachine"
    PLURAL: ClassVar[str] = "tinkerbellmachines"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        CLUSTER_LABEL_COLUMN,
        column("Hardware", ".spec.hardwareName", description="Hardware the machine runs on"),
        column("ProviderID", ".spec.providerID", description="Provider ID"),
        _READY,
        age("TinkerbellMachine"),
    )
    kind: Literal["TinkerbellMachine"] = "TinkerbellMachine"
    spec: TinkerbellMachineSpec = Field(default_factory=TinkerbellMachineSpec)
    status: TinkerbellMachineStatus | None = None


class TinkerbellMachineTemplateResource(Model):
    """The TinkerbellMachine each machine made from the template gets."""

    metadata: TemplateMeta | None = None
    spec: TinkerbellMachineSpec | None = None


class TinkerbellMachineTemplateSpec(Model):
    template: TinkerbellMachineTemplateResource | None = None


class TinkerbellMachineTemplate(InfrastructureObject):
    """A TinkerbellMachine to copy for every machine of a control plane, MachineDeployment or MachineSet."""

    KIND: ClassVar[str] = "TinkerbellMachineTemplate"
    PLURAL: ClassVar[str] = "tinkerbellmachinetemplates"
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (age("TinkerbellMachineTemplate"),)
    kind: Literal["TinkerbellMachineTemplate"] = "TinkerbellMachineTemplate"
    spec: TinkerbellMachineTemplateSpec = Field(default_factory=TinkerbellMachineTemplateSpec)


# --------------------------------------------------------------------------- Hardware


class SecretReference(Model):
    """A Secret by name and namespace."""

    name: str | None = None
    namespace: str | None = None


class BMC(Model):
    """How to reach the server's baseboard management controller (Redfish): host, port (the
    service's default when unset) and the Secret with its ``username`` and ``password``."""

    host: str | None = None
    port: int | None = None
    auth_secret_ref: SecretReference | None = None


class Disk(Model):
    """A disk of the server, by device path (e.g. ``/dev/sda``)."""

    device: str | None = None


class IP(Model):
    """The address the DHCP server hands out, with its netmask and gateway."""

    address: str | None = None
    netmask: str | None = None
    gateway: str | None = None


class DHCP(Model):
    """What the DHCP server answers the NIC with this MAC address."""

    mac: str | None = None
    hostname: str | None = None
    ip: IP | None = None
    name_servers: list[str] | None = None
    arch: str | None = None
    uefi: bool | None = None
    vlan_id: str | None = Field(default=None, alias="vlanID")


class Netboot(Model):
    """Whether the server may netboot now (PXE) and run a workflow: true only while it is provisioned."""

    allow_pxe: bool | None = Field(default=None, alias="allowPXE")
    allow_workflow: bool | None = None


class Interface(Model):
    """A NIC of the server: its DHCP reservation and netboot permissions."""

    dhcp: DHCP | None = None
    netboot: Netboot | None = None


class HardwareSpec(Model):
    """``userData`` is the bootstrap data of the machine that holds the hardware, which Tinkerbell's
    metadata service hands the installed OS on its first boot."""

    bmc: BMC | None = None
    disks: list[Disk] | None = None
    interfaces: list[Interface] | None = None
    user_data: str | None = None


class HardwareStatus(Model):
    conditions: list[Condition] | None = None


class Hardware(TinkerbellObject):
    """A bare metal server of the pool: its NIC, disks and BMC. Labels say what it is for (e.g.
    ``type: cp``); a TinkerbellMachine that takes it adds the owner labels."""

    KIND: ClassVar[str] = "Hardware"
    PLURAL: ClassVar[str] = "hardware"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("hw",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column(
            "Owner", _label_path(HARDWARE_OWNER_NAME_LABEL), description="TinkerbellMachine that holds it"
        ),
        column("MAC", ".spec.interfaces[0].dhcp.mac", description="MAC address of the netboot NIC"),
        column("IP", ".spec.interfaces[0].dhcp.ip.address", description="IP address of the netboot NIC"),
        column("BMC", ".spec.bmc.host", description="Host of the baseboard management controller"),
        age("Hardware"),
    )
    kind: Literal["Hardware"] = "Hardware"
    spec: HardwareSpec = Field(default_factory=HardwareSpec)
    status: HardwareStatus | None = None


# --------------------------------------------------------------------------- Workflow


class WorkflowSpec(Model):
    """The hardware a workflow runs on and the workflow itself, rendered for it (``rendered``, YAML);
    ``hardwareMap`` maps the template's workers (``device_1``) to the hardware's MAC."""

    template_ref: str | None = None
    hardware_ref: str | None = None
    hardware_map: dict[str, str] | None = None
    rendered: str | None = None


class WorkflowAction(Model):
    """What became of one action: status (a workflow state), when it started, how long it ran."""

    name: str | None = None
    image: str | None = None
    status: str | None = None
    started_at: str | None = None
    seconds: int | None = None
    message: str | None = None
    timeout: int | None = None


class WorkflowTask(Model):
    """What became of one task, on the worker (the machine) that ran it."""

    name: str | None = None
    worker_id: str | None = Field(default=None, alias="workerID")
    actions: list[WorkflowAction] | None = None


class WorkflowStatus(Model):
    state: str | None = None
    tasks: list[WorkflowTask] | None = None
    global_timeout: int | None = None


class Workflow(TinkerbellObject):
    """The provisioning of one TinkerbellMachine (same name): the actions its server runs, and how far
    they got (``status.state``: STATE_PENDING, STATE_RUNNING, STATE_SUCCESS, STATE_FAILED or
    STATE_TIMEOUT)."""

    KIND: ClassVar[str] = "Workflow"
    PLURAL: ClassVar[str] = "workflows"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("wf",)
    PRINTER_COLUMNS: ClassVar[tuple[dict[str, Any], ...]] = (
        column("State", ".status.state", description="How far the workflow got"),
        column("Hardware", ".spec.hardwareRef", description="Hardware the workflow runs on"),
        age("Workflow"),
    )
    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec = Field(default_factory=WorkflowSpec)
    status: WorkflowStatus | None = None
