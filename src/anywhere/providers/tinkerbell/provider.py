"""The ``tinkerbell`` provider as the generic controllers see it (:class:`~anywhere.providers.base.Provider`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from anywhere.api.infra.hardware import affinity_of
from anywhere.api.infra.tinkerbell import TEMPLATE_KIND, default_machine
from anywhere.api.v1alpha1.tinkerbell import (
    TinkerbellDatacenterConfig,
    TinkerbellMachineConfig,
    TinkerbellTemplateConfig,
)
from anywhere.controllers.resources import (
    TINKERBELL_CLUSTERS,
    TINKERBELL_DATACENTERS,
    TINKERBELL_MACHINE_CONFIGS,
    TINKERBELL_MACHINE_TEMPLATES,
    TINKERBELL_MACHINES,
)
from anywhere.providers.base import control_plane_host
from anywhere.providers.tinkerbell.bmc import BMCs

if TYPE_CHECKING:
    from anywhere.api.config import ClusterConfig
    from anywhere.api.v1alpha1 import Cluster, Object
    from anywhere.controllers.context import Context
    from anywhere.controllers.etcd import EtcdAdmin
    from anywhere.runtime import Controller, KubeConfig, SocketFactory

__all__ = ["PROVIDER", "TinkerbellProvider"]

Obj = dict[str, Any]

CLUSTER_WORKERS = 2
# Machine reconciles wait on BMCs (each call on a BMC thread) and on workload APIs.
MACHINE_WORKERS = 8
RUNNER_WORKERS = 4


class TinkerbellProvider:
    """Bare metal servers from a hardware inventory, netbooted over Redfish and DHCP (see
    :mod:`anywhere.providers.tinkerbell.machine`)."""

    name = "tinkerbell"
    datacenter_kind = TinkerbellDatacenterConfig.KIND
    machine_config_kind = TinkerbellMachineConfig.KIND
    datacenter = TINKERBELL_DATACENTERS
    machine_config = TINKERBELL_MACHINE_CONFIGS
    infra_cluster = TINKERBELL_CLUSTERS
    infra_machine = TINKERBELL_MACHINES
    infra_machine_template = TINKERBELL_MACHINE_TEMPLATES

    def __init__(self) -> None:
        self._bmcs: dict[int, BMCs] = {}

    def infra_cluster_spec(self, cluster: Cluster, datacenter: Object) -> Obj:
        """The Tinkerbell stack's IP, where images come from, and the VIP."""
        if not isinstance(datacenter, TinkerbellDatacenterConfig):
            raise TypeError(
                f"the tinkerbell provider needs a TinkerbellDatacenterConfig, not {datacenter.kind}"
            )
        spec = datacenter.spec
        out: Obj = {
            "tinkerbellIP": spec.tinkerbell_ip,
            "osImageURL": spec.os_image_url,
            "hookImagesURLPath": spec.hook_images_url_path,
            "controlPlaneVIP": control_plane_host(cluster),
        }
        return {key: value for key, value in out.items() if value}

    def machine_template_spec(
        self, machine_config: Object, cluster_config: ClusterConfig | None = None
    ) -> Obj:
        """The hardware every machine of this config takes, and how it is installed (defaults
        applied, on a copy): its hardwareSelector as an affinity, the workflow template it names
        (as YAML, CAPT's ``templateOverride``), its OS family and image."""
        if not isinstance(machine_config, TinkerbellMachineConfig):
            raise TypeError(
                f"the tinkerbell provider needs a TinkerbellMachineConfig, not {machine_config.kind}"
            )
        config = machine_config.model_copy(deep=True)
        default_machine(config)
        spec = config.spec
        out: Obj = {
            "hardwareAffinity": affinity_of(spec.to_dict()),
            "templateOverride": _template_override(config, cluster_config),
            "osFamily": spec.os_family,
            "osImageURL": spec.os_image_url,
            "bootOptions": {"bootMode": "netboot"},
        }
        return {key: value for key, value in out.items() if value}

    def bmcs(self, context: Context) -> BMCs:
        """The BMC connections of one plane, shared by its controllers."""
        return self._bmcs.setdefault(id(context), BMCs())

    def etcd_admin(self, context: Context) -> EtcdAdmin:
        # No server boots here: their etcd is the simulated membership the plane keeps for them,
        # as for the sim and vsphere providers (see anywhere.providers.tinkerbell.machine).
        from anywhere.providers.sim.etcd_admin import SimEtcdAdmin

        return SimEtcdAdmin(context)

    def controllers(self, context: Context) -> list[Controller]:
        from anywhere.providers.tinkerbell import cluster, machine, runner

        bmcs = self.bmcs(context)
        return [
            cluster.controller(context, workers=CLUSTER_WORKERS),
            machine.controller(context, bmcs, workers=MACHINE_WORKERS),
            runner.controller(context, bmcs, workers=RUNNER_WORKERS),
        ]

    def socket_factory(
        self, context: Context, namespace: str, cluster: str, kubeconfig: KubeConfig
    ) -> SocketFactory | None:
        """The served APIs listen on this host's loopback: plain sockets reach them."""
        return None

    async def close(self, context: Context) -> None:
        """Drop the BMC connections this plane used."""
        bmcs = self._bmcs.pop(id(context), None)
        if bmcs is not None:
            bmcs.close()


def _template_override(machine: TinkerbellMachineConfig, cluster_config: ClusterConfig | None) -> str | None:
    """The workflow of the TinkerbellTemplateConfig ``machine`` names, as YAML; None for the default."""
    ref = machine.spec.template_ref
    if ref is None or not ref.name or cluster_config is None:
        return None
    template = cluster_config.get(ref.kind or TEMPLATE_KIND, ref.name)
    if not isinstance(template, TinkerbellTemplateConfig) or template.spec.template is None:
        return None
    return yaml.safe_dump(template.spec.template.to_dict(), sort_keys=False)


PROVIDER = TinkerbellProvider()

if TYPE_CHECKING:
    from anywhere.providers.base import Provider

    _conforms: Provider = PROVIDER
