"""The identity provider kinds: OIDCConfig and AWSIamConfig.

A Cluster names them in ``spec.identityProviderRefs``; they configure how the API server
authenticates users besides client certificates.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object


class OIDCConfigRequiredClaim(Model):
    """A ``claim=value`` pair every ID token must carry."""

    claim: str | None = None
    value: str | None = None


class OIDCConfigSpec(Model):
    """The API server's OpenID Connect flags (``--oidc-*``)."""

    client_id: str | None = None
    groups_claim: str | None = None
    groups_prefix: str | None = None
    issuer_url: str | None = None
    required_claims: list[OIDCConfigRequiredClaim] | None = None
    username_claim: str | None = None
    username_prefix: str | None = None


class OIDCConfigStatus(Model):
    """Empty: OIDCConfig reports nothing."""


class OIDCConfig(Object):
    """An OpenID Connect identity provider the API server trusts."""

    KIND: ClassVar[str] = "OIDCConfig"
    PLURAL: ClassVar[str] = "oidcconfigs"
    kind: Literal["OIDCConfig"] = "OIDCConfig"
    spec: OIDCConfigSpec = Field(default_factory=OIDCConfigSpec)
    status: OIDCConfigStatus | None = None


class MapRoles(Model):
    """An IAM role mapped to a Kubernetes user name and groups (EKSConfigMap backend)."""

    role_arn: str | None = Field(default=None, alias="roleARN")
    username: str | None = None
    groups: list[str] | None = None


class MapUsers(Model):
    """An IAM user mapped to a Kubernetes user name and groups (EKSConfigMap backend)."""

    user_arn: str | None = Field(default=None, alias="userARN")
    username: str | None = None
    groups: list[str] | None = None


class AWSIamConfigSpec(Model):
    """The aws-iam-authenticator server's region, partition, backends and mappings."""

    aws_region: str | None = None
    backend_mode: list[str] | None = None
    map_roles: list[MapRoles] | None = None
    map_users: list[MapUsers] | None = None
    partition: str | None = None


class AWSIamConfigStatus(Model):
    """Empty: AWSIamConfig reports nothing."""


class AWSIamConfig(Object):
    """AWS IAM Authenticator: API server authentication with AWS IAM identities."""

    KIND: ClassVar[str] = "AWSIamConfig"
    PLURAL: ClassVar[str] = "awsiamconfigs"
    kind: Literal["AWSIamConfig"] = "AWSIamConfig"
    spec: AWSIamConfigSpec = Field(default_factory=AWSIamConfigSpec)
    status: AWSIamConfigStatus | None = None
