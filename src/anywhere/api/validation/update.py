"""Update validation: what may change between the configuration a cluster has and a new one.

Some fields cannot change once a cluster exists (its endpoint, its networks, its datacenter) because
changing them would need a new cluster; versions may only move forward, one minor at a time. The
``anywhere.eks.amazonaws.com/paused`` annotation on the existing Cluster lifts the immutability rules,
as in EKS Anywhere: a paused cluster is not reconciled, so its spec may be edited freely. Version
moves are checked even then, because no reconcile could ever carry a cluster two minors at once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from anywhere.api.config import ClusterConfig
from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra import rules_for_datacenter
from anywhere.api.infra._rules import immutable
from anywhere.api.v1alpha1._base import Model, Ref
from anywhere.api.v1alpha1.cluster import (
    CIDRBlocks,
    Cluster,
    ClusterNetwork,
    ClusterSpec,
    ControlPlaneConfiguration,
)
from anywhere.api.validation import objects
from anywhere.api.validation._common import SEMVER, minor_of

PAUSED_ANNOTATION = "anywhere.eks.amazonaws.com/paused"
SKIP_EKSA_SKEW_ANNOTATION = "anywhere.eks.amazonaws.com/skip-eksa-version-skew-check"
EKSA_VERSION_INVALID = "EksaVersionInvalid"
MAX_MINOR_STEP = 1
WORKER_SKEW_MINORS = 2


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
    """The Cluster's own update rules: immutable fields unless paused, version moves always."""
    errors = ErrorList(new.ref)
    if old.name != new.name:
        errors.add("metadata.name", f"a cluster cannot be renamed (was {old.name!r})")
    if not is_paused(old):
        _immutable_fields(errors, old, new)
    provider = rules_for_datacenter(new.spec.datacenter_ref.kind if new.spec.datacenter_ref else None)
    if provider is not None:  # the provider decides itself what a pause relaxes
        errors.extend(provider.cluster_update(old, new))
    _set_once(
        errors,
        "spec.bundlesRef",
        old.spec.bundles_ref,
        new.spec.bundles_ref is None and new.spec.eksa_version is None,
    )
    _set_once(errors, "spec.eksaVersion", old.spec.eksa_version, new.spec.eksa_version is None)
    _version_step(errors, "spec.kubernetesVersion", old.spec.kubernetes_version, new.spec.kubernetes_version)
    _worker_versions(errors, old, new)
    if new.annotations.get(SKIP_EKSA_SKEW_ANNOTATION, "").lower() != "true":
        _eksa_version(errors, old, new)
    return errors.errors


def _set_once(errors: ErrorList, field: str, old_value: object, removed: bool) -> None:
    if old_value is not None and removed:
        errors.add(field, f"field cannot be removed after setting (was {_text(old_value)})")


def _immutable_fields(errors: ErrorList, old: Cluster, new: Cluster) -> None:
    ref = new.ref
    before, after = old.spec, new.spec

    def same(field: str, a: object, b: object) -> None:
        errors.extend(immutable(ref, field, a, b))

    if not (old.is_self_managed and new.is_self_managed):
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
    same("spec.proxyConfiguration", _proxy(before), _proxy(after))
    if before.external_etcd_configuration is None and after.external_etcd_configuration is not None:
        errors.add("spec.externalEtcdConfiguration", "cannot switch from stacked to external etcd topology")
    if before.external_etcd_configuration is not None and after.external_etcd_configuration is None:
        errors.add("spec.externalEtcdConfiguration", "cannot switch from external to stacked etcd topology")
    if not old.is_self_managed:
        same("spec.gitOpsRef", _ref_text(before.git_ops_ref), _ref_text(after.git_ops_ref))
    old_iam, new_iam = _aws_iam(before.identity_provider_refs), _aws_iam(after.identity_provider_refs)
    if old_iam is not None and new_iam is not None:
        same("spec.identityProviderRefs", f"AWSIamConfig/{old_iam}", f"AWSIamConfig/{new_iam}")
    old_cilium = old_net.cni_config.cilium if old_net.cni_config else None
    new_cilium = new_net.cni_config.cilium if new_net.cni_config else None
    if (
        old_cilium is not None
        and old_cilium.skip_upgrade
        and (new_cilium is None or not new_cilium.skip_upgrade)
    ):
        errors.add(
            "spec.clusterNetwork.cniConfig.cilium.skipUpgrade", "cannot toggle off skipUpgrade once enabled"
        )


def _version_step(errors: ErrorList, field: str, old: str | None, new: str | None) -> None:
    old_minor, new_minor = minor_of(old), minor_of(new)
    if old_minor is None or new_minor is None:
        return
    if new_minor < old_minor:
        errors.add(field, f"kubernetes version downgrade is not supported ({old}) -> ({new})")
    elif new_minor - old_minor > MAX_MINOR_STEP:
        errors.add(
            field,
            f"only +1 minor version skew is supported, minor version skew detected {new_minor - old_minor} "
            f"({old} -> {new}); upgrade to 1.{old_minor + 1} first",
        )


def _worker_versions(errors: ErrorList, old: Cluster, new: Cluster) -> None:
    """Worker groups move one minor at a time and stay at most two minors behind the control plane."""
    old_groups = {g.name: g for g in old.worker_groups if g.name}
    old_cp, new_cp = old.spec.kubernetes_version, new.spec.kubernetes_version
    for index, group in enumerate(new.worker_groups):
        field = f"spec.workerNodeGroupConfigurations[{index}].kubernetesVersion"
        before = old_groups.get(group.name or "")
        if before is not None:
            if before.kubernetes_version is not None and group.kubernetes_version is None:
                old_minor, new_minor = minor_of(old_cp), minor_of(new_cp)
                if old_minor is not None and new_minor is not None and new_minor > old_minor:
                    errors.add(
                        field,
                        "can't simultaneously remove worker kubernetesVersion and upgrade cluster level "
                        f"kubernetesVersion ({new_cp}); do one, then the other",
                    )
                else:
                    _version_step(errors, field, before.kubernetes_version, new_cp)
            elif group.kubernetes_version is not None:
                _version_step(errors, field, before.kubernetes_version or old_cp, group.kubernetes_version)
        if group.kubernetes_version is None:
            continue
        cp_minor, worker_minor = minor_of(new_cp), minor_of(group.kubernetes_version)
        if (
            cp_minor is not None
            and worker_minor is not None
            and not 0 <= cp_minor - worker_minor <= WORKER_SKEW_MINORS
        ):
            errors.add(
                field,
                f"cluster level minor version must be within {WORKER_SKEW_MINORS} versions greater than worker "
                f"node group version ({new_cp} vs {group.kubernetes_version})",
            )


def _eksa_version(errors: ErrorList, old: Cluster, new: Cluster) -> None:
    before, after = old.spec.eksa_version, new.spec.eksa_version
    if before is None or after is None:
        return
    old_match, new_match = SEMVER.match(before), SEMVER.match(after)
    if old_match is None:
        return  # an invalid old version may always be corrected
    if new_match is None:
        errors.add("spec.eksaVersion", f"eksaVersion {after!r} is not a valid semver")
        return
    old_major, old_minor = int(old_match.group(1)), int(old_match.group(2))
    new_major, new_minor = int(new_match.group(1)), int(new_match.group(2))
    if new_major != old_major or new_minor - old_minor > MAX_MINOR_STEP:
        errors.add(
            "spec.eksaVersion",
            f"cannot upgrade to {after} from {before}: eksaVersion upgrades must have a skew of 1 minor version",
        )
        return
    invalid_before = old.status is not None and old.status.failure_reason == EKSA_VERSION_INVALID
    if new_minor < old_minor and not invalid_before:
        errors.add(
            "spec.eksaVersion",
            f"cannot downgrade from {before} to {after}: eksaVersion upgrades must be incremental",
        )


def _management_name(cluster: Cluster) -> str:
    management = cluster.spec.management_cluster
    return management.name if management is not None and management.name else cluster.name


def _ref_text(ref: Ref | None) -> str | None:
    return f"{ref.kind}/{ref.name}" if ref is not None else None


def _aws_iam(refs: list[Ref] | None) -> str | None:
    return next((ref.name for ref in refs or [] if ref.kind == "AWSIamConfig"), None)


def _endpoint(control_plane: ControlPlaneConfiguration | None) -> str | None:
    endpoint = control_plane.endpoint if control_plane is not None else None
    return endpoint.host if endpoint is not None else None


def _blocks(cidrs: CIDRBlocks | None) -> list[str]:
    """CIDR blocks compared as a multiset: reordering them is not a change."""
    return sorted(cidrs.cidr_blocks or []) if cidrs is not None else []


def _proxy(spec: ClusterSpec) -> dict[str, Any] | None:
    proxy = spec.proxy_configuration
    if proxy is None:
        return None
    value = proxy.to_dict()
    if "noProxy" in value:
        value["noProxy"] = sorted(Counter(value["noProxy"]).elements())
    return value


def _dump(model: Model | None) -> dict[str, Any] | None:
    return model.to_dict() if model is not None else None


def _text(value: object) -> str:
    return str(value.to_dict()) if isinstance(value, Model) else str(value)
