"""The rules and helpers several providers share (``anywhere.api.infra._machine``)."""

from __future__ import annotations

import base64
import struct

import pytest

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList
from anywhere.api.infra import _machine
from anywhere.api.v1alpha1._base import ObjectMeta, Ref
from anywhere.api.v1alpha1._machine import (
    BottlerocketConfiguration,
    CertBundle,
    HostOSConfiguration,
    NTPConfiguration,
)
from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.api.v1alpha1.vsphere import VSphereMachineConfig
from tests.api.infra.conftest import CERT, cluster_yaml, load


def _key(key_type: str) -> str:
    blob = struct.pack(">I", len(key_type)) + key_type.encode() + struct.pack(">I", 32) + bytes(range(32))
    return f"{key_type} {base64.b64encode(blob).decode()} me@example.com"


def test_ssh_certificates_are_accepted_as_the_go_parser_does() -> None:
    assert _machine.ssh_public_key_problem(_key("ssh-ed25519-cert-v01@openssh.com")) is None
    assert _machine.ssh_public_key_problem(f"no-pty {_key('ecdsa-sha2-nistp256')}") is None
    problem = _machine.ssh_public_key_problem("ssh-rsa-cert-v01@openssh.com " + _key("ssh-rsa").split()[1])
    assert problem == "the key body does not hold a ssh-rsa-cert-v01@openssh.com key"


def test_cert_bundle_of_certificates() -> None:
    assert _machine.cert_bundle_problem(CERT) is None
    assert _machine.cert_bundle_problem("junk before\n" + CERT + CERT) is None
    # Two DER certificates in one PEM block still parse, as x509.ParseCertificates reads them.
    der = base64.b64decode("".join(CERT.splitlines()[1:-1]))
    body = base64.b64encode(der + der).decode()
    assert (
        _machine.cert_bundle_problem(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
        is None
    )


def test_cert_bundle_refuses_other_blocks() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEH\n-----END PRIVATE KEY-----\n"
    problem = _machine.cert_bundle_problem(CERT + key)
    assert problem == "failed to parse certificate 2 of the bundle: a PRIVATE KEY block, not a CERTIFICATE"


def test_cert_bundle_needs_the_three_parts_of_a_certificate() -> None:
    # An outer SEQUENCE alone (holding one INTEGER) is not a certificate.
    text = f"-----BEGIN CERTIFICATE-----\n{base64.b64encode(bytes([0x30, 3, 2, 1, 1])).decode()}\n-----END CERTIFICATE-----\n"
    assert "not a DER-encoded X.509 certificate" in (_machine.cert_bundle_problem(text) or "")


@pytest.mark.parametrize(
    ("server", "valid"),
    [
        ("time.example.com", True),
        ("10.0.0.1", True),
        ("2001:db8::1", True),
        ("udp://ntp.example.com:123", True),
        ("ntp.example.com:notaport", False),
        ("udp://:99999", False),
        ("bad server", False),
        ("", False),
    ],
)
def test_ntp_servers(server: str, valid: bool) -> None:
    assert _machine.is_ntp_server(server) is valid


def test_host_os_reports_every_problem_of_a_bundle_on_the_wrong_os() -> None:
    errors = ErrorList("VSphereMachineConfig/m")
    config = HostOSConfiguration(
        ntp_configuration=NTPConfiguration(servers=[]),
        cert_bundles=[CertBundle(name="", data="junk")],
        bottlerocket_configuration=BottlerocketConfiguration(),
    )
    _machine.validate_host_os(errors, "spec.hostOSConfiguration", config, "ubuntu")
    assert [e.field for e in errors.errors] == [
        "spec.hostOSConfiguration.ntpConfiguration.servers",
        "spec.hostOSConfiguration.certBundles[0]",
        "spec.hostOSConfiguration.certBundles[0].name",
        "spec.hostOSConfiguration.certBundles[0].data",
        "spec.hostOSConfiguration.bottlerocketConfiguration",
    ]
    assert "only be used with osFamily 'bottlerocket', not 'ubuntu'" in errors.errors[1].message


@pytest.mark.parametrize(
    ("name", "version", "named"),
    [
        ("ubuntu-2204-kube-1-31", "1.31", True),
        ("bottlerocket-v1.31.2", "1.31", True),
        ("rhel_9_kube_1_31", "1.31", True),
        ("ubuntu-131", "1.31", True),
        ("ubuntu-kube-1-30", "1.31", False),
    ],
)
def test_name_has_kube_version(name: str, version: str, named: bool) -> None:
    assert _machine.name_has_kube_version(name, version) is named


def _machine_config(name: str) -> VSphereMachineConfig:
    return VSphereMachineConfig(metadata=ObjectMeta(name=name))


def test_versioned_machines_lists_each_version_a_machine_config_runs() -> None:
    cluster = load(Cluster, cluster_yaml("VSphere", worker_machine="wk"))
    second = cluster.worker_groups[0].model_copy(update={"name": "md-1", "kubernetes_version": "1.30"})
    cluster.spec.worker_node_group_configurations = [cluster.worker_groups[0], second]
    config = ClusterConfig(cluster, [_machine_config("cp"), _machine_config("wk")])
    pairs = [(m.name, v) for m, v in _machine.versioned_machines(config, VSphereMachineConfig)]
    assert pairs == [("cp", "1.31"), ("wk", "1.31"), ("wk", "1.30")]


def test_find_machine_follows_the_reference_kind() -> None:
    config = ClusterConfig(
        load(Cluster, cluster_yaml("VSphere", worker_machine="wk")), [_machine_config("cp")]
    )
    assert _machine.find_machine(config, VSphereMachineConfig, Ref(kind="VSphereMachineConfig", name="cp"))
    assert _machine.find_machine(config, VSphereMachineConfig, Ref(name="cp"))
    assert (
        _machine.find_machine(config, VSphereMachineConfig, Ref(kind="NutanixMachineConfig", name="cp"))
        is None
    )
    assert _machine.find_machine(config, VSphereMachineConfig, None) is None


def test_is_paused() -> None:
    machine = _machine_config("m")
    assert not _machine.is_paused(machine)
    machine.metadata.annotations = {_machine.PAUSED_ANNOTATION: "true"}
    assert _machine.is_paused(machine)
