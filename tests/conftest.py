"""Shared fixtures: valid configurations to break one rule at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from anywhere.api import ClusterConfig, FieldError, check_config
from anywhere.api.generate import generate_config

COMPAT_DIR = Path(__file__).resolve().parents[2] / "shared" / "compat" / "eksa-v1alpha1"


@pytest.fixture
def sim_config() -> ClusterConfig:
    """A valid sim configuration (3 control plane machines, one worker group)."""
    return generate_config("demo", "sim")


@pytest.fixture
def config_of() -> Callable[[str], ClusterConfig]:
    """A valid configuration of any provider."""
    return lambda provider: generate_config("demo", provider)


def errors_at(errors: list[FieldError], field: str) -> list[str]:
    """The messages reported on ``field``."""
    return [e.message for e in errors if e.field == field]


def check(config: ClusterConfig) -> list[FieldError]:
    return check_config(config)
