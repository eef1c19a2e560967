"""The management plane of a self-managed cluster: one background process per cluster folder.

``anywhere create cluster`` for a self-managed cluster runs ``anywhere serve --controllers`` detached
from the terminal (its own session, so Ctrl-C in the terminal leaves it running), with its state in
``NAME/.anywhere``: the store, certificates, ``admin.kubeconfig``, ``plane.log`` (its stdout and
stderr) and ``plane.pid``. Later commands find it there, start it again when it is down, and
``delete cluster`` stops it. Everything here is synchronous: it runs before or after the asyncio
part of a command, never inside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".anywhere"
READY_LINE = re.compile(r"anywhere API server ready at (\S+) \(kubeconfig: (.+)\)\s*$")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_POLL = 0.05
# Set to 0 to run the plane without controllers (a bare API server): for tests that play the
# controllers' part themselves, and for the time before the controllers exist.
CONTROLLERS_ENV = "ANYWHERE_PLANE_CONTROLLERS"


class PlaneError(Exception):
    """The plane could not be started or stopped; the message says why and where to look."""


@dataclass(frozen=True)
class PlaneDir:
    """The state folder of one cluster's management plane (``NAME/.anywhere``)."""

    root: Path

    @classmethod
    def of(cls, cluster_folder: Path) -> PlaneDir:
        return cls(cluster_folder / STATE_DIR)

    @property
    def log(self) -> Path:
        return self.root / "plane.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "plane.pid"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def created_file(self) -> Path:
        return self.root / "created.json"

    def exists(self) -> bool:
        return self.root.is_dir()


@dataclass(frozen=True)
class Plane:
    pid: int
    url: str
    kubeconfig: Path
    started: bool
    """True when this call started the process (False: it was running already)."""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process; reaps it if it is our exited child."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _is_plane(pid: int, state: PlaneDir) -> bool:
    """Whether ``pid`` runs ``anywhere serve`` on this state folder (a pid file may be stale and the
    number reused by another process)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    args = [a.decode(errors="replace") for a in argv]
    return "serve" in args and str(state.root.resolve()) in args


def running_pid(state: PlaneDir) -> int | None:
    """The pid of this folder's running plane, or None (a stale pid file is removed)."""
    try:
        pid = int(state.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if _alive(pid) and _is_plane(pid, state):
        return pid
    with contextlib.suppress(OSError):
        state.pid_file.unlink()
    return None


def server_url(kubeconfig: Path) -> str:
    """The server address in a kubeconfig (for messages), or ``?`` when it cannot be read."""
    try:
        text = kubeconfig.read_text()
    except OSError:
        return "?"
    match = re.search(r"server:\s*(\S+)", text)
    return match.group(1) if match else "?"


@contextlib.contextmanager
def _locked(state: PlaneDir) -> Iterator[None]:
    """One command at a time starts or stops a folder's plane."""
    state.root.mkdir(parents=True, exist_ok=True)
    with open(state.root / "plane.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def command(state: PlaneDir, cluster: str, *, self_cluster: bool = True) -> list[str]:
    """How the plane is run: the API server and every controller in one process. ``self_cluster``:
    the plane is the cluster's own API (sim); else it is a bootstrap plane that creates the cluster
    elsewhere (netns) and has no cluster of its own."""
    argv = [
        sys.executable,
        "-m",
        "anywhere",
        "serve",
        "--data-dir",
        str(state.root.resolve()),
        "--port",
        "0",
        "--reuse-port",
    ]
    if os.environ.get(CONTROLLERS_ENV, "1") != "0":
        argv += ["--controllers", *(["--self-cluster", cluster] if self_cluster else [])]
    return argv


def ensure(
    state: PlaneDir,
    cluster: str,
    *,
    timeout: float = START_TIMEOUT,
    self_cluster: bool = True,
    env: dict[str, str] | None = None,
) -> Plane:
    """The folder's plane, started (detached) if it is not running, once it answers. ``env`` is
    added to the plane's environment (provider settings)."""
    with _locked(state):
        pid = running_pid(state)
        if pid is not None:
            return Plane(pid, server_url(state.kubeconfig), state.kubeconfig, started=False)
        return _start(state, command(state, cluster, self_cluster=self_cluster), timeout, env)


def _start(state: PlaneDir, argv: list[str], timeout: float, env: dict[str, str] | None) -> Plane:
    state.root.mkdir(parents=True, exist_ok=True)
    with open(state.log, "ab") as log:
        offset = log.tell()
        process = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    state.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    seen = b""
    while True:
        with open(state.log, "rb") as log:
            log.seek(offset)
            seen = log.read()
        for line in seen.decode(errors="replace").splitlines():
            match = READY_LINE.search(line)
            if match:
                return Plane(process.pid, match.group(1), Path(match.group(2)), started=True)
        code = process.poll()
        if code is not None:
            with contextlib.suppress(OSError):
                state.pid_file.unlink()
            raise PlaneError(
                f"the management plane exited (status {code}) before it was ready: {_last_line(seen)} "
                f"(full log: {state.log})"
            )
        if time.monotonic() > deadline:
            _terminate(process.pid, STOP_TIMEOUT)
            with contextlib.suppress(OSError):
                state.pid_file.unlink()
            raise PlaneError(
                f"the management plane was not ready within {timeout:g} s and was stopped; see {state.log}"
            )
        time.sleep(_POLL)


def _last_line(log: bytes) -> str:
    lines = [line.strip() for line in log.decode(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def stop(state: PlaneDir, *, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the folder's plane: SIGTERM, then SIGKILL if it has not exited within ``timeout``.
    Returns the pid stopped, or None when none was running."""
    with _locked(state):
        pid = running_pid(state)
        if pid is not None:
            _terminate(pid, timeout)
        with contextlib.suppress(OSError):
            state.pid_file.unlink()
        return pid


def _terminate(pid: int, timeout: float) -> None:
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        _signal(pid, sig)
        deadline = time.monotonic() + wait
        while _alive(pid):
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL)
        else:
            return
    raise PlaneError(f"the management plane (pid {pid}) did not exit even after SIGKILL")


def _signal(pid: int, sig: signal.Signals) -> None:
    """The plane leads its own session: signal its whole process group, else just the process."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def record_created(state: PlaneDir, *, folder_created: bool) -> None:
    """Remember (once) whether the cluster folder was ours, so delete removes only what we made."""
    if not state.created_file.exists():
        state.created_file.write_text(json.dumps({"folder": folder_created}) + "\n")


def folder_was_created(state: PlaneDir) -> bool:
    try:
        return bool(json.loads(state.created_file.read_text()).get("folder"))
    except (OSError, ValueError, AttributeError):
        return False
