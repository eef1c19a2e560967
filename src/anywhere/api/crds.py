"""CustomResourceDefinitions (``apiextensions.k8s.io/v1``) for the kinds of ``anywhere``.

The OpenAPI schema of each CRD is derived from the kind's pydantic model and then made
*structural*, as a Kubernetes API server requires: every node has a ``type``, definitions are
inlined, ``X | None`` is just ``X``, ``int | str`` is ``x-kubernetes-int-or-string``, free-form
maps keep their unknown fields, and keywords Kubernetes rejects (``title``, ``$defs``, ``const``,
``additionalProperties: false``, ...) are left out. No ``default`` appears: defaulting is
done by our admission step, not by the schema.

Descriptions come from class docstrings and field descriptions (their first paragraph), so that
``kubectl explain`` has something to say.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from anywhere.api import capi, v1alpha1
from anywhere.api.capi._base import CONTRACT_LABEL, CapiObject
from anywhere.api.v1alpha1._base import Object

Schema = dict[str, Any]

CATEGORIES = ["anywhere"]

# Keywords of a value (not a structure) that Kubernetes accepts and that keep their meaning.
_VALUE_KEYWORDS = (
    "enum",
    "maximum",
    "minimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "maxProperties",
    "minProperties",
)

# Formats an API server understands; any other format is left out rather than guessed at.
_FORMATS = frozenset(
    {
        "byte",
        "date",
        "date-time",
        "double",
        "duration",
        "email",
        "float",
        "hostname",
        "int32",
        "int64",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uri",
        "uuid",
    }
)

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"


def first_paragraph(text: str | None) -> str:
    """The first paragraph of a docstring or description, on one line, as plain text."""
    if not text:
        return ""
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    # reStructuredText markup reads badly in ``kubectl explain``: keep just the words.
    paragraph = re.sub(r":[\w.]+:`~[\w.]*?(\w+)`", r"\1", paragraph)
    paragraph = re.sub(r":[\w.]+:`([^`]+)`", r"\1", paragraph).replace("``", "")
    return " ".join(paragraph.split())


def _with_description(schema: Schema, description: str) -> Schema:
    if description:
        return {"description": description, **{k: v for k, v in schema.items() if k != "description"}}
    return schema


def _free_form(description: str = "", typed: bool = True) -> Schema:
    node: Schema = {"type": "object"} if typed else {}
    node[_PRESERVE] = True
    return _with_description(node, description)


class _Converter:
    """Turns one pydantic JSON schema into a structural OpenAPI v3 schema."""

    def __init__(self, defs: Mapping[str, Schema]) -> None:
        self.defs = defs

    def convert(self, node: Schema, stack: tuple[str, ...] = ()) -> Schema:
        description = first_paragraph(node.get("description"))

        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in stack:
                # A recursive model cannot be spelled out structurally: keep whatever is there.
                return _free_form(description or first_paragraph(self.defs[name].get("description")))
            return _with_description(self.convert(self.defs[name], (*stack, name)), description)

        for combinator in ("anyOf", "oneOf"):
            if combinator in node:
                return _with_description(self._union(node[combinator], stack), description)
        if "allOf" in node:
            parts = node["allOf"]
            if len(parts) == 1:
                return _with_description(self.convert(parts[0], stack), description)
            return _free_form(description, typed=False)

        kind = node.get("type")
        if isinstance(kind, list):
            options = [{**node, "type": t} for t in kind]
            return _with_description(self._union(options, stack), description)
        if kind is None:
            if "const" in node or "enum" in node:
                return _with_description(self._enum(node), description)
            return _free_form(description, typed=False)

        out: Schema = {"type": kind}
        if description:
            out["description"] = description
        if kind == "object":
            self._object(node, out, stack)
        elif kind == "array":
            items = node.get("items")
            out["items"] = self.convert(items, stack) if isinstance(items, dict) else _free_form(typed=False)
        else:
            self._value(node, out)
        return out

    def _object(self, node: Schema, out: Schema, stack: tuple[str, ...]) -> None:
        properties = node.get("properties") or {}
        if properties:
            out["properties"] = {name: self.convert(sub, stack) for name, sub in properties.items()}
            required = [name for name in node.get("required", ()) if name in properties]
            if required:
                out["required"] = required
        extra = node.get("additionalProperties")
        if extra is None and not properties:
            patterns = node.get("patternProperties")
            if isinstance(patterns, dict) and len(patterns) == 1:
                extra = next(iter(patterns.values()))
            elif not patterns and "properties" not in node:
                extra = True  # a bare ``dict``: anything goes
        if extra is True or (isinstance(extra, dict) and not extra):
            out[_PRESERVE] = True
        elif isinstance(extra, dict):
            if properties:
                # Kubernetes forbids properties and additionalProperties together.
                out[_PRESERVE] = True
            else:
                out["additionalProperties"] = self.convert(extra, stack)
        for key in ("maxProperties", "minProperties"):
            if key in node:
                out[key] = node[key]

    def _value(self, node: Schema, out: Schema) -> None:
        for key in _VALUE_KEYWORDS:
            if key in node:
                out[key] = node[key]
        if "const" in node:
            out["enum"] = [node["const"]]
        if node.get("format") in _FORMATS:
            out["format"] = node["format"]
        # JSON Schema 2020-12 gives exclusive bounds as numbers; OpenAPI v3 as flags.
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(bound)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[plain] = value
                out[bound] = True

    def _enum(self, node: Schema) -> Schema:
        values = [node["const"]] if "const" in node else list(node["enum"])
        types = {_json_type(v) for v in values}
        if len(types) == 1:
            return {"type": types.pop(), "enum": values}
        return _free_form(typed=False)

    def _union(self, options: Iterable[Schema], stack: tuple[str, ...]) -> Schema:
        converted = [self.convert(o, stack) for o in options if o.get("type") != "null"]
        if not converted:
            return _free_form(typed=False)
        if len(converted) == 1:
            return converted[0]
        types = {c.get("type") for c in converted}
        if types == {"integer", "string"}:
            return {_INT_OR_STRING: True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        if types == {"integer", "number"}:
            return {"type": "number"}
        if len(types) == 1 and None not in types:
            merged = _merge_same_type(converted)
            if merged is not None:
                return merged
        if types == {"object"}:
            return _free_form()
        return _free_form(typed=False)


def _merge_same_type(options: list[Schema]) -> Schema | None:
    """One schema for alternatives of one type, when they differ only in their values' limits."""
    first = options[0]
    if first["type"] in ("string", "integer", "number", "boolean"):
        enums = [o.get("enum") for o in options]
        out: Schema = {"type": first["type"]}
        if all(e is not None for e in enums):
            out["enum"] = [v for e in enums for v in (e or [])]
        return out
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def openapi_schema(kind: type[Object]) -> Schema:
    """The structural ``openAPIV3Schema`` of a kind."""
    source = kind.model_json_schema(by_alias=True, mode="validation")
    converter = _Converter(source.get("$defs", {}))
    properties: dict[str, Schema] = {
        "apiVersion": {
            "type": "string",
            "description": "The versioned schema of this object: " + f"{kind.GROUP}/{kind.VERSION}.",
        },
        "kind": {"type": "string", "description": f"The kind of this object: {kind.KIND}."},
        "metadata": {"type": "object"},
    }
    for name, sub in source.get("properties", {}).items():
        if name in properties:
            continue
        properties[name] = converter.convert(sub)
    properties.setdefault("spec", {"type": "object"})
    properties.setdefault(
        "status", {"type": "object", "description": "The observed state, set by the controllers."}
    )
    schema: Schema = {"type": "object"}
    description = first_paragraph(kind.__doc__)
    if description:
        schema["description"] = description
    schema["properties"] = properties
    return schema


def _column(name: str, path: str, type_: str = "string", priority: int = 0, description: str = "") -> Schema:
    column: Schema = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    if description:
        column["description"] = description
    return column


_READY = '.status.conditions[?(@.type=="Ready")]'

# Columns shown when the kind has the field; the Age column always comes last.
_COLUMNS: tuple[tuple[str, Schema], ...] = (
    (
        ".spec.kubernetesVersion",
        _column("Version", ".spec.kubernetesVersion", description="Kubernetes version"),
    ),
    (".status.conditions", _column("Ready", f"{_READY}.status", description="Whether the object is ready")),
    (
        ".status.conditions",
        _column("Reason", f"{_READY}.reason", priority=1, description="Why it is not ready"),
    ),
    (
        ".spec.controlPlaneConfiguration.count",
        _column(
            "Control Plane",
            ".spec.controlPlaneConfiguration.count",
            "integer",
            priority=1,
            description="Number of control plane nodes",
        ),
    ),
    (".spec.osFamily", _column("OS", ".spec.osFamily", description="Operating system of the nodes")),
    (".spec.numCPUs", _column("CPUs", ".spec.numCPUs", "integer")),
    (".spec.memoryMiB", _column("Memory MiB", ".spec.memoryMiB", "integer")),
    (".spec.instanceType", _column("Instance Type", ".spec.instanceType")),
    (".spec.server", _column("Server", ".spec.server", description="vCenter server")),
    (".spec.datacenter", _column("Datacenter", ".spec.datacenter", priority=1)),
    (".spec.endpoint", _column("Endpoint", ".spec.endpoint")),
    (".spec.tinkerbellIP", _column("Tinkerbell IP", ".spec.tinkerbellIP")),
    (".spec.template", _column("Template", ".spec.template", priority=1)),
    (".spec.issuerUrl", _column("Issuer", ".spec.issuerUrl")),
    (".spec.branch", _column("Branch", ".spec.branch")),
    (".status.specValid", _column("Valid", ".status.specValid", "boolean", description="Spec is valid")),
)


def _node_at(schema: Schema, path: str) -> Schema | None:
    node: Schema | None = schema
    for part in path.strip(".").split("."):
        if node is None:
            return None
        node = node.get("properties", {}).get(part)
    return node


def printer_columns(kind: type[Object], schema: Schema | None = None) -> list[Schema]:
    """The ``kubectl get`` columns of a kind: the useful ones its schema has, then Age.

    Cluster API kinds declare theirs (Cluster API's own columns, in its order).
    """
    if issubclass(kind, CapiObject) and kind.PRINTER_COLUMNS:
        return [dict(c) for c in kind.PRINTER_COLUMNS]
    schema = schema if schema is not None else openapi_schema(kind)
    columns: list[Schema] = []
    for path, column in _COLUMNS:
        node = _node_at(schema, path)
        if node is None:
            continue
        expected = "array" if path == ".status.conditions" else column["type"]
        if node.get("type") != expected:
            continue
        columns.append(dict(column))
    columns.append(_column("Age", ".metadata.creationTimestamp", "date"))
    return columns


def _subresources(kind: type[Object]) -> dict[str, Any]:
    if not issubclass(kind, CapiObject):
        return {"status": {}}
    subresources: dict[str, Any] = {}
    if "status" in kind.model_fields:
        subresources["status"] = {}
    if kind.SCALE:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return subresources


def crd_for(kind: type[Object]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, in the kind's own API group."""
    schema = openapi_schema(kind)
    capi_kind = issubclass(kind, CapiObject)
    names: dict[str, Any] = {
        "kind": kind.KIND,
        "listKind": f"{kind.KIND}List",
        "plural": kind.PLURAL,
        "singular": kind.KIND.lower(),
    }
    if kind.SHORT_NAMES:
        names["shortNames"] = list(kind.SHORT_NAMES)
    names["categories"] = list(kind.CATEGORIES) if issubclass(kind, CapiObject) else list(CATEGORIES)
    metadata: dict[str, Any] = {"name": f"{kind.PLURAL}.{kind.GROUP}"}
    if capi_kind and kind.GROUP.endswith("cluster.x-k8s.io"):
        # Cluster API finds the version of a provider's kind that implements its contract this way.
        metadata["labels"] = {CONTRACT_LABEL: kind.VERSION}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": {
            "group": kind.GROUP,
            "names": names,
            "scope": "Namespaced" if kind.NAMESPACED else "Cluster",
            "versions": [
                {
                    "name": kind.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": _subresources(kind),
                    "additionalPrinterColumns": printer_columns(kind, schema),
                }
            ],
        },
    }


def all_crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of every registered ``anywhere`` kind, in registry order."""
    return [crd_for(kind) for kind in v1alpha1.ALL_KINDS]


def capi_crds() -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of the Cluster API style kinds, in registry order."""
    return [crd_for(kind) for kind in capi.ALL_KINDS]


__all__ = ["all_crds", "capi_crds", "crd_for", "openapi_schema", "printer_columns"]
