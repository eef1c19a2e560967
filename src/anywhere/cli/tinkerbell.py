"""Bare metal (``tinkerbell``) in the CLI: the hardware CSV.

``anywhere generate hardware -z hardware.csv [-o FILE]`` turns EKS Anywhere's hardware CSV into the
objects ``create cluster --hardware-csv`` applies: one ``Hardware`` per machine and one Secret with
each machine's BMC credentials. A bad CSV is reported in full (every problem, each with its line and
column) before anything is written. The output holds BMC passwords: a file written with ``-o`` is
readable by its owner only, and nothing here logs or prints a password otherwise.

This module is imported by ``anywhere.cli.main`` for every command, so it imports nothing heavy (no
Redfish client) at module level.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.api.config import ClusterConfig
from anywhere.api.infra.hardware import (
    HardwareCSVError,
    HardwareEntry,
    hardware_objects,
    hardware_requirements,
    parse_hardware_csv,
    shortages,
)
from anywhere.api.infra.tinkerbell import images_without_bundle
from anywhere.api.v1alpha1.tinkerbell import TinkerbellDatacenterConfig
from anywhere.cli.cluster import (
    CommandError,
    Session,
    Spec,
    out,
    plan_upgrade,
    run_command,
    write_private,
)
from anywhere.controllers.objects import create_or_patch, labels_of, name_of, patch_at_version
from anywhere.controllers.resources import (
    HARDWARE,
    NAMESPACES,
    SECRETS,
    SYSTEM_NAMESPACE,
    TINKERBELL_MACHINES,
)
from anywhere.providers.tinkerbell.pool import address_of, has_bmc, mac_of, owner_of
from anywhere.runtime import AlreadyExistsError, Client, ConflictError, NotFoundError

__all__ = [
    "check_bmcs",
    "generate_hardware",
    "preflight",
    "read_hardware_csv",
    "render_hardware",
    "store_hardware",
]

Obj = dict[str, Any]


def read_hardware_csv(path: Path) -> list[HardwareEntry]:
    """The machines of the hardware CSV at ``path``; CommandError listing every problem of the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CommandError(f"hardware CSV {path}: no such file") from None
    except UnicodeDecodeError:
        raise CommandError(f"hardware CSV {path}: not a text file (UTF-8 expected)") from None
    except OSError as exc:
        raise CommandError(f"hardware CSV {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        return parse_hardware_csv(text, str(path))
    except HardwareCSVError as exc:
        raise CommandError(str(exc), details=exc.problems) from None


def render_hardware(entries: list[HardwareEntry]) -> str:
    """The Hardware objects and BMC Secrets of the machines, as multi-document YAML."""
    return yaml.safe_dump_all(hardware_objects(entries), sort_keys=False, default_flow_style=False)


def generate_hardware(
    hardware_csv: Annotated[
        Path,
        typer.Option(
            "--hardware-csv",
            "-z",
            help="The hardware CSV: one machine per line, with EKS Anywhere's columns (hostname, bmc_ip, "
            "bmc_username, bmc_password, mac, ip_address, netmask, gateway, nameservers, labels, disk).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the YAML to this file (mode 0600: it holds BMC passwords)."
        ),
    ] = None,
) -> None:
    """Print the Hardware objects and BMC Secrets of a hardware CSV, as YAML."""

    def body() -> None:
        entries = read_hardware_csv(hardware_csv)
        text = render_hardware(entries)
        if output is None:
            sys.stdout.write(text)
            return
        try:
            write_private(output, text.encode())
        except OSError as exc:
            raise CommandError(f"--output {output}: cannot write it: {exc.strerror or exc}") from None
        secrets = sum(1 for entry in entries if entry.has_bmc)
        out.print(
            f"Wrote {len(entries)} Hardware and {secrets} BMC Secret(s) to {output} "
            "(readable by you only: it holds BMC passwords)",
            markup=False,
        )

    run_command(Session(), body)


def register(generate_app: typer.Typer) -> None:
    """Add ``generate hardware`` to the ``anywhere generate`` group."""
    generate_app.command("hardware")(generate_hardware)


# ---- create and upgrade: the hardware pool --------------------------------------------------------------


def _is_bare_metal(spec: Spec) -> bool:
    return isinstance(spec.config.datacenter, TinkerbellDatacenterConfig)


def preflight(spec: Spec, csv_path: Path | None, *, for_create: bool, workload: bool) -> None:
    """Before anything is made: read and check ``--hardware-csv``, check that it holds enough hardware
    for a new self-managed cluster, and that every BMC in it answers to its credentials. What passes is
    kept in ``spec.hardware`` for :func:`store_hardware`."""
    if not _is_bare_metal(spec):
        if csv_path is not None:
            kind = spec.config.datacenter.kind if spec.config.datacenter is not None else "no datacenter"
            raise CommandError(
                f"--hardware-csv is for bare metal (tinkerbell) clusters; {spec.path} uses {kind}"
            )
        return
    missing = images_without_bundle(spec.config)
    if missing:
        raise CommandError(
            f"{spec.path}: {len(missing)} machine config(s) have no OS image to install",
            details=[str(e) for e in missing],
        )
    if csv_path is None:
        if for_create and not workload:
            raise CommandError(
                f"cluster {spec.name} runs on bare metal: pass its servers with --hardware-csv FILE "
                "(see `anywhere generate hardware --help` for the columns)"
            )
        return  # the management cluster's pool is checked when applying
    entries = read_hardware_csv(csv_path)
    if for_create and not workload:
        short = shortages(hardware_requirements(spec.config, rolling_spare=False), _labelled(entries, []))
        if short:
            raise CommandError(
                f"{csv_path} has too little hardware for cluster {spec.name}; add servers with matching labels",
                details=short,
            )
        for line in shortages(hardware_requirements(spec.config, rolling_spare=True), _labelled(entries, [])):
            out.print(
                f"Note: a rolling upgrade will need more hardware than {csv_path} has: {line}", markup=False
            )
    asyncio.run(check_bmcs(entries, csv_path))
    spec.hardware = entries


async def check_bmcs(entries: list[HardwareEntry], csv_path: Path) -> None:
    """Every BMC of ``entries`` answers, takes its credentials and manages a system with the entry's
    MAC (all at once; every failure listed)."""
    from anywhere.providers.tinkerbell.bmc import BMCEndpoint, BMCError, BMCs

    bmcs = BMCs()
    try:

        async def check(entry: HardwareEntry) -> str | None:
            if not entry.has_bmc:
                return None
            endpoint = BMCEndpoint(
                host=str(entry.bmc_host),
                port=entry.bmc_port,
                username=str(entry.bmc_username or ""),
                password=str(entry.bmc_password or ""),
            )
            try:
                await bmcs.check(endpoint, entry.mac)
            except BMCError as exc:
                return f"{csv_path} line {entry.line} ({entry.hostname}): {exc.message}"
            return None

        problems = [p for p in await asyncio.gather(*(check(e) for e in entries)) if p]
    finally:
        bmcs.close()
    if problems:
        raise CommandError(
            f"{len(problems)} BMC(s) of {csv_path} cannot be used; nothing was changed", details=problems
        )


def _labelled(entries: list[HardwareEntry], others: list[Obj]) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of the hardware machines can take: the CSV's entries, then objects already
    registered under other names; hardware without a BMC is left out (anywhere cannot netboot it)."""
    names = {e.hostname for e in entries}
    out = [(e.hostname, dict(e.labels)) for e in entries if e.has_bmc]
    out += [(name_of(h), labels_of(h)) for h in others if name_of(h) not in names and has_bmc(h)]
    return out


async def store_hardware(client: Client, spec: Spec, current: ClusterConfig | None) -> None:
    """Register the CSV's hardware in the management cluster (before the cluster's objects, so its
    machines find it), after checking that the pool then holds enough for the cluster: its machines,
    and for an upgrade (``current``: the cluster's configuration as it is) that replaces machines,
    the spare each rolling group's maxSurge needs.

    Hardware already registered under the same name is updated: free hardware wholly, hardware a
    machine holds only in its BMC settings and credentials (its MAC and IP are the running node's)."""
    if not _is_bare_metal(spec):
        return
    with contextlib.suppress(AlreadyExistsError):
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}}
        )
    registered = {
        name_of(h): h for h in (await client.list_all(HARDWARE, SYSTEM_NAMESPACE)).get("items") or []
    }
    machines = {
        name_of(m): m
        for m in (await client.list_all(TINKERBELL_MACHINES, SYSTEM_NAMESPACE)).get("items") or []
    }
    for entry in spec.hardware:
        held = registered.get(entry.hostname)
        owner = _holder(held) if held is not None else None
        if (
            held is not None
            and owner is not None
            and (mac_of(held) != entry.mac or address_of(held) != entry.ip_address)
        ):
            raise CommandError(
                f"hardware {entry.hostname} is in use by machine {owner}: its MAC and IP address cannot change "
                f"(the CSV has {entry.mac} {entry.ip_address}); remove the row or free the hardware first"
            )
    usable = [
        h
        for h in registered.values()
        if (o := _holder(h)) is None or _cluster_of(machines.get(o)) == spec.name
    ]
    rolling = current is not None and _replaces_machines(current, spec.config)
    short = shortages(
        hardware_requirements(spec.config, rolling_spare=rolling), _labelled(spec.hardware, usable)
    )
    if short:
        source = " and the hardware CSV" if spec.hardware else ""
        raise CommandError(
            f"the management cluster{source} has too little free hardware for cluster {spec.name}"
            + (" and the spare a rolling upgrade needs" if rolling else "")
            + "; add servers with --hardware-csv",
            details=short,
        )
    for obj in hardware_objects(spec.hardware, SYSTEM_NAMESPACE):
        if obj["kind"] == "Hardware":
            await _register(client, obj)
            continue
        await create_or_patch(client, SECRETS, obj, None)  # creates, or compares with the one there
    if spec.hardware:
        out.print(f"Registered {len(spec.hardware)} hardware object(s) in namespace {SYSTEM_NAMESPACE}")


async def _register(client: Client, desired: Obj, attempts: int = 5) -> None:
    """Create a Hardware, or update the one there compare-and-swap (a machine may claim it meanwhile):
    free hardware takes the CSV's labels and spec; hardware a machine holds only its BMC settings."""
    for _ in range(attempts):
        try:
            current = await client.get(HARDWARE, name_of(desired), SYSTEM_NAMESPACE)
        except NotFoundError:
            with contextlib.suppress(AlreadyExistsError):
                await client.create(HARDWARE, desired, SYSTEM_NAMESPACE)
                return
            continue
        if _holder(current) is not None:
            patch: Obj = {"spec": {"bmc": desired["spec"].get("bmc")}}
        else:
            labels: dict[str, str | None] = dict.fromkeys(labels_of(current))
            labels.update(desired["metadata"].get("labels") or {})
            patch = {"metadata": {"labels": labels}, "spec": desired["spec"]}
        with contextlib.suppress(ConflictError):
            await patch_at_version(client, HARDWARE, current, patch)
            return
    raise CommandError(
        f"hardware {name_of(desired)} kept changing while it was being updated; run the command again"
    )


def _holder(hardware: Obj) -> str | None:
    owner = owner_of(hardware)
    return owner[1] if owner is not None else None


def _cluster_of(machine: Obj | None) -> str | None:
    return labels_of(machine or {}).get(CLUSTER_NAME_LABEL)


def _replaces_machines(old: ClusterConfig, new: ClusterConfig) -> bool:
    """Whether the upgrade replaces machines of a group: one rolls in the upgrade plan (its
    Kubernetes version or machine config changes), or the datacenter's OS image changes (InPlace
    groups need no spare either way: hardware_requirements adds none for them)."""
    if any(group.rolls for group in plan_upgrade(old, new).groups):
        return True
    old_dc, new_dc = old.datacenter, new.datacenter
    return (
        isinstance(old_dc, TinkerbellDatacenterConfig)
        and isinstance(new_dc, TinkerbellDatacenterConfig)
        and old_dc.spec.os_image_url != new_dc.spec.os_image_url
    )
