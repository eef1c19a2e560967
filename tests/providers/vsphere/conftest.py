"""Fixtures of the vSphere provider's tests: govmomi's vCenter simulator, built from source."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vcsim import DEFAULT_CONFIG, Vcsim, VcsimUnavailable, build, start


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    """The simulator binary (built once, cached under .cache/vcsim). Missing tools fail the tests
    rather than skip them: CI installs them (.ci/run)."""
    try:
        return build()
    except VcsimUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def vcsim(vcsim_binary: Path, tmp_path: Path) -> Iterator[Vcsim]:
    """A fresh simulator with DEFAULT_CONFIG and random credentials; its log is tmp_path/vcsim.log."""
    v = start(
        DEFAULT_CONFIG,
        username=f"anywhere-{secrets.token_hex(4)}@vsphere.local",
        password=secrets.token_hex(16),
        binary=vcsim_binary,
        log_path=tmp_path / "vcsim.log",
    )
    try:
        yield v
    finally:
        code = v.stop()
    assert code == 0, f"vcsim exited with {code}:\n{v.log_tail()}"
