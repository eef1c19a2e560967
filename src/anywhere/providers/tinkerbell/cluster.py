"""The TinkerbellCluster controller: the cluster's DHCP configuration, its API, its BMC failures.

For every TinkerbellCluster, one level-triggered step at a time:

1. **DHCP**: renders the dnsmasq configuration of the hardware its machines hold (a reservation
   per MAC with its IP, netmask, gateway and DNS; the iPXE chain to the Tinkerbell boot script on
   ``tinkerbellIP``), has dnsmasq itself check it (``dnsmasq --test``) and writes it to ConfigMap
   ``<cluster>-dhcp``. Hardware returned to the pool leaves it with the next render. A configuration
   dnsmasq refuses is ``DHCPConfigured=False`` with dnsmasq's message, and is not written;
2. **API**: serves the cluster's Kubernetes API and writes its kubeconfig Secret. On real bare
   metal it is kube-apiserver on the control plane servers behind kube-vip; no server boots here,
   so the plane serves it, as for the ``sim`` and ``vsphere`` providers;
3. **failures**: a machine whose BMC fails (refused credentials, unreachable, no such system) makes
   ``status.failureReason`` ``BMCError`` and ``failureMessage`` name the machine, the hardware and
   the cause — the anywhere Cluster reports them — until the BMC answers again;
4. reports ``status.ready``.

Deletion waits until its machines are gone (their servers are powered off and their hardware
returned through the BMCs), then removes the DHCP configuration and stops serving the API.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Final

from anywhere.api.capi import CLUSTER_NAME_LABEL
from anywhere.controllers.conditions import ERROR, READY, get_condition, set_false, set_true
from anywhere.controllers.context import Context
from anywhere.controllers.objects import (
    add_finalizer,
    cluster_paused,
    create_or_patch,
    deleting,
    is_paused,
    labels_of,
    name_of,
    namespace_of,
    of_cluster,
    owner_reference,
    remove_finalizer,
    write_status,
)
from anywhere.controllers.resources import (
    CONFIGMAPS,
    HARDWARE,
    TINKERBELL_CLUSTERS,
    TINKERBELL_MACHINES,
)
from anywhere.providers.retries import without_attempts
from anywhere.providers.sim.served import ServedClusterController, cluster_name_of
from anywhere.providers.tinkerbell import pool as hw
from anywhere.providers.tinkerbell.bmc import BMC_REASONS
from anywhere.providers.tinkerbell.dhcp import (
    DHCPConfigError,
    DHCPSettings,
    DnsmasqUnavailableError,
    check_dnsmasq,
    render_dnsmasq,
    reservation_of,
)
from anywhere.providers.tinkerbell.names import DHCP_CONFIG_KEY, dhcp_config_name
from anywhere.runtime import NotFoundError, Result, enqueue_mapped, split_key

__all__ = ["BMC_ERROR", "DHCP_CONFIGURED", "FINALIZER", "TinkerbellClusterController", "controller"]

log = logging.getLogger("anywhere.controllers.tinkerbellcluster")
Obj = dict[str, Any]

FINALIZER: Final = "tinkerbellcluster.infrastructure.cluster.x-k8s.io"
DHCP_CONFIGURED: Final = "DHCPConfigured"
BMC_ERROR: Final = "BMCError"
# How soon to try dnsmasq again when it could not be run.
DNSMASQ_RETRY: Final = 30.0
# A machine's deletion powers its server off first, which the BMC applies within seconds.
MACHINES_GONE_POLL: Final = 1.0


class TinkerbellClusterController(ServedClusterController):
    """Reconciles TinkerbellClusters (see the module doc)."""

    def __init__(self, ctx: Context, *, workers: int = 2) -> None:
        super().__init__(ctx, "tinkerbellcluster", TINKERBELL_CLUSTERS, workers=workers)
        self.machines = ctx.manager.informer(TINKERBELL_MACHINES)
        self.hardware = ctx.manager.informer(HARDWARE)
        self.configmaps = ctx.manager.informer(CONFIGMAPS)
        self.watch(TINKERBELL_MACHINES, enqueue_mapped(self._cluster_of_machine))
        self.watch(HARDWARE, enqueue_mapped(self._clusters_of_namespace))
        self._last_checked: dict[str, str] = {}  # key -> the configuration dnsmasq last accepted

    def _cluster_of_machine(self, machine: Obj) -> list[str]:
        cluster = labels_of(machine).get(CLUSTER_NAME_LABEL)
        return [f"{namespace_of(machine)}/{cluster}"] if cluster else []

    def _clusters_of_namespace(self, hardware: Obj) -> list[str]:
        namespace = namespace_of(hardware)
        return [f"{namespace}/{name_of(c)}" for c in self.clusters.list() if namespace_of(c) == namespace]

    async def _reconcile(self, key: str) -> Result | None:
        namespace, _ = split_key(key)
        obj = self.clusters.get(key)
        if obj is None or namespace is None:
            self._last_checked.pop(key, None)
            return None
        cluster_name = cluster_name_of(obj)
        if is_paused(obj) or cluster_paused(self.capi_clusters.get(f"{namespace}/{cluster_name}")):
            return None
        if deleting(obj):
            return await self._delete(key, obj, cluster_name)
        obj = await add_finalizer(self.ctx.client, TINKERBELL_CLUSTERS, obj, FINALIZER)
        status = copy.deepcopy(obj.get("status") or {})
        self._bmc_failures(status, namespace, cluster_name)
        try:
            await self._dhcp(key, obj, cluster_name)
        except (DHCPConfigError, ValueError) as exc:
            # dnsmasq that cannot run may come back (installed, less busy): look again; a refused
            # configuration changes only with the hardware, whose changes bring the cluster back.
            unavailable = isinstance(exc, DnsmasqUnavailableError)
            reason = "DnsmasqUnavailable" if unavailable else "DHCPConfigInvalid"
            message = (
                str(exc)
                if isinstance(exc, DHCPConfigError)
                else f"the DHCP configuration cannot be made: {exc}"
            )
            set_false(status, DHCP_CONFIGURED, reason, message, ERROR)
            if not status.get("ready"):
                set_false(status, READY, reason, message, ERROR)
            await write_status(self.ctx.client, TINKERBELL_CLUSTERS, obj, status)
            log.warning("cluster %s: %s", key, message)
            return Result(requeue_after=DNSMASQ_RETRY) if unavailable else None
        set_true(status, DHCP_CONFIGURED)
        return await self.served.serve_and_report(obj, TINKERBELL_CLUSTERS, status)

    def _bmc_failures(self, status: Obj, namespace: str, cluster_name: str) -> None:
        """``failureReason``/``failureMessage`` from the machines whose BMC fails now."""
        failing = []
        for machine in sorted(of_cluster(self.machines, namespace, cluster_name), key=name_of):
            ready = get_condition(machine, READY) or {}
            if ready.get("status") == "False" and ready.get("reason") in BMC_REASONS:
                hardware = (machine.get("spec") or {}).get("hardwareName") or "?"
                message = without_attempts(str(ready.get("message") or ""))  # stable across attempts
                failing.append(f"machine {name_of(machine)} (hardware {hardware}): {message}")
        if failing:
            status["failureReason"] = BMC_ERROR
            status["failureMessage"] = "; ".join(failing)
        elif status.get("failureReason") == BMC_ERROR:
            status.pop("failureReason", None)
            status.pop("failureMessage", None)

    async def _dhcp(self, key: str, obj: Obj, cluster_name: str) -> None:
        """Render, check and write the cluster's dnsmasq configuration."""
        namespace = namespace_of(obj)
        held = [
            h
            for h in self.hardware.list()
            if namespace_of(h) == namespace
            and (owner := hw.owner_of(h)) is not None
            and cluster_name
            == labels_of(self.machines.get(f"{owner[0]}/{owner[1]}") or {}).get(CLUSTER_NAME_LABEL)
        ]
        settings = DHCPSettings(tinkerbell_ip=str((obj.get("spec") or {}).get("tinkerbellIP") or ""))
        conf = render_dnsmasq([reservation_of(h) for h in held], settings)
        name = dhcp_config_name(cluster_name)
        current = self.configmaps.get(f"{namespace}/{name}")
        if ((current or {}).get("data") or {}).get(DHCP_CONFIG_KEY) == conf:
            return
        if self._last_checked.get(key) != conf:
            await check_dnsmasq(conf)
            self._last_checked[key] = conf
        desired = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {CLUSTER_NAME_LABEL: cluster_name},
                "ownerReferences": [owner_reference(obj)],
            },
            "data": {DHCP_CONFIG_KEY: conf},
        }
        await create_or_patch(self.ctx.client, CONFIGMAPS, desired, current)
        log.info("cluster %s: DHCP configuration written with %d reservation(s)", key, len(held))

    async def _delete(self, key: str, obj: Obj, cluster_name: str) -> Result | None:
        if of_cluster(self.machines, namespace_of(obj), cluster_name):
            return Result(requeue_after=MACHINES_GONE_POLL)
        with contextlib.suppress(NotFoundError):
            await self.ctx.client.delete(CONFIGMAPS, dhcp_config_name(cluster_name), namespace_of(obj))
        await self.served.remove(obj)
        self._last_checked.pop(key, None)
        await remove_finalizer(self.ctx.client, TINKERBELL_CLUSTERS, obj, FINALIZER)
        log.info("cluster %s: DHCP configuration and served API removed", key)
        return None


def controller(ctx: Context, *, workers: int = 2) -> TinkerbellClusterController:
    """The TinkerbellCluster controller (see the module doc)."""
    return TinkerbellClusterController(ctx, workers=workers)
