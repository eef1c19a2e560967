"""govmomi's vCenter simulator (vcsim) as test tooling for the vSphere provider.

``main.go`` beside this file is a small Go program on govmomi's ``simulator`` package; it is built
offline from Debian's ``golang-go`` and ``golang-github-vmware-govmomi-dev`` (govmomi 0.24.2, a
vCenter 6.5 API) and describes the JSON configuration it reads (:data:`DEFAULT_CONFIG` is the one
the provider's tests use). On top of the stock inventory it serves strict logins, the REST tagging
API, the storage policy service (pbm), templates, tags, clone failures on demand, and guest IP
addresses from DHCP ranges (standing in for VMware Tools and a DHCP server).

Usage::

    v = start(DEFAULT_CONFIG, username="u", password=secrets.token_hex(16))
    try:
        si = connect(v)  # pyVmomi, pinned to v.thumbprint
        ...
    finally:
        v.stop()
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import http.client
import json
import os
import secrets
import selectors
import shutil
import ssl
import subprocess
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from pyVmomi import SoapAdapter, pbm, vim, vmodl
from pyVmomi.VmomiSupport import ManagedObject

from tests.harness import log_tail, terminate

__all__ = [
    "DEFAULT_CONFIG",
    "INSTALL_HINT",
    "PBM_VERSION",
    "VIM_VERSION",
    "Vcsim",
    "VcsimError",
    "VcsimUnavailable",
    "attached_tags",
    "build",
    "connect",
    "connect_pbm",
    "default_config",
    "rest",
    "rest_session",
    "start",
    "vm_names",
    "vms_with_extra_config",
    "wait_for",
]

REPO: Final = Path(__file__).resolve().parents[2]
SOURCE: Final = Path(__file__).with_name("main.go")
GOPATH: Final = Path("/usr/share/gocode")
GOVMOMI: Final = GOPATH / "src/github.com/vmware/govmomi"
INSTALL_HINT: Final = "apt-get install golang-go golang-github-vmware-govmomi-dev"

# The API versions govmomi 0.24.2's simulator implements (vCenter 6.5, pbm 2.0).
VIM_VERSION: Final = "vim.version.version11"
PBM_VERSION: Final = "pbm.version.version2"

DEFAULT_CONFIG: Final[Mapping[str, Any]] = {
    "tls": True,
    "folders": ["Templates", "anywhere"],
    "templates": [
        {
            "name": "ubuntu-2204-kube-v1-33",
            "folder": "Templates",
            "snapshot": True,
            "diskGiB": 25,
            "guestId": "ubuntu64Guest",
        },
        {
            "name": "ubuntu-2204-kube-v1-34",
            "folder": "Templates",
            "snapshot": True,
            "diskGiB": 25,
            "guestId": "ubuntu64Guest",
        },
        {
            "name": "bottlerocket-kube-v1-33",
            "folder": "Templates",
            "snapshot": False,
            "diskGiB": 25,
            "guestId": "other3xLinux64Guest",
        },
        {
            "name": "ubuntu-2204-kube-v1-33-faulty",
            "folder": "Templates",
            "snapshot": True,
            "diskGiB": 25,
            "guestId": "ubuntu64Guest",
            "failClones": 2,
        },
    ],
    # Not on the distributed port group DC0_DVPG0: VMs there never report an address.
    "dhcp": {"VM Network": {"first": "10.40.0.100", "last": "10.40.0.199"}},
    "ipDelayMs": 200,
    "tags": [
        {"category": "anywhere", "name": "control-plane"},
        {"category": "anywhere", "name": "workers"},
    ],
}


class VcsimUnavailable(RuntimeError):
    """The Go toolchain or the govmomi source is not installed."""


class VcsimError(RuntimeError):
    """The simulator did not build, or did not start."""


def build() -> Path:
    """The simulator binary, built from ``main.go`` unless the cache has this version of it.

    The binary is ``<repo>/.cache/vcsim/vcsim-<sha256(main.go)[:12]>``; Go's build cache is
    ``<repo>/.cache/go-build``. The build is offline (GOPATH mode on the Debian packages) and
    locked, so concurrent test processes build once.
    """
    go = shutil.which("go")
    if go is None or not (GOVMOMI / "simulator").is_dir():
        missing = "the Go toolchain" if go is None else f"the govmomi source ({GOVMOMI})"
        raise VcsimUnavailable(f"the vCenter simulator needs {missing}: {INSTALL_HINT}")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    cache = REPO / ".cache" / "vcsim"
    binary = cache / f"vcsim-{digest}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists():  # built by another process while we waited
            return binary
        partial = cache / f".vcsim-{digest}.{os.getpid()}"
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": str(GOPATH),
            "GOCACHE": str(REPO / ".cache" / "go-build"),
            "GOFLAGS": "",
            "GOPROXY": "off",
            "CGO_ENABLED": "0",
        }
        result = subprocess.run(
            [go, "build", "-o", str(partial), SOURCE.name],
            cwd=SOURCE.parent,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise VcsimError(f"building {SOURCE} failed:\n{result.stdout}{result.stderr}")
        partial.rename(binary)
        for old in cache.glob("vcsim-*"):
            if old != binary:
                old.unlink(missing_ok=True)
    return binary


@dataclass
class Vcsim:
    """A running simulator: where it serves, how to log in, what it created."""

    url: str  # https://127.0.0.1:PORT/sdk
    host: str
    port: int
    thumbprint: str  # SHA-1 of the certificate, "AB:CD:..." as vSphere shows it; "" without TLS
    username: str
    password: str = field(repr=False)
    datacenter: str
    tags: dict[str, str]  # "category/name" -> tag ID (urn:vmomi:InventoryServiceTag:...)
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path  # the simulator's stderr
    _own_log: bool = field(default=False, repr=False)

    @property
    def tls(self) -> bool:
        return self.url.startswith("https:")

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the simulator's log."""
        return log_tail(self.log_path, limit)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds. Idempotent."""
        terminate(self.process, grace)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
        if self._own_log:
            self.log_path.unlink(missing_ok=True)
        return self.process.returncode

    def __enter__(self) -> Vcsim:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    config: Mapping[str, Any],
    *,
    username: str = "administrator@vsphere.local",
    password: str | None = None,
    binary: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
) -> Vcsim:
    """Start the simulator with ``config`` and wait (up to ``timeout`` s) until it serves.

    The credentials go through the environment, never the command line; ``password`` defaults to a
    random one. The simulator's stderr goes to ``log_path`` (a temporary file, removed by
    :meth:`Vcsim.stop`, by default). Its stdin stays open: it exits if this process dies.
    """
    binary = binary or build()
    password = password or secrets.token_hex(16)
    own_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="vcsim-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    env = {**os.environ, "VCSIM_USERNAME": username, "VCSIM_PASSWORD": password}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "-exit-on-stdin-eof"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(config).encode() + b"\n")
        process.stdin.flush()
        line = _read_line(process, time.monotonic() + timeout)
        info = json.loads(line)
    except BaseException as e:
        if process.poll() is None:
            process.kill()
        process.wait()
        tail = log_tail(log_path, 4000)
        if own_log:
            log_path.unlink(missing_ok=True)
        if isinstance(e, VcsimError | BrokenPipeError | json.JSONDecodeError):
            raise VcsimError(f"vcsim did not start: {e}\n--- vcsim stderr (tail) ---\n{tail}") from e
        raise
    return Vcsim(
        url=info["url"],
        host=info["host"],
        port=info["port"],
        thumbprint=info["thumbprint"],
        username=username,
        password=password,
        datacenter=info["datacenter"],
        tags=dict(info["tags"]),
        process=process,
        log_path=log_path,
        _own_log=own_log,
    )


def _read_line(process: subprocess.Popen[bytes], deadline: float) -> str:
    """The first line of the process's stdout, waiting for it until ``deadline``."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise VcsimError("timed out waiting for the ready line")
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise VcsimError(f"exited with code {process.wait()} before it was ready")
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode()


def default_config() -> dict[str, Any]:
    """A deep copy of :data:`DEFAULT_CONFIG`, to change for one test."""
    return copy.deepcopy(dict(DEFAULT_CONFIG))


# --- pyVmomi helpers -------------------------------------------------------------------------


def _pinning_context() -> ssl.SSLContext:
    # A verifying context: the self-signed certificate fails verification, and only then does
    # pyVmomi fall back to comparing the certificate with the pinned thumbprint. With an
    # unverified context (pyVmomi's default for 127.0.0.1 and localhost!) the thumbprint is never
    # checked.
    return ssl.create_default_context()


def _stub(
    v: Vcsim, path: str, version: str, thumbprint: str | None, **kwargs: Any
) -> SoapAdapter.SoapStubAdapter:
    return SoapAdapter.SoapStubAdapter(
        host=v.host,
        port=v.port if v.tls else -v.port,  # pyVmomi: a negative port means plain http
        path=path,
        version=version,
        thumbprint=(v.thumbprint if thumbprint is None else thumbprint) or None,
        sslContext=_pinning_context() if v.tls else None,
        **kwargs,
    )


def connect(v: Vcsim, *, thumbprint: str | None = None, password: str | None = None) -> vim.ServiceInstance:
    """A logged-in pyVmomi ServiceInstance, the server certificate pinned to ``v.thumbprint``.

    ``thumbprint`` and ``password`` override ``v``'s (to test refusals): a wrong thumbprint raises
    ``pyVmomi.Security.ThumbprintMismatchException``, a wrong password ``vim.fault.InvalidLogin``.
    """
    si = vim.ServiceInstance("ServiceInstance", _stub(v, "/sdk", VIM_VERSION, thumbprint))
    manager = si.content.sessionManager
    assert manager is not None
    manager.Login(v.username, v.password if password is None else password, None)
    return si


def connect_pbm(v: Vcsim, si: vim.ServiceInstance) -> pbm.ServiceInstance:
    """The storage policy service in ``si``'s session, the way vCenter wants it: the path
    ``/pbm/sdk`` and the vCenter session ID in the ``vcSessionCookie`` SOAP header."""
    session = si._stub.GetSessionId()
    stub = _stub(v, "/pbm/sdk", PBM_VERSION, None, requestContext={"vcSessionCookie": session})
    return pbm.ServiceInstance("ServiceInstance", stub)


def _vm_properties(si: vim.ServiceInstance, paths: list[str]) -> Iterator[dict[str, Any]]:
    """The given properties of every VM (templates included), one dict per VM."""
    content = si.content
    assert content.viewManager is not None
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[
                        vmodl.query.PropertyCollector.TraversalSpec(
                            name="view", path="view", skip=False, type=vim.view.ContainerView
                        )
                    ],
                )
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=paths)],
        )
        for obj in content.propertyCollector.RetrieveContents([spec]):
            props = {p.name: p.val for p in obj.propSet}
            props["obj"] = obj.obj
            yield props
    finally:
        view.Destroy()


def vm_names(si: vim.ServiceInstance) -> set[str]:
    """The names of all VMs and templates."""
    return {p["name"] for p in _vm_properties(si, ["name"])}


def vms_with_extra_config(si: vim.ServiceInstance, key: str) -> dict[str, str]:
    """VM name -> value of the extraConfig ``key``, for the VMs that have it (an ownership marker,
    for leak checks)."""
    found: dict[str, str] = {}
    for p in _vm_properties(si, ["name", "config.extraConfig"]):
        for option in p.get("config.extraConfig") or []:
            if option.key == key:
                found[p["name"]] = str(option.value)
    return found


def wait_for(
    si: vim.ServiceInstance,
    obj: ManagedObject,
    path: str,
    predicate: Callable[[Any], bool],
    timeout: float = 30.0,
) -> Any:
    """Wait, with the property collector's WaitForUpdatesEx (no polling), until the property
    ``path`` of ``obj`` satisfies ``predicate``; return its value. AssertionError after ``timeout``
    seconds, with the last value seen."""
    pc = si.content.propertyCollector.CreatePropertyCollector()
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(obj), pathSet=[path])],
    )
    pc.CreateFilter(spec, partialUpdates=False)
    deadline = time.monotonic() + timeout
    version, value = "", None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{obj}.{path} did not reach the expected value in {timeout}s: {value!r}"
                )
            options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max(1, int(remaining)))
            update = pc.WaitForUpdatesEx(version, options)
            if update is None:  # maxWaitSeconds elapsed without a change
                continue
            version = update.version
            for filter_update in update.filterSet:
                for object_update in filter_update.objectSet:
                    for change in object_update.changeSet:
                        if change.name == path:
                            value = change.val
            if predicate(value):
                return value
    finally:
        pc.Destroy()


# --- REST (vapi) -----------------------------------------------------------------------------


def rest(
    v: Vcsim, method: str, path: str, *, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """One REST call (``path`` under /rest), the certificate pinned to ``v.thumbprint``: status
    and the decoded JSON body (None when empty)."""
    if v.tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # pinned below instead
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            v.host, v.port, context=context, timeout=30
        )
    else:
        conn = http.client.HTTPConnection(v.host, v.port, timeout=30)
    try:
        conn.connect()
        if isinstance(conn.sock, ssl.SSLSocket):
            der = conn.sock.getpeercert(binary_form=True) or b""
            actual = hashlib.sha1(der).hexdigest()
            if actual != v.thumbprint.replace(":", "").lower():
                raise ssl.SSLError(f"certificate thumbprint mismatch: {actual}")
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, "/rest" + path, body=data, headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw.strip() else None)
    finally:
        conn.close()


@contextlib.contextmanager
def rest_session(v: Vcsim, *, password: str | None = None) -> Iterator[dict[str, str]]:
    """A REST session (POST /rest/com/vmware/cis/session with basic auth): yields the headers to
    send (``vmware-api-session-id``); deleted on exit. A wrong password raises PermissionError."""
    credentials = f"{v.username}:{v.password if password is None else password}".encode()
    status, value = rest(
        v,
        "POST",
        "/com/vmware/cis/session",
        headers={"Authorization": "Basic " + b64encode(credentials).decode()},
    )
    if status != 200:
        raise PermissionError(f"REST login refused: HTTP {status}")
    headers = {"vmware-api-session-id": value["value"]}
    try:
        yield headers
    finally:
        rest(v, "DELETE", "/com/vmware/cis/session", headers=headers)


def attached_tags(v: Vcsim, vm_moid: str) -> set[str]:
    """The IDs of the tags attached to the VM ``vm_moid`` (e.g. "vm-42")."""
    with rest_session(v) as headers:
        status, value = rest(
            v,
            "POST",
            "/com/vmware/cis/tagging/tag-association?~action=list-attached-tags",
            body={"object_id": {"id": vm_moid, "type": "VirtualMachine"}},
            headers=headers,
        )
    if status != 200:
        raise RuntimeError(f"list-attached-tags: HTTP {status}: {value}")
    return set((value or {}).get("value") or [])
