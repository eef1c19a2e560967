"""Server-side apply and ``metadata.managedFields``, with kube-apiserver's semantics.

Every write records who set which field. A *field set* is a set of paths into the object, each path a
tuple of FieldsV1 elements: ``f:<name>`` for a field of a map, ``k:<json of the key fields>`` for an item
of an associative list (containers by ``name``), ``v:<json value>`` for an item of a set (finalizers).
Lists and maps without merge semantics are *atomic*: owned as one field, never looked into. A field set
travels as ``fieldsV1`` (:func:`encode_fields`), where ``"."`` marks a node that is itself a member and
also has members below it.

* :func:`update` records a create/update/non-apply patch: the fields that changed move to the manager's
  ``Update`` entry and leave everyone else's; it never fails.
* :func:`apply` merges an applied configuration into the live object: the manager's ``Apply`` entry owns
  exactly the applied fields; fields it applied before and no longer applies, owned by no one else, are
  removed; changing a field another manager owns is a 409 conflict unless forced.

How lists and maps merge (:class:`Semantics`) comes from the strategic merge patch table for built-in
kinds (``anywhere.apiserver.patch.list_strategy``, plus the few ``listType``/``structType`` markers of
the Go types that differ from their patch tags) and from ``x-kubernetes-list-type``/``-map-type`` in a
CRD's schema. The algorithms follow sigs.k8s.io/structured-merge-diff and the field manager layers of
k8s.io/apiserver (strip of identity fields, ``before-first-apply``, the cap of ten ``Update`` entries, the
kubectl client-side to server-side apply hand-over); see the module's tests for what each one does.

Objects are plain JSON values; every function leaves its inputs untouched.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

from anywhere.apiserver import patch as strategic
from anywhere.apiserver._gofmt import go_float, go_quote
from anywhere.apiserver._jsonvalues import copy_json, json_equal
from anywhere.apiserver.errors import StatusError, invalid

__all__ = [
    "ANCIENT_CHANGES",
    "APPLY",
    "BEFORE_FIRST_APPLY",
    "FIELD_MANAGER_MAX_LENGTH",
    "LAST_APPLIED_ANNOTATION",
    "MAX_UPDATE_MANAGERS",
    "UPDATE",
    "FieldSet",
    "ListType",
    "Semantics",
    "apply",
    "decode_fields",
    "encode_fields",
    "ignored_fields",
    "manager_name",
    "path_string",
    "semantics_for",
    "strip_managed_fields_on_input",
    "update",
]

APPLY: Final = "Apply"
UPDATE: Final = "Update"
#: kube-apiserver merges the oldest ``Update`` entries into per-version ``ancient-changes`` entries beyond this.
MAX_UPDATE_MANAGERS: Final = 10
ANCIENT_CHANGES: Final = "ancient-changes"
#: Owner of every field of an object that had no managed fields when it was first applied to.
BEFORE_FIRST_APPLY: Final = "before-first-apply"
FIELD_MANAGER_MAX_LENGTH: Final = 128
LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
# The manager name ``kubectl apply --server-side`` uses; only it takes over from client-side apply.
_KUBECTL: Final = "kubectl"
_ANNOTATIONS_SIZE_LIMIT: Final = 256 * 1024

Path = tuple[str, ...]
FieldSet = frozenset[Path]

# Identity and server-owned metadata: never owned by anyone (the apiserver's "strip meta" layer).
# Removed as exact members only, as Kubernetes does: metadata.labels stays owned.
_STRIPPED: Final[FieldSet] = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        *(
            ("f:metadata", f"f:{name}")
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    }
)


class _Missing:
    """An absent value (distinct from JSON ``null``)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


def _json(value: Any) -> str:
    """Compact JSON with integral floats written as integers (Go decodes ``80`` and ``80.0`` alike)."""

    def canonical(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
            return int(v)
        if isinstance(v, dict):
            return {k: canonical(x) for k, x in v.items()}
        if isinstance(v, list):
            return [canonical(x) for x in v]
        return v

    return json.dumps(canonical(value), separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# Go formatting, for messages that must read like kube-apiserver's


def _go_value(value: Any) -> str:
    """structured-merge-diff's ``value.ToString``, used in path strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list):
        return "[" + ",".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_go_value(value[k])}" for k in sorted(value))
    return str(value)


# --------------------------------------------------------------------------------------------------
# List and map semantics


class ListType(NamedTuple):
    """How a list merges and is owned.

    ``atomic``: replaced whole, owned as one field. ``set``: scalars, each item owned (``v:``). ``map``:
    objects identified by ``keys`` (``k:``); ``defaults`` fill key fields an item leaves out, as the
    OpenAPI defaults of key fields do (a container port's ``protocol`` is ``TCP``).
    """

    kind: str
    keys: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = {}


_ATOMIC_LIST: Final = ListType("atomic")
_SET_LIST: Final = ListType("set")


class Semantics:
    """The merge semantics of one node of an object's schema; navigate with :meth:`child` and :meth:`item`.

    The base class is schemaless, as structured-merge-diff treats untyped data: maps granular with every
    key a plain map key, lists atomic. Build one with :func:`semantics_for`.
    """

    kind: str

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def child(self, name: str) -> Semantics:
        """The node of the field ``name`` of this map."""
        return Semantics(self.kind)

    def item(self) -> Semantics:
        """The node of an item of this list."""
        return Semantics(self.kind)

    def list_type(self) -> ListType:
        return _ATOMIC_LIST

    def is_atomic_map(self) -> bool:
        """Whether this map or struct is replaced and owned whole (``x-kubernetes-map-type: atomic``)."""
        return False

    def is_named(self, name: str) -> bool:
        """Whether ``name`` is a declared field of a struct rather than a key of a map.

        Map keys are owned themselves as well as whatever is below them; struct fields only through what
        is below them. It only shows when the value is an object: ``f:key: {".": {}, ...}``.
        """
        return False


class _Root(Semantics):
    """The top of an object: its ``metadata`` is ObjectMeta whatever the rest is."""

    def __init__(self, kind: str, body: Semantics) -> None:
        super().__init__(kind)
        self._body = body

    def child(self, name: str) -> Semantics:
        if name == "metadata":
            return _ObjectMeta(self.kind, ())
        return self._body.child(name)

    def item(self) -> Semantics:
        return self._body.item()

    def is_named(self, name: str) -> bool:
        return name in ("apiVersion", "kind", "metadata") or self._body.is_named(name)


class _ObjectMeta(Semantics):
    """``metadata``: finalizers are a set, ownerReferences an associative list of atomic items by uid."""

    def __init__(self, kind: str, path: Path) -> None:
        super().__init__(kind)
        self._path = path

    def child(self, name: str) -> Semantics:
        return _ObjectMeta(self.kind, (*self._path, name))

    def item(self) -> Semantics:
        return _ObjectMeta(self.kind, (*self._path, "[]"))

    def list_type(self) -> ListType:
        if self._path == ("finalizers",):
            return _SET_LIST
        if self._path == ("ownerReferences",):
            return ListType("map", ("uid",))
        return _ATOMIC_LIST

    def is_atomic_map(self) -> bool:
        return self._path == ("ownerReferences", "[]")  # OwnerReference is +structType=atomic

    def is_named(self, name: str) -> bool:
        return not self._path  # labels and annotations are maps


# Built-in kinds: the Go types' listType/listMapKey/structType/mapType markers that differ from what the
# strategic merge tags say (SSA falls back to those tags only where a type declares no listType).
# Keyed by the strategic merge key: every list merged on it has these SSA keys.
_MULTI_KEYS: Final[Mapping[str, ListType]] = {
    # ContainerPort: +listMapKey=containerPort +listMapKey=protocol (protocol defaults to TCP)
    "containerPort": ListType("map", ("containerPort", "protocol"), {"protocol": "TCP"}),
    # TopologySpreadConstraint: +listMapKey=topologyKey +listMapKey=whenUnsatisfiable
    "topologyKey": ListType("map", ("topologyKey", "whenUnsatisfiable")),
}
_WORKLOADS: Final = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"})


def _builtin_atomic(kind: str, path: Path) -> bool:
    """Structs and maps of built-in kinds marked atomic (``+structType=atomic``, ``+mapType=atomic``)."""
    if path == ("spec", "selector"):
        # LabelSelector is atomic; so is Service's map[string]string selector.
        return kind in _WORKLOADS or kind == "Service"
    if kind == "Event" and path in (("involvedObject",), ("regarding",), ("related",)):
        return True  # ObjectReference
    return kind in ("RoleBinding", "ClusterRoleBinding") and path == ("roleRef",)


class _Builtin(Semantics):
    """A built-in kind, navigated by field names (list items are stepped through, as in the patch table)."""

    def __init__(self, kind: str, path: Path) -> None:
        super().__init__(kind)
        self._path = path

    def child(self, name: str) -> Semantics:
        if not self._path and name == "metadata":
            return _ObjectMeta(self.kind, ())
        return _Builtin(self.kind, (*self._path, name))

    def item(self) -> Semantics:
        return _Builtin(self.kind, self._path)

    def list_type(self) -> ListType:
        strategy = strategic.list_strategy(self.kind, self._path)
        if strategy is None or strategy[0] != "merge":
            return _ATOMIC_LIST
        key = strategy[1]
        if key is None:
            return _SET_LIST
        if self.kind == "Service" and self._path == ("spec", "ports"):
            return ListType("map", ("port", "protocol"), {"protocol": "TCP"})  # ServicePort
        return _MULTI_KEYS.get(key, ListType("map", (key,)))

    def is_atomic_map(self) -> bool:
        return _builtin_atomic(self.kind, self._path)

    def is_named(self, name: str) -> bool:
        # The Go structs' maps (labels, data, resources.limits...) hold scalars, where it makes no difference.
        return True


class _Schema(Semantics):
    """A node of a CRD's structural schema (``openAPIV3Schema``)."""

    def __init__(self, kind: str, schema: Mapping[str, Any]) -> None:
        super().__init__(kind)
        self._schema = schema

    def _properties(self) -> Mapping[str, Any]:
        props = self._schema.get("properties")
        return props if isinstance(props, Mapping) else {}

    def child(self, name: str) -> Semantics:
        if name == "metadata" and self._schema.get("x-kubernetes-embedded-resource") is True:
            return _ObjectMeta(self.kind, ())
        sub = self._properties().get(name)
        if isinstance(sub, Mapping):
            return _Schema(self.kind, sub)
        additional = self._schema.get("additionalProperties")
        if isinstance(additional, Mapping):
            return _Schema(self.kind, additional)
        return Semantics(self.kind)

    def item(self) -> Semantics:
        items = self._schema.get("items")
        return _Schema(self.kind, items) if isinstance(items, Mapping) else Semantics(self.kind)

    def list_type(self) -> ListType:
        kind = self._schema.get("x-kubernetes-list-type")
        if kind == "set":
            return _SET_LIST
        if kind == "map":
            keys = self._schema.get("x-kubernetes-list-map-keys")
            if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
                return _ATOMIC_LIST
            items = self._schema.get("items")
            props = items.get("properties") if isinstance(items, Mapping) else None
            defaults = {}
            if isinstance(props, Mapping):
                for key in keys:
                    sub = props.get(key)
                    if isinstance(sub, Mapping) and sub.get("default") is not None:
                        defaults[key] = sub["default"]
            return ListType("map", tuple(keys), defaults)
        return _ATOMIC_LIST  # unannotated CRD lists are atomic

    def is_atomic_map(self) -> bool:
        return self._schema.get("x-kubernetes-map-type") == "atomic"

    def is_named(self, name: str) -> bool:
        return name in self._properties()


def semantics_for(kind: str, is_builtin: bool, schema: Mapping[str, Any] | None) -> Semantics:
    """The merge semantics of objects of ``kind``: a built-in kind's from the strategic merge table and the
    Go types' markers, a custom resource's from its version's ``openAPIV3Schema`` (schemaless if None)."""
    if is_builtin:
        return _Builtin(kind, ())
    body = _Schema(kind, schema) if isinstance(schema, Mapping) else Semantics(kind)
    return _Root(kind, body)


def ignored_fields(*, has_status_subresource: bool, subresource: str | None) -> tuple[tuple[str, ...], ...]:
    """The fields a write through this endpoint resets, so nobody owns them through it (``resetFields``).

    The main resource of a kind with a status subresource does not write ``status``; the status
    subresource does not write ``spec``. Pass the result as ``ignored`` to :func:`apply` and :func:`update`.
    """
    if subresource == "status":
        return (("spec",),)
    if has_status_subresource and not subresource:
        return (("status",),)
    return ()


# --------------------------------------------------------------------------------------------------
# Path elements


class _BadItem(Exception):
    """A list item that cannot be identified: structured-merge-diff's words for why."""


def _item_element(item: Any, list_type: ListType) -> str:
    if list_type.kind == "set":
        if item is None:
            raise _BadItem("associative list without keys has an element that's an explicit null")
        if isinstance(item, dict):
            raise _BadItem("associative list without keys has an element that's a map type")
        if isinstance(item, list):
            raise _BadItem("associative list without keys has an element that's a list type")
        return "v:" + _json(item)
    if item is None:
        raise _BadItem("associative list with keys has an element that is an explicit null")
    if not isinstance(item, dict):
        raise _BadItem("associative list with keys has an element that is not a map")
    key: dict[str, Any] = {}
    for name in sorted(list_type.keys):
        if name in item:
            key[name] = item[name]
        elif name in list_type.defaults:
            key[name] = list_type.defaults[name]
        else:
            raise _BadItem(
                f"associative list with keys has an element that omits key field {go_quote(name)} "
                "(and doesn't have default value)"
            )
    return "k:" + _json(key)


class _Problems:
    """Typing problems found in an object; raised for an applied configuration, tolerated in stored objects."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.found: list[str] = []

    def add(self, path: Path, message: str) -> None:
        self.found.append(f"{path_string(path)}: {message}")


def _elements(items: list[Any], list_type: ListType, path: Path, problems: _Problems) -> list[str | None]:
    """Each item's path element; ``None`` for an item that has none (or repeats an earlier one's)."""
    out: list[str | None] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            element = _item_element(item, list_type)
        except _BadItem as exc:
            problems.add(path, f"element {index}: {exc}")
            out.append(None)
            continue
        if element in seen:
            problems.add(path, f"duplicate entries for key {path_string((element,))}")
            out.append(None)
            continue
        seen.add(element)
        out.append(element)
    return out


def _element_order(element: str) -> tuple[Any, ...]:
    """structured-merge-diff's order of path elements: fields, then keys, then values, then indexes."""
    tag, body = element[0], element[2:]
    if tag == "f":
        return (0, body)
    if tag == "k":
        key = json.loads(body)
        return (1, tuple((name, _value_order(key[name])) for name in sorted(key)))
    if tag == "v":
        return (2, _value_order(json.loads(body)))
    return (3, int(body))


def _value_order(value: Any) -> tuple[Any, ...]:
    """A total order over JSON values: numbers, strings, booleans, lists, maps, null."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_order(v) for v in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_order(value[k])) for k in sorted(value)))
    return (5,)


def _path_order(path: Path) -> tuple[Any, ...]:
    """Iteration order of a set: at each level the members, then the children, each in element order."""
    last = len(path) - 1
    return tuple((0 if i == last else 1, _element_order(e)) for i, e in enumerate(path))


def path_string(path: Sequence[str]) -> str:
    """A path as Kubernetes prints it in conflicts: ``.spec.containers[name="nginx"].image``."""
    parts: list[str] = []
    for element in path:
        tag, body = element[0], element[2:]
        if tag == "f":
            parts.append("." + body)
        elif tag == "k":
            key = json.loads(body)
            parts.append("[" + ",".join(f"{name}={_go_value(key[name])}" for name in sorted(key)) + "]")
        elif tag == "v":
            parts.append(f"[={_go_value(json.loads(body))}]")
        else:
            parts.append(f"[{body}]")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# FieldsV1


def encode_fields(fields: Iterable[Sequence[str]]) -> dict[str, Any]:
    """A field set as ``fieldsV1``: nested objects keyed by path element, ``"."`` for a member with children."""
    root: dict[str, list[Any]] = {}
    for path in fields:
        children = root
        for depth, element in enumerate(path):
            node = children.setdefault(element, [False, {}])
            if depth == len(path) - 1:
                node[0] = True
            children = node[1]

    def emit(children: dict[str, list[Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for element in sorted(children, key=_element_order):
            member, below = children[element]
            body: dict[str, Any] = {}
            if below:
                if member:
                    body["."] = {}
                body.update(emit(below))
            out[element] = body
        return out

    return emit(root)


def _canonical_element(element: str) -> str:
    tag, sep, body = element.partition(":")
    if not sep:
        raise ValueError(f"unknown path element {element!r}")
    if tag == "f":
        return element
    if tag == "k":
        key = json.loads(body)
        if not isinstance(key, dict) or not key:
            raise ValueError(f"path element {element!r}: a key must be a non-empty JSON object")
        return "k:" + _json({name: key[name] for name in sorted(key)})
    if tag == "v":
        return "v:" + _json(json.loads(body))
    if tag == "i":
        if not body.isdigit():
            raise ValueError(f"path element {element!r}: an index must be a number")
        return f"i:{int(body)}"
    raise ValueError(f"unknown path element {element!r}")


def decode_fields(document: Any) -> FieldSet:
    """The field set a ``fieldsV1`` object describes; ValueError if it is not one."""
    out: set[Path] = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, dict):
            raise ValueError(f"fieldsV1 at {path_string(prefix) or 'the root'} is not an object")
        if not node and prefix:
            out.add(prefix)
        for element, below in node.items():
            if element == ".":
                if prefix:
                    out.add(prefix)
                continue
            walk(below, (*prefix, _canonical_element(element)))

    walk(document, ())
    return frozenset(out)


# --------------------------------------------------------------------------------------------------
# Field sets of values, comparison, merge, removal


def _field_set(value: Any, sem: Semantics, path: Path, out: set[Path], problems: _Problems) -> None:
    """Every leaf and list item of ``value`` (structured-merge-diff's ``ToFieldSet``)."""
    if isinstance(value, dict):
        if sem.is_atomic_map():
            out.add(path)
            return
        for name, child in value.items():
            child_path = (*path, f"f:{name}")
            _field_set(child, sem.child(name), child_path, out, problems)
            if not sem.is_named(name):
                out.add(child_path)
        return
    if isinstance(value, list):
        list_type = sem.list_type()
        if list_type.kind == "atomic":
            out.add(path)
            return
        item_sem = sem.item()
        for item, element in zip(value, _elements(value, list_type, path, problems), strict=True):
            if element is None:
                continue
            item_path = (*path, element)
            if list_type.kind == "map":
                _field_set(item, item_sem, item_path, out, problems)
            out.add(item_path)
        return
    if path:
        out.add(path)


@dataclass
class _Comparison:
    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)


def _mark(value: Any, sem: Semantics, path: Path, into: set[Path]) -> None:
    """A value present on one side only: it and everything below it."""
    if path:
        into.add(path)
    _mark_children(value, sem, path, into)


def _mark_children(value: Any, sem: Semantics, path: Path, into: set[Path]) -> None:
    if isinstance(value, dict) and not sem.is_atomic_map():
        for name, child in value.items():
            _mark(child, sem.child(name), (*path, f"f:{name}"), into)
    elif isinstance(value, list):
        list_type = sem.list_type()
        if list_type.kind == "atomic":
            return
        item_sem = sem.item()
        for item, element in zip(value, _elements(value, list_type, path, _Problems(False)), strict=True):
            if element is not None:
                _mark(item, item_sem, (*path, element), into)


def _compare(old: Any, new: Any, sem: Semantics, path: Path, result: _Comparison) -> None:
    """What changed from ``old`` to ``new`` (structured-merge-diff's ``Compare``)."""
    if old is _MISSING:
        if new is not _MISSING:
            _mark(new, sem, path, result.added)
        return
    if new is _MISSING:
        _mark(old, sem, path, result.removed)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        if sem.is_atomic_map() or (not old and not new):
            if not json_equal(old, new):
                result.modified.add(path)
            return
        for name in [*old, *(k for k in new if k not in old)]:
            _compare(
                old.get(name, _MISSING),
                new.get(name, _MISSING),
                sem.child(name),
                (*path, f"f:{name}"),
                result,
            )
        return
    if isinstance(old, list) and isinstance(new, list):
        list_type = sem.list_type()
        if list_type.kind == "atomic" or (not old and not new):
            if not json_equal(old, new):
                result.modified.add(path)
            return
        quiet = _Problems(False)
        before = {e: v for v, e in zip(old, _elements(old, list_type, path, quiet), strict=True) if e}
        after = {e: v for v, e in zip(new, _elements(new, list_type, path, quiet), strict=True) if e}
        item_sem = sem.item()
        for element in [*before, *(e for e in after if e not in before)]:
            _compare(
                before.get(element, _MISSING),
                after.get(element, _MISSING),
                item_sem,
                (*path, element),
                result,
            )
        return
    if not json_equal(old, new):
        if path:
            result.modified.add(path)
        # A change of shape: what was below the old value is gone, what is below the new one is new.
        _mark_children(old, sem, path, result.removed)
        _mark_children(new, sem, path, result.added)


def _compare_objects(old: Any, new: Any, sem: Semantics, ignored: Sequence[Path]) -> _Comparison:
    result = _Comparison()
    _compare(old, new, sem, (), result)
    if ignored:
        result.added = set(_without(result.added, ignored))
        result.modified = set(_without(result.modified, ignored))
        result.removed = set(_without(result.removed, ignored))
    return result


def _without(fields: Iterable[Path], ignored: Sequence[Path]) -> FieldSet:
    """``fields`` minus every path at or below an ``ignored`` one (``RecursiveDifference``)."""
    return frozenset(p for p in fields if not any(p[: len(i)] == i for i in ignored))


def _merge(live: Any, applied: Any, sem: Semantics) -> Any:
    """``applied`` merged into ``live``: maps key by key, set and associative lists item by item, anything
    atomic replaced. A ``null`` in the applied configuration removes the field (it stays owned)."""
    if isinstance(live, dict) and isinstance(applied, dict) and not sem.is_atomic_map():
        out = {k: copy_json(v) for k, v in live.items()}
        for name, value in applied.items():
            if value is None:
                out.pop(name, None)
            elif name in out:
                out[name] = _merge(out[name], value, sem.child(name))
            else:
                out[name] = _merge(_MISSING, value, sem.child(name))
        return out
    if isinstance(applied, dict):
        if sem.is_atomic_map():
            return copy_json(applied)
        return {k: _merge(_MISSING, v, sem.child(k)) for k, v in applied.items() if v is not None}
    if isinstance(applied, list):
        list_type = sem.list_type()
        if list_type.kind != "atomic":
            return _merge_list(live if isinstance(live, list) else [], applied, list_type, sem)
    return copy_json(applied)


def _merge_list(live: list[Any], applied: list[Any], list_type: ListType, sem: Semantics) -> list[Any]:
    """Merge item by item. Live items not applied keep their place; applied items come in the applied
    order, an applied item new to the list just after the applied item before it (as structured-merge-diff
    orders a merged associative list)."""
    quiet = _Problems(False)
    live_elements = _elements(live, list_type, (), quiet)
    applied_elements = _elements(applied, list_type, (), quiet)
    live_at = {e: i for i, e in enumerate(live_elements) if e is not None}
    applied_at = {e for e in applied_elements if e is not None}
    shared = [e for e in applied_elements if e is not None and e in live_at]
    item_sem = sem.item()
    done: set[str] = set()
    out: list[Any] = []
    next_shared = 0

    def take(index: int) -> None:
        nonlocal next_shared
        element = applied_elements[index]
        value = applied[index]
        if element is None:  # unidentifiable: the caller rejected the configuration already
            out.append(copy_json(value))
            return
        base = live[live_at[element]] if element in live_at else _MISSING
        out.append(_merge(base, value, item_sem) if list_type.kind == "map" else copy_json(value))
        done.add(element)
        while next_shared < len(shared) and shared[next_shared] in done:
            next_shared += 1

    i = j = 0
    while i < len(live) or j < len(applied):
        if i < len(live):
            element = live_elements[i]
            if element is None or element not in applied_at:
                out.append(copy_json(live[i]))
                i += 1
                continue
            if element in done:
                i += 1
                continue
            if (
                j < len(applied)
                and applied_elements[j] != element
                and next_shared < len(shared)
                and shared[next_shared] != element
            ):
                i += 1  # a shared item whose turn comes when the applied list reaches it
                continue
        if j < len(applied):
            take(j)
            j += 1
        else:
            i += 1
    return out


class _Trie:
    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[str, _Trie] = {}


def _trie(paths: Iterable[Path]) -> _Trie:
    root = _Trie()
    for path in paths:
        node = root
        for element in path:
            node = node.children.setdefault(element, _Trie())
        node.member = True
    return root


def _remove(value: Any, node: _Trie, sem: Semantics, keys: Sequence[str] = ()) -> bool:
    """Remove the members of ``node`` (and all below them) from ``value``, in place.

    Returns True when that emptied ``value``, so the caller drops it too: a map or list left empty by
    removing what the applier owned goes with it (structured-merge-diff's dangling items). Key fields of
    an associative list item stay while the item does.
    """
    if isinstance(value, dict) and not sem.is_atomic_map():
        before = bool(value)
        for element, below in node.children.items():
            name = element[2:]
            if not element.startswith("f:") or name not in value or name in keys:
                continue
            if below.member or _remove(value[name], below, sem.child(name)):
                del value[name]
        return before and not value
    if isinstance(value, list):
        list_type = sem.list_type()
        if list_type.kind == "atomic":
            return False
        before = bool(value)
        item_sem = sem.item()
        kept: list[Any] = []
        for item, key in zip(value, _elements(value, list_type, (), _Problems(False)), strict=True):
            owned = node.children.get(key) if key else None
            if owned is None:
                kept.append(item)
            elif not owned.member:
                _remove(item, owned, item_sem, list_type.keys)
                kept.append(item)
        value[:] = kept
        return before and not value
    return False


# --------------------------------------------------------------------------------------------------
# Managed fields entries


@dataclass(frozen=True)
class _Entry:
    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str
    fields: FieldSet

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Who this entry is: appliers are one entry whatever version they apply, updaters one per version."""
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def identity(self) -> str:
        """The manager as kube-apiserver identifies it: its entry without fields and time, as JSON."""
        entry: dict[str, str] = {}
        if self.manager:
            entry["manager"] = self.manager
        entry["operation"] = self.operation
        if self.operation != APPLY and self.api_version:
            entry["apiVersion"] = self.api_version
        if self.subresource:
            entry["subresource"] = self.subresource
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)

    def printed(self) -> str:
        """How a conflict names the manager: ``"kubectl-client-side-apply" using v1``."""
        text = go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {go_quote(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


_Managers = dict[tuple[str, str, str, str], _Entry]


def _decode_entries(raw: Any) -> _Managers:
    """``metadata.managedFields`` decoded; ValueError when any entry is not valid."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    out: _Managers = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"managed fields entry {index} is not an object")
        operation = item.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = item.get("apiVersion")
        if not isinstance(api_version, str) or not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = item.get("fieldsType")
        if fields_type != "FieldsV1":
            problem = "missing" if not fields_type else f"invalid fieldsType {fields_type!r} in"
            raise ValueError(f"{problem} managed fields entry {index}")
        manager, time, subresource = item.get("manager", ""), item.get("time"), item.get("subresource", "")
        if not isinstance(manager, str) or not isinstance(subresource, str):
            raise ValueError(f"managed fields entry {index}: manager and subresource must be strings")
        if time is not None and (not isinstance(time, str) or _seconds(time) is None):
            raise ValueError(f"managed fields entry {index}: time must be an RFC 3339 time")
        fields = decode_fields(item.get("fieldsV1") or {})
        entry = _Entry(manager, operation, api_version, time, subresource, fields)
        out[entry.key] = entry
    return out


def _seconds(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


def _encode_entries(managers: _Managers) -> list[dict[str, Any]]:
    """Entries as Kubernetes writes them: appliers first, then by time, manager, version, subresource."""
    entries = [e for e in managers.values() if e.fields]
    entries.sort(key=lambda e: (e.operation, _seconds(e.time) or 0, e.manager, e.api_version, e.subresource))
    out: list[dict[str, Any]] = []
    for entry in entries:
        encoded: dict[str, Any] = {}
        if entry.manager:
            encoded["manager"] = entry.manager
        encoded["operation"] = entry.operation
        encoded["apiVersion"] = entry.api_version
        if entry.time is not None:
            encoded["time"] = entry.time
        encoded["fieldsType"] = "FieldsV1"
        encoded["fieldsV1"] = encode_fields(entry.fields)
        if entry.subresource:
            encoded["subresource"] = entry.subresource
        out.append(encoded)
    return out


def _store_entries(obj: dict[str, Any], managers: _Managers) -> None:
    entries = _encode_entries(managers)
    metadata = obj.get("metadata")
    if entries:
        if not isinstance(metadata, dict):
            metadata = obj["metadata"] = {}
        metadata["managedFields"] = entries
    elif isinstance(metadata, dict):
        metadata.pop("managedFields", None)


def _cap_updaters(managers: _Managers) -> None:
    """Beyond :data:`MAX_UPDATE_MANAGERS` ``Update`` entries, fold the oldest into ``ancient-changes``."""
    updaters = [key for key, entry in managers.items() if entry.operation != APPLY]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda key: (_seconds(managers[key].time) or 0, managers[key].identity()))
    first_of_version: dict[str, tuple[str, str, str, str]] = {}
    count = len(updaters)
    for key in updaters:
        if count <= MAX_UPDATE_MANAGERS:
            break
        entry = managers[key]
        bucket = (ANCIENT_CHANGES, UPDATE, entry.api_version, "")
        if key == bucket or entry.api_version not in first_of_version:
            first_of_version.setdefault(entry.api_version, key)
            continue
        if bucket not in managers:
            first = managers.pop(first_of_version[entry.api_version])
            managers[bucket] = replace(first, manager=ANCIENT_CHANGES, subresource="")
        merged = managers[bucket]
        managers[bucket] = replace(merged, fields=merged.fields | entry.fields, time=entry.time)
        del managers[key]
        count -= 1


def _live_managers(obj: Mapping[str, Any] | None) -> _Managers:
    if not obj:
        return {}
    metadata = obj.get("metadata")
    raw = metadata.get("managedFields") if isinstance(metadata, Mapping) else None
    try:
        return _decode_entries(raw)
    except ValueError:
        return {}


def _without_managed_fields(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = copy_json(dict(obj)) if obj else {}
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return out


def strip_managed_fields_on_input(obj: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Take the ``managedFields`` a client sent out of ``obj`` (in place) and say what to do with them.

    Returns None when the server's own should stay: the client sent none, an empty list, or entries that
    are not valid (so clients unaware of the field never strip it); ``[]`` when the client asked for a reset
    by sending a single empty entry ``[{}]``; otherwise the client's entries, which replace the server's.
    """
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return None
    raw = metadata.pop("managedFields")
    if isinstance(raw, list) and len(raw) == 1 and raw[0] == {}:
        return []
    try:
        managers = _decode_entries(raw)
    except ValueError:
        return None
    if not managers:
        return None
    return _encode_entries(managers)


# --------------------------------------------------------------------------------------------------
# Update


def _as_paths(ignored: Iterable[Sequence[str]]) -> tuple[Path, ...]:
    return tuple(tuple(f"f:{name}" for name in path) for path in ignored)


def update(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    *,
    manager: str,
    operation: str = UPDATE,
    api_version: str,
    semantics: Semantics,
    now: str,
    subresource: str = "",
    ignored: Iterable[Sequence[str]] = (),
) -> dict[str, Any]:
    """``new`` (to be stored over ``old``, None on create) with its managedFields brought up to date.

    The fields this write added or changed go to ``manager``'s entry for ``operation`` at ``api_version``
    and leave every other entry; removed fields leave every entry; entries left empty are dropped. An
    update never conflicts. ``managedFields`` in ``new`` replace the stored ones when valid (a single empty
    entry resets them); on a subresource they are ignored. Once an object has no managed fields, updates
    do not track it again until it is applied to, as kube-apiserver does.
    """
    result: dict[str, Any] = copy_json(dict(new))
    stored = _live_managers(old)
    sent = strip_managed_fields_on_input(result)
    managers = stored if subresource or sent is None else _decode_entries(sent)
    if not managers and old is not None:
        return result
    previous = _without_managed_fields(old)
    ignored_paths = _as_paths(ignored)
    changes = _compare_objects(previous, result, semantics, ignored_paths)
    _release(managers, None, changes)
    delta = frozenset(changes.modified | changes.added) - _STRIPPED
    if delta:
        me = _Entry(manager, operation, api_version, now, subresource, delta)
        mine = managers.get(me.key)
        managers[me.key] = replace(me, fields=delta | (mine.fields if mine else frozenset()))
    _cap_updaters(managers)
    _store_entries(result, managers)
    return result


def _release(managers: _Managers, skip: tuple[str, str, str, str] | None, changes: _Comparison) -> None:
    """Changed and removed fields leave every entry but ``skip``'s; entries left empty go."""
    taken = changes.modified | changes.added | changes.removed
    for key in list(managers):
        if key == skip:
            continue
        entry = managers[key]
        kept = entry.fields - taken
        if not kept:
            del managers[key]
        elif kept != entry.fields:
            managers[key] = replace(entry, fields=kept)


# --------------------------------------------------------------------------------------------------
# Apply


def _gvk(api_version: Any, kind: Any) -> str:
    """``schema.GroupVersionKind.String()``: ``apps/v1, Kind=Deployment``, ``/v1, Kind=ConfigMap``."""
    text = api_version if isinstance(api_version, str) else ""
    group, _, version = text.rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _typed_error(what: str, obj: Mapping[str, Any], problems: _Problems) -> StatusError:
    metadata = obj.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    where = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}; {_gvk(obj.get('apiVersion'), obj.get('kind'))}"
    found = problems.found
    detail = found[0] if len(found) == 1 else "errors:\n  " + "\n  ".join(found)
    # kube-apiserver answers these with a plain error, hence 500 with its text.
    return StatusError(500, f"failed to create typed {what} object ({where}): {detail}")


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> StatusError:
    conflicts.sort(key=lambda c: (c[0].identity(), _path_order(c[1])))
    causes = [
        {
            "type": "FieldManagerConflict",
            "message": f"conflict with {entry.printed()}",
            "field": path_string(path),
        }
        for entry, path in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.printed()}: {path_string(path)}"
    else:
        lines: list[str] = []
        current = None
        for entry, path in conflicts:
            if entry.identity() != current:
                current = entry.identity()
                lines.append(f"conflicts with {entry.printed()}:")
            lines.append(f"- {path_string(path)}")
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, message, reason="Conflict", causes=causes)


def _allowed_by_last_applied(live: Mapping[str, Any], semantics: Semantics, api_version: str) -> FieldSet:
    """Fields kubectl's client-side apply still holds as it last applied them: ``kubectl apply
    --server-side`` takes these over without conflicts (kube-apiserver's last-applied manager)."""
    metadata = live.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(text, str) or not text:
        return frozenset()
    try:
        last = json.loads(text)
    except ValueError:
        return frozenset()
    if not isinstance(last, dict) or last.get("apiVersion") != api_version:
        return frozenset()
    fields: set[Path] = set()
    _field_set(last, semantics, (), fields, _Problems(False))
    differences = _compare_objects(last, live, semantics, ())
    return frozenset(fields) - differences.modified - differences.added - differences.removed


def _go_json(value: Any) -> str:
    """``encoding/json`` of a decoded object: sorted keys, HTML-safe escapes, and the Encoder's newline."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text + "\n"


def _refresh_last_applied(obj: dict[str, Any], applied: Mapping[str, Any]) -> None:
    """kubectl's server-side apply keeps an existing last-applied annotation current, so that a later
    client-side ``kubectl apply`` still works; it is dropped if annotations would pass 256 KiB."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if not isinstance(annotations, dict) or not annotations.get(LAST_APPLIED_ANNOTATION):
        return
    config = copy_json(dict(applied))
    config_meta = config.get("metadata")
    if isinstance(config_meta, dict) and isinstance(config_meta.get("annotations"), dict):
        config_meta["annotations"].pop(LAST_APPLIED_ANNOTATION, None)
    annotations[LAST_APPLIED_ANNOTATION] = _go_json(config)
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > _ANNOTATIONS_SIZE_LIMIT:
        del annotations[LAST_APPLIED_ANNOTATION]


def apply(
    live: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    semantics: Semantics,
    now: str,
    subresource: str = "",
    ignored: Iterable[Sequence[str]] = (),
) -> dict[str, Any]:
    """Server-side apply of the configuration ``applied`` by ``manager`` to ``live`` (None: create it).

    Returns the new object with its managedFields. 400 if ``applied`` is not of ``api_version`` and the
    semantics' kind or carries managedFields; 500 (Kubernetes' answer) if a list in it cannot be typed
    (an associative list item without its key, duplicate items); 409 on conflicts unless ``force``.
    ``ignored`` are the fields this endpoint resets (:func:`ignored_fields`): never owned through it.
    """
    if not isinstance(applied, Mapping):
        raise StatusError(400, "the applied configuration must be an object")
    if applied.get("apiVersion") != api_version or applied.get("kind") != semantics.kind:
        raise StatusError(400, f"invalid object type: {_gvk(applied.get('apiVersion'), applied.get('kind'))}")
    config = copy_json(dict(applied))
    config_meta = config.get("metadata")
    if isinstance(config_meta, dict) and "managedFields" in config_meta:
        if isinstance(config_meta["managedFields"], list):
            raise StatusError(400, "metadata.managedFields must be nil")
        del config_meta["managedFields"]

    ignored_paths = _as_paths(ignored)
    problems = _Problems(True)
    applied_fields: set[Path] = set()
    _field_set(config, semantics, (), applied_fields, problems)
    if problems.found:
        raise _typed_error("patch", config, problems)

    current = _without_managed_fields(live)
    managers = _live_managers(live)
    if not managers and current:
        # An object nobody owns a field of: whoever made it owns everything, so first applies conflict.
        everything = _compare_objects({}, current, semantics, ignored_paths)
        owned = frozenset(everything.added) - _STRIPPED
        if owned:
            first = _Entry(BEFORE_FIRST_APPLY, UPDATE, api_version, now, subresource, owned)
            managers[first.key] = first

    merged: dict[str, Any] = _merge(current, config, semantics)
    me = _Entry(
        manager, APPLY, api_version, None, subresource, _without(applied_fields, ignored_paths) - _STRIPPED
    )
    last = managers.get(me.key)
    managers[me.key] = replace(me, time=last.time if last else None)
    if last:
        owned_by_anyone = frozenset().union(*(e.fields for e in managers.values()))
        dropped = last.fields - owned_by_anyone
        if dropped:
            _remove(merged, _trie(dropped), semantics)

    changes = _compare_objects(current, merged, semantics, ignored_paths)
    touched = changes.modified | changes.added
    conflicts = [
        (entry, path) for key, entry in managers.items() if key != me.key for path in entry.fields & touched
    ]
    if conflicts and not force:
        allowed = (
            _allowed_by_last_applied(current, semantics, api_version) if manager == _KUBECTL else frozenset()
        )
        remaining = [(entry, path) for entry, path in conflicts if path not in allowed]
        if remaining:
            raise _conflict_error(remaining)
    _release(managers, me.key, changes)
    if not json_equal(current, merged):
        managers[me.key] = replace(managers[me.key], time=now)
    _cap_updaters(managers)
    _store_entries(merged, managers)
    if manager == _KUBECTL:
        _refresh_last_applied(merged, config)
    return merged


# --------------------------------------------------------------------------------------------------
# Field manager names


_OPTIONS_KINDS: Final = {
    "create": "CreateOptions",
    "update": "UpdateOptions",
    "patch": "PatchOptions",
    "apply": "PatchOptions",
}


def _characters(text: str) -> Iterator[tuple[int, str]]:
    """Each character with its byte offset in UTF-8, as Go's ``for i, r := range s`` counts."""
    offset = 0
    for ch in text:
        yield offset, ch
        offset += len(ch.encode("utf-8", "surrogatepass"))


def _prefix_from_user_agent(user_agent: str) -> str:
    """What precedes the first ``/`` of the User-Agent, printable characters only, at most 128 bytes."""
    out: list[str] = []
    size = 0
    for ch in user_agent.split("/", 1)[0]:
        if not ch.isprintable():
            continue
        width = len(ch.encode("utf-8", "surrogatepass"))
        if size + width > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(ch)
        size += width
    return "".join(out)


def manager_name(query_field_manager: str | None, user_agent: str | None, *, verb: str = "update") -> str:
    """The field manager of a request: its ``fieldManager`` parameter, else derived from the User-Agent.

    ``verb`` is create, update, patch or apply. The default is the User-Agent up to its first ``/``
    (``kubectl/v1.32.0 (linux/amd64) ...`` is ``kubectl``; the Python client's ``OpenAPI-Generator/31.0.0/
    python`` is ``OpenAPI-Generator``); kubectl names itself explicitly (``kubectl-client-side-apply``,
    ``kubectl-edit``, ``kubectl`` for server-side apply). Apply requires the parameter. A value over 128
    bytes or with a character that is not printable is 422 Invalid on the request's options kind.
    """
    options_kind = _OPTIONS_KINDS.get(verb)
    if options_kind is None:
        raise ValueError(f"unknown verb {verb!r}: expected one of {', '.join(_OPTIONS_KINDS)}")
    name = query_field_manager or ""
    causes: list[dict[str, str]] = []
    if verb == "apply" and not name:
        causes.append(
            {
                "type": "FieldValueRequired",
                "message": "Required value: is required for apply patch",
                "field": "fieldManager",
            }
        )
    if len(name.encode("utf-8", "surrogatepass")) > FIELD_MANAGER_MAX_LENGTH:
        causes.append(
            {
                "type": "FieldValueTooLong",
                "message": f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes",
                "field": "fieldManager",
            }
        )
    for position, ch in _characters(name):
        if not ch.isprintable():
            causes.append(
                {
                    "type": "FieldValueInvalid",
                    "message": f"Invalid value: {go_quote(name)}: invalid character U+{ord(ch):04X} "
                    f"(at position {position})",
                    "field": "fieldManager",
                }
            )
    if causes:
        raise invalid(options_kind, "meta.k8s.io", "", causes)
    return name or _prefix_from_user_agent(user_agent or "")
