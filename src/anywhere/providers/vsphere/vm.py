"""One VM's life in vCenter: clone, configure, tag, power, observe, destroy.

The functions run on a :class:`~anywhere.providers.vsphere._vcenter.VCenter` worker thread (they
take the service instance first). A VM is found by its instance UUID, which is the VSphereMachine's
UID (set in the clone spec, as Cluster API's vSphere provider does), so a controller that restarts
mid-clone finds the VM it started rather than making a second one. Two extraConfig keys mark the VM
as ours (:data:`OWNER_KEY`, :data:`CLUSTER_KEY`): deletion only ever destroys a VM that carries the
marker of the machine being deleted, and leak checks list VMs by the cluster key.

Bootstrap data goes in as guestinfo, the way cloud-init's VMware datasource and Bottlerocket read
it: ``guestinfo.userdata`` (the bootstrap Secret's value, base64) and ``guestinfo.metadata`` (the
instance ID and host name), each with its ``.encoding``.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any, Final

import yaml
from pyVmomi import vim, vmodl

from anywhere.providers.vsphere._vcenter import TASK_FAILED, VCenterError, fault_text
from anywhere.providers.vsphere.inventory import (
    FULL_CLONE,
    LINKED_CLONE,
    MachinePlacement,
    children,
    disk_gib,
    disks,
)

__all__ = [
    "CLUSTER_KEY",
    "OWNER_KEY",
    "Desired",
    "TaskState",
    "VMState",
    "apply_configuration",
    "attach_tags",
    "destroy",
    "find_vm",
    "guest_info",
    "observe",
    "power_on",
    "start_clone",
    "task_state",
    "vms_of_cluster",
]

OWNER_KEY: Final = "anywhere.machine"
CLUSTER_KEY: Final = "anywhere.cluster"
TASK_WAIT: Final = 120.0
GIB_KB: Final = 1024 * 1024


@dataclass(frozen=True)
class Desired:
    """What the VM of one VSphereMachine must be."""

    name: str
    uid: str
    owner: str  # "namespace/name": the ownership marker
    cluster: str  # "namespace/cluster"
    num_cpus: int
    memory_mib: int
    disk_gib: int | None
    clone_mode: str
    user_data: bytes
    tags: tuple[str, ...] = ()
    storage_policy_id: str = ""  # the VM's disks and home go by this storage policy, if set


@dataclass(frozen=True)
class VMState:
    """The VM as vCenter sees it, read in one round trip."""

    moid: str
    name: str
    owner: str
    powered_on: bool
    ip: str | None
    bios_uuid: str
    num_cpus: int
    memory_mib: int
    disk_gib: int
    networks: tuple[str, ...]
    boot_time: float | None


@dataclass(frozen=True)
class TaskState:
    state: str  # queued, running, success, error, gone
    error: str = ""


def guest_info(desired: Desired) -> dict[str, str]:
    """The extraConfig a VM boots with: bootstrap data, metadata and the ownership marker."""
    metadata = yaml.safe_dump({"instance-id": desired.name, "local-hostname": desired.name}, sort_keys=True)
    return {
        "guestinfo.userdata": base64.b64encode(desired.user_data).decode(),
        "guestinfo.userdata.encoding": "base64",
        "guestinfo.metadata": base64.b64encode(metadata.encode()).decode(),
        "guestinfo.metadata.encoding": "base64",
        OWNER_KEY: desired.owner,
        CLUSTER_KEY: desired.cluster,
    }


def _extra_config(values: dict[str, str]) -> list[Any]:
    return [vim.option.OptionValue(key=k, value=v) for k, v in values.items()]


def find_vm(si: Any, datacenter: Any, uid: str) -> Any | None:
    """The VM whose instance UUID is ``uid`` (a VSphereMachine's), if it exists."""
    return si.content.searchIndex.FindByUuid(datacenter, uid, True, True)


def _extra(config: Any, key: str) -> str | None:
    """The value of one extraConfig key of a VM's config, if set."""
    return next((str(o.value) for o in config.extraConfig or () if o.key == key), None)


def _nics(vm: Any) -> list[Any]:
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def _nic_network(nic: Any, by_key: dict[str, str]) -> str:
    backing = nic.backing
    if isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
        return by_key.get(str(backing.port.portgroupKey), str(backing.port.portgroupKey))
    return str(getattr(backing, "deviceName", "") or "")


def _portgroup_names(vm: Any) -> dict[str, str]:
    return {
        str(net.key): str(net.name)
        for net in vm.network or ()
        if isinstance(net, vim.dvs.DistributedVirtualPortgroup)
    }


def _guest_ip(vm: Any) -> str | None:
    """The guest's first IPv4 address (VMware Tools reports it once the guest has one)."""
    guest = vm.guest
    if guest is None:
        return None
    candidates: list[str] = []
    for nic in guest.net or ():
        candidates.extend(str(a) for a in nic.ipAddress or ())
    if guest.ipAddress:
        candidates.append(str(guest.ipAddress))
    for address in candidates:
        if address.count(".") == 3 and not address.startswith(("169.254.", "127.")):
            return address
    return None


def observe(si: Any, vm: Any) -> VMState:
    config = vm.config
    owner = _extra(config, OWNER_KEY) or ""
    by_key = _portgroup_names(vm)
    boot = vm.runtime.bootTime
    return VMState(
        moid=str(vm._moId),
        name=str(vm.name),
        owner=owner,
        powered_on=vm.runtime.powerState == vim.VirtualMachine.PowerState.poweredOn,
        ip=_guest_ip(vm),
        bios_uuid=str(config.uuid or ""),
        num_cpus=int(config.hardware.numCPU),
        memory_mib=int(config.hardware.memoryMB),
        disk_gib=disk_gib(vm),
        networks=tuple(_nic_network(nic, by_key) for nic in _nics(vm)),
        boot_time=boot.timestamp() if boot is not None else None,
    )


def _relocate_spec(placement: MachinePlacement, linked: bool, storage_policy_id: str) -> Any:
    spec = vim.vm.RelocateSpec(pool=placement.pool, datastore=placement.datastore)
    if linked:
        spec.diskMoveType = "createNewChildDiskBacking"
    if storage_policy_id:
        spec.profile = [vim.vm.DefinedProfileSpec(profileId=storage_policy_id)]
    return spec


def start_clone(si: Any, placement: MachinePlacement, desired: Desired) -> str:
    """Start cloning the template; returns the task's ID (followed with :func:`task_state`).

    A linked clone (a child disk of the template's current snapshot) when the config asks for one,
    or, with no clone mode set, when the template has a snapshot and the disk need not grow.
    """
    template = placement.template
    assert template is not None
    linked = desired.clone_mode == LINKED_CLONE or (
        desired.clone_mode != FULL_CLONE
        and template.snapshot is not None
        and (desired.disk_gib is None or desired.disk_gib <= template.disk_gib)
    )
    config = vim.vm.ConfigSpec(
        instanceUuid=desired.uid,
        numCPUs=desired.num_cpus,
        memoryMB=desired.memory_mib,
        extraConfig=_extra_config(guest_info(desired)),
    )
    spec = vim.vm.CloneSpec(
        location=_relocate_spec(placement, linked, desired.storage_policy_id),
        powerOn=False,
        template=False,
        config=config,
    )
    if linked:
        spec.snapshot = template.snapshot
    task = template.ref.CloneVM_Task(folder=placement.folder, name=desired.name, spec=spec)
    return str(task._moId)


def task_state(si: Any, task_id: str) -> TaskState:
    task = vim.Task(task_id, si._stub)
    try:
        info = task.info
    except vmodl.fault.ManagedObjectNotFound:
        return TaskState("gone")
    state = str(info.state)
    return TaskState(state, fault_text(info.error) if state == "error" and info.error is not None else "")


def _wait(task: Any, what: str) -> Any:
    deadline = time.monotonic() + TASK_WAIT
    while True:
        info = task.info
        if info.state == vim.TaskInfo.State.success:
            return info.result
        if info.state == vim.TaskInfo.State.error:
            raise VCenterError(TASK_FAILED, f"{what} failed in vCenter: {fault_text(info.error)}")
        if time.monotonic() > deadline:
            raise VCenterError(TASK_FAILED, f"{what} did not finish within {TASK_WAIT:.0f}s in vCenter")
        time.sleep(0.1)


def _backing(network: Any) -> Any:
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        switch: Any = network.config.distributedVirtualSwitch
        port = vim.dvs.PortConnection(portgroupKey=network.key, switchUuid=switch.uuid)
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name, network=network)


def apply_configuration(si: Any, vm: Any, placement: MachinePlacement, desired: Desired) -> bool:
    """Make CPUs, memory, disk size and NICs what the spec says (a reconfigure of the powered-off
    clone, waited for); returns whether anything had to change. Idempotent."""
    state = observe(si, vm)
    spec = vim.vm.ConfigSpec()
    changed = False
    if state.num_cpus != desired.num_cpus:
        spec.numCPUs, changed = desired.num_cpus, True
    if state.memory_mib != desired.memory_mib:
        spec.memoryMB, changed = desired.memory_mib, True
    devices: list[Any] = []
    vm_disks = disks(vm)
    if desired.disk_gib and vm_disks and state.disk_gib < desired.disk_gib:
        disk = vm_disks[0]
        disk.capacityInKB = desired.disk_gib * GIB_KB
        disk.capacityInBytes = desired.disk_gib * GIB_KB * 1024  # vCenter wants both to agree
        devices.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=disk))
    nics = _nics(vm)
    wanted = [n for n in placement.networks if n is not None]
    for index, network in enumerate(wanted):
        if index < len(nics):
            if index < len(state.networks) and state.networks[index] == network.name:
                continue
            nic = nics[index]
            nic.backing = _backing(network)
            devices.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic))
        else:
            nic = vim.vm.device.VirtualVmxnet3(backing=_backing(network), key=-(index + 1))
            nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(
                startConnected=True, allowGuestControl=True
            )
            devices.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=nic))
    if devices:
        spec.deviceChange, changed = devices, True
    if changed:
        _wait(vm.ReconfigVM_Task(spec=spec), f"reconfiguring VM {state.name}")
    return changed


def attach_tags(vcenter: Any, moid: str, tags: tuple[str, ...]) -> None:
    """Attach the tags the VM lacks (vCenter's tagging REST API, one session)."""
    if not tags:
        return
    target = {"object_id": {"id": moid, "type": "VirtualMachine"}}
    with vcenter.rest() as call:
        attached = set(
            call("POST", "/rest/com/vmware/cis/tagging/tag-association?~action=list-attached-tags", target)
            or ()
        )
        for tag in tags:
            if tag not in attached:
                call("POST", f"/rest/com/vmware/cis/tagging/tag-association/id:{tag}?~action=attach", target)


def power_on(si: Any, vm: Any) -> None:
    if vm.runtime.powerState != vim.VirtualMachine.PowerState.poweredOn:
        _wait(vm.PowerOnVM_Task(), f"powering on VM {vm.name}")


def destroy(si: Any, vm: Any, owner: str) -> None:
    """Power the VM off and destroy it, if it carries ``owner``'s marker (never anyone else's VM)."""
    state = observe(si, vm)
    if state.owner != owner:
        raise VCenterError(
            "NotOwner",
            f"VM {state.name} ({state.moid}) is not marked as this machine's ({OWNER_KEY}={state.owner!r}); "
            "it is left alone",
        )
    if state.powered_on:
        _wait(vm.PowerOffVM_Task(), f"powering off VM {state.name}")
    _wait(vm.Destroy_Task(), f"destroying VM {state.name}")


def vms_of_cluster(si: Any, cluster: str | None = None) -> dict[str, str]:
    """VMs carrying the cluster marker (of ``cluster``, or any): name -> marker value. What a leak
    check lists after a cluster is deleted."""
    found: dict[str, str] = {}
    for vm in children(si, si.content.rootFolder, [vim.VirtualMachine]):
        marker = _extra(vm.config, CLUSTER_KEY) if vm.config is not None else None
        if marker is not None and (cluster is None or marker == cluster):
            found[str(vm.name)] = marker
    return found
