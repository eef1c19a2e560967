"""Names the tinkerbell provider's controllers share: failure reasons and derived object names."""

from __future__ import annotations

from typing import Final

from anywhere.providers.tinkerbell.bmc import (
    AUTHENTICATION_FAILED,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    SYSTEM_NOT_FOUND,
)

__all__ = ["BMC_USER_ERRORS", "dhcp_config_name"]

# BMC failures the user must fix (credentials, the hardware inventory): error conditions. An
# unreachable BMC or one that timed out may come back by itself: warnings.
BMC_USER_ERRORS: Final = frozenset(
    {AUTHENTICATION_FAILED, MISSING_CREDENTIALS, NOT_CONFIGURED, SYSTEM_NOT_FOUND}
)


def dhcp_config_name(cluster: str) -> str:
    """The ConfigMap holding the dnsmasq configuration of a cluster's hardware."""
    return f"{cluster}-dhcp"
