"""Bare metal hardware: the hardware CSV, the objects made from it, and which hardware a machine may take.

The CSV is EKS Anywhere's (``hostname,bmc_ip,bmc_username,bmc_password,mac,ip_address,netmask,
gateway,nameservers,labels,disk``, plus the optional ``vlan_id``). As in EKS Anywhere the BMC columns
are optional (a machine without them is powered on by hand) and ``labels`` may be empty; every other
column is required. Unlike EKS Anywhere, which stops at the first problem, every problem of the file
is reported at once, each naming its line and column, and several rows may share one BMC endpoint
(one Redfish service can manage several systems, which are told apart by MAC).

Hardware selection follows Cluster API Provider Tinkerbell: a machine config's ``hardwareSelector``
is one required term; hardware qualifies if any required term's label selector matches it, and the
weights of the preferred terms it matches rank it.

Everything here is pure: no file, network or API access. BMC passwords never appear in a message or
a ``repr``.
"""

from __future__ import annotations

import base64
import csv
import io
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from anywhere.api.capi.tinkerbell import (
    HARDWARE_OWNER_NAME_LABEL,
    HARDWARE_OWNER_NAMESPACE_LABEL,
    TINKERBELL_API_VERSION,
    Hardware,
)
from anywhere.api.config import ClusterConfig
from anywhere.api.defaults import control_plane_rollout, worker_rollout
from anywhere.api.infra._machine import find_machine
from anywhere.api.v1alpha1.tinkerbell import TinkerbellMachineConfig
from anywhere.api.validation._common import is_ip

__all__ = [
    "COLUMNS",
    "DEFAULT_NAMESPACE",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "HardwareCSVError",
    "HardwareEntry",
    "Requirement",
    "affinity_of",
    "affinity_score",
    "bmc_secret_name",
    "describe_affinity",
    "hardware_objects",
    "hardware_requirements",
    "parse_hardware_csv",
    "pick_hardware",
    "selector_matches",
    "shortages",
]

DEFAULT_NAMESPACE: Final = "eksa-system"
# In the order of EKS Anywhere's documentation, as the header is usually written.
COLUMNS: Final = (
    "hostname",
    "bmc_ip",
    "bmc_username",
    "bmc_password",
    "mac",
    "ip_address",
    "netmask",
    "gateway",
    "nameservers",
    "labels",
    "disk",
    "vlan_id",
)
OPTIONAL_COLUMNS: Final = ("bmc_ip", "bmc_username", "bmc_password", "vlan_id")
REQUIRED_COLUMNS: Final = tuple(column for column in COLUMNS if column not in OPTIONAL_COLUMNS)
LIST_SEPARATOR: Final = "|"
ARCH: Final = "x86_64"

_BMC_COLUMNS = ("bmc_ip", "bmc_username", "bmc_password")
_RESERVED_LABELS = (HARDWARE_OWNER_NAME_LABEL, HARDWARE_OWNER_NAMESPACE_LABEL)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}\Z")
_DISK = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9_.:+-]*(/[A-Za-z0-9_.:+-]+)*\Z")
_NUMERIC_HOST = re.compile(r"^[0-9.]+\Z")
_MAX_LABEL = 63
_MAX_SUBDOMAIN = 253
_MAX_VLAN = 4094
_MAX_PORT = 65535
_SECRET_TYPE = "kubernetes.io/basic-auth"

_HOSTNAME_RULE = "at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
_LABEL_NAME_RULE = "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"

# --------------------------------------------------------------------------- the CSV


@dataclass(frozen=True, kw_only=True)
class HardwareEntry:
    """One machine of the hardware CSV, checked and normalized (MAC lower-case and colon separated).

    ``bmc_password`` is left out of ``repr`` (and so of any log line or message made from an entry).
    """

    hostname: str
    mac: str
    ip_address: str
    netmask: str
    gateway: str
    nameservers: tuple[str, ...]
    disk: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    bmc_host: str | None = None
    bmc_port: int | None = None
    bmc_username: str | None = None
    bmc_password: str | None = field(default=None, repr=False)
    vlan_id: str | None = None
    line: int = 0

    @property
    def has_bmc(self) -> bool:
        return self.bmc_host is not None

    @property
    def bmc_endpoint(self) -> str | None:
        """``host`` or ``host:port``, as the CSV gave it (IPv6 hosts in brackets when with a port)."""
        if self.bmc_host is None:
            return None
        if self.bmc_port is None:
            return self.bmc_host
        host = f"[{self.bmc_host}]" if ":" in self.bmc_host else self.bmc_host
        return f"{host}:{self.bmc_port}"


class HardwareCSVError(ValueError):
    """Every problem of a hardware CSV, one line each (``problems``), naming line, column and remedy."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        super().__init__(
            f"{source}: {count} problem{'s' if count != 1 else ''} in the hardware CSV; fix them and run again"
        )


class _Row:
    """The cells of one CSV row, and its problems, each phrased with the row's line and column."""

    def __init__(
        self, source: str, line: int, cells: Mapping[str, str], problems: list[str], secrets: Iterable[str]
    ) -> None:
        self.source = source
        self.line = line
        self.cells = cells
        self.problems = problems
        self.ok = True
        self.bad: set[str] = set()  # columns with a problem
        self._secrets = sorted(secrets, key=len, reverse=True)

    def get(self, column: str) -> str | None:
        """The stripped value of a column, ``None`` when the header lacks it (reported once, there)."""
        value = self.cells.get(column)
        return None if value is None else value.strip()

    def show(self, value: str) -> str:
        """A value to quote in a message, with any BMC password of the file in it redacted."""
        for secret in self._secrets:
            value = value.replace(secret, "<redacted>")
        return repr(value)

    def problem(self, column: str, message: str) -> None:
        self.ok = False
        self.bad.add(column)
        self.problems.append(f"{self.source} line {self.line}, column {column}: {message}")


def parse_hardware_csv(text: str, source: str) -> list[HardwareEntry]:
    """The machines of a hardware CSV (``source`` names it in messages: the path, usually).

    Raises :class:`HardwareCSVError` with every problem found: missing, unknown or repeated header
    columns; rows with the wrong number of fields; empty required fields; an invalid hostname, MAC,
    IP, netmask, gateway (or one outside the machine's subnet), nameserver, label, disk, BMC address
    or VLAN; incomplete BMC credentials; hostnames, MACs or IPs given to two machines.
    """
    problems: list[str] = []
    records = _records(text, source, problems)
    if not records:
        if not problems:
            problems.append(
                f"{source}: the file is empty; its first line must be the header: {','.join(COLUMNS[:-1])}"
            )
        raise HardwareCSVError(source, problems)
    header_line, first = records[0]
    header = _header(first, source, header_line, problems)
    rows = [(line, record, dict(zip(header, record, strict=False))) for line, record in records[1:]]
    # Never echo a password, wherever it ended up (another row's column, a field of a row out of order).
    secrets = {cells["bmc_password"] for _, _, cells in rows if (cells.get("bmc_password") or "").strip()}
    entries: list[HardwareEntry] = []
    seen = _Seen()
    for line, record, cells in rows:
        if len(record) != len(header):
            problems.append(
                f"{source} line {line}: {len(record)} fields, but the header (line {header_line}) has "
                f"{len(header)}; give every column a value (empty ones too) in the header's order"
            )
            continue
        entry = _entry(_Row(source, line, cells, problems, secrets), seen)
        if entry is not None:
            entries.append(entry)
    if not entries and not problems:
        problems.append(f"{source}: no machines are listed; add one line per machine after the header")
    if problems:
        raise HardwareCSVError(source, problems)
    return entries


def _records(text: str, source: str, problems: list[str]) -> list[tuple[int, list[str]]]:
    """The non-blank records of the file, each with the line it starts on."""
    # skipinitialspace: a file written with ", " between fields reads as one written with ",".
    reader = csv.reader(
        io.StringIO(text.removeprefix("\ufeff"), newline=""), skipinitialspace=True, strict=True
    )
    records: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if any(cell.strip() for cell in record):  # not a blank line, nor one of commas only
                records.append((start, record))
    except csv.Error as exc:  # bad quoting: the rest of the file cannot be read reliably
        problems.append(
            f"{source} line {line}: not valid CSV ({exc}); a quoted field must end with a quote before "
            'the next comma, and a quote inside it is written twice ("")'
        )
    return records


def _header(record: list[str], source: str, line: int, problems: list[str]) -> list[str]:
    names = [cell.strip().lower() for cell in record]
    where = f"{source} line {line} (the header)"
    if not any(name in COLUMNS for name in names):
        # Most likely a machine's line (which may hold a password): say so rather than echo it.
        problems.append(
            f"{source} line {line}: not a header (none of its fields is a column name); the first line "
            f"must name the columns, e.g. {','.join(COLUMNS[:-1])}"
        )
        return names
    for i, name in enumerate(names):
        if not name:
            problems.append(f"{where}, field {i + 1}: a column without a name; name it or remove it")
        elif name not in COLUMNS:
            problems.append(f"{where}, column {name}: unknown column; the columns are {', '.join(COLUMNS)}")
        elif names.index(name) != i:
            problems.append(f"{where}, column {name}: the column is named twice; keep one")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        problems.append(
            f"{where}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(required: {', '.join(REQUIRED_COLUMNS)}; optional: {', '.join(OPTIONAL_COLUMNS)})"
        )
    return names


def _entry(row: _Row, seen: _Seen) -> HardwareEntry | None:
    """The row's machine, or ``None`` after recording its problems."""
    hostname = _hostname(row)
    mac = _mac(row)
    ip, netmask, gateway = _network(row)
    seen.check(row, hostname=hostname, mac=mac, ip_address=ip)
    nameservers = _nameservers(row)
    labels = _labels(row)
    disk = _disk(row)
    bmc_host, bmc_port, username, password = _bmc(row)
    vlan_id = _vlan(row)
    if not row.ok or not (hostname and mac and ip and netmask and gateway and disk):
        return None  # problems recorded, or a required column missing (reported with the header)
    return HardwareEntry(
        hostname=hostname,
        mac=mac,
        ip_address=ip,
        netmask=netmask,
        gateway=gateway,
        nameservers=tuple(nameservers),
        disk=disk,
        labels=labels,
        bmc_host=bmc_host,
        bmc_port=bmc_port,
        bmc_username=username,
        bmc_password=password,
        vlan_id=vlan_id,
        line=row.line,
    )


def _required(row: _Row, column: str, what: str) -> str | None:
    value = row.get(column)
    if value == "":
        row.problem(column, f"{column} is required: {what}")
    return value or None


def _hostname(row: _Row) -> str | None:
    value = _required(row, "hostname", "the machine's name, e.g. eksa-cp01")
    if value is None:
        return None
    if len(value) > _MAX_LABEL:
        row.problem("hostname", f"{row.show(value)} is {len(value)} characters long; use {_HOSTNAME_RULE}")
    elif not _DNS_LABEL.match(value):
        row.problem(
            "hostname", f"{row.show(value)} is not a valid hostname; use {_HOSTNAME_RULE} (e.g. eksa-cp01)"
        )
    return value


def _mac(row: _Row) -> str | None:
    value = _required(row, "mac", "the MAC address of the NIC the machine netboots from")
    if value is None:
        return None
    if not _MAC.match(value):
        row.problem("mac", f"{row.show(value)} is not a MAC address (six hex pairs, e.g. 52:54:00:12:34:56)")
        return None
    return value.lower().replace("-", ":")


def _ipv4(row: _Row, column: str, what: str, example: str) -> ipaddress.IPv4Address | None:
    value = _required(row, column, what)
    if value is None:
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        row.problem(column, f"{row.show(value)} is not an IPv4 address (e.g. {example})")
        return None


def _prefix(mask: ipaddress.IPv4Address) -> int | None:
    """The prefix length of a netmask (contiguous ones, then zeros), ``None`` if it is not one."""
    inverted = ~int(mask) & 0xFFFFFFFF
    if inverted & (inverted + 1):
        return None
    prefix = 32 - inverted.bit_length()
    return prefix or None  # 0.0.0.0 is no subnet


def _network(row: _Row) -> tuple[str | None, str | None, str | None]:
    ip = _ipv4(row, "ip_address", "the IP address the machine gets by DHCP", "10.10.50.2")
    mask = _ipv4(row, "netmask", "the netmask of ip_address's subnet", "255.255.255.0")
    gateway = _ipv4(row, "gateway", "the machine's default gateway", "10.10.50.1")
    prefix = _prefix(mask) if mask is not None else None
    if mask is not None and prefix is None:
        row.problem(
            "netmask",
            f"{row.show(str(mask))} is not a netmask; give the dotted form of the subnet's prefix "
            "(e.g. 255.255.255.0 for a /24)",
        )
    if ip is not None and prefix is not None:
        subnet = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
        if prefix <= 30 and ip in (subnet.network_address, subnet.broadcast_address):
            which = "network" if ip == subnet.network_address else "broadcast"
            row.problem(
                "ip_address", f"{ip} is the {which} address of {subnet}; give the machine a host address"
            )
        if gateway is not None:
            if gateway == ip:
                row.problem("gateway", f"{gateway} is the machine's own ip_address; give the subnet's router")
            elif gateway not in subnet:
                row.problem(
                    "gateway",
                    f"{gateway} is not in the machine's subnet {subnet} (ip_address {ip}, netmask {mask}); "
                    "the machine could not reach it: fix the gateway, ip_address or netmask",
                )
    return (
        str(ip) if ip is not None else None,
        str(mask) if mask is not None else None,
        str(gateway) if gateway is not None else None,
    )


def _nameservers(row: _Row) -> list[str]:
    value = _required(
        row, "nameservers", "the DNS servers' IPv4 addresses, separated by '|' (e.g. 8.8.8.8|8.8.4.4)"
    )
    servers: list[str] = []
    for server in value.split(LIST_SEPARATOR) if value else ():
        server = server.strip()
        if not server:
            row.problem(
                "nameservers", "an empty entry; separate IPv4 addresses with '|' (e.g. 8.8.8.8|8.8.4.4)"
            )
            continue
        try:
            servers.append(str(ipaddress.IPv4Address(server)))
        except ValueError:
            row.problem(
                "nameservers",
                f"{row.show(server)} is not an IPv4 address; list DNS servers by address, separated by '|' "
                "(e.g. 8.8.8.8|8.8.4.4)",
            )
    return servers


def _labels(row: _Row) -> dict[str, str]:
    value = row.get("labels")
    labels: dict[str, str] = {}
    if not value:
        return labels
    for pair in value.split(LIST_SEPARATOR):
        parts = pair.split("=")
        if len(parts) != len(("key", "value")):
            row.problem(
                "labels",
                f"{row.show(pair.strip())} is not a label; write key=value, pairs separated by '|' "
                "(e.g. type=cp|rack=r1)",
            )
            continue
        key, label_value = parts[0].strip(), parts[1].strip()
        problem = _label_key_problem(key) or _label_value_problem(label_value)
        if problem:
            row.problem("labels", f"{row.show(pair.strip())}: {problem}")
        elif key in _RESERVED_LABELS:
            row.problem("labels", f"{key} is set by the TinkerbellMachine that takes the hardware; remove it")
        elif key in labels:
            row.problem("labels", f"label {key} is given twice; keep one value")
        else:
            labels[key] = label_value
    return labels


def _label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label key (``[prefix/]name``), or ``None``. (The caller shows
    the key, redacted if need be.)"""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > _MAX_SUBDOMAIN or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            "the key's prefix must be a DNS subdomain (lower-case, e.g. example.com/rack), "
            f"at most {_MAX_SUBDOMAIN} characters"
        )
    if not name:
        return "the key is empty; write key=value (e.g. type=cp)"
    if len(name) > _MAX_LABEL or not _LABEL_NAME.match(name):
        return f"not a valid label key; its name must be {_LABEL_NAME_RULE}"
    return None


def _label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a Kubernetes label value (empty is one), or ``None``."""
    if value and (len(value) > _MAX_LABEL or not _LABEL_NAME.match(value)):
        return f"not a valid label value; it must be empty or {_LABEL_NAME_RULE}"
    return None


def _disk(row: _Row) -> str | None:
    value = _required(row, "disk", "the device the OS is installed on, e.g. /dev/sda or /dev/nvme0n1")
    if value is not None and not _DISK.match(value):
        row.problem(
            "disk",
            f"{row.show(value)} is not a device path; give the disk the OS is installed on as /dev/..., "
            "e.g. /dev/sda or /dev/nvme0n1",
        )
    return value


def _bmc(row: _Row) -> tuple[str | None, int | None, str | None, str | None]:
    address = row.get("bmc_ip") or ""
    username = row.get("bmc_username") or ""
    password = row.cells.get("bmc_password") or ""  # as written (quoted): spaces may be part of it
    given = {"bmc_ip": address, "bmc_username": username, "bmc_password": password.strip()}
    if not any(given.values()):
        return None, None, None, None
    for column in _BMC_COLUMNS:
        if not given[column]:
            row.problem(
                column,
                f"{column} is required when any BMC column is set: give bmc_ip, bmc_username and "
                "bmc_password together, or none of them for a machine you power on yourself",
            )
    host, port = _endpoint(row, address) if address else (None, None)
    if not row.ok or host is None:
        return None, None, None, None
    return host, port, username, password


def _endpoint(row: _Row, address: str) -> tuple[str | None, int | None]:
    """``host`` or ``host:port`` (IPv4, host name, or IPv6 in brackets when with a port)."""
    host, port_text = address, ""
    if address.startswith("["):
        match = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", address)
        host, port_text = (match.group(1), match.group(2) or "") if match else ("", "")
        if match and match.group(2) == "":
            port_text = "-"  # "[::1]:" has an empty port
    elif address.count(":") == 1:
        host, port_text = address.split(":")
        port_text = port_text or "-"
    usage = (
        "give the BMC's IPv4 address or host name, optionally with a port "
        "(e.g. 10.10.44.1, bmc-1.example.com or 10.10.44.1:8443)"
    )
    if "://" in address:
        row.problem("bmc_ip", f"{row.show(address)} is not a BMC address: leave out the URL scheme; {usage}")
        return None, None
    if not _valid_host(host, bracketed=address.startswith("[")):
        row.problem("bmc_ip", f"{row.show(address)} is not a BMC address; {usage}")
        return None, None
    port: int | None = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= _MAX_PORT:
            row.problem("bmc_ip", f"the port of {row.show(address)} is not a TCP port (1-65535); {usage}")
            return None, None
        port = int(port_text)
    return (host.lower() if not is_ip(host) else str(ipaddress.ip_address(host))), port


def _valid_host(host: str, *, bracketed: bool) -> bool:
    if bracketed or host.count(":") > 1:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    if _NUMERIC_HOST.match(host):
        return is_ip(host)
    lowered = host.lower()
    return bool(lowered) and len(lowered) <= _MAX_SUBDOMAIN and bool(_DNS_SUBDOMAIN.match(lowered))


def _vlan(row: _Row) -> str | None:
    value = row.get("vlan_id")
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= _MAX_VLAN:
        row.problem(
            "vlan_id", f"{row.show(value)} is not a VLAN ID; give a number from 1 to 4094, or leave it empty"
        )
        return None
    return str(int(value))


class _Seen:
    """Hostnames, MACs and IPs of the rows so far (valid ones, of valid rows or not): each machine's
    must be its own."""

    _WHY: Final = {
        "hostname": ("hostname", "it names the Hardware object, so each machine needs its own"),
        "mac": ("MAC", "each machine's NIC has its own MAC"),
        "ip_address": ("IP address", "each machine needs its own"),
    }

    def __init__(self) -> None:
        self.values: dict[str, dict[str, tuple[int, str]]] = {column: {} for column in self._WHY}

    def check(self, row: _Row, **values: str | None) -> None:
        hostname = values.get("hostname") if "hostname" not in row.bad else None
        for column, value in values.items():
            if value is None or column in row.bad:
                continue
            seen = self.values[column]
            if value in seen:
                line, other = seen[value]
                whose = f" ({other})" if other and column != "hostname" else ""
                what, why = self._WHY[column]
                row.problem(column, f"{value} is also the {what} of line {line}{whose}; {why}")
            else:
                seen[value] = (row.line, hostname or "")


# --------------------------------------------------------------------------- the objects


def bmc_secret_name(hostname: str) -> str:
    """The Secret with a hardware's BMC credentials, as EKS Anywhere and Rufio name it."""
    return f"bmc-{hostname}-auth"


def hardware_objects(
    entries: Iterable[HardwareEntry], namespace: str = DEFAULT_NAMESPACE
) -> list[dict[str, Any]]:
    """The objects to apply for the machines: per machine, the BMC credentials Secret (if it has a BMC)
    and then its Hardware, free (no owner labels) and not allowed to netboot.

    The Secret comes first so that whoever sees a Hardware finds its Secret. Its values are in
    ``data`` (base64), not ``stringData``: ``data`` is what an API server stores and returns, so the
    objects read back equal those applied (an apply is idempotent, a diff is empty), and ours, which
    does not fold ``stringData`` into ``data``, stores them as Kubernetes would.
    """
    objects: list[dict[str, Any]] = []
    for entry in entries:
        spec: dict[str, Any] = {}
        if entry.has_bmc:
            secret = bmc_secret_name(entry.hostname)
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret, "namespace": namespace},
                    "type": _SECRET_TYPE,
                    "data": {
                        "username": _b64(entry.bmc_username or ""),
                        "password": _b64(entry.bmc_password or ""),
                    },
                }
            )
            bmc: dict[str, Any] = {"host": entry.bmc_host}
            if entry.bmc_port is not None:
                bmc["port"] = entry.bmc_port
            bmc["authSecretRef"] = {"name": secret, "namespace": namespace}
            spec["bmc"] = bmc
        dhcp: dict[str, Any] = {
            "mac": entry.mac,
            "hostname": entry.hostname,
            "ip": {"address": entry.ip_address, "netmask": entry.netmask, "gateway": entry.gateway},
            "nameServers": list(entry.nameservers),
            "arch": ARCH,
            "uefi": True,
        }
        if entry.vlan_id is not None:
            dhcp["vlanID"] = entry.vlan_id
        spec["disks"] = [{"device": entry.disk}]
        spec["interfaces"] = [{"dhcp": dhcp, "netboot": {"allowPXE": False, "allowWorkflow": False}}]
        metadata: dict[str, Any] = {"name": entry.hostname, "namespace": namespace}
        if entry.labels:
            metadata["labels"] = dict(entry.labels)
        hardware = {
            "apiVersion": TINKERBELL_API_VERSION,
            "kind": Hardware.KIND,
            "metadata": metadata,
            "spec": spec,
        }
        # Through the kind's model: what we write is what the Hardware CRD admits.
        objects.append(Hardware.model_validate(hardware, by_name=False).to_dict())
    return objects


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


# --------------------------------------------------------------------------- selection


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` match a Kubernetes label selector (JSON: ``matchLabels``, ``matchExpressions``
    with In, NotIn, Exists, DoesNotExist). An empty or missing selector matches everything, as a
    CAPT affinity term's does; an unknown operator matches nothing (validation refuses it earlier)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key = expression.get("key") or ""
        operator = expression.get("operator")
        values = expression.get("values") or ()
        present = key in labels
        if operator == "In":
            matched = present and labels[key] in values
        elif operator == "NotIn":
            matched = not present or labels[key] not in values
        elif operator == "Exists":
            matched = present
        elif operator == "DoesNotExist":
            matched = not present
        else:
            matched = False
        if not matched:
            return False
    return True


def _required_terms(affinity: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
    return [term.get("labelSelector") for term in affinity.get("required") or ()]


def affinity_score(affinity: Mapping[str, Any], labels: Mapping[str, str]) -> int | None:
    """How much a machine wants hardware with these labels: ``None`` if no required term matches them
    (required terms are ORed, as in CAPT; no required term admits everything), else the sum of the
    weights of the preferred terms they match."""
    required = _required_terms(affinity)
    if required and not any(selector_matches(selector, labels) for selector in required):
        return None
    score = 0
    for preferred in affinity.get("preferred") or ():
        term = preferred.get("hardwareAffinityTerm") or {}
        if selector_matches(term.get("labelSelector"), labels):
            score += int(preferred.get("weight") or 0)
    return score


def pick_hardware(
    affinity: Mapping[str, Any], candidates: Sequence[tuple[str, Mapping[str, str]]]
) -> str | None:
    """The name of the candidate (name, labels) the affinity admits with the highest score, ties going
    to the first name in sort order (so that retries pick the same hardware); ``None`` if none fits."""
    scored = [
        (score, name)
        for name, labels in candidates
        if (score := affinity_score(affinity, labels)) is not None
    ]
    return min(scored, key=lambda pair: (-pair[0], pair[1]))[1] if scored else None


def affinity_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The hardware affinity of a TinkerbellMachineConfig spec (JSON): its ``hardwareAffinity`` as is,
    or its ``hardwareSelector`` as one required term matching those labels, as EKS Anywhere makes it;
    ``{}`` (any hardware) if it has neither."""
    affinity = spec.get("hardwareAffinity")
    if affinity is not None:
        copied: dict[str, Any] = json.loads(json.dumps(affinity))
        return copied
    selector = spec.get("hardwareSelector")
    if selector:
        return {"required": [{"labelSelector": {"matchLabels": dict(selector)}}]}
    return {}


def _describe_selector(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return "any hardware"
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        parts.append(f"{key} {operator} ({','.join(values)})" if values else f"{key} {operator}")
    return ",".join(parts) or "any hardware"


def describe_affinity(affinity: Mapping[str, Any]) -> str:
    """The affinity in a few words for messages: ``type=cp``, ``type In (cp,cp2)``, ``type=cp or
    type=cp2``, with preferences after ``;``."""
    required = _required_terms(affinity)
    text = " or ".join(_describe_selector(selector) for selector in required) if required else "any hardware"
    preferred = []
    for term in affinity.get("preferred") or ():
        selector = (term.get("hardwareAffinityTerm") or {}).get("labelSelector")
        preferred.append(f"{_describe_selector(selector)} (weight {term.get('weight')})")
    if preferred:
        text += "; preferring " + ", ".join(preferred)
    return text


# --------------------------------------------------------------------------- requirements


@dataclass(frozen=True)
class Requirement:
    """Hardware a group of machines needs: ``count`` machines, plus ``spare`` for a rolling upgrade
    (which makes new machines before it removes old ones), with the group's hardware affinity."""

    role: str  # "control plane", "worker node group md-0"
    machine_config: str  # the TinkerbellMachineConfig's name
    affinity: Mapping[str, Any] = field(hash=False)
    count: int
    spare: int = 0

    @property
    def total(self) -> int:
        return self.count + self.spare


def hardware_requirements(config: ClusterConfig, *, rolling_spare: bool) -> list[Requirement]:
    """One requirement per machine group of the cluster whose TinkerbellMachineConfig the configuration
    holds: the control plane, then each worker node group. With ``rolling_spare``, each group also
    needs its rolling upgrade's maxSurge (1 unless set; nothing for InPlace upgrades, nor for a group
    of no machines). External etcd is not supported on bare metal, so has no requirement."""
    cluster = config.cluster
    requirements: list[Requirement] = []
    control_plane = cluster.spec.control_plane_configuration
    if control_plane is not None:
        machine = find_machine(config, TinkerbellMachineConfig, control_plane.machine_group_ref)
        if machine is not None:
            count = control_plane.count if control_plane.count is not None else 1
            rollout = control_plane_rollout(cluster).rolling_update
            surge = rollout.max_surge if rollout is not None else None
            requirements.append(
                _requirement("control plane", machine, count, surge if rolling_spare else None)
            )
    for group in cluster.worker_groups:
        machine = find_machine(config, TinkerbellMachineConfig, group.machine_group_ref)
        if machine is None:
            continue
        autoscaling = group.autoscaling_configuration
        minimum = autoscaling.min_count if autoscaling is not None else None
        workers = group.count if group.count is not None else minimum if minimum is not None else 1
        worker_update = worker_rollout(group).rolling_update
        surge = worker_update.max_surge if worker_update is not None else None
        requirements.append(
            _requirement(
                f"worker node group {group.name}", machine, workers, surge if rolling_spare else None
            )
        )
    return requirements


def _requirement(role: str, machine: TinkerbellMachineConfig, count: int, surge: int | None) -> Requirement:
    spare = max(surge or 0, 0) if count > 0 else 0
    return Requirement(role, machine.name, affinity_of(machine.spec.to_dict()), count, spare)


def _pool_key(affinity: Mapping[str, Any]) -> str:
    """Requirements with the same required terms draw from the same hardware."""
    return json.dumps(_required_terms(affinity), sort_keys=True)


def shortages(
    requirements: Sequence[Requirement], hardware: Sequence[tuple[str, Mapping[str, str]]]
) -> list[str]:
    """One message per group of requirements that cannot all get hardware, e.g. ``control plane
    (TinkerbellMachineConfig c1-cp, type=cp): needs 2 (1 + 1 spare for a rolling upgrade), 1 available``.

    A piece of hardware serves one machine. Requirements with the same required terms are counted
    together (they draw from the same hardware). Hardware is assigned as a maximum matching: the most
    constrained group is served first, each preferring hardware that fewer groups can use, and hardware
    is moved between groups whenever that lets one more machine be served, so a shortage is reported
    only if no assignment at all would serve every machine.
    """
    pools: dict[str, list[Requirement]] = {}
    for requirement in requirements:
        pools.setdefault(_pool_key(requirement.affinity), []).append(requirement)
    keys = list(pools)
    eligible: dict[str, list[str]] = {
        key: [name for name, labels in hardware if affinity_score(pools[key][0].affinity, labels) is not None]
        for key in keys
    }
    users: dict[str, int] = {}
    for names in eligible.values():
        for name in names:
            users[name] = users.get(name, 0) + 1
    for key in keys:
        eligible[key].sort(key=lambda name: (users[name], name))
    demand = {key: sum(r.total for r in pools[key]) for key in keys}
    order = sorted(keys, key=lambda key: (len(eligible[key]) - demand[key], len(eligible[key])))
    owner: dict[str, str] = {}
    served = dict.fromkeys(keys, 0)
    for key in order:
        while served[key] < demand[key] and _augment(key, eligible, owner):
            served[key] += 1
    return [
        _shortage(pools[key], served[key], len(eligible[key])) for key in keys if served[key] < demand[key]
    ]


def _augment(source: str, eligible: Mapping[str, list[str]], owner: dict[str, str]) -> bool:
    """Give pool ``source`` one more piece of hardware, moving hardware between pools if that frees
    one it may use (a shortest augmenting path, found breadth first over the pools)."""
    parent: dict[str, tuple[str, str]] = {}
    visited = {source}
    queue = [source]
    for pool in queue:
        for name in eligible[pool]:
            holder = owner.get(name)
            if holder is None:
                owner[name] = pool
                while pool != source:  # each pool on the path hands its hardware to the one before
                    before, taken = parent[pool]
                    owner[taken] = before
                    pool = before
                return True
            if holder not in visited:
                visited.add(holder)
                parent[holder] = (pool, name)
                queue.append(holder)
    return False


def _shortage(requirements: list[Requirement], available: int, matching: int) -> str:
    roles = " and ".join(r.role for r in requirements)
    configs = list(dict.fromkeys(r.machine_config for r in requirements))
    kind = "TinkerbellMachineConfig" if len(configs) == 1 else "TinkerbellMachineConfigs"
    count = sum(r.count for r in requirements)
    spare = sum(r.spare for r in requirements)
    needs = f"needs {count + spare}"
    if spare:
        needs += f" ({count} + {spare} spare for {'a rolling upgrade' if spare == 1 else 'rolling upgrades'})"
    together = "; counted together: they select the same hardware" if len(requirements) > 1 else ""
    where = f"{kind} {', '.join(configs)}, {describe_affinity(requirements[0].affinity)}{together}"
    message = f"{roles} ({where}): {needs}, {available} available"
    if matching > available:
        message += f" ({matching} match, {matching - available} of them needed by other machine groups)"
    return message
