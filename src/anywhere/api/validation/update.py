"""Update validation: what may change between the configuration a cluster has and a new one.

Some fields cannot change once a cluster exists (its endpoint, its networks, its datacenter) because
changing them would need a new cluster; versions may only move forward, one minor at a time. The
``anywhere.eks.amazonaws.com/paused`` annotation on the existing Cluster lifts the immutability rules,
as in EKS Anywhere: a paused cluster is not reconciled, so its spec may be edited freely (versions
still may not go backwards).
"""

from __future__ import annotations

from typing import Any

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._rules import immutable
from anywhere.api.v1alpha1._base import Model, Ref
from anywhere.api.v1alpha1.cluster import CIDRBlocks, Cluster, ClusterNetwork, ControlPlaneConfiguration
from anywhere.api.validation import objects
from anywhere.api.validation._common import SEMVER, minor_of

PAUSED_ANNOTATION = "anywhere.eks.amazonaws.com/paused"
MAX_MINOR_STEP = 1


def is_paused(cluster: Cluster) -> bool:
    return cluster.annotations.get(PAUSED_ANNOTATION, "").lower() == "true"


def validate_update(old: ClusterConfig, new: ClusterConfig) -> list[FieldError]:
    """Every error in moving from ``old`` to ``new`` (static rules of ``new`` are checked apart)."""
    errors = cluster_update(old.cluster, new.cluster)
    if is_paused(old.cluster):
        return errors
    for obj in new.objects:
        before = old.get(obj.kind, obj.name)
        if before is not None:
            errors.extend(objects.object_update(before, obj))
    return errors


def cluster_update(old: Cluster, new: Cluster) -> list[FieldError]:
    """The Cluster's own update rules: immutable fields unless paused, and version moves always."""
    errors = ErrorList(new.ref)
    if old.name != new.name:
        errors.add("metadata.name", f"a cluster cannot be renamed (was {old.name!r})")
    if not is_paused(old):
        _immutable_fields(errors, old, new)
    _kubernetes_versions(errors, old, new)
    _eksa_version(errors, old, new)
    return errors.errors


def _immutable_fields(errors: ErrorList, old: Cluster, new: Cluster) -> None:
    ref = new.ref
    before, after = old.spec, new.spec

    def same(field: str, a: object, b: object) -> None:
        errors.extend(immutable(ref, field, a, b))

    same("spec.managementCluster.name", _management_name(old), _management_name(new))
    same("spec.datacenterRef", _ref_text(before.datacenter_ref), _ref_text(after.datacenter_ref))
    same(
        "spec.controlPlaneConfiguration.endpoint.host",
        _endpoint(before.control_plane_configuration),
        _endpoint(after.control_plane_configuration),
    )
    old_net = before.cluster_network or ClusterNetwork()
    new_net = after.cluster_network or ClusterNetwork()
    same("spec.clusterNetwork.pods", _blocks(old_net.pods), _blocks(new_net.pods))
    same("spec.clusterNetwork.services", _blocks(old_net.services), _blocks(new_net.services))
    same("spec.clusterNetwork.dns", _dump(old_net.dns), _dump(new_net.dns))
    same("spec.clusterNetwork.nodes", _dump(old_net.nodes), _dump(new_net.nodes))
    same("spec.proxyConfiguration", _dump(before.proxy_configuration), _dump(after.proxy_configuration))
    old_etcd = "external" if before.external_etcd_configuration is not None else "stacked"
    new_etcd = "external" if after.external_etcd_configuration is not None else "stacked"
    same("spec.externalEtcdConfiguration", f"{old_etcd} etcd", f"{new_etcd} etcd")
    if not new.is_self_managed:
        same("spec.gitOpsRef", _ref_text(before.git_ops_ref), _ref_text(after.git_ops_ref))
    old_cni = _cni_name(old_net)
    new_cni = _cni_name(new_net)
    if old_cni and new_cni and old_cni != new_cni:
        errors.add("spec.clusterNetwork.cniConfig", f"the CNI cannot change from {old_cni} to {new_cni}")


def _kubernetes_versions(errors: ErrorList, old: Cluster, new: Cluster) -> None:
    _version_step(errors, "spec.kubernetesVersion", old.spec.kubernetes_version, new.spec.kubernetes_version)
    old_groups = {g.name: g for g in old.worker_groups if g.name}
    for index, group in enumerate(new.worker_groups):
        before = old_groups.get(group.name or "")
        if before is None:
            continue
        old_version = before.kubernetes_version or old.spec.kubernetes_version
        new_version = group.kubernetes_version or new.spec.kubernetes_version
        _version_step(
            errors, f"spec.workerNodeGroupConfigurations[{index}].kubernetesVersion", old_version, new_version
        )


def _version_step(errors: ErrorList, field: str, old: str | None, new: str | None) -> None:
    old_minor, new_minor = minor_of(old), minor_of(new)
    if old_minor is None or new_minor is None:
        return
    if new_minor < old_minor:
        errors.add(field, f"cannot downgrade Kubernetes from {old} to {new}")
    elif new_minor - old_minor > MAX_MINOR_STEP:
        errors.add(
            field,
            f"cannot upgrade Kubernetes from {old} to {new} in one step; upgrade one minor version at a time "
            f"(next: 1.{old_minor + 1})",
        )


def _eksa_version(errors: ErrorList, old: Cluster, new: Cluster) -> None:
    before, after = old.spec.eksa_version, new.spec.eksa_version
    if before is None or after is None:
        return
    old_match, new_match = SEMVER.match(before), SEMVER.match(after)
    if old_match is None or new_match is None:
        return
    old_parts = tuple(int(old_match.group(i)) for i in (1, 2, 3))
    new_parts = tuple(int(new_match.group(i)) for i in (1, 2, 3))
    if new_parts < old_parts:
        errors.add("spec.eksaVersion", f"cannot downgrade eksaVersion from {before} to {after}")
    elif new_parts[0] != old_parts[0] or new_parts[1] - old_parts[1] > MAX_MINOR_STEP:
        errors.add(
            "spec.eksaVersion",
            f"cannot move eksaVersion from {before} to {after}; upgrade at most one minor version at a time",
        )


def _management_name(cluster: Cluster) -> str:
    management = cluster.spec.management_cluster
    return management.name if management is not None and management.name else cluster.name


def _ref_text(ref: Ref | None) -> str | None:
    return f"{ref.kind}/{ref.name}" if ref is not None else None


def _endpoint(control_plane: ControlPlaneConfiguration | None) -> str | None:
    endpoint = control_plane.endpoint if control_plane is not None else None
    return endpoint.host if endpoint is not None else None


def _blocks(cidrs: CIDRBlocks | None) -> list[str]:
    return list(cidrs.cidr_blocks or []) if cidrs is not None else []


def _dump(model: Model | None) -> dict[str, Any] | None:
    return model.to_dict() if model is not None else None


def _cni_name(network: ClusterNetwork) -> str | None:
    config = network.cni_config
    if config is not None:
        if config.cilium is not None:
            return "cilium"
        if config.kindnetd is not None:
            return "kindnetd"
    return network.cni
