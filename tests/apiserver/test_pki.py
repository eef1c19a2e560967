"""The PKI against real verifiers: cryptography's RFC 5280 path validation, OpenSSL via ``ssl``,
the official Python kubernetes client and the machine's kubectl."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from anywhere.apiserver import pki as pkimod
from anywhere.apiserver.pki import (
    PKI,
    PKIError,
    issue_client_certificate,
    load_or_create,
    peer_identity,
    render_kubeconfig,
    server_ssl_context,
    write_kubeconfig,
)

HOSTNAME = socket.gethostname().lower()
SECRETS = ("ca.key", "apiserver.key", "admin.key", "token", "sa.key")
PUBLIC = ("ca.crt", "apiserver.crt", "admin.crt", "sa.pub")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """One PKI for the tests that only read it (creating one costs an RSA key)."""
    return load_or_create(tmp_path_factory.mktemp("pki") / "data", ["10.0.0.5", "API.Example.com."])


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sans(pem: bytes) -> set[str]:
    ext = _cert(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.DNSName)} | {
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    }


def _store(pki: PKI) -> Store:
    return Store([pki.ca.cert])


def _client_verifier(pki: PKI) -> Any:
    """RFC 5280 path validation for a client certificate. cryptography's web-PKI profile wants a
    SAN on every leaf; Kubernetes client certificates name the user in the subject instead."""
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    builder = (
        PolicyBuilder()
        .store(_store(pki))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)
    )
    return builder.build_client_verifier()


# --------------------------------------------------------------------------------------------------
# Creation, reuse, files


def test_first_start_creates_every_file_with_its_mode(shared: PKI) -> None:
    directory = shared.data_dir
    assert _mode(directory) == 0o700
    for name in SECRETS:
        assert _mode(directory / name) == 0o600, name
    for name in PUBLIC:
        assert _mode(directory / name) == 0o644, name
    assert not list(directory.glob(".*.tmp"))
    assert shared.ca_cert_path.read_bytes() == shared.ca_cert_pem
    assert shared.token_path.read_text().strip() == shared.admin_token
    assert len(shared.admin_token) >= 40


def test_ca_is_a_ten_year_ca_named_anywhere_ca(shared: PKI) -> None:
    ca = _cert(shared.ca_cert_pem)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "anywhere-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3651)
    assert isinstance(shared.ca.key, ec.EllipticCurvePrivateKey)


def test_reload_reuses_everything(shared: PKI) -> None:
    again = load_or_create(shared.data_dir, ["10.0.0.5", "api.example.com"])
    assert again.ca_cert_pem == shared.ca_cert_pem
    assert again.serving_cert_pem == shared.serving_cert_pem
    assert again.serving_key_pem == shared.serving_key_pem
    assert again.admin_cert_pem == shared.admin_cert_pem
    assert again.admin_key_pem == shared.admin_key_pem
    assert again.admin_token == shared.admin_token
    assert again.sa_private_key_pem == shared.sa_private_key_pem
    assert again.sa_public_key_pem == shared.sa_public_key_pem


def test_a_copy_of_the_directory_serves_the_same_cluster(shared: PKI, tmp_path: Path) -> None:
    copy = tmp_path / "replica"
    shutil.copytree(shared.data_dir, copy)
    replica = load_or_create(copy, ["10.0.0.5", "api.example.com"])
    assert replica.ca_cert_pem == shared.ca_cert_pem
    assert replica.admin_token == shared.admin_token
    assert replica.sa_private_key_pem == shared.sa_private_key_pem


def test_repr_carries_no_key_material(shared: PKI) -> None:
    text = repr(shared)
    assert "PRIVATE KEY" not in text
    assert shared.admin_token not in text


def test_service_account_keys_are_a_matching_rsa_pair(shared: PKI) -> None:
    private = serialization.load_pem_private_key(shared.sa_private_key_pem, password=None)
    public = serialization.load_pem_public_key(shared.sa_public_key_pem)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert private.public_key().public_bytes(*spki) == public.public_bytes(*spki)
    assert shared.sa_pub_path.read_bytes() == shared.sa_public_key_pem


# --------------------------------------------------------------------------------------------------
# Serving certificate and SANs


def test_serving_certificate_covers_defaults_and_extras(shared: PKI) -> None:
    assert {"localhost", "127.0.0.1", "::1", HOSTNAME, "10.0.0.5", "api.example.com"} <= _sans(
        shared.serving_cert_pem
    )
    assert shared.sans[:3] == ("localhost", "127.0.0.1", "::1")
    verifier = PolicyBuilder().store(_store(shared))
    leaf = _cert(shared.serving_cert_pem)
    for name in (
        x509.DNSName("localhost"),
        x509.DNSName("api.example.com"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
        x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
    ):
        verifier.build_server_verifier(name).verify(leaf, [])


def test_a_new_san_reissues_only_the_serving_certificate(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, ["api.example.com"])
    second = load_or_create(tmp_path, ["[2001:db8::7]", "192.0.2.7"])
    assert second.serving_cert_pem != first.serving_cert_pem
    assert {"2001:db8::7", "192.0.2.7"} <= _sans(second.serving_cert_pem)
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.admin_cert_pem == first.admin_cert_pem
    # A subset of what the certificate covers needs nothing new.
    third = load_or_create(tmp_path, ["192.0.2.7"])
    assert third.serving_cert_pem == second.serving_cert_pem


@pytest.mark.parametrize("bad", ["", "not a name", "-lead.example.com", "a..b", "x" * 64 + ".com", "*.com"])
def test_malformed_extra_san_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="SAN"):
        load_or_create(tmp_path, [bad])
    assert not (tmp_path / "ca.crt").exists()


def test_wildcard_san_is_accepted(tmp_path: Path) -> None:
    assert "*.apps.example.com" in load_or_create(tmp_path, ["*.apps.example.com"]).sans


# --------------------------------------------------------------------------------------------------
# Client certificates


def test_issued_client_certificate_verifies_against_the_ca(shared: PKI) -> None:
    cert_pem, key_pem = issue_client_certificate(shared.ca, "jane", ["dev", "ops"], days=30)
    cert = _cert(cert_pem)
    verified = _client_verifier(shared).verify(cert, [])
    assert verified.chain[-1] == shared.ca.cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jane"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["dev", "ops"]
    assert dt.timedelta(days=29) < cert.not_valid_after_utc - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    key = serialization.load_pem_private_key(key_pem, password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def test_admin_certificate_is_admin_in_system_masters(shared: PKI) -> None:
    cert = _cert(shared.admin_cert_pem)
    _client_verifier(shared).verify(cert, [])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:masters"
    ]


def test_client_certificate_needs_a_name_and_a_lifetime(shared: PKI) -> None:
    with pytest.raises(ValueError, match="common name"):
        issue_client_certificate(shared.ca, "", [], 1)
    with pytest.raises(ValueError, match="days"):
        issue_client_certificate(shared.ca, "x", [], 0)


# --------------------------------------------------------------------------------------------------
# Repair, and refusing to repair what cannot be


def test_missing_or_foreign_leaves_are_reissued_from_the_same_ca(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    (tmp_path / "admin.key").unlink()
    foreign = load_or_create(tmp_path / "other")
    (tmp_path / "apiserver.crt").write_bytes(foreign.serving_cert_pem)
    (tmp_path / "token").write_text("")
    second = load_or_create(tmp_path)
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.admin_cert_pem != first.admin_cert_pem
    assert second.serving_cert_pem not in (first.serving_cert_pem, foreign.serving_cert_pem)
    _cert(second.serving_cert_pem).verify_directly_issued_by(second.ca.cert)
    assert second.admin_token
    assert second.admin_token != first.admin_token


def test_a_key_without_its_certificate_is_a_crashed_first_start(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    (tmp_path / "ca.crt").unlink()
    (tmp_path / ".ca.key.abc.tmp").write_bytes(b"half")
    second = load_or_create(tmp_path)
    assert second.ca_cert_pem != first.ca_cert_pem
    # Everything signed by the lost CA was re-issued.
    _cert(second.admin_cert_pem).verify_directly_issued_by(second.ca.cert)
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_damaged_ca_is_an_error_not_a_new_ca(tmp_path: Path) -> None:
    load_or_create(tmp_path)
    key = (tmp_path / "ca.key").read_bytes()
    (tmp_path / "ca.key").unlink()
    with pytest.raises(PKIError, match=r"ca\.key"):
        load_or_create(tmp_path)
    (tmp_path / "ca.key").write_bytes(b"garbage")
    with pytest.raises(PKIError, match="not an unencrypted PEM private key"):
        load_or_create(tmp_path)
    (tmp_path / "ca.key").write_bytes(key)
    load_or_create(tmp_path)


def test_a_damaged_service_account_key_is_an_error(tmp_path: Path) -> None:
    load_or_create(tmp_path)
    (tmp_path / "sa.key").write_bytes(b"garbage")
    with pytest.raises(PKIError, match="service-account"):
        load_or_create(tmp_path)


def test_a_lost_public_key_is_derived_again(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    (tmp_path / "sa.pub").unlink()
    assert load_or_create(tmp_path).sa_public_key_pem == first.sa_public_key_pem
    assert (tmp_path / "sa.pub").read_bytes() == first.sa_public_key_pem


def test_lax_secret_modes_are_tightened(tmp_path: Path) -> None:
    load_or_create(tmp_path)
    for name in SECRETS:
        (tmp_path / name).chmod(0o644)
    load_or_create(tmp_path)
    for name in SECRETS:
        assert _mode(tmp_path / name) == 0o600, name


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def fail(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk on fire"):
        pkimod._write_atomic(target, b"new", 0o600)
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


# --------------------------------------------------------------------------------------------------
# TLS


def _client_context(pki: PKI, tmp_path: Path, cert: tuple[bytes, bytes] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=pki.ca_cert_pem.decode())
    if cert is not None:
        (tmp_path / "c.crt").write_bytes(cert[0])
        (tmp_path / "c.key").write_bytes(cert[1])
        context.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    return context


async def _handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str = "localhost"
) -> tuple[str, list[str]] | None:
    """Connect over TLS on 127.0.0.1 and return the identity the server saw."""
    seen: asyncio.Future[tuple[str, list[str]] | None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not seen.done():
            seen.set_result(peer_identity(writer.get_extra_info("peercert")))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname=server_hostname),
            10,
        )
        if await asyncio.wait_for(reader.read(), 10) != b"ok":
            # TLS 1.3: the client finishes its side before the server rejects its certificate.
            raise ConnectionError("the server closed the connection")
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() in (None, "http/1.1")
        writer.close()
        return await asyncio.wait_for(seen, 10)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "::1", HOSTNAME])
async def test_admin_certificate_handshake_yields_admin_identity(
    shared: PKI, tmp_path: Path, hostname: str
) -> None:
    client = _client_context(shared, tmp_path, (shared.admin_cert_pem, shared.admin_key_pem))
    identity = await _handshake(server_ssl_context(shared), client, hostname)
    assert identity == ("admin", ["system:masters"])


async def test_client_without_certificate_is_anonymous_at_tls(shared: PKI, tmp_path: Path) -> None:
    assert await _handshake(server_ssl_context(shared), _client_context(shared, tmp_path, None)) is None


async def test_issued_user_certificate_handshake(shared: PKI, tmp_path: Path) -> None:
    client = _client_context(shared, tmp_path, issue_client_certificate(shared.ca, "jane", ["dev", "ops"], 1))
    assert await _handshake(server_ssl_context(shared), client) == ("jane", ["dev", "ops"])


async def test_certificate_from_another_ca_fails_the_handshake(shared: PKI, tmp_path: Path) -> None:
    other = load_or_create(tmp_path / "other")
    client = _client_context(shared, tmp_path, (other.admin_cert_pem, other.admin_key_pem))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(server_ssl_context(shared), client)


async def test_required_client_certificate(shared: PKI, tmp_path: Path) -> None:
    context = server_ssl_context(shared, require_client_cert=True)
    assert context.verify_mode == ssl.CERT_REQUIRED
    client = _client_context(shared, tmp_path, (shared.admin_cert_pem, shared.admin_key_pem))
    assert await _handshake(context, client) == ("admin", ["system:masters"])
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(context, _client_context(shared, tmp_path, None))


def test_server_context_settings(shared: PKI) -> None:
    context = server_ssl_context(shared)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert not list(shared.data_dir.glob(".*.tmp"))


def test_peer_identity_on_decoded_certificates() -> None:
    subject = ((("organizationName", "a"),), (("organizationName", "b"),), (("commonName", "bob"),))
    assert peer_identity({"subject": subject}) == ("bob", ["a", "b"])
    assert peer_identity({"subject": ((("commonName", "only"),),)}) == ("only", [])
    assert peer_identity({"subject": ((("organizationName", "a"),),)}) is None
    assert peer_identity({}) is None  # what an unverified certificate decodes to
    assert peer_identity(None) is None


# --------------------------------------------------------------------------------------------------
# Kubeconfig, with the real clients


class _VersionHandler(BaseHTTPRequestHandler):
    """Answers /version and records who asked (certificate identity, bearer token)."""

    seen: list[tuple[tuple[str, list[str]] | None, str | None]]

    def do_GET(self) -> None:
        assert isinstance(self.connection, ssl.SSLSocket)
        self.seen.append((peer_identity(self.connection), self.headers.get("Authorization")))
        body = json.dumps(
            {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-anywhere",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "python",
                "compiler": "cpython",
                "platform": "linux/amd64",
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def version_server(shared: PKI) -> Iterator[tuple[str, list[Any]]]:
    seen: list[Any] = []
    handler = type("Handler", (_VersionHandler,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = server_ssl_context(shared).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _kubeconfigs(pki: PKI, url: str, directory: Path) -> dict[str, Path]:
    paths = {"cert": directory / "cert.kubeconfig", "token": directory / "sub" / "token.kubeconfig"}
    write_kubeconfig(
        paths["cert"],
        url,
        pki.ca_cert_pem,
        user="demo-admin",
        client_cert_pem=pki.admin_cert_pem,
        client_key_pem=pki.admin_key_pem,
        cluster_name="demo",
        context_name="demo-admin@demo",
    )
    write_kubeconfig(
        paths["token"],
        url,
        pki.ca_cert_pem.decode(),
        user="demo-token",
        token=pki.admin_token,
        cluster_name="demo",
        context_name="token@demo",
    )
    return paths


def test_kubeconfig_shape_and_mode(shared: PKI, tmp_path: Path) -> None:
    paths = _kubeconfigs(shared, "https://127.0.0.1:6443", tmp_path)
    for path in paths.values():
        assert _mode(path) == 0o600
    document = yaml.safe_load(paths["cert"].read_text())
    assert document["current-context"] == "demo-admin@demo"
    assert document["contexts"][0]["context"] == {"cluster": "demo", "user": "demo-admin"}
    cluster = document["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == shared.ca_cert_pem
    user = document["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == shared.admin_cert_pem
    assert "token" not in user
    token_user = yaml.safe_load(paths["token"].read_text())["users"][0]["user"]
    assert token_user == {"token": shared.admin_token}


def test_kubeconfig_refuses_half_a_certificate_and_a_bad_ca(shared: PKI) -> None:
    common: dict[str, Any] = {"user": "u", "cluster_name": "c", "context_name": "x"}
    with pytest.raises(ValueError, match="both or neither"):
        render_kubeconfig("https://h", shared.ca_cert_pem, client_cert_pem=shared.admin_cert_pem, **common)
    with pytest.raises(ValueError, match="ca_pem"):
        render_kubeconfig("https://h", b"nope", token="t", **common)


def test_python_kubernetes_client_uses_both_kubeconfigs(
    shared: PKI, tmp_path: Path, version_server: tuple[str, list[Any]]
) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    url, seen = version_server
    paths = _kubeconfigs(shared, url, tmp_path)
    for kind in ("cert", "token"):
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(paths[kind]), client_configuration=configuration)
        assert configuration.host == url
        with kubernetes.client.ApiClient(configuration) as api:
            assert kubernetes.client.VersionApi(api).get_code().git_version == "v1.32.0-anywhere"
    assert seen[0][0] == ("admin", ["system:masters"])
    assert seen[1] == (None, f"Bearer {shared.admin_token}")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_uses_both_kubeconfigs(
    shared: PKI, tmp_path: Path, version_server: tuple[str, list[Any]]
) -> None:
    url, seen = version_server
    paths = _kubeconfigs(shared, url, tmp_path)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": ""}
    for kind in ("cert", "token"):
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(paths[kind]), "get", "--raw", "/version"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["gitVersion"] == "v1.32.0-anywhere"
    assert seen[0][0] == ("admin", ["system:masters"])
    assert seen[-1] == (None, f"Bearer {shared.admin_token}")
