"""The OpenAPI documents of the served API: what ``kubectl apply`` and ``kubectl explain`` read.

kubectl (1.32 and 1.33, measured against a server of ours) uses OpenAPI v3 only:

- ``kubectl apply/create/replace -f`` fetch ``/openapi/v3`` (the discovery document: one
  ``serverRelativeURL`` per group-version) and then each group-version document the manifest
  touches. In it kubectl looks for the PATCH operation whose ``x-kubernetes-group-version-kind``
  is the object's kind and checks that it takes the ``fieldValidation`` query parameter; if so it
  leaves validation to the server and sends ``fieldValidation=Strict``. Without a v3 document it
  falls back to client-side validation against ``/openapi/v2``, which it only reads as protobuf.
- ``kubectl explain`` finds the kind through the operations of the resource's paths and then the
  schema carrying the same ``x-kubernetes-group-version-kind``, and walks its properties.

So each group-version document has, per resource, the paths and operations Kubernetes publishes
(with ``x-kubernetes-action`` and ``x-kubernetes-group-version-kind`` on every operation, and
``fieldValidation`` on create, update and patch), plus every schema they reference.

Built-in kinds' schemas come from the official ``kubernetes`` Python client's generated models
(field names, types, descriptions and required fields; Kubernetes' definition names are rebuilt
from the class names and the API groups that use them). The client flattens a few Kubernetes
types: ``Quantity`` and ``MicroTime`` fields are plain strings/datetimes there, so small tables
below name those fields. Fields that hold another type lose their own description in the
client; they get the described type's description instead. CRD kinds publish their
``openAPIV3Schema`` under the name apiextensions-apiserver gives them (reversed group, version,
kind: ``com.amazonaws.eks.anywhere.v1alpha1.Cluster``), with ``apiVersion``, ``kind`` and a
``metadata`` that references ``ObjectMeta``.

The documents are built once per set of served types (a CRD change rebuilds them) and shared:
callers must not modify what these functions return.

:func:`builtin_structural_schema` turns the same client-derived schemas into a *structural* schema
per built-in kind, which :mod:`anywhere.apiserver.structural` can prune with: kube-apiserver decodes
built-in objects into typed Go structs, which drops (or, with ``fieldValidation=Strict|Warn``,
reports) every field the struct does not have; pruning against this schema does the same.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import inspect
import re
import threading
import types
import typing
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import orjson

from anywhere.apiserver.resources import BUILTIN_TYPES, Registry, ResourceType

JSON = dict[str, Any]

V3_REF = "#/components/schemas/"
V2_REF = "#/definitions/"

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{META}.ObjectMeta"
LIST_META = f"{META}.ListMeta"
STATUS = f"{META}.Status"
DELETE_OPTIONS = f"{META}.DeleteOptions"
PATCH = f"{META}.Patch"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
FIELDS_V1 = f"{META}.FieldsV1"
API_RESOURCE_LIST = f"{META}.APIResourceList"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
JSON_VALUE = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON"

# Kubernetes types that are not objects; the client models have no class for them.
_SCALARS: dict[str, JSON] = {
    TIME: {
        "description": "Time is a timestamp in RFC 3339 form with second precision, e.g. 2024-05-01T12:00:00Z.",
        "type": "string",
        "format": "date-time",
    },
    MICRO_TIME: {
        "description": "MicroTime is a timestamp in RFC 3339 form with microsecond precision.",
        "type": "string",
        "format": "date-time",
    },
    QUANTITY: {
        "description": "Quantity is a decimal number with an optional SI (k, M, G, m) or binary (Ki, Mi, Gi) "
        "suffix or exponent, written as a string such as '500m', '1.5Gi' or '2'.",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    INT_OR_STRING: {
        "description": "IntOrString holds either an integer or a string, e.g. a port number or a port name, "
        "a count or a percentage.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    FIELDS_V1: {
        "description": "FieldsV1 is the set of fields a manager owns, as a JSON object in the managedFields "
        "format (keys such as 'f:spec', 'k:{...}', 'v:...').",
        "type": "object",
    },
    PATCH: {
        "description": "Patch is the body of a PATCH request; its format is given by the request's Content-Type.",
        "type": "object",
    },
    JSON_VALUE: {"description": "JSON is any JSON value: an object, array, string, number, boolean or null."},
}
# Swagger 2.0 has no oneOf: Kubernetes publishes these two as strings there.
_V2_SCALARS: dict[str, JSON] = {
    QUANTITY: {"description": _SCALARS[QUANTITY]["description"], "type": "string"},
    INT_OR_STRING: {
        "description": _SCALARS[INT_OR_STRING]["description"],
        "type": "string",
        "format": "int-or-string",
    },
}

_CORE_V1 = "io.k8s.api.core.v1"
_APPS_V1 = "io.k8s.api.apps.v1"
# Fields whose Kubernetes type is Quantity (the client models say str). Kubernetes 1.37 API.
_QUANTITY_FIELDS = frozenset(
    {
        (f"{_CORE_V1}.ResourceRequirements", "limits"),
        (f"{_CORE_V1}.ResourceRequirements", "requests"),
        (f"{_CORE_V1}.VolumeResourceRequirements", "limits"),
        (f"{_CORE_V1}.VolumeResourceRequirements", "requests"),
        (f"{_CORE_V1}.PodSpec", "overhead"),
        (f"{_CORE_V1}.PodStatus", "allocatedResources"),
        (f"{_CORE_V1}.ContainerStatus", "allocatedResources"),
        (f"{_CORE_V1}.EmptyDirVolumeSource", "sizeLimit"),
        (f"{_CORE_V1}.NodeStatus", "capacity"),
        (f"{_CORE_V1}.NodeStatus", "allocatable"),
        (f"{_CORE_V1}.PersistentVolumeClaimStatus", "capacity"),
        (f"{_CORE_V1}.PersistentVolumeClaimStatus", "allocatedResources"),
        (f"{_CORE_V1}.PersistentVolumeSpec", "capacity"),
        (f"{_CORE_V1}.ResourceQuotaSpec", "hard"),
        (f"{_CORE_V1}.ResourceQuotaStatus", "hard"),
        (f"{_CORE_V1}.ResourceQuotaStatus", "used"),
        (f"{_CORE_V1}.NodeAllocatableMappedResources", "quantity"),
        (f"{_CORE_V1}.NodeAllocatableOverheadResources", "perContainer"),
        (f"{_CORE_V1}.NodeAllocatableOverheadResources", "perPod"),
    }
)
# Timestamps with microseconds (the client models say datetime, as for Time).
_MICRO_TIME_FIELDS = frozenset(
    {
        (f"{_CORE_V1}.Event", "eventTime"),
        (f"{_CORE_V1}.EventSeries", "lastObservedTime"),
        ("io.k8s.api.events.v1.Event", "eventTime"),
        ("io.k8s.api.events.v1.EventSeries", "lastObservedTime"),
        ("io.k8s.api.coordination.v1.LeaseSpec", "acquireTime"),
        ("io.k8s.api.coordination.v1.LeaseSpec", "renewTime"),
    }
)
_FIELDS_V1_FIELDS = frozenset({(f"{META}.ManagedFieldsEntry", "fieldsV1")})
del _APPS_V1

# apimachinery's meta/v1 types: these and everything only they use are named io.k8s.apimachinery...
_META_ROOTS = (
    "V1ObjectMeta",
    "V1ListMeta",
    "V1Status",
    "V1DeleteOptions",
    "V1LabelSelector",
    "V1Condition",
    "V1APIResourceList",
    "V1WatchEvent",
)
# Kinds served as subresources of other groups' kinds (GET/PUT/PATCH .../scale).
_EXTRA_KINDS = (("autoscaling", "v1", "Scale"),)

_CLASS_NAME = re.compile(r"^([A-Z][a-z]+)?(V\d+(?:(?:alpha|beta)\d+)?)([A-Z]\w*)$")

# Query parameters per action, as Kubernetes 1.33 publishes them (descriptions come from the client).
_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_DELETE_PARAMS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
_QUERY_PARAMS: dict[str, tuple[str, ...]] = {
    "list": _LIST_PARAMS,
    "post": ("dryRun", "fieldManager", "fieldValidation"),
    "put": ("dryRun", "fieldManager", "fieldValidation"),
    "patch": ("dryRun", "fieldManager", "fieldValidation", "force"),
    "delete": _DELETE_PARAMS,
    "deletecollection": tuple(sorted({*_LIST_PARAMS, *_DELETE_PARAMS} - {"allowWatchBookmarks", "watch"})),
    "get": (),
}
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")
_STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


# --------------------------------------------------------------------------------------------------
# Public surface


def v3_discovery(registry: Registry) -> JSON:
    """``GET /openapi/v3``: where each served group-version's document is, with a content hash.

    kubectl fetches ``serverRelativeURL`` as given (the hash in it changes whenever the document
    does, so clients may cache by URL).
    """
    documents = _documents(registry)
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={documents.v3_hashes[path]}"}
            for path in sorted(documents.v3)
        }
    }


def v3_document(registry: Registry, group: str, version: str) -> JSON | None:
    """``GET /openapi/v3/api/v1`` or ``/openapi/v3/apis/{group}/{version}``; None when not served (404)."""
    return _documents(registry).v3.get(_gv_path(group, version))


def v3_document_hash(registry: Registry, group: str, version: str) -> str | None:
    """The hash in the discovery URL of a group-version's document (its ETag), None when not served.

    kube-apiserver answers a request whose ``hash`` matches with ``Cache-Control: public, immutable``
    (kubectl then keeps the document in its HTTP cache) and a stale ``hash`` with a 301 to the current URL.
    """
    return _documents(registry).v3_hashes.get(_gv_path(group, version))


def v2_document(registry: Registry) -> JSON:
    """``GET /openapi/v2`` as JSON (Swagger 2.0) for clients that read it; kubectl wants protobuf instead."""
    return _documents(registry).v2()


@cache
def builtin_structural_schema(group: str, version: str, kind: str) -> JSON | None:
    """A structural schema of a built-in kind we serve, for pruning and unknown-field detection.

    Typed decoding in kube-apiserver drops fields a built-in kind's Go struct lacks, and reports
    them under ``fieldValidation=Strict|Warn`` (``unknown field "spec.replica"``);
    ``structural.prune_with_paths`` / ``structural.unknown_fields`` against this schema give the
    same paths. So the schema has every field with its type, every ``$ref`` inlined, and nothing
    kube-apiserver would not check when decoding: no ``required``, no enums, no descriptions.
    Quantity and IntOrString are ``x-kubernetes-int-or-string``; free-form values (RawExtension,
    JSON, ``map[string]interface{}``, FieldsV1) and the point where a type recurs (a CRD's
    JSONSchemaProps) are ``x-kubernetes-preserve-unknown-fields``. The root ``metadata`` is just an
    object (the server handles ObjectMeta itself); nested ObjectMeta (pod templates) is inlined.

    None when the kind is not a built-in kind we serve or the client has no model for it. The
    result is cached and shared: callers must not modify it.
    """
    if not any((rt.group, rt.version, rt.kind) == (group, version, kind) for rt in BUILTIN_TYPES):
        return None
    models = _builtin_models()
    names = models.kind_names(group, version, kind)
    if names is None:
        return None
    schema = _structural_node(models, _ref(names[0]), ())
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"type": "object"}
    return schema


# --------------------------------------------------------------------------------------------------
# Caching: one set of documents per registry state


class _Documents:
    """The documents for one snapshot of served types. v3 is built at once (discovery needs hashes)."""

    def __init__(self, served: list[ResourceType]) -> None:
        self.served = served
        self._catalog = _Catalog(served)
        self.v3: dict[str, JSON] = {}
        self.v3_hashes: dict[str, str] = {}
        for group, version in dict.fromkeys((rt.group, rt.version) for rt in served):
            path = _gv_path(group, version)
            document = self._catalog.v3_document(group, version)
            self.v3[path] = document
            self.v3_hashes[path] = hashlib.sha512(orjson.dumps(document)).hexdigest().upper()
        self._v2: JSON | None = None
        self._v2_lock = threading.Lock()

    def matches(self, served: list[ResourceType]) -> bool:
        # Registry.set_crd makes new ResourceType objects on every change, so identity is enough.
        return len(served) == len(self.served) and all(
            a is b for a, b in zip(served, self.served, strict=True)
        )

    def v2(self) -> JSON:
        with self._v2_lock:
            if self._v2 is None:
                self._v2 = self._catalog.v2_document()
            return self._v2


_CACHE: weakref.WeakKeyDictionary[Registry, _Documents] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _documents(registry: Registry) -> _Documents:
    served = registry.all()
    with _CACHE_LOCK:
        documents = _CACHE.get(registry)
        if documents is None or not documents.matches(served):
            documents = _Documents(served)
            _CACHE[registry] = documents
        return documents


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


# --------------------------------------------------------------------------------------------------
# Built-in schemas from the kubernetes client's models


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``Optional[...]`` from a model field's annotation."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _package_of_group(group: str) -> str:
    """The Go package prefix Kubernetes names a group's types by (``apps`` -> ``io.k8s.api.apps``)."""
    if group in ("", "core"):
        return "io.k8s.api.core"
    label = group.split(".")[0]
    if label == "apiextensions":
        return "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions"
    if label == "apiregistration":
        return "io.k8s.kube-aggregator.pkg.apis.apiregistration"
    return f"io.k8s.api.{label}"


def _camel_group(group: str) -> str:
    """``rbac.authorization.k8s.io`` -> ``RbacAuthorization``; core -> ``Core`` (operation ids, client classes)."""
    if not group:
        return "Core"
    trimmed = group.removesuffix(".k8s.io")
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[.\-]", trimmed) if part)


class _ClientModels:
    """Kubernetes schemas for the built-in kinds, read from the ``kubernetes`` client's pydantic models.

    Class names drop the Go package (``V1PodSpec``; a group prefix only where names clash, as in
    ``CoreV1Event``), so each model's package is worked out once from who uses it: apimachinery's
    meta types and what only they use; then the core group for anything core/v1's kinds use (a
    Deployment's PodTemplateSpec is core's); then the group of the first served kind that uses it.
    """

    def __init__(self, kinds: tuple[tuple[str, str, str], ...]) -> None:
        self._models = importlib.import_module("kubernetes.client.models")
        self._api = importlib.import_module("kubernetes.client.api")
        self._names: dict[type, str] = {}
        self._by_name: dict[str, type] = {}
        self.schemas: dict[str, JSON] = {}
        self._building: set[str] = set()
        self._kinds: dict[tuple[str, str, str], type] = {}
        self._lock = threading.RLock()

        meta_package = META.removesuffix(".v1")
        meta = self._closure(self._model(name) for name in _META_ROOTS)
        core = set(self._closure(self._api_kinds("", "v1")))
        homes: dict[type, str] = dict.fromkeys(meta, meta_package)  # model -> Go package of its name
        for group, version, kind in kinds:
            root = self._kind_model(group, version, kind)
            if root is None:
                continue
            self._kinds[(group, version, kind)] = root
            list_model = self._list_model(root)
            for cls in self._closure([root, list_model]):
                homes.setdefault(cls, _package_of_group(group))
        for cls, home in homes.items():
            match = _CLASS_NAME.match(cls.__name__)
            if match is None:
                continue
            prefix, version, base = match.groups()
            if prefix:  # CoreV1Event, RbacV1Subject: the client named the group itself
                home = _package_of_group(prefix.lower())
            elif home != meta_package and cls in core:
                home = _package_of_group("")
            name = f"{home}.{version.lower()}.{base}"
            self._names[cls] = name
            self._by_name[name] = cls

    # ---- discovering models

    def _model(self, name: str) -> type | None:
        model = getattr(self._models, name, None)
        return model if isinstance(model, type) and hasattr(model, "model_fields") else None

    def _kind_model(self, group: str, version: str, kind: str) -> type | None:
        v = version[:1].upper() + version[1:]
        prefix = _camel_group(group.split(".")[0]) if group else "Core"
        return self._model(f"{prefix}{v}{kind}") or self._model(f"{v}{kind}")

    def _list_model(self, model: type) -> type | None:
        return self._model(f"{model.__name__}List")

    def _api_kinds(self, group: str, version: str) -> list[type]:
        """The kinds a group's client API class lists (its ``XList`` return types, minus ``List``)."""
        api_class = getattr(self._api, f"{_camel_group(group)}{version[:1].upper()}{version[1:]}Api", None)
        found: list[type] = []
        if api_class is None:
            return found
        for name, method in inspect.getmembers(api_class, inspect.isfunction):
            if not name.startswith("list_") or name.endswith(("_with_http_info", "_without_preload_content")):
                continue
            returned = inspect.signature(method).return_annotation
            returned_name = getattr(returned, "__name__", "")
            kind = self._model(returned_name.removesuffix("List")) if returned_name.endswith("List") else None
            if kind is not None:
                found.append(kind)
        return found

    def _references(self, annotation: Any) -> Iterator[type]:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            yield annotation
            return
        for arg in typing.get_args(annotation):
            yield from self._references(arg)

    def _closure(self, roots: Iterable[type | None]) -> list[type]:
        seen: dict[type, None] = {}
        pending = [root for root in roots if root is not None]
        while pending:
            cls = pending.pop(0)
            if cls in seen:
                continue
            seen[cls] = None
            for info in cls.model_fields.values():  # type: ignore[attr-defined]
                pending.extend(ref for ref in self._references(info.annotation) if ref not in seen)
        return list(seen)

    # ---- naming and schemas

    def kind_names(self, group: str, version: str, kind: str) -> tuple[str, str | None] | None:
        """Definition names of a built-in kind and of its list kind, or None if the client lacks it."""
        model = self._kinds.get((group, version, kind))
        if model is None:
            return None
        list_model = self._list_model(model)
        return self._names[model], (self._names.get(list_model) if list_model else None)

    def schema(self, name: str) -> JSON | None:
        """The v3 schema of a definition (built on first use), None for names not from the client."""
        with self._lock:
            if name in self.schemas:
                return self.schemas[name]
            cls = self._by_name.get(name)
            if cls is None:
                return None
            if name in self._building:  # a type that contains itself (JSONSchemaProps)
                return None
            self._building.add(name)
            try:
                built = self._build(name, cls)
            finally:
                self._building.discard(name)
            self.schemas[name] = built
            return built

    def _build(self, name: str, cls: type) -> JSON:
        properties: JSON = {}
        required: list[str] = []
        for attribute, info in cls.model_fields.items():  # type: ignore[attr-defined]
            json_name = info.serialization_alias or attribute
            special = _special_type(name, json_name)
            value = self._type_schema(info.annotation, special)
            properties[json_name] = self._described(value, info.description)
            if info.is_required():
                required.append(json_name)
        schema: JSON = {"description": _class_description(cls), "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        gvk = self._gvk(name, cls)
        if gvk is not None:
            schema["x-kubernetes-group-version-kind"] = [gvk]
        return schema

    def _gvk(self, name: str, cls: type) -> dict[str, str] | None:
        """Top-level kinds (those with apiVersion, kind and metadata) carry their group-version-kind."""
        fields = {info.serialization_alias or key for key, info in cls.model_fields.items()}  # type: ignore[attr-defined]
        if not {"apiVersion", "kind"} <= fields:
            return None
        for (group, version, kind), model in self._kinds.items():
            if model is cls:
                return {"group": group, "kind": kind, "version": version}
            list_model = self._list_model(model)
            if list_model is cls:
                return {"group": group, "kind": f"{kind}List", "version": version}
        package, version, kind = name.rsplit(".", 2)
        if f"{package}.{version}" == META:
            return {"group": "", "kind": kind, "version": version}
        return None

    def _described(self, value: JSON, description: str | None) -> JSON:
        """A property: refs carry the field's description beside an ``allOf`` (as Kubernetes' v3 does).

        The client drops the descriptions of fields that hold another type; such a field gets the
        type's own description, placed beside the ``$ref`` so explain shows it once.
        """
        if "$ref" not in value:
            return {**value, "description": description} if description else value
        if description:
            return {"allOf": [value], "description": description}
        target = value["$ref"].removeprefix(V3_REF)
        referenced = _SCALARS.get(target) or self.schema(target) or {}
        fallback = referenced.get("description")
        return {**value, "description": fallback} if fallback else value

    def _type_schema(self, annotation: Any, special: str | None) -> JSON:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is list:
            return {"type": "array", "items": self._type_schema(args[0], special)}
        if origin is dict:
            if _unwrap(args[1]) is Any:
                return _ref(FIELDS_V1) if special == FIELDS_V1 else {"type": "object"}
            return {"type": "object", "additionalProperties": self._type_schema(args[1], special)}
        if origin in (typing.Union, types.UnionType):
            members = {_unwrap(arg) for arg in args if arg is not type(None)}
            if members == {int, str}:
                return _ref(INT_OR_STRING)
            if members == {bytes, str}:
                return {"type": "string", "format": "byte"}
            if members == {float, int}:
                return {"type": "number"}
            return _ref(JSON_VALUE)
        if annotation is str:
            return _ref(QUANTITY) if special == QUANTITY else {"type": "string"}
        if annotation is bool:
            return {"type": "boolean"}
        if annotation is int:
            return {"type": "integer"}
        if annotation is float:
            return {"type": "number", "format": "double"}
        if annotation is bytes:
            return {"type": "string", "format": "byte"}
        if annotation is datetime:
            return _ref(MICRO_TIME if special == MICRO_TIME else TIME)
        if isinstance(annotation, type) and annotation in self._names:
            return _ref(self._names[annotation])
        return _ref(JSON_VALUE)

    def type_meta_descriptions(self) -> tuple[str, str]:
        """Kubernetes' descriptions of ``apiVersion`` and ``kind`` (for CRD schemas)."""
        model = self._model("V1ConfigMap")
        fields = model.model_fields if model is not None else {}  # type: ignore[attr-defined]
        api_version, kind = fields.get("api_version"), fields.get("kind")
        return (api_version.description or "" if api_version else ""), (
            kind.description or "" if kind else ""
        )

    def query_parameters(self) -> dict[str, JSON]:
        """Query parameters by name, typed and described as the client's ConfigMap methods have them."""
        api = getattr(self._api, "CoreV1Api", None)
        found: dict[str, JSON] = {}
        methods = (
            "list_namespaced_config_map",
            "patch_namespaced_config_map",
            "delete_collection_namespaced_config_map",
            "create_namespaced_config_map",
        )
        for method_name in methods:
            method = getattr(api, method_name, None)
            if method is None:
                continue
            for parameter in inspect.signature(method).parameters.values():
                if parameter.name == "_continue":
                    name = "continue"
                elif parameter.name.startswith("_"):
                    continue
                else:
                    name = _camel(parameter.name)
                base = _unwrap(parameter.annotation)
                kind = {bool: "boolean", int: "integer", str: "string"}.get(base)
                if kind is None:
                    continue
                description = next(
                    (
                        getattr(md, "description", None)
                        for md in _metadata(parameter.annotation)
                        if getattr(md, "description", None)
                    ),
                    None,
                )
                entry: JSON = {"type": kind}
                if description:
                    entry["description"] = description
                found.setdefault(name, entry)
        return found


def _metadata(annotation: Any) -> Iterator[Any]:
    """Every ``Annotated`` metadata item inside an annotation (through Optional)."""
    if typing.get_origin(annotation) is typing.Annotated:
        yield from getattr(annotation, "__metadata__", ())
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Annotated or typing.get_args(arg):
            yield from _metadata(arg)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _class_description(cls: type) -> str:
    text = inspect.cleandoc(cls.__doc__ or "")
    return text.split("\n\nAttributes:", 1)[0].strip()


def _special_type(definition: str, field_name: str) -> str | None:
    key = (definition, field_name)
    if key in _QUANTITY_FIELDS:
        return QUANTITY
    if key in _MICRO_TIME_FIELDS:
        return MICRO_TIME
    if key in _FIELDS_V1_FIELDS:
        return FIELDS_V1
    return None


def _ref(name: str) -> JSON:
    return {"$ref": V3_REF + name}


@cache
def _client_models(kinds: tuple[tuple[str, str, str], ...]) -> _ClientModels:
    return _ClientModels(kinds)


def _builtin_models() -> _ClientModels:
    return _client_models(tuple((rt.group, rt.version, rt.kind) for rt in BUILTIN_TYPES) + _EXTRA_KINDS)


# --------------------------------------------------------------------------------------------------
# Structural schemas of built-in kinds

# Named types without a model, as structural.py reads them (a fresh copy is made per use).
_STRUCTURAL_SCALARS: dict[str, JSON] = {
    # A quantity may be any number (0.5 is fine) or a string: no int-or-string narrowing.
    QUANTITY: {"x-kubernetes-preserve-unknown-fields": True},
    INT_OR_STRING: {"x-kubernetes-int-or-string": True},
    TIME: {"type": "string", "format": "date-time"},
    MICRO_TIME: {"type": "string", "format": "date-time"},
    FIELDS_V1: {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    JSON_VALUE: {"x-kubernetes-preserve-unknown-fields": True},
}
_FREE_OBJECT: JSON = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _ref_target(node: JSON) -> str | None:
    """The definition a v3 node stands for: a bare ``$ref`` or a described ``allOf: [$ref]``."""
    ref = node.get("$ref")
    if ref is None:
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            ref = all_of[0].get("$ref")
    return ref.removeprefix(V3_REF) if isinstance(ref, str) else None


def _structural_node(models: _ClientModels, node: JSON, stack: tuple[str, ...]) -> JSON:
    """A v3 schema node with its references inlined and only what shapes values kept.

    ``stack`` holds the definitions being inlined above ``node``: a definition met again there is
    cut off as an object that keeps whatever it holds.
    """
    target = _ref_target(node)
    if target is not None:
        if target in _STRUCTURAL_SCALARS:
            return dict(_STRUCTURAL_SCALARS[target])
        definition = None if target in stack else models.schema(target)
        if definition is None:
            return dict(_FREE_OBJECT)
        return _structural_node(models, definition, (*stack, target))
    result: JSON = {}
    for key in ("type", "format"):
        if key in node:
            result[key] = node[key]
    properties = node.get("properties")
    if isinstance(properties, dict):
        result["properties"] = {
            name: _structural_node(models, sub, stack) for name, sub in properties.items()
        }
    if isinstance(node.get("items"), dict):
        result["items"] = _structural_node(models, node["items"], stack)
    if isinstance(node.get("additionalProperties"), dict):
        result["additionalProperties"] = _structural_node(models, node["additionalProperties"], stack)
    if "type" not in result or (
        result["type"] == "object" and "properties" not in result and "additionalProperties" not in result
    ):
        # map[string]interface{} and anything untyped: Go keeps such values as they come.
        result["x-kubernetes-preserve-unknown-fields"] = True
    return result


# --------------------------------------------------------------------------------------------------
# CRD schemas


def _reversed_group(group: str) -> str:
    return ".".join(reversed(group.split(".")))


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """How apiextensions-apiserver names a CRD version's schema: ``com.example.stable.v1.CronTab``."""
    return f"{_reversed_group(group)}.{version}.{kind}"


def _crd_schema(rt: ResourceType, models: _ClientModels) -> JSON:
    """The CRD version's schema as published: TypeMeta fields, ObjectMeta by reference, int-or-string unfolded."""
    gvk = [{"group": rt.group, "kind": rt.kind, "version": rt.version}]
    if not rt.schema:
        return {"type": "object", "x-kubernetes-group-version-kind": gvk}
    schema: JSON = _unfold(copy.deepcopy(rt.schema))
    api_version, kind = models.type_meta_descriptions()
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"description": api_version, "type": "string"}
    properties["kind"] = {"description": kind, "type": "string"}
    properties["metadata"] = {"allOf": [_ref(OBJECT_META)], "description": _METADATA_DESCRIPTION}
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


_METADATA_DESCRIPTION = (
    "Standard object metadata (name, namespace, labels, annotations, ...). "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_LIST_ITEMS_DESCRIPTION = "The objects of the list."


def _crd_list_schema(rt: ResourceType, item_name: str, models: _ClientModels) -> JSON:
    api_version, kind = models.type_meta_descriptions()
    return {
        "description": f"{rt.kind}List is a list of {rt.kind}",
        "type": "object",
        "properties": {
            "apiVersion": {"description": api_version, "type": "string"},
            "items": {"description": f"List of {rt.plural}.", "type": "array", "items": _ref(item_name)},
            "kind": {"description": kind, "type": "string"},
            "metadata": {"allOf": [_ref(LIST_META)], "description": "Standard list metadata."},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [
            {"group": rt.group, "kind": f"{rt.kind}List", "version": rt.version}
        ],
    }


def _unfold(schema: Any) -> Any:
    """What apiextensions publishes beyond the stored schema: int-or-string as an explicit anyOf, and
    apiVersion/kind/metadata on embedded resources."""
    if not isinstance(schema, dict):
        return schema
    for key in ("properties", "patternProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = {name: _unfold(sub) for name, sub in schema[key].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = _unfold(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _unfold(schema["additionalProperties"])
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema and "allOf" not in schema:
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-embedded-resource"):
        properties = schema.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    return schema


# --------------------------------------------------------------------------------------------------
# Paths and operations


@dataclass(frozen=True)
class _Operation:
    method: str  # HTTP method, lower case
    action: str  # x-kubernetes-action: get, list, post, put, patch, delete, deletecollection
    operation_id: str
    description: str
    gvk: dict[str, str]
    response: str  # definition name
    statuses: tuple[int, ...]
    body: str | None = None  # definition name of the request body
    patch_types: tuple[str, ...] = ()


@dataclass
class _Path:
    path: str
    path_params: tuple[str, ...]  # "namespace", "name"
    kind: str  # for the name parameter's description
    operations: list[_Operation] = field(default_factory=list)


def _article(noun: str) -> str:
    return "an" if noun[:1].upper() in "AEIOU" else "a"


def _resource_paths(rt: ResourceType, kind_name: str, list_name: str, builtin: bool) -> list[_Path]:
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    gv_id = _camel_group(rt.group) + rt.version[:1].upper() + rt.version[1:]
    gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
    scope = "Namespaced" if rt.namespaced else ""
    kind = rt.kind
    patch_types = (*_PATCH_TYPES, _STRATEGIC_MERGE_PATCH) if builtin else _PATCH_TYPES
    paths: list[_Path] = []

    if rt.namespaced:
        everywhere = _Path(f"{prefix}/{rt.plural}", (), kind)
        everywhere.operations.append(
            _Operation(
                "get",
                "list",
                f"list{gv_id}{kind}ForAllNamespaces",
                f"list or watch objects of kind {kind}",
                gvk,
                list_name,
                (200,),
            )
        )
        paths.append(everywhere)
        collection = _Path(f"{prefix}/namespaces/{{namespace}}/{rt.plural}", ("namespace",), kind)
    else:
        collection = _Path(f"{prefix}/{rt.plural}", (), kind)
    collection.operations += [
        _Operation(
            "get",
            "list",
            f"list{gv_id}{scope}{kind}",
            f"list or watch objects of kind {kind}",
            gvk,
            list_name,
            (200,),
        ),
        _Operation(
            "post",
            "post",
            f"create{gv_id}{scope}{kind}",
            f"create {_article(kind)} {kind}",
            gvk,
            kind_name,
            (200, 201, 202),
            body=kind_name,
        ),
        _Operation(
            "delete",
            "deletecollection",
            f"delete{gv_id}Collection{scope}{kind}",
            f"delete collection of {kind}",
            gvk,
            STATUS,
            (200,),
            body=DELETE_OPTIONS,
        ),
    ]
    paths.append(collection)

    item = _Path(f"{collection.path}/{{name}}", (*collection.path_params, "name"), kind)
    item.operations += [
        _Operation(
            "get", "get", f"read{gv_id}{scope}{kind}", f"read the specified {kind}", gvk, kind_name, (200,)
        ),
        _Operation(
            "put",
            "put",
            f"replace{gv_id}{scope}{kind}",
            f"replace the specified {kind}",
            gvk,
            kind_name,
            (200, 201),
            body=kind_name,
        ),
        _Operation(
            "patch",
            "patch",
            f"patch{gv_id}{scope}{kind}",
            f"partially update the specified {kind}",
            gvk,
            kind_name,
            (200, 201),
            body=PATCH,
            patch_types=patch_types,
        ),
        _Operation(
            "delete",
            "delete",
            f"delete{gv_id}{scope}{kind}",
            f"delete {_article(kind)} {kind}",
            gvk,
            STATUS,
            (200, 202),
            body=DELETE_OPTIONS,
        ),
    ]
    paths.append(item)

    for sub in sorted(rt.subresources):
        sub_path = _Path(f"{item.path}/{sub}", item.path_params, kind)
        title = sub[:1].upper() + sub[1:]
        target, sub_gvk = kind_name, gvk
        if sub == "scale":
            target, sub_gvk = (
                "io.k8s.api.autoscaling.v1.Scale",
                {"group": "autoscaling", "kind": "Scale", "version": "v1"},
            )
        if sub == "finalize":
            sub_path.operations.append(
                _Operation(
                    "put",
                    "put",
                    f"replace{gv_id}{scope}{kind}{title}",
                    f"replace finalize of the specified {kind}",
                    sub_gvk,
                    target,
                    (200, 201),
                    body=target,
                )
            )
        else:
            sub_path.operations += [
                _Operation(
                    "get",
                    "get",
                    f"read{gv_id}{scope}{kind}{title}",
                    f"read {sub} of the specified {kind}",
                    sub_gvk,
                    target,
                    (200,),
                ),
                _Operation(
                    "put",
                    "put",
                    f"replace{gv_id}{scope}{kind}{title}",
                    f"replace {sub} of the specified {kind}",
                    sub_gvk,
                    target,
                    (200, 201),
                    body=target,
                ),
                _Operation(
                    "patch",
                    "patch",
                    f"patch{gv_id}{scope}{kind}{title}",
                    f"partially update {sub} of the specified {kind}",
                    sub_gvk,
                    target,
                    (200, 201),
                    body=PATCH,
                    patch_types=patch_types,
                ),
            ]
        paths.append(sub_path)
    return paths


_STATUS_TEXT = {200: "OK", 201: "Created", 202: "Accepted"}
_PATH_PARAM_DESCRIPTIONS = {"namespace": "object name and auth scope, such as for teams and projects"}


# --------------------------------------------------------------------------------------------------
# Assembling documents


class _Catalog:
    """Every schema and path of one snapshot of served types, rendered as v3 per group-version or as v2."""

    def __init__(self, served: list[ResourceType]) -> None:
        self.models = _builtin_models()
        self.extra_schemas: dict[str, JSON] = {}  # CRD kinds and fallbacks for kinds the client lacks
        self.paths: dict[tuple[str, str], list[_Path]] = {}
        self.parameters = self.models.query_parameters()
        for rt in served:
            kind_name, list_name = self._names(rt)
            self.paths.setdefault((rt.group, rt.version), []).extend(
                _resource_paths(rt, kind_name, list_name, rt.builtin)
            )

    def _names(self, rt: ResourceType) -> tuple[str, str]:
        if rt.builtin:
            names = self.models.kind_names(rt.group, rt.version, rt.kind)
            if names is not None and names[1] is not None:
                return names[0], names[1]
            base = f"{_package_of_group(rt.group)}.{rt.version}.{rt.kind}"
            item, listed = base, f"{base}List"
            self.extra_schemas[item] = {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-group-version-kind": [
                    {"group": rt.group, "kind": rt.kind, "version": rt.version}
                ],
            }
        else:
            item = crd_definition_name(rt.group, rt.version, rt.kind)
            listed = f"{item}List"
            self.extra_schemas[item] = _crd_schema(rt, self.models)
        self.extra_schemas[listed] = _crd_list_schema(rt, item, self.models)
        return item, listed

    def schema(self, name: str) -> JSON:
        found = _SCALARS.get(name) or self.extra_schemas.get(name) or self.models.schema(name)
        if found is None:
            raise KeyError(f"no schema named {name}")
        return found

    def _closure(self, roots: Iterable[str]) -> dict[str, JSON]:
        """The named schemas ``roots`` need, following every ``$ref`` (sorted by name, as Kubernetes does)."""
        found: dict[str, JSON] = {}
        pending = list(roots)
        while pending:
            name = pending.pop()
            if name in found:
                continue
            schema = self.schema(name)
            found[name] = schema
            pending.extend(ref for ref in _refs(schema) if ref not in found)
        return dict(sorted(found.items()))

    # ---- v3

    def v3_document(self, group: str, version: str) -> JSON:
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        tag = _tag(group, version)
        gv_id = _camel_group(group) + version[:1].upper() + version[1:]
        paths: JSON = {
            f"{prefix}/": {
                "get": {
                    "description": "get available resources",
                    "operationId": f"get{gv_id}APIResources",
                    "responses": {"200": {"description": "OK", "content": _content(API_RESOURCE_LIST)}},
                    "tags": [tag],
                }
            }
        }
        roots = {API_RESOURCE_LIST}
        for path in self.paths.get((group, version), []):
            item: JSON = {"parameters": [*self._path_params_v3(path), self._query_param_v3("pretty")]}
            for op in path.operations:
                item[op.method] = self._operation_v3(op, tag)
                roots.add(op.response)
                if op.body:
                    roots.add(op.body)
            paths[path.path] = item
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "unversioned"},
            "paths": paths,
            "components": {"schemas": self._closure(roots)},
        }

    def _path_params_v3(self, path: _Path) -> list[JSON]:
        params = []
        for name in path.path_params:
            description = _PATH_PARAM_DESCRIPTIONS.get(name, f"name of the {path.kind}")
            params.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "description": description,
                    "schema": {"type": "string"},
                }
            )
        return params

    def _query_param_v3(self, name: str) -> JSON:
        known = self.parameters.get(name, {"type": "string"})
        param: JSON = {"name": name, "in": "query", "schema": {"type": known["type"]}}
        if "description" in known:
            param["description"] = known["description"]
        return param

    def _operation_v3(self, op: _Operation, tag: str) -> JSON:
        watchable = op.action == "list"
        responses = {
            str(code): {"description": _STATUS_TEXT[code], "content": _content(op.response, watchable)}
            for code in op.statuses
        }
        operation: JSON = {
            "description": op.description,
            "operationId": op.operation_id,
            "parameters": [self._query_param_v3(name) for name in _QUERY_PARAMS[op.action]],
            "responses": responses,
            "tags": [tag],
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": op.gvk,
        }
        if not operation["parameters"]:
            del operation["parameters"]
        if op.body:
            media = op.patch_types or ("application/json",)
            operation["requestBody"] = {"content": {m: {"schema": _ref(op.body)} for m in media}}
            if op.method != "delete":
                operation["requestBody"]["required"] = True
        return operation

    # ---- v2

    def v2_document(self) -> JSON:
        paths: JSON = {}
        roots: set[str] = set()
        for (group, version), gv_paths in sorted(self.paths.items()):
            tag = _tag(group, version)
            for path in gv_paths:
                item: JSON = {"parameters": [*self._path_params_v2(path), self._query_param_v2("pretty")]}
                for op in path.operations:
                    item[op.method] = self._operation_v2(op, tag)
                    roots.add(op.response)
                    if op.body:
                        roots.add(op.body)
                paths[path.path] = item
        definitions = {name: _to_v2(name, schema) for name, schema in self._closure(roots).items()}
        return {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "unversioned"},
            "paths": paths,
            "definitions": definitions,
        }

    def _path_params_v2(self, path: _Path) -> list[JSON]:
        return [
            {
                "name": name,
                "in": "path",
                "required": True,
                "type": "string",
                "uniqueItems": True,
                "description": _PATH_PARAM_DESCRIPTIONS.get(name, f"name of the {path.kind}"),
            }
            for name in path.path_params
        ]

    def _query_param_v2(self, name: str) -> JSON:
        known = self.parameters.get(name, {"type": "string"})
        param: JSON = {"name": name, "in": "query", "type": known["type"], "uniqueItems": True}
        if "description" in known:
            param["description"] = known["description"]
        return param

    def _operation_v2(self, op: _Operation, tag: str) -> JSON:
        parameters = [self._query_param_v2(name) for name in _QUERY_PARAMS[op.action]]
        if op.body:
            parameters.insert(
                0,
                {
                    "name": "body",
                    "in": "body",
                    "required": op.method != "delete",
                    "schema": {"$ref": V2_REF + op.body},
                },
            )
        produces = (
            ["application/json", "application/json;stream=watch"]
            if op.action == "list"
            else ["application/json"]
        )
        operation: JSON = {
            "description": op.description,
            "operationId": op.operation_id,
            "consumes": list(op.patch_types) if op.patch_types else ["*/*"],
            "produces": produces,
            "schemes": ["https"],
            "responses": {
                str(code): {"description": _STATUS_TEXT[code], "schema": {"$ref": V2_REF + op.response}}
                for code in op.statuses
            },
            "tags": [tag],
            "x-kubernetes-action": op.action,
            "x-kubernetes-group-version-kind": op.gvk,
        }
        if parameters:
            operation["parameters"] = parameters
        return operation


def _tag(group: str, version: str) -> str:
    camel = _camel_group(group)
    return f"{camel[:1].lower()}{camel[1:]}_{version}"


def _content(name: str, watchable: bool = False) -> JSON:
    media = ("application/json", "application/json;stream=watch") if watchable else ("application/json",)
    return {m: {"schema": _ref(name)} for m in media}


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(V3_REF):
            yield ref.removeprefix(V3_REF)
        for key, sub in value.items():
            if key != "$ref":
                yield from _refs(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _refs(sub)


# Swagger 2.0 schemas cannot say these; Kubernetes drops them from what it publishes as v2.
_V2_DROPPED = frozenset({"oneOf", "anyOf", "not", "nullable"})


def _to_v2(name: str, schema: JSON) -> JSON:
    """A v3 schema as Swagger 2.0: refs to #/definitions, ``allOf``-wrapped refs flattened, no oneOf/anyOf."""
    if name in _V2_SCALARS:
        return _V2_SCALARS[name]
    converted = _to_v2_node(schema)
    assert isinstance(converted, dict)
    return converted


def _to_v2_node(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_v2_node(item) for item in value]
    if not isinstance(value, dict):
        return value
    allof = value.get("allOf")
    if isinstance(allof, list) and len(allof) == 1 and isinstance(allof[0], dict) and "$ref" in allof[0]:
        value = {**{k: v for k, v in value.items() if k != "allOf"}, "$ref": allof[0]["$ref"]}
    result: JSON = {}
    for key, sub in value.items():
        if key in _V2_DROPPED:
            continue
        if key == "$ref" and isinstance(sub, str):
            result[key] = sub.replace(V3_REF, V2_REF, 1)
        elif key in ("properties", "patternProperties") and isinstance(sub, dict):
            result[key] = {name: _to_v2_node(prop) for name, prop in sub.items()}
        else:
            result[key] = _to_v2_node(sub)
    if value.get("x-kubernetes-preserve-unknown-fields") is True:
        # kubectl's v2 validation rejects fields a schema does not list; these nodes allow any.
        result.pop("properties", None)
    if value.get("nullable") is True:
        for key in ("type", "properties", "items", "additionalProperties"):
            result.pop(key, None)
    return result
