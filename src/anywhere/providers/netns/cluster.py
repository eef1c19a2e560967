"""The NetnsCluster controller: a cluster's fabric, its control plane VIP and its credentials.

For every NetnsCluster this controller, one level-triggered step at a time:

1. makes the fabric real (the datacenter's bridge in a namespace of its own, with dnsmasq serving
   its DHCP range: :class:`~anywhere.providers.netns.fabric.Fabric`); a second datacenter that
   names the same bridge with other settings fails the cluster with ``FabricConflict``;
2. checks, until the cluster is ready for the first time, that the control plane VIP lies in the
   subnet, outside the DHCP range, and that nothing answers on it (once a control plane machine
   holds it, it answers by design); a VIP in use fails with ``UnavailableControlPlaneIP``, which
   is how "endpoint already in use" reaches the user;
3. keeps the cluster's credentials in Secrets, as Cluster API keeps a cluster's CA: Secret
   ``NAME-apiserver`` holds what every control plane machine's API server shares (CA, service
   account keys, admin token: the files of :mod:`anywhere.apiserver.pki`), Secret
   ``NAME-kubeconfig`` the admin kubeconfig for ``https://VIP:6443``;
4. sets ``spec.controlPlaneEndpoint`` to the VIP and ``status.ready`` (as with kube-vip, the
   endpoint exists as soon as a control plane machine takes the VIP: nothing else to wait for).

Deleting a NetnsCluster removes its Secrets (by owner reference) and the fabric once no other
NetnsCluster uses it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import ipaddress
import logging
import tempfile
from pathlib import Path
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.apiserver import pki
from anywhere.controllers.conditions import ERROR, READY, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    create_or_patch,
    deleting,
    is_paused,
    name_of,
    namespace_of,
    owner_reference,
    patch_at_version,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.controllers.resources import NETNS_CLUSTERS, SECRETS
from anywhere.providers.netns._host import NetnsError
from anywhere.providers.netns.fabric import Fabric, FabricConflictError, FabricSpec
from anywhere.providers.netns.preflight import vip_problems
from anywhere.runtime import Controller, NotFoundError, Result

__all__ = [
    "API_PORT",
    "FABRIC_CONFLICT",
    "FINALIZER",
    "UNAVAILABLE_CONTROL_PLANE_IP",
    "apiserver_secret_name",
    "controller",
]

log = logging.getLogger("anywhere.controllers.netnscluster")
Obj = dict[str, Any]

FINALIZER: Final = "netnscluster.infrastructure.cluster.x-k8s.io"
SECRET_TYPE: Final = "cluster.x-k8s.io/secret"
API_PORT: Final = 6443
UNAVAILABLE_CONTROL_PLANE_IP: Final = "UnavailableControlPlaneIP"
FABRIC_CONFLICT: Final = "FabricConflict"
FABRIC_UNAVAILABLE: Final = "FabricUnavailable"
RETRY: Final = 10.0
# The files of a data folder every control plane machine's API server shares.
SHARED_FILES: Final = (pki.CA_CERT_FILE, pki.CA_KEY_FILE, pki.SA_KEY_FILE, pki.SA_PUB_FILE, pki.TOKEN_FILE)


def apiserver_secret_name(cluster: str) -> str:
    return f"{cluster}-apiserver"


def fabric_spec(obj: Obj) -> FabricSpec:
    """The fabric a NetnsCluster names; ValueError for settings that cannot make one."""
    spec = obj.get("spec") or {}
    dhcp = spec.get("dhcpRange") or {}
    return FabricSpec.of(
        str(spec.get("bridgeName") or ""),
        str(spec.get("bridgeSubnet") or ""),
        str(spec.get("gateway") or ""),
        str(dhcp.get("start") or ""),
        str(dhcp.get("end") or ""),
    )


def _shared_pki() -> dict[str, bytes]:
    """A new cluster's shared API server files (blocking: key generation)."""
    with tempfile.TemporaryDirectory(prefix="anywhere-pki-") as folder:
        pki.load_or_create(folder)
        return {name: (Path(folder) / name).read_bytes() for name in SHARED_FILES}


def _admin_kubeconfig(files: dict[str, bytes], cluster: str, vip: str) -> str:
    """The admin kubeconfig of the cluster, for its endpoint (blocking: issues a certificate)."""
    with tempfile.TemporaryDirectory(prefix="anywhere-pki-") as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        keys = pki.load_or_create(folder, [vip])
        return pki.render_kubeconfig(
            f"https://{vip}:{API_PORT}",
            keys.ca_cert_pem,
            user=f"{cluster}-admin",
            client_cert_pem=keys.admin_cert_pem,
            client_key_pem=keys.admin_key_pem,
            cluster_name=cluster,
            context_name=f"{cluster}-admin@{cluster}",
        )


class NetnsClusterController:
    """Reconciles NetnsClusters (see the module doc)."""

    def __init__(self, ctx: Context, state_dir: Path) -> None:
        self.ctx = ctx
        self.state_dir = state_dir
        self.clusters = ctx.manager.informer(NETNS_CLUSTERS)
        self.secrets = ctx.manager.informer(SECRETS)

    async def reconcile(self, key: str) -> Result | None:
        obj = self.clusters.get(key)
        if obj is None or is_paused(obj):
            return None
        if deleting(obj):
            await self._delete(obj)
            return None
        obj = await add_finalizer(self.ctx.client, NETNS_CLUSTERS, obj, FINALIZER)
        status: Obj = copy.deepcopy(obj.get("status") or {})
        try:
            spec = fabric_spec(obj)
            vip = str(ipaddress.IPv4Address(str((obj.get("spec") or {}).get("controlPlaneVIP") or "")))
        except ValueError as exc:
            return await self._fail(obj, status, "InvalidConfiguration", str(exc))
        fabric = Fabric(self.state_dir, spec)
        try:
            await fabric.ensure()
        except FabricConflictError as exc:
            return await self._fail(obj, status, FABRIC_CONFLICT, str(exc))
        except NetnsError as exc:
            set_false(status, READY, FABRIC_UNAVAILABLE, str(exc), ERROR)
            await write_status(self.ctx.client, NETNS_CLUSTERS, obj, status)
            return Result(requeue_after=RETRY)
        if not status.get("ready"):
            problems = await vip_problems(fabric, vip)
            if problems:
                return await self._fail(obj, status, UNAVAILABLE_CONTROL_PLANE_IP, "; ".join(problems))
        await self._secrets(obj, vip)
        endpoint = {"host": vip, "port": API_PORT}
        if (obj.get("spec") or {}).get("controlPlaneEndpoint") != endpoint:
            obj = await patch_at_version(
                self.ctx.client, NETNS_CLUSTERS, obj, {"spec": {"controlPlaneEndpoint": endpoint}}
            )
        status.pop("failureReason", None)
        status.pop("failureMessage", None)
        status["ready"] = True
        set_true(status, READY)
        await write_status(self.ctx.client, NETNS_CLUSTERS, obj, status)
        return None

    async def _fail(self, obj: Obj, status: Obj, reason: str, message: str) -> Result | None:
        """A configuration that cannot work: terminal until the spec changes (an update requeues)."""
        status["failureReason"], status["failureMessage"] = reason, message
        status.setdefault("ready", False)
        set_false(status, READY, reason, message, ERROR)
        await write_status(self.ctx.client, NETNS_CLUSTERS, obj, status)
        log.info("cluster %s/%s: %s: %s", namespace_of(obj), name_of(obj), reason, message)
        return None  # the spec's next change brings the cluster back

    async def _secrets(self, obj: Obj, vip: str) -> None:
        """The shared API server files and the admin kubeconfig, made once and kept."""
        namespace, name = namespace_of(obj), name_of(obj)
        owner = owner_reference(obj, controller=True)
        shared = self.secrets.get(f"{namespace}/{apiserver_secret_name(name)}")
        if shared is None:
            files = await asyncio.to_thread(_shared_pki)
            shared = await self._create_secret(obj, apiserver_secret_name(name), files, owner)
        files = {k: base64.b64decode(v) for k, v in (shared.get("data") or {}).items()}
        if self.secrets.get(f"{namespace}/{kubeconfig_secret_name(name)}") is None:
            kubeconfig = await asyncio.to_thread(_admin_kubeconfig, files, name, vip)
            await self._create_secret(
                obj, kubeconfig_secret_name(name), {"value": kubeconfig.encode()}, owner
            )

    async def _create_secret(self, obj: Obj, secret: str, data: dict[str, bytes], owner: Obj) -> Obj:
        desired = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": secret,
                "namespace": namespace_of(obj),
                "labels": {CLUSTER_NAME_LABEL: name_of(obj)},
                "ownerReferences": [owner],
            },
            "type": SECRET_TYPE,
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        current: Obj | None
        try:
            current = await self.ctx.client.get(SECRETS, secret, namespace_of(obj))
        except NotFoundError:
            current = None
        if current is not None:
            return current  # made by an earlier pass whose informer event has not come yet
        return await create_or_patch(self.ctx.client, SECRETS, desired, None)

    async def _delete(self, obj: Obj) -> None:
        namespace, name = namespace_of(obj), name_of(obj)
        await self.ctx.clusters.forget(namespace, name)
        try:
            spec = fabric_spec(obj)
        except ValueError:
            spec = None
        others = [
            o
            for o in self.clusters.list()
            if (namespace_of(o), name_of(o)) != (namespace, name)
            and (o.get("spec") or {}).get("bridgeName") == (obj.get("spec") or {}).get("bridgeName")
        ]
        if spec is not None and not others:
            await Fabric(self.state_dir, spec).destroy()
            log.info(
                "cluster %s/%s: fabric %s removed (no other cluster uses it)", namespace, name, spec.bridge
            )
        await remove_finalizer(self.ctx.client, NETNS_CLUSTERS, obj, FINALIZER)


def controller(ctx: Context, state_dir: Path, *, workers: int = 2) -> Controller:
    reconciler = NetnsClusterController(ctx, state_dir)
    return Controller("netnscluster", reconciler.reconcile, workers=workers).watch(NETNS_CLUSTERS)
