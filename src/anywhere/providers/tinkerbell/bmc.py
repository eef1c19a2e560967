"""BMC control over Redfish: power a Hardware's server on, off or through a cycle, netboot it once.

A Hardware names its BMC (``spec.bmc.host``/``port``) and the Secret with the BMC's user name and
password (``spec.bmc.authSecretRef``, ``bmc-<hostname>-auth``): :func:`endpoint_of` turns the two
into a :class:`BMCEndpoint`. One BMC may manage several servers (a chassis controller, or the
sushy-tools emulator of the tests): the server of a Hardware is the Redfish ComputerSystem with an
EthernetInterface of the Hardware's MAC, or the service's only system.

:class:`BMCs` speaks Redfish with OpenStack's ``sushy`` client, which blocks: every request runs on
the pool's own threads, so the event loop never waits on a BMC. It keeps one sushy root per
endpoint and forgets it after a refused login or a lost connection, so the next call starts afresh.

Choices, and why:

- HTTPS, the certificate NOT verified: BMCs ship self-signed certificates nobody can check against
  a CA, and Rufio (Tinkerbell's BMC controller) talks to them with ``insecureTLS`` by default too.
- HTTP basic authentication, not a Redfish session: Redfish requires services to accept it, it
  leaves no session behind on the BMC (they have few session slots, and a restarted plane could not
  log its sessions out), and a wrong password fails the first request rather than a fallback.
- A connection that could not be made (refused, no route, connect timeout) is tried twice more
  within the call, a quarter and half a second apart: BMCs drop connections when busy. A request
  that reached the BMC is never repeated (a repeated reset would restart a server twice and boot
  it past its one-time PXE boot); neither is a refused login. Requests wait 5 s to connect and 30 s
  for an answer.
- Nothing here waits for a power change to happen (BMCs take seconds to minutes): controllers read
  :meth:`BMCs.power_state` on their next pass until :func:`power_reached`; :meth:`BMCs.wait_for_power`
  is for tests and scripts.

The password is never in a message, a ``repr`` or a log line of ours; sushy logs every request at
DEBUG, but with its headers passed per request (the basic credentials are on its HTTP session,
added when the request is sent) and bodies with any ``Password`` key masked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import ssl
import string
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import requests
import sushy
import urllib3.exceptions
from sushy import auth as sushy_auth
from sushy import connector as sushy_connector
from sushy import exceptions as sushy_exceptions

from anywhere.api.infra.hardware import bmc_secret_name
from anywhere.providers.retries import InfrastructureError

__all__ = [
    "AUTHENTICATION_FAILED",
    "BMC_REASONS",
    "MISSING_CREDENTIALS",
    "NOT_CONFIGURED",
    "OFF",
    "ON",
    "REQUEST_FAILED",
    "SYSTEM_NOT_FOUND",
    "TIMEOUT",
    "UNREACHABLE",
    "BMCEndpoint",
    "BMCError",
    "BMCs",
    "SystemInfo",
    "auth_secret_ref",
    "endpoint_of",
    "power_reached",
]

log = logging.getLogger("anywhere.providers.tinkerbell.bmc")
T = TypeVar("T")

# Condition reasons (and CLI wording) of what can go wrong with a BMC.
UNREACHABLE: Final = "BMCUnreachable"
AUTHENTICATION_FAILED: Final = "BMCAuthenticationFailed"
SYSTEM_NOT_FOUND: Final = "BMCSystemNotFound"
REQUEST_FAILED: Final = "BMCRequestFailed"
TIMEOUT: Final = "BMCTimeout"
MISSING_CREDENTIALS: Final = "BMCMissingCredentials"
NOT_CONFIGURED: Final = "BMCNotConfigured"
BMC_REASONS: Final = frozenset(
    {
        UNREACHABLE,
        AUTHENTICATION_FAILED,
        SYSTEM_NOT_FOUND,
        REQUEST_FAILED,
        TIMEOUT,
        MISSING_CREDENTIALS,
        NOT_CONFIGURED,
    }
)

# Redfish PowerState values a caller waits for.
ON: Final = "On"
OFF: Final = "Off"

DEFAULT_PORT: Final = 443
CONNECT_TIMEOUT: Final = 5.0
REQUEST_TIMEOUT: Final = 30.0
# Pauses before trying a connection that could not be made again: two more attempts.
CONNECT_RETRY_DELAYS: Final = (0.25, 0.5)
MAX_WORKERS: Final = 16
_HARDWARE_CSV_HINT: Final = "the hardware CSV"


class BMCError(InfrastructureError):
    """A BMC could not be used: ``reason`` is the condition reason, the message says what to do."""


@dataclass(frozen=True)
class BMCEndpoint:
    """A BMC and how to log in to it; ``hardware`` and ``secret`` (``namespace/name``) say where it
    came from, for messages. The password is never shown."""

    host: str
    port: int | None
    username: str
    password: str = field(repr=False)
    hardware: str = ""
    secret: str = ""

    @property
    def address(self) -> str:
        """``host:port`` (an IPv6 host in brackets), the port 443 when none is set."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port or DEFAULT_PORT}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    @property
    def key(self) -> tuple[str, str, str]:
        """Names the BMC and credentials in caches (a digest, not the password): Hardware sharing a
        BMC share its client."""
        digest = hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()
        return self.address, self.username, digest

    def describe(self) -> str:
        """``the BMC of hw-1 (10.0.0.5:443)``, or ``the BMC at 10.0.0.5:443``."""
        return (
            f"the BMC of {self.hardware} ({self.address})" if self.hardware else f"the BMC at {self.address}"
        )


@dataclass(frozen=True)
class SystemInfo:
    """What preflight reports of the server a Hardware's MAC designates."""

    name: str
    uuid: str
    power_state: str


def power_reached(state: str, wanted: str) -> bool:
    """Whether the Redfish PowerState ``state`` is the ``wanted`` one (:data:`ON`, :data:`OFF`);
    ``PoweringOn``/``PoweringOff`` are not there yet."""
    return state.strip().lower() == wanted.strip().lower()


# -- from the API's objects ------------------------------------------------------------------------


def auth_secret_ref(hardware: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of the Secret with the Hardware's BMC credentials (its namespace when
    the reference has none; ``bmc-<name>-auth`` when there is no reference)."""
    metadata = hardware.get("metadata") or {}
    ref = ((hardware.get("spec") or {}).get("bmc") or {}).get("authSecretRef") or {}
    namespace = str(ref.get("namespace") or metadata.get("namespace") or "")
    return namespace, str(ref.get("name") or bmc_secret_name(str(metadata.get("name", ""))))


def endpoint_of(hardware: dict[str, Any], secret: dict[str, Any] | None) -> BMCEndpoint:
    """The BMC of a Hardware, with the credentials of ``secret`` (the one :func:`auth_secret_ref`
    names; None when it does not exist). BMCError naming what is missing, never a credential."""
    name = str((hardware.get("metadata") or {}).get("name") or "")
    bmc = (hardware.get("spec") or {}).get("bmc") or {}
    host = str(bmc.get("host") or "").strip()
    if not host:
        raise BMCError(
            NOT_CONFIGURED,
            f"Hardware {name} has no BMC (spec.bmc.host); set bmc_ip of {name} in {_HARDWARE_CSV_HINT}",
        )
    port = _port(bmc.get("port"), name)
    namespace, secret_name = auth_secret_ref(hardware)
    where = f"{namespace}/{secret_name}" if namespace else secret_name
    fix = (
        f"set bmc_username and bmc_password of {name} in {_HARDWARE_CSV_HINT}, or create Secret {where} "
        "(keys username, password)"
    )
    if secret is None:
        raise BMCError(
            MISSING_CREDENTIALS, f"Secret {where} with the BMC credentials of {name} does not exist; {fix}"
        )
    username, password = _credentials(secret, where, name)
    if not username or not password:
        raise BMCError(
            MISSING_CREDENTIALS, f"Secret {where} lacks the BMC username or password of {name}; {fix}"
        )
    return BMCEndpoint(host, port, username, password, hardware=name, secret=where)


def _port(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise BMCError(
            NOT_CONFIGURED,
            f"Hardware {name} has BMC port {value!r}, not a port number; fix bmc_ip of {name} in "
            f"{_HARDWARE_CSV_HINT} (an IP address, or IP:port)",
        )
    return port


def _credentials(secret: dict[str, Any], where: str, name: str) -> tuple[str, str]:
    """``stringData`` (as written) wins over ``data`` (base64), as the API server merges them."""
    plain = secret.get("stringData") or {}
    data = secret.get("data") or {}
    values = []
    for key in ("username", "password"):
        if plain.get(key):
            values.append(str(plain[key]))
            continue
        try:
            values.append(base64.b64decode(str(data.get(key) or ""), validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            raise BMCError(
                MISSING_CREDENTIALS,
                f"Secret {where} does not hold the {key} of {name}'s BMC in base64; write it again",
            ) from None
    return values[0], values[1]


# -- the client ------------------------------------------------------------------------------------


@dataclass
class _Root:
    service: Any  # sushy.Sushy
    connector: Any  # sushy.connector.Connector


Action = Callable[[BMCEndpoint, Any], T]


class BMCs:
    """Redfish clients of the plane's BMCs, on a thread pool of their own (see the module's notes)."""

    def __init__(
        self,
        *,
        max_workers: int = MAX_WORKERS,
        connect_timeout: float = CONNECT_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="bmc")
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._lock = threading.Lock()
        self._roots: dict[tuple[str, str, str], _Root] = {}
        # (BMC address, MAC) -> the Redfish path of its system, so a call costs one system GET.
        self._paths: dict[tuple[str, str], str] = {}
        self._closed = False

    # -- from the event loop -----------------------------------------------------------------------

    async def power_state(self, endpoint: BMCEndpoint, mac: str) -> str:
        """The system's Redfish PowerState: ``On``, ``Off``, ``PoweringOn``, ... (``Unknown`` when
        the BMC does not say)."""
        return await self._call(endpoint, mac, "read the power state", lambda _e, system: _state(system))

    async def check(self, endpoint: BMCEndpoint, mac: str) -> SystemInfo:
        """Log in and find the system (preflight): its name, UUID and power state."""
        return await self._call(endpoint, mac, "describe the system", _describe)

    async def set_pxe_once(self, endpoint: BMCEndpoint, mac: str) -> None:
        """Make the system's next boot a network (PXE) boot, that boot only."""
        await self._call(endpoint, mac, "set a one-time PXE boot", _set_pxe_once)

    async def power_on(self, endpoint: BMCEndpoint, mac: str) -> None:
        """Ask for power on, unless the system is on or powering on already."""
        await self._call(endpoint, mac, "power on", _power_on)

    async def power_off(self, endpoint: BMCEndpoint, mac: str) -> None:
        """Cut the power (``ForceOff``), unless the system is off or powering off already."""
        await self._call(endpoint, mac, "power off", _power_off)

    async def power_cycle(self, endpoint: BMCEndpoint, mac: str) -> str:
        """Restart a system that is on (``ForceRestart``), power on one that is not; returns the
        power state it was in."""
        return await self._call(endpoint, mac, "power cycle", _power_cycle)

    async def wait_for_power(
        self, endpoint: BMCEndpoint, mac: str, wanted: str, timeout: float, interval: float = 1.0
    ) -> str:
        """Poll the power state every ``interval`` s until it is ``wanted`` (returned);
        BMCError(TIMEOUT) naming the last state seen after ``timeout`` s. For tests and scripts:
        controllers requeue instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await self.power_state(endpoint, mac)
            if power_reached(state, wanted):
                return state
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BMCError(
                    TIMEOUT,
                    f"the server with MAC {_normal_mac(mac)} behind {endpoint.describe()} is still "
                    f"{state}, not {wanted}, after {timeout:g} s; check the server's console",
                )
            await asyncio.sleep(min(interval, remaining))

    def close(self) -> None:
        """Drop every client and stop the threads (calls in flight end with their request)."""
        with self._lock:
            roots, self._roots, self._closed = list(self._roots.values()), {}, True
        for root in roots:
            root.connector.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _call(self, endpoint: BMCEndpoint, mac: str, what: str, action: Action[T]) -> T:
        if self._closed:
            raise BMCError(
                UNREACHABLE, f"cannot {what} through {endpoint.describe()}: the BMC client is closed"
            )
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(
                self._executor, functools.partial(self._run, endpoint, mac, what, action)
            )
        except RuntimeError:  # closed meanwhile: the executor takes no more work
            raise BMCError(
                UNREACHABLE, f"cannot {what} through {endpoint.describe()}: the BMC client is closed"
            ) from None
        return await future

    # -- on the worker threads ---------------------------------------------------------------------

    def _run(self, endpoint: BMCEndpoint, mac: str, what: str, action: Action[T]) -> T:
        delays = iter(CONNECT_RETRY_DELAYS)
        while True:
            root = None
            try:
                root = self._root(endpoint)
                return action(endpoint, self._system(root, endpoint, mac))
            except sushy_exceptions.ConnectionError as exc:
                self._forget(endpoint, root)
                delay = next(delays, None) if _never_connected(exc) else None
                if delay is None:
                    raise self._connection_error(endpoint, exc) from None
                log.debug("%s: connection failed (%s), trying again", endpoint.describe(), _why(exc))
                time.sleep(delay)
            except sushy_exceptions.AccessError:
                self._forget(endpoint, root)
                raise _refused(endpoint) from None
            except sushy_exceptions.SushyError as exc:
                raise BMCError(
                    REQUEST_FAILED,
                    f"{endpoint.describe()} could not {what}: {_redact(str(exc), endpoint.password)}",
                ) from None
            except (requests.RequestException, ValueError) as exc:  # e.g. an answer that is not JSON
                raise BMCError(
                    REQUEST_FAILED,
                    f"{endpoint.describe()} could not {what}: it did not answer as a Redfish service "
                    f"({_redact(str(exc), endpoint.password)[:200]})",
                ) from None

    def _root(self, endpoint: BMCEndpoint) -> Any:
        key = endpoint.key
        with self._lock:
            if self._closed:
                raise BMCError(UNREACHABLE, f"{endpoint.describe()}: the BMC client is closed")
            root = self._roots.get(key)
        if root is not None:
            return root.service
        connector = sushy_connector.Connector(
            endpoint.url,
            verify=False,
            # One attempt per request (the connection retries are ours); one retry of a GET that
            # failed on the server's side.
            server_side_retries=1,
            server_side_retries_delay=1,
            default_request_timeout=self._request_timeout,
            connect_timeout=self._connect_timeout,
        )
        try:
            service = sushy.Sushy(
                endpoint.url,
                auth=sushy_auth.BasicAuth(username=endpoint.username, password=endpoint.password),
                connector=connector,
            )
        except BaseException:
            connector.close()
            raise
        with self._lock:
            root = self._roots.setdefault(key, _Root(service, connector))
        if root.service is not service:  # another thread made one meanwhile
            connector.close()
        log.debug("connected to %s", endpoint.describe())
        return root.service

    def _forget(self, endpoint: BMCEndpoint, service: Any) -> None:
        """Drop the endpoint's root ``service`` after it failed (not one another thread made since)."""
        with self._lock:
            root = self._roots.get(endpoint.key)
            if root is None or root.service is not service:
                return
            del self._roots[endpoint.key]
        root.connector.close()

    def _system(self, root: Any, endpoint: BMCEndpoint, mac: str) -> Any:
        """The system with an EthernetInterface of this MAC, or the service's only system when it
        reports no MAC at all (one that reports others is another server: never reset by mistake)."""
        wanted = _normal_mac(mac)
        cached = (endpoint.address, wanted)
        path = self._paths.get(cached)
        if path is not None:
            try:
                return root.get_system(path)
            except sushy_exceptions.ResourceNotFoundError:
                self._paths.pop(cached, None)
        members = list(root.get_system_collection().members_identities)
        seen: dict[str, list[str]] = {}
        system = None
        for path in members:
            system = root.get_system(path)
            macs = seen[path] = _macs(system)
            for each in macs:
                self._paths[(endpoint.address, each)] = path
            if wanted in macs:
                return system
        if len(members) == 1 and system is not None and not seen[members[0]]:
            # A lone system that reports no NIC cannot be told apart, nor be another server's.
            self._paths[cached] = members[0]
            return system
        known = sorted({each for macs in seen.values() for each in macs})
        listing = f"the MACs it knows are {', '.join(known)}" if known else "its systems report no MAC"
        fix = f"; check the mac of {endpoint.hardware} in {_HARDWARE_CSV_HINT}" if endpoint.hardware else ""
        raise BMCError(
            SYSTEM_NOT_FOUND,
            f"{endpoint.describe()} manages {len(members)} systems, none with MAC {wanted}: {listing}{fix}",
        )

    def _connection_error(self, endpoint: BMCEndpoint, exc: BaseException) -> BMCError:
        if any(isinstance(e, requests.ReadTimeout) for e in _chain(exc)):
            return BMCError(
                TIMEOUT,
                f"{endpoint.describe()} did not answer within {self._request_timeout:g} s; check that "
                "the BMC is healthy (a busy BMC answers later)",
            )
        fix = f"bmc_ip of {endpoint.hardware} in {_HARDWARE_CSV_HINT}" if endpoint.hardware else "its address"
        return BMCError(
            UNREACHABLE,
            f"cannot reach {endpoint.describe()} at {endpoint.url}: {_redact(_why(exc), endpoint.password)}; "
            f"check {fix} and that the BMC is up, serves Redfish over HTTPS and is reachable from this host",
        )


def _refused(endpoint: BMCEndpoint) -> BMCError:
    where = f" (kept in Secret {endpoint.secret})" if endpoint.secret else ""
    fix = (
        f"check bmc_username and bmc_password of {endpoint.hardware} in {_HARDWARE_CSV_HINT}"
        if endpoint.hardware
        else "check them"
    )
    return BMCError(
        AUTHENTICATION_FAILED,
        f"{endpoint.describe()} refused the user name {endpoint.username!r} or its password{where}; {fix}",
    )


# -- the actions (worker threads) -------------------------------------------------------------------


def _state(system: Any) -> str:
    state = system.power_state
    return str(state.value) if state is not None else "Unknown"


def _describe(_endpoint: BMCEndpoint, system: Any) -> SystemInfo:
    return SystemInfo(name=str(system.name or ""), uuid=str(system.uuid or ""), power_state=_state(system))


def _set_pxe_once(endpoint: BMCEndpoint, system: Any) -> None:
    log.info("%s: next boot from the network (PXE), once", endpoint.describe())
    system.set_system_boot_options(target=sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE)


def _power_on(endpoint: BMCEndpoint, system: Any) -> None:
    if _state(system) in (ON, "PoweringOn"):
        return
    _reset(endpoint, system, sushy.ResetType.ON, sushy.ResetType.FORCE_ON)


def _power_off(endpoint: BMCEndpoint, system: Any) -> None:
    if _state(system) in (OFF, "PoweringOff"):
        return
    _reset(endpoint, system, sushy.ResetType.FORCE_OFF)


def _power_cycle(endpoint: BMCEndpoint, system: Any) -> str:
    state = _state(system)
    if state == ON:
        _reset(endpoint, system, sushy.ResetType.FORCE_RESTART, sushy.ResetType.POWER_CYCLE)
    else:
        _reset(endpoint, system, sushy.ResetType.ON, sushy.ResetType.FORCE_ON)
    return state


def _reset(endpoint: BMCEndpoint, system: Any, *choices: Any) -> None:
    """The first of ``choices`` (sushy ResetType) the system allows."""
    allowed = system.get_allowed_reset_system_values()
    for choice in choices:
        if choice in allowed:
            log.info("%s: %s", endpoint.describe(), choice.value)
            system.reset_system(choice)
            return
    raise BMCError(
        REQUEST_FAILED,
        f"{endpoint.describe()} offers no {' or '.join(c.value for c in choices)} reset (it offers "
        f"{', '.join(sorted(a.value for a in allowed)) or 'none'}); this BMC cannot be used",
    )


# -- helpers ------------------------------------------------------------------------------------------


def _normal_mac(mac: str) -> str:
    """``aa:bb:cc:dd:ee:ff``: lower case, colons, whatever the separators were."""
    digits = "".join(c for c in str(mac).lower() if c in string.hexdigits)
    if len(digits) != 12:
        return str(mac).strip().lower()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _macs(system: Any) -> list[str]:
    try:
        interfaces = system.ethernet_interfaces.get_members()
    except (sushy_exceptions.MissingAttributeError, sushy_exceptions.ResourceNotFoundError):
        return []
    found: dict[str, None] = {}
    for interface in interfaces:
        for value in (interface.mac_address, interface.permanent_mac_address):
            if value:
                found[_normal_mac(value)] = None
    return list(found)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it: requests wraps urllib3, which wraps the socket error."""
    seen: set[int] = set()
    stack = [exc]
    while stack and len(seen) < 16:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for link in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(link, BaseException):
                stack.append(link)
        stack.extend(arg for arg in current.args[:1] if isinstance(arg, BaseException))


def _never_connected(exc: BaseException) -> bool:
    """Whether the request failed before reaching the BMC (safe to repeat); not for TLS failures."""
    chain = list(_chain(exc))
    if any(isinstance(e, ssl.SSLError | requests.exceptions.SSLError) for e in chain):
        return False
    return any(isinstance(e, urllib3.exceptions.ConnectTimeoutError | requests.ConnectTimeout) for e in chain)


def _why(exc: BaseException) -> str:
    """The root of a connection failure in a few words (``Connection refused``)."""
    chain = list(_chain(exc))
    for e in chain:
        if isinstance(e, ssl.SSLError):
            return f"TLS handshake failed ({e.reason or e})"
    for e in reversed(chain):  # the socket's own error, deepest: "Connection refused"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
    # urllib3 files a refused connection under its timeouts too: only now is it one.
    for e in chain:
        if isinstance(e, TimeoutError | requests.Timeout | urllib3.exceptions.TimeoutError):
            return "timed out"
    return str(chain[-1])[:200]


def _redact(text: str, password: str) -> str:
    """``text`` without the password: a BMC's error could echo what it was sent. A password too
    short to be told from the words around it withholds the whole text rather than garble it."""
    if not password or password not in text:
        return text
    if len(password) < 4:
        return "details withheld, since they may contain the BMC password"
    return text.replace(password, "***")
