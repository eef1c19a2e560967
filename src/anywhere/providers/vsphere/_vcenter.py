"""A session with vCenter: pyVmomi on worker threads, trust checked, errors made plain.

pyVmomi is blocking (SOAP over ``http.client``), so every call runs on a small thread pool of the
session and the event loop only awaits it. One :class:`VCenter` is kept per server, trust
settings and credentials (:class:`Sessions`), logged in once and again when vCenter forgets the
session.

Trust, as EKS Anywhere's ``VSphereDatacenterConfig`` says it: with ``thumbprint`` the server's
certificate must have that SHA-1 fingerprint (pyVmomi pins it on every connection); with
``insecure: true`` nothing is checked; with neither the certificate must chain to a CA this host
trusts. A mismatch or an untrusted certificate names the fingerprint the server presented, so the
user can compare it with vCenter's own.

Credentials (``EKSA_VSPHERE_USERNAME``/``EKSA_VSPHERE_PASSWORD``, kept in a Secret) never appear in
a log line, an error or a ``repr``: errors say which Secret holds them instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import http.client
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from pyVmomi import SoapStubAdapter, pbm, vim, vmodl
from pyVmomi.Security import ThumbprintMismatchException

from anywhere.providers.retries import InfrastructureError

__all__ = [
    "CERTIFICATE_NOT_TRUSTED",
    "INVALID_CREDENTIALS",
    "TASK_FAILED",
    "THUMBPRINT_MISMATCH",
    "VCENTER_ERROR",
    "VCENTER_UNREACHABLE",
    "Credentials",
    "Server",
    "Sessions",
    "VCenter",
    "VCenterError",
    "fault_text",
    "format_thumbprint",
]

log = logging.getLogger("anywhere.providers.vsphere")
T = TypeVar("T")

# Condition reasons (and CLI wording) of what can go wrong talking to vCenter.
VCENTER_UNREACHABLE: Final = "VCenterUnreachable"
THUMBPRINT_MISMATCH: Final = "ThumbprintMismatch"
CERTIFICATE_NOT_TRUSTED: Final = "CertificateNotTrusted"
INVALID_CREDENTIALS: Final = "InvalidCredentials"
TASK_FAILED: Final = "TaskFailed"
VCENTER_ERROR: Final = "VCenterError"

CONNECT_TIMEOUT: Final = 10.0
# vSphere 6.5's API, which every later vCenter also speaks (and the simulator reports).
API_VERSION: Final = "vim.version.version11"
PBM_VERSION: Final = "pbm.version.version2"
# Calls that take longer are vCenter being slow, not the network; tasks are polled, not waited on.
CALL_TIMEOUT: Final = 60.0
THREADS_PER_SESSION: Final = 4


class VCenterError(InfrastructureError):
    """vCenter could not be used: ``reason`` is the condition reason, the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    """A vCenter user and password; neither is ever shown."""

    username: str = field(repr=False)
    password: str = field(repr=False)
    where: str = "EKSA_VSPHERE_USERNAME / EKSA_VSPHERE_PASSWORD"

    def __repr__(self) -> str:
        return f"Credentials(from {self.where})"

    @property
    def key(self) -> str:
        """A digest naming these credentials in caches, so the secret itself is not a key."""
        return hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()


def normal_thumbprint(thumbprint: str | None) -> str:
    """Hex digits only, lower case: how fingerprints are compared."""
    return "".join(c for c in (thumbprint or "") if c not in ": ").lower()


def format_thumbprint(digest_hex: str) -> str:
    """``AA:BB:...``, as vSphere shows a fingerprint."""
    digits = normal_thumbprint(digest_hex).upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


@dataclass(frozen=True)
class Server:
    """Where vCenter is and how to trust it (from a VSphereDatacenterConfig)."""

    server: str
    thumbprint: str = ""
    insecure: bool = False

    @property
    def address(self) -> tuple[str, int]:
        text = self.server.strip()
        parts = urlsplit(text if "//" in text else f"//{text}")
        return parts.hostname or text, parts.port or 443

    @property
    def display(self) -> str:
        host, port = self.address
        return host if port == 443 else f"{host}:{port}"

    def soap_stub(self, path: str, version: str, **options: Any) -> Any:
        """A pyVmomi stub for one of vCenter's SOAP services. With a thumbprint pyVmomi pins it, and
        only when normal verification fails, so the context verifies unless ``insecure``."""
        host, port = self.address
        return SoapStubAdapter(
            host=host,
            port=port,
            path=path,
            version=version,
            sslContext=_unverified_context() if self.insecure else ssl.create_default_context(),
            thumbprint=normal_thumbprint(self.thumbprint) or None,
            **options,
        )

    def https_connection(self) -> http.client.HTTPSConnection:
        """A connection for vCenter's REST API, trusted as the SOAP stubs trust the server (a
        thumbprint is checked on connecting)."""
        host, port = self.address
        pinned = bool(self.thumbprint) or self.insecure
        context = _unverified_context() if pinned else ssl.create_default_context()
        connection = http.client.HTTPSConnection(host, port, timeout=CALL_TIMEOUT, context=context)
        if self.thumbprint:
            connection.connect()
            assert connection.sock is not None
            actual = _sha1(connection.sock.getpeercert(binary_form=True) or b"")
            if normal_thumbprint(actual) != normal_thumbprint(self.thumbprint):
                connection.close()
                raise _mismatch(self, actual)
        return connection


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _sha1(der: bytes) -> str:
    return format_thumbprint(hashlib.sha1(der).hexdigest())


def _mismatch(server: Server, actual: str) -> VCenterError:
    return VCenterError(
        THUMBPRINT_MISMATCH,
        f"vCenter {server.display} presented a certificate with thumbprint {format_thumbprint(actual)}, but "
        f"the VSphereDatacenterConfig's spec.thumbprint is {format_thumbprint(server.thumbprint)}; if the "
        "server's certificate was replaced, check the new one with vCenter and set spec.thumbprint to it",
    )


def fault_text(fault: BaseException) -> str:
    """A vSphere fault as one line: its type and vCenter's message."""
    name = type(fault).__name__
    if isinstance(fault, vmodl.MethodFault):
        message = str(getattr(fault, "msg", "") or "").strip()
        for item in getattr(fault, "faultMessage", None) or ():
            message = message or str(getattr(item, "message", "") or "")
        return f"{name}: {message}" if message else name
    return f"{name}: {fault}"


def _peer_certificate(server: Server) -> bytes:
    host, port = server.address
    with (
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as raw,
        _unverified_context().wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise VCenterError(CERTIFICATE_NOT_TRUSTED, f"vCenter {server.display} presented no certificate")
    return der


def _unreachable(server: Server, exc: BaseException) -> VCenterError:
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return VCenterError(
        VCENTER_UNREACHABLE,
        f"cannot reach vCenter {server.display}: {why}; check spec.server of the VSphereDatacenterConfig "
        "and that vCenter is up and reachable from this host",
    )


def check_trust(server: Server) -> None:
    """Raise VCenterError unless the server's certificate is trusted as the config says."""
    if server.insecure:
        return
    host, port = server.address
    try:
        if server.thumbprint:
            actual = _sha1(_peer_certificate(server))
            if normal_thumbprint(actual) != normal_thumbprint(server.thumbprint):
                raise _mismatch(server, actual)
            return
        with (
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as raw,
            ssl.create_default_context().wrap_socket(raw, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message
    except (OSError, ssl.SSLError) as exc:
        raise _unreachable(server, exc) from None
    try:
        actual = _sha1(_peer_certificate(server))
    except (OSError, ssl.SSLError) as exc:
        raise _unreachable(server, exc) from None
    raise VCenterError(
        CERTIFICATE_NOT_TRUSTED,
        f"the certificate of vCenter {server.display} is not trusted by this host ({why}); its "
        f"thumbprint is {actual}: after checking that with vCenter, set spec.thumbprint of the "
        "VSphereDatacenterConfig to it (or spec.insecure: true)",
    )


class VCenter:
    """A logged-in vCenter session; :meth:`call` runs a blocking pyVmomi function on its threads."""

    def __init__(self, server: Server, credentials: Credentials) -> None:
        self.server = server
        self._credentials = credentials
        self._executor = ThreadPoolExecutor(THREADS_PER_SESSION, thread_name_prefix="vcenter")
        self._lock = threading.Lock()
        self._si: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"VCenter({self.server.display})"

    # -- on the worker threads ---------------------------------------------------------------------

    def _login(self) -> Any:
        """Log in. The stub pins the thumbprint when one is set: pyVmomi checks the pin when normal
        verification fails, so the context must verify (an unverified one would skip the pin)."""
        check_trust(self.server)
        stub = self.server.soap_stub("/sdk", API_VERSION, connectionPoolTimeout=-1)
        try:
            si: Any = vim.ServiceInstance("ServiceInstance", stub)
            si.content.sessionManager.Login(self._credentials.username, self._credentials.password, None)
            return si
        except vim.fault.InvalidLogin:
            raise VCenterError(
                INVALID_CREDENTIALS,
                f"vCenter {self.server.display} refused the user name or password (from "
                f"{self._credentials.where}); check them",
            ) from None
        except ThumbprintMismatchException as exc:  # the certificate changed since check_trust
            raise _mismatch(self.server, str(exc.actual)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(self.server, exc) from None

    def _session(self) -> Any:
        with self._lock:
            if self._closed:
                raise VCenterError(
                    VCENTER_UNREACHABLE, f"the session with vCenter {self.server.display} is closed"
                )
            if self._si is None:
                self._si = self._login()
                log.info("logged in to vCenter %s", self.server.display)
            return self._si

    def _forget(self, si: Any) -> None:
        with self._lock:
            if self._si is si:
                self._si = None

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(2):
            si = self._session()
            try:
                return fn(si, *args)
            except vim.fault.NotAuthenticated:
                self._forget(si)  # vCenter ended the session (idle, restarted): log in again once
                if attempt:
                    raise VCenterError(
                        INVALID_CREDENTIALS, f"vCenter {self.server.display} keeps ending the session"
                    ) from None
            except VCenterError:
                raise
            except (OSError, http.client.HTTPException) as exc:
                self._forget(si)
                raise _unreachable(self.server, exc) from None
            except vmodl.MethodFault as fault:
                raise VCenterError(
                    VCENTER_ERROR, f"vCenter {self.server.display}: {fault_text(fault)}"
                ) from None
        raise AssertionError("unreachable")

    # -- from the event loop -----------------------------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(service_instance, *args)`` on a worker thread, errors as :class:`VCenterError`."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._run, fn, *args))

    def close(self) -> None:
        with self._lock:
            si, self._si, self._closed = self._si, None, True
        if si is not None:
            with contextlib.suppress(Exception):
                si.content.sessionManager.Logout()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- other vCenter services on the same session (worker threads) ---------------------------------

    def pbm_content(self, si: Any) -> Any:
        """The storage policy service's content, reached with this session's cookie."""
        stub = self.server.soap_stub(
            "/pbm/sdk", PBM_VERSION, requestContext={"vcSessionCookie": si._stub.GetSessionId()}
        )
        return pbm.ServiceInstance("ServiceInstance", stub).RetrieveContent()

    @contextlib.contextmanager
    def rest(self) -> Iterator[Callable[..., Any]]:
        """A session of vCenter's REST API (``/rest``: tagging), logged in with basic auth once for
        the calls made in it: yields ``call(method, path, body=None)``, which returns the answer's
        ``value`` (None for 404). Runs on a worker thread."""
        try:
            connection = self.server.https_connection()
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(self.server, exc) from None
        try:
            headers = self._rest_login(connection)

            def call(method: str, path: str, body: Any = None) -> Any:
                data = json.dumps(body) if body is not None else None
                connection.request(method, path, body=data, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                if answer.status == 404:
                    return None
                if answer.status >= 300:
                    raise VCenterError(
                        VCENTER_ERROR,
                        f"vCenter {self.server.display}: {method} {path.split('?')[0]} answered "
                        f"{answer.status}: {payload[:200].decode(errors='replace')}",
                    )
                return json.loads(payload).get("value") if payload else None

            yield call
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection.request("DELETE", "/rest/com/vmware/cis/session", headers=headers)
                connection.getresponse().read()
        except (OSError, http.client.HTTPException) as exc:
            raise _unreachable(self.server, exc) from None
        finally:
            connection.close()

    def _rest_login(self, connection: http.client.HTTPSConnection) -> dict[str, str]:
        token = base64.b64encode(
            f"{self._credentials.username}:{self._credentials.password}".encode()
        ).decode()
        connection.request(
            "POST", "/rest/com/vmware/cis/session", headers={"Authorization": f"Basic {token}"}
        )
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status == 401:
            raise VCenterError(
                INVALID_CREDENTIALS,
                f"vCenter {self.server.display} refused the user name or password for its REST API (from "
                f"{self._credentials.where})",
            )
        if answer.status >= 300:
            raise VCenterError(
                VCENTER_ERROR, f"vCenter {self.server.display}: REST login answered {answer.status}"
            )
        return {"vmware-api-session-id": json.loads(payload)["value"], "Content-Type": "application/json"}


class Sessions:
    """The plane's vCenter sessions, one per server, trust settings and credentials."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[Server, str], VCenter] = {}

    def get(self, server: Server, credentials: Credentials) -> VCenter:
        key = (server, credentials.key)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = VCenter(server, credentials)
        return session

    def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()
