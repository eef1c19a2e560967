"""Defaults, static validation and immutable fields of OIDCConfig and AWSIamConfig.

The rules are EKS Anywhere's: an OIDC provider needs a client id and an https issuer and may
require at most one claim; AWS IAM Authenticator needs a region, at least one supported backend
and complete role and user mappings.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._rules import immutable
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1.identity import (
    AWSIamConfig,
    AWSIamConfigSpec,
    MapRoles,
    OIDCConfig,
    OIDCConfigRequiredClaim,
    OIDCConfigSpec,
)

MANAGED_BY_ANNOTATION = "anywhere.eks.amazonaws.com/managed-by"

DEFAULT_PARTITION = "aws"
EKS_CONFIG_MAP = "EKSConfigMap"
MOUNTED_FILE = "MountedFile"
# aws-iam-authenticator's backends, less MountedFile which EKS Anywhere does not support.
BACKEND_MODES = (EKS_CONFIG_MAP, "CRD", "DynamicFile")


# --- OIDCConfig ---------------------------------------------------------------------------


def validate_oidc_config(oidc: OIDCConfig) -> list[FieldError]:
    """Every problem of one OIDCConfig on its own (name and namespace checks are the Cluster's)."""
    errs = ErrorList(oidc.ref)
    spec = oidc.spec
    if not spec.client_id:
        errs.add("spec.clientId", "clientId is required")

    claims = spec.required_claims or []
    if len(claims) > 1:
        errs.add(
            "spec.requiredClaims",
            f"only one required claim is supported at this time, got {len(claims)}",
        )
    for i, claim in enumerate(claims):
        if not claim.claim:
            errs.add(f"spec.requiredClaims[{i}].claim", "claim is required")
        if not claim.value:
            errs.add(f"spec.requiredClaims[{i}].value", "value is required")

    url = spec.issuer_url
    if not url:
        errs.add("spec.issuerUrl", "issuerUrl is required")
    else:
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            errs.add("spec.issuerUrl", f"issuerUrl {url!r} is invalid: {exc}")
        else:
            if parts.scheme != "https":
                errs.add(
                    "spec.issuerUrl",
                    f"issuerUrl {url!r} must use the https scheme, got {parts.scheme or 'no scheme'}",
                )
            elif not parts.netloc:
                errs.add("spec.issuerUrl", f"issuerUrl {url!r} is invalid: it names no host")
    return errs.errors


def is_workload_cluster_object(obj: OIDCConfig | AWSIamConfig) -> bool:
    """Whether the object belongs to a workload cluster: it carries a non-empty managed-by annotation."""
    return bool(obj.annotations.get(MANAGED_BY_ANNOTATION))


def oidc_config_update(
    old: OIDCConfig, new: OIDCConfig, *, workload_cluster: bool | None = None
) -> list[FieldError]:
    """Errors for changes to an OIDCConfig: its spec is immutable on a management cluster.

    On a workload cluster every field may change (EKS Anywhere rolls the control plane). Whether
    the object belongs to a workload cluster is read from the old object's
    ``anywhere.eks.amazonaws.com/managed-by`` annotation, as EKS Anywhere does, unless the caller,
    who may know the owning Cluster better, says so with ``workload_cluster``.
    Required claims are compared as a multiset: reordering them is not a change.
    """
    if workload_cluster is None:
        workload_cluster = is_workload_cluster_object(old)
    if workload_cluster:
        return []
    obj = new.ref
    o, n = old.spec, new.spec
    errors = [
        *immutable(obj, "spec.clientId", o.client_id, n.client_id),
        *immutable(obj, "spec.groupsClaim", o.groups_claim, n.groups_claim),
        *immutable(obj, "spec.groupsPrefix", o.groups_prefix, n.groups_prefix),
        *immutable(obj, "spec.issuerUrl", o.issuer_url, n.issuer_url),
        *immutable(obj, "spec.usernameClaim", o.username_claim, n.username_claim),
        *immutable(obj, "spec.usernamePrefix", o.username_prefix, n.username_prefix),
    ]
    if _claims(o.required_claims) != _claims(n.required_claims):
        errors += immutable(
            obj,
            "spec.requiredClaims",
            _claims_text(o.required_claims),
            _claims_text(n.required_claims),
        )
    return errors


def _claims(claims: list[OIDCConfigRequiredClaim] | None) -> Counter[tuple[str, str]]:
    return Counter((c.claim or "", c.value or "") for c in claims or [])


def _claims_text(claims: list[OIDCConfigRequiredClaim] | None) -> list[str]:
    return [f"{c.claim or ''}={c.value or ''}" for c in claims or []]


def sample_oidc(name: str) -> OIDCConfig:
    """An OIDCConfig as a user would start from; it validates."""
    return OIDCConfig(
        metadata=ObjectMeta(name=name),
        spec=OIDCConfigSpec(
            client_id="kubernetes",
            issuer_url="https://oidc.example.com",
            groups_claim="groups",
            groups_prefix="oidc:",
            username_claim="email",
            username_prefix="oidc:",
            required_claims=[OIDCConfigRequiredClaim(claim="aud", value="kubernetes")],
        ),
    )


# --- AWSIamConfig -------------------------------------------------------------------------


def default_aws_iam_config(iam: AWSIamConfig) -> None:
    """Fill in ``partition`` (``aws``) when unset."""
    if not iam.spec.partition:
        iam.spec.partition = DEFAULT_PARTITION


def validate_aws_iam_config(iam: AWSIamConfig) -> list[FieldError]:
    """Every problem of one AWSIamConfig on its own (name and namespace checks are the Cluster's)."""
    errs = ErrorList(iam.ref)
    spec = iam.spec
    if not spec.aws_region:
        errs.add("spec.awsRegion", "awsRegion is required")

    modes = spec.backend_mode or []
    if not modes:
        errs.add(
            "spec.backendMode", f"backendMode is required: list one or more of {', '.join(BACKEND_MODES)}"
        )
    for i, mode in enumerate(modes):
        if mode == MOUNTED_FILE:
            errs.add(
                f"spec.backendMode[{i}]",
                f"the {MOUNTED_FILE} backend is not supported; use one of {', '.join(BACKEND_MODES)}",
            )
        elif mode not in BACKEND_MODES:
            errs.add(
                f"spec.backendMode[{i}]",
                f"unknown backend mode {mode!r}; allowed: {', '.join(BACKEND_MODES)}",
            )

    for i, role in enumerate(spec.map_roles or []):
        if not role.role_arn:
            errs.add(f"spec.mapRoles[{i}].roleARN", "roleARN is required")
        if not role.username:
            errs.add(f"spec.mapRoles[{i}].username", "username is required")
    for i, user in enumerate(spec.map_users or []):
        if not user.user_arn:
            errs.add(f"spec.mapUsers[{i}].userARN", "userARN is required")
        if not user.username:
            errs.add(f"spec.mapUsers[{i}].username", "username is required")
    return errs.errors


def aws_iam_config_update(old: AWSIamConfig, new: AWSIamConfig) -> list[FieldError]:
    """Errors for changes to an AWSIamConfig: region, partition and backends are immutable.

    ``mapRoles`` and ``mapUsers`` may change (that is how users are granted access). An unset
    partition counts as ``aws``. The backend order matters (it is the lookup order).
    """
    obj = new.ref
    o, n = old.spec, new.spec
    return [
        *immutable(obj, "spec.awsRegion", o.aws_region, n.aws_region),
        *immutable(obj, "spec.partition", o.partition or DEFAULT_PARTITION, n.partition or DEFAULT_PARTITION),
        *immutable(obj, "spec.backendMode", o.backend_mode or [], n.backend_mode or []),
    ]


def sample_awsiam(name: str) -> AWSIamConfig:
    """An AWSIamConfig as a user would start from; it validates."""
    return AWSIamConfig(
        metadata=ObjectMeta(name=name),
        spec=AWSIamConfigSpec(
            aws_region="us-west-2",
            backend_mode=[EKS_CONFIG_MAP],
            map_roles=[
                MapRoles(
                    role_arn="arn:aws:iam::111122223333:role/KubernetesAdmin",
                    username="admin",
                    groups=["system:masters"],
                )
            ],
            partition=DEFAULT_PARTITION,
        ),
    )
