"""``generate clusterconfig``: a complete, valid configuration to start from, per provider."""

from __future__ import annotations

from anywhere.api.config import ClusterConfig
from anywhere.api.defaults import DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, DEFAULT_WORKER_GROUP_NAME
from anywhere.api.errors import SpecError
from anywhere.api.infra import PROVIDERS
from anywhere.api.v1alpha1._base import Object, ObjectMeta, Ref
from anywhere.api.v1alpha1.cluster import (
    CIDRBlocks,
    CiliumConfig,
    Cluster,
    ClusterNetwork,
    ClusterSpec,
    CNIConfig,
    ControlPlaneConfiguration,
    Endpoint,
    ExternalEtcdConfiguration,
    KindnetdConfig,
    WorkerNodeGroupConfiguration,
)

DEFAULT_KUBERNETES_VERSION = "1.33"


def generate_config(
    name: str, provider_name: str, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> ClusterConfig:
    """The Cluster and its provider objects, in the order ``eksctl anywhere`` writes them."""
    rules = PROVIDERS.get(provider_name)
    if rules is None:
        raise SpecError(f"unknown provider {provider_name!r}; use one of {', '.join(PROVIDERS)}")
    sample = rules.sample(name)

    def ref(obj: Object | None) -> Ref | None:
        return Ref(kind=obj.kind, name=obj.name) if obj is not None else None

    cni = CNIConfig(kindnetd=KindnetdConfig()) if rules.kindnetd_allowed else CNIConfig(cilium=CiliumConfig())
    cluster = Cluster(
        metadata=ObjectMeta(name=name),
        spec=ClusterSpec(
            kubernetes_version=kubernetes_version,
            cluster_network=ClusterNetwork(
                cni_config=cni,
                pods=CIDRBlocks(cidr_blocks=[DEFAULT_POD_CIDR]),
                services=CIDRBlocks(cidr_blocks=[DEFAULT_SERVICE_CIDR]),
            ),
            control_plane_configuration=ControlPlaneConfiguration(
                count=sample.control_plane_count,
                endpoint=Endpoint(host=sample.endpoint_host) if sample.endpoint_host else None,
                machine_group_ref=ref(sample.control_plane_machine),
            ),
            datacenter_ref=Ref(kind=sample.datacenter.kind, name=sample.datacenter.name),
            worker_node_group_configurations=[
                WorkerNodeGroupConfiguration(
                    name=DEFAULT_WORKER_GROUP_NAME,
                    count=sample.worker_count,
                    machine_group_ref=ref(sample.worker_machine),
                )
            ],
            external_etcd_configuration=(
                ExternalEtcdConfiguration(
                    count=sample.external_etcd_count, machine_group_ref=ref(sample.external_etcd_machine)
                )
                if sample.external_etcd_count
                else None
            ),
        ),
    )
    machines: list[Object] = []
    for machine in (sample.control_plane_machine, sample.worker_machine, sample.external_etcd_machine):
        if machine is not None and all(m.name != machine.name for m in machines):
            machines.append(machine)
    return ClusterConfig(cluster, [sample.datacenter, *machines, *sample.extra])
