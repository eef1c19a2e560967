"""Each static rule of the Cluster, broken one at a time on a valid configuration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from anywhere.api import ClusterConfig, check_config
from anywhere.api.v1alpha1._base import Ref
from anywhere.api.v1alpha1.cluster import (
    KMS,
    AutoScalingConfiguration,
    BundlesRef,
    CiliumConfig,
    CNIConfig,
    ControlPlaneRollingUpdateParams,
    ControlPlaneUpgradeRolloutStrategy,
    EtcdEncryption,
    EtcdEncryptionProvider,
    ExternalEtcdConfiguration,
    KindnetdConfig,
    MachineHealthCheck,
    ManagementCluster,
    Nodes,
    OCINamespace,
    PackageConfiguration,
    PackageControllerConfiguration,
    PackageControllerCronjob,
    PodIAMConfig,
    ProxyConfiguration,
    RegistryMirrorConfiguration,
    Taint,
    WorkerNodeGroupConfiguration,
    WorkerNodesRollingUpdateParams,
    WorkerNodesUpgradeRolloutStrategy,
)
from tests.conftest import errors_at

Mutate = Callable[[ClusterConfig], None]


def _spec(config: ClusterConfig):  # type: ignore[no-untyped-def]
    return config.cluster.spec


def _cp(config: ClusterConfig):  # type: ignore[no-untyped-def]
    return config.cluster.spec.control_plane_configuration


def _workers(config: ClusterConfig):  # type: ignore[no-untyped-def]
    return config.cluster.spec.worker_node_group_configurations


def _net(config: ClusterConfig):  # type: ignore[no-untyped-def]
    return config.cluster.spec.cluster_network


def _set_name(name: str) -> Mutate:
    def mutate(config: ClusterConfig) -> None:
        config.cluster.metadata.name = name

    return mutate


def _add_worker(config: ClusterConfig, **fields: object) -> None:
    group = _workers(config)[0].model_copy(deep=True)
    for key, value in fields.items():
        setattr(group, key, value)
    _workers(config).append(group)


CASES: list[tuple[str, Mutate, str, str]] = [
    ("name starting with a digit", _set_name("1cluster"), "metadata.name", "is not a valid cluster name"),
    ("name with underscore", _set_name("my_cluster"), "metadata.name", "is not a valid cluster name"),
    ("name of 36 characters", _set_name("a" * 36), "metadata.name", "should be less than 36"),
    (
        "missing kubernetes version",
        lambda c: setattr(_spec(c), "kubernetes_version", None),
        "spec.kubernetesVersion",
        "kubernetesVersion is required",
    ),
    (
        "malformed kubernetes version",
        lambda c: setattr(_spec(c), "kubernetes_version", "v1.30.1"),
        "spec.kubernetesVersion",
        "is not a Kubernetes version",
    ),
    (
        "missing endpoint",
        lambda c: setattr(_cp(c), "endpoint", None),
        "spec.controlPlaneConfiguration.endpoint.host",
        "controlPlaneConfiguration.endpoint.host is not set or is empty",
    ),
    (
        "missing control plane machine ref",
        lambda c: setattr(_cp(c), "machine_group_ref", None),
        "spec.controlPlaneConfiguration.machineGroupRef",
        "machineGroupRef is required",
    ),
    (
        "machine ref to a missing machine config",
        lambda c: setattr(_cp(c), "machine_group_ref", Ref(kind="SimMachineConfig", name="nope")),
        "spec.controlPlaneConfiguration.machineGroupRef",
        "SimMachineConfig/nope is not defined",
    ),
    (
        "machine ref of another provider's kind",
        lambda c: setattr(_cp(c), "machine_group_ref", Ref(kind="VSphereMachineConfig", name="demo")),
        "spec.controlPlaneConfiguration.machineGroupRef.kind",
        "is not a machine config of the sim provider",
    ),
    (
        "zero control plane machines",
        lambda c: setattr(_cp(c), "count", 0),
        "spec.controlPlaneConfiguration.count",
        "must be positive",
    ),
    (
        "even control plane with stacked etcd",
        lambda c: setattr(_cp(c), "count", 2),
        "spec.controlPlaneConfiguration.count",
        "cannot be an even number",
    ),
    (
        "even external etcd",
        lambda c: setattr(
            _spec(c),
            "external_etcd_configuration",
            ExternalEtcdConfiguration(count=2, machine_group_ref=Ref(kind="SimMachineConfig", name="demo")),
        ),
        "spec.externalEtcdConfiguration.count",
        "external etcd count cannot be an even number",
    ),
    (
        "zero external etcd",
        lambda c: setattr(
            _spec(c),
            "external_etcd_configuration",
            ExternalEtcdConfiguration(count=0, machine_group_ref=Ref(kind="SimMachineConfig", name="demo")),
        ),
        "spec.externalEtcdConfiguration.count",
        "must be positive",
    ),
    (
        "no worker groups",
        lambda c: setattr(_spec(c), "worker_node_group_configurations", []),
        "spec.workerNodeGroupConfigurations",
        "workerNodeGroupConfigurations cannot be empty on the sim provider",
    ),
    (
        "duplicate worker group names",
        lambda c: _add_worker(c),
        "spec.workerNodeGroupConfigurations[1].name",
        "worker node group names must be unique",
    ),
    (
        "second worker group without a name",
        lambda c: _add_worker(c, name=None),
        "spec.workerNodeGroupConfigurations[1].name",
        "must specify name for worker nodes",
    ),
    (
        "negative worker count",
        lambda c: setattr(_workers(c)[0], "count", -1),
        "spec.workerNodeGroupConfigurations[0].count",
        "must be 0 or more",
    ),
    (
        "autoscaling min above max",
        lambda c: setattr(
            _workers(c)[0], "autoscaling_configuration", AutoScalingConfiguration(min_count=3, max_count=2)
        ),
        "spec.workerNodeGroupConfigurations[0].autoscalingConfiguration",
        "0 <= minCount <= maxCount",
    ),
    (
        "count outside autoscaling bounds",
        lambda c: setattr(
            _workers(c)[0], "autoscaling_configuration", AutoScalingConfiguration(min_count=5, max_count=6)
        ),
        "spec.workerNodeGroupConfigurations[0].count",
        "must lie between minCount 5 and maxCount 6",
    ),
    (
        "every worker group tainted on a self-managed cluster",
        lambda c: setattr(_workers(c)[0], "taints", [Taint(key="k", value="v", effect="NoSchedule")]),
        "spec.workerNodeGroupConfigurations",
        "at least one WorkerNodeGroupConfiguration must not have NoExecute and/or NoSchedule taints",
    ),
    (
        "invalid taint effect",
        lambda c: setattr(_cp(c), "taints", [Taint(key="k", effect="Sometimes")]),
        "spec.controlPlaneConfiguration.taints[0].effect",
        "taint effect 'Sometimes' is invalid",
    ),
    (
        "invalid label key",
        lambda c: setattr(_workers(c)[0], "labels", {"bad key!": "v"}),
        "spec.workerNodeGroupConfigurations[0].labels[bad key!]",
        "label key 'bad key!' is invalid",
    ),
    (
        "worker version ahead of the control plane",
        lambda c: setattr(_workers(c)[0], "kubernetes_version", "1.34"),
        "spec.workerNodeGroupConfigurations[0].kubernetesVersion",
        "newer than the control plane",
    ),
    (
        "worker version three minors behind",
        lambda c: setattr(_workers(c)[0], "kubernetes_version", "1.30"),
        "spec.workerNodeGroupConfigurations[0].kubernetesVersion",
        "more than 2 minor versions behind",
    ),
    (
        "no CNI",
        lambda c: setattr(_net(c), "cni_config", None),
        "spec.clusterNetwork.cniConfig",
        "cni not specified",
    ),
    (
        "kindnetd outside docker",
        lambda c: setattr(_net(c), "cni_config", CNIConfig(kindnetd=KindnetdConfig())),
        "spec.clusterNetwork.cniConfig.kindnetd",
        "kindnetd is only supported on the docker provider",
    ),
    (
        "two CNIs",
        lambda c: setattr(_net(c), "cni_config", CNIConfig(cilium=CiliumConfig(), kindnetd=KindnetdConfig())),
        "spec.clusterNetwork.cniConfig",
        "cannot specify more than one cni plugins",
    ),
    (
        "cilium skipUpgrade with other settings",
        lambda c: setattr(
            _net(c),
            "cni_config",
            CNIConfig(cilium=CiliumConfig(skip_upgrade=True, policy_enforcement_mode="always")),
        ),
        "spec.clusterNetwork.cniConfig.cilium",
        "remove the other cilium settings (policyEnforcementMode)",
    ),
    (
        "cilium policy enforcement mode",
        lambda c: setattr(
            _net(c), "cni_config", CNIConfig(cilium=CiliumConfig(policy_enforcement_mode="strict"))
        ),
        "spec.clusterNetwork.cniConfig.cilium.policyEnforcementMode",
        "use one of default, always, never",
    ),
    (
        "direct routing without native routing CIDR",
        lambda c: setattr(_net(c), "cni_config", CNIConfig(cilium=CiliumConfig(routing_mode="direct"))),
        "spec.clusterNetwork.cniConfig.cilium.ipv4NativeRoutingCIDR",
        "direct routing needs ipv4NativeRoutingCIDR",
    ),
    (
        "two pod CIDRs",
        lambda c: setattr(_net(c).pods, "cidr_blocks", ["192.168.0.0/16", "172.16.0.0/16"]),
        "spec.clusterNetwork.pods.cidrBlocks",
        "multiple CIDR blocks for pods are not yet supported",
    ),
    (
        "no service CIDR",
        lambda c: setattr(_net(c).services, "cidr_blocks", []),
        "spec.clusterNetwork.services.cidrBlocks",
        "services CIDR block not specified or empty",
    ),
    (
        "malformed pod CIDR",
        lambda c: setattr(_net(c).pods, "cidr_blocks", ["192.168.0.0/33"]),
        "spec.clusterNetwork.pods.cidrBlocks[0]",
        "invalid CIDR block '192.168.0.0/33' for pods",
    ),
    (
        "pod and service CIDRs overlap",
        lambda c: setattr(_net(c).services, "cidr_blocks", ["192.168.128.0/20"]),
        "spec.clusterNetwork.services.cidrBlocks[0]",
        "overlaps the pod CIDR",
    ),
    (
        "pod CIDR overlaps the node subnet",
        lambda c: setattr(_net(c).pods, "cidr_blocks", ["10.10.0.0/16"]),
        "spec.clusterNetwork.pods.cidrBlocks[0]",
        "overlaps the node subnet 10.10.0.0/24",
    ),
    (
        "node mask not longer than the pod mask",
        lambda c: setattr(_net(c), "nodes", Nodes(cidr_mask_size=16)),
        "spec.clusterNetwork.nodes.cidrMaskSize",
        "is smaller than or equal to the size of node subnet with mask 16",
    ),
    (
        "node mask more than 16 bits past the pod mask",
        lambda c: (
            setattr(_net(c).pods, "cidr_blocks", ["172.16.0.0/12"]),
            setattr(_net(c), "nodes", Nodes(cidr_mask_size=29)),
        ),
        "spec.clusterNetwork.nodes.cidrMaskSize",
        "difference is greater than 16",
    ),
    (
        "endpoint outside the node subnet",
        lambda c: setattr(_cp(c).endpoint, "host", "10.99.0.10"),
        "spec.controlPlaneConfiguration.endpoint.host",
        "outside the node subnet 10.10.0.0/24",
    ),
    (
        "endpoint inside the DHCP range",
        lambda c: setattr(_cp(c).endpoint, "host", "10.10.0.150"),
        "spec.controlPlaneConfiguration.endpoint.host",
        "inside the DHCP range 10.10.0.100-10.10.0.250",
    ),
    (
        "endpoint inside the service CIDR",
        lambda c: setattr(_net(c).services, "cidr_blocks", ["10.10.0.0/28"]),
        "spec.controlPlaneConfiguration.endpoint.host",
        "conflicts with services CIDR block 10.10.0.0/28",
    ),
    (
        "proxy without https",
        lambda c: setattr(_spec(c), "proxy_configuration", ProxyConfiguration(http_proxy="10.0.0.1:3128")),
        "spec.proxyConfiguration.httpsProxy",
        "no value set for httpsProxy",
    ),
    (
        "proxy with a bad IP",
        lambda c: setattr(
            _spec(c),
            "proxy_configuration",
            ProxyConfiguration(http_proxy="0.0.0.1234:1", https_proxy="10.0.0.1:1"),
        ),
        "spec.proxyConfiguration.httpProxy",
        "neither a valid IP address nor a valid domain name",
    ),
    (
        "proxy with a bad port",
        lambda c: setattr(
            _spec(c),
            "proxy_configuration",
            ProxyConfiguration(http_proxy="10.0.0.1:1", https_proxy="10.0.0.1:123456"),
        ),
        "spec.proxyConfiguration.httpsProxy",
        "proxy port 123456 is invalid",
    ),
    (
        "registry mirror without endpoint",
        lambda c: setattr(_spec(c), "registry_mirror_configuration", RegistryMirrorConfiguration()),
        "spec.registryMirrorConfiguration.endpoint",
        "no value set for registryMirrorConfiguration.endpoint",
    ),
    (
        "registry mirror port out of range",
        lambda c: setattr(
            _spec(c),
            "registry_mirror_configuration",
            RegistryMirrorConfiguration(endpoint="10.0.0.5", port="70000"),
        ),
        "spec.registryMirrorConfiguration.port",
        "registry mirror port 70000 is invalid",
    ),
    (
        "registry mirror namespace without registry",
        lambda c: setattr(
            _spec(c),
            "registry_mirror_configuration",
            RegistryMirrorConfiguration(
                endpoint="10.0.0.5", oci_namespaces=[OCINamespace(registry="", namespace="x")]
            ),
        ),
        "spec.registryMirrorConfiguration.ociNamespaces[0].registry",
        "registry can't be set to empty in ociNamespaces",
    ),
    (
        "identity provider of another kind",
        lambda c: setattr(_spec(c), "identity_provider_refs", [Ref(kind="LDAPConfig", name="x")]),
        "spec.identityProviderRefs[0].kind",
        "use OIDCConfig or AWSIamConfig",
    ),
    (
        "gitops of another kind",
        lambda c: setattr(_spec(c), "git_ops_ref", Ref(kind="ArgoConfig", name="x")),
        "spec.gitOpsRef.kind",
        "only GitOpsConfig or FluxConfig kinds are supported",
    ),
    (
        "control plane maxSurge 2",
        lambda c: setattr(
            _cp(c),
            "upgrade_rollout_strategy",
            ControlPlaneUpgradeRolloutStrategy(
                type="RollingUpdate", rolling_update=ControlPlaneRollingUpdateParams(max_surge=2)
            ),
        ),
        "spec.controlPlaneConfiguration.upgradeRolloutStrategy.rollingUpdate.maxSurge",
        "maxSurge for control plane must be 0 or 1",
    ),
    (
        "worker maxSurge and maxUnavailable both zero",
        lambda c: setattr(
            _workers(c)[0],
            "upgrade_rollout_strategy",
            WorkerNodesUpgradeRolloutStrategy(
                type="RollingUpdate",
                rolling_update=WorkerNodesRollingUpdateParams(max_surge=0, max_unavailable=0),
            ),
        ),
        "spec.workerNodeGroupConfigurations[0].upgradeRolloutStrategy.rollingUpdate",
        "cannot both be 0",
    ),
    (
        "InPlace outside tinkerbell",
        lambda c: setattr(
            _cp(c), "upgrade_rollout_strategy", ControlPlaneUpgradeRolloutStrategy(type="InPlace")
        ),
        "spec.controlPlaneConfiguration.upgradeRolloutStrategy.type",
        "InPlace upgrades are only supported on tinkerbell",
    ),
    (
        "bundlesRef with eksaVersion",
        lambda c: (
            setattr(_spec(c), "eksa_version", "v0.22.0"),
            setattr(_spec(c), "bundles_ref", BundlesRef(name="b", namespace="n", api_version="v")),
        ),
        "spec.eksaVersion",
        "cannot pass both bundlesRef and eksaVersion",
    ),
    (
        "eksaVersion not semver",
        lambda c: setattr(_spec(c), "eksa_version", "latest"),
        "spec.eksaVersion",
        "is not a valid semver",
    ),
    (
        "package controller on a workload cluster",
        lambda c: (
            setattr(_spec(c), "management_cluster", ManagementCluster(name="mgmt")),
            setattr(
                _spec(c), "packages", PackageConfiguration(controller=PackageControllerConfiguration(tag="x"))
            ),
        ),
        "spec.packages.controller",
        "controller should not be specified for a workload cluster",
    ),
    (
        "package cronjob on a workload cluster",
        lambda c: (
            setattr(_spec(c), "management_cluster", ManagementCluster(name="mgmt")),
            setattr(_spec(c), "packages", PackageConfiguration(cronjob=PackageControllerCronjob(tag="x"))),
        ),
        "spec.packages.cronjob",
        "cronjob should not be specified for a workload cluster",
    ),
    (
        "machine health check timeout not a duration",
        lambda c: setattr(
            _spec(c), "machine_health_check", MachineHealthCheck(node_startup_timeout="ten minutes")
        ),
        "spec.machineHealthCheck.nodeStartupTimeout",
        "is not a duration",
    ),
    (
        "machine health check maxUnhealthy over 100%",
        lambda c: setattr(_spec(c), "machine_health_check", MachineHealthCheck(max_unhealthy="150%")),
        "spec.machineHealthCheck.maxUnhealthy",
        "from 0% to 100%",
    ),
    (
        "pod IAM issuer not https",
        lambda c: setattr(_spec(c), "pod_iam_config", PodIAMConfig(service_account_issuer="http://x")),
        "spec.podIamConfig.serviceAccountIssuer",
        "must be an https:// URL",
    ),
    (
        "etcd encryption without resources",
        lambda c: setattr(
            _spec(c),
            "etcd_encryption",
            [
                EtcdEncryption(
                    providers=[EtcdEncryptionProvider(kms=KMS(name="k", socket_listen_address="unix:///k"))]
                )
            ],
        ),
        "spec.etcdEncryption[0].resources",
        "at least one resource is required",
    ),
    (
        "datacenter ref to a missing object",
        lambda c: setattr(_spec(c).datacenter_ref, "name", "elsewhere"),
        "spec.datacenterRef",
        "SimDatacenterConfig/elsewhere is not defined",
    ),
    (
        "datacenter ref of an unknown kind",
        lambda c: setattr(_spec(c).datacenter_ref, "kind", "MarsDatacenterConfig"),
        "spec.datacenterRef.kind",
        "is not a datacenter kind",
    ),
]


@pytest.mark.parametrize(("mutate", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_reports_its_field_and_message(
    sim_config: ClusterConfig, mutate: Mutate, field: str, message: str
) -> None:
    assert (
        check_config(sim_config.__class__(sim_config.cluster.model_copy(deep=True), sim_config.objects)) == []
    )
    mutate(sim_config)
    errors = check_config(sim_config)
    messages = errors_at(errors, field)
    assert any(message in m for m in messages), f"{message!r} not among {[str(e) for e in errors]}"


def test_every_error_is_reported_at_once(sim_config: ClusterConfig) -> None:
    sim_config.cluster.metadata.name = "1bad"
    sim_config.cluster.spec.control_plane_configuration.count = 2  # type: ignore[union-attr]
    sim_config.cluster.spec.cluster_network.pods.cidr_blocks = ["nonsense"]  # type: ignore[union-attr]
    fields = {e.field for e in check_config(sim_config)}
    assert {
        "metadata.name",
        "spec.controlPlaneConfiguration.count",
        "spec.clusterNetwork.pods.cidrBlocks[0]",
    } <= fields


def test_workload_cluster_may_taint_every_worker_group(sim_config: ClusterConfig) -> None:
    sim_config.cluster.spec.management_cluster = ManagementCluster(name="mgmt")
    sim_config.cluster.spec.worker_node_group_configurations[0].taints = [  # type: ignore[index]
        Taint(key="k", value="v", effect="NoExecute")
    ]
    assert check_config(sim_config) == []


def test_control_plane_only_cluster_allowed_on_tinkerbell(config_of) -> None:  # type: ignore[no-untyped-def]
    config = config_of("tinkerbell")
    config.cluster.spec.worker_node_group_configurations = None
    assert check_config(config) == []
    config.cluster.spec.control_plane_configuration.taints = [Taint(key="k", effect="NoSchedule")]
    assert any(
        "cannot taint control plane when there is no worker node" in e.message for e in check_config(config)
    )


def test_external_etcd_allows_even_control_plane(sim_config: ClusterConfig) -> None:
    sim_config.cluster.spec.control_plane_configuration.count = 2  # type: ignore[union-attr]
    sim_config.cluster.spec.external_etcd_configuration = ExternalEtcdConfiguration(
        count=3, machine_group_ref=Ref(kind="SimMachineConfig", name="demo")
    )
    assert check_config(sim_config) == []


def test_worker_autoscaling_defaults_count_to_min(sim_config: ClusterConfig) -> None:
    group = WorkerNodeGroupConfiguration(
        name="md-1",
        machine_group_ref=Ref(kind="SimMachineConfig", name="demo"),
        autoscaling_configuration=AutoScalingConfiguration(min_count=2, max_count=5),
    )
    sim_config.cluster.spec.worker_node_group_configurations.append(group)  # type: ignore[union-attr]
    assert check_config(sim_config) == []
    assert group.count == 2
