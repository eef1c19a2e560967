"""The contract between the cluster-level rules and each infrastructure provider's kinds.

A provider's specification rules (defaults, static validation, immutable fields, a sample for
``generate clusterconfig``) live in ``anywhere.api.infra.<provider>`` and are described by one
:class:`ProviderRules`. Cluster-level validation asks the registry, never a provider module
directly, so adding a provider is adding one module and one line in ``__init__``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anywhere.api.errors import FieldError
from anywhere.api.v1alpha1._base import Object


@dataclass(frozen=True)
class NodeNetwork:
    """The node network a datacenter declares, where it declares one (sim, netns).

    Cluster validation uses it to check that the control plane VIP lies in the subnet but outside
    the DHCP range, and that pod and service CIDRs do not overlap the nodes.
    """

    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address | None = None
    dhcp_range: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None = None


@dataclass(frozen=True)
class ProviderSample:
    """What ``anywhere generate clusterconfig NAME --provider P`` writes beside the Cluster."""

    datacenter: Object
    control_plane_machine: Object | None
    worker_machine: Object | None
    endpoint_host: str | None
    extra: list[Object] = field(default_factory=list)
    control_plane_count: int = 1
    worker_count: int = 1
    external_etcd_machine: Object | None = None
    external_etcd_count: int | None = None


def _no_errors(*_: Any) -> list[FieldError]:
    return []


def _no_defaults(_: Any) -> None:
    return None


def _no_network(_: Any) -> NodeNetwork | None:
    return None


@dataclass(frozen=True)
class ProviderRules:
    """Everything the specification layer knows of one provider.

    The callables receive the provider's own kinds (typed ``Any`` here because the registry holds
    every provider); each returns *all* its errors, never raising for bad input.
    """

    name: str
    datacenter_kind: type[Object]
    machine_kind: type[Object] | None
    sample: Callable[[str], ProviderSample]
    endpoint_required: bool = True
    control_plane_only_allowed: bool = False
    in_place_upgrade_allowed: bool = False
    kindnetd_allowed: bool = False
    default_datacenter: Callable[[Any], None] = _no_defaults
    default_machine: Callable[[Any], None] = _no_defaults
    validate_datacenter: Callable[[Any], list[FieldError]] = _no_errors
    validate_machine: Callable[[Any], list[FieldError]] = _no_errors
    # (config) -> errors: rules spanning the Cluster and this provider's objects.
    validate_cluster: Callable[[Any], list[FieldError]] = _no_errors
    # (config) -> errors: what EKS Anywhere's provider validator checks when a cluster is created
    # (formats of thumbprints and keys, template names, ...). They need no live infrastructure but are
    # not rules of the spec itself: `anywhere validate` shows them as warnings, `create` refuses them.
    create_checks: Callable[[Any], list[FieldError]] = _no_errors
    # (old Cluster, new Cluster) -> errors: the provider's own limits on changing a Cluster; it runs
    # even when the old Cluster is paused, so the provider decides what a pause relaxes.
    cluster_update: Callable[[Any, Any], list[FieldError]] = _no_errors
    # (old, new) -> errors for immutable fields.
    datacenter_update: Callable[[Any, Any], list[FieldError]] = _no_errors
    machine_update: Callable[[Any, Any], list[FieldError]] = _no_errors
    node_network: Callable[[Any], NodeNetwork | None] = _no_network
    extra_kinds: tuple[type[Object], ...] = ()


def immutable(obj: str, field_path: str, old: object, new: object) -> list[FieldError]:
    """One error when ``old != new``: the building block of every immutable-field rule."""
    if old == new:
        return []
    return [FieldError(obj, field_path, f"field is immutable (was {old!r}, now {new!r})")]
