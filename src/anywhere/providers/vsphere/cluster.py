"""The VSphereCluster controller: vCenter reachable and trusted, the datacenter there, the API served.

For every VSphereCluster, one level-triggered step at a time:

1. logs in to its vCenter (:mod:`~anywhere.providers.vsphere.session`) and finds the datacenter;
   what fails (unreachable, wrong thumbprint, untrusted certificate, refused credentials, missing
   Secret, missing datacenter) is condition ``VCenterAvailable=False`` with that reason and a
   message saying what to do, and ``Ready=False``; the cluster is looked at again with a growing
   delay (2 s doubling up to a minute), so a vCenter that comes back is found;
2. publishes the datacenter's failure domains in ``status.failureDomains`` (Cluster API's contract);
3. serves the cluster's Kubernetes API and writes its kubeconfig Secret. In vSphere proper the API
   is kube-apiserver on the control plane VMs behind kube-vip; against the vCenter simulator no
   guest runs, so the plane serves it (as for the ``sim`` provider) and the machine controller
   registers each VM's Node on its behalf — see :mod:`~anywhere.providers.vsphere.machine`;
4. reports ``status.ready``.

Deletion stops serving the API; the VMs go with their machines, before.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Final

from anywhere.controllers.conditions import READY, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    cluster_paused,
    deleting,
    is_paused,
    of_cluster,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import SECRETS, VSPHERE_CLUSTERS, VSPHERE_MACHINES
from anywhere.providers.retries import Retries
from anywhere.providers.sim.served import ServedClusterController, cluster_name_of
from anywhere.providers.vsphere._vcenter import Sessions, VCenterError
from anywhere.providers.vsphere.inventory import require_datacenter
from anywhere.providers.vsphere.session import USER_ERRORS, session_for
from anywhere.runtime import Result, split_key

__all__ = ["FINALIZER", "VCENTER_AVAILABLE", "VSphereClusterController", "controller"]

log = logging.getLogger("anywhere.controllers.vspherecluster")
Obj = dict[str, Any]

FINALIZER: Final = "vspherecluster.infrastructure.cluster.x-k8s.io"
VCENTER_AVAILABLE: Final = "VCenterAvailable"


class VSphereClusterController(ServedClusterController):
    """Reconciles VSphereClusters (see the module doc)."""

    def __init__(self, ctx: Context, sessions: Sessions, *, workers: int = 2) -> None:
        super().__init__(ctx, "vspherecluster", VSPHERE_CLUSTERS, workers=workers)
        self.sessions = sessions
        self.secrets = ctx.manager.informer(SECRETS)
        self.machines = ctx.manager.informer(VSPHERE_MACHINES)
        self.retries = Retries(USER_ERRORS)

    async def _reconcile(self, key: str) -> Result | None:
        namespace, _ = split_key(key)
        obj = self.clusters.get(key)
        if obj is None or namespace is None:
            self.retries.succeeded(key)
            return None
        cluster_name = cluster_name_of(obj)
        if is_paused(obj) or cluster_paused(self.capi_clusters.get(f"{namespace}/{cluster_name}")):
            return None
        if deleting(obj):
            if of_cluster(self.machines, namespace, cluster_name):
                return Result(requeue_after=1.0)  # their VMs are removed through this cluster's vCenter
            await self.served.remove(obj)
            await remove_finalizer(self.ctx.client, VSPHERE_CLUSTERS, obj, FINALIZER)
            log.info("cluster %s: served API removed", key)
            return None
        obj = await add_finalizer(self.ctx.client, VSPHERE_CLUSTERS, obj, FINALIZER)
        wait = self.retries.wait(key, obj)
        if wait is not None:
            return Result(requeue_after=wait)
        datacenter = str((obj.get("spec") or {}).get("datacenter") or "")
        status = copy.deepcopy(obj.get("status") or {})
        try:
            vcenter = session_for(self.sessions, self.secrets, obj)
            await vcenter.call(require_datacenter, datacenter)
        except VCenterError as exc:
            failure = self.retries.failed(key, obj, exc.reason, exc.message)
            set_false(status, VCENTER_AVAILABLE, failure.reason, failure.message, failure.severity)
            if not status.get("ready"):
                set_false(status, READY, failure.reason, failure.message, failure.severity)
            await write_status(self.ctx.client, VSPHERE_CLUSTERS, obj, status)
            log.warning("cluster %s: %s", key, failure.message)
            return Result(requeue_after=failure.delay)
        self.retries.succeeded(key)
        set_true(status, VCENTER_AVAILABLE)
        domains = (obj.get("spec") or {}).get("failureDomains") or []
        if domains:
            status["failureDomains"] = {
                str(d.get("name")): {
                    "controlPlane": True,
                    "attributes": {k: str(v) for k, v in d.items() if k != "name" and v},
                }
                for d in domains
            }
        return await self.served.serve_and_report(obj, VSPHERE_CLUSTERS, status)


def controller(ctx: Context, sessions: Sessions, *, workers: int = 2) -> VSphereClusterController:
    """The VSphereCluster controller (see the module doc)."""
    return VSphereClusterController(ctx, sessions, workers=workers)
