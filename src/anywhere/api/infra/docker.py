"""Specification rules of the docker provider (local development and tests only).

The datacenter config has no fields and there is no machine config kind: nodes are containers on
the local Docker engine and the control plane is reached through a load-balancer container, so the
Cluster must not name an endpoint host.
"""

from __future__ import annotations

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import FieldError
from anywhere.api.infra._rules import ProviderRules, ProviderSample
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1.docker import DockerDatacenterConfig


def validate_cluster(config: ClusterConfig) -> list[FieldError]:
    cluster = config.cluster
    control_plane = cluster.spec.control_plane_configuration
    if control_plane is not None and control_plane.endpoint is not None:
        return [
            FieldError(
                cluster.ref,
                "spec.controlPlaneConfiguration.endpoint",
                "specifying an endpoint host is not supported for docker clusters; remove the endpoint "
                "(the API server is reached through a load-balancer container)",
            )
        ]
    return []


def sample(cluster_name: str) -> ProviderSample:
    """What ``generate clusterconfig --provider docker`` writes: an empty datacenter config only."""
    datacenter = DockerDatacenterConfig(metadata=ObjectMeta(name=cluster_name))
    return ProviderSample(datacenter, None, None, endpoint_host=None)


RULES = ProviderRules(
    name="docker",
    datacenter_kind=DockerDatacenterConfig,
    machine_kind=None,
    sample=sample,
    endpoint_required=False,
    control_plane_only_allowed=False,
    in_place_upgrade_allowed=False,
    kindnetd_allowed=True,
    validate_cluster=validate_cluster,
)
