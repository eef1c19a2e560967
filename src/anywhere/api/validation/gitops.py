"""Defaults, static validation and immutable fields of FluxConfig and GitOpsConfig.

The rules are EKS Anywhere's: exactly one Git provider, GitHub owner and repository required,
repository and branch names restricted to the characters EKS Anywhere accepts, SSH repository
URLs for plain Git. Once created, neither kind may change: EKS Anywhere refuses every change
to their spec, and so do :func:`flux_config_update` and :func:`git_ops_config_update`.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urlsplit

from anywhere.api.errors import ErrorList, FieldError
from anywhere.api.infra._rules import immutable
from anywhere.api.v1alpha1._base import ObjectMeta
from anywhere.api.v1alpha1.gitops import (
    Flux,
    FluxConfig,
    FluxConfigSpec,
    Github,
    GithubProviderConfig,
    GitOpsConfig,
    GitOpsConfigSpec,
    GitProviderConfig,
)

DEFAULT_FLUX_NAMESPACE = "flux-system"
DEFAULT_BRANCH = "main"
SSH_KEY_ALGORITHMS = ("rsa", "ecdsa", "ed25519")

# EKS Anywhere's own (narrower than git's) branch grammar: two runs of word characters joined
# by at most one '.' and at most one '/'; so "main", "dev/x" and "v1.x" pass, "main." fails.
_BRANCH = re.compile(r"^[0-9A-Za-z_+,]+\.?/?[0-9A-Za-z\-_+,]+$")
_REPOSITORY = re.compile(r"^[0-9A-Za-z\-_.]+$")


def cluster_config_path(cluster_name: str) -> str:
    """The default ``clusterConfigPath``: ``clusters/<name>``."""
    return posixpath.join("clusters", cluster_name)


def _check_branch(errs: ErrorList, field: str, branch: str | None) -> None:
    if branch and not _BRANCH.match(branch):
        errs.add(
            field,
            f"{branch!r} is not a valid git branch name: use letters, digits, '_', '+', ',' and '-' "
            "(not first), with at most one '.' then at most one '/' inside the name, never at its "
            "start or end (see https://git-scm.com/docs/git-check-ref-format)",
        )


def _check_repository(errs: ErrorList, field: str, repository: str | None) -> None:
    if not repository:
        errs.add(field, "repository is required")
    elif not _REPOSITORY.match(repository):
        errs.add(
            field,
            f"{repository!r} is not a valid git repository name: use only letters, digits, '_', '-' and '.'",
        )


def _check_github(errs: ErrorList, path: str, owner: str | None, repository: str | None) -> None:
    if not owner:
        errs.add(f"{path}.owner", "owner (the GitHub user or organization) is required")
    _check_repository(errs, f"{path}.repository", repository)


# --- FluxConfig ---------------------------------------------------------------------------


def default_flux_config(flux: FluxConfig, cluster_name: str | None = None) -> None:
    """Fill in ``systemNamespace``, ``branch`` and, given a cluster name, ``clusterConfigPath``.

    ``cluster_name`` is the cluster whose repository directory this is: the cluster itself when
    it is self-managed, its management cluster otherwise (workload clusters live in their
    management cluster's directory, as in EKS Anywhere). Without it the path is left unset.
    """
    spec = flux.spec
    if not spec.system_namespace:
        spec.system_namespace = DEFAULT_FLUX_NAMESPACE
    if not spec.branch:
        spec.branch = DEFAULT_BRANCH
    if not spec.cluster_config_path and cluster_name:
        spec.cluster_config_path = cluster_config_path(cluster_name)


def validate_flux_config(flux: FluxConfig) -> list[FieldError]:
    """Every problem of one FluxConfig on its own (name and namespace checks are the Cluster's)."""
    errs = ErrorList(flux.ref)
    spec = flux.spec
    if spec.github is not None and spec.git is not None:
        errs.add("spec", "github and git are both set: specify exactly one git provider")
    elif spec.github is None and spec.git is None:
        errs.add("spec", "no git provider set: specify exactly one of github or git")

    if spec.github is not None:
        _check_github(errs, "spec.github", spec.github.owner, spec.github.repository)

    if spec.git is not None:
        url = spec.git.repository_url
        if not url:
            errs.add("spec.git.repositoryUrl", "repositoryUrl is required")
        else:
            try:
                scheme = urlsplit(url).scheme
            except ValueError as exc:
                errs.add("spec.git.repositoryUrl", f"cannot parse repository url {url!r}: {exc}")
            else:
                if scheme != "ssh":
                    errs.add(
                        "spec.git.repositoryUrl",
                        f"repository url {url!r} must use the ssh scheme (ssh://...), got "
                        f"{scheme or 'no scheme'}",
                    )
        algorithm = spec.git.ssh_key_algorithm
        if algorithm and algorithm not in SSH_KEY_ALGORITHMS:
            errs.add(
                "spec.git.sshKeyAlgorithm",
                f"unsupported ssh key algorithm {algorithm!r}; allowed: {', '.join(SSH_KEY_ALGORITHMS)}",
            )

    _check_branch(errs, "spec.branch", spec.branch)
    return errs.errors


def flux_config_update(old: FluxConfig, new: FluxConfig) -> list[FieldError]:
    """Errors for changes to a FluxConfig: its whole spec is immutable once created.

    An unset ``systemNamespace`` or ``branch`` counts as its default, so defaulting one side
    only is not a change.
    """
    obj = new.ref
    o, n = old.spec, new.spec
    errors = [
        *immutable(
            obj,
            "spec.systemNamespace",
            o.system_namespace or DEFAULT_FLUX_NAMESPACE,
            n.system_namespace or DEFAULT_FLUX_NAMESPACE,
        ),
        *immutable(obj, "spec.clusterConfigPath", o.cluster_config_path, n.cluster_config_path),
        *immutable(obj, "spec.branch", o.branch or DEFAULT_BRANCH, n.branch or DEFAULT_BRANCH),
    ]
    og, ng = o.github or GithubProviderConfig(), n.github or GithubProviderConfig()
    if (o.github is None) != (n.github is None):
        errors += immutable(obj, "spec.github", o.github is not None, n.github is not None)
    errors += immutable(obj, "spec.github.owner", og.owner, ng.owner)
    errors += immutable(obj, "spec.github.repository", og.repository, ng.repository)
    errors += immutable(obj, "spec.github.personal", bool(og.personal), bool(ng.personal))
    ogit, ngit = o.git or GitProviderConfig(), n.git or GitProviderConfig()
    if (o.git is None) != (n.git is None):
        errors += immutable(obj, "spec.git", o.git is not None, n.git is not None)
    errors += immutable(obj, "spec.git.repositoryUrl", ogit.repository_url, ngit.repository_url)
    errors += immutable(obj, "spec.git.sshKeyAlgorithm", ogit.ssh_key_algorithm, ngit.ssh_key_algorithm)
    return errors


def sample_flux(name: str) -> FluxConfig:
    """A FluxConfig for a GitHub repository, as a user would start from; it validates."""
    return FluxConfig(
        metadata=ObjectMeta(name=name),
        spec=FluxConfigSpec(
            branch=DEFAULT_BRANCH,
            github=GithubProviderConfig(
                owner="my-github-org", repository="eks-anywhere-clusters", personal=False
            ),
        ),
    )


# --- GitOpsConfig -------------------------------------------------------------------------


def default_git_ops_config(gitops: GitOpsConfig, cluster_name: str | None = None) -> None:
    """Fill in ``fluxSystemNamespace``, ``branch`` and, given a cluster name, ``clusterConfigPath``.

    ``cluster_name`` is chosen as for :func:`default_flux_config`.
    """
    if gitops.spec.flux is None:
        gitops.spec.flux = Flux()
    if gitops.spec.flux.github is None:
        gitops.spec.flux.github = Github()
    github = gitops.spec.flux.github
    if not github.flux_system_namespace:
        github.flux_system_namespace = DEFAULT_FLUX_NAMESPACE
    if not github.branch:
        github.branch = DEFAULT_BRANCH
    if not github.cluster_config_path and cluster_name:
        github.cluster_config_path = cluster_config_path(cluster_name)


def validate_git_ops_config(gitops: GitOpsConfig) -> list[FieldError]:
    """Every problem of one GitOpsConfig: GitHub owner and repository, repository and branch names."""
    errs = ErrorList(gitops.ref)
    flux = gitops.spec.flux
    github = flux.github if flux is not None else None
    if github is None:
        errs.add("spec.flux.github", "github (owner and repository) is required")
        return errs.errors
    _check_github(errs, "spec.flux.github", github.owner, github.repository)
    _check_branch(errs, "spec.flux.github.branch", github.branch)
    return errs.errors


def git_ops_config_update(old: GitOpsConfig, new: GitOpsConfig) -> list[FieldError]:
    """Errors for changes to a GitOpsConfig: its whole spec is immutable once created.

    Unset ``fluxSystemNamespace`` and ``branch`` count as their defaults.
    """
    obj = new.ref
    og = (old.spec.flux.github if old.spec.flux else None) or Github()
    ng = (new.spec.flux.github if new.spec.flux else None) or Github()
    path = "spec.flux.github"
    return [
        *immutable(obj, f"{path}.owner", og.owner, ng.owner),
        *immutable(obj, f"{path}.repository", og.repository, ng.repository),
        *immutable(
            obj,
            f"{path}.fluxSystemNamespace",
            og.flux_system_namespace or DEFAULT_FLUX_NAMESPACE,
            ng.flux_system_namespace or DEFAULT_FLUX_NAMESPACE,
        ),
        *immutable(obj, f"{path}.branch", og.branch or DEFAULT_BRANCH, ng.branch or DEFAULT_BRANCH),
        *immutable(obj, f"{path}.clusterConfigPath", og.cluster_config_path, ng.cluster_config_path),
        *immutable(obj, f"{path}.personal", bool(og.personal), bool(ng.personal)),
    ]


def sample_gitops(name: str) -> GitOpsConfig:
    """A legacy GitOpsConfig for a GitHub repository; it validates."""
    return GitOpsConfig(
        metadata=ObjectMeta(name=name),
        spec=GitOpsConfigSpec(
            flux=Flux(
                github=Github(owner="my-github-org", repository="eks-anywhere-clusters", personal=False)
            )
        ),
    )
