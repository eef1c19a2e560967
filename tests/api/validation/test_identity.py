from __future__ import annotations

import pytest
import yaml

from anywhere.api.errors import FieldError
from anywhere.api.v1alpha1.identity import (
    AWSIamConfig,
    MapRoles,
    MapUsers,
    OIDCConfig,
    OIDCConfigRequiredClaim,
)
from anywhere.api.validation.identity import (
    aws_iam_config_update,
    default_aws_iam_config,
    oidc_config_update,
    sample_awsiam,
    sample_oidc,
    validate_aws_iam_config,
    validate_oidc_config,
)

OIDC_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: OIDCConfig
metadata:
  name: my-oidc
  namespace: default
spec:
  clientId: kubernetes
  groupsClaim: groups
  groupsPrefix: "oidc:"
  issuerUrl: https://issuer.example.com/realms/k8s
  requiredClaims:
  - claim: hd
    value: example.com
  usernameClaim: email
  usernamePrefix: "-"
"""

IAM_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: AWSIamConfig
metadata:
  name: aws-iam-auth-config
spec:
  awsRegion: us-west-1
  backendMode:
  - EKSConfigMap
  - CRD
  mapRoles:
  - roleARN: arn:aws:iam::111122223333:role/myRole
    username: myKubernetesUsername
    groups:
    - system:masters
  mapUsers:
  - userARN: arn:aws:iam::111122223333:user/myUser
    username: myKubernetesUsername
    groups:
    - system:masters
  partition: aws
"""


def _oidc(text: str = OIDC_YAML) -> OIDCConfig:
    return OIDCConfig.model_validate(yaml.safe_load(text), by_name=False)


def _iam(text: str = IAM_YAML) -> AWSIamConfig:
    return AWSIamConfig.model_validate(yaml.safe_load(text), by_name=False)


def _one(errors: list[FieldError], field: str, text: str) -> FieldError:
    matching = [e for e in errors if e.field == field]
    assert len(matching) == 1, errors
    assert text in matching[0].message, matching[0].message
    return matching[0]


# --- OIDCConfig ---------------------------------------------------------------------------


def test_oidc_yaml_loads_and_validates() -> None:
    oidc = _oidc()
    assert oidc.spec.issuer_url == "https://issuer.example.com/realms/k8s"
    assert oidc.spec.required_claims == [OIDCConfigRequiredClaim(claim="hd", value="example.com")]
    assert validate_oidc_config(oidc) == []


def test_oidc_round_trip() -> None:
    for oidc in (_oidc(), sample_oidc("o")):
        assert OIDCConfig.model_validate(oidc.to_dict(), by_name=False) == oidc


def test_oidc_sample_validates() -> None:
    oidc = sample_oidc("o")
    assert oidc.name == "o"
    assert validate_oidc_config(oidc) == []


def test_oidc_client_id_required() -> None:
    oidc = _oidc()
    oidc.spec.client_id = ""
    error = _one(validate_oidc_config(oidc), "spec.clientId", "clientId is required")
    assert error.obj == "OIDCConfig/my-oidc"


def test_oidc_issuer_url_required() -> None:
    oidc = _oidc()
    oidc.spec.issuer_url = None
    _one(validate_oidc_config(oidc), "spec.issuerUrl", "issuerUrl is required")


@pytest.mark.parametrize("url", ["http://issuer.example.com", "issuer.example.com", "ftp://x"])
def test_oidc_issuer_url_https(url: str) -> None:
    oidc = _oidc()
    oidc.spec.issuer_url = url
    _one(validate_oidc_config(oidc), "spec.issuerUrl", "https")


@pytest.mark.parametrize("url", ["https://", "https://[::1"])
def test_oidc_issuer_url_invalid(url: str) -> None:
    oidc = _oidc()
    oidc.spec.issuer_url = url
    _one(validate_oidc_config(oidc), "spec.issuerUrl", "is invalid")


def test_oidc_at_most_one_required_claim() -> None:
    oidc = _oidc()
    oidc.spec.required_claims = [
        OIDCConfigRequiredClaim(claim="a", value="1"),
        OIDCConfigRequiredClaim(claim="b", value="2"),
    ]
    _one(validate_oidc_config(oidc), "spec.requiredClaims", "only one required claim")


def test_oidc_required_claim_needs_claim_and_value() -> None:
    oidc = _oidc()
    oidc.spec.required_claims = [OIDCConfigRequiredClaim()]
    errors = validate_oidc_config(oidc)
    _one(errors, "spec.requiredClaims[0].claim", "claim is required")
    _one(errors, "spec.requiredClaims[0].value", "value is required")


def test_oidc_all_errors_at_once() -> None:
    oidc = OIDCConfig.model_validate({"metadata": {"name": "o"}, "spec": {"requiredClaims": [{}, {}]}})
    fields = {e.field for e in validate_oidc_config(oidc)}
    assert {"spec.clientId", "spec.issuerUrl", "spec.requiredClaims"} <= fields


@pytest.mark.parametrize(
    ("field", "attr", "value"),
    [
        ("spec.clientId", "client_id", "other"),
        ("spec.groupsClaim", "groups_claim", "roles"),
        ("spec.groupsPrefix", "groups_prefix", "x:"),
        ("spec.issuerUrl", "issuer_url", "https://other.example.com"),
        ("spec.usernameClaim", "username_claim", "sub"),
        ("spec.usernamePrefix", "username_prefix", "u:"),
        ("spec.requiredClaims", "required_claims", [OIDCConfigRequiredClaim(claim="hd", value="other.com")]),
    ],
)
def test_oidc_update_immutable_on_management_cluster(field: str, attr: str, value: object) -> None:
    old, new = _oidc(), _oidc()
    setattr(new.spec, attr, value)
    _one(oidc_config_update(old, new), field, "immutable")


def test_oidc_update_unchanged_and_claims_reordered() -> None:
    old, new = _oidc(), _oidc()
    claims = [OIDCConfigRequiredClaim(claim="a", value="1"), OIDCConfigRequiredClaim(claim="b", value="2")]
    old.spec.required_claims = claims
    new.spec.required_claims = list(reversed(claims))
    assert oidc_config_update(old, new) == []


def test_oidc_update_allowed_on_workload_cluster_by_annotation() -> None:
    old, new = _oidc(), _oidc()
    old.metadata.annotations = {"anywhere.eks.amazonaws.com/managed-by": "mgmt"}
    new.spec.client_id = "other"
    assert oidc_config_update(old, new) == []


def test_oidc_update_workload_cluster_keyword_wins() -> None:
    old, new = _oidc(), _oidc()
    new.spec.client_id = "other"
    assert oidc_config_update(old, new, workload_cluster=True) == []
    old.metadata.annotations = {"anywhere.eks.amazonaws.com/managed-by": "mgmt"}
    _one(oidc_config_update(old, new, workload_cluster=False), "spec.clientId", "immutable")


def test_oidc_update_empty_managed_by_is_management() -> None:
    old, new = _oidc(), _oidc()
    old.metadata.annotations = {"anywhere.eks.amazonaws.com/managed-by": ""}
    new.spec.client_id = "other"
    _one(oidc_config_update(old, new), "spec.clientId", "immutable")


# --- AWSIamConfig -------------------------------------------------------------------------


def test_iam_yaml_loads_and_validates() -> None:
    iam = _iam()
    assert iam.spec.map_roles is not None
    assert iam.spec.map_roles[0].role_arn == "arn:aws:iam::111122223333:role/myRole"
    assert iam.spec.map_users is not None
    assert iam.spec.map_users[0].user_arn == "arn:aws:iam::111122223333:user/myUser"
    assert validate_aws_iam_config(iam) == []


def test_iam_round_trip() -> None:
    for iam in (_iam(), sample_awsiam("a")):
        data = iam.to_dict()
        assert AWSIamConfig.model_validate(data, by_name=False) == iam
    assert "roleARN" in _iam().to_dict()["spec"]["mapRoles"][0]


def test_iam_sample_validates() -> None:
    assert validate_aws_iam_config(sample_awsiam("a")) == []


def test_iam_default_partition() -> None:
    iam = _iam()
    iam.spec.partition = None
    default_aws_iam_config(iam)
    assert iam.spec.partition == "aws"
    iam.spec.partition = "aws-cn"
    default_aws_iam_config(iam)
    assert iam.spec.partition == "aws-cn"


def test_iam_region_required() -> None:
    iam = _iam()
    iam.spec.aws_region = ""
    error = _one(validate_aws_iam_config(iam), "spec.awsRegion", "awsRegion is required")
    assert error.obj == "AWSIamConfig/aws-iam-auth-config"


@pytest.mark.parametrize("modes", [None, []])
def test_iam_backend_mode_required(modes: list[str] | None) -> None:
    iam = _iam()
    iam.spec.backend_mode = modes
    _one(validate_aws_iam_config(iam), "spec.backendMode", "backendMode is required")


def test_iam_backend_mode_mounted_file_unsupported() -> None:
    iam = _iam()
    iam.spec.backend_mode = ["EKSConfigMap", "MountedFile"]
    _one(validate_aws_iam_config(iam), "spec.backendMode[1]", "MountedFile backend is not supported")


def test_iam_backend_mode_unknown() -> None:
    iam = _iam()
    iam.spec.backend_mode = ["ConfigMap"]
    error = _one(validate_aws_iam_config(iam), "spec.backendMode[0]", "unknown backend mode")
    assert "EKSConfigMap, CRD, DynamicFile" in error.message


def test_iam_map_roles_fields_required() -> None:
    iam = _iam()
    iam.spec.map_roles = [MapRoles(groups=["g"])]
    errors = validate_aws_iam_config(iam)
    _one(errors, "spec.mapRoles[0].roleARN", "roleARN is required")
    _one(errors, "spec.mapRoles[0].username", "username is required")


def test_iam_map_users_fields_required() -> None:
    iam = _iam()
    iam.spec.map_users = [MapUsers(user_arn="arn:aws:iam::1:user/u"), MapUsers(username="u")]
    errors = validate_aws_iam_config(iam)
    _one(errors, "spec.mapUsers[0].username", "username is required")
    _one(errors, "spec.mapUsers[1].userARN", "userARN is required")


def test_iam_map_role_wrong_key_refused() -> None:
    with pytest.raises(ValueError, match="rolearn"):
        _iam(IAM_YAML.replace("roleARN", "rolearn"))


@pytest.mark.parametrize(
    ("field", "attr", "value"),
    [
        ("spec.awsRegion", "aws_region", "eu-west-1"),
        ("spec.partition", "partition", "aws-cn"),
        ("spec.backendMode", "backend_mode", ["CRD", "EKSConfigMap"]),
    ],
)
def test_iam_update_immutable(field: str, attr: str, value: object) -> None:
    old, new = _iam(), _iam()
    setattr(new.spec, attr, value)
    _one(aws_iam_config_update(old, new), field, "immutable")


def test_iam_update_mappings_may_change_and_default_partition_is_no_change() -> None:
    old, new = _iam(), _iam()
    new.spec.map_roles = None
    new.spec.map_users = [MapUsers(user_arn="arn:aws:iam::1:user/other", username="other")]
    old.spec.partition = None
    assert aws_iam_config_update(old, new) == []
