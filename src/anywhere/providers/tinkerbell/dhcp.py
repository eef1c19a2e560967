"""The DHCP side of netbooting bare metal: a dnsmasq configuration serving only reserved machines.

Tinkerbell's Smee answers DHCP for the hardware it knows and chains a netbooting server into
iPXE and then into HookOS. EKS Anywhere documents how an existing DHCP server takes over Smee's
DHCP part ("Use existing DHCP service"); this module writes that configuration for dnsmasq, from
the Hardware objects the cluster's machines hold:

* **Reservations only.** One ``dhcp-host`` per MAC with its address, hostname and lease, one
  ``dhcp-range=<subnet>,static`` per subnet (no dynamic pool), and ``dhcp-ignore=tag:!known``: a
  machine that is not ours is not answered at all, so this server can share a segment with the
  site's own DHCP server. Each reservation tags its client, and the netmask, router and DNS options
  hang on that tag, so two machines on different subnets each get their own.
* **The iPXE chain, as Smee serves it.** A firmware PXE client gets the iPXE binary for its
  architecture (DHCP option 93: ``undionly.kpxe`` for legacy BIOS, ``ipxe.efi`` for x86 UEFI,
  ``snp.efi`` for ARM UEFI) from Smee's TFTP server on the Tinkerbell IP (port 69). Once iPXE runs
  it asks again, now identifying itself (user class ``iPXE``, or ``Tinkerbell`` for Smee's own
  build, and option 175); it is then given the HTTP URL of Smee's boot script for its MAC,
  ``http://<tinkerbellIP>:7171/<mac>/auto.ipxe`` (Smee prepends the MAC by default; 7171 is the port
  EKS Anywhere runs Smee's HTTP server on), which loads HookOS. Without that second answer iPXE would
  fetch itself forever.
* **No DNS, no TFTP here**: ``port=0``; the binaries and the script are Smee's to serve. Where
  dnsmasq keeps its leases and pid is the business of whoever runs it (command-line options).

The output is deterministic (reservations by MAC, subnets in order), so an unchanged set of
reservations renders the same text and the ConfigMap holding it is not rewritten. Every value is
checked before it is written: a newline or a comma in a hostname would otherwise add a dnsmasq
option of the writer's choosing. The configuration is checked by the real ``dnsmasq --test``
(:func:`check_dnsmasq`) before it is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from anywhere.providers.tinkerbell.pool import interface_of, name_servers_of

__all__ = [
    "DHCPConfigError",
    "DHCPSettings",
    "DnsmasqNotInstalledError",
    "DnsmasqUnavailableError",
    "Reservation",
    "check_dnsmasq",
    "render_dnsmasq",
    "reservation_of",
    "reserved_macs",
]

SMEE_HTTP_PORT: Final = 7171
"""The port of Smee's HTTP server (iPXE binaries and scripts) in EKS Anywhere (Smee's own default is 8080)."""

BOOT_SCRIPT: Final = "auto.ipxe"
DEFAULT_LEASE_SECONDS: Final = 86400
_MIN_LEASE_SECONDS: Final = 120  # dnsmasq refuses shorter leases
_CHECK_TIMEOUT_SECONDS: Final = 10.0
_FALLBACK_BINARY: Final = "/usr/sbin/dnsmasq"  # not on a non-root user's PATH on Debian

# DHCP option 93 (RFC 4578 and IANA's processor architecture types) -> the tag it sets, and the iPXE
# binary Smee serves for that tag (Smee's ArchToBootFile, TFTP clients only).
_ARCH_TAGS: Final = (
    (0, "arch-bios"),  # x86 BIOS
    (6, "arch-efi-x86"),  # EFI IA32
    (7, "arch-efi-x86"),  # EFI x86-64
    (9, "arch-efi-x86"),  # EFI BC (x86-64)
    (10, "arch-efi-arm"),  # EFI ARM32
    (11, "arch-efi-arm"),  # EFI ARM64
)
_BINARIES: Final = (("arch-bios", "undionly.kpxe"), ("arch-efi-x86", "ipxe.efi"), ("arch-efi-arm", "snp.efi"))
_IPXE_TAG: Final = "ipxe"
# User classes (option 77) of a client already in iPXE: stock iPXE, and Smee's build of it.
_IPXE_USER_CLASSES: Final = ("iPXE", "Tinkerbell")

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_BAD_LINE = re.compile(r"at line (\d+) of (\S+)")


class DHCPConfigError(Exception):
    """dnsmasq refuses the configuration, or cannot be run to check it; the message says which."""


class DnsmasqUnavailableError(DHCPConfigError):
    """dnsmasq could not be run to check the configuration (which may be fine): worth trying again."""


class DnsmasqNotInstalledError(DnsmasqUnavailableError):
    """The dnsmasq binary is not on this host."""


@dataclass(frozen=True)
class Reservation:
    """The address one machine always gets, with the options that go with it."""

    mac: str
    ip: str
    hostname: str
    netmask: str
    gateway: str | None = None
    nameservers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DHCPSettings:
    """Where the netbooting machines find the Tinkerbell stack, and how dnsmasq answers them.

    ``tinkerbell_ip`` serves Smee's TFTP (port 69) and HTTP (``http_port``) servers. ``interface``,
    when set, keeps dnsmasq to that interface (``interface=`` with ``bind-interfaces``).
    """

    tinkerbell_ip: str
    interface: str | None = None
    http_port: int = SMEE_HTTP_PORT
    lease_seconds: int = DEFAULT_LEASE_SECONDS


def reservation_of(hardware: Mapping[str, Any]) -> Reservation:
    """The reservation of a Hardware object: its first interface's ``dhcp`` block (the interface the
    server netboots from). Raises ValueError naming the hardware when that block lacks a MAC or an
    address."""
    name = str((hardware.get("metadata") or {}).get("name") or "?")
    dhcp = interface_of(dict(hardware))
    ip = dhcp.get("ip") or {}
    mac = str(dhcp.get("mac") or "").strip().lower()
    address = str(ip.get("address") or "").strip()
    if not mac or not address:
        raise ValueError(
            f"hardware {name} has no DHCP reservation: spec.interfaces[0].dhcp needs mac and ip.address"
        )
    return Reservation(
        mac=mac,
        ip=address,
        hostname=str(dhcp.get("hostname") or name),
        netmask=str(ip.get("netmask") or ""),
        gateway=str(ip["gateway"]) if ip.get("gateway") else None,
        nameservers=name_servers_of(dict(hardware)),
    )


# --------------------------------------------------------------------------- rendering


def _safe(what: str, value: str) -> str:
    """``value`` if it cannot inject anything into a dnsmasq option line."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} {value!r} contains a line break, which would inject a dnsmasq option")
    if "," in value:
        raise ValueError(f"{what} {value!r} contains a comma, which would inject a dnsmasq option field")
    if "#" in value:
        raise ValueError(f"{what} {value!r} contains '#', which would start a dnsmasq comment")
    return value


def _ipv4(what: str, value: str) -> ipaddress.IPv4Address:
    _safe(what, value)
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an IPv4 address") from None


def _network(r: Reservation) -> ipaddress.IPv4Network:
    mask = _ipv4(f"netmask of {r.mac}", r.netmask)
    try:
        return ipaddress.IPv4Network(f"{r.ip}/{mask}", strict=False)
    except ValueError:
        raise ValueError(f"netmask of {r.mac} {r.netmask!r} is not a netmask") from None


def _tag(mac: str) -> str:
    """The dnsmasq tag of one reservation: from the MAC, which is unique and always a safe name."""
    return "hw-" + mac.replace(":", "")


def _checked(reservations: Iterable[Reservation]) -> list[tuple[Reservation, ipaddress.IPv4Network]]:
    by_mac: dict[str, Reservation] = {}
    by_ip: dict[str, str] = {}
    out: list[tuple[Reservation, ipaddress.IPv4Network]] = []
    for r in reservations:
        mac = _safe("MAC", r.mac).lower()
        if not _MAC.match(mac):
            raise ValueError(f"MAC {r.mac!r} is not a MAC address (six colon-separated hex pairs)")
        _ipv4(f"address of {mac}", r.ip)
        hostname = _safe(f"hostname of {mac}", r.hostname)
        if not _HOSTNAME.match(hostname):
            raise ValueError(f"hostname of {mac} {hostname!r} is not a valid host name")
        network = _network(r)
        if r.gateway is not None:
            _ipv4(f"gateway of {mac}", r.gateway)
        for server in r.nameservers:
            _ipv4(f"name server of {mac}", server)
        if mac in by_mac:
            raise ValueError(f"MAC {mac} is reserved twice")
        if r.ip in by_ip:
            raise ValueError(f"address {r.ip} is reserved for both {by_ip[r.ip]} and {mac}")
        by_mac[mac] = r
        by_ip[r.ip] = mac
        out.append(
            (Reservation(mac, r.ip, hostname, str(network.netmask), r.gateway, r.nameservers), network)
        )
    return sorted(out, key=lambda pair: pair[0].mac)


def _check_settings(settings: DHCPSettings) -> None:
    _ipv4("tinkerbellIP", settings.tinkerbell_ip)
    if settings.interface is not None and not _INTERFACE.match(_safe("interface", settings.interface)):
        raise ValueError(f"interface {settings.interface!r} is not a network interface name")
    if not 0 < settings.http_port < 65536:
        raise ValueError(f"http_port {settings.http_port} is not a TCP port")
    if settings.lease_seconds < _MIN_LEASE_SECONDS:
        raise ValueError(f"lease_seconds must be at least {_MIN_LEASE_SECONDS} (dnsmasq's minimum)")


def render_dnsmasq(reservations: Iterable[Reservation], settings: DHCPSettings) -> str:
    """The dnsmasq configuration serving exactly ``reservations`` and chaining them into Tinkerbell's
    iPXE boot (see the module doc). Raises ValueError naming the value that is malformed or that
    would inject an option (a line break, a comma, a ``#``)."""
    _check_settings(settings)
    entries = _checked(reservations)
    ip = settings.tinkerbell_ip
    lease = settings.lease_seconds
    lines = [
        "# Generated by anywhere (tinkerbell provider) from the Hardware the cluster's machines hold;",
        "# rewritten on every change: do not edit. DHCP for reserved MACs only, no DNS, no dynamic pool.",
        "port=0",
        "no-resolv",
        "no-hosts",
    ]
    if settings.interface:
        lines += [f"interface={settings.interface}", "bind-interfaces"]
    lines += ["dhcp-ignore=tag:!known", ""]

    subnets = sorted({network for _, network in entries}, key=lambda n: (int(n.network_address), n.prefixlen))
    if subnets:
        lines.append("# Subnets served: static reservations only.")
        lines += [f"dhcp-range={n.network_address},static,{n.netmask},{lease}" for n in subnets]
        lines.append("")

    for r, _ in entries:
        tag = _tag(r.mac)
        lines.append(f"# {r.hostname}")
        lines.append(f"dhcp-host={r.mac},set:{tag},{r.ip},{r.hostname},{lease}")
        lines.append(f"dhcp-option=tag:{tag},option:netmask,{r.netmask}")
        if r.gateway:
            lines.append(f"dhcp-option=tag:{tag},option:router,{r.gateway}")
        if r.nameservers:
            lines.append(f"dhcp-option=tag:{tag},option:dns-server,{','.join(r.nameservers)}")
        lines.append("")

    lines.append(
        "# Firmware PXE: the iPXE binary for the client's architecture (option 93), from Smee's TFTP."
    )
    lines += [f"dhcp-match=set:{tag},option:client-arch,{arch}" for arch, tag in _ARCH_TAGS]
    lines.append("# Already in iPXE (user class or option 175): Smee's boot script for the MAC, over HTTP.")
    lines += [f"dhcp-userclass=set:{_IPXE_TAG},{user_class}" for user_class in _IPXE_USER_CLASSES]
    lines.append(f"dhcp-match=set:{_IPXE_TAG},175")
    lines += [f"dhcp-boot=tag:!{_IPXE_TAG},tag:{tag},{binary},,{ip}" for tag, binary in _BINARIES]
    for r, _ in entries:
        url = f"http://{ip}:{settings.http_port}/{r.mac}/{BOOT_SCRIPT}"
        lines.append(f"dhcp-boot=tag:{_IPXE_TAG},tag:{_tag(r.mac)},{url}")
    return "\n".join(lines) + "\n"


def reserved_macs(conf: str) -> set[str]:
    """The MACs ``conf`` (a configuration :func:`render_dnsmasq` wrote) reserves an address for."""
    macs = set()
    for line in conf.splitlines():
        if line.startswith("dhcp-host="):
            macs.add(line.removeprefix("dhcp-host=").split(",", 1)[0].strip().lower())
    return macs


# --------------------------------------------------------------------------- checking


def _binary() -> str:
    found = shutil.which("dnsmasq")
    if found:
        return found
    if os.access(_FALLBACK_BINARY, os.X_OK):
        return _FALLBACK_BINARY
    raise DnsmasqNotInstalledError(
        "dnsmasq is needed to check the DHCP configuration but is not installed: "
        "install dnsmasq: apt-get install dnsmasq-base"
    )


def _explain(message: str, path: Path, conf: str) -> str:
    """dnsmasq's message with the temporary file's name replaced, and the line it refers to."""
    message = " ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    match = _BAD_LINE.search(message)
    message = message.replace(str(path), "the configuration")
    if match and match.group(2) == str(path):
        number = int(match.group(1))
        lines = conf.splitlines()
        if 0 < number <= len(lines):
            message += f": {lines[number - 1]!r}"
    return message


async def check_dnsmasq(conf: str) -> None:
    """Run the real ``dnsmasq --test`` on ``conf``; raise DHCPConfigError with dnsmasq's own message
    (and the offending line) when it refuses it. ``--test`` only parses: it needs no privilege, no
    interface, no lease file."""
    binary = _binary()
    with tempfile.TemporaryDirectory(prefix="anywhere-dnsmasq-") as folder:
        path = Path(folder) / "dnsmasq.conf"
        path.write_text(conf)
        try:
            proc = await asyncio.create_subprocess_exec(
                binary,
                "--test",
                f"--conf-file={path}",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise DnsmasqUnavailableError(
                f"cannot run {binary} to check the DHCP configuration: {exc}"
            ) from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), _CHECK_TIMEOUT_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise DnsmasqUnavailableError(
                f"dnsmasq --test did not finish within {_CHECK_TIMEOUT_SECONDS:g}s checking the DHCP configuration"
            ) from None
        if proc.returncode != 0:
            message = (err or out).decode(errors="replace") or f"exit status {proc.returncode}"
            raise DHCPConfigError(f"dnsmasq refuses the DHCP configuration: {_explain(message, path, conf)}")
