"""What every controller of a management plane is built with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anywhere.controllers.remote import ClusterCache
from anywhere.runtime import Client, Manager

__all__ = ["Context"]


@dataclass
class Context:
    """The management plane as controllers see it.

    ``client`` talks to the management API (the only way controllers reach storage); ``manager``
    holds the shared informers (``manager.informer(resource)`` is the cache to read from);
    ``clusters`` reaches workload clusters. ``data_dir`` is where providers keep local state
    that is theirs and not the API's (the ``sim`` provider's per-cluster API servers).
    ``self_cluster`` names the self-managed cluster whose own API this plane is (``namespace/name``),
    if any; ``self_kubeconfig`` is an admin kubeconfig of this plane's API, for that cluster's
    ``NAME-kubeconfig`` Secret.
    """

    client: Client
    manager: Manager
    clusters: ClusterCache
    data_dir: Path
    self_cluster: str | None = None
    self_kubeconfig: bytes | None = None
