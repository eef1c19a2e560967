"""The API server's PKI: cluster CA, serving and admin certificates, admin token, service-account keys.

``anywhere serve --data-dir DIR`` calls :func:`load_or_create` on every start. The first start creates
everything; later starts reuse it, so kubeconfigs written once keep working, and a replica started
with a copy of ``DIR`` trusts and is trusted by the same clients (the CA, admin credentials and
service-account keys are shared; each replica re-issues its own serving certificate when its host
name or requested SANs are not covered by the one it found).

What is derivable is repaired silently (a leaf certificate that is missing, unreadable, expiring,
signed by another CA or lacking a requested SAN is re-issued from the CA). What is not derivable is
never replaced behind the user's back: a damaged CA or service-account key is an error, because
replacing it would invalidate every certificate or token already handed out.

Every file is written atomically (temporary file, fsync, rename), keys before the certificates that
go with them, so a crash at any point leaves either the old pair, or a new key whose certificate is
missing or does not match it -- which the next start detects and repairs. An advisory lock on the
directory keeps two servers starting at once from issuing different CAs.

Key material never reaches the log, and the dataclasses below keep it out of their ``repr``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import ipaddress
import logging
import os
import re
import secrets
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_COMMON_NAME = "anywhere-ca"
SERVING_COMMON_NAME = "anywhere-apiserver"
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"

CA_DAYS = 3650
SERVING_DAYS = 365
ADMIN_DAYS = 365
# A leaf certificate closer than this to its end is re-issued at start, so a server restarted now
# and then never serves (or hands out) an expired certificate.
RENEW_BEFORE = dt.timedelta(days=30)
# Certificates start a little in the past so a replica whose clock lags behind accepts them at once.
BACKDATE = dt.timedelta(minutes=5)

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
SERVING_CERT_FILE = "apiserver.crt"
SERVING_KEY_FILE = "apiserver.key"
ADMIN_CERT_FILE = "admin.crt"
ADMIN_KEY_FILE = "admin.key"
TOKEN_FILE = "token"
SA_KEY_FILE = "sa.key"
SA_PUB_FILE = "sa.pub"
LOCK_FILE = ".pki.lock"
_ALL_FILES = (
    CA_CERT_FILE,
    CA_KEY_FILE,
    SERVING_CERT_FILE,
    SERVING_KEY_FILE,
    ADMIN_CERT_FILE,
    ADMIN_KEY_FILE,
    TOKEN_FILE,
    SA_KEY_FILE,
    SA_PUB_FILE,
)

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
# The extra test a reusable leaf certificate must pass: a reason to re-issue it, or None.
_Check = Callable[[x509.Certificate], str | None]
# Issues a fresh (certificate PEM, key PEM).
_Issuer = Callable[[], tuple[bytes, bytes]]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class PKIError(Exception):
    """The data directory holds something this module must not silently replace (a damaged CA or
    service-account key); the message names the file and what to do."""


@dataclass(frozen=True)
class CertificateAuthority:
    """The cluster CA: signs serving and client certificates."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class PKI:
    """Everything the server needs from ``data_dir``, as PEM bytes and as paths.

    ``sans`` are the names the serving certificate actually covers (at least those requested).
    """

    data_dir: Path
    sans: tuple[str, ...]
    ca: CertificateAuthority
    ca_cert_pem: bytes = field(repr=False)
    serving_cert_pem: bytes = field(repr=False)
    serving_key_pem: bytes = field(repr=False)
    admin_cert_pem: bytes = field(repr=False)
    admin_key_pem: bytes = field(repr=False)
    admin_token: str = field(repr=False)
    sa_private_key_pem: bytes = field(repr=False)
    sa_public_key_pem: bytes = field(repr=False)

    @property
    def ca_cert_path(self) -> Path:
        return self.data_dir / CA_CERT_FILE

    @property
    def ca_key_path(self) -> Path:
        return self.data_dir / CA_KEY_FILE

    @property
    def serving_cert_path(self) -> Path:
        return self.data_dir / SERVING_CERT_FILE

    @property
    def serving_key_path(self) -> Path:
        return self.data_dir / SERVING_KEY_FILE

    @property
    def admin_cert_path(self) -> Path:
        return self.data_dir / ADMIN_CERT_FILE

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / ADMIN_KEY_FILE

    @property
    def token_path(self) -> Path:
        return self.data_dir / TOKEN_FILE

    @property
    def sa_key_path(self) -> Path:
        return self.data_dir / SA_KEY_FILE

    @property
    def sa_pub_path(self) -> Path:
        return self.data_dir / SA_PUB_FILE


# --------------------------------------------------------------------------------------------------
# Public API


def load_or_create(data_dir: str | os.PathLike[str], extra_sans: Iterable[str] = ()) -> PKI:
    """Load the PKI kept in ``data_dir``, creating or repairing what is missing.

    ``extra_sans`` are IP addresses or DNS names (e.g. a VIP or the machine's public name) the
    serving certificate must cover besides localhost, 127.0.0.1, ::1 and the host name. Raises
    :class:`ValueError` for a malformed SAN and :class:`PKIError` for a damaged CA or SA key.
    """
    directory = Path(data_dir)
    sans = requested_sans(extra_sans)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(directory):
        _remove_stale_temporaries(directory)
        ca = _load_or_create_ca(directory)
        serving_cert, serving_key = _load_or_issue_leaf(
            directory / SERVING_CERT_FILE,
            directory / SERVING_KEY_FILE,
            ca,
            "serving certificate",
            _missing_sans(sans),
            lambda: _issue(
                ca, _subject(SERVING_COMMON_NAME, ()), SERVING_DAYS, server_sans=[_parse_san(s) for s in sans]
            ),
        )
        admin_cert, admin_key = _load_or_issue_leaf(
            directory / ADMIN_CERT_FILE,
            directory / ADMIN_KEY_FILE,
            ca,
            "admin client certificate",
            _wrong_subject(ADMIN_USER, [ADMIN_GROUP]),
            lambda: _issue(ca, _subject(ADMIN_USER, [ADMIN_GROUP]), ADMIN_DAYS),
        )
        token = _load_or_create_token(directory / TOKEN_FILE)
        sa_private, sa_public = _load_or_create_sa_keys(directory / SA_KEY_FILE, directory / SA_PUB_FILE)
    return PKI(
        data_dir=directory,
        sans=tuple(_cert_sans(x509.load_pem_x509_certificate(serving_cert))),
        ca=ca,
        ca_cert_pem=ca.cert_pem,
        serving_cert_pem=serving_cert,
        serving_key_pem=serving_key,
        admin_cert_pem=admin_cert,
        admin_key_pem=admin_key,
        admin_token=token,
        sa_private_key_pem=sa_private,
        sa_public_key_pem=sa_public,
    )


def requested_sans(extra_sans: Iterable[str] = ()) -> list[str]:
    """The serving certificate's SANs, normalised and without duplicates, defaults first.

    The host name is left out (with a warning) when it is not a valid DNS name, since a certificate
    cannot carry it; a malformed *extra* SAN is the caller's mistake and raises :class:`ValueError`.
    """
    wanted = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname().lower().rstrip(".")
    try:
        _parse_san(hostname)
        wanted.append(hostname)
    except ValueError:
        log.warning("host name %r is not a valid DNS name; the serving certificate leaves it out", hostname)
    wanted.extend(_san_text(_parse_san(value)) for value in extra_sans)
    unique = dict.fromkeys(wanted)
    return list(unique)


def issue_client_certificate(
    ca: CertificateAuthority, common_name: str, organizations: Iterable[str] = (), days: int = 365
) -> tuple[bytes, bytes]:
    """A new client certificate and its key, as PEM: the server authenticates it as user
    ``common_name`` in groups ``organizations`` (Kubernetes' x509 convention)."""
    if not common_name:
        raise ValueError("a client certificate needs a common name (the user name)")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    return _issue(ca, _subject(common_name, list(organizations)), days)


def server_ssl_context(pki: PKI, require_client_cert: bool = False) -> ssl.SSLContext:
    """A TLS server context serving the apiserver certificate.

    Client certificates are requested and, when presented, verified against the cluster CA;
    without ``require_client_cert`` a client may present none (and authenticate with a bearer
    token instead). A client certificate that does not verify fails the handshake. ALPN offers
    only HTTP/1.1 so HTTP/2-capable clients such as kubectl do not try h2.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl can only load a key pair from a file. Loading the pair held by ``pki`` (rather than
    # whatever the files hold now) guarantees the context serves what the caller inspected; the
    # temporary file lives beside the key it copies, readable by the owner only.
    fd, temporary = tempfile.mkstemp(dir=pki.data_dir, prefix=".serving.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pki.serving_key_pem + pki.serving_cert_pem)
        context.load_cert_chain(temporary)
    finally:
        os.unlink(temporary)
    context.load_verify_locations(cadata=pki.ca_cert_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context


def peer_identity(
    peer: ssl.SSLObject | ssl.SSLSocket | Mapping[str, Any] | None,
) -> tuple[str, list[str]] | None:
    """``(user, groups)`` from a verified client certificate: the subject's CN and its O values.

    Takes an SSL object/socket or what its ``getpeercert()`` returned (aiohttp's
    ``transport.get_extra_info("peercert")``). Python only decodes the certificate when the context
    verified it, so an empty or absent value (no certificate, or an unverified one) gives ``None``.
    The ``system:authenticated`` group is the authenticator's to add, not this function's.
    """
    details: Mapping[str, Any] | None = (
        peer.getpeercert() if isinstance(peer, ssl.SSLObject | ssl.SSLSocket) else peer
    )
    if not details:
        return None
    user: str | None = None
    groups: list[str] = []
    subject: Iterable[Iterable[tuple[str, str]]] = details.get("subject", ())
    for rdn in subject:
        for attribute, value in rdn:
            if attribute == "commonName":
                user = value  # the last CN wins, as in Go's crypto/x509 (what kube-apiserver uses)
            elif attribute == "organizationName":
                groups.append(value)
    if not user:
        return None
    return user, groups


def render_kubeconfig(
    server_url: str,
    ca_pem: bytes | str,
    *,
    user: str,
    client_cert_pem: bytes | str | None = None,
    client_key_pem: bytes | str | None = None,
    token: str | None = None,
    cluster_name: str,
    context_name: str,
) -> str:
    """A kubeconfig (YAML) with one cluster, one user and one context, which is current.

    Credentials are embedded (``*-data``), so the file works wherever it is copied. A client
    certificate and a token may both be given (kubectl then sends both); giving only half of a
    certificate pair is an error.
    """
    ca_bytes = _as_bytes(ca_pem)
    try:
        x509.load_pem_x509_certificates(ca_bytes)
    except ValueError as error:
        raise ValueError(f"ca_pem is not a PEM certificate: {error}") from None
    if (client_cert_pem is None) != (client_key_pem is None):
        raise ValueError("client_cert_pem and client_key_pem go together: give both or neither")
    credentials: dict[str, str] = {}
    if client_cert_pem is not None and client_key_pem is not None:
        credentials["client-certificate-data"] = _b64(_as_bytes(client_cert_pem))
        credentials["client-key-data"] = _b64(_as_bytes(client_key_pem))
    if token is not None:
        credentials["token"] = token
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server_url, "certificate-authority-data": _b64(ca_bytes)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context_name,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False)


def write_kubeconfig(
    path: str | os.PathLike[str],
    server_url: str,
    ca_pem: bytes | str,
    *,
    user: str,
    client_cert_pem: bytes | str | None = None,
    client_key_pem: bytes | str | None = None,
    token: str | None = None,
    cluster_name: str,
    context_name: str,
) -> None:
    """Write :func:`render_kubeconfig`'s output to ``path`` atomically, mode 0600 (it holds
    credentials), creating the parent directory when needed."""
    text = render_kubeconfig(
        server_url,
        ca_pem,
        user=user,
        client_cert_pem=client_cert_pem,
        client_key_pem=client_key_pem,
        token=token,
        cluster_name=cluster_name,
        context_name=context_name,
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(target, text.encode("utf-8"), SECRET_MODE)


# --------------------------------------------------------------------------------------------------
# Loading and creating the pieces


def _load_or_create_ca(directory: Path) -> CertificateAuthority:
    cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    key: PrivateKey
    if not cert_path.exists():
        # The certificate is written after the key, so a key without a certificate is the trace of
        # a first start that crashed: nothing was ever signed with it, and starting over is safe.
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _self_signed_ca(key)
        _write_atomic(key_path, _key_pem(key), SECRET_MODE)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
        log.info("created cluster CA %s in %s", CA_COMMON_NAME, directory)
        return CertificateAuthority(cert, key)
    if not key_path.exists():
        raise PKIError(
            f"{cert_path} exists but {key_path} does not: restore the CA key, or remove {cert_path} "
            "to create a new CA (every kubeconfig and certificate issued so far then stops working)"
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError as error:
        raise PKIError(f"{cert_path} is not a PEM certificate ({error})") from None
    key = _read_private_key(key_path, "the CA key")
    if not _same_public_key(cert, key):
        raise PKIError(f"{key_path} is not the key of {cert_path}: restore the matching pair")
    if not _is_ca(cert):
        raise PKIError(f"{cert_path} is not a CA certificate (basicConstraints CA:TRUE is missing)")
    if cert.not_valid_after_utc <= _now():
        raise PKIError(
            f"the cluster CA {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
            "remove ca.crt and ca.key to create a new one and re-issue every kubeconfig"
        )
    _tighten_mode(key_path)
    return CertificateAuthority(cert, key)


def _load_or_issue_leaf(
    cert_path: Path,
    key_path: Path,
    ca: CertificateAuthority,
    what: str,
    mismatch: _Check,
    issue: _Issuer,
) -> tuple[bytes, bytes]:
    """Reuse the pair at ``cert_path``/``key_path`` if it is sound and passes ``mismatch``; else
    issue and store a new one, saying why."""
    reason = "it does not exist"
    if cert_path.exists() and key_path.exists():
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
        reason = _leaf_problem(cert_pem, key_pem, ca) or ""
        if not reason:
            reason = mismatch(x509.load_pem_x509_certificate(cert_pem)) or ""
        if not reason:
            _tighten_mode(key_path)
            return cert_pem, key_pem
    cert_pem, key_pem = issue()
    _write_atomic(key_path, key_pem, SECRET_MODE)
    _write_atomic(cert_path, cert_pem, PUBLIC_MODE)
    log.info("issued %s %s: %s", what, cert_path, reason)
    return cert_pem, key_pem


def _leaf_problem(cert_pem: bytes, key_pem: bytes, ca: CertificateAuthority) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "the certificate file is unreadable"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return "the key file is unreadable"
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) or not _same_public_key(cert, key):
        return "the key does not match the certificate"
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return "it was not issued by the current CA"
    remaining = cert.not_valid_after_utc - _now()
    if remaining < RENEW_BEFORE:
        return f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _missing_sans(sans: list[str]) -> _Check:
    wanted = {_san_text(_parse_san(s)) for s in sans}

    def check(cert: x509.Certificate) -> str | None:
        missing = sorted(wanted - set(_cert_sans(cert)))
        return f"it does not cover {', '.join(missing)}" if missing else None

    return check


def _wrong_subject(user: str, groups: list[str]) -> _Check:
    def check(cert: x509.Certificate) -> str | None:
        cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return None if cn == [user] and orgs == groups else f"its subject is not CN={user}, O={groups}"

    return check


def _load_or_create_token(path: Path) -> str:
    if path.exists():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        token = lines[0].strip() if lines else ""
        if token:
            _tighten_mode(path)
            return token
    token = secrets.token_urlsafe(32)
    _write_atomic(path, (token + "\n").encode("ascii"), SECRET_MODE)
    log.info("created admin bearer token in %s", path)
    return token


def _load_or_create_sa_keys(key_path: Path, pub_path: Path) -> tuple[bytes, bytes]:
    """RSA-2048, as kubeadm's ``sa.key``: RS256 is the one JWT algorithm every token consumer
    (kube-apiserver, OIDC discovery clients) accepts."""
    key: PrivateKey
    if key_path.exists():
        private_pem = key_path.read_bytes()
        key = _read_private_key(key_path, "the service-account signing key", private_pem)
        _tighten_mode(key_path)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = _key_pem(key)
        _write_atomic(key_path, private_pem, SECRET_MODE)
        log.info("created service-account signing key %s", key_path)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not pub_path.exists() or pub_path.read_bytes() != public_pem:
        _write_atomic(pub_path, public_pem, PUBLIC_MODE)
    return private_pem, public_pem


def _read_private_key(path: Path, what: str, data: bytes | None = None) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes() if data is None else data, password=None)
    except (ValueError, TypeError) as error:
        raise PKIError(f"{path} ({what}) is not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PKIError(f"{path} ({what}) must be an EC or RSA key, not {type(key).__name__}")
    return key


# --------------------------------------------------------------------------------------------------
# Certificates


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _subject(common_name: str, organizations: Iterable[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _self_signed_ca(key: PrivateKey) -> x509.Certificate:
    now = _now()
    name = _subject(CA_COMMON_NAME, ())
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _issue(
    ca: CertificateAuthority,
    subject: x509.Name,
    days: int,
    *,
    server_sans: list[x509.GeneralName] | None = None,
) -> tuple[bytes, bytes]:
    """A new EC P-256 key and a certificate for it signed by ``ca``: a server certificate when
    ``server_sans`` is given, else a client certificate. It never outlives the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    now = _now()
    not_after = min(now + dt.timedelta(days=days), ca.cert.not_valid_after_utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_sans is not None else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if server_sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(server_sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _key_usage(*, digital_signature: bool, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _parse_san(value: str) -> x509.GeneralName:
    """An IP address (``[::1]`` brackets allowed) or a DNS name, possibly a ``*.`` wildcard."""
    text = value.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.split(".")
    valid = (
        0 < len(name) <= 253
        and all(_DNS_LABEL.match(label) for label in labels[1:])
        and (_DNS_LABEL.match(labels[0]) or (labels[0] == "*" and len(labels) > 2))
    )
    if not valid:
        raise ValueError(f"SAN {value!r} is neither an IP address nor a valid DNS name")
    return x509.DNSName(name)


def _san_text(name: x509.GeneralName) -> str:
    if isinstance(name, x509.IPAddress):
        return str(name.value)
    return str(name.value).lower()


def _cert_sans(cert: x509.Certificate) -> list[str]:
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [_san_text(n) for n in extension.value if isinstance(n, x509.DNSName | x509.IPAddress)]


# --------------------------------------------------------------------------------------------------
# Files


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` so a reader (or a crash) sees the old file or the whole new
    one, never a part; the mode is set before any byte is written."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _remove_stale_temporaries(directory: Path) -> None:
    """Temporary files a crashed start left behind (they may hold key material)."""
    for name in (*_ALL_FILES, "serving"):
        for leftover in directory.glob(f".{name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _tighten_mode(path: Path) -> None:
    """Secrets copied with a lax umask become owner-only again."""
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by others; setting mode 0600", path)
        path.chmod(SECRET_MODE)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise :func:`load_or_create` across processes sharing ``directory``."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, SECRET_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
