"""Which provider serves a datacenter kind (and an infrastructure cluster kind)."""

from __future__ import annotations

import importlib

from anywhere.providers.base import Provider

__all__ = ["all_providers", "provider_for_datacenter", "provider_for_infra_cluster"]

# Providers with controllers, by module; each module exposes PROVIDER. Imported on first use, so
# that listing them costs nothing until a plane runs.
_MODULES = (
    "anywhere.providers.sim.provider",
    "anywhere.providers.netns.provider",
    "anywhere.providers.vsphere.provider",
    "anywhere.providers.tinkerbell.provider",
)
_loaded: list[Provider] = []


def all_providers() -> list[Provider]:
    if not _loaded:
        _loaded.extend(importlib.import_module(module).PROVIDER for module in _MODULES)
    return list(_loaded)


def provider_for_datacenter(kind: str) -> Provider | None:
    return next((p for p in all_providers() if p.datacenter_kind == kind), None)


def provider_for_infra_cluster(kind: str) -> Provider | None:
    return next((p for p in all_providers() if p.infra_cluster.kind == kind), None)
