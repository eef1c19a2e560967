from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import yaml
from pydantic import Field

from anywhere.api import v1alpha1
from anywhere.api.crds import all_crds, crd_for, first_paragraph
from anywhere.api.generate import generate_config
from anywhere.api.infra import PROVIDERS
from anywhere.api.v1alpha1 import KINDS, Object
from anywhere.api.v1alpha1._base import Condition, Model, ObjectMeta
from anywhere.api.v1alpha1.cluster import Cluster, ClusterStatus

jsonschema = pytest.importorskip("jsonschema")

GROUP = "anywhere.eks.amazonaws.com"

# The keywords of apiextensions.k8s.io/v1 JSONSchemaProps we emit; anything else is a mistake.
ALLOWED_KEYWORDS = {
    "type",
    "description",
    "format",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
}
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def structural_errors(node: Any, path: str = "") -> list[str]:
    """What makes a schema non-structural (or rejected by an API server), by path."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    errors = [f"{path}: keyword {key!r} not allowed" for key in node if key not in ALLOWED_KEYWORDS]
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        errors.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true")
    kind = node.get("type")
    if int_or_string:
        if kind is not None:
            errors.append(f"{path}: int-or-string must not set type")
        if "anyOf" in node and node["anyOf"] != INT_OR_STRING_ANY_OF:
            errors.append(f"{path}: int-or-string anyOf must be integer/string only")
    elif "anyOf" in node:
        errors.append(f"{path}: anyOf outside of int-or-string")
    if kind is None and not int_or_string and preserve is not True:
        errors.append(f"{path}: no type")
    if kind is not None and kind not in TYPES:
        errors.append(f"{path}: type {kind!r}")
    if "properties" in node:
        if kind != "object":
            errors.append(f"{path}: properties on a {kind}")
        if "additionalProperties" in node:
            errors.append(f"{path}: properties and additionalProperties together")
        for name, sub in node["properties"].items():
            errors += structural_errors(sub, f"{path}.{name}")
        missing = set(node.get("required", ())) - set(node["properties"])
        if missing:
            errors.append(f"{path}: required names unknown properties {sorted(missing)}")
    elif "required" in node:
        errors.append(f"{path}: required without properties")
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        if not isinstance(extra, dict):
            errors.append(f"{path}: additionalProperties must be a schema, not {extra!r}")
        else:
            errors += structural_errors(extra, f"{path}.*")
    if kind == "array":
        if "items" not in node:
            errors.append(f"{path}: array without items")
        else:
            errors += structural_errors(node["items"], f"{path}[]")
    elif "items" in node:
        errors.append(f"{path}: items on a {kind}")
    if "description" in node and not (isinstance(node["description"], str) and node["description"]):
        errors.append(f"{path}: empty description")
    for value in node.get("enum", ()):
        if kind == "string" and not isinstance(value, str):
            errors.append(f"{path}: enum value {value!r} is not a string")
    return errors


def validator(kind: type[Object]) -> Any:
    schema = schema_of(crd_for(kind))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def assert_valid(obj: Object) -> None:
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(type(obj)).iter_errors(obj.to_dict())
    ]
    assert errors == [], f"{obj.ref}: {errors}"


def test_every_kind_gets_a_crd() -> None:
    crds = all_crds()
    assert [c["spec"]["names"]["kind"] for c in crds] == [k.KIND for k in v1alpha1.ALL_KINDS]
    assert len({c["metadata"]["name"] for c in crds}) == len(crds)


def test_all_crds_reads_the_registry_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v1alpha1, "ALL_KINDS", (Cluster,))
    assert [c["metadata"]["name"] for c in all_crds()] == [f"clusters.{GROUP}"]


@pytest.mark.parametrize("kind", v1alpha1.ALL_KINDS, ids=lambda k: k.KIND)
def test_crd_shape(kind: type[Object]) -> None:
    crd = crd_for(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{kind.PLURAL}.{GROUP}"
    spec = crd["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == kind.KIND
    assert names["listKind"] == f"{kind.KIND}List"
    assert names["plural"] == kind.PLURAL
    assert names["singular"] == kind.KIND.lower()
    assert names.get("shortNames", []) == list(kind.SHORT_NAMES)
    assert names["categories"] == ["anywhere"]
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    for column in columns:
        assert column["type"] in {"integer", "number", "string", "boolean", "date"}
        assert column["jsonPath"].startswith(".")


@pytest.mark.parametrize("kind", v1alpha1.ALL_KINDS, ids=lambda k: k.KIND)
def test_schema_is_structural(kind: type[Object]) -> None:
    schema = schema_of(crd_for(kind))
    assert structural_errors(schema) == []
    properties = schema["properties"]
    assert properties["apiVersion"]["type"] == "string"
    assert properties["kind"]["type"] == "string"
    assert properties["metadata"] == {"type": "object"}
    assert properties["spec"]["type"] == "object"
    assert properties["status"]["type"] == "object"
    assert schema["description"], "kubectl explain needs the kind's docstring"


def test_no_forbidden_keyword_anywhere_in_the_output() -> None:
    """Guards against keywords slipping through as keys of a schema node (not as field names)."""

    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = set(node)
            for key, value in node.items():
                if key != "properties":
                    found |= keys(value)
                else:
                    for sub in value.values():
                        found |= keys(sub)
            return found
        if isinstance(node, list):
            return set().union(*(keys(v) for v in node)) if node else set()
        return set()

    for crd in all_crds():
        used = keys(schema_of(crd))
        assert not used & {"$ref", "$defs", "definitions", "title", "default", "const", "uniqueItems"}


def test_cluster_schema_details() -> None:
    spec = schema_of(crd_for(Cluster))["properties"]["spec"]
    cp = spec["properties"]["controlPlaneConfiguration"]
    assert cp["properties"]["count"]["type"] == "integer"
    assert cp["properties"]["count"]["description"].startswith("Number of control plane machines")
    assert cp["properties"]["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}
    # inlined definition, with the class docstring as its description
    ref = spec["properties"]["datacenterRef"]
    assert ref["type"] == "object"
    assert set(ref["properties"]) == {"kind", "name"}
    assert ref["description"]
    # int | str
    mhc = spec["properties"]["machineHealthCheck"]["properties"]["maxUnhealthy"]
    assert mhc["x-kubernetes-int-or-string"] is True
    assert "type" not in mhc
    # free-form JSON
    kubelet = cp["properties"]["kubeletConfiguration"]
    assert kubelet == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    conditions = schema_of(crd_for(Cluster))["properties"]["status"]["properties"]["conditions"]
    assert conditions["type"] == "array"
    assert conditions["items"]["required"] == ["type", "status"]


def test_aliases_are_the_wire_names() -> None:
    spec = schema_of(crd_for(KINDS["VSphereMachineConfig"]))["properties"]["spec"]["properties"]
    assert {"numCPUs", "memoryMiB", "diskGiB", "osFamily"} <= set(spec)
    assert not {"num_cpus", "memory_mib"} & set(spec)


def test_cluster_printer_columns() -> None:
    columns = crd_for(Cluster)["spec"]["versions"][0]["additionalPrinterColumns"]
    by_path = {c["jsonPath"]: c for c in columns}
    assert by_path[".metadata.creationTimestamp"]["type"] == "date"
    assert by_path[".spec.kubernetesVersion"]["type"] == "string"
    assert by_path['.status.conditions[?(@.type=="Ready")].status']["name"] == "Ready"
    assert by_path['.status.conditions[?(@.type=="Ready")].reason']["priority"] == 1
    count = by_path[".spec.controlPlaneConfiguration.count"]
    assert (count["type"], count["priority"]) == ("integer", 1)


def test_machine_configs_show_os_family() -> None:
    for kind in v1alpha1.ALL_KINDS:
        spec = schema_of(crd_for(kind))["properties"]["spec"].get("properties", {})
        paths = [c["jsonPath"] for c in crd_for(kind)["spec"]["versions"][0]["additionalPrinterColumns"]]
        assert (".spec.osFamily" in paths) == ("osFamily" in spec), kind.KIND


def test_first_paragraph() -> None:
    assert first_paragraph("A ``b`` and :class:`~x.Y`\n  wrapped.\n\nMore.") == "A b and Y wrapped."
    assert first_paragraph(None) == ""


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_generated_configs_validate_against_their_crds(provider: str) -> None:
    config = generate_config("demo", provider)
    for obj in config.all_objects():
        assert_valid(obj)


@pytest.mark.parametrize("kind", v1alpha1.ALL_KINDS, ids=lambda k: k.KIND)
def test_minimal_object_of_every_kind_validates(kind: type[Object]) -> None:
    obj = kind.model_validate({"metadata": {"name": "x"}})
    assert_valid(obj)


def test_status_validates() -> None:
    cluster = Cluster(
        metadata=ObjectMeta(name="demo", namespace="default", labels={"a": "b"}),
        status=ClusterStatus(
            conditions=[Condition(type="Ready", status="False", reason="Waiting", severity="Info")],
            observed_generation=3,
        ),
    )
    assert_valid(cluster)


def cluster_dict() -> dict[str, Any]:
    return generate_config("demo", next(iter(PROVIDERS))).cluster.to_dict()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "controlPlaneConfiguration", "count"), "three"),
        (("spec", "kubernetesVersion"), 1.3),
        (("spec", "workerNodeGroupConfigurations"), {"name": "md-0"}),
        (("spec", "controlPlaneConfiguration", "labels"), {"a": 1}),
        (("spec", "machineHealthCheck"), {"maxUnhealthy": True}),
        (("spec", "machineHealthCheck"), {"maxUnhealthy": [1]}),
        (("spec", "datacenterRef"), "dc"),
        (("status",), {"conditions": [{"type": "Ready"}]}),
        (("apiVersion",), 1),
    ],
)
def test_wrong_types_do_not_validate(path: tuple[str, ...], value: Any) -> None:
    data = cluster_dict()
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert not validator(Cluster).is_valid(data)


def test_int_or_string_takes_both() -> None:
    check = validator(Cluster)
    for value in (1, "40%"):
        data = cluster_dict()
        data["spec"]["machineHealthCheck"] = {"maxUnhealthy": value}
        assert check.is_valid(data), value


def test_free_form_and_metadata_take_anything() -> None:
    data = cluster_dict()
    data["metadata"]["whatever"] = {"x": [1, 2]}
    data["spec"]["controlPlaneConfiguration"]["kubeletConfiguration"] = {"maxPods": 110, "a": {"b": [1]}}
    assert validator(Cluster).is_valid(data)


def test_cli_prints_the_crds() -> None:
    exe = Path(sys.executable).with_name("anywhere")
    if not exe.exists():
        pytest.skip("the anywhere script is not installed next to this python")
    result = subprocess.run(
        [str(exe), "generate", "crds"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    assert documents == all_crds()


class _Node(Model):
    """A tree node."""

    children: list[_Node] | None = None


class _OddSpec(Model):
    """Types the real kinds do not use (yet)."""

    mode: Literal["a", "b"] | None = None
    ratio: float | int | None = None
    port: int | None = Field(default=None, gt=0, le=65535, description="The port.\n\nDetails.")
    tags: set[str] | None = None
    anything: Any = None
    bare: dict | None = None  # type: ignore[type-arg]
    items: list | None = None  # type: ignore[type-arg]
    tree: _Node | None = None
    choice: str | list[str] | None = None


class _Odd(Object):
    """An odd kind for the converter's corner cases."""

    KIND: ClassVar[str] = "Odd"
    PLURAL: ClassVar[str] = "odds"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("od",)
    kind: Literal["Odd"] = "Odd"
    spec: _OddSpec = Field(default_factory=_OddSpec)


def test_corner_cases_stay_structural() -> None:
    crd = crd_for(_Odd)
    assert crd["spec"]["names"]["shortNames"] == ["od"]
    schema = schema_of(crd)
    assert structural_errors(schema) == []
    assert schema["properties"]["status"] == {
        "type": "object",
        "description": schema["properties"]["status"]["description"],
    }
    spec = schema["properties"]["spec"]["properties"]
    assert spec["mode"] == {"type": "string", "enum": ["a", "b"]}
    assert spec["ratio"] == {"type": "number"}
    assert spec["port"] == {
        "type": "integer",
        "description": "The port.",
        "maximum": 65535,
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    assert spec["tags"] == {"type": "array", "items": {"type": "string"}}
    assert spec["anything"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert spec["bare"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert spec["items"] == {"type": "array", "items": {"x-kubernetes-preserve-unknown-fields": True}}
    children = spec["tree"]["properties"]["children"]
    assert children["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["choice"] == {"x-kubernetes-preserve-unknown-fields": True}
    check = validator(_Odd)
    assert check.is_valid({"spec": {"port": 1, "mode": "a"}})
    assert not check.is_valid({"spec": {"port": 0}})
    assert not check.is_valid({"spec": {"mode": "c"}})
