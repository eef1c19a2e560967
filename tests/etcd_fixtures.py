"""Real etcd for the tests: one member or a three-member cluster, on free loopback ports, in a tmp folder.

How a member runs (the binary, its command line, the short raft timers that replace a lost leader
in about a second) is :mod:`anywhere.storage.etcd_server`'s, shared with the netns provider and the
benchmarks; everything else is etcd's default, fsync included, since some tests kill members and
servers and count what survived. The processes here are plain ``subprocess.Popen``s driven
synchronously: the fixtures are synchronous (one member serves a whole session, across the event
loops of many tests), and tests kill and restart members from plain code.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from anywhere.storage import etcd_server
from anywhere.storage.etcd_server import MemberConfig, ServerTLS, free_ports
from tests.conftest import Server, start_server

__all__ = ["free_ports"]

START_TIMEOUT = 30.0


def etcd_binary() -> str:
    """The etcd executable (see :func:`anywhere.storage.etcd_server.etcd_binary`), or a test failure."""
    try:
        return etcd_server.etcd_binary()
    except etcd_server.EtcdNotInstalled as exc:
        pytest.fail(str(exc))


def etcdctl(cluster: EtcdCluster, *args: str, endpoint: int | None = None) -> str:
    """Run etcdctl (v3 API) against the cluster (or one member); its output, or AssertionError."""
    try:
        binary = etcd_server.etcd_tool("etcdctl")
    except etcd_server.EtcdNotInstalled as exc:
        pytest.fail(str(exc))
    urls = cluster.endpoints if endpoint is None else [cluster.endpoints[endpoint]]
    command = [binary, "--endpoints", ",".join(urls), "--command-timeout", "10s"]
    if cluster.tls is not None:
        command += [
            "--cacert",
            str(cluster.tls.ca),
            "--cert",
            str(cluster.tls.client_cert),
            "--key",
            str(cluster.tls.client_key),
        ]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def etcd_revision(cluster: EtcdCluster) -> int:
    """etcd's current revision, as etcdctl reads it."""
    return int(json.loads(etcdctl(cluster, "get", "/", "-w", "json"))["header"]["revision"])


@dataclass
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


@dataclass
class Member:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    scheme: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    members: list[Member]
    tls: TLSFiles | None = None
    token: str = "anywhere-test"
    _initial: str = field(default="", repr=False)

    @property
    def endpoints(self) -> list[str]:
        return [m.url for m in self.members]

    @property
    def endpoint_arg(self) -> str:
        return ",".join(self.endpoints)

    def tls_args(self) -> list[str]:
        """The `anywhere serve` options that authenticate to this cluster (none without TLS)."""
        if self.tls is None:
            return []
        return [
            "--etcd-cafile",
            str(self.tls.ca),
            "--etcd-certfile",
            str(self.tls.client_cert),
            "--etcd-keyfile",
            str(self.tls.client_key),
        ]

    def start(self, index: int, *, new: bool = False) -> None:
        member = self.members[index]
        config = MemberConfig(
            name=member.name,
            data_dir=member.data_dir,
            client_url=member.url,
            peer_url=member.peer_url,
            initial_cluster=self._initial,
            state="new" if new else "existing",
            token=self.token,
            client_tls=(
                ServerTLS(self.tls.ca, self.tls.server_cert, self.tls.server_key) if self.tls else None
            ),
        )
        with member.log.open("ab") as log:
            member.process = subprocess.Popen(
                config.argv(etcd_binary()), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=config.env()
            )

    def kill(self, index: int) -> None:
        """kill -9: no goodbye to the peers, no flush beyond what etcd had already made durable."""
        process = self.members[index].process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        self.members[index].process = None

    def stop(self) -> None:
        for index in range(len(self.members)):
            self.kill(index)

    def healthy(self, index: int) -> bool:
        member = self.members[index]
        context = self.tls.client_context() if self.tls is not None else None
        try:
            with urllib.request.urlopen(f"{member.url}/health", timeout=2, context=context) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def wait_healthy(self, indexes: Sequence[int] | None = None, timeout: float = START_TIMEOUT) -> None:
        """Poll each member's /health (an external process: polling with a deadline is all there is)."""
        wanted = list(range(len(self.members)) if indexes is None else indexes)
        deadline = time.monotonic() + timeout
        while wanted:
            for index in list(wanted):
                process = self.members[index].process
                if process is not None and process.poll() is not None:
                    raise AssertionError(f"etcd {self.members[index].name} exited:\n{self.log_tail(index)}")
                if self.healthy(index):
                    wanted.remove(index)
            if wanted and time.monotonic() > deadline:
                raise AssertionError(f"etcd not healthy in {timeout}s:\n{self.log_tail(wanted[0])}")
            if wanted:
                time.sleep(0.05)

    def log_tail(self, index: int) -> str:
        return self.members[index].log.read_text(errors="replace")[-3000:]


def start_etcd(root: Path, members: int = 1, *, tls: TLSFiles | None = None) -> EtcdCluster:
    """A new etcd cluster of ``members`` members under ``root``, healthy when this returns."""
    root.mkdir(parents=True, exist_ok=True)
    ports = free_ports(2 * members)
    scheme = "https" if tls is not None else "http"
    cluster = EtcdCluster(
        [
            Member(f"m{i}", root / f"m{i}", ports[2 * i], ports[2 * i + 1], scheme, root / f"m{i}.log")
            for i in range(members)
        ],
        tls=tls,
        token=f"anywhere-{root.name}",
    )
    cluster._initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster.members)
    try:
        for index in range(members):
            cluster.start(index, new=True)
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def make_tls(root: Path) -> TLSFiles:
    """A CA (our own PKI code's), a certificate for the etcd member and a client certificate.

    etcd's gateway dials its own gRPC port presenting the member's certificate, so with
    --client-cert-auth that certificate must serve both as server and as client.
    """
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from anywhere.apiserver import pki

    keys = pki.load_or_create(root, ["127.0.0.1"])
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etcd")]))
        .issuer_name(keys.ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(keys.ca.key, hashes.SHA256())
    )
    server_cert, server_key = root / "etcd-server.crt", root / "etcd-server.key"
    server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_key.chmod(0o600)
    client_cert, client_key = root / "etcd-client.crt", root / "etcd-client.key"
    client_cert.write_bytes(keys.admin_cert_pem)
    client_key.write_bytes(keys.admin_key_pem)
    client_key.chmod(0o600)
    return TLSFiles(keys.ca_cert_path, server_cert, server_key, client_cert, client_key)


@pytest.fixture(scope="session")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One etcd member for the whole session (tests keep apart by key prefix)."""
    cluster = start_etcd(tmp_path_factory.mktemp("etcd1"), 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """Three members of a fresh cluster, for a test that may kill some of them."""
    cluster = start_etcd(tmp_path_factory.mktemp("etcd3"), 3)
    yield cluster
    cluster.stop()


def start_etcd_server(data_dir: Path, cluster: EtcdCluster, *extra: str, endpoints: str = "") -> Server:
    """`anywhere serve --storage etcd` over ``cluster`` (or the given ``endpoints`` of it), ready."""
    args = ("--storage", "etcd", "--etcd-endpoints", endpoints or cluster.endpoint_arg, *cluster.tls_args())
    return start_server(data_dir, args=(*args, *extra))
