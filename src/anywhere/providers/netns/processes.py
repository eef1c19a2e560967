"""Processes that run inside a machine's namespace and outlive whoever started them.

Why detached: a real machine keeps running its etcd member, API server and agents when the
management plane that created it dies; so must ours. Each process is started in a new session
(its own process group, no controlling terminal), with ``subprocess.Popen`` rather than asyncio's
subprocess support, because asyncio kills the children of its transports when the loop closes.
Its pid and start time are recorded as JSON in a folder, so any later process (a restarted
management plane, a test after its loop restarted) finds it, tells a recycled pid from it, and
stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anywhere.providers.netns._host import (
    NetnsError,
    ToolMissingError,
    in_netns,
    netns_exists,
    pid_alive,
    read_json,
    signal_pid,
    start_ticks,
    terminate,
    wait_until,
    write_json,
)

__all__ = ["ProcessError", "ProcessRecord", "ProcessTable"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

# Popen objects of the processes this process started: kept so they are not garbage collected
# while running (Popen warns), and polled so their exits are reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}


class ProcessError(NetnsError):
    """A process could not be started or stopped."""


@dataclass(frozen=True)
class ProcessRecord:
    """A process we started: enough to find it again and to tell it from a recycled pid."""

    name: str
    namespace: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    log_file: str
    started_at: float
    env: Mapping[str, str] = field(default_factory=dict)

    def running(self) -> bool:
        return pid_alive(self.pid, self.start_ticks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "pid": self.pid,
            "startTicks": self.start_ticks,
            "argv": list(self.argv),
            "logFile": self.log_file,
            "startedAt": self.started_at,
            "env": dict(self.env),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            namespace=str(data["namespace"]),
            pid=int(data["pid"]),
            start_ticks=int(data["startTicks"]),
            argv=tuple(str(a) for a in data["argv"]),
            log_file=str(data["logFile"]),
            started_at=float(data["startedAt"]),
            env={str(k): str(v) for k, v in dict(data.get("env") or {}).items()},
        )


class ProcessTable:
    """The processes started in network namespace ``namespace``, recorded in ``folder``.

    Names are the caller's (``etcd``, ``apiserver``, ``vip-agent``); one live process per name.
    """

    def __init__(self, folder: Path, namespace: str) -> None:
        self.folder = folder
        self.namespace = namespace

    def _record_path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"{name!r} is not a process name (letters, digits, '_', '.', '-')")
        return self.folder / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def get(self, name: str) -> ProcessRecord | None:
        """The record of ``name`` (running or not), or None."""
        data = read_json(self._record_path(name))
        if data is None:
            return None
        try:
            return ProcessRecord.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None

    def list(self) -> list[ProcessRecord]:
        """Every recorded process, running or not."""
        if not self.folder.is_dir():
            return []
        records = []
        for path in sorted(self.folder.glob("*.json")):
            record = self.get(path.stem)
            if record is not None:
                records.append(record)
        return records

    def running(self, name: str) -> bool:
        _reap()
        record = self.get(name)
        return record is not None and record.running()

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcessRecord:
        """Start ``argv`` detached in the namespace; its output goes to ``log_file`` (appended;
        default ``<folder>/<name>.log``). ``env`` is added to this process's environment.

        Refuses when a process of that name is already running (see :meth:`ensure`).
        """
        path = self._record_path(name)
        existing = self.get(name)
        if existing is not None and existing.running():
            raise ProcessError(
                f"{name} is already running in {self.namespace} (pid {existing.pid}); stop it first"
            )
        if not argv:
            raise ValueError("argv is empty")
        if not netns_exists(self.namespace):
            raise ProcessError(f"cannot start {name}: network namespace {self.namespace} does not exist")
        environ = {**os.environ, **(env or {})}
        program = shutil.which(argv[0], path=environ.get("PATH"))
        if program is None:
            raise ToolMissingError(f"cannot start {name}: {argv[0]} not found on PATH")
        log = log_file or self.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        full = in_netns(self.namespace, [program, *argv[1:]])

        def start() -> subprocess.Popen[bytes]:
            with open(log, "ab") as out:
                return subprocess.Popen(
                    full,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environ,
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                )

        try:
            popen = await asyncio.to_thread(start)
        except OSError as exc:
            raise ProcessError(f"cannot start {name} in {self.namespace}: {exc}") from exc
        _children[popen.pid] = popen
        record = ProcessRecord(
            name=name,
            namespace=self.namespace,
            pid=popen.pid,
            start_ticks=start_ticks(popen.pid),
            argv=tuple(argv),
            log_file=str(log),
            started_at=time.time(),
            env=dict(env or {}),
        )
        write_json(path, record.to_dict())
        return record

    async def ensure(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcessRecord:
        """The running process ``name`` if it runs ``argv`` with ``env``, else a fresh one (a
        running one with other arguments is stopped first)."""
        existing = self.get(name)
        if existing is not None and existing.running():
            if list(existing.argv) == list(argv) and dict(existing.env) == dict(env or {}):
                return existing
            await self.stop(name)
        return await self.spawn(name, argv, log_file=log_file, env=env, cwd=cwd)

    async def stop(self, name: str, grace: float = 5.0) -> bool:
        """Stop ``name`` and its process group: TERM, then KILL after ``grace`` seconds.
        Forgets the record. False if it was not running."""
        record = self.get(name)
        if record is None:
            return False
        was_running = record.running()
        if was_running:
            left = await terminate([(record.pid, record.start_ticks)], grace, group=True)
            if left:
                raise ProcessError(f"{name} (pid {record.pid}) in {self.namespace} survived SIGKILL")
        _reap()
        with contextlib.suppress(FileNotFoundError):
            self._record_path(name).unlink()
        return was_running

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` (default SIGKILL: a crash, for tests) to ``name`` only, not its group, and
        keep the record. Returns the pid signalled, or None if it was not running."""
        record = self.get(name)
        if record is None or not record.running():
            return None
        signal_pid(record.pid, sig)
        return record.pid

    async def wait_exit(self, name: str, timeout: float) -> bool:
        """Wait until ``name`` is not running; False if it still runs after ``timeout``."""
        return await wait_until(lambda: not self.running(name), timeout)

    async def stop_all(self, grace: float = 5.0) -> None:
        for record in self.list():
            await self.stop(record.name, grace)


def _reap() -> None:
    """Collect the exit status of children of ours that have finished."""
    for pid, popen in list(_children.items()):
        if popen.poll() is not None:
            del _children[pid]
