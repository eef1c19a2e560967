"""The embedded ``sim`` provider: in-memory machines with the rules of real ones.

Simulated does not mean lenient. The pieces here (an etcd membership with raft's quorum rules,
a DHCP lease pool with a real server's rules) refuse what the real component would refuse, so
a controller bug that would break a real cluster breaks the simulated one first, in a test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anywhere.providers.sim.provider import SimProvider

    PROVIDER: SimProvider

__all__ = ["PROVIDER"]


def __getattr__(name: str) -> Any:
    """``PROVIDER`` on first use: importing the package must not import the controllers."""
    if name == "PROVIDER":
        from anywhere.providers.sim.provider import PROVIDER

        return PROVIDER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
