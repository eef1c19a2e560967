"""Discovery and cleanup of everything the netns provider made on this host.

Everything of ours is findable without trusting our records: namespaces carry a prefix and the
state folder's scope id (``aw-f-<scope>-...``, ``aw-m-<scope>-...``), every process we start runs
inside one of them (dnsmasq in a fabric, udhcpc and the machine's services in a machine), and
every interface we make lives inside them (veth peers ``awv...`` and bridges in fabrics, ``eth0``
in machines). So ``cleanup_all`` also removes what a crashed create left half made, and the leak
check used by tests sees anything that escaped, including an interface of ours in the host's
namespace, which would be a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from anywhere.providers.netns import _netlink
from anywhere.providers.netns._host import (
    FABRIC_PREFIX,
    MACHINE_PREFIX,
    SCOPE_FILE,
    VETH_PREFIX,
    existing_scope,
    kill_namespace,
    list_netns,
    namespace_pids,
    proc_argv,
    processes_naming,
    remove_tree,
)
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.machines import MachineNamespace

__all__ = [
    "Inventory",
    "NamespaceProcess",
    "cleanup_all",
    "cleanup_host",
    "discover",
    "leaks",
    "scope_id",
]


@dataclass(frozen=True)
class NamespaceProcess:
    pid: int
    namespace: str | None  # None: outside our namespaces (found by its command line)
    argv: tuple[str, ...]


@dataclass
class Inventory:
    """What exists on the host: of one state folder's scope, or of the whole project."""

    namespaces: list[str] = field(default_factory=list)
    links: dict[str, list[str]] = field(default_factory=dict)  # namespace -> interfaces but lo
    processes: list[NamespaceProcess] = field(default_factory=list)
    host_links: list[str] = field(default_factory=list)  # ours in the host namespace: a bug
    state_files: list[str] = field(default_factory=list)

    @property
    def dnsmasq(self) -> list[NamespaceProcess]:
        return [p for p in self.processes if p.argv and os.path.basename(p.argv[0]) == "dnsmasq"]

    def empty(self) -> bool:
        return not (self.namespaces or self.processes or self.host_links or self.state_files)

    def describe(self) -> list[str]:
        """One line per thing found, for messages and leak reports."""
        lines = [
            f"namespace {ns} (interfaces: {', '.join(self.links.get(ns, [])) or 'none'})"
            for ns in self.namespaces
        ]
        lines += [
            f"process {p.pid} in {p.namespace or 'the host namespace'}: {' '.join(p.argv)}"
            for p in self.processes
        ]
        lines += [f"interface {name} in the host namespace" for name in self.host_links]
        lines += [f"state file {path}" for path in self.state_files]
        return lines


def _prefixes(state_dir: Path | None, scope: str | None = None) -> tuple[str, ...] | None:
    if state_dir is None and scope is None:
        return (FABRIC_PREFIX, MACHINE_PREFIX)
    if scope is None and state_dir is not None:
        scope = existing_scope(state_dir)
    if scope is None:
        return None
    return (f"{FABRIC_PREFIX}{scope}-", f"{MACHINE_PREFIX}{scope}-")


def _our_namespaces(state_dir: Path | None, scope: str | None) -> list[str]:
    prefixes = _prefixes(state_dir, scope)
    if prefixes is None:
        return []
    return sorted({ns for prefix in prefixes for ns in list_netns(prefix)})


def _state_files(state_dir: Path) -> list[str]:
    files: list[str] = []
    for entry in ("fabrics", "machines", SCOPE_FILE):
        path = state_dir / entry
        if path.is_file():
            files.append(str(path))
        elif path.is_dir():
            files.extend(str(p) for p in sorted(path.rglob("*")) if not p.is_dir())
            if not any(path.iterdir()):
                files.append(str(path) + "/")
    return files


def _inventory(state_dir: Path | None, scope: str | None) -> Inventory:
    found = Inventory(namespaces=_our_namespaces(state_dir, scope))
    seen: set[int] = set()
    for ns in found.namespaces:
        found.links[ns] = [name for name in _netlink.link_names(ns) if name != "lo"]
        for pid in namespace_pids(ns):
            seen.add(pid)
            found.processes.append(NamespaceProcess(pid, ns, tuple(proc_argv(pid))))
    if state_dir is not None:
        # Processes elsewhere that use our files (a dnsmasq or client started outside its
        # namespace would be a bug; a management plane whose data sits in the folder is a leak).
        for pid, argv in processes_naming(state_dir).items():
            if pid not in seen:
                found.processes.append(NamespaceProcess(pid, None, tuple(argv)))
        found.state_files = _state_files(state_dir)
    found.host_links = [
        name for name in _host_link_names() if name.startswith((VETH_PREFIX, FABRIC_PREFIX, MACHINE_PREFIX))
    ]
    return found


def _host_link_names() -> list[str]:
    """Interface names of this process's namespace (read from /sys: no netlink socket needed)."""
    try:
        return sorted(os.listdir("/sys/class/net"))
    except FileNotFoundError:
        return []


async def discover(state_dir: Path | None = None, scope: str | None = None) -> Inventory:
    """Everything of state folder ``state_dir`` on the host, or of the whole project if None.

    ``scope`` (see :func:`scope_id`) finds the folder's namespaces after its scope file is gone.
    """
    return await asyncio.to_thread(_inventory, Path(state_dir) if state_dir is not None else None, scope)


async def leaks(state_dir: Path, scope: str | None = None) -> list[str]:
    """What is left of ``state_dir`` (empty when nothing is): for tests and delete's final check.
    Pass the ``scope`` read before a cleanup to check the cleanup itself."""
    return (await discover(state_dir, scope)).describe()


def scope_id(state_dir: Path) -> str | None:
    """The scope id of ``state_dir`` (None if nothing was ever made for it)."""
    return existing_scope(Path(state_dir))


async def _remove_namespace(namespace: str) -> None:
    await kill_namespace(namespace)
    await asyncio.to_thread(_netlink.remove_netns, namespace)


async def cleanup_all(state_dir: Path) -> None:
    """Remove everything the state folder made: machines (releasing their leases), fabrics
    (dnsmasq with them), namespaces left half made without a record, and the state files. Used
    by tests and by ``anywhere delete cluster`` after a create that crashed; a second call finds
    nothing to do. Files of others in the folder are left alone."""
    state_dir = Path(state_dir)
    for machine in MachineNamespace.all(state_dir):
        await machine.destroy()
    prefixes = _prefixes(state_dir)
    if prefixes is not None:
        for namespace in list_netns(prefixes[1]):
            await _remove_namespace(namespace)
    fabrics_dir = state_dir / "fabrics"
    if fabrics_dir.is_dir():
        for folder in sorted(fabrics_dir.iterdir()):
            fabric = Fabric.load(state_dir, folder.name)
            if fabric is not None:
                await fabric.destroy()
    if prefixes is not None:
        for namespace in list_netns(prefixes[0]):
            await _remove_namespace(namespace)
    remove_tree(state_dir / "machines")
    remove_tree(fabrics_dir)
    # The scope goes last: it is what finds this folder's namespaces.
    with contextlib.suppress(FileNotFoundError):
        (state_dir / SCOPE_FILE).unlink()
    with contextlib.suppress(OSError):
        state_dir.rmdir()  # only if nothing else is in it


async def cleanup_host() -> list[str]:
    """Remove every namespace of the project on this host, of any state folder, with its
    processes. For a host whose state folders are lost; returns what it removed."""
    removed = []
    for prefix in (MACHINE_PREFIX, FABRIC_PREFIX):
        for namespace in list_netns(prefix):
            await _remove_namespace(namespace)
            removed.append(namespace)
    return removed
