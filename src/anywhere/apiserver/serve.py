"""``anywhere serve``: run the API server as a process, over HTTPS, until SIGTERM.

On first start the data folder gets a CA, serving and admin certificates, an admin token and the
store; every later start (and a replica started with a copy of the folder) reuses them. Once it
listens, the server writes ``admin.kubeconfig`` and prints one line saying where it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from anywhere._signals import keep_signals_in_this_process
from anywhere.apiserver import authn, pki
from anywhere.apiserver.audit import AuditConfigError, Auditor, Policy
from anywhere.apiserver.authapi import Access
from anywhere.apiserver.encryption import EncryptionConfig, wrap
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
    # Resources encrypted at rest (--encryption-provider-config), and the audit log: its policy and
    # its file (--audit-policy-file, --audit-log-path; "-" is standard output).
    encryption_config: EncryptionConfig | None = None
    audit_policy: Policy | None = None
    audit_log_path: str = "-"
    # Bearer tokens of kube-apiserver's --token-auth-file CSV; anonymous requests (system:anonymous)
    # instead of 401 for callers without credentials.
    token_auth_file: Path | None = None
    anonymous_auth: bool = False
    # --storage etcd: the members' client URLs, the key prefix, and the TLS files for https members
    # (etcd's CA, this server's client certificate and key), as kube-apiserver's --etcd-* flags.
    etcd_endpoints: tuple[str, ...] = ()
    etcd_prefix: str = "/anywhere/"
    etcd_cafile: Path | None = None
    etcd_certfile: Path | None = None
    etcd_keyfile: Path | None = None
    # Seconds between reads of etcd's membership (0: only the endpoints given), as etcd's client's
    # AutoSyncInterval: a server started with its machine's member outlives that member's removal.
    etcd_auto_sync_interval: float = 0.0


async def open_storage(options: ServeOptions) -> Storage:
    if options.storage == "etcd":
        return await _open_etcd(options)
    if options.storage != "sqlite":
        raise SystemExit(f"error: storage {options.storage!r} is not available; use --storage sqlite or etcd")
    return await SQLiteStorage.open(options.data_dir / "state.db")


async def _open_etcd(options: ServeOptions) -> Storage:
    """The etcd store, or one line saying why not (bad options; no member reachable)."""
    from anywhere.storage import Unavailable
    from anywhere.storage.etcd import EtcdStorage

    if not options.etcd_endpoints:
        raise SystemExit(
            "error: --storage etcd needs --etcd-endpoints URL[,URL...] (e.g. http://127.0.0.1:2379)"
        )
    where = ", ".join(options.etcd_endpoints)
    try:
        return await EtcdStorage.open(
            options.etcd_endpoints,
            prefix=options.etcd_prefix,
            ca_file=options.etcd_cafile,
            cert_file=options.etcd_certfile,
            key_file=options.etcd_keyfile,
            auto_sync_interval=options.etcd_auto_sync_interval or None,
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    except Unavailable as exc:
        raise SystemExit(f"error: cannot reach etcd at {where}: {exc} — is etcd running?") from None


async def run(options: ServeOptions, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation); every step of shutdown runs even after errors."""
    options.data_dir.mkdir(parents=True, exist_ok=True)
    port_file = options.data_dir / "port"
    if options.port == 0 and options.reuse_port and port_file.exists():
        # A folder served before keeps its port, so kubeconfigs written for it stay valid.
        with contextlib.suppress(ValueError, OSError):
            options.port = int(port_file.read_text().strip())
    keys = pki.load_or_create(options.data_dir, list(options.extra_sans))
    try:
        static_tokens = authn.load_token_file(options.token_auth_file) if options.token_auth_file else {}
    except authn.TokenFileError as exc:
        raise SystemExit(f"error: {exc}") from None
    storage = wrap(await open_storage(options), options.encryption_config)
    auditor = Auditor(options.audit_policy, options.audit_log_path) if options.audit_policy else None
    access = Access(storage, keys.sa_private_key_pem)
    authenticator = authn.Authenticator(
        {**static_tokens, keys.admin_token: authn.ADMIN},
        access.service_accounts,
        anonymous=options.anonymous_auth,
    )
    server = APIServer(access.storage, authenticator, auditor=auditor, access=access)
    runner: web.AppRunner | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    keep_signals_in_this_process()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _stop_on_signal, stop, sig)
    compactor: asyncio.Task[None] | None = None
    companion: asyncio.Task[None] | None = None
    try:
        if auditor is not None:
            await auditor.start()
        await access.start()
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
            companion.add_done_callback(_companion_ended)
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
        if auditor is not None:
            await auditor.close()  # after the last request: its events are written
        await access.stop()
        await storage.close()


def _stop_on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    log.info("stopping: received %s", sig.name)
    stop.set()


def _companion_ended(task: asyncio.Task[None]) -> None:
    """Say at once why the companion (the controllers) ended: the shutdown that follows may take a
    while, and the error is what the log's reader needs."""
    if task.cancelled():
        log.info("the controllers stopped (cancelled)")
    elif task.exception() is not None:
        log.error("the controllers stopped: %s", task.exception(), exc_info=task.exception())
    else:
        log.error("the controllers stopped without an error; the server stops with them")


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
    except AuditConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot serve on {options.host}:{options.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
