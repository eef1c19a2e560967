"""Update validation: immutable fields, version moves, and the paused annotation."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from anywhere.api import ClusterConfig, check_config, validate_update
from anywhere.api.generate import generate_config
from anywhere.api.v1alpha1._base import Ref
from anywhere.api.v1alpha1.cluster import (
    DNS,
    CiliumConfig,
    ClusterStatus,
    CNIConfig,
    ExternalEtcdConfiguration,
    ManagementCluster,
    Nodes,
    ProxyConfiguration,
    ResolvConf,
)
from anywhere.api.validation.update import PAUSED_ANNOTATION, SKIP_EKSA_SKEW_ANNOTATION
from tests.conftest import errors_at

Change = Callable[[ClusterConfig], None]


def pair(provider: str = "sim") -> tuple[ClusterConfig, ClusterConfig]:
    old = generate_config("demo", provider)
    assert check_config(old) == []
    return old, copy.deepcopy(old)


def spec(config: ClusterConfig):  # type: ignore[no-untyped-def]
    return config.cluster.spec


IMMUTABLE: list[tuple[str, Change, str, str]] = [
    (
        "endpoint",
        lambda c: setattr(spec(c).control_plane_configuration.endpoint, "host", "10.10.0.11"),
        "spec.controlPlaneConfiguration.endpoint.host",
        "field is immutable",
    ),
    (
        "pods",
        lambda c: setattr(spec(c).cluster_network.pods, "cidr_blocks", ["172.16.0.0/16"]),
        "spec.clusterNetwork.pods",
        "field is immutable",
    ),
    (
        "services",
        lambda c: setattr(spec(c).cluster_network.services, "cidr_blocks", ["10.128.0.0/12"]),
        "spec.clusterNetwork.services",
        "field is immutable",
    ),
    (
        "dns",
        lambda c: setattr(spec(c).cluster_network, "dns", DNS(resolv_conf=ResolvConf(path="/etc/r.conf"))),
        "spec.clusterNetwork.dns",
        "field is immutable",
    ),
    (
        "nodes",
        lambda c: setattr(spec(c).cluster_network, "nodes", Nodes(cidr_mask_size=25)),
        "spec.clusterNetwork.nodes",
        "field is immutable",
    ),
    (
        "proxy",
        lambda c: setattr(
            spec(c),
            "proxy_configuration",
            ProxyConfiguration(http_proxy="1.2.3.4:3128", https_proxy="1.2.3.4:3128"),
        ),
        "spec.proxyConfiguration",
        "field is immutable",
    ),
    (
        "management cluster",
        lambda c: setattr(spec(c), "management_cluster", ManagementCluster(name="mgmt")),
        "spec.managementCluster.name",
        "field is immutable",
    ),
    (
        "datacenter",
        lambda c: setattr(spec(c).datacenter_ref, "name", "other"),
        "spec.datacenterRef",
        "field is immutable",
    ),
    (
        "stacked to external etcd",
        lambda c: setattr(
            spec(c),
            "external_etcd_configuration",
            ExternalEtcdConfiguration(count=3, machine_group_ref=Ref(kind="SimMachineConfig", name="demo")),
        ),
        "spec.externalEtcdConfiguration",
        "cannot switch from stacked to external etcd topology",
    ),
    (
        "AWS IAM config",
        lambda c: setattr(spec(c), "identity_provider_refs", [Ref(kind="AWSIamConfig", name="other")]),
        "spec.identityProviderRefs",
        "field is immutable",
    ),
    (
        "datacenter subnet",
        lambda c: setattr(c.objects[0].spec, "node_subnet", "10.11.0.0/24"),
        "spec.nodeSubnet",
        "field is immutable",
    ),
]


@pytest.mark.parametrize(
    ("change", "field", "message"), [c[1:] for c in IMMUTABLE], ids=[c[0] for c in IMMUTABLE]
)
def test_immutable_field_is_refused_unless_paused(change: Change, field: str, message: str) -> None:
    old, new = pair()
    if field == "spec.identityProviderRefs":
        old.cluster.spec.identity_provider_refs = [Ref(kind="AWSIamConfig", name="first")]
    change(new)
    errors = validate_update(old, new)
    assert any(message in m for m in errors_at(errors, field)), [str(e) for e in errors]

    old.cluster.metadata.annotations = {PAUSED_ANNOTATION: "true"}
    assert validate_update(old, new) == []


def test_reordering_cidrs_is_not_a_change() -> None:
    old, new = pair()
    old.cluster.spec.proxy_configuration = ProxyConfiguration(
        http_proxy="1.2.3.4:1", https_proxy="1.2.3.4:1", no_proxy=["a", "b"]
    )
    new.cluster.spec.proxy_configuration = ProxyConfiguration(
        http_proxy="1.2.3.4:1", https_proxy="1.2.3.4:1", no_proxy=["b", "a"]
    )
    assert validate_update(old, new) == []


def test_scaling_and_upgrading_are_allowed() -> None:
    old, new = pair()
    new.cluster.spec.control_plane_configuration.count = 5
    new.cluster.spec.worker_node_group_configurations[0].count = 7
    new.cluster.spec.kubernetes_version = "1.34"
    assert validate_update(old, new) == []


@pytest.mark.parametrize(
    ("old_version", "new_version", "message"),
    [
        ("1.33", "1.32", "kubernetes version downgrade is not supported (1.33) -> (1.32)"),
        ("1.31", "1.33", "only +1 minor version skew is supported, minor version skew detected 2"),
    ],
)
def test_cluster_version_moves_one_minor_forward(old_version: str, new_version: str, message: str) -> None:
    old, new = pair()
    old.cluster.spec.kubernetes_version = old_version
    new.cluster.spec.kubernetes_version = new_version
    assert any(message in m for m in errors_at(validate_update(old, new), "spec.kubernetesVersion"))
    old.cluster.metadata.annotations = {PAUSED_ANNOTATION: "true"}
    assert any(message in m for m in errors_at(validate_update(old, new), "spec.kubernetesVersion"))


def test_worker_group_version_rules() -> None:
    field = "spec.workerNodeGroupConfigurations[0].kubernetesVersion"
    old, new = pair()
    old.cluster.spec.worker_node_group_configurations[0].kubernetes_version = "1.31"
    new.cluster.spec.worker_node_group_configurations[0].kubernetes_version = "1.33"
    assert any("skew detected 2" in m for m in errors_at(validate_update(old, new), field))
    new.cluster.spec.worker_node_group_configurations[0].kubernetes_version = "1.30"
    assert any("downgrade" in m for m in errors_at(validate_update(old, new), field))
    new.cluster.spec.worker_node_group_configurations[0].kubernetes_version = "1.32"
    assert validate_update(old, new) == []
    new.cluster.spec.worker_node_group_configurations[0].kubernetes_version = "1.31"
    new.cluster.spec.kubernetes_version = "1.34"
    assert any("within 2 versions" in m for m in errors_at(validate_update(old, new), field))


def test_removing_worker_override_while_upgrading_is_refused() -> None:
    old, new = pair()
    old.cluster.spec.worker_node_group_configurations[0].kubernetes_version = "1.32"
    new.cluster.spec.kubernetes_version = "1.34"
    errors = validate_update(old, new)
    assert any("can't simultaneously remove worker kubernetesVersion" in e.message for e in errors)


def test_eksa_version_rules() -> None:
    old, new = pair()
    old.cluster.spec.eksa_version = "v0.21.3"
    new.cluster.spec.eksa_version = "v0.23.0"
    assert any(
        "skew of 1 minor version" in m for m in errors_at(validate_update(old, new), "spec.eksaVersion")
    )
    new.cluster.spec.eksa_version = "v0.20.0"
    assert any("must be incremental" in m for m in errors_at(validate_update(old, new), "spec.eksaVersion"))
    old.cluster.status = ClusterStatus(failure_reason="EksaVersionInvalid")
    assert validate_update(old, new) == []
    old.cluster.status = None
    new.cluster.metadata.annotations = {SKIP_EKSA_SKEW_ANNOTATION: "true"}
    assert validate_update(old, new) == []
    new.cluster.spec.eksa_version = None
    assert any("cannot be removed" in m for m in errors_at(validate_update(old, new), "spec.eksaVersion"))


def test_gitops_ref_immutable_only_on_workload_clusters() -> None:
    old, new = pair()
    new.cluster.spec.git_ops_ref = Ref(kind="FluxConfig", name="f")
    assert validate_update(old, new) == []
    for config in (old, new):
        config.cluster.spec.management_cluster = ManagementCluster(name="mgmt")
    assert errors_at(validate_update(old, new), "spec.gitOpsRef")


def test_cilium_skip_upgrade_cannot_be_turned_off() -> None:
    old, new = pair()
    old.cluster.spec.cluster_network.cni_config = CNIConfig(cilium=CiliumConfig(skip_upgrade=True))
    assert errors_at(validate_update(old, new), "spec.clusterNetwork.cniConfig.cilium.skipUpgrade")


def test_vsphere_machine_os_family_is_immutable() -> None:
    old, new = pair("vsphere")
    machine = next(o for o in new.objects if o.kind == "VSphereMachineConfig")
    machine.spec.os_family = "ubuntu" if machine.spec.os_family != "ubuntu" else "redhat"
    assert any(e.field == "spec.osFamily" for e in validate_update(old, new))
