"""OpenAPI v3/v2 documents: their shape, what kubectl looks for in them, and the real kubectl using them."""

from __future__ import annotations

import asyncio
import copy
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from anywhere.api.crds import all_crds
from anywhere.apiserver import openapi, structural
from anywhere.apiserver.resources import BUILTIN_TYPES, Registry

CLUSTER = "com.amazonaws.eks.anywhere.v1alpha1.Cluster"
CONFIG_MAP = "io.k8s.api.core.v1.ConfigMap"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
OBJECT_META_REF = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
ANYWHERE = "anywhere.eks.amazonaws.com"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Cluster",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"},
                },
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "What the widget should be.",
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                        "properties": {"known": {"type": "string"}},
                                    },
                                    "note": {"type": "string", "nullable": True},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    served = Registry()
    for crd in all_crds():
        served.set_crd(crd["metadata"]["name"], crd)
    return served


def schemas(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for key, sub in value.items():
            if key != "$ref":
                yield from refs(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from refs(sub)


def patch_supports(document: dict[str, Any], gvk: dict[str, str], parameter: str) -> bool:
    """kubectl's QueryParamVerifierV3: the PATCH operation tagged with the kind must take the parameter."""
    for item in document["paths"].values():
        operation = item.get("patch")
        if operation is None or operation.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == parameter and p["in"] == "query" for p in operation.get("parameters", []))
    raise AssertionError(f"no PATCH operation for {gvk}")


def explain_target(document: dict[str, Any], group: str, version: str, plural: str) -> dict[str, Any]:
    """kubectl explain's lookup: the kind from the resource's path operations, then the schema with that kind."""
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    candidates = [
        f"{prefix}/{plural}",
        f"{prefix}/{plural}/{{name}}",
        f"{prefix}/namespaces/{{namespace}}/{plural}",
        f"{prefix}/namespaces/{{namespace}}/{plural}/{{name}}",
    ]
    gvk = next(
        operation["x-kubernetes-group-version-kind"]
        for path in candidates
        if path in document["paths"]
        for method, operation in document["paths"][path].items()
        if method in ("get", "post", "put", "patch", "delete")
    )
    return next(s for s in schemas(document).values() if gvk in s.get("x-kubernetes-group-version-kind", []))


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref") or (schema.get("allOf") or [{}])[0].get("$ref")
    return schemas(document)[ref.rsplit("/", 1)[1]] if ref else schema


# ---- discovery and caching


def test_discovery_lists_every_served_group_version_with_a_content_hash(registry: Registry) -> None:
    discovery = openapi.v3_discovery(registry)
    expected = {f"apis/{g}/{v}" if g else f"api/{v}" for g, vs in registry.groups().items() for v in vs}
    assert set(discovery["paths"]) == expected
    url = discovery["paths"]["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={openapi.v3_document_hash(registry, 'apps', 'v1')}"
    assert openapi.v3_document(registry, "nope.example.com", "v1") is None
    assert openapi.v3_document_hash(registry, "nope.example.com", "v1") is None


def test_documents_are_built_once_and_rebuilt_when_a_crd_changes() -> None:
    served = Registry()
    first = openapi.v3_document(served, "", "v1")
    assert openapi.v3_document(served, "", "v1") is first
    core_hash = openapi.v3_document_hash(served, "", "v1")
    served.set_crd("widgets.example.com", WIDGET_CRD)
    assert "apis/example.com/v1" in openapi.v3_discovery(served)["paths"]
    assert openapi.v3_document_hash(served, "", "v1") == core_hash  # same content, same hash
    served.set_crd("widgets.example.com", None)
    assert "apis/example.com/v1" not in openapi.v3_discovery(served)["paths"]


# ---- built-in kinds


def test_core_v1_is_valid_openapi_with_described_configmap(registry: Registry) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = openapi.v3_document(registry, "", "v1")
    assert document is not None
    validator.validate(document)
    config_map = schemas(document)[CONFIG_MAP]
    assert config_map["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "ConfigMap", "version": "v1"}
    ]
    assert config_map["description"].startswith("ConfigMap holds configuration data")
    assert config_map["properties"]["data"]["type"] == "object"
    assert config_map["properties"]["data"]["additionalProperties"] == {"type": "string"}
    assert "Data contains the configuration data" in config_map["properties"]["data"]["description"]
    assert config_map["properties"]["binaryData"]["additionalProperties"] == {
        "type": "string",
        "format": "byte",
    }
    assert (
        resolve(document, config_map["properties"]["metadata"])
        is schemas(document)[OBJECT_META_REF.rsplit("/", 1)[1]]
    )
    assert config_map["properties"]["metadata"]["description"]
    assert explain_target(document, "", "v1", "configmaps") is config_map


def test_every_reference_resolves_and_every_schema_is_described(registry: Registry) -> None:
    for path in openapi.v3_discovery(registry)["paths"]:
        parts = path.split("/")
        document = openapi.v3_document(registry, "" if parts[0] == "api" else parts[1], parts[-1])
        assert document is not None
        names = set(schemas(document))
        for ref in refs(document):
            assert ref.removeprefix("#/components/schemas/") in names, (path, ref)
        for name, schema in schemas(document).items():
            assert schema.get("description") or name.endswith("List") or ANYWHERE.split(".")[0] in name, name


def test_kubernetes_names_and_special_types(registry: Registry) -> None:
    core = openapi.v3_document(registry, "", "v1")
    apps = openapi.v3_document(registry, "apps", "v1")
    coordination = openapi.v3_document(registry, "coordination.k8s.io", "v1")
    assert core is not None
    assert apps is not None
    assert coordination is not None
    core_schemas, apps_schemas = schemas(core), schemas(apps)
    # Types named by the Go package that defines them, not by the kind that uses them.
    for name in (
        "io.k8s.api.core.v1.PodTemplateSpec",
        "io.k8s.api.core.v1.PersistentVolumeClaim",
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        "io.k8s.api.autoscaling.v1.Scale",
    ):
        assert name in apps_schemas, name
    assert "io.k8s.api.core.v1.Event" in core_schemas
    assert "io.k8s.api.events.v1.Event" in schemas(openapi.v3_document(registry, "events.k8s.io", "v1") or {})
    requirements = core_schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]
    assert requirements["limits"]["additionalProperties"] == {
        "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"
    }
    assert core_schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["oneOf"] == [
        {"type": "string"},
        {"type": "number"},
    ]
    rolling = apps_schemas["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]["maxSurge"]
    assert resolve(apps, rolling)["format"] == "int-or-string"
    created = core_schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][
        "creationTimestamp"
    ]
    assert resolve(core, created) == {**resolve(core, created), "type": "string", "format": "date-time"}
    renew = schemas(coordination)["io.k8s.api.coordination.v1.LeaseSpec"]["properties"]["renewTime"]
    assert (
        resolve(coordination, renew)
        is schemas(coordination)["io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"]
    )
    fields_v1 = core_schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"]["properties"][
        "fieldsV1"
    ]
    assert resolve(core, fields_v1)["type"] == "object"


def test_apps_v1_is_valid_openapi_with_deployment(registry: Registry) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = openapi.v3_document(registry, "apps", "v1")
    assert document is not None
    validator.validate(document)
    deployment = schemas(document)[DEPLOYMENT]
    assert deployment["required"] == ["spec"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    spec = resolve(document, deployment["properties"]["spec"])
    assert set(spec["required"]) == {"selector", "template"}
    assert spec["properties"]["replicas"]["description"]
    pod_spec = schemas(document)["io.k8s.api.core.v1.PodSpec"]
    assert pod_spec["required"] == ["containers"]
    assert pod_spec["properties"]["containers"]["items"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.Container"
    }
    assert explain_target(document, "apps", "v1", "deployments") is deployment


@pytest.mark.parametrize("rt", BUILTIN_TYPES, ids=lambda rt: f"{rt.group or 'core'}/{rt.kind}")
def test_every_builtin_kind_takes_field_validation(registry: Registry, rt: Any) -> None:
    document = openapi.v3_document(registry, rt.group, rt.version)
    assert document is not None
    gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
    assert patch_supports(document, gvk, "fieldValidation")
    schema = explain_target(document, rt.group, rt.version, rt.plural)
    assert gvk in schema["x-kubernetes-group-version-kind"]


def test_operations_are_the_ones_kubernetes_publishes(registry: Registry) -> None:
    document = openapi.v3_document(registry, "apps", "v1")
    assert document is not None
    paths = document["paths"]
    assert paths["/apis/apps/v1/deployments"]["get"]["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    collection = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert {m: op["x-kubernetes-action"] for m, op in collection.items() if m != "parameters"} == {
        "get": "list",
        "post": "post",
        "delete": "deletecollection",
    }
    assert {p["name"] for p in collection["get"]["parameters"]} >= {
        "watch",
        "labelSelector",
        "limit",
        "continue",
    }
    assert {p["name"] for p in collection["post"]["parameters"]} == {
        "dryRun",
        "fieldManager",
        "fieldValidation",
    }
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert item["patch"]["operationId"] == "patchAppsV1NamespacedDeployment"
    assert "application/strategic-merge-patch+json" in item["patch"]["requestBody"]["content"]
    assert {p["name"] for p in item["put"]["parameters"]} == {"dryRun", "fieldManager", "fieldValidation"}
    assert [p["name"] for p in item["parameters"]] == ["namespace", "name", "pretty"]
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentStatus"
    core = openapi.v3_document(registry, "", "v1")
    assert core is not None
    assert core["paths"]["/api/v1/namespaces/{name}"]["get"]["operationId"] == "readCoreV1Namespace"
    assert set(core["paths"]["/api/v1/namespaces/{name}/finalize"]) == {"parameters", "put"}


# ---- CRD kinds


def test_crd_document_is_valid_openapi_with_cluster(registry: Registry) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = openapi.v3_document(registry, ANYWHERE, "v1alpha1")
    assert document is not None
    validator.validate(document)
    cluster = schemas(document)[CLUSTER]
    gvk = {"group": ANYWHERE, "kind": "Cluster", "version": "v1alpha1"}
    assert cluster["x-kubernetes-group-version-kind"] == [gvk]
    assert cluster["properties"]["metadata"]["allOf"] == [{"$ref": OBJECT_META_REF}]
    assert cluster["properties"]["apiVersion"]["description"].startswith("APIVersion defines")
    assert cluster["properties"]["kind"]["description"].startswith("Kind is a string value")
    assert cluster["description"]
    assert "spec" in cluster["properties"]
    assert schemas(document)[f"{CLUSTER}List"]["properties"]["items"]["items"] == {
        "$ref": f"#/components/schemas/{CLUSTER}"
    }
    assert patch_supports(document, gvk, "fieldValidation")
    assert explain_target(document, ANYWHERE, "v1alpha1", "clusters") is cluster
    status = document["paths"][f"/apis/{ANYWHERE}/v1alpha1/namespaces/{{namespace}}/clusters/{{name}}/status"]
    assert "application/strategic-merge-patch+json" not in status["patch"]["requestBody"]["content"]
    # The CRD as stored is untouched.
    stored = next(rt for rt in registry.all() if rt.kind == "Cluster")
    assert stored.schema is not None
    assert "x-kubernetes-group-version-kind" not in stored.schema


def test_crd_schema_is_unfolded_as_apiextensions_publishes_it() -> None:
    served = Registry()
    served.set_crd("widgets.example.com", WIDGET_CRD)
    document = openapi.v3_document(served, "example.com", "v1")
    assert document is not None
    widget = schemas(document)["com.example.v1.Widget"]
    spec = widget["properties"]["spec"]
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert spec["properties"]["size"]["minimum"] == 1
    paths = document["paths"]
    assert "/apis/example.com/v1/widgets/{name}" in paths  # cluster-scoped: no namespaces/ segment
    assert paths["/apis/example.com/v1/widgets"]["get"]["operationId"] == "listExampleComV1Widget"
    scale = paths["/apis/example.com/v1/widgets/{name}/scale"]["put"]
    assert scale["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "io.k8s.api.autoscaling.v1.Scale"
    )


# ---- v2


def test_v2_is_swagger_with_strings_for_quantity_and_no_v3_only_keywords(registry: Registry) -> None:
    document = openapi.v2_document(registry)
    assert document["swagger"] == "2.0"
    definitions = document["definitions"]
    assert definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"
    assert definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert (
        definitions[CONFIG_MAP]["properties"]["metadata"]["$ref"]
        == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert all(
        ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in definitions
        for ref in refs(document)
    )
    patch = document["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation"
    ).items()
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "kind": "ConfigMap", "version": "v1"}
    served = Registry()
    served.set_crd("widgets.example.com", WIDGET_CRD)
    spec = openapi.v2_document(served)["definitions"]["com.example.v1.Widget"]["properties"]["spec"][
        "properties"
    ]
    assert "anyOf" not in spec["port"]  # v2 cannot say it
    assert "properties" not in spec["extra"]  # anything goes there
    assert "type" not in spec["note"]  # nullable: v2 cannot say "string or null"


def test_v2_is_valid_swagger(registry: Registry) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi.v2_document(registry))


# ---- the real kubectl


KUBECTL = shutil.which("kubectl")


@pytest.fixture
async def kubectl_server(tmp_path: Path) -> AsyncIterator[tuple[Path, list[str]]]:
    """The project's API server over SQLite, with /openapi/* answered by this module, on plain HTTP."""
    from anywhere.apiserver.server import APIServer, User
    from anywhere.storage.sqlite import SQLiteStorage

    async def anyone(request: web.Request) -> User:
        return User("admin", ("system:masters",))

    storage = await SQLiteStorage.open(tmp_path / "state.db")
    server = APIServer(storage, anyone)
    await server.start()
    for crd in all_crds():
        server.registry.set_crd(crd["metadata"]["name"], crd)
    seen: list[str] = []

    @web.middleware
    async def openapi_routes(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path_qs}")
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] != ["openapi"]:
            return await handler(request)
        if parts == ["openapi", "v3"]:
            return web.json_response(openapi.v3_discovery(server.registry))
        if parts[:2] == ["openapi", "v3"] and len(parts) in (4, 5):
            group, version = ("", parts[3]) if parts[2] == "api" else (parts[3], parts[4])
            document = openapi.v3_document(server.registry, group, version)
            if document is not None:
                return web.json_response(document)
        raise web.HTTPNotFound()

    app = server.app()
    app.middlewares.insert(0, openapi_routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: t, user: {token: t}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\n"
    )
    try:
        yield kubeconfig, seen
    finally:
        await runner.cleanup()
        await server.stop()
        await storage.close()


async def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    assert KUBECTL is not None
    process = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "cache"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), 60)
    assert process.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
    return out.decode()


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_apply_leaves_validation_to_the_server(kubectl_server: tuple[Path, list[str]]) -> None:
    kubeconfig, seen = kubectl_server
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1, namespace: default}\ndata: {a: '1'}\n"
    assert "configmap/c1 created" in await kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest)
    assert any(s.startswith("GET /openapi/v3/api/v1?hash=") for s in seen)
    assert not any(s.startswith("GET /openapi/v2") for s in seen)
    assert any(
        s.startswith("POST /api/v1/namespaces/default/configmaps?") and "fieldValidation=Strict" in s
        for s in seen
    )
    seen.clear()
    assert "configured" in await kubectl(kubeconfig, "apply", "-f", "-", stdin=manifest.replace("'1'", "'2'"))
    assert any(
        s.startswith("PATCH /api/v1/namespaces/default/configmaps/c1?") and "fieldValidation=Strict" in s
        for s in seen
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_explain_builtin_and_crd_fields(kubectl_server: tuple[Path, list[str]]) -> None:
    kubeconfig, _ = kubectl_server
    data = await kubectl(kubeconfig, "explain", "configmap.data")
    assert "FIELD: data <map[string]string>" in data
    assert "Data contains the configuration data" in data
    resources = await kubectl(kubeconfig, "explain", "pod.spec.containers.resources")
    assert "limits\t<map[string]Quantity>" in resources
    cluster = await kubectl(kubeconfig, "explain", "cluster.spec")
    assert f"GROUP:      {ANYWHERE}" in cluster
    assert "FIELD: spec <Object>" in cluster
    assert "kubernetesVersion\t<string>" in cluster
    deployment = await kubectl(kubeconfig, "explain", "deployment")
    assert "spec\t<DeploymentSpec> -required-" in deployment
    assert "metadata\t<ObjectMeta>" in deployment


# ---- structural schemas of built-in kinds (fieldValidation, pruning)


def structural_of(api_version: str, kind: str) -> dict[str, Any]:
    group, _, version = api_version.rpartition("/")
    schema = openapi.builtin_structural_schema(group, version, kind)
    assert schema is not None, (api_version, kind)
    return schema


def pod_spec() -> dict[str, Any]:
    return {
        "serviceAccountName": "web",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}],
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "args": ["--port", "8080"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "MEMORY",
                        "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
                    },
                ],
                "resources": {"limits": {"cpu": 1, "memory": "128Mi"}, "requests": {"cpu": "500m"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
                "livenessProbe": {"tcpSocket": {"port": 8080}},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": True}],
                "securityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
            }
        ],
        "volumes": [
            {"name": "config", "configMap": {"name": "web", "defaultMode": 420}},
            {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }


VALID_BUILTIN_OBJECTS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "labels": {"a": "b"}},
        "data": {"a": "1"},
        "binaryData": {"b": "AAE="},
        "immutable": False,
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"x": "y"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()},
        },
        "status": {
            "replicas": 3,
            "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2024-05-01T12:00:00Z"}],
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {**pod_spec(), "nodeName": "n1"},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]},
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "targetPort": 9090},
            ],
        },
    },
    {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "leader", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "renewTime": "2024-05-01T12:00:00.123456Z",
            "leaseTransitions": 2,
        },
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": "default"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    },
    WIDGET_CRD,
]


@pytest.mark.parametrize("obj", VALID_BUILTIN_OBJECTS, ids=lambda obj: obj["kind"])
def test_valid_builtin_objects_have_no_unknown_fields(obj: dict[str, Any]) -> None:
    schema = structural_of(obj["apiVersion"], obj["kind"])
    pruned, paths = structural.prune_with_paths(obj, schema)
    assert paths == []
    assert pruned == obj
    assert structural.validate(pruned, schema) == []


@pytest.mark.parametrize("rt", BUILTIN_TYPES, ids=lambda rt: f"{rt.group or 'core'}/{rt.kind}")
def test_every_builtin_kind_has_a_structural_schema(rt: Any) -> None:
    schema = openapi.builtin_structural_schema(rt.group, rt.version, rt.kind)
    assert schema is not None
    assert structural.check_structural(schema) == []
    assert openapi.builtin_structural_schema(rt.group, rt.version, rt.kind) is schema  # cached
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["apiVersion"] == schema["properties"]["kind"] == {"type": "string"}
    for node in schema_nodes(schema):
        assert not {"$ref", "allOf", "required", "description"} & set(node), node
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string") is True
            or node.get("x-kubernetes-preserve-unknown-fields") is True
        ), node


def schema_nodes(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from schema_nodes(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from schema_nodes(schema[key])


def test_structural_schema_is_none_for_kinds_not_built_in() -> None:
    assert openapi.builtin_structural_schema(ANYWHERE, "v1alpha1", "Cluster") is None
    assert openapi.builtin_structural_schema("apps", "v1", "Nonexistent") is None
    assert openapi.builtin_structural_schema("apps", "v2", "Deployment") is None


def test_unknown_fields_of_builtin_objects_are_found_and_pruned() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}, "bogus": 1}
    schema = structural_of("v1", "ConfigMap")
    assert structural.unknown_fields(config_map, schema) == ["bogus"]
    assert "bogus" not in structural.prune(config_map, schema)

    deployment = copy.deepcopy(VALID_BUILTIN_OBJECTS[1])
    deployment["spec"]["replica"] = 2
    deployment["spec"]["template"]["spec"]["containers"][0]["imag"] = "nginx"
    deployment["spec"]["template"]["metadata"]["labelz"] = {"a": "b"}
    schema = structural_of("apps/v1", "Deployment")
    pruned, paths = structural.prune_with_paths(deployment, schema)
    assert paths == [
        "spec.replica",
        "spec.template.metadata.labelz",
        "spec.template.spec.containers[0].imag",
    ]
    assert pruned == VALID_BUILTIN_OBJECTS[1]


def test_structural_schema_keeps_free_form_values_and_cuts_recursion() -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    openapi_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    openapi_schema["typo"] = True  # JSONSchemaProps has no such field
    # Below the first JSONSchemaProps, the recursion is cut: nested schemas are kept as written.
    openapi_schema["properties"]["spec"]["properties"]["size"]["anything"] = 1
    assert structural.unknown_fields(
        crd, structural_of("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    ) == ["spec.versions[0].schema.openAPIV3Schema.typo"]
    pod = copy.deepcopy(VALID_BUILTIN_OBJECTS[2])
    pod["metadata"]["whatever"] = "the server checks the root metadata itself"
    pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    assert structural.unknown_fields(pod, structural_of("v1", "Pod")) == []


def test_structural_schema_types_builtin_fields() -> None:
    schema = structural_of("apps/v1", "Deployment")
    spec = schema["properties"]["spec"]["properties"]
    container = spec["template"]["properties"]["spec"]["properties"]["containers"]["items"]["properties"]
    # quantities take any number (0.5) or a string, so they are not narrowed to int-or-string
    assert container["resources"]["properties"]["limits"]["additionalProperties"] == {
        "x-kubernetes-preserve-unknown-fields": True
    }
    assert spec["strategy"]["properties"]["rollingUpdate"]["properties"]["maxSurge"] == {
        "x-kubernetes-int-or-string": True
    }
    assert spec["replicas"] == {"type": "integer"}
    wrong = copy.deepcopy(VALID_BUILTIN_OBJECTS[1])
    wrong["spec"]["replicas"] = "3"
    assert [c["field"] for c in structural.validate(wrong, schema)] == ["spec.replicas"]
    # null where Go would decode a zero value: dropped by pruning, not reported as unknown.
    templated = copy.deepcopy(VALID_BUILTIN_OBJECTS[1])
    templated["spec"]["template"]["metadata"]["creationTimestamp"] = None
    pruned, paths = structural.prune_with_paths(templated, schema)
    assert paths == []
    assert pruned == VALID_BUILTIN_OBJECTS[1]
