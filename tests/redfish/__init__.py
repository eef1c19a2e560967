"""OpenStack's sushy-tools Redfish emulator as test tooling for the ``tinkerbell`` provider's BMCs.

:func:`start` runs the real ``sushy-emulator`` (its fake driver: no libvirt, no VMs) as a subprocess
on a free port of 127.0.0.1, over HTTPS with a fresh self-signed certificate and HTTP basic auth
(an htpasswd file, as a BMC would ask for a user name and password), serving one ComputerSystem per
:class:`FakeSystem` with that system's MAC on its EthernetInterface. Everything the emulator keeps
(configuration, certificate, htpasswd, its sqlite state, its log) lives in one temporary directory:
without its own state directory the fake driver shares ``/tmp/sushy-emulator`` with every other
emulator and restores systems from there instead of the configuration.

What the fake driver does, and the tests must live with: a power change (``On``, ``ForceOff``) is
applied 1 to 11 s after the request (at random), so callers poll; a restart turns the system Off at
once and On later; ``BootSourceOverrideEnabled`` is ignored (it always reads ``Continuous``) and the
override target is never consumed by a boot.

Usage::

    emulator = start(fake_systems(5))
    try:
        emulator.power_state("52:54:00:00:00:01")  # "Off", read over HTTP, not through sushy
    finally:
        emulator.stop()

The helpers that read the emulator (:meth:`Emulator.power_state`, :meth:`Emulator.boot_override`)
speak plain HTTP with ``urllib``, so the assertions of the BMC client's tests do not go through the
client under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from anywhere.storage.etcd_server import free_ports
from tests.harness import log_tail, terminate

__all__ = [
    "NAMESPACE",
    "Emulator",
    "EmulatorError",
    "FakeSystem",
    "fake_systems",
    "start",
]

NAMESPACE: Final = "eksa-system"
HOST: Final = "127.0.0.1"
# Each request is checked against the bcrypt hash: the cheapest cost keeps that below a millisecond.
_BCRYPT_ROUNDS: Final = 4
_UUIDS: Final = uuid.UUID("6f1d4c52-6a57-4c1e-9c56-2f8a6b3b7a10")

# Runs the emulator, and ends it when its stdin reaches EOF: when the test process dies, however,
# the emulator does not outlive it.
_WRAPPER: Final = """\
import os, sys, threading

def _watch_stdin():
    sys.stdin.buffer.read()
    os._exit(0)

threading.Thread(target=_watch_stdin, daemon=True).start()
from sushy_tools.emulator.main import main

sys.argv[0] = "sushy-emulator"
sys.exit(main())
"""


class EmulatorError(RuntimeError):
    """The emulator did not start (the message ends with its log)."""


@dataclass(frozen=True)
class FakeSystem:
    """One ComputerSystem of the emulator: its name, the MAC of its one NIC, its power state at start."""

    name: str
    mac: str
    power_state: str = "Off"

    @property
    def uuid(self) -> str:
        """Derived from the MAC, so a test can name the system's Redfish path."""
        return str(uuid.uuid5(_UUIDS, self.mac.lower()))


def fake_systems(count: int, *, prefix: str = "hw", power_state: str = "Off") -> list[FakeSystem]:
    """``count`` systems ``hw-1``..``hw-N`` with MACs ``52:54:00:00:00:01``..: the MACs the
    provider's tests give their Hardware."""
    return [
        FakeSystem(f"{prefix}-{i}", f"52:54:00:00:{i // 256:02x}:{i % 256:02x}", power_state)
        for i in range(1, count + 1)
    ]


@dataclass
class Emulator:
    """A running sushy-emulator and how to log in to it."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    systems: tuple[FakeSystem, ...]
    directory: Path  # its configuration, certificate, state and log
    process: subprocess.Popen[bytes] = field(repr=False)
    _own_directory: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "emulator.log"

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the emulator's log (werkzeug's request lines, tracebacks)."""
        return log_tail(self.log_path, limit)

    def system(self, key: str) -> FakeSystem:
        """The system with this name or MAC (any case)."""
        for system in self.systems:
            if key == system.name or key.lower() == system.mac.lower():
                return system
        raise KeyError(f"the emulator has no system {key!r}")

    # -- reading the emulator directly -------------------------------------------------------------

    def get(self, path: str, *, password: str | None = None, timeout: float = 10.0) -> Any:
        """GET ``path`` (``/redfish/v1/...``) as JSON; urllib.error.HTTPError for an error status."""
        credentials = f"{self.username}:{self.password if password is None else password}"
        request = urllib.request.Request(
            self.url + path,
            headers={"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()},
        )
        with urllib.request.urlopen(request, timeout=timeout, context=_unverified_context()) as answer:
            return json.load(answer)

    def system_json(self, key: str) -> dict[str, Any]:
        """The ComputerSystem resource of the system with this name or MAC."""
        result: dict[str, Any] = self.get(f"/redfish/v1/Systems/{self.system(key).uuid}")
        return result

    def power_state(self, key: str) -> str:
        """``PowerState`` of the system with this name or MAC (reading it applies a pending change
        whose time has come: the fake driver changes state only when asked)."""
        return str(self.system_json(key)["PowerState"])

    def boot_override(self, key: str) -> tuple[str, str]:
        """``(BootSourceOverrideTarget, BootSourceOverrideEnabled)`` of the system."""
        boot = self.system_json(key).get("Boot") or {}
        return str(boot.get("BootSourceOverrideTarget")), str(boot.get("BootSourceOverrideEnabled"))

    def wait_power(self, key: str, wanted: str, timeout: float = 30.0) -> str:
        """Poll until the system's power state is ``wanted``; AssertionError naming the last state
        seen after ``timeout`` s (the fake driver takes up to 11 s)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.power_state(key)
            if state == wanted:
                return state
            if time.monotonic() >= deadline:
                raise AssertionError(f"{key} is {state}, not {wanted}, after {timeout} s")
            time.sleep(0.2)

    # -- objects of the API that point at this emulator --------------------------------------------

    def secret_name(self, key: str) -> str:
        return f"bmc-{self.system(key).name}-auth"

    def hardware(self, key: str, *, namespace: str = NAMESPACE) -> dict[str, Any]:
        """A Hardware object (the design's shape, trimmed to what BMC control reads) for the
        system with this name or MAC, its BMC being this emulator."""
        system = self.system(key)
        return {
            "apiVersion": "tinkerbell.org/v1alpha1",
            "kind": "Hardware",
            "metadata": {"name": system.name, "namespace": namespace},
            "spec": {
                "bmc": {
                    "host": self.host,
                    "port": self.port,
                    "authSecretRef": {"name": self.secret_name(key), "namespace": namespace},
                },
                "interfaces": [{"dhcp": {"mac": system.mac.lower(), "hostname": system.name}}],
            },
        }

    def secret(
        self,
        key: str,
        *,
        namespace: str = NAMESPACE,
        username: str | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """The credentials Secret the Hardware of :meth:`hardware` names (``username``/``password``
        override the emulator's, to test refusals)."""

        def encoded(value: str) -> str:
            return base64.b64encode(value.encode()).decode()

        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name(key), "namespace": namespace},
            "type": "kubernetes.io/basic-auth",
            "data": {
                "username": encoded(self.username if username is None else username),
                "password": encoded(self.password if password is None else password),
            },
        }

    # -- life --------------------------------------------------------------------------------------

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` s; removes the directory :func:`start` made. Idempotent."""
        terminate(self.process, grace)
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    systems: Iterable[FakeSystem],
    *,
    username: str = "admin",
    password: str | None = None,
    directory: Path | None = None,
    timeout: float = 30.0,
) -> Emulator:
    """Start an emulator serving ``systems`` and wait (up to ``timeout`` s) until it answers.

    ``password`` defaults to a random one. ``directory`` (default: a new temporary one, removed by
    :meth:`Emulator.stop`) receives the configuration, certificate, htpasswd, state and log.
    """
    systems = tuple(systems)
    password = password or secrets.token_urlsafe(16)
    own_directory = directory is None
    directory = Path(tempfile.mkdtemp(prefix="sushy-emulator-")) if directory is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _write_files(directory, systems, username, password)
        # A port found free may be taken before the emulator binds it: try another one then.
        for attempt in range(3):
            port = free_ports(1)[0]
            process = _spawn(directory, port)
            try:
                _wait_ready(process, port, directory / "emulator.log", time.monotonic() + timeout)
            except EmulatorError:
                if attempt < 2 and "Address already in use" in log_tail(directory / "emulator.log", 4000):
                    continue
                raise
            return Emulator(
                host=HOST,
                port=port,
                username=username,
                password=password,
                systems=systems,
                directory=directory,
                process=process,
                _own_directory=own_directory,
            )
        raise AssertionError("unreachable")
    except BaseException:
        if own_directory:
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _write_files(directory: Path, systems: Sequence[FakeSystem], username: str, password: str) -> None:
    cert, key = _self_signed_certificate()
    (directory / "bmc.crt").write_bytes(cert)
    (directory / "bmc.key").write_bytes(key)
    (directory / "bmc.key").chmod(0o600)
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=_BCRYPT_ROUNDS)).decode()
    (directory / "htpasswd").write_text(f"{username}:{digest}\n")
    fake = [
        {
            "uuid": system.uuid,
            "name": system.name,
            "power_state": system.power_state,
            "external_notifier": False,
            "nics": [{"mac": system.mac, "ip": f"10.10.0.{10 + i}"}],
        }
        for i, system in enumerate(systems, start=1)
    ]
    config = {
        "SUSHY_EMULATOR_FAKE_DRIVER": True,
        "SUSHY_EMULATOR_LISTEN_IP": HOST,
        "SUSHY_EMULATOR_AUTH_FILE": str(directory / "htpasswd"),
        "SUSHY_EMULATOR_STATE_DIR": str(directory / "state"),
        "SUSHY_EMULATOR_SSL_CERT": str(directory / "bmc.crt"),
        "SUSHY_EMULATOR_SSL_KEY": str(directory / "bmc.key"),
        "SUSHY_EMULATOR_FAKE_SYSTEMS": fake,
    }
    # The configuration is a Python file; repr() writes each value as a Python literal.
    (directory / "emulator.conf").write_text("".join(f"{k} = {v!r}\n" for k, v in config.items()))


def _spawn(directory: Path, port: int) -> subprocess.Popen[bytes]:
    with (directory / "emulator.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", _WRAPPER, "--config", str(directory / "emulator.conf"), "-p", str(port)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path, deadline: float) -> None:
    """Poll the (unauthenticated) service root until it answers; the emulator needs ~0.2 s."""
    url = f"https://{HOST}:{port}/redfish/v1/"
    while True:
        if process.poll() is not None:
            raise EmulatorError(
                f"sushy-emulator exited with {process.returncode} before it served\n"
                f"--- its log ---\n{log_tail(log_path, 4000)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2, context=_unverified_context()) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() >= deadline:
            process.kill()
            process.wait()
            raise EmulatorError(
                f"sushy-emulator did not answer on {url}\n--- its log ---\n{log_tail(log_path, 4000)}"
            )
        time.sleep(0.05)


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _self_signed_certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM: what a BMC ships with."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmc")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
