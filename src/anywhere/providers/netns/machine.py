"""The NetnsMachine controller: real machines (network namespaces) for Cluster API Machines.

A NetnsMachine is made (by the KubeadmControlPlane or MachineSet machinery) for one Machine. Once
that Machine has its bootstrap data and its NetnsCluster is ready (fabric up, credentials in
Secrets), the controller makes the machine real, one level-triggered step at a time, each one
recorded (in the API or the state folder) before the next depends on it:

1. the boot clock: when the machine started booting (annotation), so a restarted controller keeps
   the deadline ``spec.bootTimeout`` (default 2m). A machine without an address, or whose Node has
   not registered by then, fails with ``status.failureReason`` (as a sim machine whose boot fails),
   so that a health check or the control plane controller replaces it;
2. namespace, veth and DHCP lease (:class:`~anywhere.providers.netns.machines.MachineNamespace`;
   the MAC, hence the lease, is the machine's for good), the address recorded in
   ``status.addresses`` before anything uses it, and ``spec.providerID``
   ``netns://<namespace>/<cluster>/<machine>``;
3. the machine's "disk" in its state folder: its bootstrap data (the Secret the Machine names),
   kubeconfigs for its agents, and on a control plane machine the API server's data folder with the
   cluster's shared files (Secret ``NAME-apiserver``; the server issues its own serving certificate
   for the VIP and its address);
4. on a control plane machine, its stacked etcd member. The machine Cluster API's control plane
   controller marked ``init`` (annotation on the Machine; for a Machine made by hand, ``kubeadm
   init`` in its bootstrap data) forms the cluster; every other one is added as a learner
   (:meth:`NetnsEtcdAdmin.add_learner`, idempotent by peer URL; its answer is kept on the disk
   before the member starts), started with ``--initial-cluster-state existing``, and promoted once
   it has caught up. Only then (annotation ``netns-etcd-joined``) do its API server
   (``anywhere serve --storage etcd`` on ``ADDRESS:6443``, backed by its own member first and by
   the others it learns from etcd's membership) and VIP agent
   start: a learner serves no clients;
5. the node agent (every machine), which registers the Node through the VIP;
6. ``status.ready``. The Machine controller sets ``nodeRef`` when the Node appears.

Processes run detached (a machine outlives its manager). The controller looks at every machine
again every :data:`SUPERVISE` seconds and starts what died, as a machine's init system restarts
its services; an etcd member that was removed from its cluster is not restarted.

Deletion (finalizer ``netnsmachine.infrastructure.cluster.x-k8s.io``): the machine's etcd member,
if it still exists (the control plane controller normally removed it already), is removed when
that keeps quorum (leadership moved off it first); then the processes stop and the namespace goes
with its lease and state folder. When the whole cluster is being deleted there is no etcd dance.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import yaml

from anywhere.api.capi import CLUSTER_NAME_LABEL, CONTROL_PLANE_LABEL
from anywhere.api.duration import parse_duration
from anywhere.api.infra.netns import DEFAULT_BOOT_TIMEOUT
from anywhere.controllers.conditions import ERROR, READY, WARNING, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.etcd import EtcdUnavailable
from anywhere.controllers.inplace import kubelet_version
from anywhere.controllers.kubeadmcontrolplane import BOOTSTRAP_ANNOTATION as KCP_BOOTSTRAP_ANNOTATION
from anywhere.controllers.objects import (
    add_finalizer,
    annotations_of,
    cluster_paused,
    controlling,
    deleting,
    flag_is_true,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    parse_time,
    patch_at_version,
    referenced_infrastructure,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import CAPI_CLUSTERS, MACHINES, NETNS_CLUSTERS, NETNS_MACHINES, SECRETS
from anywhere.providers.base import CREATE_ERROR
from anywhere.providers.kubelet import internal_ip, node_addresses, rfc3339
from anywhere.providers.netns._host import NetnsError, read_json, write_json
from anywhere.providers.netns.cluster import API_PORT, SHARED_FILES, apiserver_secret_name
from anywhere.providers.netns.etcd_admin import LearnerNotReady, NetnsEtcdAdmin
from anywhere.providers.netns.etcd_member import CLIENT_PORT, EtcdMember, cluster_token
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.node import provider_id
from anywhere.providers.netns.provider import (
    STATE_ENV,
    NetnsClusterEtcd,
    fabric_of,
    netns_cluster_of,
)
from anywhere.runtime import Controller, NotFoundError, Result, enqueue_mapped, enqueue_self, split_key

__all__ = [
    "BOOT_STARTED_ANNOTATION",
    "BOOT_TIMEOUT_REASON",
    "ETCD_JOINED_ANNOTATION",
    "FINALIZER",
    "SUPERVISE",
    "NetnsMachineController",
    "controller",
    "machine_name",
]

log = logging.getLogger("anywhere.controllers.netnsmachine")
Obj = dict[str, Any]

FINALIZER: Final = "netnsmachine.infrastructure.cluster.x-k8s.io"
BOOT_STARTED_ANNOTATION: Final = "anywhere.eks.amazonaws.com/netns-boot-started"
ETCD_JOINED_ANNOTATION: Final = "anywhere.eks.amazonaws.com/netns-etcd-joined"
# What a machine that did not boot in time is to Cluster API: a terminal error creating it.
BOOT_TIMEOUT_REASON: Final = CREATE_ERROR
# How often a running machine is looked at (dead processes restarted, the boot deadline checked).
SUPERVISE: Final = 10.0
# How soon to look again at something outside our watches (a learner catching up, etcd busy).
RETRY: Final = 2.0
DHCP_TIMEOUT: Final = 20.0
STOP_GRACE: Final = 5.0
# The order a machine's processes stop in when it is deleted: the VIP agent first, so that it hands
# the VIP over (SIGTERM: it drops the address and releases the Lease) while this machine's API
# server still answers whoever reaches it; the API server before the etcd member it reads.
# The lifecycle controllers of a self-managed cluster go last: the deleting controller may be the
# one running on this machine, and it is stopped with it (another machine's takes over and finishes).
SHUTDOWN_ORDER: Final = ("vip", "node", "apiserver", "etcd", "controllers")
CONTROLLERS_DIR: Final = "controllers"

# The machine's disk, inside its state folder.
USER_DATA: Final = "user-data"
VIP_KUBECONFIG: Final = "vip.kubeconfig"
NODE_KUBECONFIG: Final = "node.kubeconfig"
APISERVER_DIR: Final = "apiserver"
# How often a machine's API server re-reads etcd's membership: it starts with its own member and
# serves through the others when that member is removed before the machine is (a rolling upgrade).
ETCD_AUTO_SYNC: Final = 5
ETCD_JOIN_FILE: Final = "etcd-join.json"

_JOIN = re.compile(r"\bkubeadm\s+join\b")


def machine_name(namespace: str, name: str) -> str:
    """The netns machine (namespace, state folder) of NetnsMachine ``namespace/name``: namespaces
    cannot hold a dot, so the name is unique across the plane's namespaces."""
    return f"{namespace}.{name}"


def _boot_timeout(obj: Obj) -> float:
    text = (obj.get("spec") or {}).get("bootTimeout") or DEFAULT_BOOT_TIMEOUT
    try:
        return max(1.0, parse_duration(str(text)))
    except ValueError:
        return parse_duration(DEFAULT_BOOT_TIMEOUT)


def _kubelet_version(version: str) -> str:
    version = version.strip()
    return version if version.startswith("v") else f"v{version}"


def _write_if_changed(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` atomically unless the file holds it already (a reconcile repeats this)."""
    try:
        if path.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _with_server(kubeconfig: bytes, server: str) -> bytes:
    document = yaml.safe_load(kubeconfig)
    for cluster in document.get("clusters") or ():
        cluster["cluster"]["server"] = server
    return yaml.safe_dump(document, sort_keys=False).encode()


class _Wait(Exception):
    """A step cannot go on yet: report ``reason``/``message`` and look again (after ``after``)."""

    def __init__(
        self, reason: str, message: str, severity: str = "Info", after: float | None = RETRY
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.severity, self.after = reason, message, severity, after


class NetnsMachineController(Controller):
    """Reconciles NetnsMachines (see the module doc)."""

    def __init__(self, ctx: Context, state_dir: Path, etcd: NetnsClusterEtcd, *, workers: int = 4) -> None:
        super().__init__("netnsmachine", self._reconcile, workers=workers)
        self.ctx = ctx
        self.state = state_dir
        self.etcd = etcd
        self.machines = ctx.manager.informer(NETNS_MACHINES)
        self.owners = ctx.manager.informer(MACHINES)
        self.clusters = ctx.manager.informer(NETNS_CLUSTERS)
        self.capi_clusters = ctx.manager.informer(CAPI_CLUSTERS)
        self.secrets = ctx.manager.informer(SECRETS)
        self.watch(NETNS_MACHINES, enqueue_self)
        self.watch(MACHINES, enqueue_mapped(lambda m: referenced_infrastructure(m, NETNS_MACHINES.kind)))
        self.watch(NETNS_CLUSTERS, enqueue_mapped(self._machines_of_cluster))
        self.watch(CAPI_CLUSTERS, enqueue_mapped(self._machines_of_cluster))

    # -- event mapping -------------------------------------------------------------------------------

    def _machines_of_cluster(self, cluster: Obj) -> Iterable[str]:
        namespace, name = namespace_of(cluster), name_of(cluster)
        for machine in of_cluster(self.machines, namespace, name):
            yield f"{namespace}/{name_of(machine)}"

    # -- reconcile -----------------------------------------------------------------------------------

    async def _reconcile(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        obj = self.machines.get(key)
        if obj is None or namespace is None:
            return None
        cluster_name = labels_of(obj).get(CLUSTER_NAME_LABEL, "")
        capi = self.capi_clusters.get(f"{namespace}/{cluster_name}") if cluster_name else None
        if is_paused(obj) or cluster_paused(capi):
            return None
        if deleting(obj):
            await self._delete(obj, cluster_name, capi)
            return None
        obj = await add_finalizer(self.ctx.client, NETNS_MACHINES, obj, FINALIZER)
        if (obj.get("status") or {}).get("failureReason"):
            return None  # terminal: the machine is replaced, not repaired
        try:
            return await self._converge(obj, namespace, name, cluster_name)
        except _Wait as wait:
            try:  # the steps before may have changed the object: write on its latest version
                latest = await self.ctx.client.get(NETNS_MACHINES, name, namespace)
            except NotFoundError:
                return None
            status = copy.deepcopy(latest.get("status") or {})
            status.setdefault("ready", False)
            set_false(status, READY, wait.reason, wait.message, wait.severity)
            await write_status(self.ctx.client, NETNS_MACHINES, latest, status)
            return Result(requeue_after=wait.after) if wait.after is not None else None

    async def _converge(self, obj: Obj, namespace: str, name: str, cluster_name: str) -> Result | None:
        key = f"{namespace}/{name}"
        owner = controlling(self.owners, obj, "Machine")
        if owner is None:
            raise _Wait("WaitingForMachine", "waiting for the owner Machine", after=None)
        owner_spec = owner.get("spec") or {}
        data_secret = str((owner_spec.get("bootstrap") or {}).get("dataSecretName") or "")
        if not data_secret:
            raise _Wait("WaitingForBootstrapData", "waiting for the bootstrap data", after=None)
        cluster_name = cluster_name or str(owner_spec.get("clusterName") or "")
        netns_cluster = netns_cluster_of(self.ctx, namespace, cluster_name)
        if netns_cluster is None or not (netns_cluster.get("status") or {}).get("ready"):
            raise _Wait("WaitingForInfrastructure", f"waiting for NetnsCluster {cluster_name}", after=None)
        if deleting(netns_cluster):
            return None  # its fabric is going away, and this machine with it
        fabric = fabric_of(self.state, netns_cluster)
        vip = str((netns_cluster.get("spec") or {}).get("controlPlaneVIP") or "")
        if fabric is None or not vip:
            raise _Wait(
                "InvalidInfrastructure",
                f"NetnsCluster {name_of(netns_cluster)} names no usable fabric",
                ERROR,
            )

        # 1. the boot clock, recorded before the boot starts
        started = parse_time(annotations_of(obj).get(BOOT_STARTED_ANNOTATION))
        if started is None:
            started = time.time()
            obj = await patch_at_version(
                self.ctx.client,
                NETNS_MACHINES,
                obj,
                {"metadata": {"annotations": {BOOT_STARTED_ANNOTATION: rfc3339(started, micro=True)}}},
            )
        deadline = started + _boot_timeout(obj)
        booted = bool((owner.get("status") or {}).get("nodeRef"))

        # 2. namespace, lease, address, provider ID
        machine = MachineNamespace(fabric, machine_name(namespace, name))
        try:
            lease = await machine.ensure(
                DHCP_TIMEOUT if booted else max(1.0, min(DHCP_TIMEOUT, deadline - time.time()))
            )
        except NetnsError as exc:
            if not booted and time.time() >= deadline:
                await self._fail(obj, f"machine {name} got no address within its boot timeout: {exc}")
                return None
            raise _Wait("WaitingForAddress", str(exc), WARNING) from None
        address = str(lease.address)
        if internal_ip(obj) != address:
            status = copy.deepcopy(obj.get("status") or {})
            status["addresses"] = node_addresses(address, name)
            if not status.get("ready"):
                set_false(status, READY, "Booting", f"booting with address {address}")
            obj = await write_status(self.ctx.client, NETNS_MACHINES, obj, status)
            log.info("machine %s: address %s on %s", key, address, fabric.spec.bridge)
        pid = provider_id(namespace, cluster_name, name)
        if (obj.get("spec") or {}).get("providerID") != pid:
            obj = await patch_at_version(self.ctx.client, NETNS_MACHINES, obj, {"spec": {"providerID": pid}})

        # 3. the disk
        control_plane = CONTROL_PLANE_LABEL in labels_of(obj) or CONTROL_PLANE_LABEL in labels_of(owner)
        user_data = await self._secret_data(namespace, data_secret)
        _write_if_changed(machine.folder / USER_DATA, user_data.get("value", b""))
        kubeconfig = (await self._secret_data(namespace, kubeconfig_secret_name(name_of(netns_cluster)))).get(
            "value"
        )
        if not kubeconfig:
            raise _Wait(
                "WaitingForCredentials",
                f"Secret {kubeconfig_secret_name(name_of(netns_cluster))} has no kubeconfig",
            )
        _write_if_changed(machine.folder / NODE_KUBECONFIG, kubeconfig)

        # 4. control plane: etcd, then the API server and the VIP agent
        if control_plane:
            obj = await self._etcd(
                obj, owner, machine, namespace, cluster_name, address, user_data.get("value", b"")
            )
            if not flag_is_true(annotations_of(obj).get(ETCD_JOINED_ANNOTATION)):
                return Result(requeue_after=RETRY)
            await self._control_plane(
                machine, netns_cluster, namespace, name, cluster_name, address, vip, kubeconfig
            )

        # 5. the node agent
        # An in-place upgrade's version when one is asked for: the agent restarts with it.
        version = _kubelet_version(kubelet_version(owner))
        node_argv = [
            sys.executable, "-m", "anywhere.providers.netns.agent", "node",
            "--kubeconfig", str(machine.folder / NODE_KUBECONFIG),
            "--node-name", name,
            "--node-ip", address,
            "--kubelet-version", version,
            "--cluster", cluster_name,
            "--cluster-namespace", namespace,
            "--machine", name_of(owner),
            "--provider-id", pid,
        ]  # fmt: skip
        if control_plane:
            node_argv.append("--control-plane")
        await self._process(machine, "node", node_argv)

        # 6. ready
        status = copy.deepcopy(obj.get("status") or {})
        if not status.get("ready"):
            status["ready"] = True
            status["addresses"] = node_addresses(address, name)
            set_true(status, READY)
            obj = await write_status(self.ctx.client, NETNS_MACHINES, obj, status)
            log.info("machine %s: running (%s)", key, "control plane" if control_plane else "worker")
        if not booted:
            left = deadline - time.time()
            if left <= 0:
                await self._fail(obj, f"the Node of machine {name} did not register within its boot timeout")
                return None
            return Result(requeue_after=min(SUPERVISE, left))
        return Result(requeue_after=SUPERVISE)

    # -- steps ---------------------------------------------------------------------------------------

    async def _secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        secret = self.secrets.get(f"{namespace}/{name}")
        if secret is None:
            try:
                secret = await self.ctx.client.get(SECRETS, name, namespace)
            except NotFoundError:
                raise _Wait("WaitingForSecret", f"waiting for Secret {name}") from None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    async def _process(
        self, machine: MachineNamespace, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> None:
        try:
            # Shielded: a cancelled reconcile must not lose the record of a process it started.
            await asyncio.shield(machine.processes.ensure(name, argv, env=env))
        except NetnsError as exc:
            raise _Wait("ProcessFailed", f"cannot start {name}: {exc}", WARNING) from None

    async def _etcd(
        self,
        obj: Obj,
        owner: Obj,
        machine: MachineNamespace,
        namespace: str,
        cluster: str,
        address: str,
        user_data: bytes,
    ) -> Obj:
        """The machine's etcd member: bootstrapped, or added as a learner, started, promoted."""
        name = name_of(obj)
        member = EtcdMember(name, address, machine.folder, cluster_token(namespace, cluster))
        admin = self.etcd.admin(namespace, cluster)
        joined = flag_is_true(annotations_of(obj).get(ETCD_JOINED_ANNOTATION))
        mode = annotations_of(owner).get(KCP_BOOTSTRAP_ANNOTATION)
        init = (
            mode == "init"
            if mode in ("init", "join")
            else not _JOIN.search(user_data.decode(errors="replace"))
        )
        if not machine.processes.running("etcd"):
            if member.initialized:
                if joined and await self._removed(admin, namespace, cluster, name):
                    raise _Wait(
                        "EtcdMemberRemoved",
                        f"the etcd member {name} was removed from its cluster",
                        after=None,
                    )
                config = member.restart()
            elif init:
                config = member.bootstrap()
            else:
                if joined:
                    raise _Wait(
                        "EtcdMemberRemoved",
                        f"the etcd member {name} lost its data; replace the machine",
                        ERROR,
                        None,
                    )
                if deleting(owner):
                    raise _Wait(
                        "Deleting", "the Machine is being deleted: its member does not join", after=None
                    )
                config = member.join(await self._added(admin, machine, member, namespace, cluster))
            try:
                await asyncio.shield(machine.processes.spawn("etcd", config.argv()))
            except NetnsError as exc:
                raise _Wait("ProcessFailed", f"cannot start etcd: {exc}", WARNING) from None
            log.info("machine %s/%s: etcd member %s started (%s)", namespace, name, name, config.state)
        if joined:
            return obj
        if not init:
            try:
                await admin.promote(namespace, cluster, name)
            except LearnerNotReady as exc:
                raise _Wait("EtcdLearner", str(exc), after=RETRY) from None
            except EtcdUnavailable as exc:
                raise _Wait("EtcdUnavailable", str(exc), WARNING, RETRY) from None
        obj = await patch_at_version(
            self.ctx.client,
            NETNS_MACHINES,
            obj,
            {"metadata": {"annotations": {ETCD_JOINED_ANNOTATION: "true"}}},
        )
        log.info("machine %s/%s: a voting member of the etcd of %s", namespace, name, cluster)
        return obj

    async def _added(
        self,
        admin: NetnsEtcdAdmin,
        machine: MachineNamespace,
        member: EtcdMember,
        namespace: str,
        cluster: str,
    ) -> str:
        """The initial cluster to join with: from the disk when an earlier pass added the member,
        else from adding it now (recorded before the member starts)."""
        path = machine.folder / ETCD_JOIN_FILE
        recorded = read_json(path)
        if (
            recorded is not None
            and recorded.get("peerURL") == member.peer_url
            and recorded.get("initialCluster")
        ):
            return str(recorded["initialCluster"])
        try:
            added = await admin.add_learner(namespace, cluster, member.machine, member.peer_url)
        except EtcdUnavailable as exc:
            raise _Wait("EtcdUnavailable", str(exc), WARNING, RETRY) from None
        write_json(path, {"peerURL": member.peer_url, "initialCluster": added.initial_cluster})
        return added.initial_cluster

    @staticmethod
    async def _removed(admin: NetnsEtcdAdmin, namespace: str, cluster: str, name: str) -> bool:
        """Whether the membership can be read and lacks ``name`` (when it cannot be read, the
        member may be what is missing: restart it)."""
        try:
            members = await admin.member_list(namespace, cluster)
        except EtcdUnavailable:
            return False
        return all(m.name != name for m in members)

    async def _control_plane(
        self,
        machine: MachineNamespace,
        netns_cluster: Obj,
        namespace: str,
        name: str,
        cluster: str,
        address: str,
        vip: str,
        kubeconfig: bytes,
    ) -> None:
        data_dir = machine.folder / APISERVER_DIR
        shared = await self._secret_data(namespace, apiserver_secret_name(name_of(netns_cluster)))
        missing = [f for f in SHARED_FILES if f not in shared]
        if missing:
            raise _Wait(
                "WaitingForCredentials",
                f"Secret {apiserver_secret_name(name_of(netns_cluster))} lacks {', '.join(missing)}",
            )
        for file in SHARED_FILES:
            _write_if_changed(data_dir / file, shared[file])
        _write_if_changed(
            machine.folder / VIP_KUBECONFIG, _with_server(kubeconfig, f"https://{address}:{API_PORT}")
        )
        await self._process(
            machine,
            "apiserver",
            [
                sys.executable, "-m", "anywhere", "serve",
                "--data-dir", str(data_dir),
                "--storage", "etcd",
                "--etcd-endpoints", f"http://{address}:{CLIENT_PORT}",
                "--etcd-auto-sync-interval", str(ETCD_AUTO_SYNC),
                "--host", "0.0.0.0",
                "--port", str(API_PORT),
                "--san", vip,
                "--san", address,
            ],
        )  # fmt: skip
        await self._process(
            machine,
            "vip",
            [
                sys.executable, "-m", "anywhere.providers.netns.agent", "vip",
                "--kubeconfig", str(machine.folder / VIP_KUBECONFIG),
                "--vip", vip,
                "--identity", name,
            ],
        )  # fmt: skip
        if (netns_cluster.get("spec") or {}).get("selfManaged"):
            # The cluster's own lifecycle controllers (a self-managed cluster), against the API
            # server of this machine, leader-elected with the other control plane machines'.
            await self._process(
                machine,
                "controllers",
                [
                    sys.executable, "-m", "anywhere", "controllers",
                    "--kubeconfig", str(machine.folder / VIP_KUBECONFIG),
                    "--data-dir", str(machine.folder / CONTROLLERS_DIR),
                    "--self-cluster", cluster,
                    "--identity", name,
                ],
                env={STATE_ENV: str(self.state.resolve())},
            )  # fmt: skip

    async def _fail(self, obj: Obj, message: str) -> None:
        status = copy.deepcopy(obj.get("status") or {})
        status.update(ready=False, failureReason=BOOT_TIMEOUT_REASON, failureMessage=message)
        set_false(status, READY, "BootTimeout", message, ERROR)
        await write_status(self.ctx.client, NETNS_MACHINES, obj, status)
        log.info("machine %s/%s: %s", namespace_of(obj), name_of(obj), message)

    # -- deletion ------------------------------------------------------------------------------------

    async def _delete(self, obj: Obj, cluster: str, capi: Obj | None) -> None:
        namespace, name = namespace_of(obj), name_of(obj)
        netns_cluster = netns_cluster_of(self.ctx, namespace, cluster) if cluster else None
        machine = MachineNamespace.load(self.state, machine_name(namespace, name))
        if machine is None and netns_cluster is not None:
            fabric = fabric_of(self.state, netns_cluster)
            machine = MachineNamespace(fabric, machine_name(namespace, name)) if fabric is not None else None
        going = (capi is not None and deleting(capi)) or netns_cluster is None or deleting(netns_cluster)
        control_plane = CONTROL_PLANE_LABEL in labels_of(obj)
        if machine is not None:
            if control_plane and not going:
                await self._leave_etcd(namespace, cluster, name)
            for process in SHUTDOWN_ORDER:
                await machine.processes.stop(process, STOP_GRACE)
            await machine.processes.stop_all(STOP_GRACE)
            await machine.destroy()
            log.info("machine %s/%s: removed (namespace %s)", namespace, name, machine.namespace)
        await remove_finalizer(self.ctx.client, NETNS_MACHINES, obj, FINALIZER)

    async def _leave_etcd(self, namespace: str, cluster: str, name: str) -> None:
        """Remove the machine's member if it still exists and that keeps quorum."""
        admin = self.etcd.admin(namespace, cluster)
        try:
            status = await admin.status(namespace, cluster)
            member = status.member(name)
            if member is None:
                return
            if not member.is_learner and status.leader is not None and status.leader.id == member.id:
                others = status.healthy_voter_names(but=name)
                if not others:
                    return  # the last voter: the cluster's etcd ends with it
                await admin.move_leader(namespace, cluster, others[0])
            await admin.remove_member(namespace, cluster, name)
        except EtcdUnavailable as exc:
            log.info("machine %s/%s: its etcd member stays: %s", namespace, name, exc)


def controller(
    ctx: Context, state_dir: Path, etcd: NetnsClusterEtcd, *, workers: int = 4
) -> NetnsMachineController:
    """The NetnsMachine controller (see the module doc)."""
    return NetnsMachineController(ctx, state_dir, etcd, workers=workers)
