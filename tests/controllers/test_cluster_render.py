"""What an anywhere cluster specification becomes in Cluster API objects (pure rendering)."""

from __future__ import annotations

from anywhere.api import ClusterConfig, check_config
from anywhere.api.capi import CLUSTER_NAME_LABEL, MACHINE_DEPLOYMENT_NAME_LABEL
from anywhere.api.v1alpha1._base import Ref
from anywhere.api.v1alpha1.cluster import WorkerNodeGroupConfiguration
from anywhere.controllers.cluster_render import (
    EKSA_CLUSTER_LABEL,
    NODE_CIDR_MASK_ANNOTATION,
    kubernetes_release,
    render,
)
from anywhere.controllers.objects import name_of
from anywhere.providers.sim.provider import PROVIDER


def rendered(config: ClusterConfig):  # type: ignore[no-untyped-def]
    assert check_config(config) == []
    return render(config, PROVIDER)


def test_objects_and_names(sim_config: ClusterConfig) -> None:
    out = rendered(sim_config)
    kinds = [(o["kind"], name_of(o)) for o in out.objects()]
    assert kinds[0] == ("Cluster", "demo")
    assert ("SimCluster", "demo") in kinds
    assert ("KubeadmControlPlane", "demo") in kinds
    assert ("MachineDeployment", "demo-md-0") in kinds
    assert ("MachineHealthCheck", "demo-kcp-unhealthy") in kinds
    assert ("MachineHealthCheck", "demo-md-0-worker-unhealthy") in kinds
    for obj in out.objects():
        assert obj["metadata"]["namespace"] == "eksa-system"
        assert obj["metadata"]["labels"][CLUSTER_NAME_LABEL] == "demo"
        assert obj["metadata"]["labels"][EKSA_CLUSTER_LABEL] == "demo"
    assert out.cluster["metadata"]["annotations"][NODE_CIDR_MASK_ANNOTATION] == "24"


def test_control_plane_spec(sim_config: ClusterConfig) -> None:
    kcp = rendered(sim_config).control_plane["spec"]
    assert kcp["replicas"] == sim_config.cluster.spec.control_plane_configuration.count  # type: ignore[union-attr]
    assert kcp["version"] == kubernetes_release("1.33") == "v1.33.0-eks-1-33-1"
    assert kcp["rolloutStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}
    assert kcp["machineTemplate"]["infrastructureRef"]["name"].startswith("demo-control-plane-")


def test_a_changed_machine_config_renames_the_template(sim_config: ClusterConfig) -> None:
    before = rendered(sim_config)
    for machine in sim_config.of_kind("SimMachineConfig"):
        machine.spec.boot_delay = "7s"  # type: ignore[attr-defined]
    after = rendered(sim_config)
    assert name_of(before.control_plane_template) != name_of(after.control_plane_template)
    ref = after.control_plane["spec"]["machineTemplate"]["infrastructureRef"]["name"]
    assert ref == name_of(after.control_plane_template)


def test_version_change_keeps_template_names(sim_config: ClusterConfig) -> None:
    before = rendered(sim_config)
    sim_config.cluster.spec.kubernetes_version = "1.34"
    after = rendered(sim_config)
    assert name_of(before.control_plane_template) == name_of(after.control_plane_template)
    assert after.control_plane["spec"]["version"] == "v1.34.0-eks-1-34-1"
    assert after.workers[0].machine_deployment["spec"]["template"]["spec"]["version"] == "v1.34.0-eks-1-34-1"


def test_worker_groups_and_autoscaling(sim_config: ClusterConfig) -> None:
    groups = sim_config.cluster.spec.worker_node_group_configurations
    assert groups
    ref = groups[0].machine_group_ref
    groups.append(
        WorkerNodeGroupConfiguration.model_validate(
            {"name": "auto", "count": 2, "autoscalingConfiguration": {"minCount": 1, "maxCount": 4}}
        )
    )
    groups[1].machine_group_ref = Ref(kind=ref.kind, name=ref.name)  # type: ignore[union-attr]
    out = rendered(sim_config)
    auto = out.workers[1].machine_deployment
    assert "replicas" not in auto["spec"]
    assert (
        auto["metadata"]["annotations"]["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == "4"
    )
    assert out.workers[0].machine_deployment["spec"]["replicas"] == groups[0].count
    selector = auto["spec"]["selector"]["matchLabels"]
    assert selector[MACHINE_DEPLOYMENT_NAME_LABEL] == "demo-auto"
    assert auto["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_owner_reference_when_the_cluster_exists(sim_config: ClusterConfig) -> None:
    owner = {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": "demo", "uid": "u1"},
    }
    assert check_config(sim_config) == []
    out = render(sim_config, PROVIDER, owner=owner)
    for obj in out.objects()[1:]:
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert "ownerReferences" not in out.cluster["metadata"]
