"""Reading a kubeconfig into what an HTTPS client needs: a URL, an ``ssl.SSLContext`` and headers.

Only the static credentials kubectl itself writes are understood (inline or file certificates,
keys and CA bundles, bearer tokens); exec plugins and auth providers are refused with a clear error
rather than half-supported. The client key never outlives the call that loads it: Python's ``ssl``
module reads certificate chains only from paths, so the PEM goes into an anonymous in-memory file
(``memfd_create``) where the platform has one, else into a private temporary file that is removed
as soon as OpenSSL has read it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KubeConfig", "KubeConfigError", "load_kubeconfig"]


class KubeConfigError(ValueError):
    """The kubeconfig is missing, malformed, or asks for an authentication we do not support."""


@dataclass(frozen=True, repr=False)
class KubeConfig:
    """Where the API server is and how to authenticate to it (secrets are kept out of ``repr``)."""

    server: str
    ca_data: bytes | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    namespace: str = "default"
    headers: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        auth = "token" if self.token else "client-certificate" if self.client_cert_data else "none"
        return f"KubeConfig(server={self.server!r}, auth={auth}, namespace={self.namespace!r})"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context trusting the cluster CA and presenting the client certificate, if any."""
        if not self.server.startswith("https://"):
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            try:
                context.load_verify_locations(cadata=self.ca_data.decode("ascii"))
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise KubeConfigError(
                    f"the certificate authority data is not a PEM certificate: {exc}"
                ) from None
        if self.client_cert_data is not None:
            if self.client_key_data is None:
                raise KubeConfigError("the kubeconfig user has a client certificate but no client key")
            try:
                with _pem_path(self.client_cert_data.rstrip(b"\n") + b"\n" + self.client_key_data) as path:
                    context.load_cert_chain(path)
            except ssl.SSLError as exc:
                raise KubeConfigError(f"the client certificate or key is not valid: {exc}") from None
        return context


@contextlib.contextmanager
def _pem_path(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``data`` from, gone when the block ends."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("anywhere-client-credentials", getattr(os, "MFD_CLOEXEC", 0))
        try:
            _write_all(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, name = tempfile.mkstemp(prefix="anywhere-client-", suffix=".pem")  # created mode 0600
    try:
        _write_all(fd, data)
        os.close(fd)
        fd = -1
        yield name
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def default_kubeconfig_path() -> Path:
    """``$KUBECONFIG`` (its first entry) or ``~/.kube/config``, as kubectl chooses."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((part for part in env.split(os.pathsep) if part), "")
    return Path(first) if first else Path.home() / ".kube" / "config"


def load_kubeconfig(path: str | os.PathLike[str] | None = None, *, context: str | None = None) -> KubeConfig:
    """Read the kubeconfig at ``path`` (default: as kubectl finds it) for ``context`` (default: current).

    This reads a small file synchronously; call it once at startup (or via ``asyncio.to_thread``).
    """
    file = Path(path) if path is not None else default_kubeconfig_path()
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KubeConfigError(f"cannot read the kubeconfig {file}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise KubeConfigError(f"the kubeconfig {file} is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise KubeConfigError(f"the kubeconfig {file} is not a mapping")
    return _parse(document, file.parent, context)


def parse_kubeconfig(text: str | bytes, *, context: str | None = None) -> KubeConfig:
    """A kubeconfig given as text (such as a cluster's ``NAME-kubeconfig`` Secret); file references
    in it must be absolute."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeConfigError(f"the kubeconfig is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise KubeConfigError("the kubeconfig is not a mapping")
    return _parse(document, Path("/"), context)


def _named(document: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    item_key = section[:-1]  # clusters -> cluster, users -> user, contexts -> context
    for entry in document.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(item_key) or {}
            if not isinstance(value, dict):
                raise KubeConfigError(f"{section} entry {name!r} is not a mapping")
            return value
    raise KubeConfigError(f"the kubeconfig has no {item_key} named {name!r}")


def _parse(document: dict[str, Any], base: Path, context_name: str | None) -> KubeConfig:
    name = context_name or document.get("current-context")
    if not name:
        raise KubeConfigError("the kubeconfig has no current-context; name a context")
    ctx = _named(document, "contexts", name)
    cluster = _named(document, "clusters", str(ctx.get("cluster", "")))
    user = _named(document, "users", str(ctx.get("user", ""))) if ctx.get("user") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeConfigError(f"the cluster of context {name!r} has no server")
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise KubeConfigError(
                f"the user of context {name!r} uses {unsupported!r} authentication, which is not supported;"
                " use a client certificate or a token"
            )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _read(base, str(user["tokenFile"])).decode("utf-8").strip()
    headers: dict[str, str] = {}
    if user.get("username") and user.get("password"):
        basic = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {basic}"
    return KubeConfig(
        server=server.rstrip("/"),
        ca_data=_data(cluster, "certificate-authority", base),
        client_cert_data=_data(user, "client-certificate", base),
        client_key_data=_data(user, "client-key", base),
        token=str(token) if token else None,
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        namespace=str(ctx.get("namespace") or "default"),
        headers=headers,
    )


def _data(section: dict[str, Any], field_name: str, base: Path) -> bytes | None:
    """``FIELD-data`` (base64) or ``FIELD`` (a path, relative to the kubeconfig's folder)."""
    inline = section.get(f"{field_name}-data")
    if inline:
        try:
            return base64.b64decode(str(inline), validate=True)
        except ValueError:
            raise KubeConfigError(f"{field_name}-data is not valid base64") from None
    path = section.get(field_name)
    return _read(base, str(path)) if path else None


def _read(base: Path, path: str) -> bytes:
    file = Path(path).expanduser()
    if not file.is_absolute():
        file = base / file
    try:
        return file.read_bytes()
    except OSError as exc:
        raise KubeConfigError(f"cannot read {file}: {exc.strerror or exc}") from None
