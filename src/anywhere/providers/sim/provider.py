"""The ``sim`` provider as the generic controllers see it (:class:`~anywhere.providers.base.Provider`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anywhere.api.infra.sim import default_machine
from anywhere.api.v1alpha1.sim import SimDatacenterConfig, SimMachineConfig
from anywhere.controllers.resources import (
    SIM_CLUSTERS,
    SIM_DATACENTERS,
    SIM_MACHINE_CONFIGS,
    SIM_MACHINE_TEMPLATES,
    SIM_MACHINES,
)
from anywhere.providers.base import control_plane_host

if TYPE_CHECKING:
    from anywhere.api.config import ClusterConfig
    from anywhere.api.v1alpha1 import Cluster, Object
    from anywhere.controllers.context import Context
    from anywhere.controllers.etcd import EtcdAdmin
    from anywhere.runtime import Controller, KubeConfig, SocketFactory

__all__ = ["PROVIDER", "SimProvider"]

Obj = dict[str, Any]

# Workers per controller: reconciles wait on the network (the workload APIs), and every machine
# heartbeats every 10 s, so machines need more of them than clusters do.
CLUSTER_WORKERS = 4
MACHINE_WORKERS = 16


class SimProvider:
    """In-memory machines on a simulated node network, one API endpoint per cluster."""

    name = "sim"
    datacenter_kind = SimDatacenterConfig.KIND
    machine_config_kind = SimMachineConfig.KIND
    datacenter = SIM_DATACENTERS
    machine_config = SIM_MACHINE_CONFIGS
    infra_cluster = SIM_CLUSTERS
    infra_machine = SIM_MACHINES
    infra_machine_template = SIM_MACHINE_TEMPLATES

    def infra_cluster_spec(self, cluster: Cluster, datacenter: Object) -> Obj:
        """The SimCluster's node network (from the SimDatacenterConfig) and the endpoint VIP."""
        if not isinstance(datacenter, SimDatacenterConfig):
            raise TypeError(f"the sim provider needs a SimDatacenterConfig, not {datacenter.kind}")
        network = datacenter.spec
        spec = {
            "nodeSubnet": network.node_subnet,
            "gateway": network.gateway,
            "dhcpRange": network.dhcp_range.to_dict() if network.dhcp_range is not None else None,
            "controlPlaneVIP": control_plane_host(cluster),
        }
        return {key: value for key, value in spec.items() if value}

    def machine_template_spec(
        self, machine_config: Object, cluster_config: ClusterConfig | None = None
    ) -> Obj:
        """How machines of this config behave, defaults applied (on a copy)."""
        if not isinstance(machine_config, SimMachineConfig):
            raise TypeError(f"the sim provider needs a SimMachineConfig, not {machine_config.kind}")
        config = machine_config.model_copy(deep=True)
        default_machine(config)
        return {
            "bootDelay": config.spec.boot_delay,
            "bootJitter": config.spec.boot_jitter,
            "failureRate": config.spec.failure_rate,
        }

    def etcd_admin(self, context: Context) -> EtcdAdmin:
        from anywhere.providers.sim.etcd_admin import SimEtcdAdmin

        return SimEtcdAdmin(context)

    def controllers(self, context: Context) -> list[Controller]:
        from anywhere.providers.sim import cluster, machine

        return [
            cluster.controller(context, workers=CLUSTER_WORKERS),
            machine.controller(context, workers=MACHINE_WORKERS),
        ]

    def socket_factory(
        self, context: Context, namespace: str, cluster: str, kubeconfig: KubeConfig
    ) -> SocketFactory | None:
        """Sim endpoints listen on this host's loopback: plain sockets reach them."""
        return None

    async def close(self, context: Context) -> None:
        """Nothing to release: the endpoints stop with their controller."""


PROVIDER = SimProvider()

if TYPE_CHECKING:
    from anywhere.providers.base import Provider

    _conforms: Provider = PROVIDER
