"""The ``vsphere`` provider as the generic controllers see it (:class:`~anywhere.providers.base.Provider`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anywhere.api.infra.vsphere import default_datacenter, default_machine
from anywhere.api.v1alpha1.vsphere import VSphereDatacenterConfig, VSphereMachineConfig
from anywhere.controllers.resources import (
    SYSTEM_NAMESPACE,
    VSPHERE_CLUSTERS,
    VSPHERE_DATACENTERS,
    VSPHERE_MACHINE_CONFIGS,
    VSPHERE_MACHINE_TEMPLATES,
    VSPHERE_MACHINES,
)
from anywhere.providers.base import control_plane_host
from anywhere.providers.vsphere._vcenter import Sessions
from anywhere.providers.vsphere.session import CREDENTIALS_SECRET

if TYPE_CHECKING:
    from anywhere.api.config import ClusterConfig
    from anywhere.api.v1alpha1 import Cluster, Object
    from anywhere.controllers.context import Context
    from anywhere.controllers.etcd import EtcdAdmin
    from anywhere.runtime import Controller, KubeConfig, SocketFactory

__all__ = ["PROVIDER", "VSphereProvider"]

Obj = dict[str, Any]

CLUSTER_WORKERS = 2
# Machine reconciles wait on vCenter (each call on a session thread) and on workload APIs.
MACHINE_WORKERS = 8


class VSphereProvider:
    """VMs in vCenter, cloned from templates (see :mod:`anywhere.providers.vsphere.machine`)."""

    name = "vsphere"
    datacenter_kind = VSphereDatacenterConfig.KIND
    machine_config_kind = VSphereMachineConfig.KIND
    datacenter = VSPHERE_DATACENTERS
    machine_config = VSPHERE_MACHINE_CONFIGS
    infra_cluster = VSPHERE_CLUSTERS
    infra_machine = VSPHERE_MACHINES
    infra_machine_template = VSPHERE_MACHINE_TEMPLATES

    def __init__(self) -> None:
        self._sessions: dict[int, Sessions] = {}

    def infra_cluster_spec(self, cluster: Cluster, datacenter: Object) -> Obj:
        """vCenter, its trust settings, the credentials Secret, datacenter, network, failure domains
        and the VIP, from the VSphereDatacenterConfig (defaults applied, on a copy)."""
        if not isinstance(datacenter, VSphereDatacenterConfig):
            raise TypeError(f"the vsphere provider needs a VSphereDatacenterConfig, not {datacenter.kind}")
        config = datacenter.model_copy(deep=True)
        default_datacenter(config)
        spec = config.spec
        out: Obj = {
            "server": spec.server,
            "thumbprint": spec.thumbprint,
            "insecure": spec.insecure,
            "identityRef": {"kind": "Secret", "name": CREDENTIALS_SECRET, "namespace": SYSTEM_NAMESPACE},
            "datacenter": spec.datacenter,
            "network": spec.network,
            "failureDomains": [
                {k: v for k, v in domain.to_dict().items() if v} for domain in spec.failure_domains or ()
            ],
            "controlPlaneVIP": control_plane_host(cluster),
        }
        return {key: value for key, value in out.items() if value}

    def machine_template_spec(
        self, machine_config: Object, cluster_config: ClusterConfig | None = None
    ) -> Obj:
        """The VM every machine of this config gets (defaults applied, on a copy)."""
        if not isinstance(machine_config, VSphereMachineConfig):
            raise TypeError(f"the vsphere provider needs a VSphereMachineConfig, not {machine_config.kind}")
        config = machine_config.model_copy(deep=True)
        default_machine(config)
        spec = config.spec
        out: Obj = {
            "template": spec.template,
            "cloneMode": spec.clone_mode,
            "numCPUs": spec.num_cpus,
            "memoryMiB": spec.memory_mib,
            "diskGiB": spec.disk_gib,
            "datastore": spec.datastore,
            "folder": spec.folder,
            "resourcePool": spec.resource_pool,
            "storagePolicyName": spec.storage_policy_name,
            "networks": list(spec.networks or ()),
            "tags": list(spec.tags or ()),
            "osFamily": spec.os_family,
        }
        return {key: value for key, value in out.items() if value}

    def sessions(self, context: Context) -> Sessions:
        """The vCenter sessions of one plane, shared by its cluster and machine controllers."""
        return self._sessions.setdefault(id(context), Sessions())

    def etcd_admin(self, context: Context) -> EtcdAdmin:
        # No guest runs in the simulator's VMs: their etcd is the simulated membership the plane
        # keeps for them, as for the sim provider (see anywhere.providers.vsphere.machine).
        from anywhere.providers.sim.etcd_admin import SimEtcdAdmin

        return SimEtcdAdmin(context)

    def controllers(self, context: Context) -> list[Controller]:
        from anywhere.providers.vsphere import cluster, machine

        sessions = self.sessions(context)
        return [
            cluster.controller(context, sessions, workers=CLUSTER_WORKERS),
            machine.controller(context, sessions, workers=MACHINE_WORKERS),
        ]

    def socket_factory(
        self, context: Context, namespace: str, cluster: str, kubeconfig: KubeConfig
    ) -> SocketFactory | None:
        """The served APIs listen on this host's loopback: plain sockets reach them."""
        return None

    async def close(self, context: Context) -> None:
        """Log out of every vCenter this plane used."""
        sessions = self._sessions.pop(id(context), None)
        if sessions is not None:
            sessions.close()


PROVIDER = VSphereProvider()

if TYPE_CHECKING:
    from anywhere.providers.base import Provider

    _conforms: Provider = PROVIDER
