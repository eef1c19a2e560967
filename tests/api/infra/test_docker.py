from __future__ import annotations

import pytest
import yaml

from anywhere.api.config import ClusterConfig
from anywhere.api.infra import docker
from anywhere.api.v1alpha1.cluster import Cluster
from anywhere.api.v1alpha1.docker import DockerDatacenterConfig

DATACENTER_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: DockerDatacenterConfig
metadata:
  name: dev
spec: {}
status: {}
"""

CLUSTER_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: Cluster
metadata:
  name: dev
spec:
  kubernetesVersion: "1.30"
  controlPlaneConfiguration:
    count: 1
  workerNodeGroupConfigurations:
  - name: md-0
    count: 1
  datacenterRef:
    kind: DockerDatacenterConfig
    name: dev
  clusterNetwork:
    cniConfig:
      kindnetd: {}
"""


def load_datacenter() -> DockerDatacenterConfig:
    return DockerDatacenterConfig.model_validate(yaml.safe_load(DATACENTER_YAML), by_name=False)


def config(cluster_yaml: str = CLUSTER_YAML) -> ClusterConfig:
    cluster = Cluster.model_validate(yaml.safe_load(cluster_yaml), by_name=False)
    return ClusterConfig(cluster, [load_datacenter()])


def test_round_trip() -> None:
    dc = load_datacenter()
    assert DockerDatacenterConfig.model_validate(dc.to_dict(), by_name=False) == dc
    assert dc.to_dict()["spec"] == {}


def test_spec_takes_no_fields() -> None:
    data = yaml.safe_load(DATACENTER_YAML)
    data["spec"] = {"network": "kind"}
    with pytest.raises(ValueError, match="network"):
        DockerDatacenterConfig.model_validate(data, by_name=False)


def test_sample_validates_clean() -> None:
    sample = docker.sample("dev")
    assert isinstance(sample.datacenter, DockerDatacenterConfig)
    assert sample.datacenter.name == "dev"
    assert sample.control_plane_machine is None
    assert sample.worker_machine is None
    assert sample.endpoint_host is None
    assert docker.RULES.validate_datacenter(sample.datacenter) == []
    assert docker.validate_cluster(config()) == []


def test_rules_flags() -> None:
    rules = docker.RULES
    assert rules.name == "docker"
    assert rules.datacenter_kind is DockerDatacenterConfig
    assert rules.machine_kind is None
    assert not rules.endpoint_required
    assert rules.kindnetd_allowed


def test_endpoint_is_refused() -> None:
    with_endpoint = CLUSTER_YAML.replace(
        "    count: 1\n  workerNode", "    count: 1\n    endpoint:\n      host: 10.0.0.10\n  workerNode"
    )
    errors = docker.validate_cluster(config(with_endpoint))
    assert [e.field for e in errors] == ["spec.controlPlaneConfiguration.endpoint"]
    assert errors[0].obj == "Cluster/dev"
    assert "not supported for docker" in errors[0].message


def test_no_immutable_fields() -> None:
    assert docker.RULES.datacenter_update(load_datacenter(), load_datacenter()) == []
