"""Fixtures of the tinkerbell provider's tests: a real Redfish emulator (sushy-tools) for the BMCs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from anywhere.providers.tinkerbell.bmc import BMCs
from tests.redfish import Emulator, fake_systems, start


@pytest.fixture(scope="module")
def redfish() -> Iterator[Emulator]:
    """One emulator per test module: five systems ``hw-1``..``hw-5``, powered off at start, with
    MACs ``52:54:00:00:00:01``..``05``, behind a random password. Tests that change a system's power
    should each use their own system (or their own emulator: :func:`tests.redfish.start` takes
    ~0.3 s), since the module's tests share these."""
    emulator = start(fake_systems(5))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def bmcs() -> Iterator[BMCs]:
    """A BMC client pool for one test."""
    pool = BMCs()
    try:
        yield pool
    finally:
        pool.close()
