"""How the host reaches a netns cluster: a forwarder on loopback and a kubeconfig that uses it.

A cluster's endpoint (``VIP:6443``) exists only inside its fabric, and the host's routes are never
touched, so a kubeconfig for the host points at a loopback port of the forwarder
(:mod:`anywhere.providers.netns.forwarder`), which opens each connection from inside the fabric to
the VIP. TLS stays end to end: the kubeconfig keeps the cluster's CA and names the VIP as
``tls-server-name``, which every control plane machine's serving certificate carries, so kubectl
(or any client) verifies the real API server behind the forwarder, whichever machine holds the VIP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import yaml

from anywhere.providers.netns._host import (
    NetnsError,
    netns_exists,
    pid_alive,
    read_json,
    start_ticks,
    terminate,
    write_json,
)
from anywhere.runtime import NODES, Client

__all__ = [
    "FORWARDER_RECORD",
    "HostForwarder",
    "ProbeResult",
    "ensure_host_forwarder",
    "host_kubeconfig",
    "read_probe",
    "stop_host_forwarder",
    "write_host_kubeconfig",
]

START_TIMEOUT = 15.0


def host_kubeconfig(kubeconfig: str | bytes, port: int, host: str = "127.0.0.1") -> str:
    """``kubeconfig`` (the cluster's, for ``https://VIP:6443``) for use from the host: every
    cluster's server becomes ``https://HOST:PORT`` (the forwarder) and names its former host (the
    VIP) as ``tls-server-name``, unless one was named already."""
    document = yaml.safe_load(kubeconfig)
    if not isinstance(document, dict) or not document.get("clusters"):
        raise ValueError("the kubeconfig names no cluster")
    for entry in document["clusters"]:
        cluster = entry.get("cluster") or {}
        original = urlsplit(str(cluster.get("server") or "")).hostname
        if not original:
            raise ValueError(f"cluster {entry.get('name')!r} of the kubeconfig has no server")
        cluster.setdefault("tls-server-name", original)
        cluster["server"] = f"https://{host}:{port}"
        entry["cluster"] = cluster
    return yaml.safe_dump(document, sort_keys=False)


def write_host_kubeconfig(path: Path, kubeconfig: str | bytes, port: int) -> Path:
    """Write :func:`host_kubeconfig` to ``path`` (mode 0600: it holds the admin's credentials)."""
    text = host_kubeconfig(kubeconfig, port)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
    return path


class HostForwarder:
    """A forwarder process from a loopback port of the host to ``target`` inside ``fabric_namespace``,
    for as long as the ``async with`` block (or until :meth:`stop`)."""

    def __init__(self, fabric_namespace: str, target: str, folder: Path) -> None:
        self.fabric_namespace = fabric_namespace
        self.target = target
        self.folder = folder
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port_file(self) -> Path:
        return self.folder / "forwarder.port"

    @property
    def log_file(self) -> Path:
        return self.folder / "forwarder.log"

    async def start(self, *, port: int = 0, detached: bool = False) -> int:
        """Start the forwarder and wait until it listens; its port. NetnsError if it cannot.

        ``port``: listen there (0: any free port). ``detached``: in a session of its own, so that
        it outlives this process (the CLI's forwarder, kept until the cluster is deleted).
        """
        if not netns_exists(self.fabric_namespace):
            raise NetnsError(
                f"network namespace {self.fabric_namespace} does not exist: is the cluster's fabric up?"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", "anywhere.providers.netns.forwarder",
            "--netns", self.fabric_namespace,
            "--target", self.target,
            "--listen", f"127.0.0.1:{port}",
            "--port-file", str(self.port_file),
        ]  # fmt: skip

        def spawn() -> subprocess.Popen[bytes]:
            with self.log_file.open("ab") as log:
                return subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=detached,
                    close_fds=True,
                )

        self._process = await asyncio.to_thread(spawn)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
                return self.port
            if self._process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        await self.stop()
        log_text = self.log_file.read_text(errors="replace").strip() if self.log_file.exists() else ""
        raise NetnsError(
            f"the forwarder to {self.target} in {self.fabric_namespace} did not start: "
            f"{log_text.splitlines()[-1] if log_text else 'no output'}"
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        await terminate([(process.pid, start_ticks(process.pid))], 10)
        await asyncio.to_thread(process.wait)

    async def __aenter__(self) -> HostForwarder:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


FORWARDER_RECORD = "forwarder.json"


async def ensure_host_forwarder(folder: Path, fabric_namespace: str, target: str) -> int:
    """A detached forwarder for the host's kubeconfig of one cluster, recorded in ``folder``: the
    running one if its record says so, else a new one, on the port of the previous one when that
    port is still free (so the kubeconfig written for it stays valid). Its port."""
    record = read_json(folder / FORWARDER_RECORD) or {}
    pid, ticks, port = (
        int(record.get("pid") or 0),
        int(record.get("ticks") or 0),
        int(record.get("port") or 0),
    )
    if pid and pid_alive(pid, ticks) and record.get("target") == target:
        return port
    forwarder = HostForwarder(fabric_namespace, target, folder)
    try:
        await forwarder.start(port=port, detached=True)
    except NetnsError:
        if not port:
            raise
        await forwarder.start(detached=True)  # the old port is taken: any port, a new kubeconfig
    process = forwarder._process
    assert process is not None
    write_json(
        folder / FORWARDER_RECORD,
        {
            "pid": process.pid,
            "ticks": start_ticks(process.pid),
            "port": forwarder.port,
            "fabric": fabric_namespace,
            "target": target,
        },
    )
    return forwarder.port


async def stop_host_forwarder(folder: Path) -> bool:
    """Stop the forwarder recorded in ``folder`` (if it runs) and forget it; whether one ran."""
    record = read_json(folder / FORWARDER_RECORD) or {}
    pid, ticks = int(record.get("pid") or 0), int(record.get("ticks") or 0)
    ran = bool(pid) and pid_alive(pid, ticks)
    if ran:
        await terminate([(pid, ticks)], 10, group=True)
    (folder / FORWARDER_RECORD).unlink(missing_ok=True)
    return ran


@dataclass
class ProbeResult:
    """What a read probe saw: requests made, retried once, failed after the retry, and why."""

    requests: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    """The reasons of the failures after a retry (at most :data:`PROBE_ERRORS_KEPT`)."""


PROBE_ERRORS_KEPT = 10


async def read_probe(
    kubeconfig: Path, stop: asyncio.Event, *, interval: float = 0.1, timeout: float = 2.0
) -> ProbeResult:
    """Read the Nodes every ``interval`` seconds (10 Hz by default) until ``stop``, as a client that
    retries once sees the cluster (e.g. through an upgrade)."""
    result = ProbeResult()
    loop = asyncio.get_running_loop()
    async with Client.from_kubeconfig(kubeconfig) as api:
        while not stop.is_set():
            tick = loop.time()
            result.requests += 1
            for attempt in range(2):
                try:
                    await asyncio.wait_for(api.list(NODES), timeout)
                    break
                except Exception as exc:
                    if attempt == 0:
                        result.retried += 1
                        continue
                    result.failed += 1
                    if len(result.errors) < PROBE_ERRORS_KEPT:
                        reason = str(exc) or f"no answer within {timeout:g} s"
                        result.errors.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {reason}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, tick + interval - loop.time()))
    return result
