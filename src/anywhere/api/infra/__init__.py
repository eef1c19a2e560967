"""The registry of providers' specification rules (see :mod:`anywhere.api.infra._rules`)."""

from __future__ import annotations

from anywhere.api.infra import cloudstack, docker, netns, nutanix, sim, snow, tinkerbell, vsphere
from anywhere.api.infra._rules import NodeNetwork, ProviderRules, ProviderSample

PROVIDERS: dict[str, ProviderRules] = {
    rules.name: rules
    for rules in (
        sim.RULES,
        netns.RULES,
        vsphere.RULES,
        tinkerbell.RULES,
        docker.RULES,
        cloudstack.RULES,
        nutanix.RULES,
        snow.RULES,
    )
}

_BY_DATACENTER_KIND = {rules.datacenter_kind.KIND: rules for rules in PROVIDERS.values()}


def rules_for_datacenter(kind: str | None) -> ProviderRules | None:
    """The provider whose datacenter config is of this kind, if any."""
    return _BY_DATACENTER_KIND.get(kind or "")


def provider(name: str) -> ProviderRules | None:
    return PROVIDERS.get(name)


__all__ = ["PROVIDERS", "NodeNetwork", "ProviderRules", "ProviderSample", "provider", "rules_for_datacenter"]
