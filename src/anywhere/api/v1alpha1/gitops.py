"""The GitOps kinds: FluxConfig and its predecessor GitOpsConfig.

Both tell the cluster lifecycle where the Git repository that Flux syncs the cluster objects
from lives. A Cluster names one of them in ``spec.gitOpsRef``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from anywhere.api.v1alpha1._base import Model, Object


class GithubProviderConfig(Model):
    """A GitHub repository, created by the tool when it does not exist yet."""

    owner: str | None = None
    repository: str | None = None
    personal: bool | None = None


class GitProviderConfig(Model):
    """Any Git server reachable over SSH."""

    repository_url: str | None = None
    ssh_key_algorithm: str | None = None


class FluxConfigSpec(Model):
    """Flux's namespace, the branch and path it syncs, and the Git provider hosting them."""

    system_namespace: str | None = None
    cluster_config_path: str | None = None
    branch: str | None = None
    github: GithubProviderConfig | None = None
    git: GitProviderConfig | None = None


class FluxConfigStatus(Model):
    """Empty: FluxConfig reports nothing."""


class FluxConfig(Object):
    """The Flux GitOps toolkit settings and the Git repository a cluster is synced from."""

    KIND: ClassVar[str] = "FluxConfig"
    PLURAL: ClassVar[str] = "fluxconfigs"
    kind: Literal["FluxConfig"] = "FluxConfig"
    spec: FluxConfigSpec = Field(default_factory=FluxConfigSpec)
    status: FluxConfigStatus | None = None


class Github(Model):
    """The GitHub repository of the legacy GitOpsConfig, with Flux's settings folded in."""

    owner: str | None = None
    repository: str | None = None
    flux_system_namespace: str | None = None
    branch: str | None = None
    cluster_config_path: str | None = None
    personal: bool | None = None


class Flux(Model):
    """Flux v2 options of the legacy GitOpsConfig; GitHub is the only provider."""

    github: Github | None = None


class GitOpsConfigSpec(Model):
    flux: Flux | None = None


class GitOpsConfigStatus(Model):
    """Empty: GitOpsConfig reports nothing."""


class GitOpsConfig(Object):
    """The legacy (GitHub only) form of FluxConfig, still accepted as EKS Anywhere does."""

    KIND: ClassVar[str] = "GitOpsConfig"
    PLURAL: ClassVar[str] = "gitopsconfigs"
    kind: Literal["GitOpsConfig"] = "GitOpsConfig"
    spec: GitOpsConfigSpec = Field(default_factory=GitOpsConfigSpec)
    status: GitOpsConfigStatus | None = None
