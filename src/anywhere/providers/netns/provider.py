"""The ``netns`` provider as the generic controllers see it (:class:`~anywhere.providers.base.Provider`).

Besides the Provider protocol it gives the plane two things the generic parts stay neutral about:

- :meth:`NetnsProvider.socket_factory`, the plane's :data:`~anywhere.controllers.remote.Dialer` for
  netns clusters: a workload cluster's endpoint (its VIP) is reachable only from inside its fabric,
  so the clients of the cluster cache make their sockets there (:mod:`._dial`);
- :class:`NetnsClusterEtcd`, the :class:`~anywhere.controllers.etcd.EtcdAdmin` of netns clusters:
  one :class:`~anywhere.providers.netns.etcd_admin.NetnsEtcdAdmin` per fabric (its connections are
  made inside that fabric), with the members found from the control plane NetnsMachines' addresses.

**The state folder.** Namespaces, leases, pid files and machine "disks" live in one folder on the
host (:func:`state_dir`): ``ctx.data_dir / "netns"``, unless ``ANYWHERE_NETNS_STATE`` names
another. The variable exists because a self-managed cluster's infrastructure is handled by two
planes in turn, the temporary bootstrap plane and then the controllers inside the cluster, with
different data folders; both must find the same machines, so both are started with the same
folder. Tests set a temporary one, so that nothing they make meets anything else on the host.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from anywhere.api.capi import CONTROL_PLANE_LABEL
from anywhere.api.infra.netns import default_machine
from anywhere.api.v1alpha1.netns import NetnsDatacenterConfig, NetnsMachineConfig
from anywhere.controllers.etcd import EtcdView
from anywhere.controllers.objects import labels_of, name_of, of_cluster
from anywhere.controllers.resources import (
    CAPI_CLUSTERS,
    NETNS_CLUSTERS,
    NETNS_DATACENTERS,
    NETNS_MACHINE_CONFIGS,
    NETNS_MACHINE_TEMPLATES,
    NETNS_MACHINES,
)
from anywhere.providers.base import control_plane_host
from anywhere.providers.kubelet import internal_ip
from anywhere.providers.netns._dial import connector_factory, socket_factory
from anywhere.providers.netns.etcd_admin import NetnsEtcdAdmin
from anywhere.providers.netns.etcd_member import CLIENT_PORT
from anywhere.providers.netns.fabric import Fabric

if TYPE_CHECKING:
    from anywhere.api.config import ClusterConfig
    from anywhere.api.v1alpha1 import Cluster, Object
    from anywhere.controllers.context import Context
    from anywhere.runtime import Controller, KubeConfig, SocketFactory

__all__ = [
    "PROVIDER",
    "STATE_ENV",
    "NetnsClusterEtcd",
    "NetnsProvider",
    "fabric_of",
    "netns_cluster_of",
    "state_dir",
]

Obj = dict[str, Any]

STATE_ENV: Final = "ANYWHERE_NETNS_STATE"
CLUSTER_WORKERS = 2
# Machines wait on DHCP, process starts and etcd; a few at once keep a scale-up parallel.
MACHINE_WORKERS = 8


def state_dir(ctx: Context) -> Path:
    """The provider's state folder for this plane (see the module doc)."""
    configured = os.environ.get(STATE_ENV)
    return Path(configured) if configured else ctx.data_dir / "netns"


def netns_cluster_of(ctx: Context, namespace: str, cluster: str) -> Obj | None:
    """The NetnsCluster of Cluster API cluster ``namespace/cluster`` (its infrastructureRef, or the
    NetnsCluster of the same name), from the plane's cache."""
    capi = ctx.manager.informer(CAPI_CLUSTERS).get(f"{namespace}/{cluster}")
    ref = ((capi or {}).get("spec") or {}).get("infrastructureRef") or {}
    name = ref.get("name") if ref.get("kind") == NETNS_CLUSTERS.kind else None
    return ctx.manager.informer(NETNS_CLUSTERS).get(f"{namespace}/{name or cluster}")


def fabric_of(state: Path, netns_cluster: Obj) -> Fabric | None:
    """The fabric a NetnsCluster names (None when its settings cannot make one)."""
    from anywhere.providers.netns.cluster import fabric_spec

    try:
        return Fabric(state, fabric_spec(netns_cluster))
    except ValueError:
        return None


def _recorded_fabric_for(state: Path, host: str) -> Fabric | None:
    """The one fabric recorded in ``state`` whose subnet holds ``host`` (None if none or several)."""
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        return None
    found = []
    for record in sorted((state / "fabrics").glob("*/fabric.json")):
        fabric = Fabric.load(state, record.parent.name)
        if fabric is not None and address in fabric.spec.subnet:
            found.append(fabric)
    return found[0] if len(found) == 1 else None


class NetnsClusterEtcd:
    """The etcd of netns clusters: one :class:`NetnsEtcdAdmin` per fabric, dialling from inside it.

    Besides the :class:`~anywhere.controllers.etcd.EtcdAdmin` operations, :meth:`admin` gives the
    machine controller the full admin of a cluster (learners, promotion, status).
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.state = state_dir(ctx)
        self.machines = ctx.manager.informer(NETNS_MACHINES)
        self._admins: dict[str, NetnsEtcdAdmin] = {}

    def endpoints(self, namespace: str, cluster: str) -> Mapping[str, str]:
        """The client URLs of the cluster's control plane machines that have an address, by name."""
        found: dict[str, str] = {}
        for machine in of_cluster(self.machines, namespace, cluster):
            address = internal_ip(machine)
            if address and CONTROL_PLANE_LABEL in labels_of(machine):
                found[name_of(machine)] = f"http://{address}:{CLIENT_PORT}"
        return found

    def admin(self, namespace: str, cluster: str) -> NetnsEtcdAdmin:
        """The admin for ``namespace/cluster``, whose connections start inside the cluster's fabric.
        Without a known fabric (a cache still filling), one dialling from here: it finds nothing."""
        netns_cluster = netns_cluster_of(self.ctx, namespace, cluster)
        fabric = fabric_of(self.state, netns_cluster) if netns_cluster is not None else None
        key = fabric.namespace if fabric is not None else ""
        admin = self._admins.get(key)
        if admin is None:
            connector = (lambda: connector_factory(key)) if key else None
            admin = self._admins[key] = NetnsEtcdAdmin(self.endpoints, connector=connector)
        return admin

    async def view(self, namespace: str, cluster: str) -> EtcdView:
        return await self.admin(namespace, cluster).view(namespace, cluster)

    async def move_leader(self, namespace: str, cluster: str, to: str) -> None:
        await self.admin(namespace, cluster).move_leader(namespace, cluster, to)

    async def remove_member(self, namespace: str, cluster: str, name: str) -> None:
        await self.admin(namespace, cluster).remove_member(namespace, cluster, name)

    async def close(self) -> None:
        admins, self._admins = self._admins, {}
        for admin in admins.values():
            with contextlib.suppress(Exception):
                await admin.close()


class NetnsProvider:
    """Machines as network namespaces on this host, on fabrics of the project's own."""

    name = "netns"
    datacenter_kind = NetnsDatacenterConfig.KIND
    machine_config_kind = NetnsMachineConfig.KIND
    datacenter = NETNS_DATACENTERS
    machine_config = NETNS_MACHINE_CONFIGS
    infra_cluster = NETNS_CLUSTERS
    infra_machine = NETNS_MACHINES
    infra_machine_template = NETNS_MACHINE_TEMPLATES

    def __init__(self) -> None:
        # Per plane (a process may run several in tests): what close() must release.
        self._etcd: dict[int, NetnsClusterEtcd] = {}

    def infra_cluster_spec(self, cluster: Cluster, datacenter: Object) -> Obj:
        """The NetnsCluster's fabric (from the NetnsDatacenterConfig) and the endpoint VIP."""
        if not isinstance(datacenter, NetnsDatacenterConfig):
            raise TypeError(f"the netns provider needs a NetnsDatacenterConfig, not {datacenter.kind}")
        network = datacenter.spec
        spec = {
            "bridgeName": network.bridge_name,
            "bridgeSubnet": network.bridge_subnet,
            "gateway": network.gateway,
            "dhcpRange": network.dhcp_range.to_dict() if network.dhcp_range is not None else None,
            "controlPlaneVIP": control_plane_host(cluster),
            "selfManaged": cluster.spec.management_cluster is None
            or cluster.spec.management_cluster.name in (None, cluster.name),
        }
        return {key: value for key, value in spec.items() if value}

    def machine_template_spec(
        self, machine_config: Object, cluster_config: ClusterConfig | None = None
    ) -> Obj:
        """How long machines of this config may take to boot, defaults applied (on a copy)."""
        if not isinstance(machine_config, NetnsMachineConfig):
            raise TypeError(f"the netns provider needs a NetnsMachineConfig, not {machine_config.kind}")
        config = machine_config.model_copy(deep=True)
        default_machine(config)
        return {"bootTimeout": config.spec.boot_timeout}

    def etcd_admin(self, context: Context) -> NetnsClusterEtcd:
        etcd = self._etcd.get(id(context))
        if etcd is None:
            etcd = self._etcd[id(context)] = NetnsClusterEtcd(context)
        return etcd

    def controllers(self, context: Context) -> list[Controller]:
        from anywhere.providers.netns import cluster, machine

        state = state_dir(context)
        return [
            cluster.controller(context, state, workers=CLUSTER_WORKERS),
            machine.controller(context, state, self.etcd_admin(context), workers=MACHINE_WORKERS),
        ]

    def socket_factory(
        self, context: Context, namespace: str, cluster: str, kubeconfig: KubeConfig
    ) -> SocketFactory | None:
        """The plane's dialer for netns clusters: sockets made inside the cluster's fabric; None
        for a cluster of another provider. Until the caches know the cluster, the one recorded
        fabric whose subnet holds the kubeconfig's server address serves."""
        state = state_dir(context)
        capi = context.manager.informer(CAPI_CLUSTERS).get(f"{namespace}/{cluster}")
        kind = (((capi or {}).get("spec") or {}).get("infrastructureRef") or {}).get("kind")
        if kind and kind != NETNS_CLUSTERS.kind:
            return None
        netns_cluster = netns_cluster_of(context, namespace, cluster)
        fabric = fabric_of(state, netns_cluster) if netns_cluster is not None else None
        if fabric is None:
            fabric = _recorded_fabric_for(state, urlsplit(kubeconfig.server).hostname or "")
        return socket_factory(fabric.namespace) if fabric is not None else None

    async def close(self, context: Context) -> None:
        etcd = self._etcd.pop(id(context), None)
        if etcd is not None:
            await etcd.close()


PROVIDER = NetnsProvider()

if TYPE_CHECKING:
    from anywhere.providers.base import Provider

    _conforms: Provider = PROVIDER
