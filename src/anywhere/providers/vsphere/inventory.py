"""Finding a cluster's objects in vCenter's inventory, and the preflight checks built on that.

Names in a cluster spec are what EKS Anywhere users write: inventory paths (``/DC0/vm/Templates/
ubuntu-2204-kube-v1-33``, ``/DC0/network/VM Network``, ``/DC0/host/DC0_C0/Resources``) or bare names,
which are looked up inside the datacenter. Every function here takes a pyVmomi service instance and
runs on a :class:`~anywhere.providers.vsphere._vcenter.VCenter` worker thread.

:func:`preflight` checks one datacenter config and the machine configs that use it against the live
inventory and returns one :class:`Problem` per thing that is wrong (a missing datacenter, network,
datastore, folder, resource pool, template, storage policy or tag; a template that does not carry
the cluster's Kubernetes version or cannot be linked-cloned), so the user fixes them all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import pbm, vim

from anywhere.api.infra._machine import name_has_kube_version
from anywhere.providers.vsphere._vcenter import VCenter, VCenterError

__all__ = [
    "DATACENTER_NOT_FOUND",
    "FULL_CLONE",
    "LINKED_CLONE",
    "MachinePlacement",
    "Problem",
    "Template",
    "children",
    "disk_gib",
    "disks",
    "find",
    "find_datacenter",
    "find_template",
    "placement_names",
    "preflight",
    "require_datacenter",
    "resolve_placement",
    "storage_policies",
    "storage_policy_names",
    "template_info",
]

DATACENTER_NOT_FOUND = "DatacenterNotFound"
LINKED_CLONE = "linkedClone"
FULL_CLONE = "fullClone"
GIB = 1024**3


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the inventory: which setting, and what to do."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Template:
    """What a clone needs to know about its template."""

    ref: Any
    name: str
    is_template: bool
    snapshot: Any  # the current snapshot (a linked clone's base), or None
    disk_gib: int


@dataclass
class MachinePlacement:
    """The managed objects a VM is cloned into (resolved from names, on a worker thread)."""

    datacenter: Any
    folder: Any
    pool: Any
    datastore: Any
    networks: list[Any] = field(default_factory=list)
    template: Template | None = None


# -- look-ups ---------------------------------------------------------------------------------------


def children(si: Any, root: Any, kinds: Sequence[type]) -> list[Any]:
    """Every object of ``kinds`` below ``root`` (a container view, destroyed after)."""
    view = si.content.viewManager.CreateContainerView(root, list(kinds), True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def find_datacenter(si: Any, name: str) -> Any | None:
    """The datacenter named ``name`` (or at inventory path ``/name``)."""
    name = name.strip("/")
    found = si.content.searchIndex.FindByInventoryPath(name)
    if isinstance(found, vim.Datacenter):
        return found
    return next((dc for dc in children(si, si.content.rootFolder, [vim.Datacenter]) if dc.name == name), None)


def require_datacenter(si: Any, name: str) -> Any:
    """The datacenter named ``name``; VCenterError (``DatacenterNotFound``) when vCenter has none."""
    found = find_datacenter(si, name)
    if found is None:
        raise VCenterError(
            DATACENTER_NOT_FOUND,
            f"datacenter {name!r} was not found in vCenter; check spec.datacenter of the VSphereDatacenterConfig",
        )
    return found


def find(si: Any, datacenter: Any, path: str, kind: type, root: Any) -> Any | None:
    """An object of ``kind`` at an inventory path (``/DC0/...``) or, for a bare name, anywhere
    under ``root`` (a folder of the datacenter)."""
    path = path.strip()
    if path.startswith("/"):
        found = si.content.searchIndex.FindByInventoryPath(path.lstrip("/"))
        return found if isinstance(found, kind) else None
    if "/" in path:
        found = si.content.searchIndex.FindByInventoryPath(f"{datacenter.name}/{path}")
        if isinstance(found, kind):
            return found
    return next((obj for obj in children(si, root, [kind]) if obj.name == path), None)


def find_template(si: Any, datacenter: Any, path: str) -> Any | None:
    return find(si, datacenter, path, vim.VirtualMachine, datacenter.vmFolder)


def disks(vm: Any) -> list[Any]:
    return [d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]


def disk_gib(vm: Any) -> int:
    """The size of the VM's (or template's) largest disk, in whole GiB rounded up."""
    capacity = max((int(d.capacityInBytes or d.capacityInKB * 1024) for d in disks(vm)), default=0)
    return -(-capacity // GIB)


def template_info(vm: Any) -> Template:
    snapshot = vm.snapshot.currentSnapshot if vm.snapshot is not None else None
    return Template(
        ref=vm,
        name=vm.name,
        is_template=bool(vm.config.template),
        snapshot=snapshot,
        disk_gib=disk_gib(vm),
    )


def storage_policies(vcenter: VCenter, si: Any) -> dict[str, str]:
    """vCenter's storage policies (the storage policy service, pbm): name -> profile ID."""
    content = vcenter.pbm_content(si)
    manager = content.profileManager
    ids = manager.PbmQueryProfile(resourceType=pbm.profile.ResourceType(resourceType="STORAGE"))
    profiles = manager.PbmRetrieveContent(profileIds=ids) if ids else []
    return {str(profile.name): str(profile.profileId.uniqueId) for profile in profiles}


def storage_policy_names(vcenter: VCenter, si: Any) -> set[str]:
    """The names of vCenter's storage policies."""
    return set(storage_policies(vcenter, si))


def missing_tags(vcenter: VCenter, tags: Iterable[str]) -> set[str]:
    """The tag IDs of ``tags`` that vCenter does not know (one REST session for all of them)."""
    wanted = set(tags)
    if not wanted:
        return set()
    with vcenter.rest() as call:
        return {tag for tag in wanted if call("GET", f"/rest/com/vmware/cis/tagging/tag/id:{tag}") is None}


def _pool_of(si: Any, datacenter: Any, path: str) -> Any | None:
    pool = find(si, datacenter, path, vim.ResourcePool, datacenter.hostFolder)
    if pool is None:  # a compute cluster or host named instead: its root pool
        compute = find(si, datacenter, path, vim.ComputeResource, datacenter.hostFolder)
        pool = compute.resourcePool if compute is not None else None
    return pool


def default_pool(si: Any, datacenter: Any) -> Any | None:
    """The root resource pool of the datacenter's first compute resource (when none is named)."""
    computes = children(si, datacenter.hostFolder, [vim.ComputeResource])
    return computes[0].resourcePool if computes else None


def default_datastore(si: Any, datacenter: Any) -> Any | None:
    stores = sorted(datacenter.datastore, key=lambda ds: ds.name)
    return stores[0] if stores else None


# -- what a machine is cloned into -------------------------------------------------------------------


@dataclass(frozen=True)
class PlacementNames:
    """Where a VM goes, as the spec names it (a failure domain's settings override the machine's)."""

    datacenter: str
    template: str
    network: str
    folder: str = ""
    resource_pool: str = ""
    datastore: str = ""
    extra_networks: tuple[str, ...] = ()


def placement_names(
    cluster: Mapping[str, Any], machine: Mapping[str, Any], domain: Mapping[str, Any] | None = None
) -> PlacementNames:
    """Where a machine goes: its VSphereMachine (or machine template) spec ``machine`` placed in
    the cluster's datacenter and network (``cluster``: a VSphereCluster spec) or, when it is given,
    in failure domain ``domain``, whose compute cluster (or resource pool), datastore, folder and
    network take precedence. The CLI's preflight and the machine controller both place by this."""
    domain = domain or {}

    def text(*values: Any) -> str:
        return str(next((v for v in values if v), ""))

    return PlacementNames(
        datacenter=text(cluster.get("datacenter")),
        template=text(machine.get("template")),
        network=text(domain.get("network"), cluster.get("network")),
        folder=text(domain.get("folder"), machine.get("folder")),
        resource_pool=text(
            domain.get("resourcePool"), domain.get("computeCluster"), machine.get("resourcePool")
        ),
        datastore=text(domain.get("datastore"), machine.get("datastore")),
        extra_networks=tuple(str(n) for n in machine.get("networks") or ()),
    )


def resolve_placement(si: Any, names: PlacementNames, *, where: str = "") -> MachinePlacement:
    """The managed objects for ``names``; raises VCenterError naming every one that is missing."""
    problems: list[Problem] = []
    placement = _resolve(si, names, problems, where or "VSphereMachine")
    if problems:
        raise VCenterError("InventoryNotFound", "; ".join(str(p) for p in problems))
    assert placement is not None
    return placement


def _resolve(si: Any, names: PlacementNames, problems: list[Problem], where: str) -> MachinePlacement | None:
    datacenter = find_datacenter(si, names.datacenter)
    if datacenter is None:
        problems.append(Problem(where, _missing("datacenter", names.datacenter)))
        return None
    folder = (
        find(si, datacenter, names.folder, vim.Folder, datacenter.vmFolder)
        if names.folder
        else datacenter.vmFolder
    )
    if folder is None:
        problems.append(Problem(f"{where} folder", _missing("folder", names.folder, "create it")))
    pool = (
        _pool_of(si, datacenter, names.resource_pool) if names.resource_pool else default_pool(si, datacenter)
    )
    if pool is None:
        problems.append(Problem(f"{where} resourcePool", _missing("resource pool", names.resource_pool)))
    datastore = (
        find(si, datacenter, names.datastore, vim.Datastore, datacenter.datastoreFolder)
        if names.datastore
        else default_datastore(si, datacenter)
    )
    if datastore is None:
        problems.append(Problem(f"{where} datastore", _missing("datastore", names.datastore)))
    networks = []
    for network_name in (names.network, *names.extra_networks):
        network = find(si, datacenter, network_name, vim.Network, datacenter.networkFolder)
        if network is None:
            problems.append(Problem(f"{where} network", _missing("network", network_name)))
        networks.append(network)
    template = find_template(si, datacenter, names.template)
    if template is None:
        problems.append(
            Problem(
                f"{where} template",
                _missing(
                    "template", names.template, "import the OVA for this Kubernetes version as a template"
                ),
            )
        )
    info = template_info(template) if template is not None else None
    if info is not None and not info.is_template:
        problems.append(
            Problem(
                f"{where} template",
                f"{names.template} is a virtual machine, not a template: mark it as a template",
            )
        )
    return MachinePlacement(datacenter, folder, pool, datastore, networks, info)


def _missing(what: str, name: str, hint: str = "") -> str:
    text = f"{what} {name!r} was not found in vCenter"
    return f"{text}; {hint}" if hint else f"{text}; check the name (or give its full inventory path)"


# -- preflight ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MachineCheck:
    """One machine config to check: its placement names and what else the spec asks of vCenter."""

    kind_name: str  # "VSphereMachineConfig NAME", for messages
    names: PlacementNames
    kubernetes_version: str
    clone_mode: str = ""
    disk_gib: int | None = None
    storage_policy: str = ""
    tags: tuple[str, ...] = ()


def preflight(
    vcenter: VCenter, si: Any, datacenter_where: str, datacenter: str, machines: Iterable[MachineCheck]
) -> list[Problem]:
    """Every problem of the datacenter and the machine configs, one per missing or unusable object."""
    if find_datacenter(si, datacenter) is None:
        return [Problem(f"{datacenter_where} spec.datacenter", _missing("datacenter", datacenter))]
    problems: list[Problem] = []
    policies: set[str] | None = None
    checks = list(machines)
    for check in checks:
        where = check.kind_name
        placement = _resolve(si, check.names, problems, where)
        template = placement.template if placement is not None else None
        if template is not None:
            if check.kubernetes_version and not name_has_kube_version(
                template.name, check.kubernetes_version
            ):
                problems.append(
                    Problem(
                        f"{where} template",
                        f"template {template.name!r} does not carry Kubernetes version {check.kubernetes_version} in "
                        "its name; use the template built for that version",
                    )
                )
            if check.clone_mode == LINKED_CLONE and template.snapshot is None:
                problems.append(
                    Problem(
                        f"{where} cloneMode",
                        f"linkedClone needs a snapshot of template {template.name!r}, and it has none; take one, or "
                        "use cloneMode fullClone",
                    )
                )
            if check.disk_gib and check.disk_gib < template.disk_gib:
                problems.append(
                    Problem(
                        f"{where} diskGiB",
                        f"{check.disk_gib} GiB is smaller than the disk of template {template.name!r} "
                        f"({template.disk_gib} GiB); a clone cannot shrink it",
                    )
                )
            if check.clone_mode == LINKED_CLONE and check.disk_gib and check.disk_gib > template.disk_gib:
                problems.append(
                    Problem(
                        f"{where} diskGiB",
                        f"a linked clone keeps the template's {template.disk_gib} GiB disk; use cloneMode fullClone "
                        f"for {check.disk_gib} GiB",
                    )
                )
        if check.storage_policy:
            if policies is None:
                policies = storage_policy_names(vcenter, si)
            if check.storage_policy not in policies:
                problems.append(
                    Problem(
                        f"{where} storagePolicyName",
                        f"storage policy {check.storage_policy!r} was not found in vCenter; known: "
                        f"{', '.join(sorted(policies)) or 'none'}",
                    )
                )
    unknown = missing_tags(vcenter, (tag for check in checks for tag in check.tags))
    problems.extend(
        Problem(
            f"{check.kind_name} tags",
            f"tag {tag} was not found in vCenter; create it or remove it from the spec",
        )
        for check in checks
        for tag in check.tags
        if tag in unknown
    )
    unique: dict[str, Problem] = {}
    for problem in problems:
        unique.setdefault(str(problem), problem)
    return list(unique.values())
