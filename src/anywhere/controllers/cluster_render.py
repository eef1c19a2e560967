"""The Cluster API objects an anywhere cluster specification stands for (a pure function).

EKS Anywhere renders a Cluster and its datacenter and machine configs into Cluster API objects in
``eksa-system``; this module does the same for our providers. It does no I/O, so what a spec
becomes can be tested (and diffed by ``upgrade plan``) without a running system.

Machine templates are immutable in Cluster API: a changed machine config yields a template with a
new name (its content hash), and the control plane or machine deployment that points at the new
name rolls its machines. Kubeadm configuration changes roll machines the same way, through the
control plane's spec hash or the deployment's template.

The machine config also decides how its machines boot, for every provider alike: its ``osFamily``
picks the bootstrap data format (``bottlerocket`` for Bottlerocket; otherwise the default,
``cloud-config``, left unset), and its ``users`` become the kubeadm config's users (with
their SSH keys and passwordless sudo), as EKS Anywhere's providers write them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from anywhere.api.capi import (
    BOOTSTRAP_API_VERSION,
    CLUSTER_API_VERSION,
    CLUSTER_NAME_LABEL,
    CONTROL_PLANE_API_VERSION,
    CONTROL_PLANE_LABEL,
    MACHINE_DEPLOYMENT_NAME_LABEL,
)
from anywhere.api.capi.kubeadm import FORMAT_BOTTLEROCKET
from anywhere.api.config import ClusterConfig
from anywhere.api.defaults import (
    DEFAULT_CONTROL_PLANE_MAX_UNHEALTHY,
    DEFAULT_NODE_CIDR_MASK_SIZE,
    DEFAULT_NODE_STARTUP_TIMEOUT,
    DEFAULT_UNHEALTHY_MACHINE_TIMEOUT,
    DEFAULT_WORKER_MAX_UNHEALTHY,
    control_plane_rollout,
    worker_rollout,
)
from anywhere.api.infra._machine import BOTTLEROCKET
from anywhere.api.v1alpha1._base import Object
from anywhere.api.v1alpha1.cluster import Cluster, MachineHealthCheck, WorkerNodeGroupConfiguration
from anywhere.controllers.objects import owner_reference, short_hash
from anywhere.controllers.resources import SYSTEM_NAMESPACE
from anywhere.providers.base import Provider

__all__ = [
    "CLUSTER_NAMESPACE_LABEL",
    "EKSA_CLUSTER_LABEL",
    "NODE_CIDR_MASK_ANNOTATION",
    "Rendered",
    "WorkerGroup",
    "kubernetes_release",
    "render",
]

Obj = dict[str, Any]
# EKS Anywhere's labels on the Cluster API objects of a cluster: which anywhere Cluster they are.
EKSA_CLUSTER_LABEL: Final = "cluster.anywhere.eks.amazonaws.com/cluster-name"
CLUSTER_NAMESPACE_LABEL: Final = "cluster.anywhere.eks.amazonaws.com/cluster-namespace"
NODE_CIDR_MASK_ANNOTATION: Final = "anywhere.eks.amazonaws.com/node-cidr-mask-size"
AUTOSCALER_MIN_ANNOTATION: Final = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
AUTOSCALER_MAX_ANNOTATION: Final = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
ETCD_PORT: Final = 2379
# What EKS Anywhere grants the users of its machine configs.
USER_SUDO: Final = "ALL=(ALL) NOPASSWD:ALL"


def kubernetes_release(version: str) -> str:
    """The release a ``kubernetesVersion`` ("1.33") installs, named as EKS Distro names them."""
    major, _, minor = version.partition(".")
    return f"v{major}.{minor}.0-eks-{major}-{minor}-1"


@dataclass
class WorkerGroup:
    name: str
    machine_deployment: Obj
    machine_template: Obj
    bootstrap_template: Obj
    health_check: Obj


@dataclass
class Rendered:
    """Everything one cluster specification becomes, in the order to create it."""

    cluster: Obj
    infra_cluster: Obj
    control_plane_template: Obj
    control_plane: Obj
    control_plane_health_check: Obj
    workers: list[WorkerGroup] = field(default_factory=list)

    def objects(self) -> list[Obj]:
        out = [self.cluster, self.infra_cluster, self.control_plane_template, self.control_plane]
        for group in self.workers:
            out += [group.machine_template, group.bootstrap_template, group.machine_deployment]
        out.append(self.control_plane_health_check)
        out += [group.health_check for group in self.workers]
        return out


def render(config: ClusterConfig, provider: Provider, *, owner: Obj | None = None) -> Rendered:
    """The Cluster API objects of a defaulted, valid ``config``. ``owner`` is the Cluster API Cluster
    once it exists: the other objects then name it as their owner (so they go with it)."""
    cluster = config.cluster
    name = cluster.name
    labels = {
        CLUSTER_NAME_LABEL: name,
        EKSA_CLUSTER_LABEL: name,
        CLUSTER_NAMESPACE_LABEL: cluster.namespace,
    }
    owners = [owner_reference(owner)] if owner is not None else None

    def meta(object_name: str, extra_labels: dict[str, str] | None = None) -> Obj:
        out: Obj = {
            "name": object_name,
            "namespace": SYSTEM_NAMESPACE,
            "labels": {**labels, **(extra_labels or {})},
        }
        if owners:
            out["ownerReferences"] = owners
        return out

    infra = provider.infra_cluster
    template_kind = provider.infra_machine_template
    datacenter = config.datacenter
    if datacenter is None:
        raise ValueError("render needs the datacenter config")
    spec = cluster.spec
    network = spec.cluster_network
    pods = list(network.pods.cidr_blocks or []) if network and network.pods else []
    services = list(network.services.cidr_blocks or []) if network and network.services else []
    mask = (
        network.nodes.cidr_mask_size if network and network.nodes else None
    ) or DEFAULT_NODE_CIDR_MASK_SIZE

    capi_cluster: Obj = {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "Cluster",
        "metadata": {
            "name": name,
            "namespace": SYSTEM_NAMESPACE,
            "labels": labels,
            "annotations": {NODE_CIDR_MASK_ANNOTATION: str(mask)},
        },
        "spec": {
            "clusterNetwork": {"pods": {"cidrBlocks": pods}, "services": {"cidrBlocks": services}},
            "controlPlaneRef": {
                "apiVersion": CONTROL_PLANE_API_VERSION,
                "kind": "KubeadmControlPlane",
                "name": name,
                "namespace": SYSTEM_NAMESPACE,
            },
            "infrastructureRef": {
                "apiVersion": infra.api_version,
                "kind": infra.kind,
                "name": name,
                "namespace": SYSTEM_NAMESPACE,
            },
        },
    }
    infra_cluster: Obj = {
        "apiVersion": infra.api_version,
        "kind": infra.kind,
        "metadata": meta(name),
        "spec": provider.infra_cluster_spec(cluster, datacenter),
    }

    control = spec.control_plane_configuration
    if control is None or control.machine_group_ref is None:
        raise ValueError("render needs the control plane's machine config")
    cp_machine = config.get(control.machine_group_ref.kind, control.machine_group_ref.name)
    if cp_machine is None:
        raise ValueError(f"render needs {control.machine_group_ref.kind}/{control.machine_group_ref.name}")
    cp_template_spec = {"template": {"spec": provider.machine_template_spec(cp_machine, config)}}
    cp_template_name = f"{name}-control-plane-{short_hash(cp_template_spec)}"
    control_plane_template: Obj = {
        "apiVersion": template_kind.api_version,
        "kind": template_kind.kind,
        "metadata": meta(cp_template_name),
        "spec": cp_template_spec,
    }
    version = kubernetes_release(spec.kubernetes_version or "")
    rollout = control_plane_rollout(cluster)
    strategy: Obj = {"type": rollout.type}
    if rollout.rolling_update is not None:
        strategy["rollingUpdate"] = {"maxSurge": rollout.rolling_update.max_surge}
    control_plane: Obj = {
        "apiVersion": CONTROL_PLANE_API_VERSION,
        "kind": "KubeadmControlPlane",
        "metadata": meta(name),
        "spec": {
            "replicas": control.count or 1,
            "version": version,
            "machineTemplate": {
                "metadata": {"labels": dict(control.labels or {})},
                "infrastructureRef": {
                    "apiVersion": template_kind.api_version,
                    "kind": template_kind.kind,
                    "name": cp_template_name,
                    "namespace": SYSTEM_NAMESPACE,
                },
            },
            "kubeadmConfigSpec": _control_plane_kubeadm(cluster, pods, services, cp_machine),
            "rolloutStrategy": strategy,
        },
    }
    out = Rendered(
        cluster=capi_cluster,
        infra_cluster=infra_cluster,
        control_plane_template=control_plane_template,
        control_plane=control_plane,
        control_plane_health_check=_health_check(
            f"{name}-kcp-unhealthy",
            meta,
            name,
            {CONTROL_PLANE_LABEL: ""},
            control.machine_health_check,
            spec.machine_health_check,
            DEFAULT_CONTROL_PLANE_MAX_UNHEALTHY,
        ),
    )
    for group in spec.worker_node_group_configurations or []:
        out.workers.append(_worker_group(config, provider, group, meta, name))
    return out


def _worker_group(
    config: ClusterConfig,
    provider: Provider,
    group: WorkerNodeGroupConfiguration,
    meta: Any,
    cluster_name: str,
) -> WorkerGroup:
    cluster = config.cluster
    template_kind = provider.infra_machine_template
    ref = group.machine_group_ref
    machine_config = config.get(ref.kind, ref.name) if ref is not None else None
    if machine_config is None:
        raise ValueError(f"render needs the machine config of worker group {group.name}")
    group_name = str(group.name)
    md_name = f"{cluster_name}-{group_name}"
    template_spec = {"template": {"spec": provider.machine_template_spec(machine_config, config)}}
    template_name = f"{md_name}-{short_hash(template_spec)}"
    bootstrap_spec = {"template": {"spec": _worker_kubeadm(group, machine_config)}}
    bootstrap_name = f"{md_name}-{short_hash(bootstrap_spec)}"
    version = kubernetes_release(group.kubernetes_version or cluster.spec.kubernetes_version or "")
    rollout = worker_rollout(group)
    strategy: Obj = {"type": rollout.type}
    if rollout.rolling_update is not None:
        strategy["rollingUpdate"] = {
            "maxSurge": rollout.rolling_update.max_surge,
            "maxUnavailable": rollout.rolling_update.max_unavailable,
        }
    selector = {CLUSTER_NAME_LABEL: cluster_name, MACHINE_DEPLOYMENT_NAME_LABEL: md_name}
    md_meta = meta(md_name)
    md_spec: Obj = {
        "clusterName": cluster_name,
        "selector": {"matchLabels": selector},
        "strategy": strategy,
        "template": {
            "metadata": {"labels": {**dict(group.labels or {}), **selector}},
            "spec": {
                "clusterName": cluster_name,
                "version": version,
                "bootstrap": {
                    "configRef": {
                        "apiVersion": BOOTSTRAP_API_VERSION,
                        "kind": "KubeadmConfigTemplate",
                        "name": bootstrap_name,
                        "namespace": SYSTEM_NAMESPACE,
                    }
                },
                "infrastructureRef": {
                    "apiVersion": template_kind.api_version,
                    "kind": template_kind.kind,
                    "name": template_name,
                    "namespace": SYSTEM_NAMESPACE,
                },
            },
        },
    }
    autoscaling = group.autoscaling_configuration
    if autoscaling is not None:
        # The autoscaler owns the replica count within its bounds (EKS Anywhere leaves it out).
        md_meta["annotations"] = {
            AUTOSCALER_MIN_ANNOTATION: str(autoscaling.min_count or 0),
            AUTOSCALER_MAX_ANNOTATION: str(autoscaling.max_count or 0),
        }
    else:
        md_spec["replicas"] = group.count if group.count is not None else 1
    return WorkerGroup(
        name=group_name,
        machine_deployment={
            "apiVersion": CLUSTER_API_VERSION,
            "kind": "MachineDeployment",
            "metadata": md_meta,
            "spec": md_spec,
        },
        machine_template={
            "apiVersion": template_kind.api_version,
            "kind": template_kind.kind,
            "metadata": meta(template_name),
            "spec": template_spec,
        },
        bootstrap_template={
            "apiVersion": BOOTSTRAP_API_VERSION,
            "kind": "KubeadmConfigTemplate",
            "metadata": meta(bootstrap_name),
            "spec": bootstrap_spec,
        },
        health_check=_health_check(
            f"{md_name}-worker-unhealthy",
            meta,
            cluster_name,
            {MACHINE_DEPLOYMENT_NAME_LABEL: md_name},
            group.machine_health_check,
            cluster.spec.machine_health_check,
            DEFAULT_WORKER_MAX_UNHEALTHY,
        ),
    )


def _health_check(
    name: str,
    meta: Any,
    cluster_name: str,
    match_labels: dict[str, str],
    own: MachineHealthCheck | None,
    cluster_wide: MachineHealthCheck | None,
    default_max_unhealthy: str,
) -> Obj:
    """A MachineHealthCheck as EKS Anywhere writes one: node Ready False or Unknown for the
    unhealthy machine timeout, the node startup timeout, and maxUnhealthy (the group's own setting,
    else the cluster's, else the default)."""

    def pick(attribute: str, default: Any) -> Any:
        for source in (own, cluster_wide):
            value = getattr(source, attribute, None) if source is not None else None
            if value is not None:
                return value
        return default

    unhealthy = pick("unhealthy_machine_timeout", DEFAULT_UNHEALTHY_MACHINE_TIMEOUT)
    # EKS Anywhere: a group's own maxUnhealthy, else the cluster's if the user set one, else the
    # default of the group's kind (100% for the control plane, 40% for workers). The cluster-wide
    # value is always defaulted to 100%, so only another value says the user chose it.
    max_unhealthy = own.max_unhealthy if own is not None else None
    if max_unhealthy is None and cluster_wide is not None:
        chosen = cluster_wide.max_unhealthy
        if chosen is not None and (
            chosen != DEFAULT_CONTROL_PLANE_MAX_UNHEALTHY or default_max_unhealthy == chosen
        ):
            max_unhealthy = chosen
    if max_unhealthy is None:
        max_unhealthy = default_max_unhealthy
    return {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "MachineHealthCheck",
        "metadata": meta(name),
        "spec": {
            "clusterName": cluster_name,
            "selector": {"matchLabels": {CLUSTER_NAME_LABEL: cluster_name, **match_labels}},
            "maxUnhealthy": max_unhealthy,
            "nodeStartupTimeout": pick("node_startup_timeout", DEFAULT_NODE_STARTUP_TIMEOUT),
            "unhealthyConditions": [
                {"type": "Ready", "status": "Unknown", "timeout": unhealthy},
                {"type": "Ready", "status": "False", "timeout": unhealthy},
            ],
        },
    }


def _taints(taints: list[Any] | None) -> list[Obj]:
    return [t.to_dict() for t in taints or []]


def _machine_bootstrap(machine_config: Object) -> Obj:
    """The kubeadm config fields a machine config decides: ``format`` from its ``osFamily`` and
    ``users`` from its users. Read by attribute, so every provider's machine config kind is served
    the same way and a kind without these fields gets cloud-config and no users."""
    spec = getattr(machine_config, "spec", None)
    os_family = getattr(spec, "os_family", None)
    # cloud-config is the default format: left out, so clusters made before formats were rendered
    # keep their spec hashes (and machines) when the controllers are upgraded.
    out: Obj = {"format": FORMAT_BOTTLEROCKET} if os_family == BOTTLEROCKET else {}
    users: list[Obj] = []
    for user in getattr(spec, "users", None) or []:
        if not user.name:
            continue
        entry: Obj = {"name": user.name, "sudo": USER_SUDO}
        # A blank key (a placeholder left in a config) would be an empty line in authorized_keys.
        keys = [key for key in user.ssh_authorized_keys or [] if key and key.strip()]
        if keys:
            entry["sshAuthorizedKeys"] = keys
        users.append(entry)
    if users:
        out["users"] = users
    return out


def _control_plane_kubeadm(
    cluster: Cluster, pods: list[str], services: list[str], machine_config: Object
) -> Obj:
    control = cluster.spec.control_plane_configuration
    assert control is not None
    endpoint = control.endpoint.host if control.endpoint and control.endpoint.host else ""
    node_registration: Obj = {
        "kubeletExtraArgs": {
            "node-labels": ",".join(f"{k}={v}" for k, v in sorted((control.labels or {}).items()))
        },
        "taints": _taints(control.taints),
    }
    api_server: Obj = {"certSANs": list(control.cert_sans or [])}
    if control.api_server_extra_args:
        api_server["extraArgs"] = dict(control.api_server_extra_args)
    return {
        "clusterConfiguration": {
            "clusterName": cluster.name,
            "controlPlaneEndpoint": f"{endpoint}:6443" if endpoint else "",
            "networking": {"podSubnet": ",".join(pods), "serviceSubnet": ",".join(services)},
            "apiServer": api_server,
            "etcd": {"local": {"extraArgs": {"listen-client-urls": f"https://0.0.0.0:{ETCD_PORT}"}}},
        },
        "initConfiguration": {"nodeRegistration": node_registration},
        "joinConfiguration": {"nodeRegistration": node_registration, "controlPlane": {}},
        **_machine_bootstrap(machine_config),
    }


def _worker_kubeadm(group: WorkerNodeGroupConfiguration, machine_config: Object) -> Obj:
    node_registration: Obj = {"taints": _taints(group.taints)}
    if group.labels:
        node_registration["kubeletExtraArgs"] = {
            "node-labels": ",".join(f"{k}={v}" for k, v in sorted(group.labels.items()))
        }
    if group.kubelet_configuration:
        node_registration["kubeletConfiguration"] = dict(group.kubelet_configuration)
    return {
        "joinConfiguration": {"nodeRegistration": node_registration},
        **_machine_bootstrap(machine_config),
    }
