"""``anywhere serve``: run the API server as a process, over HTTPS, until SIGTERM.

On first start the data folder gets a CA, serving and admin certificates, an admin token and the
store; every later start (and a replica started with a copy of the folder) reuses them. Once it
listens, the server writes ``admin.kubeconfig`` and prints one line saying where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from anywhere.apiserver import pki
from anywhere.apiserver._http import User
from anywhere.apiserver.server import APIServer
from anywhere.storage import Storage
from anywhere.storage.sqlite import SQLiteStorage

log = logging.getLogger("anywhere.apiserver")
COMPACT_EVERY = 300.0
HISTORY = 100_000


@dataclass
class ServeOptions:
    data_dir: Path
    port: int = 6443
    host: str = "127.0.0.1"
    storage: str = "sqlite"
    extra_sans: tuple[str, ...] = ()
    # With port 0: serve on the port this folder was last served on, if any (a management plane's
    # kubeconfigs then stay valid across restarts); otherwise any free port.
    reuse_port: bool = False
    # Runs beside the server once it is ready, given the admin kubeconfig, until the server stops
    # (the management plane's controllers); its failure stops the server.
    companion: Callable[[Path], Coroutine[Any, Any, None]] | None = None


class TokenAndCertAuthenticator:
    """Who is calling: a verified client certificate, or a bearer token known to the server."""

    def __init__(self, tokens: dict[str, User]) -> None:
        self._tokens = tokens

    async def __call__(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            presented = header[len("Bearer ") :].strip()
            for token, user in self._tokens.items():
                if hmac.compare_digest(token, presented):
                    return user
            return None
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        identity = pki.peer_identity(peercert) if peercert else None
        if identity is None:
            return None
        name, groups = identity
        return User(name, tuple(groups))


async def open_storage(options: ServeOptions) -> Storage:
    if options.storage != "sqlite":
        raise SystemExit(f"error: storage {options.storage!r} is not available; use --storage sqlite")
    return await SQLiteStorage.open(options.data_dir / "state.db")


async def run(options: ServeOptions, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation); every step of shutdown runs even after errors."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    port_file = options.data_dir / "port"
    if options.port == 0 and options.reuse_port and port_file.exists():
        # A folder served before keeps its port, so kubeconfigs written for it stay valid.
        with contextlib.suppress(ValueError, OSError):
            options.port = int(port_file.read_text().strip())
    keys = pki.load_or_create(options.data_dir, list(options.extra_sans))
    storage = await open_storage(options)
    authenticator = TokenAndCertAuthenticator({keys.admin_token: User("admin", ("system:masters",))})
    server = APIServer(storage, authenticator)
    runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    compactor: asyncio.Task[None] | None = None
    companion: asyncio.Task[None] | None = None
    try:
        await server.start()
        runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner, options.host, options.port, ssl_context=pki.server_ssl_context(keys), reuse_address=True
        )
        await site.start()
        port = options.port or _bound_port(runner)
        port_file.write_text(f"{port}\n")
        url = f"https://{_reachable(options.host)}:{port}"
        kubeconfig = options.data_dir / "admin.kubeconfig"
        pki.write_kubeconfig(
            kubeconfig,
            url,
            keys.ca_cert_pem,
            user="admin",
            client_cert_pem=keys.admin_cert_pem,
            client_key_pem=keys.admin_key_pem,
            cluster_name="anywhere",
            context_name="admin@anywhere",
        )
        compactor = asyncio.create_task(_compact_forever(storage))
        print(f"anywhere API server ready at {url} (kubeconfig: {kubeconfig})", flush=True)
        if ready is not None:
            ready.set()
        if options.companion is not None:
            companion = asyncio.create_task(options.companion(kubeconfig), name="companion")
            companion.add_done_callback(lambda _task: stop.set())
        await stop.wait()
        if companion is not None and companion.done() and not companion.cancelled():
            companion.result()  # its failure is the process's
    finally:
        if companion is not None and not companion.done():
            companion.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await companion
        if compactor is not None:
            compactor.cancel()
        await server.stop()  # ends open watches first, so the HTTP shutdown has nothing to wait for
        if runner is not None:
            await runner.cleanup()
        await storage.close()


def _reachable(host: str) -> str:
    """The address clients should use for a listen address (a wildcard means this machine)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            return int(sock.getsockname()[1])
    return 0


async def _compact_forever(storage: Storage) -> None:
    while True:
        await asyncio.sleep(COMPACT_EVERY)
        with contextlib.suppress(Exception):
            await storage.compact(HISTORY)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, None]], None]:
    """uvloop where installed (about twice the request rate of the default loop), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(options: ServeOptions) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        _event_loop_runner()(run(options))
    except OSError as exc:
        print(f"error: cannot serve on {options.host}:{options.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
