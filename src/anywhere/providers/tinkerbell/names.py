"""What the tinkerbell provider's controllers share: failure reasons, the DHCP ConfigMap's name and
key, and the look-ups both the machine controller and the simulated tink-worker make."""

from __future__ import annotations

from typing import Any, Final

from anywhere.providers.tinkerbell.bmc import (
    AUTHENTICATION_FAILED,
    MISSING_CREDENTIALS,
    NOT_CONFIGURED,
    SYSTEM_NOT_FOUND,
    BMCEndpoint,
    auth_secret_ref,
    endpoint_of,
)
from anywhere.providers.tinkerbell.dhcp import reserved_macs
from anywhere.runtime import Informer

__all__ = ["BMC_USER_ERRORS", "DHCP_CONFIG_KEY", "bmc_endpoint", "dhcp_config_name", "dhcp_reserves"]

# The key of the DHCP ConfigMap that holds the dnsmasq configuration.
DHCP_CONFIG_KEY: Final = "dnsmasq.conf"

# BMC failures the user must fix (credentials, the hardware inventory): error conditions. An
# unreachable BMC or one that timed out may come back by itself: warnings.
BMC_USER_ERRORS: Final = frozenset(
    {AUTHENTICATION_FAILED, MISSING_CREDENTIALS, NOT_CONFIGURED, SYSTEM_NOT_FOUND}
)


def dhcp_config_name(cluster: str) -> str:
    """The ConfigMap holding the dnsmasq configuration of a cluster's hardware."""
    return f"{cluster}-dhcp"


def dhcp_reserves(configmaps: Informer, namespace: str, cluster: str, mac: str) -> bool:
    """Whether the cluster's DHCP configuration (as cached) has a reservation for ``mac``."""
    configmap = configmaps.get(f"{namespace}/{dhcp_config_name(cluster)}") or {}
    return mac in reserved_macs(str((configmap.get("data") or {}).get(DHCP_CONFIG_KEY) or ""))


def bmc_endpoint(secrets: Informer, hardware: dict[str, Any]) -> BMCEndpoint:
    """The BMC of ``hardware`` with the credentials of its Secret (as cached)."""
    return endpoint_of(hardware, secrets.get("/".join(auth_secret_ref(hardware))))
