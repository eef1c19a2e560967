"""Fixtures for tests on the netns provider's real host networking (namespaces, bridge, dnsmasq).

Every test gets its own state folder, so its namespaces carry a scope of their own and never meet
those of another test, another run, or a real cluster on this host. Whatever the test does, the
fixture removes everything of that folder afterwards and fails the test if anything was left.
These tests need root (CI runs as root) and dnsmasq, busybox and arping (.ci/run installs them).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from anywhere.providers.netns.fabric import Fabric, FabricSpec
from anywhere.providers.netns.inventory import cleanup_all, leaks, scope_id

__all__ = ["make_fabric", "requires_root", "spec", "state_dir"]

requires_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("nsenter") is None,
    reason="network namespaces need root (CI runs the netns tests as root)",
)

SUBNET = "10.231.0.0/24"
GATEWAY = "10.231.0.1"


def spec(bridge: str = "awt-br0", start: str = "10.231.0.100", end: str = "10.231.0.120") -> FabricSpec:
    """A fabric's settings; the subnet is private to the test's own namespaces."""
    return FabricSpec.of(bridge, SUBNET, GATEWAY, start, end, lease_seconds=600)


def in_range(address: ipaddress.IPv4Address, fabric: Fabric) -> bool:
    return fabric.spec.range_start <= address <= fabric.spec.range_end


@pytest.fixture
async def state_dir(tmp_path: Path) -> AsyncIterator[Path]:
    """A state folder whose every trace is removed after the test (which fails if one remains)."""
    folder = tmp_path / "netns-state"
    folder.mkdir()
    try:
        yield folder
    finally:
        scope = scope_id(folder)
        await cleanup_all(folder)
        left = await leaks(folder, scope)
        assert left == [], f"left behind: {left}"


async def make_fabric(state: Path, **kwargs: str) -> Fabric:
    fabric = Fabric(state, spec(**kwargs))
    await fabric.ensure()
    return fabric
