"""Host-level helpers of the netns provider: names, tools, namespaces, processes, state files.

Why one module: the fabric, DHCP, machine and process modules all need the same few facts about
the host (which tool is where, whether a namespace exists, which processes live in it, whether a
recorded pid is still the process we started), and they must agree on the naming scheme that lets
discovery and cleanup find everything the project made and nothing else.

Naming: every namespace of ours is ``aw-f-<scope>-<bridge>`` (a fabric) or ``aw-m-<scope>-<machine>``
(a machine), where ``<scope>`` is a random id kept in the state folder. So one state folder (one
management plane's view of the host's hardware) never collides with another, even when both use
the default bridge name, and cleanup of one folder finds its namespaces even when its records are
gone or half written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FABRIC_PREFIX",
    "MACHINE_PREFIX",
    "NETNS_DIR",
    "VETH_PREFIX",
    "NetnsError",
    "ToolMissingError",
    "in_netns",
    "list_netns",
    "namespace_of_pid",
    "namespace_pids",
    "netns_exists",
    "pid_alive",
    "proc_argv",
    "run",
    "scope_of",
    "stable_mac",
    "tool",
    "wait_until",
]

NETNS_DIR = Path("/run/netns")
FABRIC_PREFIX = "aw-f-"
MACHINE_PREFIX = "aw-m-"
# veth ends on a fabric's bridge: "awv" + 12 hex digits = 15 bytes, the Linux limit.
VETH_PREFIX = "awv"
SCOPE_FILE = "scope"

# The Debian package that provides each tool we run, for the "install X" hint.
PACKAGES = {
    "dnsmasq": "dnsmasq-base",
    "busybox": "busybox",
    "arping": "iputils-arping",
    "ping": "iputils-ping",
    "nsenter": "util-linux",
    "ip": "iproute2",
}

_SAFE_TOKEN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,198}[a-z0-9])?$")


class NetnsError(Exception):
    """A failure of the host's networking layer; the message says what is wrong and what to do."""


class ToolMissingError(NetnsError):
    """A program the provider runs is not installed."""


def tool(name: str) -> str:
    """The path of ``name`` on ``PATH``, or a clear error naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        package = PACKAGES.get(name, name)
        raise ToolMissingError(
            f"{name} is not installed (not found on PATH): install {package} (apt-get install {package})"
        )
    return path


def digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def name_token(name: str) -> str:
    """``name`` itself when it is safe in a file and namespace name, else a stable hash of it."""
    return name if _SAFE_TOKEN.match(name) else "h" + digest(name, 16)


def stable_mac(key: str) -> str:
    """A locally administered unicast MAC derived from ``key``: the same machine gets the same
    address, so dnsmasq hands a retried or restarted machine the lease it already has."""
    raw = hashlib.sha256(b"anywhere-netns-mac:" + key.encode()).digest()[:5]
    return "02:" + ":".join(f"{b:02x}" for b in raw)


def existing_scope(state_dir: Path) -> str | None:
    """The state folder's scope id, or None if it has none yet (nothing was ever made for it)."""
    try:
        text = (state_dir / SCOPE_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return text if re.fullmatch(r"[0-9a-f]{6}", text) else None


def scope_of(state_dir: Path) -> str:
    """The state folder's scope id (created on first use, then kept)."""
    found = existing_scope(state_dir)
    if found is not None:
        return found
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SCOPE_FILE
    candidate = secrets.token_hex(3)
    tmp = state_dir / f".{SCOPE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(candidate + "\n")
    try:
        # link() fails if another process won the race; then its id is the one.
        os.link(tmp, path)
    except FileExistsError:
        if not re.fullmatch(r"[0-9a-f]{6}", path.read_text().strip()):
            os.replace(tmp, path)
            return candidate
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path.read_text().strip()


_locks: dict[tuple[int, str], asyncio.Lock] = {}


def lock_for(key: str) -> asyncio.Lock:
    """One asyncio lock per ``key`` and event loop: concurrent reconciles of one fabric or machine
    in this process take turns (a lock must not outlive its loop, hence the loop in the key)."""
    loop_key = (id(asyncio.get_running_loop()), key)
    lock = _locks.get(loop_key)
    if lock is None:
        lock = _locks[loop_key] = asyncio.Lock()
    return lock


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` atomically: a reader (or a crash) sees the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- namespaces -------------------------------------------------------------------------------


def netns_path(namespace: str) -> Path:
    return NETNS_DIR / namespace


def netns_exists(namespace: str) -> bool:
    """Whether ``namespace`` is a live network namespace (a bind mount in /run/netns).

    A plain file there is the debris of a creation killed half way; it is not a namespace.
    """
    return os.path.ismount(netns_path(namespace))


def netns_id(namespace: str) -> tuple[int, int] | None:
    try:
        st = os.stat(netns_path(namespace))
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def list_netns(prefix: str) -> list[str]:
    """Named network namespaces whose name starts with ``prefix`` (debris files included)."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def in_netns(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``namespace``.

    nsenter switches the network namespace only, unlike ``ip netns exec``, which also gives the
    process a private mount namespace: a process started that way (a management plane inside a
    machine) could no longer create namespaces the host sees, because /run/netns mounts made in
    its mount namespace would not propagate back.
    """
    return [tool("nsenter"), f"--net={netns_path(namespace)}", "--", *argv]


def namespace_of_pid(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def namespace_pids(namespace: str) -> list[int]:
    """Every live process in ``namespace`` (what ``ip netns pids`` prints)."""
    ident = netns_id(namespace)
    if ident is None or not netns_exists(namespace):
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and namespace_of_pid(int(entry)) == ident:
            pids.append(int(entry))
    return sorted(pids)


# --- processes --------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of ``pid``, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def proc_argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def processes_naming(path: Path) -> dict[int, list[str]]:
    """Every other process with ``path`` (resolved) in its command line, with that command line:
    what uses a state folder's files from outside our namespaces."""
    marker = str(path.resolve())
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            argv = proc_argv(int(entry))
            if any(marker in arg for arg in argv):
                found[int(entry)] = argv
    return found


def start_ticks(pid: int) -> int:
    stat = proc_stat(pid)
    return stat[1] if stat else 0


def pid_alive(pid: int, ticks: int | None = None) -> bool:
    """Whether ``pid`` runs and, given ``ticks`` (its recorded start time), is still that process.

    A zombie is dead: if it is our child it is reaped here, so pids we started do not pile up.
    """
    stat = proc_stat(pid)
    if stat is None:
        return False
    state, started = stat
    if state in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return ticks is None or ticks == 0 or started == ticks


def signal_pid(pid: int, sig: int, *, group: bool = False) -> None:
    """Send ``sig``; a process that is already gone is not an error."""
    try:
        if group:
            try:
                os.killpg(pid, sig)
                return
            except ProcessLookupError:
                pass  # not a group leader any more: signal the process alone
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise NetnsError(f"cannot signal pid {pid}: {exc}; run as root") from exc


async def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (for the kernel and external
    processes, which offer no event to await). Backs off gently up to 0.2 s between polls."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.2)


async def terminate(pids: Sequence[tuple[int, int]], grace: float, *, group: bool = False) -> list[int]:
    """TERM each (pid, start ticks), KILL what outlives ``grace`` seconds; the pids still alive after
    that (normally none) are returned."""
    live = [(p, t) for p, t in pids if pid_alive(p, t)]
    for pid, _ in live:
        signal_pid(pid, signal.SIGTERM, group=group)
    if not await wait_until(lambda: not any(pid_alive(p, t) for p, t in live), grace):
        for pid, ticks in live:
            if pid_alive(pid, ticks):
                signal_pid(pid, signal.SIGKILL, group=group)
        await wait_until(lambda: not any(pid_alive(p, t) for p, t in live), 5.0)
    return [p for p, t in live if pid_alive(p, t)]


async def kill_namespace(namespace: str, grace: float = 2.0) -> None:
    """Stop every process in ``namespace`` (TERM, then KILL after ``grace``), including ones that
    appear while we do it (a dying supervisor may fork). Raises if something will not die."""
    for _ in range(5):
        pids = [(p, start_ticks(p)) for p in namespace_pids(namespace)]
        if not pids:
            return
        await terminate(pids, grace)
    left = namespace_pids(namespace)
    if left:
        raise NetnsError(
            f"processes {left} in network namespace {namespace} survived SIGKILL; "
            "they may be stuck in the kernel (uninterruptible I/O): wait and retry"
        )


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


async def run(argv: Sequence[str], timeout: float = 30.0, env: Mapping[str, str] | None = None) -> RunResult:
    """Run a short command to completion without blocking the event loop."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{argv[0]} is not installed: {exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise NetnsError(f"{' '.join(argv)} did not finish within {timeout:g}s") from None
    assert proc.returncode is not None
    return RunResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def remove_tree(path: Path) -> None:
    """Remove a state folder; one that is already gone is fine."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
