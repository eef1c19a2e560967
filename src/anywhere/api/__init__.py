"""The specification layer: kinds, loading, defaulting, validation and CRDs.

The public surface, used by the CLI, the API server and the controllers::

    loaded = load_file("cluster.yaml")          # strict YAML -> typed objects (SpecError/LoadError)
    default_config(loaded.config)               # EKS Anywhere's defaults
    errors = validate_config(loaded.config)     # static rules: every error at once
    errors += validate_update(old, new)         # immutable fields, version moves

Nothing here touches infrastructure; preflight checks against live systems belong to providers.
"""

from __future__ import annotations

from anywhere.api.config import ClusterConfig
from anywhere.api.defaults import default_cluster, default_config
from anywhere.api.errors import FieldError, SpecError
from anywhere.api.loader import (
    LoadedConfig,
    LoadError,
    SourceMap,
    dump_config,
    dump_objects,
    load_file,
    load_text,
    object_from_dict,
)
from anywhere.api.v1alpha1 import API_VERSION, GROUP, KINDS, VERSION, Cluster, Object
from anywhere.api.validation.cluster import create_checks, validate_config
from anywhere.api.validation.update import PAUSED_ANNOTATION, validate_update


def check_config(config: ClusterConfig) -> list[FieldError]:
    """Default ``config`` in place, then return every static error: what ``anywhere validate`` runs."""
    default_config(config)
    return validate_config(config)


__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "PAUSED_ANNOTATION",
    "VERSION",
    "Cluster",
    "ClusterConfig",
    "FieldError",
    "LoadError",
    "LoadedConfig",
    "Object",
    "SourceMap",
    "SpecError",
    "check_config",
    "create_checks",
    "default_cluster",
    "default_config",
    "dump_config",
    "dump_objects",
    "load_file",
    "load_text",
    "object_from_dict",
    "validate_config",
    "validate_update",
]
