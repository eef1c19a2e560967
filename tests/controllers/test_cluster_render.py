"""What an anywhere cluster specification becomes in Cluster API objects (pure rendering)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anywhere.api import ClusterConfig, check_config
from anywhere.api.capi import CLUSTER_NAME_LABEL, MACHINE_DEPLOYMENT_NAME_LABEL
from anywhere.api.v1alpha1._base import Object, Ref
from anywhere.api.v1alpha1._machine import UserConfiguration
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


# -- how machines boot: the machine config's osFamily and users ---------------------------------------


def _boot(out: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The control plane's kubeadm config spec and the first worker group's template spec."""
    worker = out.workers[0].bootstrap_template["spec"]["template"]["spec"]
    return out.control_plane["spec"]["kubeadmConfigSpec"], worker


def _machine_configs(config: ClusterConfig) -> tuple[Any, Any]:
    """The control plane's machine config and the first worker group's."""
    control = config.cluster.spec.control_plane_configuration
    groups = config.cluster.spec.worker_node_group_configurations
    assert control is not None
    assert control.machine_group_ref is not None
    assert groups
    assert groups[0].machine_group_ref is not None
    cp_ref, worker_ref = control.machine_group_ref, groups[0].machine_group_ref
    assert cp_ref.name != worker_ref.name
    return config.get(cp_ref.kind, cp_ref.name), config.get(worker_ref.kind, worker_ref.name)


def test_ubuntu_machines_boot_with_cloud_config_and_sim_has_no_users(sim_config: ClusterConfig) -> None:
    control_plane, worker = _boot(rendered(sim_config))
    for spec in (control_plane, worker):
        assert "format" not in spec  # cloud-config, the default
        assert "users" not in spec


def test_a_bottlerocket_machine_config_boots_its_machines_with_bottlerocket(
    sim_config: ClusterConfig,
) -> None:
    before = rendered(sim_config)
    _, worker_machine = _machine_configs(sim_config)
    worker_machine.spec.os_family = "bottlerocket"
    after = rendered(sim_config)
    control_plane, worker = _boot(after)
    assert ("format" not in control_plane, worker["format"]) == (True, "bottlerocket")
    # A new template name: the deployment rolls its machines onto the other OS.
    assert name_of(before.workers[0].bootstrap_template) != name_of(after.workers[0].bootstrap_template)
    ref = after.workers[0].machine_deployment["spec"]["template"]["spec"]["bootstrap"]["configRef"]["name"]
    assert ref == name_of(after.workers[0].bootstrap_template)


class _AnyMachineConfig:
    """The sim provider's kinds, but a machine template for any machine config kind (an empty one):
    what cluster_render itself takes from a vSphere or Tinkerbell machine config is under test, not
    those providers' templates."""

    infra_cluster = PROVIDER.infra_cluster
    infra_machine_template = PROVIDER.infra_machine_template

    def infra_cluster_spec(self, cluster: Any, datacenter: Object) -> dict[str, Any]:
        return {}

    def machine_template_spec(
        self, machine_config: Object, config: ClusterConfig | None = None
    ) -> dict[str, Any]:
        return {}


def test_users_of_any_machine_config_kind_become_kubeadm_users(
    config_of: Callable[[str], ClusterConfig],
) -> None:
    config = config_of("vsphere")
    control_machine, worker_machine = _machine_configs(config)
    control_machine.spec.os_family = "bottlerocket"
    control_machine.spec.users = [
        UserConfiguration(name="ec2-user", ssh_authorized_keys=["ssh-ed25519 AAA one", " "]),
        UserConfiguration(name="ops", ssh_authorized_keys=["ssh-ed25519 BBB two"]),
        UserConfiguration(ssh_authorized_keys=["ssh-ed25519 CCC nameless"]),
    ]
    worker_machine.spec.os_family = "ubuntu"
    worker_machine.spec.users = []
    control_plane, worker = _boot(render(config, _AnyMachineConfig()))  # type: ignore[arg-type]
    assert control_plane["format"] == "bottlerocket"
    assert control_plane["users"] == [
        {"name": "ec2-user", "sudo": "ALL=(ALL) NOPASSWD:ALL", "sshAuthorizedKeys": ["ssh-ed25519 AAA one"]},
        {"name": "ops", "sudo": "ALL=(ALL) NOPASSWD:ALL", "sshAuthorizedKeys": ["ssh-ed25519 BBB two"]},
    ]
    assert "format" not in worker  # cloud-config, the default
    assert "users" not in worker


def test_a_blank_placeholder_key_is_not_an_authorized_key(config_of: Callable[[str], ClusterConfig]) -> None:
    config = config_of("tinkerbell")
    out = render(config, _AnyMachineConfig())  # type: ignore[arg-type]
    for spec in _boot(out):
        assert spec["format"] == "bottlerocket"
        assert spec["users"] == [{"name": "ec2-user", "sudo": "ALL=(ALL) NOPASSWD:ALL"}]
