"""The controller test fixtures (a real management API, a namespace per test, a Context), for the
``sim`` provider's tests, and a way to serve a workload cluster's API without its controller."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from anywhere.controllers.context import Context
from anywhere.controllers.remote import kubeconfig_secret_name
from anywhere.providers.sim.endpoints import Endpoint, EndpointHost
from anywhere.runtime import SECRETS
from tests.controllers.conftest import client, context, namespace, server

__all__ = ["client", "context", "endpoints", "namespace", "serve_workload", "server"]


@pytest.fixture
async def endpoints(context: Context) -> AsyncIterator[EndpointHost]:
    host = EndpointHost(context.data_dir / "test-endpoints")
    try:
        yield host
    finally:
        await host.close()


async def serve_workload(ctx: Context, host: EndpointHost, namespace: str, cluster: str) -> Endpoint:
    """Serve ``cluster``'s API and publish its kubeconfig Secret, as the SimCluster controller does."""
    endpoint = await host.ensure(namespace, cluster)
    await ctx.client.create(
        SECRETS,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": kubeconfig_secret_name(cluster), "namespace": namespace},
            "type": "cluster.x-k8s.io/secret",
            "data": {"value": base64.b64encode(endpoint.kubeconfig).decode()},
        },
    )
    return endpoint
