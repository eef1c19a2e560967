from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from anywhere.api.errors import FieldError
from anywhere.api.v1alpha1.gitops import (
    FluxConfig,
    GithubProviderConfig,
    GitOpsConfig,
    GitProviderConfig,
)
from anywhere.api.validation.gitops import (
    default_flux_config,
    default_git_ops_config,
    flux_config_update,
    git_ops_config_update,
    sample_flux,
    sample_gitops,
    validate_flux_config,
    validate_git_ops_config,
)

FLUX_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: FluxConfig
metadata:
  name: mgmt
  namespace: default
spec:
  systemNamespace: flux-system
  clusterConfigPath: clusters/mgmt
  branch: main
  git:
    repositoryUrl: ssh://git@github.com/org/repo.git
    sshKeyAlgorithm: ecdsa
"""

GITOPS_YAML = """
apiVersion: anywhere.eks.amazonaws.com/v1alpha1
kind: GitOpsConfig
metadata:
  name: mgmt
spec:
  flux:
    github:
      owner: my-org
      repository: clusters
      fluxSystemNamespace: flux-system
      branch: main
      clusterConfigPath: clusters/mgmt
      personal: true
"""


def _flux(text: str = FLUX_YAML) -> FluxConfig:
    return FluxConfig.model_validate(yaml.safe_load(text), by_name=False)


def _gitops(text: str = GITOPS_YAML) -> GitOpsConfig:
    return GitOpsConfig.model_validate(yaml.safe_load(text), by_name=False)


def _one(errors: list[FieldError], field: str, text: str) -> FieldError:
    matching = [e for e in errors if e.field == field]
    assert len(matching) == 1, errors
    assert text in matching[0].message, matching[0].message
    return matching[0]


# --- FluxConfig ---------------------------------------------------------------------------


def test_flux_yaml_loads_and_validates() -> None:
    flux = _flux()
    assert flux.spec.git is not None
    assert flux.spec.git.repository_url == "ssh://git@github.com/org/repo.git"
    assert flux.spec.git.ssh_key_algorithm == "ecdsa"
    assert validate_flux_config(flux) == []


def test_flux_round_trip() -> None:
    for flux in (_flux(), sample_flux("c1")):
        assert FluxConfig.model_validate(flux.to_dict(), by_name=False) == flux


def test_flux_sample_validates() -> None:
    flux = sample_flux("c1")
    assert flux.name == "c1"
    assert validate_flux_config(flux) == []
    default_flux_config(flux, "c1")
    assert validate_flux_config(flux) == []


def test_flux_defaults() -> None:
    flux = FluxConfig.model_validate({"metadata": {"name": "f"}, "spec": {"github": {"owner": "o"}}})
    default_flux_config(flux, "mgmt")
    assert flux.spec.system_namespace == "flux-system"
    assert flux.spec.branch == "main"
    assert flux.spec.cluster_config_path == "clusters/mgmt"


def test_flux_defaults_keep_set_values_and_need_a_cluster_name_for_the_path() -> None:
    flux = _flux()
    flux.spec.branch = "dev"
    flux.spec.cluster_config_path = None
    default_flux_config(flux)
    assert flux.spec.branch == "dev"
    assert flux.spec.cluster_config_path is None


def test_flux_unknown_field_refused() -> None:
    with pytest.raises(ValueError, match="repositoryURL"):
        _flux(FLUX_YAML.replace("repositoryUrl", "repositoryURL"))


def test_flux_both_providers() -> None:
    flux = _flux()
    flux.spec.github = GithubProviderConfig(owner="o", repository="r")
    _one(validate_flux_config(flux), "spec", "exactly one git provider")


def test_flux_no_provider() -> None:
    flux = _flux()
    flux.spec.git = None
    _one(validate_flux_config(flux), "spec", "specify exactly one of github or git")


def test_flux_github_owner_required() -> None:
    flux = sample_flux("c")
    assert flux.spec.github is not None
    flux.spec.github.owner = ""
    _one(validate_flux_config(flux), "spec.github.owner", "owner")


def test_flux_github_repository_required() -> None:
    flux = sample_flux("c")
    assert flux.spec.github is not None
    flux.spec.github.repository = None
    _one(validate_flux_config(flux), "spec.github.repository", "repository is required")


@pytest.mark.parametrize("name", ["my repo", "repo/x", "repo!", "répo"])
def test_flux_github_repository_characters(name: str) -> None:
    flux = sample_flux("c")
    assert flux.spec.github is not None
    flux.spec.github.repository = name
    _one(validate_flux_config(flux), "spec.github.repository", "not a valid git repository name")


def test_flux_git_repository_url_required() -> None:
    flux = _flux()
    assert flux.spec.git is not None
    flux.spec.git.repository_url = None
    _one(validate_flux_config(flux), "spec.git.repositoryUrl", "repositoryUrl is required")


@pytest.mark.parametrize(
    "url", ["https://github.com/org/repo.git", "git@github.com:org/repo.git", "http://[::1"]
)
def test_flux_git_repository_url_must_be_ssh(url: str) -> None:
    flux = _flux()
    assert flux.spec.git is not None
    flux.spec.git.repository_url = url
    _one(validate_flux_config(flux), "spec.git.repositoryUrl", "repository url")


def test_flux_git_ssh_key_algorithm() -> None:
    flux = _flux()
    assert flux.spec.git is not None
    flux.spec.git.ssh_key_algorithm = "dsa"
    error = _one(validate_flux_config(flux), "spec.git.sshKeyAlgorithm", "unsupported ssh key algorithm")
    assert "rsa, ecdsa, ed25519" in error.message


@pytest.mark.parametrize("branch", ["main", "dev/feature", "v1.x", "release-1", "a_b+c,d"])
def test_flux_branch_valid(branch: str) -> None:
    flux = _flux()
    flux.spec.branch = branch
    assert validate_flux_config(flux) == []


@pytest.mark.parametrize(
    "branch", ["main.", "x", "-main", "a..b", "a//b", "feature/a/b", "a b", "/main", "m@in"]
)
def test_flux_branch_invalid(branch: str) -> None:
    flux = _flux()
    flux.spec.branch = branch
    _one(validate_flux_config(flux), "spec.branch", "not a valid git branch name")


def test_flux_all_errors_at_once() -> None:
    flux = FluxConfig.model_validate(
        {"metadata": {"name": "f"}, "spec": {"branch": "bad.", "github": {}, "git": {"sshKeyAlgorithm": "x"}}}
    )
    fields = {e.field for e in validate_flux_config(flux)}
    assert fields == {
        "spec",
        "spec.branch",
        "spec.github.owner",
        "spec.github.repository",
        "spec.git.repositoryUrl",
        "spec.git.sshKeyAlgorithm",
    }
    assert all(e.obj == "FluxConfig/f" for e in validate_flux_config(flux))


def test_flux_update_unchanged() -> None:
    assert flux_config_update(_flux(), _flux()) == []


def test_flux_update_defaults_are_not_a_change() -> None:
    old = _flux()
    new = _flux()
    new.spec.branch = None
    new.spec.system_namespace = None
    assert flux_config_update(old, new) == []


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("spec.systemNamespace", lambda f: setattr(f.spec, "system_namespace", "other")),
        ("spec.clusterConfigPath", lambda f: setattr(f.spec, "cluster_config_path", "clusters/x")),
        ("spec.branch", lambda f: setattr(f.spec, "branch", "dev")),
        ("spec.git.repositoryUrl", lambda f: setattr(f.spec.git, "repository_url", "ssh://h/o/r")),
        ("spec.git.sshKeyAlgorithm", lambda f: setattr(f.spec.git, "ssh_key_algorithm", "rsa")),
    ],
)
def test_flux_update_immutable(field: str, change: Callable[[FluxConfig], None]) -> None:
    old, new = _flux(), _flux()
    change(new)
    _one(flux_config_update(old, new), field, "immutable")


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("spec.github.owner", lambda g: setattr(g, "owner", "someone-else")),
        ("spec.github.repository", lambda g: setattr(g, "repository", "other")),
        ("spec.github.personal", lambda g: setattr(g, "personal", True)),
    ],
)
def test_flux_update_github_immutable(field: str, change: Callable[[object], None]) -> None:
    old, new = sample_flux("c"), sample_flux("c")
    change(new.spec.github)
    _one(flux_config_update(old, new), field, "immutable")


def test_flux_update_provider_switch() -> None:
    old = sample_flux("c")
    new = sample_flux("c")
    new.spec.github = None
    new.spec.git = GitProviderConfig(repository_url="ssh://git@h/o/r.git")
    errors = flux_config_update(old, new)
    assert {"spec.github", "spec.git", "spec.github.owner", "spec.git.repositoryUrl"} <= {
        e.field for e in errors
    }


# --- GitOpsConfig -------------------------------------------------------------------------


def test_gitops_yaml_loads_and_validates() -> None:
    gitops = _gitops()
    assert gitops.spec.flux is not None
    assert gitops.spec.flux.github is not None
    assert gitops.spec.flux.github.flux_system_namespace == "flux-system"
    assert validate_git_ops_config(gitops) == []


def test_gitops_round_trip() -> None:
    for gitops in (_gitops(), sample_gitops("c")):
        assert GitOpsConfig.model_validate(gitops.to_dict(), by_name=False) == gitops


def test_gitops_sample_validates() -> None:
    assert validate_git_ops_config(sample_gitops("c")) == []


def test_gitops_defaults() -> None:
    gitops = GitOpsConfig.model_validate({"metadata": {"name": "g"}})
    default_git_ops_config(gitops, "mgmt")
    assert gitops.spec.flux is not None
    github = gitops.spec.flux.github
    assert github is not None
    assert github.flux_system_namespace == "flux-system"
    assert github.branch == "main"
    assert github.cluster_config_path == "clusters/mgmt"


def test_gitops_github_required() -> None:
    gitops = GitOpsConfig.model_validate({"metadata": {"name": "g"}, "spec": {"flux": {}}})
    _one(validate_git_ops_config(gitops), "spec.flux.github", "required")


def test_gitops_owner_and_repository_required() -> None:
    gitops = GitOpsConfig.model_validate({"metadata": {"name": "g"}, "spec": {"flux": {"github": {}}}})
    errors = validate_git_ops_config(gitops)
    _one(errors, "spec.flux.github.owner", "owner")
    _one(errors, "spec.flux.github.repository", "repository is required")


def test_gitops_repository_characters() -> None:
    gitops = _gitops()
    assert gitops.spec.flux is not None
    assert gitops.spec.flux.github is not None
    gitops.spec.flux.github.repository = "bad name"
    _one(validate_git_ops_config(gitops), "spec.flux.github.repository", "not a valid git repository name")


def test_gitops_branch() -> None:
    gitops = _gitops()
    assert gitops.spec.flux is not None
    assert gitops.spec.flux.github is not None
    gitops.spec.flux.github.branch = "main."
    _one(validate_git_ops_config(gitops), "spec.flux.github.branch", "not a valid git branch name")


@pytest.mark.parametrize(
    ("key", "attr", "value"),
    [
        ("owner", "owner", "x"),
        ("repository", "repository", "y"),
        ("fluxSystemNamespace", "flux_system_namespace", "flux"),
        ("branch", "branch", "dev"),
        ("clusterConfigPath", "cluster_config_path", "c/x"),
        ("personal", "personal", False),
    ],
)
def test_gitops_update_immutable(key: str, attr: str, value: object) -> None:
    old, new = _gitops(), _gitops()
    assert new.spec.flux is not None
    setattr(new.spec.flux.github, attr, value)
    _one(git_ops_config_update(old, new), f"spec.flux.github.{key}", "immutable")


def test_gitops_update_unchanged() -> None:
    assert git_ops_config_update(_gitops(), _gitops()) == []
