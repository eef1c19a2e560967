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
import sys
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import yaml

from anywhere.providers.netns._host import NetnsError, netns_exists
from anywhere.runtime import NODES, Client

__all__ = ["HostForwarder", "host_kubeconfig", "read_probe", "write_host_kubeconfig"]

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
        self._process: asyncio.subprocess.Process | None = None

    @property
    def port_file(self) -> Path:
        return self.folder / "forwarder.port"

    @property
    def log_file(self) -> Path:
        return self.folder / "forwarder.log"

    async def start(self) -> int:
        """Start the forwarder and wait until it listens; its port. NetnsError if it cannot."""
        if not netns_exists(self.fabric_namespace):
            raise NetnsError(
                f"network namespace {self.fabric_namespace} does not exist: is the cluster's fabric up?"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "anywhere.providers.netns.forwarder",
                "--netns",
                self.fabric_namespace,
                "--target",
                self.target,
                "--port-file",
                str(self.port_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            text = self.port_file.read_text().strip() if self.port_file.exists() else ""
            if text.isdigit():
                self.port = int(text)
                return self.port
            if self._process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await self.stop()
        log_text = self.log_file.read_text(errors="replace").strip() if self.log_file.exists() else ""
        raise NetnsError(
            f"the forwarder to {self.target} in {self.fabric_namespace} did not start: {log_text}"
        )

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def __aenter__(self) -> HostForwarder:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def read_probe(
    kubeconfig: Path, stop: asyncio.Event, *, interval: float = 0.1, timeout: float = 2.0
) -> tuple[int, int, int]:
    """Read the Nodes every ``interval`` seconds (10 Hz by default) until ``stop``, as a client that
    retries once sees the cluster (e.g. through an upgrade): (requests, retried, failed after one
    retry)."""
    requests = retried = failed = 0
    loop = asyncio.get_running_loop()
    async with Client.from_kubeconfig(kubeconfig) as api:
        while not stop.is_set():
            tick = loop.time()
            requests += 1
            for attempt in range(2):
                try:
                    await asyncio.wait_for(api.list(NODES), timeout)
                    break
                except Exception:
                    if attempt == 0:
                        retried += 1
                    else:
                        failed += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, tick + interval - loop.time()))
    return requests, retried, failed
