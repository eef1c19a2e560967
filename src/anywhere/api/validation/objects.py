"""Per-object rules by kind: each kind's own static validation and its immutable fields.

The table is built from the provider registry (datacenter and machine configs) plus the kinds that
belong to no provider (GitOps, identity) and the providers' extra kinds (templates, IP pools).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anywhere.api.errors import FieldError
from anywhere.api.infra import PROVIDERS
from anywhere.api.infra import snow as snow_rules
from anywhere.api.infra import tinkerbell as tinkerbell_rules
from anywhere.api.v1alpha1._base import Object
from anywhere.api.validation import gitops, identity

_Validate = Callable[[Any], list[FieldError]]
_Update = Callable[[Any, Any], list[FieldError]]


def _none(*_: Any) -> list[FieldError]:
    return []


@dataclass(frozen=True)
class KindRules:
    validate: _Validate
    update: _Update = _none


def _table() -> dict[str, KindRules]:
    table: dict[str, KindRules] = {
        "FluxConfig": KindRules(gitops.validate_flux_config, gitops.flux_config_update),
        "GitOpsConfig": KindRules(gitops.validate_git_ops_config, gitops.git_ops_config_update),
        "OIDCConfig": KindRules(identity.validate_oidc_config, identity.oidc_config_update),
        "AWSIamConfig": KindRules(identity.validate_aws_iam_config, identity.aws_iam_config_update),
        "TinkerbellTemplateConfig": KindRules(tinkerbell_rules.validate_template),
        "SnowIPPool": KindRules(snow_rules.validate_ip_pool),
    }
    for rules in PROVIDERS.values():
        table[rules.datacenter_kind.KIND] = KindRules(rules.validate_datacenter, rules.datacenter_update)
        if rules.machine_kind is not None:
            table[rules.machine_kind.KIND] = KindRules(rules.validate_machine, rules.machine_update)
    return table


KIND_RULES = _table()


def validate_object(obj: Object) -> list[FieldError]:
    """The kind's own static rules for ``obj`` (no rules for the Cluster: see ``validation.cluster``)."""
    rules = KIND_RULES.get(obj.kind)
    return rules.validate(obj) if rules is not None else []


def object_update(old: Object, new: Object) -> list[FieldError]:
    """The kind's immutable-field errors for a change from ``old`` to ``new``."""
    rules = KIND_RULES.get(new.kind)
    return rules.update(old, new) if rules is not None else []
