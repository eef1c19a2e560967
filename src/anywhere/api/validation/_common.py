"""Small checks shared by the validation modules: names, labels, taints, hosts, CIDRs, versions."""

from __future__ import annotations

import ipaddress
import re

from anywhere.api.errors import ErrorList
from anywhere.api.v1alpha1.cluster import Taint

KUBERNETES_VERSION = re.compile(r"^1\.(0|[1-9]\d*)$")
SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", re.IGNORECASE)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def minor_of(version: str | None) -> int | None:
    """The minor number of a ``1.N`` Kubernetes version, or ``None`` if it is not one."""
    if version is None or not KUBERNETES_VERSION.match(version):
        return None
    return int(version.split(".")[1])


def is_dns_name(text: str) -> bool:
    """An RFC 1123 host name; a name whose last label is all digits is taken for a bad IP, not a name."""
    if not text or len(text) > 253:
        return False
    labels = text.rstrip(".").split(".")
    if labels[-1].isdigit():
        return False
    return all(len(label) <= 63 and _DNS_LABEL.match(label) for label in labels)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_host(text: str) -> bool:
    return is_ip(text) or is_dns_name(text)


def valid_port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) <= 65535


def check_label_key(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key, or ``None`` when it is one."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not is_dns_name(prefix)):
        return f"label key {key!r} has an invalid prefix (must be a DNS subdomain)"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"label key {key!r} is invalid: the name part must be 1-63 characters, "
            "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        )
    return None


def check_labels(errors: ErrorList, field: str, labels: dict[str, str] | None) -> None:
    for key, value in (labels or {}).items():
        problem = check_label_key(key)
        if problem:
            errors.add(f"{field}[{key}]", problem)
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.add(
                f"{field}[{key}]",
                f"label value {value!r} is invalid: at most 63 characters, alphanumerics, '-', '_' or '.', "
                "starting and ending with an alphanumeric",
            )


def check_taints(errors: ErrorList, field: str, taints: list[Taint] | None) -> None:
    seen: set[tuple[str, str]] = set()
    for index, taint in enumerate(taints or []):
        path = f"{field}[{index}]"
        if not taint.key:
            errors.add(f"{path}.key", "taint key is required")
        else:
            problem = check_label_key(taint.key)
            if problem:
                errors.add(f"{path}.key", problem.replace("label key", "taint key"))
        if taint.effect not in TAINT_EFFECTS:
            errors.add(
                f"{path}.effect",
                f"taint effect {taint.effect!r} is invalid; use one of {', '.join(TAINT_EFFECTS)}",
            )
        if taint.value and (len(taint.value) > 63 or not _LABEL_VALUE.match(taint.value)):
            errors.add(f"{path}.value", f"taint value {taint.value!r} is not a valid label value")
        identity = (taint.key or "", taint.effect or "")
        if identity in seen:
            errors.add(
                path, f"duplicate taint {taint.key}:{taint.effect}; each key and effect may appear once"
            )
        seen.add(identity)


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
