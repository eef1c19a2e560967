"""The official Python kubernetes client and a kopf operator against a real `anywhere serve`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.apiserver.conftest import Server, start_server, stop_server

GROUP, VERSION, PLURAL = "example.com", "v1", "gadgets"
GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


def api_client(server: Server) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(server.kubeconfig))


@pytest.fixture(scope="module")
def gadgets(server: Server) -> client.CustomObjectsApi:
    api = api_client(server)
    client.ApiextensionsV1Api(api).create_custom_resource_definition(GADGET_CRD)
    return client.CustomObjectsApi(api)


def test_configmap_crud_and_watch(server: Server) -> None:
    core = client.CoreV1Api(api_client(server))
    start = core.list_namespaced_config_map("default").metadata.resource_version
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py1"), data={"a": "1"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid
    assert created.metadata.resource_version
    created.data["b"] = "2"
    updated = core.replace_namespaced_config_map("py1", "default", created)
    assert updated.data == {"a": "1", "b": "2"}
    stale = created
    stale.metadata.resource_version = created.metadata.resource_version
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("py1", "default", stale)
    assert conflict.value.status == 409
    core.patch_namespaced_config_map("py1", "default", {"data": {"c": "3"}})
    core.delete_namespaced_config_map("py1", "default")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("py1", "default")
    assert missing.value.status == 404

    events = []
    stream = watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=5
    )
    for event in stream:
        if event["object"].metadata.name == "py1":
            events.append(event["type"])
        if event["type"] == "DELETED" and event["object"].metadata.name == "py1":
            break
    assert events == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]


def test_custom_resource_crud_and_watch(server: Server, gadgets: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"size": 1},
    }
    created = gadgets.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
    assert created["metadata"]["generation"] == 1
    created["spec"]["size"] = 2
    updated = gadgets.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g1", created)
    assert updated["metadata"]["generation"] == 2
    status = gadgets.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "g1", {"status": {"ok": True}}
    )
    assert status["status"] == {"ok": True}
    assert status["metadata"]["generation"] == 2  # status writes do not bump the generation
    listed = gadgets.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["g1"]
    seen = []
    stream = watch.Watch().stream(
        gadgets.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, timeout_seconds=5
    )
    for event in stream:
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 1:
            gadgets.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "g1")
        if event["type"] == "DELETED":
            break
    assert seen == [("ADDED", "g1"), ("DELETED", "g1")]


def test_kopf_operator_handles_create_update_delete(server: Server, gadgets: client.CustomObjectsApi) -> None:
    import kopf
    from kopf.testing import KopfRunner

    handled: dict[str, list[int]] = {"create": [], "update": [], "delete": []}
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: object) -> kopf.ConnectionInfo:
        settings = client.Configuration()
        config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=settings)
        return kopf.ConnectionInfo(
            server=settings.host,
            ca_path=settings.ssl_ca_cert,
            certificate_path=settings.cert_file,
            private_key_path=settings.key_file,
        )

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.watching.server_timeout = 10
        settings.persistence.finalizer = "example.com/kopf-finalizer"

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def on_create(spec: dict[str, int], **_: object) -> dict[str, str]:
        handled["create"].append(spec["size"])
        return {"phase": "created"}

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def on_update(spec: dict[str, int], **_: object) -> None:
        handled["update"].append(spec["size"])

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def on_delete(spec: dict[str, int], **_: object) -> None:
        handled["delete"].append(spec["size"])

    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": "op1"},
        "spec": {"size": 5},
    }
    with KopfRunner(["run", "--standalone", "--namespace", "default"], registry=registry, timeout=60):
        gadgets.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body)
        _wait_for(lambda: handled["create"] == [5])
        obj = gadgets.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "op1")
        assert "example.com/kopf-finalizer" in obj["metadata"]["finalizers"]
        gadgets.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "op1", {"spec": {"size": 6}}
        )
        _wait_for(lambda: handled["update"] == [6])
        gadgets.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "op1")
        _wait_for(lambda: handled["delete"] == [6])
        _wait_for(lambda: _gone(gadgets, "op1"))


def _gone(gadgets: client.CustomObjectsApi, name: str) -> bool:
    try:
        gadgets.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, name)
    except ApiException as exc:
        return exc.status == 404
    return False


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Poll a condition that another thread (the operator) makes true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        threading.Event().wait(0.1)


def test_state_and_watch_survive_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data")
    try:
        core = client.CoreV1Api(api_client(first))
        made = [
            core.create_namespaced_config_map(
                "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"r{i}"), data={"i": str(i)})
            )
            for i in range(5)
        ]
        seen_rv = made[-1].metadata.resource_version
        core.patch_namespaced_config_map("r0", "default", {"data": {"i": "changed"}})
        core.delete_namespaced_config_map("r1", "default")
        before = {
            cm.metadata.name: cm.metadata.resource_version
            for cm in core.list_namespaced_config_map("default").items
        }
    finally:
        assert stop_server(first) == 0
    second = start_server(tmp_path / "data")
    try:
        core = client.CoreV1Api(api_client(second))
        after = {
            cm.metadata.name: cm.metadata.resource_version
            for cm in core.list_namespaced_config_map("default").items
        }
        assert after == before
        events = []
        for event in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=seen_rv, timeout_seconds=3
        ):
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 2:
                break
        assert events == [("MODIFIED", "r0"), ("DELETED", "r1")]
    finally:
        assert stop_server(second) == 0
