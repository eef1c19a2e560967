"""What controller-runtime and client-go are to Go, for asyncio: the machinery controllers run on.

- :class:`Client`: an async Kubernetes API client for unstructured objects (dicts), addressed by
  :class:`Resource`; failures are :class:`APIError` (``NotFoundError``, ``ConflictError``,
  ``Expired``...) or :class:`TransportError`.
- :class:`Informer` / :class:`InformerFactory`: shared, list-then-watch caches with event handlers.
- :class:`WorkQueue`: deduplicating, rate-limited queue of keys.
- :class:`Controller`: level-triggered ``reconcile(key) -> Result`` over watched resources.
- :class:`LeaderElector` / :func:`elect`: leader election on a Lease.
- :class:`Manager`: controllers sharing informers, run only while leading.
- :func:`set_keepalive`: the TCP keepalive every client connection has (a quiet watch notices a
  server that vanished).

Everything is asyncio; nothing blocks the loop after construction.
"""

from anywhere.runtime._keepalive import set_keepalive
from anywhere.runtime.client import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    AlreadyExistsError,
    APIError,
    Client,
    ConflictError,
    Expired,
    KubeConfig,
    KubeConfigError,
    NotFoundError,
    PatchType,
    Resource,
    SocketFactory,
    TransportError,
    Watch,
    WatchEvent,
    load_kubeconfig,
    parse_kubeconfig,
)
from anywhere.runtime.controller import Controller, Result, enqueue_mapped, enqueue_owner, enqueue_self
from anywhere.runtime.informer import EventHandler, Informer, InformerFactory, object_key, split_key
from anywhere.runtime.leaderelection import LeaderElector, LeadershipLost, default_identity, elect
from anywhere.runtime.manager import LeaderElection, Manager
from anywhere.runtime.workqueue import (
    ExponentialRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    ShutDown,
    TokenBucketRateLimiter,
    WorkQueue,
    default_rate_limiter,
)

__all__ = [
    "CONFIGMAPS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "APIError",
    "AlreadyExistsError",
    "Client",
    "ConflictError",
    "Controller",
    "EventHandler",
    "Expired",
    "ExponentialRateLimiter",
    "Informer",
    "InformerFactory",
    "KubeConfig",
    "KubeConfigError",
    "LeaderElection",
    "LeaderElector",
    "LeadershipLost",
    "Manager",
    "MaxOfRateLimiter",
    "NotFoundError",
    "PatchType",
    "RateLimiter",
    "Resource",
    "Result",
    "ShutDown",
    "SocketFactory",
    "TokenBucketRateLimiter",
    "TransportError",
    "Watch",
    "WatchEvent",
    "WorkQueue",
    "default_identity",
    "default_rate_limiter",
    "elect",
    "enqueue_mapped",
    "enqueue_owner",
    "enqueue_self",
    "load_kubeconfig",
    "object_key",
    "parse_kubeconfig",
    "set_keepalive",
    "split_key",
]
