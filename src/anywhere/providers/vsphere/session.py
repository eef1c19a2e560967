"""How the plane's vSphere controllers get a vCenter session for a VSphereCluster.

The server and its trust settings come from the VSphereCluster (copied from the cluster's
VSphereDatacenterConfig); the credentials from the Secret it names in ``spec.identityRef`` —
``eksa-system/vsphere-credentials``, keys ``username`` and ``password``, which ``anywhere create
cluster`` writes from ``EKSA_VSPHERE_USERNAME``/``EKSA_VSPHERE_PASSWORD`` as EKS Anywhere does. Keeping
them in the API (not in the plane's environment) is what lets a restarted or moved plane go on.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from anywhere.controllers.resources import SYSTEM_NAMESPACE
from anywhere.providers.vsphere._vcenter import (
    CERTIFICATE_NOT_TRUSTED,
    INVALID_CREDENTIALS,
    THUMBPRINT_MISMATCH,
    Credentials,
    Server,
    Sessions,
    VCenter,
    VCenterError,
)
from anywhere.providers.vsphere.inventory import DATACENTER_NOT_FOUND
from anywhere.runtime import Informer

__all__ = [
    "CREDENTIALS_SECRET",
    "MISSING_CREDENTIALS",
    "USER_ERRORS",
    "credentials_from_secret",
    "credentials_secret",
    "server_of",
    "session_for",
]

Obj = dict[str, Any]

CREDENTIALS_SECRET: Final = "vsphere-credentials"
MISSING_CREDENTIALS: Final = "MissingCredentials"
# Failures the user must fix (trust, credentials, vCenter's content); retried ones with an error
# condition. The rest (vCenter unreachable, a failed task) may pass by themselves.
USER_ERRORS: Final = frozenset(
    {
        THUMBPRINT_MISMATCH,
        CERTIFICATE_NOT_TRUSTED,
        INVALID_CREDENTIALS,
        MISSING_CREDENTIALS,
        DATACENTER_NOT_FOUND,
    }
)


def server_of(vsphere_cluster: Obj) -> Server:
    spec = vsphere_cluster.get("spec") or {}
    return Server(
        server=str(spec.get("server") or ""),
        thumbprint=str(spec.get("thumbprint") or ""),
        insecure=bool(spec.get("insecure")),
    )


def _secret_ref(vsphere_cluster: Obj) -> tuple[str, str]:
    ref = (vsphere_cluster.get("spec") or {}).get("identityRef") or {}
    namespace = str(
        ref.get("namespace") or (vsphere_cluster.get("metadata") or {}).get("namespace") or SYSTEM_NAMESPACE
    )
    return namespace, str(ref.get("name") or CREDENTIALS_SECRET)


def credentials_from_secret(secret: Obj | None, where: str) -> Credentials:
    """The username and password of a credentials Secret; VCenterError naming the Secret (never
    its content) when they are missing."""
    if secret is None:
        raise VCenterError(
            MISSING_CREDENTIALS,
            f"Secret {where} with the vCenter credentials does not exist; create the cluster with "
            "EKSA_VSPHERE_USERNAME and EKSA_VSPHERE_PASSWORD set, or create that Secret (keys username, password)",
        )
    data = secret.get("data") or {}
    try:
        username = base64.b64decode(str(data.get("username") or "")).decode()
        password = base64.b64decode(str(data.get("password") or "")).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise VCenterError(
            INVALID_CREDENTIALS, f"Secret {where} does not hold base64 username/password"
        ) from None
    if not username or not password:
        raise VCenterError(
            MISSING_CREDENTIALS, f"Secret {where} lacks the username or password key; set both"
        )
    return Credentials(username, password, where=f"Secret {where}")


def credentials_secret(credentials: Credentials, namespace: str = SYSTEM_NAMESPACE) -> Obj:
    """The Secret the CLI writes with the user's vCenter credentials."""

    def encoded(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CREDENTIALS_SECRET, "namespace": namespace},
        "type": "Opaque",
        "data": {"username": encoded(credentials.username), "password": encoded(credentials.password)},
    }


def session_for(sessions: Sessions, secrets: Informer, vsphere_cluster: Obj) -> VCenter:
    """The session for this VSphereCluster's vCenter (logged in lazily, on first call)."""
    namespace, name = _secret_ref(vsphere_cluster)
    where = f"{namespace}/{name}"
    credentials = credentials_from_secret(secrets.get(where), where)
    return sessions.get(server_of(vsphere_cluster), credentials)
