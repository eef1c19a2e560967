"""Cluster lifecycle commands, mirroring ``eksctl anywhere``: ``create cluster``, ``upgrade cluster``,
``upgrade plan cluster``, ``delete cluster`` and ``get clusters``.

The commands only talk to the Kubernetes API of a management cluster: they apply a configuration's
objects, then watch the anywhere Cluster's status (conditions, ``observedGeneration``,
``failureMessage``) and the Cluster API Machines until the controllers are done. Who writes that
status is not their concern, so they behave the same against any management plane.

A self-managed cluster is its own management cluster: its management plane runs in the background
with its state in ``NAME/.anywhere`` (see :mod:`anywhere.cli.plane`), and the cluster's API is the
plane's. Ctrl-C while waiting undoes nothing: the controllers go on, and the command says how to
watch them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import importlib
import logging
import os
import re
import shutil
import sys
import time
import types
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, Protocol

import aiohttp
import typer
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from anywhere.api import (
    ClusterConfig,
    FieldError,
    LoadedConfig,
    check_config,
    create_checks,
    default_config,
    object_from_dict,
    validate_config,
    validate_update,
)
from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL, MACHINE_DEPLOYMENT_NAME_LABEL
from anywhere.api.defaults import control_plane_rollout, worker_rollout
from anywhere.api.duration import format_duration, parse_duration
from anywhere.api.v1alpha1 import KINDS, Cluster, Object
from anywhere.api.v1alpha1.cluster import MachineHealthCheck, ManagementCluster
from anywhere.api.validation.cluster import CLUSTER_NAME
from anywhere.cli import plane as planes
from anywhere.controllers.resources import EKSA_CLUSTERS, MACHINES, NAMESPACES, SECRETS, SYSTEM_NAMESPACE
from anywhere.runtime import (
    APIError,
    Client,
    Expired,
    KubeConfigError,
    NotFoundError,
    Resource,
    TransportError,
    WatchEvent,
    load_kubeconfig,
)

Obj = dict[str, Any]

FIELD_MANAGER = "anywhere-cli"
CONDITION_ORDER = (
    "ControlPlaneInitialized",
    "ControlPlaneReady",
    "DefaultCNIConfigured",
    "WorkersReady",
    "Ready",
)
# EKS Anywhere's defaults (clustermanager.DefaultControlPlaneWait, DefaultEtcdWait,
# DefaultMaxWaitPerMachine, defaultMachinesMinWait; constants.DefaultUnhealthyMachineTimeout,
# DefaultNodeStartupTimeout).
DEFAULT_CONTROL_PLANE_WAIT = "1h0m0s"
DEFAULT_EXTERNAL_ETCD_WAIT = "1h0m0s"
DEFAULT_PER_MACHINE_WAIT = "10m0s"
MACHINES_MIN_WAIT = 30 * 60.0
# How long a failureMessage left from before an apply may stand before it is taken as the verdict on
# the new spec (the controllers need one reconcile to clear or confirm it).
STALE_FAILURE_GRACE = 30.0
SECRET_WAIT = 30.0
TICK = 1.0

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
log = logging.getLogger("anywhere.cli")

create_app = typer.Typer(help="Create clusters.", no_args_is_help=True)
upgrade_app = typer.Typer(
    help="Upgrade clusters, or show what an upgrade would change.", no_args_is_help=True
)
plan_app = typer.Typer(
    help="Show what an upgrade would change, without changing anything.", no_args_is_help=True
)
delete_app = typer.Typer(help="Delete clusters.", no_args_is_help=True)
get_app = typer.Typer(help="List clusters.", no_args_is_help=True)
upgrade_app.add_typer(plan_app, name="plan")


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands to the ``anywhere`` app."""
    app.add_typer(create_app, name="create")
    app.add_typer(upgrade_app, name="upgrade")
    app.add_typer(delete_app, name="delete")
    app.add_typer(get_app, name="get")


# A callback makes each a group even with one command, so ``anywhere create cluster`` keeps its shape.
@create_app.callback()
def _create_group() -> None:
    """Create clusters."""


@upgrade_app.callback()
def _upgrade_group() -> None:
    """Upgrade clusters, or show what an upgrade would change."""


@plan_app.callback()
def _plan_group() -> None:
    """Show what an upgrade would change, without changing anything."""


@delete_app.callback()
def _delete_group() -> None:
    """Delete clusters."""


@get_app.callback()
def _get_group() -> None:
    """List clusters."""


# ---- errors and the command frame ----------------------------------------------------------------


class CommandError(Exception):
    """A failure to report as one line (after ``details``, e.g. one line per validation error)."""

    def __init__(self, message: str, *, details: Iterable[str] = (), code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True)
    raise typer.Exit(code)


@dataclass
class Session:
    """What a command has done so far: what Ctrl-C should say, and which API it talks to."""

    on_interrupt: Callable[[], str] = field(default=lambda: "interrupted; nothing was changed")
    api: str = "?"


def run_command(session: Session, body: Callable[[], None]) -> None:
    """Run a command body: failures become one clear line and exit 1, Ctrl-C exits 130."""
    try:
        body()
    except KeyboardInterrupt:
        err.print(session.on_interrupt(), markup=False)
        raise typer.Exit(130) from None
    except CommandError as exc:
        for line in exc.details:
            err.print(line, markup=False)
        fail(exc.message, exc.code)
    except planes.PlaneError as exc:
        fail(str(exc))
    except TransportError as exc:
        fail(f"cannot reach the management cluster's API ({session.api}): {exc}; check that it is running")
    except APIError as exc:
        if exc.code in (401, 403):
            fail(f"the API at {session.api} refused the credentials: {exc.message}; check the kubeconfig")
        fail(f"the API at {session.api} refused the request: {exc.message or exc}")


def _setup_logging(verbosity: int) -> None:
    if verbosity >= 6:
        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def _display(path: Path) -> str:
    """A path as the user should type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


# ---- options shared by the commands ----------------------------------------------------------------

FileOption = Annotated[
    Path, typer.Option("--filename", "-f", "--file", help="Filename that contains the cluster configuration.")
]
KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="Management cluster kubeconfig file (for workload clusters; a self-managed cluster's is "
        "NAME/NAME-eks-a-cluster.kubeconfig).",
    ),
]
HardwareCSVOption = Annotated[
    Path | None,
    typer.Option(
        "--hardware-csv",
        "-z",
        help="Bare metal: the CSV of servers to register (hostname, bmc_ip, bmc_username, bmc_password, mac, "
        "ip_address, netmask, gateway, nameservers, labels, disk).",
    ),
]
VerbosityOption = Annotated[
    int,
    typer.Option(
        "--verbosity",
        "-v",
        min=0,
        help="0: progress; 4+: also the management plane's log and every API request; 6+: debug logging.",
    ),
]
ControlPlaneWaitOption = Annotated[
    str, typer.Option("--control-plane-wait-timeout", help="Override the default control plane wait timeout.")
]
ExternalEtcdWaitOption = Annotated[
    str, typer.Option("--external-etcd-wait-timeout", help="Override the default external etcd wait timeout.")
]
PerMachineWaitOption = Annotated[
    str,
    typer.Option("--per-machine-wait-timeout", help="Override the default machine wait timeout per machine."),
]
UnhealthyMachineOption = Annotated[
    str | None,
    typer.Option(
        "--unhealthy-machine-timeout",
        help="(DEPRECATED) Override the default unhealthy machine timeout (5m0s) when the file sets none.",
    ),
]
NodeStartupOption = Annotated[
    str | None,
    typer.Option(
        "--node-startup-timeout",
        help="(DEPRECATED) Override the default node startup timeout (10m0s; 20m0s for Tinkerbell) "
        "when the file sets none.",
    ),
]
NoTimeoutsOption = Annotated[
    bool, typer.Option("--no-timeouts", help="Disable timeout for all wait operations.")
]


@dataclass(frozen=True)
class Timeouts:
    """How long to wait for each part (None: no limit) and the machine health check overrides."""

    control_plane: float | None
    external_etcd: float | None
    per_machine: float | None
    unhealthy_machine: str | None = None
    node_startup: str | None = None


def parse_timeouts(
    control_plane: str,
    external_etcd: str,
    per_machine: str,
    unhealthy_machine: str | None,
    node_startup: str | None,
    no_timeouts: bool,
) -> Timeouts:
    """The timeout flags, checked as EKS Anywhere does (Go durations); ``--no-timeouts`` lifts them."""

    def seconds(flag: str, value: str) -> float:
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            raise CommandError(f"--{flag}: {exc}") from None
        if parsed <= 0:
            raise CommandError(
                f"--{flag} {value}: must be longer than 0; use --no-timeouts to wait without limit"
            )
        return parsed

    waits = (
        seconds("control-plane-wait-timeout", control_plane),
        seconds("external-etcd-wait-timeout", external_etcd),
        seconds("per-machine-wait-timeout", per_machine),
    )
    unhealthy = (
        format_duration(seconds("unhealthy-machine-timeout", unhealthy_machine))
        if unhealthy_machine
        else None
    )
    startup = format_duration(seconds("node-startup-timeout", node_startup)) if node_startup else None
    if no_timeouts:
        return Timeouts(None, None, None, unhealthy, startup)
    return Timeouts(*waits, unhealthy, startup)


def _apply_health_check_flags(cluster: Cluster, timeouts: Timeouts) -> None:
    """EKS Anywhere's deprecated flags fill the machine health check timeouts the file leaves unset."""
    if timeouts.unhealthy_machine is None and timeouts.node_startup is None:
        return
    check = cluster.spec.machine_health_check or MachineHealthCheck()
    cluster.spec.machine_health_check = check
    if timeouts.node_startup is not None:
        err.print(
            "warning: --node-startup-timeout is deprecated; set spec.machineHealthCheck.nodeStartupTimeout"
        )
        if check.node_startup_timeout is None:
            check.node_startup_timeout = timeouts.node_startup
    if timeouts.unhealthy_machine is not None:
        err.print(
            "warning: --unhealthy-machine-timeout is deprecated; set spec.machineHealthCheck.unhealthyMachineTimeout"
        )
        if check.unhealthy_machine_timeout is None:
            check.unhealthy_machine_timeout = timeouts.unhealthy_machine


# ---- reading the configuration ---------------------------------------------------------------------


@dataclass
class Spec:
    """A loaded, defaulted and validated configuration, and what its author said about management."""

    loaded: LoadedConfig
    path: Path
    explicit_management: str | None
    hardware: list[Any] = field(default_factory=list)
    """Bare metal: the servers of ``--hardware-csv`` (HardwareEntry), checked, to register."""

    @property
    def config(self) -> ClusterConfig:
        return self.loaded.config

    @property
    def name(self) -> str:
        return self.config.cluster.name

    @property
    def namespace(self) -> str:
        return self.config.cluster.namespace

    @property
    def managed_by_other(self) -> bool:
        return self.explicit_management is not None and self.explicit_management != self.name

    def located(self, errors: list[FieldError]) -> list[str]:
        return [self.loaded.source_map.locate(error) for error in errors]

    def refuse(self, errors: list[FieldError], what: str) -> None:
        if errors:
            raise CommandError(
                f"{self.path}: {len(errors)} {what} error(s); fix them and run again",
                details=self.located(errors),
            )


def read_spec(path: Path, timeouts: Timeouts | None = None, *, for_create: bool = False) -> Spec:
    """Load, default and validate a file as ``anywhere validate`` does; errors end the command."""
    from anywhere.cli.main import _load  # main imports this module: import its helper when used

    loaded = _load(path)
    management = loaded.config.cluster.spec.management_cluster
    spec = Spec(loaded, path, management.name if management is not None and management.name else None)
    if timeouts is not None:
        _apply_health_check_flags(loaded.config.cluster, timeouts)
    spec.refuse(check_config(loaded.config), "validation")
    if for_create:
        spec.refuse(create_checks(loaded.config), "create check")
    return spec


def resource_of(kind: str) -> Resource:
    kind_type = KINDS.get(kind)
    if kind_type is None:
        raise CommandError(f"unknown kind {kind!r}")
    return Resource(kind_type.GROUP, kind_type.VERSION, kind_type.PLURAL, kind_type.NAMESPACED, kind)


def manifest(config: ClusterConfig) -> list[Obj]:
    """The objects to apply: the referenced configs first, so the Cluster finds them when it lands.
    Only what a user writes is kept (server-set metadata would be a precondition or an error)."""
    namespace = config.cluster.namespace
    documents: list[Obj] = []
    for obj in [*config.objects, config.cluster]:
        data = obj.to_dict()
        metadata = data.get("metadata") or {}
        kept: Obj = {"name": metadata.get("name"), "namespace": namespace}
        for key in ("labels", "annotations"):
            if metadata.get(key):
                kept[key] = metadata[key]
        data["metadata"] = kept
        data.pop("status", None)
        documents.append(data)
    return documents


def dump_manifest(documents: list[Obj]) -> str:
    """The configuration as applied, the Cluster first (as EKS Anywhere writes it)."""
    ordered = [d for d in documents if d.get("kind") == "Cluster"] + [
        d for d in documents if d.get("kind") != "Cluster"
    ]
    return yaml.safe_dump_all(ordered, sort_keys=False, default_flow_style=False)


def write_private(path: Path, data: bytes) -> None:
    """Write a credential file readable by its owner only, replacing it atomically: no reader ever
    sees a partial file or one with wider permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # a leftover partial file may have had other permissions
            handle.write(data)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


# ---- object helpers ----------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def name_of(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "default")


def management_of(cluster: Obj) -> str:
    management = ((cluster.get("spec") or {}).get("managementCluster") or {}).get("name")
    return str(management or name_of(cluster))


def conditions_of(obj: Obj) -> dict[str, Obj]:
    return {
        str(c.get("type")): c
        for c in (obj.get("status") or {}).get("conditions") or []
        if isinstance(c, dict) and c.get("type")
    }


def references(cluster: Obj) -> list[tuple[str, str]]:
    """The (kind, name) of every anywhere object the Cluster refers to, once each."""
    spec = cluster.get("spec") or {}
    refs: list[Any] = [
        spec.get("datacenterRef"),
        (spec.get("controlPlaneConfiguration") or {}).get("machineGroupRef"),
        (spec.get("externalEtcdConfiguration") or {}).get("machineGroupRef"),
        *[(g or {}).get("machineGroupRef") for g in spec.get("workerNodeGroupConfigurations") or []],
        *(spec.get("identityProviderRefs") or []),
        spec.get("gitOpsRef"),
    ]
    found: list[tuple[str, str]] = []
    for ref in refs:
        if isinstance(ref, dict) and ref.get("kind") in KINDS and ref.get("name"):
            pair = (str(ref["kind"]), str(ref["name"]))
            if pair not in found:
                found.append(pair)
    return found


def _model(obj: Obj) -> Object:
    """A stored object as its typed kind (status left out but for the failure that update rules read)."""
    data = {key: value for key, value in obj.items() if key != "status"}
    if obj.get("kind") == "Cluster":
        status = obj.get("status") or {}
        kept = {k: status[k] for k in ("failureReason", "failureMessage") if status.get(k)}
        if kept:
            data["status"] = kept
    model, errors = object_from_dict(data)
    if model is None:
        problem = errors[0] if errors else "unreadable"
        raise CommandError(
            f"{obj.get('kind')}/{name_of(obj)} in the management cluster cannot be read: {problem}"
        )
    return model


async def current_config(client: Client, cluster: Obj) -> ClusterConfig:
    """The configuration a cluster has now, read from the API and defaulted like a file."""
    model = _model(cluster)
    assert isinstance(model, Cluster)
    namespace = namespace_of(cluster)
    objects: list[Object] = []
    for kind, ref_name in references(cluster):
        try:
            objects.append(_model(await client.get(resource_of(kind), ref_name, namespace)))
        except NotFoundError:
            continue
    config = ClusterConfig(model, objects)
    default_config(config)
    return config


async def clusters_named(client: Client, name: str) -> list[Obj]:
    listing = await client.list_all(EKSA_CLUSTERS)
    return [c for c in listing.get("items") or [] if name_of(c) == name]


async def get_cluster(client: Client, name: str, namespace: str) -> Obj | None:
    try:
        return await client.get(EKSA_CLUSTERS, name, namespace)
    except NotFoundError:
        return None


# ---- API access ----------------------------------------------------------------------------------------


class _TracingClient(Client):
    """A client that prints every request (``-v 4`` and up)."""

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        err.print(f"api: {method} {path}{query}", markup=False)
        return await super()._request(method, path, params=params, body=body, content_type=content_type)

    def _stream(
        self, path: str, params: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> AsyncGenerator[WatchEvent, None]:
        err.print(f"api: WATCH {path}?{urllib.parse.urlencode(params)}", markup=False)
        return super()._stream(path, params, timeout)


def connect(kubeconfig: Path, session: Session, verbosity: int) -> Client:
    """A client for a kubeconfig file, or a clear error about the file."""
    if not kubeconfig.is_file():
        raise CommandError(f"kubeconfig {kubeconfig} not found; check the path given to --kubeconfig")
    try:
        config = load_kubeconfig(kubeconfig)
    except KubeConfigError as exc:
        raise CommandError(f"kubeconfig {kubeconfig}: {exc}") from None
    session.api = config.server
    return (_TracingClient if verbosity >= 4 else Client)(config)


def plane_of(kubeconfig: Path) -> planes.PlaneDir | None:
    """The local management plane a kubeconfig belongs to, if it is one of ours: the copy
    ``NAME/NAME-eks-a-cluster.kubeconfig`` or the plane's own ``NAME/.anywhere/admin.kubeconfig``."""
    folder = kubeconfig.resolve().parent
    if (
        kubeconfig.name == f"{folder.name}-eks-a-cluster.kubeconfig"
        and (folder / planes.STATE_DIR).is_dir()
        and not _netns().owns_folder(folder)  # a netns cluster's kubeconfig is the cluster's own
    ):
        return planes.PlaneDir.of(folder)
    if kubeconfig.name == "admin.kubeconfig" and folder.name == planes.STATE_DIR:
        return planes.PlaneDir(folder)
    return None


def _kubeconfig_copy(state: planes.PlaneDir) -> Path:
    folder = state.root.resolve().parent
    return folder / f"{folder.name}-eks-a-cluster.kubeconfig"


def start_plane(
    state: planes.PlaneDir, verbosity: int, *, self_cluster: bool = True, env: dict[str, str] | None = None
) -> planes.Plane:
    """The plane of a cluster folder, started if down; its kubeconfig copy refreshed."""
    name = state.root.resolve().parent.name
    if planes.running_pid(state) is None:
        what = "management" if self_cluster else "bootstrap"
        out.print(f"Starting the {what} plane of {name} (state in {_display(state.root)})")
    plane = planes.ensure(state, name, self_cluster=self_cluster, env=env)
    if plane.started:
        out.print(f"Management plane ready at {plane.url} (pid {plane.pid})")
    if verbosity >= 4:
        err.print(f"management plane: pid {plane.pid}, log {_display(state.log)}", markup=False)
    if self_cluster and plane.kubeconfig.is_file():
        write_private(_kubeconfig_copy(state), plane.kubeconfig.read_bytes())
    return plane


def plane_watchdog(state: planes.PlaneDir | None) -> Callable[[], str | None]:
    """A check, while waiting, that a local management plane is still running."""

    def check() -> str | None:
        if state is None or planes.running_pid(state) is not None:
            return None
        return (
            f"the management plane stopped (see {_display(state.log)}); run the command again to "
            "restart it and resume"
        )

    return check


def management_kubeconfig(management: str) -> Path:
    """Where a workload cluster's management cluster is reached, as EKS Anywhere looks for it."""
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return Path(env.split(os.pathsep)[0])
    local = Path(management) / f"{management}-eks-a-cluster.kubeconfig"
    if local.is_file():
        return local
    raise CommandError(
        f"management kubeconfig file not found, must be present for workload cluster operations: pass "
        f"--kubeconfig (or set KUBECONFIG, or run where {management}/ is)"
    )


def watch_hint(kubeconfig: Path, name: str, namespace: str) -> str:
    ns = f" -n {namespace}" if namespace != "default" else ""
    path = _display(kubeconfig)
    return (
        f"Watch it with: kubectl --kubeconfig {path} get clusters.anywhere.eks.amazonaws.com {name}{ns} -w\n"
        f"           or: anywhere get clusters --kubeconfig {path}"
    )


# ---- status: what the controllers report ---------------------------------------------------------------


def _minor(version: Any) -> int | None:
    match = re.match(r"^v?(\d+)\.(\d+)", str(version or ""))
    return int(match.group(2)) if match else None


def machine_ready(machine: Obj) -> bool:
    """A machine counts as ready when it runs and its Ready condition (where reported) is True."""
    status = machine.get("status") or {}
    if status.get("phase") != "Running" or _meta(machine).get("deletionTimestamp"):
        return False
    ready = conditions_of(machine).get("Ready")
    return ready is None or ready.get("status") == "True"


@dataclass(frozen=True)
class Counts:
    ready: int
    desired: int
    current: int
    """Ready machines at the version the spec asks for."""


@dataclass(frozen=True)
class Snapshot:
    """What the progress display shows, comparable to tell what changed."""

    conditions: tuple[tuple[str, str, str], ...]
    control_plane: Counts
    workers: Counts
    phases: tuple[tuple[str, int], ...]
    failure: str | None
    deleting: bool
    machines: int
    machine_failures: tuple[tuple[str, str], ...] = ()
    """(machine, failureMessage) of the machines that failed (a boot that timed out, no address)."""
    machine_waits: tuple[tuple[str, str], ...] = ()
    """(machine, Ready condition's message) of the machines not ready yet, what a timeout names."""


def _desired(cluster: Obj) -> tuple[int, dict[str, tuple[int, int | None]]]:
    """Control plane count, and per worker group (count, minor version) from the spec."""
    spec = cluster.get("spec") or {}
    control_plane = int((spec.get("controlPlaneConfiguration") or {}).get("count") or 0)
    cluster_minor = _minor(spec.get("kubernetesVersion"))
    groups: dict[str, tuple[int, int | None]] = {}
    for group in spec.get("workerNodeGroupConfigurations") or []:
        minor = _minor(group.get("kubernetesVersion")) if group.get("kubernetesVersion") else cluster_minor
        groups[str(group.get("name") or "")] = (int(group.get("count") or 0), minor)
    return control_plane, groups


def count_machines(cluster: Obj, machines: Iterable[Obj]) -> tuple[Counts, Counts]:
    name = name_of(cluster)
    control_plane_desired, groups = _desired(cluster)
    cluster_minor = _minor((cluster.get("spec") or {}).get("kubernetesVersion"))
    cp_ready = cp_current = w_ready = w_current = 0
    for machine in machines:
        labels = _meta(machine).get("labels") or {}
        ready = machine_ready(machine)
        version = _minor((machine.get("spec") or {}).get("version"))
        if CONTROL_PLANE_LABEL in labels:
            cp_ready += ready
            cp_current += ready and version == cluster_minor
            continue
        deployment = str(labels.get(MACHINE_DEPLOYMENT_NAME_LABEL, ""))
        group = deployment[len(name) + 1 :] if deployment.startswith(f"{name}-") else deployment
        target = groups.get(group, (0, cluster_minor))[1]
        w_ready += ready
        w_current += ready and version == target
    workers_desired = sum(count for count, _ in groups.values())
    return (
        Counts(cp_ready, control_plane_desired, cp_current),
        Counts(w_ready, workers_desired, w_current),
    )


def snapshot(cluster: Obj, machines: Iterable[Obj], *, generation: int = 0) -> Snapshot:
    """What the progress display shows of ``cluster``. Its failure is left out while the cluster has
    not observed ``generation`` yet: that verdict is on an earlier spec (or on objects applied
    halfway)."""
    machine_list = list(machines)
    found = conditions_of(cluster)
    ordered = [t for t in CONDITION_ORDER if t in found] + sorted(
        t for t in found if t not in CONDITION_ORDER
    )
    conditions = tuple(
        (
            t,
            str(found[t].get("status") or "Unknown"),
            str(found[t].get("message") or found[t].get("reason") or ""),
        )
        for t in ordered
    )
    phases: dict[str, int] = {}
    for machine in machine_list:
        phase = str((machine.get("status") or {}).get("phase") or "Pending")
        phases[phase] = phases.get(phase, 0) + 1
    control_plane, workers = count_machines(cluster, machine_list)
    status = cluster.get("status") or {}
    return Snapshot(
        conditions=conditions,
        control_plane=control_plane,
        workers=workers,
        phases=tuple(sorted(phases.items())),
        failure=(
            str(status["failureMessage"])
            if status.get("failureMessage") and observed_generation(cluster) >= generation
            else None
        ),
        deleting=bool(_meta(cluster).get("deletionTimestamp")),
        machines=len(machine_list),
        machine_failures=tuple(
            sorted(
                (name_of(m), str((m.get("status") or {}).get("failureMessage")))
                for m in machine_list
                if (m.get("status") or {}).get("failureMessage")
            )
        ),
        machine_waits=tuple(
            sorted(
                (name_of(m), str(ready.get("message") or ready.get("reason")))
                for m in machine_list
                if not (m.get("status") or {}).get("failureMessage")
                and (ready := conditions_of(m).get("Ready") or {}).get("status") == "False"
                and (ready.get("message") or ready.get("reason"))
            )
        ),
    )


def required_conditions(cluster: Obj) -> tuple[str, ...]:
    """What must be True for a cluster to be done; with ``skipUpgrade`` the CNI is the user's."""
    network = (cluster.get("spec") or {}).get("clusterNetwork") or {}
    cilium = (network.get("cniConfig") or {}).get("cilium") or {}
    cni = () if cilium.get("skipUpgrade") else ("DefaultCNIConfigured",)
    return ("ControlPlaneReady", *cni, "WorkersReady", "Ready")


def observed_generation(cluster: Obj) -> int:
    """The generation the controllers last gave a verdict on (a failure of an earlier one, say while
    the objects of an apply landed one by one, is not about the goal)."""
    return int((cluster.get("status") or {}).get("observedGeneration") or 0)


def settled(cluster: Obj, generation: int) -> bool:
    """The controllers reconciled ``generation`` (or later) cleanly and everything is ready."""
    observed = observed_generation(cluster)
    found = conditions_of(cluster)
    return observed >= generation and all(
        (found.get(t) or {}).get("status") == "True" for t in required_conditions(cluster)
    )


def control_plane_settled(cluster: Obj, snap: Snapshot) -> bool:
    ready = (conditions_of(cluster).get("ControlPlaneReady") or {}).get("status") == "True"
    return ready and snap.control_plane.current >= snap.control_plane.desired


def first_problem(snap: Snapshot) -> str:
    """The first condition that is not True, as the user should read it."""
    for kind, status, text in snap.conditions:
        if status != "True":
            return f"{kind}: {text}" if text else f"{kind} is {status}"
    return "waiting for the controllers to report status"


def status_text(cluster: Obj) -> str:
    """STATUS of ``get clusters``: the failure, Ready, or the first False condition's message."""
    status = cluster.get("status") or {}
    if _meta(cluster).get("deletionTimestamp"):
        return "Deleting"
    if status.get("failureMessage"):
        return f"Failed: {status['failureMessage']}"
    found = conditions_of(cluster)
    generation = int(_meta(cluster).get("generation") or 0)
    if settled(cluster, generation):
        return "Ready"
    for kind in [*CONDITION_ORDER, *sorted(found)]:
        condition = found.get(kind)
        if condition is not None and condition.get("status") != "True":
            return str(
                condition.get("message") or condition.get("reason") or f"{kind} {condition.get('status')}"
            )
    if not found:
        return "Pending"
    return "Reconciling"


# ---- progress display ----------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _machines_line(snap: Snapshot, upgrade: bool) -> str:
    def part(label: str, counts: Counts) -> str:
        text = f"{label} {counts.ready}/{counts.desired} ready"
        return f"{text} ({counts.current} up to date)" if upgrade else text

    phases = ", ".join(f"{count} {phase}" for phase, count in snap.phases) or "none yet"
    return (
        f"Machines: {part('control plane', snap.control_plane)}, {part('workers', snap.workers)} ({phases})"
    )


def changes(before: Snapshot | None, after: Snapshot) -> list[str]:
    """One line per condition that changed, and one for a new failure."""
    lines: list[str] = []
    previous = {c[0]: c for c in before.conditions} if before else {}
    for condition in after.conditions:
        if previous.get(condition[0]) != condition:
            kind, status, text = condition
            lines.append(f"{kind}: {status}" + (f" - {text}" if text and status != "True" else ""))
    if after.failure and (before is None or before.failure != after.failure):
        lines.append(f"Failure: {after.failure}")
    known = set(before.machine_failures) if before else set()
    lines += [
        f"Machine {name} failed: {message}"
        for name, message in after.machine_failures
        if (name, message) not in known
    ]
    return lines


class Progress(Protocol):
    def update(self, snap: Snapshot, elapsed: float) -> None: ...

    def note(self, text: str) -> None: ...

    def tick(self, elapsed: float) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """Progress as timestamped lines (when stdout is not a terminal): every condition change, and
    the machine counts at most once a second (machines move in bursts)."""

    MACHINES_EVERY = 1.0

    def __init__(self, console: Console, *, upgrade: bool = False) -> None:
        self.console = console
        self.upgrade = upgrade
        self.last: Snapshot | None = None
        self.elapsed = 0.0
        self.shown_machines: str | None = None
        self.shown_at = float("-inf")
        self.pending: str | None = None

    def _emit(self, text: str) -> None:
        self.console.print(f"[{_clock(self.elapsed)}] {text}", markup=False)

    def _flush(self) -> None:
        if self.pending is not None:
            self._emit(self.pending)
            self.shown_machines, self.pending, self.shown_at = self.pending, None, self.elapsed

    def update(self, snap: Snapshot, elapsed: float) -> None:
        self.elapsed = elapsed
        lines = changes(self.last, snap)
        self.last = snap
        machines = _machines_line(snap, self.upgrade)
        self.pending = machines if machines != self.shown_machines else None
        if lines or elapsed - self.shown_at >= self.MACHINES_EVERY:
            self._flush()
        for line in lines:
            self._emit(line)

    def note(self, text: str) -> None:
        self._emit(text)

    def tick(self, elapsed: float) -> None:
        self.elapsed = elapsed
        if elapsed - self.shown_at >= self.MACHINES_EVERY:
            self._flush()

    def close(self) -> None:
        self._flush()


class LiveProgress(PlainProgress):
    """On a terminal: the change lines scroll above a live panel of conditions and machines."""

    def __init__(self, console: Console, title: str, *, upgrade: bool = False) -> None:
        super().__init__(console, upgrade=upgrade)
        self.title = title
        self.live = Live(console=console, refresh_per_second=4, transient=True)
        self.live.start()

    def _emit(self, text: str) -> None:
        self.live.console.print(f"[{_clock(self.elapsed)}] {text}", markup=False)

    def _render(self) -> Group:
        header = Spinner("dots", text=Text(f"{self.title} · {_clock(self.elapsed)}", style="bold"))
        grid = Table.grid(padding=(0, 1))
        snap = self.last
        if snap is not None:
            for kind, status, text in snap.conditions:
                if status == "True":
                    mark = Text("✓", style="green")
                elif status == "False" and snap.failure:
                    mark = Text("✗", style="red")
                else:
                    mark = Text("…", style="yellow")
                grid.add_row(mark, Text(kind), Text("" if status == "True" else text, style="dim"))
            return Group(header, grid, Text(_machines_line(snap, self.upgrade)))
        return Group(header, grid)

    def update(self, snap: Snapshot, elapsed: float) -> None:
        super().update(snap, elapsed)
        self.live.update(self._render())

    def tick(self, elapsed: float) -> None:
        super().tick(elapsed)
        self.live.update(self._render())

    def close(self) -> None:
        super().close()
        self.live.stop()


@contextlib.contextmanager
def progress_display(title: str, *, upgrade: bool = False) -> Iterator[Progress]:
    display: PlainProgress = (
        LiveProgress(out, title, upgrade=upgrade) if out.is_terminal else PlainProgress(out, upgrade=upgrade)
    )
    try:
        yield display
    finally:
        display.close()


# ---- watching ------------------------------------------------------------------------------------------


class ClusterView:
    """A live copy of one anywhere Cluster and its Machines, kept by list + watch; ``changed`` is set
    on every change. Lost connections are retried (a plane may be restarting) and reported in
    ``trouble``; other API errors end :meth:`run`."""

    def __init__(self, client: Client, name: str, namespace: str) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.cluster: Obj | None = None
        self.machines: dict[str, Obj] = {}
        self.changed = asyncio.Event()
        self.synced: set[str] = set()
        self.trouble: str | None = None

    @property
    def ready(self) -> bool:
        return self.synced == {"cluster", "machines"}

    async def run(self) -> None:
        await asyncio.gather(
            self._follow(
                "cluster", EKSA_CLUSTERS, self.namespace, field_selector=f"metadata.name={self.name}"
            ),
            self._follow(
                "machines", MACHINES, SYSTEM_NAMESPACE, label_selector=f"{CLUSTER_NAME_LABEL}={self.name}"
            ),
        )

    def _store(self, what: str, items: list[Obj]) -> None:
        if what == "cluster":
            self.cluster = next((i for i in items if name_of(i) == self.name), None)
        else:
            self.machines = {name_of(i): i for i in items}
        self.synced.add(what)
        self.changed.set()

    def _event(self, what: str, event: WatchEvent) -> None:
        gone = event.type == "DELETED"
        if what == "cluster":
            if name_of(event.object) == self.name:
                self.cluster = None if gone else event.object
        elif gone:
            self.machines.pop(name_of(event.object), None)
        else:
            self.machines[name_of(event.object)] = event.object
        self.changed.set()

    async def _follow(
        self,
        what: str,
        resource: Resource,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> None:
        delay = 0.5
        while True:
            try:
                listing = await self.client.list(
                    resource, namespace, label_selector=label_selector, field_selector=field_selector
                )
                self._store(what, list(listing.get("items") or []))
                if self.trouble is not None:
                    self.trouble = None
                    self.changed.set()
                delay = 0.5
                version = str(_meta(listing).get("resourceVersion") or "")
                while True:
                    async with self.client.watch(
                        resource,
                        namespace,
                        resource_version=version,
                        label_selector=label_selector,
                        field_selector=field_selector,
                        timeout_seconds=300,
                    ) as events:
                        async for event in events:
                            version = str(_meta(event.object).get("resourceVersion") or version)
                            if event.type in ("ADDED", "MODIFIED", "DELETED"):
                                self._event(what, event)
            except Expired:
                log.debug("watch of %s expired; listing again", resource)
                continue
            except TransportError as exc:
                log.debug("watch of %s: %s", resource, exc)
                if self.trouble is None:
                    self.trouble = f"lost the connection to the API ({exc}); retrying"
                    self.changed.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


@dataclass
class Goal:
    """What a wait is for: a generation of a cluster reconciled and ready, within the timeouts."""

    name: str
    namespace: str
    generation: int
    timeouts: Timeouts
    hint: str
    upgrade: bool = False
    stale_failure: str | None = None
    """A failureMessage from before the apply (the controllers have yet to clear or confirm it)."""


async def wait_until_ready(
    client: Client, goal: Goal, progress: Progress, alive: Callable[[], str | None]
) -> Obj:
    """Watch until the goal is met; a failureMessage, a timeout or a dead plane end it as an error."""
    view = ClusterView(client, goal.name, goal.namespace)
    task = asyncio.create_task(view.run())
    start = time.monotonic()
    control_plane_done: float | None = None
    stale_since: float | None = None
    trouble: str | None = None
    cluster: Obj | None = None
    snap: Snapshot | None = None
    try:
        while True:
            view.changed.clear()
            if task.done():
                task.result()  # raises what ended the watches
            now = time.monotonic()
            if view.trouble != trouble:
                trouble = view.trouble
                progress.note(trouble or "connection to the API restored")
            if view.ready:
                cluster = view.cluster
                if cluster is None:
                    raise CommandError(
                        f"cluster {goal.name} was deleted from namespace {goal.namespace} while waiting for it"
                    )
                snap = snapshot(cluster, view.machines.values(), generation=goal.generation)
                progress.update(snap, now - start)
                if settled(cluster, goal.generation):
                    return cluster
                log.debug("not settled: %s", first_problem(snap))
                if snap.failure:
                    if snap.failure != goal.stale_failure:
                        raise _failed(goal, cluster)
                    stale_since = stale_since or now
                    if now - stale_since > STALE_FAILURE_GRACE:
                        raise _failed(goal, cluster)
                elif goal.stale_failure is not None:
                    goal.stale_failure = None  # cleared: should it come back, it is about this spec
                if control_plane_done is None and control_plane_settled(cluster, snap):
                    control_plane_done = now
            else:
                progress.tick(now - start)
            _check_deadline(goal, cluster, snap, start, control_plane_done, now)
            problem = alive()
            if problem is not None:
                raise CommandError(problem)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(view.changed.wait(), TICK)
            progress.tick(time.monotonic() - start)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _failed(goal: Goal, cluster: Obj) -> CommandError:
    status = cluster.get("status") or {}
    reason = f" ({status['failureReason']})" if status.get("failureReason") else ""
    return CommandError(
        f"cluster {goal.name} failed{reason}: {status.get('failureMessage')}; "
        "fix the configuration and apply it again, or delete the cluster"
    )


def _check_deadline(
    goal: Goal,
    cluster: Obj | None,
    snap: Snapshot | None,
    start: float,
    control_plane_done: float | None,
    now: float,
) -> None:
    """EKS Anywhere's waits: the control plane within --control-plane-wait-timeout (plus the etcd
    wait with external etcd); then the rest within max(30m, --per-machine-wait-timeout * machines)."""
    timeouts = goal.timeouts
    if control_plane_done is None or snap is None:
        if timeouts.control_plane is None:
            return
        limit = timeouts.control_plane
        external = ((cluster or {}).get("spec") or {}).get("externalEtcdConfiguration")
        if external and timeouts.external_etcd is not None:
            limit += timeouts.external_etcd
        if now - start > limit:
            raise _timed_out(goal, "the control plane", limit, snap)
        return
    if timeouts.per_machine is None:
        return
    machines = snap.control_plane.desired + snap.workers.desired
    limit = max(MACHINES_MIN_WAIT, timeouts.per_machine * machines)
    if now - control_plane_done > limit:
        raise _timed_out(goal, "the worker nodes", limit, snap)


def _timed_out(goal: Goal, what: str, limit: float, snap: Snapshot | None) -> CommandError:
    problem = first_problem(snap) if snap is not None else "no status read from the API yet"
    if snap is not None and snap.machine_failures:
        problem += "".join(
            f"; machine {name} failed: {message}" for name, message in snap.machine_failures[:3]
        )
    if snap is not None and snap.machine_waits:
        problem += "".join(f"; machine {name}: {message}" for name, message in snap.machine_waits[:3])
    return CommandError(
        f"timed out after {format_duration(limit)} waiting for {what} of cluster {goal.name} "
        f"({problem}); nothing was undone and the cluster keeps reconciling in the background. "
        + goal.hint.replace("\n", " ")
    )


# ---- applying --------------------------------------------------------------------------------------------


async def apply_manifest(client: Client, documents: list[Obj], namespace: str) -> Obj:
    """Server-side apply every object (the Cluster last); returns the Cluster as stored."""
    if namespace != "default":
        try:
            await client.get(NAMESPACES, namespace)
        except NotFoundError:
            await client.create(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            )
    cluster: Obj = {}
    for document in documents:
        log.debug("applying %s/%s in namespace %s", document.get("kind"), name_of(document), namespace)
        result = await client.patch(
            resource_of(str(document["kind"])),
            name_of(document),
            document,
            namespace,
            type="apply",
            field_manager=FIELD_MANAGER,
            force=True,
        )
        if document.get("kind") == "Cluster":
            cluster = result
    return cluster


@dataclass
class Rollout:
    """One apply-and-wait: what to apply, where to write it, how to describe it."""

    spec: Spec
    kubeconfig: Path
    verb: str  # "create" or "upgrade"
    timeouts: Timeouts
    session: Session
    spec_out: Path | None
    alive: Callable[[], str | None]
    plane_note: str = ""
    command: str = ""
    banner: str = ""


async def apply_and_wait(client: Client, rollout: Rollout, existing: Obj | None) -> Obj:
    """Check the change against the cluster as it is, apply it, wait for it; returns the Cluster."""
    spec = rollout.spec
    name, namespace = spec.name, spec.namespace
    current = await current_config(client, existing) if existing is not None else None
    if current is not None:
        spec.refuse(validate_update(current, spec.config), "update")
    if rollout.banner:
        out.print(rollout.banner, markup=False)
    documents = manifest(spec.config)
    hint = watch_hint(rollout.kubeconfig, name, namespace)
    rollout.session.on_interrupt = lambda: (
        f"interrupted while applying {spec.path}; some objects may be applied. "
        f"Run `{rollout.command}` again to finish."
    )
    before = int(_meta(existing).get("generation") or 0) if existing else 0
    stale = (existing.get("status") or {}).get("failureMessage") if existing else None
    await _vsphere().store_credentials(client, spec)
    await _tinkerbell().store_hardware(client, spec, current)
    cluster = await apply_manifest(client, documents, namespace)
    generation = int(_meta(cluster).get("generation") or 1)
    if rollout.spec_out is not None:
        rollout.spec_out.parent.mkdir(parents=True, exist_ok=True)
        rollout.spec_out.write_text(dump_manifest(documents))
    if existing is not None and generation == before:
        out.print(f"No changes to apply: {spec.path} matches cluster {name}; waiting until it is ready")
    else:
        out.print(f"Applied {len(documents)} object(s) from {spec.path} (generation {generation})")
    rollout.session.on_interrupt = lambda: (
        f"Interrupted: nothing was undone; cluster {name} keeps reconciling in the background"
        f"{rollout.plane_note}.\n{hint}\nRun `{rollout.command}` again to wait for it."
    )
    goal = Goal(
        name,
        namespace,
        generation,
        rollout.timeouts,
        hint,
        upgrade=rollout.verb == "upgrade",
        # Even an unchanged spec gets the grace: its failure may be the infrastructure's (a BMC's
        # credentials, fixed since), which the controllers clear once they try again.
        stale_failure=str(stale) if stale else None,
    )
    title = f"{'Upgrading' if goal.upgrade else 'Creating'} cluster {name}"
    with progress_display(title, upgrade=goal.upgrade) as progress:
        return await wait_until_ready(client, goal, progress, rollout.alive)


def _command_line(verb: str, spec: Spec, kubeconfig: Path | None) -> str:
    flag = f" --kubeconfig {_display(kubeconfig)}" if kubeconfig is not None else ""
    return f"anywhere {verb} cluster -f {spec.path}{flag}"


# ---- create ---------------------------------------------------------------------------------------------


@create_app.command("cluster")
def create_cluster(
    file: FileOption,
    kubeconfig: KubeconfigOption = None,
    hardware_csv: HardwareCSVOption = None,
    verbosity: VerbosityOption = 0,
    control_plane_wait_timeout: ControlPlaneWaitOption = DEFAULT_CONTROL_PLANE_WAIT,
    external_etcd_wait_timeout: ExternalEtcdWaitOption = DEFAULT_EXTERNAL_ETCD_WAIT,
    per_machine_wait_timeout: PerMachineWaitOption = DEFAULT_PER_MACHINE_WAIT,
    unhealthy_machine_timeout: UnhealthyMachineOption = None,
    node_startup_timeout: NodeStartupOption = None,
    no_timeouts: NoTimeoutsOption = False,
) -> None:
    """Create a cluster and wait until it is ready.

    Without --kubeconfig the cluster is self-managed: its management plane runs in the background
    with its state in NAME/.anywhere. With --kubeconfig it is a workload cluster of that management
    cluster. Writes NAME/NAME-eks-a-cluster.kubeconfig and NAME/NAME-eks-a-cluster.yaml.
    """
    _setup_logging(verbosity)
    session = Session()

    def body() -> None:
        timeouts = parse_timeouts(
            control_plane_wait_timeout,
            external_etcd_wait_timeout,
            per_machine_wait_timeout,
            unhealthy_machine_timeout,
            node_startup_timeout,
            no_timeouts,
        )
        spec = read_spec(file, timeouts, for_create=True)
        _vsphere().preflight(spec)
        _tinkerbell().preflight(
            spec, hardware_csv, for_create=True, workload=kubeconfig is not None or spec.managed_by_other
        )
        if kubeconfig is not None or spec.managed_by_other:
            _create_workload(spec, kubeconfig, timeouts, verbosity, session)
        elif _netns().is_netns(spec):
            _netns().create_self_managed(spec, timeouts, verbosity, session)
        else:
            _create_self_managed(spec, timeouts, verbosity, session)

    run_command(session, body)


def prepare_cluster_folder(name: str, state: planes.PlaneDir, kubeconfig_out: Path) -> bool:
    """Check that NAME/ can take a new self-managed cluster, or holds one being created (resumed:
    True); make its plane folder, remembering whether create made NAME/ itself."""
    folder = state.root.parent
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder} exists and is not a folder; the cluster's files go in {name}/: move it")
    resume = state.exists()
    if not resume and kubeconfig_out.is_file() and kubeconfig_out.stat().st_size:
        raise CommandError(
            f"old cluster config file exists under {name}/ ({kubeconfig_out}), please use a different "
            "clusterName to proceed, or move that folder away"
        )
    folder_created = not folder.exists()
    state.root.mkdir(parents=True, exist_ok=True)
    planes.record_created(state, folder_created=folder_created)
    return resume


def _create_self_managed(spec: Spec, timeouts: Timeouts, verbosity: int, session: Session) -> None:
    name = spec.name
    folder = Path(name)
    state = planes.PlaneDir.of(folder)
    kubeconfig_out = folder / f"{name}-eks-a-cluster.kubeconfig"
    spec_out = folder / f"{name}-eks-a-cluster.yaml"
    command = _command_line("create", spec, None)
    if prepare_cluster_folder(name, state, kubeconfig_out):
        out.print(
            f"Resuming the creation of cluster {name}: {_display(state.root)} exists from an earlier run "
            "(starting its management plane if it is down, applying the file again, waiting)"
        )
    else:
        out.print(
            f"Creating self-managed cluster {name} (management plane state in {name}/{planes.STATE_DIR})"
        )
    session.on_interrupt = lambda: (
        "interrupted before anything was applied; the management plane may be running. "
        f"Run `{command}` again to resume, or `anywhere delete cluster {name}` to remove {name}/."
    )
    plane = start_plane(state, verbosity)
    write_private(kubeconfig_out, plane.kubeconfig.read_bytes())
    rollout = Rollout(
        spec,
        kubeconfig_out,
        "create",
        timeouts,
        session,
        spec_out,
        plane_watchdog(state),
        plane_note=f" (its management plane runs on: pid {plane.pid}, log {_display(state.log)})",
        command=command,
    )

    async def flow() -> None:
        async with connect(kubeconfig_out, session, verbosity) as client:
            existing = await get_cluster(client, name, spec.namespace)
            await apply_and_wait(client, rollout, existing)

    asyncio.run(flow())
    write_private(kubeconfig_out, plane.kubeconfig.read_bytes())
    out.print(f"Cluster {name} is ready")
    out.print(
        f"Kubeconfig: {_display(kubeconfig_out)}  (e.g. kubectl --kubeconfig {_display(kubeconfig_out)} get nodes)"
    )
    out.print(f"Configuration as applied: {_display(spec_out)}")


async def resolve_management(client: Client, spec: Spec, api: str) -> str:
    """The management cluster a workload cluster goes under: the one the file names, checked
    against the API; else the API's only self-managed cluster."""
    listing = await client.list_all(EKSA_CLUSTERS)
    managers = sorted({name_of(c) for c in listing.get("items") or [] if management_of(c) == name_of(c)})
    known = ", ".join(managers)
    if spec.explicit_management == spec.name:
        raise CommandError(
            f"{spec.path}: cluster {spec.name} names itself as its management cluster (self-managed); for a "
            f"workload cluster set spec.managementCluster.name to {known or 'the management cluster'}, or "
            "drop --kubeconfig"
        )
    if not managers:
        raise CommandError(
            f"the API at {api} holds no management cluster (a self-managed Cluster); check --kubeconfig"
        )
    if spec.explicit_management is not None:
        if spec.explicit_management not in managers:
            raise CommandError(
                f"{spec.path}: spec.managementCluster.name is {spec.explicit_management!r} but the management "
                f"cluster at {api} is {known}; fix the file or --kubeconfig"
            )
        return spec.explicit_management
    if len(managers) > 1:
        raise CommandError(
            f"the API at {api} holds several management clusters ({known}); set spec.managementCluster.name"
        )
    return managers[0]


def _create_workload(
    spec: Spec, kubeconfig: Path | None, timeouts: Timeouts, verbosity: int, session: Session
) -> None:
    name, namespace = spec.name, spec.namespace
    management_config = (
        kubeconfig if kubeconfig is not None else management_kubeconfig(spec.explicit_management or "")
    )
    state = plane_of(management_config)
    if state is not None:
        start_plane(state, verbosity)
    ensure_reachable(management_config)
    folder = Path(name)
    spec_out = folder / f"{name}-eks-a-cluster.yaml"
    kubeconfig_out = folder / f"{name}-eks-a-cluster.kubeconfig"
    rollout = Rollout(
        spec,
        management_config,
        "create",
        timeouts,
        session,
        spec_out,
        plane_watchdog(state),
        command=_command_line("create", spec, kubeconfig),
    )

    async def flow() -> None:
        async with connect(management_config, session, verbosity) as client:
            management = await resolve_management(client, spec, session.api)
            spec.config.cluster.spec.management_cluster = ManagementCluster(name=management)
            spec.refuse(validate_config(spec.config), "validation")
            same_name = await clusters_named(client, name)
            elsewhere = [namespace_of(c) for c in same_name if namespace_of(c) != namespace]
            if elsewhere:
                raise CommandError(
                    f"a cluster named {name} exists already in namespace {elsewhere[0]} of the management "
                    "cluster; cluster names must be unique in a management cluster: pick another name"
                )
            existing = next(iter(same_name), None)
            if existing is not None and not spec_out.is_file():
                raise CommandError(
                    f"cluster {name} already exists in namespace {namespace} of management cluster {management}; "
                    f"change it with `anywhere upgrade cluster -f {spec.path} --kubeconfig {_display(management_config)}`"
                )
            if existing is not None:
                out.print(
                    f"Resuming the creation of workload cluster {name}: applying the file again and waiting"
                )
            else:
                out.print(
                    f"Creating workload cluster {name} through management cluster {management} ({session.api})"
                )
            await apply_and_wait(client, rollout, existing)
            data = await workload_kubeconfig(client, name)
            if not await _netns().write_workload_access(
                client, management_config, name, data, kubeconfig_out
            ):
                write_private(kubeconfig_out, data)

    asyncio.run(flow())
    out.print(f"Cluster {name} is ready")
    out.print(
        f"Kubeconfig: {_display(kubeconfig_out)}  (e.g. kubectl --kubeconfig {_display(kubeconfig_out)} get nodes)"
    )
    out.print(f"Configuration as applied: {_display(spec_out)}")


async def workload_kubeconfig(client: Client, name: str) -> bytes:
    """The workload cluster's kubeconfig from its Secret in the management cluster (waiting a little
    for it: the Cluster may report Ready a moment before the Secret is visible)."""
    secret_name = f"{name}-kubeconfig"

    def decode(secret: Obj) -> bytes:
        value = (secret.get("data") or {}).get("value")
        try:
            return base64.b64decode(str(value or ""), validate=True)
        except (binascii.Error, ValueError):
            raise CommandError(
                f"Secret {SYSTEM_NAMESPACE}/{secret_name} holds no readable kubeconfig"
            ) from None

    async def wait() -> bytes:
        while True:
            try:
                return decode(await client.get(SECRETS, secret_name, SYSTEM_NAMESPACE))
            except NotFoundError:
                pass
            async with client.watch(
                SECRETS, SYSTEM_NAMESPACE, field_selector=f"metadata.name={secret_name}", timeout_seconds=10
            ) as events:
                async for event in events:
                    if event.type in ("ADDED", "MODIFIED"):
                        return decode(event.object)

    try:
        return await asyncio.wait_for(wait(), SECRET_WAIT)
    except TimeoutError:
        raise CommandError(
            f"cluster {name} is ready but its kubeconfig Secret {SYSTEM_NAMESPACE}/{secret_name} did not appear "
            f"within {SECRET_WAIT:g} s; check the management cluster's controllers"
        ) from None


# ---- upgrade ----------------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where a cluster's management API is, and the local plane behind it (if any)."""

    kubeconfig: Path
    state: planes.PlaneDir | None


def target_for(spec: Spec, kubeconfig: Path | None, verbosity: int) -> Target:
    """The management API of an existing cluster: --kubeconfig; the management cluster's for a
    workload cluster; the cluster's own folder for a self-managed one (its plane started if down)."""
    if kubeconfig is not None:
        path = kubeconfig
    elif spec.managed_by_other:
        path = management_kubeconfig(spec.explicit_management or "")
    elif _netns().owns_folder(Path(spec.name)) and not planes.PlaneDir.of(Path(spec.name)).exists():
        path = Path(spec.name) / f"{spec.name}-eks-a-cluster.kubeconfig"  # it manages itself
    else:
        own = planes.PlaneDir.of(Path(spec.name))
        if not own.exists():
            raise CommandError(
                f"no {spec.name}/{planes.STATE_DIR} in {Path.cwd()}: run this where the cluster's folder is, or "
                "pass --kubeconfig"
            )
        path = _kubeconfig_copy(own)
    state = plane_of(path)
    if state is not None:
        start_plane(state, verbosity)
    ensure_reachable(path)
    return Target(path, state)


def _vsphere() -> types.ModuleType:
    """The vSphere provider's CLI steps, imported when used (it imports this module, and pyVmomi)."""
    return importlib.import_module("anywhere.cli.vsphere")


def _tinkerbell() -> types.ModuleType:
    """The bare metal provider's CLI steps (hardware CSV, BMC checks), imported when used (it
    imports this module)."""
    return importlib.import_module("anywhere.cli.tinkerbell")


def _netns() -> types.ModuleType:
    """The netns provider's self-managed flow, imported when used (it imports this module)."""
    return importlib.import_module("anywhere.cli.netns")


def ensure_reachable(kubeconfig: Path) -> None:
    """A netns cluster's own kubeconfig goes through a forwarder on this host: restart it if it
    stopped, so that commands against a self-managed netns cluster find it."""
    folder = kubeconfig.resolve().parent
    if kubeconfig.name == f"{folder.name}-eks-a-cluster.kubeconfig" and _netns().owns_folder(folder):
        asyncio.run(_netns().ensure_forwarder(folder.name, folder))


async def existing_cluster(client: Client, spec: Spec, session: Session) -> Obj:
    cluster = await get_cluster(client, spec.name, spec.namespace)
    if cluster is None:
        raise CommandError(
            f"cluster {spec.name} not found in namespace {spec.namespace} of the management cluster "
            f"({session.api}); create it with `anywhere create cluster -f {spec.path}`"
        )
    if spec.explicit_management is None:  # the file leaves it to the default: keep what the cluster has
        spec.config.cluster.spec.management_cluster = ManagementCluster(name=management_of(cluster))
    return cluster


@upgrade_app.command("cluster")
def upgrade_cluster(
    file: FileOption,
    kubeconfig: KubeconfigOption = None,
    hardware_csv: HardwareCSVOption = None,
    verbosity: VerbosityOption = 0,
    control_plane_wait_timeout: ControlPlaneWaitOption = DEFAULT_CONTROL_PLANE_WAIT,
    external_etcd_wait_timeout: ExternalEtcdWaitOption = DEFAULT_EXTERNAL_ETCD_WAIT,
    per_machine_wait_timeout: PerMachineWaitOption = DEFAULT_PER_MACHINE_WAIT,
    unhealthy_machine_timeout: UnhealthyMachineOption = None,
    node_startup_timeout: NodeStartupOption = None,
    no_timeouts: NoTimeoutsOption = False,
) -> None:
    """Upgrade a cluster to the configuration in FILE and wait until it is ready.

    The change is checked against the cluster as it is (immutable fields, version skew), applied,
    and followed until ControlPlaneReady, DefaultCNIConfigured, WorkersReady and Ready.
    """
    _setup_logging(verbosity)
    session = Session()

    def body() -> None:
        timeouts = parse_timeouts(
            control_plane_wait_timeout,
            external_etcd_wait_timeout,
            per_machine_wait_timeout,
            unhealthy_machine_timeout,
            node_startup_timeout,
            no_timeouts,
        )
        spec = read_spec(file, timeouts)
        _vsphere().preflight(spec)
        _tinkerbell().preflight(spec, hardware_csv, for_create=False, workload=True)
        target = target_for(spec, kubeconfig, verbosity)
        folder = Path(spec.name)
        spec_out = folder / f"{spec.name}-eks-a-cluster.yaml"
        rollout = Rollout(
            spec,
            target.kubeconfig,
            "upgrade",
            timeouts,
            session,
            spec_out if spec_out.is_file() else None,
            plane_watchdog(target.state),
            command=_command_line("upgrade", spec, kubeconfig),
        )

        async def flow() -> None:
            async with connect(target.kubeconfig, session, verbosity) as client:
                existing = await existing_cluster(client, spec, session)
                rollout.banner = f"Upgrading cluster {spec.name} ({session.api})"
                await apply_and_wait(client, rollout, existing)

        asyncio.run(flow())
        out.print(f"Cluster {spec.name} is upgraded and ready")

    run_command(session, body)


# ---- upgrade plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupChange:
    group: str
    machines: str
    change: str
    rolls: bool = False
    """Whether new machines replace the group's machines (its version or machine config changes)."""


@dataclass(frozen=True)
class UpgradePlan:
    components: list[tuple[str, str, str]]
    groups: list[GroupChange]

    @property
    def empty(self) -> bool:
        return not self.components


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return str(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a JSON value; lists of objects by index, lists of scalars whole."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def _diff(label: str, old: Any, new: Any) -> list[tuple[str, str, str]]:
    before, after = _flatten(old), _flatten(new)
    rows: list[tuple[str, str, str]] = []
    for path in [*before, *(p for p in after if p not in before)]:
        if before.get(path) != after.get(path):
            where = f"{label} {path}" if path else label
            rows.append((where.strip(), _text(before.get(path)), _text(after.get(path))))
    return rows


def _ref_text(ref: Any) -> str | None:
    return f"{ref.kind}/{ref.name}" if ref is not None and ref.kind and ref.name else None


def _object_spec(config: ClusterConfig, ref: Any) -> Any:
    obj = config.get(ref.kind, ref.name) if ref is not None else None
    return obj.to_dict().get("spec") if obj is not None else None


def _machine_config_change(old: ClusterConfig, new: ClusterConfig, old_ref: Any, new_ref: Any) -> str | None:
    before, after = _ref_text(old_ref), _ref_text(new_ref)
    if before != after:
        return f"machine config {before or '-'} -> {after or '-'}"
    if _object_spec(old, old_ref) != _object_spec(new, new_ref):
        return f"machine config {after} changed"
    return None


def _scale(before: int, after: int) -> str | None:
    if before == after:
        return None
    return f"scale {'up' if after > before else 'down'} {before} -> {after}"


def plan_upgrade(old: ClusterConfig, new: ClusterConfig) -> UpgradePlan:
    """What moving from ``old`` to ``new`` changes, and which machine groups roll or scale.

    A group rolls (new machines replace the old) when its Kubernetes version or its machine config
    changes; it scales when only its count does."""
    cluster_old, cluster_new = old.cluster.spec, new.cluster.spec
    cp_old = cluster_old.control_plane_configuration
    cp_new = cluster_new.control_plane_configuration
    rows: list[tuple[str, str, str]] = []
    rows += _diff("Kubernetes version", cluster_old.kubernetes_version, cluster_new.kubernetes_version)
    rows += _diff("EKS Anywhere version", cluster_old.eksa_version, cluster_new.eksa_version)
    count_old = cp_old.count if cp_old and cp_old.count is not None else 0
    count_new = cp_new.count if cp_new and cp_new.count is not None else 0
    rows += _diff("Control plane machines", count_old, count_new)
    cp_ref_old = cp_old.machine_group_ref if cp_old else None
    cp_ref_new = cp_new.machine_group_ref if cp_new else None
    rows += _diff("Control plane machine config", _ref_text(cp_ref_old), _ref_text(cp_ref_new))

    groups_old = {g.name or "": g for g in old.cluster.worker_groups}
    groups_new = {g.name or "": g for g in new.cluster.worker_groups}
    for group_name in [*groups_new, *(n for n in groups_old if n not in groups_new)]:
        before, after = groups_old.get(group_name), groups_new.get(group_name)
        label = f"Worker group {group_name}"
        if before is None or after is None:
            rows.append(
                (
                    label,
                    f"{before.count} machines" if before else "-",
                    f"{after.count} machines" if after else "-",
                )
            )
            continue
        rows += _diff(f"{label} machines", before.count, after.count)
        rows += _diff(
            f"{label} Kubernetes version",
            before.kubernetes_version or cluster_old.kubernetes_version,
            after.kubernetes_version or cluster_new.kubernetes_version,
        )
        rows += _diff(
            f"{label} machine config", _ref_text(before.machine_group_ref), _ref_text(after.machine_group_ref)
        )
        skip = ("name", "count", "kubernetesVersion", "machineGroupRef")
        rows += _diff(
            label,
            {k: v for k, v in before.to_dict().items() if k not in skip},
            {k: v for k, v in after.to_dict().items() if k not in skip},
        )

    spec_skip = ("kubernetesVersion", "eksaVersion", "workerNodeGroupConfigurations")
    cp_skip = ("count", "machineGroupRef")

    def rest(cluster_spec: Any) -> Obj:
        data = {k: v for k, v in cluster_spec.to_dict().items() if k not in spec_skip}
        if "controlPlaneConfiguration" in data:
            data["controlPlaneConfiguration"] = {
                k: v for k, v in data["controlPlaneConfiguration"].items() if k not in cp_skip
            }
        return data

    rows += _diff("Cluster", rest(cluster_old), rest(cluster_new))
    configs = sorted({*(o.ref for o in old.objects), *(o.ref for o in new.objects)})
    for ref in configs:
        kind, _, ref_name = ref.partition("/")
        before_obj, after_obj = old.get(kind, ref_name), new.get(kind, ref_name)
        rows += _diff(
            ref,
            before_obj.to_dict().get("spec") if before_obj else None,
            after_obj.to_dict().get("spec") if after_obj else None,
        )

    groups: list[GroupChange] = []
    reasons: list[str] = []
    if (cluster_old.kubernetes_version or "") != (cluster_new.kubernetes_version or ""):
        reasons.append(f"Kubernetes {cluster_old.kubernetes_version} -> {cluster_new.kubernetes_version}")
    machine_change = _machine_config_change(old, new, cp_ref_old, cp_ref_new)
    if machine_change:
        reasons.append(machine_change)
    strategy = control_plane_rollout(new.cluster)
    surge = strategy.rolling_update.max_surge if strategy.rolling_update else None
    how = f"rolling, maxSurge {surge}" if strategy.type == "RollingUpdate" else f"{strategy.type}"
    groups.append(_group_change("control plane", count_old, count_new, reasons, how))
    for group_name in [*groups_new, *(n for n in groups_old if n not in groups_new)]:
        before, after = groups_old.get(group_name), groups_new.get(group_name)
        if after is None:
            groups.append(
                GroupChange(
                    group_name, f"{before.count if before else 0} -> 0", "removed: delete its machines"
                )
            )
            continue
        if before is None:
            groups.append(
                GroupChange(group_name, f"0 -> {after.count}", f"new: create {after.count} machine(s)")
            )
            continue
        reasons = []
        version_old = before.kubernetes_version or cluster_old.kubernetes_version
        version_new = after.kubernetes_version or cluster_new.kubernetes_version
        if version_old != version_new:
            reasons.append(f"Kubernetes {version_old} -> {version_new}")
        machine_change = _machine_config_change(old, new, before.machine_group_ref, after.machine_group_ref)
        if machine_change:
            reasons.append(machine_change)
        rollout = worker_rollout(after)
        params = rollout.rolling_update
        how = (
            f"rolling, maxSurge {params.max_surge}, maxUnavailable {params.max_unavailable}"
            if rollout.type == "RollingUpdate" and params is not None
            else f"{rollout.type}"
        )
        groups.append(_group_change(group_name, before.count or 0, after.count or 0, reasons, how))
    return UpgradePlan(rows, groups)


def _group_change(group: str, before: int, after: int, reasons: list[str], how: str) -> GroupChange:
    machines = str(after) if before == after else f"{before} -> {after}"
    parts: list[str] = []
    if reasons:
        parts.append(f"roll: {'; '.join(reasons)} ({how})")
    scale = _scale(before, after)
    if scale:
        parts.append(scale)
    return GroupChange(group, machines, ", ".join(parts) or "no change", rolls=bool(reasons))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A kubectl-style table: left-aligned columns, three spaces apart."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "   ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


@plan_app.command("cluster")
def upgrade_plan_cluster(
    file: FileOption,
    kubeconfig: KubeconfigOption = None,
    verbosity: VerbosityOption = 0,
) -> None:
    """Show what upgrading to FILE would change, without changing anything.

    A table of components (current, new), then which machine groups would roll or scale.
    """
    _setup_logging(verbosity)
    session = Session()

    def body() -> None:
        spec = read_spec(file)
        target = target_for(spec, kubeconfig, verbosity)

        async def flow() -> UpgradePlan:
            async with connect(target.kubeconfig, session, verbosity) as client:
                existing = await existing_cluster(client, spec, session)
                old = await current_config(client, existing)
                spec.refuse(validate_update(old, spec.config), "update")
                return plan_upgrade(old, spec.config)

        plan = asyncio.run(flow())
        where = f" (namespace {spec.namespace})" if spec.namespace != "default" else ""
        if plan.empty:
            out.print(f"No changes: {file} matches cluster {spec.name}{where}.")
            return
        out.print(f"Upgrade plan for cluster {spec.name}{where}:\n", markup=False)
        out.print(table(["COMPONENT", "CURRENT", "NEW"], [list(r) for r in plan.components]), markup=False)
        out.print("", markup=False)
        out.print(
            table(
                ["MACHINE GROUP", "MACHINES", "CHANGE"],
                [[g.group, g.machines, g.change] for g in plan.groups],
            ),
            markup=False,
        )
        out.print(f"\nApply it with: {_command_line('upgrade', spec, kubeconfig)}", markup=False)

    run_command(session, body)


# ---- delete -----------------------------------------------------------------------------------------------


@delete_app.command("cluster")
def delete_cluster(
    name: Annotated[str | None, typer.Argument(help="The cluster's name.", show_default=False)] = None,
    file: Annotated[
        Path | None,
        typer.Option("--filename", "-f", "--file", help="The cluster configuration, if no name is given."),
    ] = None,
    kubeconfig: KubeconfigOption = None,
    verbosity: VerbosityOption = 0,
) -> None:
    """Delete a cluster and wait until it is gone.

    A self-managed cluster's management plane is then stopped and NAME/ removed; a workload cluster
    is deleted through its management cluster. A management cluster that still manages workload
    clusters is refused.
    """
    _setup_logging(verbosity)
    session = Session()

    def body() -> None:
        spec: Spec | None = None
        if file is not None:
            spec = read_spec(file)
            if name is not None and name != spec.name:
                raise CommandError(f"{file} is cluster {spec.name}, not {name}; give one or make them agree")
        cluster_name = name if name is not None else spec.name if spec is not None else None
        if cluster_name is None:
            raise CommandError("please provide either a valid <cluster-name> or -f <config-file>")
        if not CLUSTER_NAME.match(cluster_name):
            raise CommandError(f"{cluster_name!r} is not a valid cluster name")
        _delete(cluster_name, spec, kubeconfig, verbosity, session)

    run_command(session, body)


def _delete(name: str, spec: Spec | None, kubeconfig: Path | None, verbosity: int, session: Session) -> None:
    folder = Path(name)
    own = planes.PlaneDir.of(folder)
    if kubeconfig is None and _netns().owns_folder(folder):
        _netns().delete_self_managed(name, verbosity, session)
        return
    if kubeconfig is not None:
        path = kubeconfig
    elif own.exists():
        path = own.kubeconfig
        if _kubeconfig_copy(own).is_file():
            path = _kubeconfig_copy(own)
    elif spec is not None and spec.managed_by_other:
        path = management_kubeconfig(spec.explicit_management or "")
    else:
        raise CommandError(
            f"no {name}/{planes.STATE_DIR} in {Path.cwd()} (a self-managed cluster's folder) and no --kubeconfig: "
            f"run this where {name}/ is, or pass --kubeconfig MGMT for a workload cluster"
        )
    state = plane_of(path)
    self_delete = own.exists() and _same(state, own)
    folder_created = planes.folder_was_created(own)
    if state is not None:
        start_plane(state, verbosity)
    ensure_reachable(path)
    namespace = spec.namespace if spec is not None else None
    hint = watch_hint(path, name, namespace or "default")
    extra = [(o.kind, o.name) for o in spec.config.objects] if spec is not None else []

    async def flow() -> bool:
        async with connect(path, session, verbosity) as client:
            found = await clusters_named(client, name)
            if namespace is not None:
                found = [c for c in found if namespace_of(c) == namespace]
            if not found:
                if self_delete:
                    out.print(f"No Cluster {name} in its management plane: nothing to delete there")
                    return False
                raise CommandError(f"cluster {name} not found in the management cluster ({session.api})")
            if len(found) > 1:
                spaces = ", ".join(namespace_of(c) for c in found)
                raise CommandError(
                    f"clusters named {name} exist in namespaces {spaces}; pass -f FILE to say which"
                )
            cluster = found[0]
            listing = await client.list_all(EKSA_CLUSTERS)
            everyone = list(listing.get("items") or [])
            managed = [c for c in everyone if management_of(c) == name and name_of(c) != name]
            if managed:
                names = ", ".join(f"{namespace_of(c)}/{name_of(c)}" for c in managed)
                raise CommandError(
                    f"cluster {name} is the management cluster of {len(managed)} workload cluster(s): {names}; "
                    f"delete them first (anywhere delete cluster NAME --kubeconfig {_display(path)})"
                )
            await delete_and_wait(client, cluster, everyone, extra, hint, session)
            return True

    asyncio.run(flow())
    if self_delete:
        pid = planes.stop(own)
        if pid is not None:
            out.print(f"Stopped the management plane (pid {pid})")
        _remove_folder(folder, own, folder_created)
    elif not own.exists():
        asyncio.run(_netns().forget_workload_access(path, name))
        for leftover in (folder / f"{name}-eks-a-cluster.kubeconfig", folder / f"{name}-eks-a-cluster.yaml"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()
    out.print(f"Cluster {name} deleted")


def _same(a: planes.PlaneDir | None, b: planes.PlaneDir) -> bool:
    return a is not None and a.root.resolve() == b.root.resolve()


async def delete_and_wait(
    client: Client,
    cluster: Obj,
    everyone: list[Obj],
    extra: list[tuple[str, str]],
    hint: str,
    session: Session,
) -> None:
    """Delete the Cluster, wait until the controllers' finalizer lets it go, then delete the
    datacenter and machine configs no other cluster uses."""
    name, namespace = name_of(cluster), namespace_of(cluster)
    session.on_interrupt = lambda: (
        f"Interrupted: the deletion of cluster {name} goes on in the background.\n{hint}\n"
        f"Run `anywhere delete cluster {name}` again to finish."
    )
    if not _meta(cluster).get("deletionTimestamp"):
        with contextlib.suppress(NotFoundError):
            await client.delete(EKSA_CLUSTERS, name, namespace, propagation_policy="Background")
    out.print(f"Deleting cluster {name} (namespace {namespace})")
    view = ClusterView(client, name, namespace)
    task = asyncio.create_task(view.run())
    start = time.monotonic()
    last = ""
    try:
        while True:
            view.changed.clear()
            if task.done():
                task.result()
            if view.ready:
                if view.cluster is None:
                    break
                phases: dict[str, int] = {}
                for machine in view.machines.values():
                    phase = str((machine.get("status") or {}).get("phase") or "Pending")
                    phases[phase] = phases.get(phase, 0) + 1
                detail = ", ".join(f"{n} {p}" for p, n in sorted(phases.items()))
                line = f"{len(view.machines)} machine(s) left" + (f" ({detail})" if detail else "")
                if line != last:
                    out.print(f"[{_clock(time.monotonic() - start)}] {line}", markup=False)
                    last = line
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(view.changed.wait(), TICK)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    in_use = {
        pair
        for other in everyone
        if namespace_of(other) == namespace and name_of(other) != name
        for pair in references(other)
    }
    for kind, ref_name in [*references(cluster), *(e for e in extra if e not in references(cluster))]:
        if (kind, ref_name) in in_use or kind == "Cluster":
            continue
        with contextlib.suppress(NotFoundError):
            await client.delete(resource_of(kind), ref_name, namespace)
            out.print(f"Deleted {kind}/{ref_name}")


def _remove_folder(folder: Path, state: planes.PlaneDir, folder_created: bool) -> None:
    """Remove what create made in NAME/: the plane's state, the kubeconfig, the spec; the folder
    itself only if create made it and nothing else is in it."""
    shutil.rmtree(state.root, ignore_errors=True)
    for made in (
        folder / f"{folder.name}-eks-a-cluster.kubeconfig",
        folder / f"{folder.name}-eks-a-cluster.yaml",
    ):
        with contextlib.suppress(FileNotFoundError):
            made.unlink()
    if folder_created:
        try:
            folder.rmdir()
        except OSError:
            out.print(f"Left {folder}/ in place: it holds files anywhere did not create")
    out.print(f"Removed the cluster's files from {folder}/")


# ---- get clusters -----------------------------------------------------------------------------------------


def age(timestamp: Any, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 3m10s, 5h, 2d3h."""
    try:
        created = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - created).total_seconds())
    if seconds < 0:
        return "0s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 730:
        return f"{days}d"
    years = days // 365
    return f"{years}y{days % 365}d" if days % 365 else f"{years}y"


def cluster_rows(
    clusters: list[Obj], machines: list[Obj], now: datetime | None = None
) -> tuple[list[str], list[list[str]]]:
    """The ``get clusters`` table; NAMESPACE only when clusters span several namespaces."""
    by_cluster: dict[str, list[Obj]] = {}
    for machine in machines:
        owner = str((_meta(machine).get("labels") or {}).get(CLUSTER_NAME_LABEL, ""))
        by_cluster.setdefault(owner, []).append(machine)
    spaces = {namespace_of(c) for c in clusters}
    with_namespace = len(spaces) > 1
    headers = [
        "NAME",
        *(["NAMESPACE"] if with_namespace else []),
        "KUBERNETES VERSION",
        "CONTROL PLANE",
        "WORKERS",
        "STATUS",
        "AGE",
    ]
    rows: list[list[str]] = []
    for cluster in sorted(clusters, key=lambda c: (namespace_of(c), name_of(c))):
        control_plane, workers = count_machines(cluster, by_cluster.get(name_of(cluster), []))
        rows.append(
            [
                name_of(cluster),
                *([namespace_of(cluster)] if with_namespace else []),
                str((cluster.get("spec") or {}).get("kubernetesVersion") or "-"),
                f"{control_plane.ready}/{control_plane.desired}",
                f"{workers.ready}/{workers.desired}",
                status_text(cluster),
                age(_meta(cluster).get("creationTimestamp"), now),
            ]
        )
    return headers, rows


def _local_kubeconfig() -> Path:
    """``get clusters`` without --kubeconfig: KUBECONFIG, else the one cluster folder here."""
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return Path(env.split(os.pathsep)[0])
    found = sorted(
        d / f"{d.name}-eks-a-cluster.kubeconfig"
        for d in Path.cwd().iterdir()
        if d.is_dir()
        and (d / planes.STATE_DIR).is_dir()
        and (d / f"{d.name}-eks-a-cluster.kubeconfig").is_file()
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise CommandError("no management cluster given: pass --kubeconfig (or set KUBECONFIG)")
    names = ", ".join(p.parent.name for p in found)
    raise CommandError(
        f"several clusters here ({names}): pass --kubeconfig NAME/NAME-eks-a-cluster.kubeconfig"
    )


@get_app.command("clusters")
def get_clusters(kubeconfig: KubeconfigOption = None, verbosity: VerbosityOption = 0) -> None:
    """List the clusters of a management cluster.

    Kubernetes version, control plane and worker machines ready/desired, status and age.
    """
    _setup_logging(verbosity)
    session = Session()

    def body() -> None:
        path = kubeconfig if kubeconfig is not None else _local_kubeconfig()
        state = plane_of(path)
        if state is not None and planes.running_pid(state) is None:
            name = state.root.resolve().parent.name
            raise CommandError(
                f"the management plane of {name} is not running; start it with "
                f"`anywhere upgrade cluster -f {name}/{name}-eks-a-cluster.yaml` or "
                f"`anywhere create cluster -f {name}/{name}-eks-a-cluster.yaml` (both resume it)"
            )

        async def flow() -> tuple[list[Obj], list[Obj]]:
            async with connect(path, session, verbosity) as client:
                clusters = await client.list_all(EKSA_CLUSTERS)
                machines = await client.list_all(
                    MACHINES, SYSTEM_NAMESPACE, label_selector=CLUSTER_NAME_LABEL
                )
                return list(clusters.get("items") or []), list(machines.get("items") or [])

        clusters, machines = asyncio.run(flow())
        if not clusters:
            out.print("No clusters found.")
            return
        headers, rows = cluster_rows(clusters, machines)
        out.print(table(headers, rows), markup=False)

    run_command(session, body)
