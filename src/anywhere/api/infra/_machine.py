"""Rules and helpers shared by the providers whose machine configs have the same parts.

One implementation each of what EKS Anywhere checks the same way for several providers: the host OS
configuration (NTP servers, CA bundles, Bottlerocket settings), SSH public keys, the first user,
UUIDs, image and template names that carry a Kubernetes version, the paused annotation, the control
plane endpoint as an IP and InPlace upgrades only on Ubuntu.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.v1alpha1._base import Object, Ref
from anywhere.api.v1alpha1._machine import (
    BottlerocketConfiguration,
    CertBundle,
    HostOSConfiguration,
    NTPConfiguration,
    UserConfiguration,
)
from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.api.validation._common import is_ip

BOTTLEROCKET = "bottlerocket"
UBUNTU = "ubuntu"
REDHAT = "redhat"
IN_PLACE = "InPlace"
ROLLING_UPDATE = "RollingUpdate"
PAUSED_ANNOTATION = "anywhere.eks.amazonaws.com/paused"
CONTROL_PLANE_ANNOTATION = "anywhere.eks.amazonaws.com/control-plane"
ETCD_ANNOTATION = "anywhere.eks.amazonaws.com/etcd"
MANAGED_BY_ANNOTATION = "anywhere.eks.amazonaws.com/managed-by"
ENDPOINT_HOST = "spec.controlPlaneConfiguration.endpoint.host"

M = TypeVar("M", bound=Object)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VERSION_SEPARATORS = re.compile(r"[-._]")
_PEM_BLOCK = re.compile(r"-----BEGIN ([^-\r\n]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_SSH_KEY_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-dss",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
_SSH_CERT_SUFFIX = "-cert-v01@openssh.com"
_DER_SEQUENCE, _DER_BIT_STRING = 0x30, 0x03

# --- small predicates -------------------------------------------------------------------------------


def is_paused(obj: Object) -> bool:
    """Reconciliation of the object is paused: EKS Anywhere skips its immutability checks then."""
    return obj.annotations.get(PAUSED_ANNOTATION) == "true"


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def name_has_kube_version(name: str, version: str) -> bool:
    """Whether an image, template or URL names the Kubernetes version (1.31, 1-31, 1_31 or 131)."""
    return _VERSION_SEPARATORS.sub("", version) in _VERSION_SEPARATORS.sub("", name)


# --- the machine configs of a cluster ----------------------------------------------------------------


def find_machine(config: ClusterConfig, kind: type[M], ref: Ref | None) -> M | None:
    """The machine config of ``kind`` that ``ref`` names, if the configuration holds it."""
    if ref is None or not ref.name or (ref.kind and ref.kind != kind.KIND):
        return None
    obj = config.get(kind.KIND, ref.name)
    return obj if isinstance(obj, kind) else None


def versioned_machines(
    config: ClusterConfig, kind: type[M], *, with_etcd: bool = True
) -> list[tuple[M, str]]:
    """Each machine config of ``kind`` the Cluster's nodes use, with the Kubernetes version those
    nodes run: the cluster's for the control plane and etcd, a worker group's own where it has one.
    A machine config shared by nodes of two versions is listed once per version."""
    spec = config.cluster.spec
    version = spec.kubernetes_version
    control_plane = spec.control_plane_configuration
    etcd = spec.external_etcd_configuration if with_etcd else None
    uses = [
        (control_plane.machine_group_ref if control_plane else None, version),
        (etcd.machine_group_ref if etcd else None, version),
        *((g.machine_group_ref, g.kubernetes_version or version) for g in config.cluster.worker_groups),
    ]
    found: list[tuple[M, str]] = []
    seen: set[tuple[str, str]] = set()
    for ref, wanted in uses:
        machine = find_machine(config, kind, ref)
        if machine is None or not wanted or (machine.name, wanted) in seen:
            continue
        seen.add((machine.name, wanted))
        found.append((machine, wanted))
    return found


def endpoint_must_be_ip(cluster: Cluster, why: str) -> list[FieldError]:
    """The provider validator's rule that the control plane endpoint is an IP address (``why`` says
    what the provider does with it)."""
    control_plane = cluster.spec.control_plane_configuration
    host = control_plane.endpoint.host if control_plane and control_plane.endpoint else None
    if not host or is_ip(host):
        return []
    return [FieldError(cluster.ref, ENDPOINT_HOST, f"{host!r} is not an IP address; {why}")]


def in_place_needs_ubuntu(
    cluster: Cluster, os_family_of: Callable[[Ref | None], tuple[str, str | None] | None]
) -> list[FieldError]:
    """InPlace upgrades replace packages on running nodes, which only Ubuntu machines support.

    ``os_family_of`` gives, for a machine group reference, the machine config's reference and OS
    family, or ``None`` when the configuration does not hold it (cluster validation reports that).
    """
    message = "InPlace upgrades are only supported on the ubuntu OS family; {ref} has osFamily {os!r}"
    errors = ErrorList(cluster.ref)
    control_plane = cluster.spec.control_plane_configuration
    strategy = control_plane.upgrade_rollout_strategy if control_plane else None
    targets = [
        (
            "spec.controlPlaneConfiguration",
            strategy.type if strategy else None,
            control_plane.machine_group_ref if control_plane else None,
        ),
        *(
            (
                f"spec.workerNodeGroupConfigurations[{i}]",
                g.upgrade_rollout_strategy.type if g.upgrade_rollout_strategy else None,
                g.machine_group_ref,
            )
            for i, g in enumerate(cluster.worker_groups)
        ),
    ]
    for path, rollout, ref in targets:
        machine = os_family_of(ref) if rollout == IN_PLACE else None
        if machine is not None and machine[1] != UBUNTU:
            errors.add(f"{path}.upgradeRolloutStrategy.type", message.format(ref=machine[0], os=machine[1]))
    return errors.errors


# --- users and SSH keys ------------------------------------------------------------------------------


def default_users(users: list[UserConfiguration] | None, default_name: str) -> list[UserConfiguration]:
    """A first user named ``default_name`` unless named, with an empty key (the CLI generates one)."""
    users = users or [UserConfiguration()]
    if not users[0].ssh_authorized_keys:
        users[0].ssh_authorized_keys = [""]
    if not users[0].name:
        users[0].name = default_name
    return users


def validate_users(errors: ErrorList, users: list[UserConfiguration] | None) -> None:
    """The first user, which the machines are created with, must be named.

    SSH keys may be left empty: ``create cluster`` generates a key pair, as EKS Anywhere's CLI does.
    """
    if users is None:
        return
    if not users:
        errors.add("spec.users", "at least one user is required (the login user of the machines)")
        return
    if not users[0].name:
        errors.add("spec.users[0].name", "a user name is required")


def validate_ssh_keys(errors: ErrorList, users: list[UserConfiguration] | None) -> None:
    """Every non-empty key of every user must be an authorized_keys line (an empty key asks the CLI
    to generate a key pair)."""
    for i, user in enumerate(users or []):
        for j, key in enumerate(user.ssh_authorized_keys or []):
            problem = ssh_public_key_problem(key) if key else None
            if problem:
                errors.add(
                    f"spec.users[{i}].sshAuthorizedKeys[{j}]",
                    f"not a valid SSH public key: {problem}; expected '<type> <base64 key> [comment]', "
                    "e.g. a line of ~/.ssh/id_ed25519.pub",
                )


def ssh_public_key_problem(line: str) -> str | None:
    """Why ``line`` is not an authorized_keys entry (``[options] type base64 [comment]``), or ``None``.

    The key blob must name the type written before it. OpenSSH certificates (``*-cert-v01@openssh.com``)
    are accepted, as the parser EKS Anywhere uses accepts them.
    """
    fields = line.split()
    for i, token in enumerate(fields):
        if token.removesuffix(_SSH_CERT_SUFFIX) not in _SSH_KEY_TYPES:
            continue  # leading options such as from="..." or no-pty
        if i + 1 >= len(fields):
            return f"the {token} key has no base64 body"
        try:
            blob = base64.b64decode(fields[i + 1], validate=True)
        except (binascii.Error, ValueError):
            return "the key body is not valid base64"
        if len(blob) < 4:
            return "the key body is truncated"
        (size,) = struct.unpack(">I", blob[:4])
        if blob[4 : 4 + size] != token.encode():
            return f"the key body does not hold a {token} key"
        return None
    return f"no known key type; expected one of {', '.join(sorted(_SSH_KEY_TYPES))}"


# --- PEM certificates --------------------------------------------------------------------------------


def pem_blocks(text: str) -> list[tuple[str, bytes | None]]:
    """The PEM blocks of ``text``: label and decoded content (``None`` when it is not base64).

    Header lines (``Proc-Type: ...``) inside a block are skipped, as PEM decoders do.
    """
    blocks: list[tuple[str, bytes | None]] = []
    for label, body in _PEM_BLOCK.findall(text):
        payload = "".join(line for line in body.splitlines() if ":" not in line)
        try:
            blocks.append((label.strip(), base64.b64decode("".join(payload.split()), validate=True)))
        except (binascii.Error, ValueError):
            blocks.append((label.strip(), None))
    return blocks


def is_certificates_der(data: bytes) -> bool:
    """One or more concatenated DER X.509 certificates, each exactly
    SEQUENCE { SEQUENCE tbsCertificate, SEQUENCE signatureAlgorithm, BIT STRING signature }."""
    pos = 0
    while pos < len(data):
        outer = _der_element(data, pos)
        if outer is None or outer[0] != _DER_SEQUENCE:
            return False
        tags, inner, end = [], outer[1], outer[2]
        while inner < end:
            element = _der_element(data[:end], inner)
            if element is None:
                return False
            tags.append(element[0])
            inner = element[2]
        if tags != [_DER_SEQUENCE, _DER_SEQUENCE, _DER_BIT_STRING]:
            return False
        pos = end
    return bool(data)


def _der_element(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """``(tag, content start, content end)`` of the DER element at ``offset``, if well formed."""
    if offset + 2 > len(data):
        return None
    tag, first = data[offset], data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            return None
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    return (tag, start, end) if end <= len(data) else None


def cert_bundle_problem(text: str) -> str | None:
    """Why ``text`` is not a PEM bundle of one or more X.509 certificates, or ``None``."""
    blocks = pem_blocks(text)
    if not blocks:
        return (
            "failed to parse certificate PEM: not a PEM certificate bundle "
            "(no -----BEGIN CERTIFICATE----- block)"
        )
    for n, (label, der) in enumerate(blocks, start=1):
        where = f"failed to parse certificate {n} of the bundle"
        if der is None:
            return f"{where}: not valid base64"
        if label != "CERTIFICATE":
            return f"{where}: a {label} block, not a CERTIFICATE"
        if not is_certificates_der(der):
            return f"{where}: not a DER-encoded X.509 certificate"
    return None


# --- host OS configuration ---------------------------------------------------------------------------


def is_ntp_server(server: str) -> bool:
    """A host name or IP, optionally with a scheme and a port (``udp://`` is assumed)."""
    if not server or any(c.isspace() for c in server):
        return False
    url = server
    if "://" not in server:
        try:
            url = f"udp://[{server}]" if ipaddress.ip_address(server).version == 6 else f"udp://{server}"
        except ValueError:
            url = f"udp://{server}"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return bool(parts.scheme and parts.hostname)


def validate_host_os(
    errors: ErrorList, path: str, config: HostOSConfiguration | None, os_family: str | None
) -> None:
    """Every problem of a ``hostOSConfiguration`` at ``path``: NTP servers, CA bundles (Bottlerocket
    only) and Bottlerocket settings, for machines of ``os_family``."""
    if config is None:
        return
    _validate_ntp(errors, f"{path}.ntpConfiguration", config.ntp_configuration)
    for i, bundle in enumerate(config.cert_bundles or []):
        _validate_cert_bundle(errors, f"{path}.certBundles[{i}]", bundle, os_family)
    _validate_bottlerocket(
        errors, f"{path}.bottlerocketConfiguration", config.bottlerocket_configuration, os_family
    )


def _bottlerocket_only(what: str, os_family: str | None) -> str:
    shown = f", not {os_family!r}" if os_family else ""
    return f"{what} can only be used with osFamily {BOTTLEROCKET!r}{shown}"


def _validate_ntp(errors: ErrorList, path: str, ntp: NTPConfiguration | None) -> None:
    if ntp is None:
        return
    if not ntp.servers:
        errors.add(
            f"{path}.servers", "ntpConfiguration.servers cannot be empty; give at least one NTP server"
        )
    for i, server in enumerate(ntp.servers or []):
        if not is_ntp_server(server):
            errors.add(
                f"{path}.servers[{i}]",
                f"{server!r} is not a valid NTP server; give a host name or IP, optionally with a port",
            )


def _validate_cert_bundle(errors: ErrorList, path: str, bundle: CertBundle, os_family: str | None) -> None:
    if os_family != BOTTLEROCKET:
        errors.add(path, _bottlerocket_only("certBundles", os_family))
    if not bundle.name:
        errors.add(f"{path}.name", "certBundles name cannot be empty")
    problem = cert_bundle_problem(bundle.data or "")
    if problem:
        errors.add(f"{path}.data", problem)


def _validate_bottlerocket(
    errors: ErrorList, path: str, config: BottlerocketConfiguration | None, os_family: str | None
) -> None:
    if config is None:
        return
    if os_family != BOTTLEROCKET:
        errors.add(path, _bottlerocket_only("bottlerocketConfiguration", os_family))
    kubernetes = config.kubernetes
    if kubernetes is not None:
        for i, sysctl in enumerate(kubernetes.allowed_unsafe_sysctls or []):
            if not sysctl:
                errors.add(
                    f"{path}.kubernetes.allowedUnsafeSysctls[{i}]",
                    "an unsafe sysctl cannot be an empty string",
                )
        for i, ip in enumerate(kubernetes.cluster_dns_ips or []):
            if not is_ip(ip):
                errors.add(f"{path}.kubernetes.clusterDNSIPs[{i}]", f"{ip!r} is not a valid IP address")
        if kubernetes.max_pods is not None and kubernetes.max_pods < 0:
            errors.add(f"{path}.kubernetes.maxPods", f"maxPods {kubernetes.max_pods} cannot be negative")
    if config.kernel is not None and "" in (config.kernel.sysctl_settings or {}):
        errors.add(f"{path}.kernel.sysctlSettings", "sysctlSettings key cannot be empty")
    if config.boot is not None and "" in (config.boot.boot_kernel_parameters or {}):
        errors.add(f"{path}.boot.bootKernelParameters", "bootKernelParameters key cannot be empty")
