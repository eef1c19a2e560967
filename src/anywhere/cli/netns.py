"""The self-managed flow of a netns cluster: a bootstrap plane creates it, then it manages itself.

EKS Anywhere's order, on this host:

create
  1. a temporary *bootstrap plane* (``NAME/.anywhere``: SQLite, every controller) creates the
     cluster's machines from the file, as for any cluster, and waits until the cluster is ready;
     the provider's state (namespaces, leases, machine disks) goes to ``NAME/netns``, which outlives
     the bootstrap plane;
  2. the host gets a way in: a forwarder from a loopback port to the VIP (the fabric is not routed
     from the host) and ``NAME/NAME-eks-a-cluster.kubeconfig`` pointing at it;
  3. the cluster's own controllers already run on its control plane machines (a self-managed
     NetnsCluster: see the machine controller), leader-elected; once one leads,
  4. the cluster's objects are moved into the cluster's own API (:func:`~anywhere.controllers.move.move`)
     and its controllers take over;
  5. the bootstrap plane stops and ``NAME/.anywhere`` is removed.

delete
  1. a bootstrap plane again; the cluster's objects are moved back into it (when the cluster still
     answers: after a create that crashed they may never have left it);
  2. the cluster is deleted there, as any cluster;
  3. whatever is left of ``NAME/netns`` on the host (a create that crashed half-way) is removed,
     and the command checks that nothing is: no namespace, process, lease or state file.

Every step is idempotent: a command interrupted anywhere is run again to finish.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

from anywhere.cli import plane as planes
from anywhere.cli.cluster import (
    CommandError,
    Goal,
    Rollout,
    Session,
    Spec,
    Timeouts,
    _command_line,
    _display,
    _remove_folder,
    apply_and_wait,
    clusters_named,
    connect,
    delete_and_wait,
    get_cluster,
    management_of,
    name_of,
    namespace_of,
    out,
    plane_watchdog,
    prepare_cluster_folder,
    progress_display,
    start_plane,
    wait_until_ready,
    watch_hint,
)
from anywhere.controllers.move import MoveError, move
from anywhere.controllers.objects import parse_time
from anywhere.controllers.plane import LEASE_NAME
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import EKSA_CLUSTERS, NETNS_CLUSTERS, SECRETS, SYSTEM_NAMESPACE
from anywhere.providers.netns._host import NetnsError, read_json, write_json
from anywhere.providers.netns.cluster import API_PORT
from anywhere.providers.netns.fabric import Fabric
from anywhere.providers.netns.hostaccess import (
    FORWARDER_RECORD,
    ensure_host_forwarder,
    stop_host_forwarder,
    write_host_kubeconfig,
)
from anywhere.providers.netns.inventory import cleanup_all, leaks, scope_id
from anywhere.providers.netns.preflight import host_problems
from anywhere.providers.netns.provider import STATE_ENV
from anywhere.runtime import LEASES, APIError, Client, NotFoundError, TransportError

__all__ = [
    "create_self_managed",
    "delete_self_managed",
    "ensure_forwarder",
    "forget_workload_access",
    "is_netns",
    "owns_folder",
    "write_workload_access",
]

STATE_DIR: Final = "netns"
HOST_DIR: Final = "host"
MOVING_FILE: Final = "moving"
CREATED_FILE: Final = "created.json"
Obj = dict[str, Any]
# How long the cluster's own controllers may take to start and lead (their process starts with the
# control plane machine; importing and listing take seconds on a slow host).
CONTROLLERS_WAIT: Final = 180.0
POLL: Final = 1.0


def is_netns(spec: Spec) -> bool:
    """Whether the file's cluster runs on the netns provider."""
    ref = spec.config.cluster.spec.datacenter_ref
    return ref is not None and ref.kind == "NetnsDatacenterConfig"


def owns_folder(folder: Path) -> bool:
    """Whether ``folder`` (NAME/) holds a netns cluster's host state."""
    return (folder / STATE_DIR).is_dir()


def _require_root() -> None:
    if os.geteuid() != 0:
        raise CommandError(
            "the netns provider makes network namespaces, bridges and processes in them, which needs "
            "root: run the command as root (e.g. with sudo)"
        )


def _run(flow: Coroutine[Any, Any, None]) -> None:
    """Run a command's asynchronous part; a failure of the host (a namespace, a process that will not
    stop) ends it as one clear line: nothing is lost, and running the command again goes on."""
    try:
        asyncio.run(flow)
    except NetnsError as exc:
        raise CommandError(f"{exc}; fix that and run the command again (nothing is lost)") from None


def _require_host_tools() -> None:
    """The host's tools, checked before anything is made (a missing one would otherwise surface as
    a fabric that never comes up)."""
    problems = host_problems()
    if problems:
        raise CommandError("this host cannot run netns machines yet", details=problems)


class _Paths:
    """Where one netns cluster's files live on the host."""

    def __init__(self, name: str, folder: Path | None = None) -> None:
        self.name = name
        self.folder = folder if folder is not None else Path(name)
        self.bootstrap = planes.PlaneDir.of(self.folder)
        self.state = (self.folder / STATE_DIR).resolve()
        self.host = self.state / HOST_DIR / name
        self.kubeconfig = self.folder / f"{name}-eks-a-cluster.kubeconfig"
        self.spec_out = self.folder / f"{name}-eks-a-cluster.yaml"

    @property
    def env(self) -> dict[str, str]:
        return {STATE_ENV: str(self.state)}

    @property
    def moving(self) -> Path:
        return self.bootstrap.root / MOVING_FILE

    @property
    def created(self) -> Path:
        """Whether create made NAME/ (kept beside the host state: it outlives the bootstrap plane)."""
        return self.state / HOST_DIR / CREATED_FILE


def create_self_managed(spec: Spec, timeouts: Timeouts, verbosity: int, session: Session) -> None:
    """``anywhere create cluster -f FILE`` for a netns cluster without a management cluster."""
    _require_root()
    _require_host_tools()
    paths = _Paths(spec.name)
    name = spec.name
    command = _command_line("create", spec, None)
    resume = prepare_cluster_folder(name, paths.bootstrap, paths.kubeconfig)
    if not paths.created.exists():
        write_json(paths.created, {"folder": planes.folder_was_created(paths.bootstrap)})
    out.print(
        f"{'Resuming the creation of' if resume else 'Creating'} self-managed netns cluster {name} "
        f"(bootstrap plane in {name}/{planes.STATE_DIR}, machines' state in {name}/{STATE_DIR})"
    )
    session.on_interrupt = lambda: (
        f"interrupted; nothing was undone. Run `{command}` again to resume, or "
        f"`anywhere delete cluster {name}` to remove everything it made."
    )
    plane = start_plane(paths.bootstrap, verbosity, self_cluster=False, env=paths.env)
    bootstrap_kubeconfig = plane.kubeconfig
    rollout = Rollout(
        spec,
        bootstrap_kubeconfig,
        "create",
        timeouts,
        session,
        paths.spec_out,
        plane_watchdog(paths.bootstrap),
        plane_note=f" (in the bootstrap plane: pid {plane.pid}, log {_display(paths.bootstrap.log)})",
        command=command,
    )

    async def flow() -> None:
        async with connect(bootstrap_kubeconfig, session, verbosity) as bootstrap:
            if not paths.moving.exists():
                existing = await get_cluster(bootstrap, name, spec.namespace)
                await apply_and_wait(bootstrap, rollout, existing)
            await _host_access(bootstrap, paths)
            session.on_interrupt = lambda: (
                f"interrupted while handing cluster {name} over to itself; run `{command}` again to finish"
            )
            async with connect(paths.kubeconfig, session, verbosity) as cluster:
                await _wait_for_own_controllers(cluster, paths)
                paths.moving.write_text("the cluster's objects are being moved into the cluster\n")
                out.print(f"Moving the objects of cluster {name} into its own API")
                try:
                    moved = await move(bootstrap, cluster, name, spec.namespace)
                except MoveError as exc:
                    raise CommandError(f"{exc}; run `{command}` again to finish the move") from None
                out.print(
                    f"Moved {len(moved.objects)} object(s); the cluster's own controllers manage it now"
                )
                await _wait_ready(cluster, spec, timeouts)

    _run(flow())
    pid = planes.stop(paths.bootstrap)
    shutil.rmtree(paths.bootstrap.root, ignore_errors=True)
    if pid is not None:
        out.print(f"Stopped the bootstrap plane (pid {pid})")
    out.print(f"Cluster {name} is ready and manages itself")
    out.print(
        f"Kubeconfig: {_display(paths.kubeconfig)}  (e.g. kubectl --kubeconfig {_display(paths.kubeconfig)} "
        "get nodes; it reaches the VIP through a forwarder on this host's loopback)"
    )
    out.print(f"Configuration as applied: {_display(paths.spec_out)}")


def _management_paths(management_kubeconfig: Path) -> _Paths | None:
    """The host state of the self-managed netns cluster a kubeconfig belongs to, if it is one."""
    folder = management_kubeconfig.resolve().parent
    if management_kubeconfig.name != f"{folder.name}-eks-a-cluster.kubeconfig" or not owns_folder(folder):
        return None
    return _Paths(folder.name, folder)


async def write_workload_access(
    management: Client, management_kubeconfig: Path, name: str, admin: bytes, out_path: Path
) -> bool:
    """For a netns workload cluster of a netns management cluster: a forwarder to its VIP (recorded
    with the management cluster's host state) and its kubeconfig for this host at ``out_path``.
    False when the workload cluster is not such a cluster (its kubeconfig is then used as it is)."""
    paths = _management_paths(management_kubeconfig)
    if paths is None:
        return False
    try:
        netns_cluster = await management.get(NETNS_CLUSTERS, name, SYSTEM_NAMESPACE)
    except NotFoundError:
        return False
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return await _forward(paths.state, paths.state / HOST_DIR / name, netns_cluster, admin, out_path)


async def _forward(state: Path, record: Path, netns_cluster: Obj, admin: bytes, out_path: Path) -> bool:
    """A forwarder (recorded in ``record``) to the VIP of ``netns_cluster``, whose fabric is in
    ``state``, and the host's kubeconfig through it at ``out_path``; False if the fabric has no record."""
    spec = netns_cluster.get("spec") or {}
    fabric = Fabric.load(state, str(spec.get("bridgeName") or ""))
    if fabric is None:
        return False
    name = str((netns_cluster.get("metadata") or {}).get("name"))
    try:
        port = await ensure_host_forwarder(record, fabric.namespace, f"{spec['controlPlaneVIP']}:{API_PORT}")
    except NetnsError as exc:
        raise CommandError(f"cannot reach cluster {name} from this host: {exc}") from None
    write_host_kubeconfig(out_path, admin, port)
    return True


async def forget_workload_access(management_kubeconfig: Path, name: str) -> None:
    """Stop the forwarder of a deleted workload cluster, if it had one."""
    paths = _management_paths(management_kubeconfig)
    if paths is not None:
        await stop_host_forwarder(paths.state / HOST_DIR / name)
        shutil.rmtree(paths.state / HOST_DIR / name, ignore_errors=True)


async def _stop_every_forwarder(paths: _Paths) -> None:
    """The cluster's and its workload clusters' forwarders (the host's ways into their VIPs)."""
    host = paths.state / HOST_DIR
    if host.is_dir():
        for folder in host.iterdir():
            if folder.is_dir():
                await stop_host_forwarder(folder)


async def _host_access(bootstrap: Client, paths: _Paths) -> None:
    """The forwarder to the cluster's VIP and the host's kubeconfig through it (both idempotent)."""
    try:
        netns_cluster = await bootstrap.get(NETNS_CLUSTERS, paths.name, SYSTEM_NAMESPACE)
    except NotFoundError:
        # moved already (a create resumed after the move): the kubeconfig was written before it
        if not await ensure_forwarder(paths.name):
            raise CommandError(
                f"cluster {paths.name} is neither in the bootstrap plane nor reachable (no forwarder "
                f"record in {paths.host}); run `anywhere delete cluster {paths.name}` and create it again"
            ) from None
        return
    secret = await bootstrap.get(SECRETS, kubeconfig_secret_name(paths.name), SYSTEM_NAMESPACE)
    admin = base64.b64decode((secret.get("data") or {}).get("value") or "")
    if not await _forward(paths.state, paths.host, netns_cluster, admin, paths.kubeconfig):
        raise CommandError(
            f"cluster {paths.name} is ready but its fabric has no record in {paths.state}; run the command again"
        )


async def _wait_for_own_controllers(cluster: Client, paths: _Paths) -> None:
    """Until one of the cluster's own controller processes leads (renews its Lease)."""
    out.print(f"Waiting for the controllers on the control plane machines of {paths.name} to elect a leader")
    deadline = time.monotonic() + CONTROLLERS_WAIT
    last = ""
    while True:
        try:
            lease = await cluster.get(LEASES, LEASE_NAME, SYSTEM_NAMESPACE)
            spec = lease.get("spec") or {}
            renewed = parse_time(spec.get("renewTime"))
            holder = str(spec.get("holderIdentity") or "")
            if (
                holder
                and renewed is not None
                and time.time() - renewed < float(spec.get("leaseDurationSeconds") or 15)
            ):
                out.print(f"The cluster's controllers lead from machine {holder}")
                return
            last = "no controller leads yet"
        except NotFoundError:
            last = "no controller has started yet"
        except (APIError, TransportError) as exc:
            last = f"the cluster's API did not answer: {exc}"
        if time.monotonic() > deadline:
            raise CommandError(
                f"the controllers of cluster {paths.name} did not start within {CONTROLLERS_WAIT:g} s ({last}); "
                f"see controllers.log under {paths.state}/machines/, then run the command again"
            )
        await asyncio.sleep(POLL)


async def _wait_ready(cluster: Client, spec: Spec, timeouts: Timeouts) -> None:
    found = await cluster.get(EKSA_CLUSTERS, spec.name, spec.namespace)
    generation = int((found.get("metadata") or {}).get("generation") or 1)
    goal = Goal(
        spec.name,
        spec.namespace,
        generation,
        timeouts,
        watch_hint(Path(spec.name), spec.name, spec.namespace),
    )
    with progress_display(f"Cluster {spec.name} under its own management") as progress:
        await wait_until_ready(cluster, goal, progress, lambda: None)


def delete_self_managed(name: str, verbosity: int, session: Session) -> None:
    """``anywhere delete cluster NAME`` for a self-managed netns cluster (see the module doc)."""
    _require_root()
    paths = _Paths(name)
    folder_created = bool((read_json(paths.created) or {}).get("folder"))
    scope = scope_id(paths.state)
    command = f"anywhere delete cluster {name}"
    session.on_interrupt = lambda: f"interrupted; nothing is lost. Run `{command}` again to finish."
    _run(_refuse_while_managing(paths, session, verbosity))
    paths.bootstrap.root.mkdir(parents=True, exist_ok=True)
    planes.record_created(paths.bootstrap, folder_created=folder_created)
    plane = start_plane(paths.bootstrap, verbosity, self_cluster=False, env=paths.env)

    async def flow() -> None:
        async with connect(plane.kubeconfig, session, verbosity) as bootstrap:
            await _move_back(bootstrap, paths, session, verbosity)
            found = await clusters_named(bootstrap, name)
            if found:
                listing = await bootstrap.list_all(EKSA_CLUSTERS)
                everyone = list(listing.get("items") or [])
                hint = watch_hint(plane.kubeconfig, name, namespace_of(found[0]))
                await delete_and_wait(bootstrap, found[0], everyone, [], hint, session)
            else:
                out.print(f"No Cluster {name} to delete: removing what is left of it on this host")
        await _stop_every_forwarder(paths)
        await cleanup_all(paths.state)
        left = await leaks(paths.state, scope)
        if left:
            raise CommandError(
                f"cluster {name} is deleted but these are still on the host (a bug; remove them by hand)",
                details=left,
            )
        shutil.rmtree(paths.state, ignore_errors=True)

    _run(flow())
    pid = planes.stop(paths.bootstrap)
    if pid is not None:
        out.print(f"Stopped the bootstrap plane (pid {pid})")
    _remove_folder(paths.folder, paths.bootstrap, folder_created)
    out.print(f"Cluster {name} deleted; nothing of it is left on this host")


async def _refuse_while_managing(paths: _Paths, session: Session, verbosity: int) -> None:
    """Refuse, before anything changes, to delete a cluster that manages workload clusters (when
    it answers; one that does not answer manages nothing that could still be reached)."""
    if not paths.kubeconfig.is_file() or paths.bootstrap.exists():
        return  # a create or delete that was interrupted: the objects may be in the bootstrap plane
    with contextlib.suppress(Exception):  # without it, the cluster does not answer: checked below
        await ensure_forwarder(paths.name)
    try:
        async with connect(paths.kubeconfig, session, verbosity) as cluster:
            listing = await asyncio.wait_for(cluster.list_all(EKSA_CLUSTERS), 30)
    except (APIError, TransportError, TimeoutError, OSError):
        return
    managed = [
        c for c in listing.get("items") or [] if management_of(c) == paths.name and name_of(c) != paths.name
    ]
    if managed:
        names = ", ".join(f"{namespace_of(c)}/{name_of(c)}" for c in managed)
        raise CommandError(
            f"cluster {paths.name} is the management cluster of {len(managed)} workload cluster(s): "
            f"{names}; delete them first (anywhere delete cluster NAME --kubeconfig "
            f"{_display(paths.kubeconfig)})"
        )


async def _move_back(bootstrap: Client, paths: _Paths, session: Session, verbosity: int) -> None:
    """Bring the cluster's objects back from its own API into the bootstrap plane, if it answers
    and has them (a create that crashed before the move left them in the bootstrap plane)."""
    if not paths.kubeconfig.is_file() or planes.server_url(paths.kubeconfig) == planes.server_url(
        paths.bootstrap.kubeconfig
    ):
        return
    with contextlib.suppress(Exception):  # without it, the cluster does not answer: said below
        await ensure_forwarder(paths.name)
    try:
        async with connect(paths.kubeconfig, session, verbosity) as cluster:
            found = await asyncio.wait_for(clusters_named(cluster, paths.name), 30)
            if not found:
                return
            out.print(f"Moving the objects of cluster {paths.name} back into the bootstrap plane")
            moved = await move(cluster, bootstrap, paths.name, namespace_of(found[0]))
            out.print(f"Moved {len(moved.objects)} object(s)")
    except MoveError as exc:
        raise CommandError(f"{exc}; run the command again once the cluster answers") from None
    except (APIError, TransportError, TimeoutError, OSError) as exc:
        out.print(f"Cluster {paths.name} does not answer ({exc}); deleting what the bootstrap plane knows")


async def ensure_forwarder(name: str, folder: Path | None = None) -> bool:
    """The host's way into cluster ``name`` (its forwarder; ``folder``: its NAME/), restarted if it
    stopped (the host rebooted, someone killed it); False when there is no record of one."""
    paths = _Paths(name, folder)
    target = _forwarder_target(paths)
    if target is None:
        return False
    try:
        await ensure_host_forwarder(paths.host, *target)
    except NetnsError as exc:
        raise CommandError(f"cannot reach cluster {name} from this host: {exc}") from None
    return True


def _forwarder_target(paths: _Paths) -> tuple[str, str] | None:
    """(fabric namespace, VIP:port) of the cluster's forwarder, from its record."""
    record: dict[str, Any] = read_json(paths.host / FORWARDER_RECORD) or {}
    if record.get("fabric") and record.get("target"):
        return str(record["fabric"]), str(record["target"])
    return None
