"""Reading Hardware objects, and the claim a TinkerbellMachine puts on one.

A piece of hardware belongs to at most one TinkerbellMachine. The claim is the pair of labels
Cluster API Provider Tinkerbell uses (``v1alpha1.tinkerbell.org/ownerName`` and ``ownerNamespace``),
written with a compare-and-swap on the Hardware's resourceVersion, so that two machines choosing at
the same time cannot both take it: the loser's write conflicts and it chooses again. Hardware
without the labels is the free pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from anywhere.api.capi.tinkerbell import HARDWARE_OWNER_NAME_LABEL, HARDWARE_OWNER_NAMESPACE_LABEL
from anywhere.controllers.objects import deleting, labels_of, name_of, namespace_of

__all__ = [
    "address_of",
    "claim_patch",
    "free",
    "has_bmc",
    "interface_of",
    "mac_of",
    "name_servers_of",
    "netboot_allowed",
    "owned_by",
    "owner_of",
    "release_patch",
]

Obj = dict[str, Any]


def interface_of(hardware: Obj) -> Obj:
    """The first network interface's DHCP settings (the one the server netboots from)."""
    interfaces = (hardware.get("spec") or {}).get("interfaces") or [{}]
    return dict(interfaces[0].get("dhcp") or {})


def name_servers_of(hardware: Obj) -> tuple[str, ...]:
    """The DNS servers of the netboot interface, in either spelling (ours, or Tinkerbell's own
    ``name_servers``)."""
    dhcp = interface_of(hardware)
    servers = dhcp.get("nameServers")
    if servers is None:
        servers = dhcp.get("name_servers")
    return tuple(str(s) for s in servers or ())


def mac_of(hardware: Obj) -> str:
    return str(interface_of(hardware).get("mac") or "").lower()


def address_of(hardware: Obj) -> str:
    return str((interface_of(hardware).get("ip") or {}).get("address") or "")


def owner_of(hardware: Obj) -> tuple[str, str] | None:
    """(namespace, name) of the TinkerbellMachine that holds ``hardware``; None when it is free."""
    labels = labels_of(hardware)
    name = labels.get(HARDWARE_OWNER_NAME_LABEL)
    if not name:
        return None
    return labels.get(HARDWARE_OWNER_NAMESPACE_LABEL) or namespace_of(hardware), name


def owned_by(hardware: Iterable[Obj], namespace: str, machine: str) -> Obj | None:
    """The hardware held by TinkerbellMachine ``namespace/machine``, if any."""
    return next((h for h in hardware if owner_of(h) == (namespace, machine)), None)


def has_bmc(hardware: Obj) -> bool:
    """Whether the hardware's BMC is known: without one anywhere cannot netboot it."""
    return bool(((hardware.get("spec") or {}).get("bmc") or {}).get("host"))


def free(hardware: Iterable[Obj]) -> list[Obj]:
    """The pool: hardware with a BMC that no machine holds and no one is deleting, by name."""
    return sorted(
        (h for h in hardware if owner_of(h) is None and has_bmc(h) and not deleting(h)),
        key=name_of,
    )


def netboot_allowed(hardware: Obj) -> bool:
    """Whether the hardware may netboot and run its workflow now (what :func:`claim_patch` allows)."""
    netboot = (((hardware.get("spec") or {}).get("interfaces") or [{}])[0]).get("netboot") or {}
    return bool(netboot.get("allowPXE") and netboot.get("allowWorkflow"))


def _netboot(hardware: Obj, allowed: bool) -> list[Obj]:
    interfaces = [dict(i) for i in (hardware.get("spec") or {}).get("interfaces") or []]
    for interface in interfaces:
        interface["netboot"] = {
            **(interface.get("netboot") or {}),
            "allowPXE": allowed,
            "allowWorkflow": allowed,
        }
    return interfaces


def claim_patch(hardware: Obj, namespace: str, machine: str, user_data: str) -> Obj:
    """The patch that gives ``hardware`` to TinkerbellMachine ``namespace/machine``, lets it netboot
    and run its workflow, and hands it the machine's bootstrap data."""
    return {
        "metadata": {
            "labels": {HARDWARE_OWNER_NAME_LABEL: machine, HARDWARE_OWNER_NAMESPACE_LABEL: namespace}
        },
        "spec": {"interfaces": _netboot(hardware, True), "userData": user_data},
    }


def release_patch(hardware: Obj) -> Obj:
    """The patch that returns ``hardware`` to the pool, netbooting no more."""
    return {
        "metadata": {"labels": {HARDWARE_OWNER_NAME_LABEL: None, HARDWARE_OWNER_NAMESPACE_LABEL: None}},
        "spec": {"interfaces": _netboot(hardware, False), "userData": None},
    }
