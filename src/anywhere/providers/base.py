"""The interface between the provider-neutral controllers and one kind of infrastructure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    from anywhere.api.config import ClusterConfig
    from anywhere.api.v1alpha1 import Cluster, Object
    from anywhere.controllers.context import Context
    from anywhere.controllers.etcd import EtcdAdmin
    from anywhere.runtime import Controller, KubeConfig, Resource, SocketFactory

__all__ = ["CREATE_ERROR", "UPDATE_ERROR", "Provider", "control_plane_host"]

Obj = dict[str, Any]


# What a machine that failed to come up is to Cluster API (``failureReason``): a terminal error
# creating it, so health checks and the control plane replace it.
CREATE_ERROR: Final = "CreateError"
UPDATE_ERROR: Final = "UpdateError"


def control_plane_host(cluster: Cluster) -> str | None:
    """The control plane endpoint (VIP) the user chose: ``controlPlaneConfiguration.endpoint.host``."""
    control = cluster.spec.control_plane_configuration
    return control.endpoint.host if control is not None and control.endpoint is not None else None


class Provider(Protocol):
    """One infrastructure: its kinds, how the cluster controller renders them, its controllers.

    The anywhere cluster controller turns a Cluster and its datacenter and machine configs into
    Cluster API objects; the infrastructure parts of those (the infrastructure cluster, a machine
    template per machine group) come from here. The provider's own controllers then make machines
    real for the infrastructure machines the generic controllers create from those templates.
    """

    name: str
    datacenter_kind: str
    machine_config_kind: str
    datacenter: Resource
    machine_config: Resource
    infra_cluster: Resource
    infra_machine: Resource
    infra_machine_template: Resource

    def infra_cluster_spec(self, cluster: Cluster, datacenter: Object) -> Obj:
        """``spec`` of the infrastructure cluster object."""
        ...

    def machine_template_spec(
        self, machine_config: Object, cluster_config: ClusterConfig | None = None
    ) -> Obj:
        """``spec.template.spec`` of a machine template for machines of ``machine_config``.

        ``cluster_config`` is the whole configuration, for what a machine takes from elsewhere in it
        (the datacenter's OS image, a workflow template the machine config names)."""
        ...

    def etcd_admin(self, context: Context) -> EtcdAdmin:
        """etcd membership operations on this provider's clusters."""
        ...

    def controllers(self, context: Context) -> list[Controller]:
        """The provider's controllers (infrastructure cluster and machines), to run with the rest."""
        ...

    def socket_factory(
        self, context: Context, namespace: str, cluster: str, kubeconfig: KubeConfig
    ) -> SocketFactory | None:
        """How the plane's connections reach this cluster's API, when plain sockets cannot (its
        endpoint is in another network namespace); None for plain sockets or another provider's cluster."""
        ...

    async def close(self, context: Context) -> None:
        """Release what the provider holds for ``context`` (connections), as the plane stops."""
        ...
