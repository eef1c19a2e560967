"""Prometheus metrics of the API server, named as kube-apiserver names its own where they overlap."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


class Metrics:
    """One registry per server, so several servers in one process (tests) do not collide."""

    def __init__(self, watchers: Callable[[], int]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "apiserver_request_total",
            "Requests by verb, resource and HTTP code.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Time to answer a request (for watches: to the end of the stream).",
            ["verb", "resource"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        watch_gauge = Gauge("apiserver_registered_watchers", "Open watch streams.", registry=self.registry)
        watch_gauge.set_function(lambda: float(watchers()))

    def observe(self, verb_resource: tuple[str, str] | None, code: int, seconds: float) -> None:
        verb, resource = verb_resource or ("other", "")
        self.requests.labels(verb, resource, str(code)).inc()
        self.latency.labels(verb, resource).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
