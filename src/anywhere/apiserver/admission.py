"""Admission for the anywhere kinds: the defaulting and validation ``anywhere validate`` runs.

``kubectl apply`` of an invalid Cluster is refused with the very messages the CLI prints, because
both call :mod:`anywhere.api`. Objects arrive one at a time and in any order, so a Cluster is
validated on its own (refs to objects not yet created are the controllers' business), as EKS
Anywhere's webhook does.
"""

from __future__ import annotations

from typing import Any

from anywhere.api import GROUP, ClusterConfig, FieldError, object_from_dict
from anywhere.api.defaults import default_cluster
from anywhere.api.infra import PROVIDERS
from anywhere.api.v1alpha1 import Cluster, Object
from anywhere.api.validation.cluster import validate_config
from anywhere.api.validation.objects import object_update, validate_object
from anywhere.api.validation.update import cluster_update
from anywhere.apiserver.errors import invalid

_MACHINE_DEFAULTS = {
    rules.machine_kind.KIND: rules.default_machine
    for rules in PROVIDERS.values()
    if rules.machine_kind is not None
}
_DATACENTER_DEFAULTS = {rules.datacenter_kind.KIND: rules.default_datacenter for rules in PROVIDERS.values()}


def applies_to(group: str) -> bool:
    return group == GROUP


def admit(obj: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """The defaulted object, or a 422 listing every error with its field (as ``anywhere validate``)."""
    model, errors = object_from_dict(obj)
    if model is None:
        raise _refusal(obj, errors)
    _default(model)
    errors = _validate(model)
    if old is not None and not errors:
        old_model, _ = object_from_dict(old)
        if old_model is not None:
            _default(old_model)
            errors = _validate_update(old_model, model)
    if errors:
        raise _refusal(obj, errors)
    admitted = model.to_dict()
    if "status" in obj and "status" not in admitted:
        admitted["status"] = obj["status"]
    return admitted


def _default(model: Object) -> None:
    if isinstance(model, Cluster):
        default_cluster(model)
    elif model.kind in _MACHINE_DEFAULTS:
        _MACHINE_DEFAULTS[model.kind](model)
    elif model.kind in _DATACENTER_DEFAULTS:
        _DATACENTER_DEFAULTS[model.kind](model)


def _validate(model: Object) -> list[FieldError]:
    if isinstance(model, Cluster):
        return validate_config(ClusterConfig(model, [], partial=True))
    return validate_object(model)


def _validate_update(old: Object, new: Object) -> list[FieldError]:
    if isinstance(old, Cluster) and isinstance(new, Cluster):
        return cluster_update(old, new)
    return object_update(old, new)


def _refusal(obj: dict[str, Any], errors: list[FieldError]) -> Exception:
    name = str((obj.get("metadata") or {}).get("name") or "")
    causes = [{"type": "FieldValueInvalid", "field": e.field, "message": e.message} for e in errors]
    return invalid(str(obj.get("kind", "")), GROUP, name, causes)
