"""The three patch formats a Kubernetes API server accepts besides server-side apply.

* ``application/merge-patch+json`` — RFC 7386 JSON merge patch (:func:`merge_patch`);
* ``application/json-patch+json`` — RFC 6902 JSON patch (:func:`json_patch`, on the ``jsonpatch`` library);
* ``application/strategic-merge-patch+json`` — Kubernetes' strategic merge patch
  (:func:`strategic_merge_patch`), built-in kinds only.

Objects are plain JSON values. Every function is pure: the result shares nothing with its inputs, so the
caller may go on to mutate it (set ``resourceVersion``, managed fields, ...) without touching the stored
object or the request body.

Status codes follow kube-apiserver: a body that is not JSON, or a patch of the wrong shape, is 400; a JSON
patch that does not apply (a failed ``test``, a path that does not exist) is 422 Invalid with Kubernetes'
generic message; more than 10,000 JSON patch operations is 413; a content type the resource does not
accept — strategic merge patch on a custom resource included — is 415 listing the accepted ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import jsonpatch
import jsonpointer

from anywhere.apiserver._jsonvalues import copy_json
from anywhere.apiserver.errors import StatusError

__all__ = [
    "APPLY_PATCH",
    "BUILTIN_PATCH_TYPES",
    "CUSTOM_RESOURCE_PATCH_TYPES",
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH_KINDS",
    "apply_patch",
    "json_patch",
    "list_strategy",
    "merge_patch",
    "strategic_merge_patch",
]

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"

#: The content types this module applies, to the name of the function that applies each.
#: Server-side apply (``APPLY_PATCH``) is deliberately absent: it needs managed fields, not just a merge.
PATCH_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        JSON_PATCH: "json_patch",
        MERGE_PATCH: "merge_patch",
        STRATEGIC_MERGE_PATCH: "strategic_merge_patch",
    }
)

#: What kube-apiserver accepts on PATCH, in the order its 415 message lists them.
BUILTIN_PATCH_TYPES: Final = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
#: Custom resources have no Go types carrying patch strategies, so no strategic merge patch.
CUSTOM_RESOURCE_PATCH_TYPES: Final = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

#: kube-apiserver refuses longer JSON patches with 413 before applying any operation.
MAX_JSON_PATCH_OPERATIONS: Final = 10_000

# Kubernetes answers every JSON patch that fails to apply with this exact message (the reason is dropped
# on the way), so clients that match on it keep working; the reason goes in ``details.causes``.
_REJECTED: Final = "the server rejected our request due to an error in our request"


def _unsupported_media_type(accepted: Iterable[str]) -> StatusError:
    return StatusError(
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def _bad_request(message: str) -> StatusError:
    return StatusError(400, message)


def _rejected(message: str, field: str = "") -> StatusError:
    cause = {"type": "FieldValueInvalid", "message": message}
    if field:
        cause["field"] = field
    return StatusError(422, _REJECTED, causes=[cause])


def _brief(value: Any, limit: int = 80) -> str:
    """A value as JSON, shortened: error messages must not echo a whole object back."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def merge_patch(original: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge key by key, ``null`` deletes, anything else replaces.

    Lists are replaced whole — that is what distinguishes it from a strategic merge patch.
    """
    return _merge_rfc7386(copy_json(original), patch)


def _merge_rfc7386(target: Any, patch: Any) -> Any:
    # ``target`` is already a private copy, so it is updated in place.
    if not isinstance(patch, dict):
        return copy_json(patch)
    if not isinstance(target, dict):
        target = {}
    for name, value in patch.items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = _merge_rfc7386(target.get(name), value)
    return target


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch

_OPERATIONS: Final = ("add", "remove", "replace", "move", "copy", "test")
_BAD_ESCAPE: Final = re.compile(r"~(?![01])")
_ARRAY_INDEX: Final = re.compile(r"0|[1-9][0-9]*")


def json_patch(original: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch, all operations or none.

    The operations are checked up front, so a malformed patch (not a list, unknown ``op``, missing member,
    bad pointer) is a 400 whatever the object; a well-formed one that does not fit the object (a failed
    ``test``, a missing path, an index out of range) is a 422, as kube-apiserver answers.
    """
    checked = _check_operations(operations)
    document = copy_json(original)
    for index, operation in enumerate(checked):
        # Copied so that values the patch adds are not shared with the request body.
        operation = copy_json(operation)
        try:
            document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise _rejected(_test_failure(document, operation, index), operation["path"]) from None
        except (
            jsonpatch.JsonPatchConflict,
            jsonpatch.InvalidJsonPatch,
            jsonpointer.JsonPointerException,
        ) as exc:
            raise _rejected(_apply_failure(document, operation, index, exc), operation["path"]) from None
    return document


def _check_operations(operations: Any) -> list[dict[str, Any]]:
    if not isinstance(operations, list):
        raise _bad_request(f"json patch must be a JSON array of operations, not {_json_type(operations)}")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(
            413,
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(operations)}",
        )
    for index, operation in enumerate(operations):
        where = f"json patch operation {index}"
        if not isinstance(operation, dict):
            raise _bad_request(f"{where} must be a JSON object, not {_json_type(operation)}")
        name = operation.get("op")
        if not isinstance(name, str):
            raise _bad_request(f'{where} needs an "op" string, one of {", ".join(_OPERATIONS)}')
        if name not in _OPERATIONS:
            raise _bad_request(f'{where}: unknown op "{name}", expected one of {", ".join(_OPERATIONS)}')
        _check_pointer(where, operation, "path")
        if name in ("move", "copy"):
            _check_pointer(where, operation, "from")
        if name in ("add", "replace", "test") and "value" not in operation:
            raise _bad_request(f'{where} ({name}) needs a "value" member')
    return operations


def _check_pointer(where: str, operation: dict[str, Any], member: str) -> None:
    pointer = operation.get(member)
    if not isinstance(pointer, str):
        raise _bad_request(f'{where} ({operation["op"]}) needs a "{member}" string holding a JSON pointer')
    if pointer and not pointer.startswith("/"):
        raise _bad_request(f'{where}: "{member}" {pointer!r} is not a JSON pointer: it must start with "/"')
    if _BAD_ESCAPE.search(pointer):
        raise _bad_request(f'{where}: "{member}" {pointer!r} has a "~" not followed by "0" or "1"')


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _test_failure(document: Any, operation: dict[str, Any], index: int) -> str:
    path = operation["path"]
    try:
        actual = jsonpointer.resolve_pointer(document, path)
    except jsonpointer.JsonPointerException:
        problem = _missing(document, path, whole=True) or f'path "{path}" does not exist'
        return f"test operation at index {index} failed: {problem}"
    return (
        f'test operation at index {index} failed: value at "{path}" is {_brief(actual)}, '
        f"not {_brief(operation['value'])}"
    )


def _apply_failure(document: Any, operation: dict[str, Any], index: int, exc: Exception) -> str:
    """Say in JSON terms why an operation does not fit the document.

    The library's own messages print Python reprs of whole sub-documents, useless to an API client.
    """
    name = operation["op"]
    prefix = f"{name} operation at index {index} does not apply"
    if name in ("move", "copy"):
        problem = _missing(document, operation["from"], whole=True)
        if problem:
            return f'{prefix}: "from": {problem}'
        source, target = operation["from"], operation["path"]
        if name == "move" and target.startswith(source + "/"):
            return f'{prefix}: "{source}" cannot be moved into one of its own children'
    problem = _missing(document, operation["path"], whole=name in ("remove", "replace", "test"))
    if problem:
        return f"{prefix}: {problem}"
    if name == "remove" and operation["path"] == "":
        return f"{prefix}: the whole document cannot be removed"
    return f"{prefix}: {exc}"[:300]


def _missing(document: Any, pointer: str, *, whole: bool) -> str | None:
    """Why ``pointer`` does not resolve in ``document``, or None if it does.

    With ``whole`` false only the parent must exist, and the last token must be a place where ``add``
    may put a value (a member name, or an array index up to the length, or ``-``).
    """
    parts = jsonpointer.JsonPointer(pointer).parts
    current = document
    walked = ""
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        here = walked or "the document root"
        if isinstance(current, dict):
            if part not in current:
                if last and not whole:
                    return None
                return f'path "{pointer}" does not exist: no member "{part}" in {here}'
            current = current[part]
        elif isinstance(current, list):
            if last and not whole and part == "-":
                return None
            if not _ARRAY_INDEX.fullmatch(part):
                return f'path "{pointer}": "{part}" is not a valid index into the array at {here}'
            limit = len(current) if last and not whole else len(current) - 1
            if int(part) > limit:
                return f'path "{pointer}": index {part} is out of range for the array at {here} (length {len(current)})'
            if last and not whole:
                return None
            current = current[int(part)]
        else:
            return f'path "{pointer}" does not exist: {here} is {_json_type(current)}, not an object or array'
        walked += "/" + jsonpointer.escape(part)
    return None


# --------------------------------------------------------------------------------------------------
# Kubernetes strategic merge patch


class _Field(NamedTuple):
    """How a strategic merge patch treats one field: its ``patchStrategy``/``patchMergeKey`` struct tags.

    ``fields`` describes the nested object, or for a list each of its items. Lists without ``merge`` are
    replaced whole, as Kubernetes does for every list not tagged ``patchStrategy:"merge"``; objects always
    merge key by key. (``retainKeys`` tags need no entry: the ``$retainKeys`` directive works on its own.)
    """

    merge: bool = False
    key: str = ""
    fields: Mapping[str, _Field] = MappingProxyType({})


_LOOSE: Final = _Field()
_MERGE_SET: Final = _Field(merge=True)  # a list of scalars merged as a set (finalizers, podCIDRs)


def _object(**fields: _Field) -> _Field:
    return _Field(fields=MappingProxyType(fields))


def _merged_by(key: str, **fields: _Field) -> _Field:
    return _Field(merge=True, key=key, fields=MappingProxyType(fields))


# The table is the Kubernetes v1.32 API types' struct tags (k8s.io/api core/v1, apps/v1, batch/v1 and
# meta/v1 ObjectMeta) for the kinds this server serves, plus the pod-template kinds it may serve.
_OBJECT_META: Final = _object(ownerReferences=_merged_by("uid"), finalizers=_MERGE_SET)
_CONDITIONS: Final = _merged_by("type")
_CONTAINER: Final[dict[str, _Field]] = {
    "ports": _merged_by("containerPort"),
    "env": _merged_by("name"),
    "volumeMounts": _merged_by("mountPath"),
    "volumeDevices": _merged_by("devicePath"),
}
_POD_SPEC: Final = _object(
    volumes=_merged_by("name"),  # tagged "merge,retainKeys"
    initContainers=_merged_by("name", **_CONTAINER),
    containers=_merged_by("name", **_CONTAINER),
    ephemeralContainers=_merged_by("name", **_CONTAINER),
    imagePullSecrets=_merged_by("name"),
    hostAliases=_merged_by("ip"),
    topologySpreadConstraints=_merged_by("topologyKey"),
    resourceClaims=_merged_by("name"),  # tagged "merge,retainKeys"
    schedulingGates=_merged_by("name"),
)
_POD_STATUS: Final = _object(
    conditions=_CONDITIONS,
    podIPs=_merged_by("ip"),
    hostIPs=_merged_by("ip"),
    resourceClaimStatuses=_merged_by("name"),  # tagged "merge,retainKeys"
)
_POD_TEMPLATE_SPEC: Final = _object(metadata=_OBJECT_META, spec=_POD_SPEC)
_WORKLOAD: Final = {
    "spec": _object(template=_POD_TEMPLATE_SPEC),  # Deployment's "strategy" is tagged "retainKeys"
    "status": _object(conditions=_CONDITIONS),
}


def _kind(**fields: _Field) -> Mapping[str, _Field]:
    return MappingProxyType({"metadata": _OBJECT_META, **fields})


_SCHEMAS: Final[Mapping[str, Mapping[str, _Field]]] = MappingProxyType(
    {
        "Pod": _kind(spec=_POD_SPEC, status=_POD_STATUS),
        "PodTemplate": _kind(template=_POD_TEMPLATE_SPEC),
        "Node": _kind(
            spec=_object(podCIDRs=_MERGE_SET),
            status=_object(conditions=_CONDITIONS, addresses=_merged_by("type")),
        ),
        "Namespace": _kind(status=_object(conditions=_CONDITIONS)),
        "Service": _kind(spec=_object(ports=_merged_by("port")), status=_object(conditions=_CONDITIONS)),
        "ServiceAccount": _kind(secrets=_merged_by("name")),
        "PersistentVolumeClaim": _kind(status=_object(conditions=_CONDITIONS)),
        "Deployment": _kind(**_WORKLOAD),
        "ReplicaSet": _kind(**_WORKLOAD),
        "StatefulSet": _kind(**_WORKLOAD),
        "DaemonSet": _kind(**_WORKLOAD),
        "ReplicationController": _kind(**_WORKLOAD),
        "Job": _kind(**_WORKLOAD),
        "CronJob": _kind(
            spec=_object(
                jobTemplate=_object(metadata=_OBJECT_META, spec=_object(template=_POD_TEMPLATE_SPEC))
            )
        ),
        # Kinds whose only merged lists are in ObjectMeta (Endpoints' subsets, RBAC rules and subjects,
        # CRD conditions are all replaced whole).
        **{
            kind: _kind()
            for kind in (
                "Endpoints",
                "ConfigMap",
                "Secret",
                "Event",
                "Lease",
                "Role",
                "ClusterRole",
                "RoleBinding",
                "ClusterRoleBinding",
                "CustomResourceDefinition",
                "Scale",
            )
        },
    }
)

#: The kinds :func:`strategic_merge_patch` knows; any other kind is answered with 415.
STRATEGIC_MERGE_PATCH_KINDS: Final = frozenset(_SCHEMAS)


def list_strategy(kind: str, path: Sequence[str]) -> tuple[str, str | None] | None:
    """How a strategic merge patch treats the list at ``path`` (field names from the object's root).

    List items are stepped through, so ``("spec", "containers", "ports")`` names every container's ports.
    Returns ``("merge", key)`` for a list of objects merged item by item on ``key``, ``("merge", None)`` for
    a list of scalars merged as a set, ``("replace", None)`` for a list replaced whole (every list the Go
    types do not tag, unknown fields included), and ``None`` for a kind without strategic merge patch
    (custom resources, unknown kinds). Server-side apply reads its list semantics for built-in kinds
    from here, as Kubernetes falls back to these tags where a type declares no ``listType``.
    """
    schema = _SCHEMAS.get(kind)
    if schema is None:
        return None
    fields: Mapping[str, _Field] = schema
    field = _LOOSE
    for name in path:
        field = fields.get(name, _LOOSE)
        fields = field.fields
    if path and field.merge:
        return ("merge", field.key or None)
    return ("replace", None)


_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER: Final = "$setElementOrder/"
_ABSENT: Final = object()


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of a built-in ``kind``.

    Like a merge patch, except that lists tagged ``patchStrategy:"merge"`` in the Go types are merged: lists
    of objects item by item on their merge key (containers by ``name``, ports by ``containerPort``, ...),
    lists of scalars as sets. Directives: ``$patch: replace|delete|merge`` in an object or a list item,
    ``$retainKeys``, ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>``; ``null`` deletes
    a field. Custom resources have no such tags, so Kubernetes answers them (and us any unknown kind) 415.
    """
    schema = _SCHEMAS.get(kind)
    if schema is None:
        raise _unsupported_media_type(CUSTOM_RESOURCE_PATCH_TYPES)
    if not isinstance(patch, dict):
        raise _bad_request(f"a strategic merge patch must be a JSON object, not {_json_type(patch)}")
    return _merge_map(copy_json(original) if isinstance(original, dict) else {}, patch, schema)


def _ident(value: Any) -> Any:
    """A hashable identity with Go's equality: 1, 1.0 and true differ, as they do for Kubernetes."""
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True, separators=(",", ":")))
    return (type(value).__name__, value)


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], schema: Mapping[str, _Field]
) -> dict[str, Any]:
    """Merge ``patch`` into ``original``, a private copy that is updated in place and returned."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
        if directive == "replace":
            # Applied to nothing, so that nested directives and nulls are resolved, not stored.
            return _merge_map({}, rest, schema)
        if directive == "delete":
            return {}  # Kubernetes leaves an empty object, not an absent field
        if directive != "merge":
            raise _bad_request(f"unknown patch type: {_brief(directive)} in map: {_brief(patch)}")
        patch = rest
    if _RETAIN_KEYS in patch:
        _retain_keys(original, patch)
    ordered = _set_element_orders(original, patch, schema)

    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key in ordered or key == _RETAIN_KEYS or key.startswith(_SET_ELEMENT_ORDER):
            continue
        if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            deletions.append((_directive_target(key, _DELETE_FROM_PRIMITIVE_LIST), value))
            continue
        if key.startswith("$"):
            raise _bad_request(f'unknown strategic merge patch directive "{key}"')
        if value is None:
            original.pop(key, None)
            continue
        field = schema.get(key, _LOOSE)
        current = original.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            original[key] = _merge_map(current, value, field.fields)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list(current, value, field)
        else:
            original[key] = _fresh(value, field)

    # After the additions, as Kubernetes does when $setElementOrder merges the same list first.
    for key, values in deletions:
        if not isinstance(values, list):
            raise _bad_request("invalid patch format of primitive list")
        current = original.get(key)
        if isinstance(current, list):
            gone = {_ident(v) for v in values}
            original[key] = [item for item in current if _ident(item) not in gone]
    return original


def _directive_target(key: str, prefix: str) -> str:
    target = key[len(prefix) :]
    if not target:
        if prefix == _SET_ELEMENT_ORDER:
            raise _bad_request("invalid patch format of setElementOrder list")
        raise _bad_request("invalid patch format of primitive list")
    return target


def _fresh(value: Any, field: _Field) -> Any:
    """A patch value with nothing to merge into: copied, with its directives applied and nulls dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, field.fields)
    if isinstance(value, list):
        if field.merge:
            return _merge_list([], value, field)
        item = _Field(fields=field.fields)
        return [_fresh(v, item) for v in value]
    return value


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """``$retainKeys``: drop every field of ``original`` not listed (used to switch a union's member)."""
    keep = patch[_RETAIN_KEYS]
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise _bad_request("invalid patch format of retainKeys: $retainKeys must be a list of field names")
    allowed = set(keep)
    for key, value in patch.items():
        if value is None or key in (_RETAIN_KEYS, _DIRECTIVE):
            continue
        if key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in allowed:
            raise _bad_request(
                f'invalid patch format of retainKeys: "{key}" is patched but not in $retainKeys'
            )
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _merge_list(original: list[Any], patch: list[Any], field: _Field) -> list[Any]:
    if not field.merge:
        item = _Field(fields=field.fields)
        return [_fresh(v, item) for v in patch]
    if any(isinstance(v, list) for v in (*original, *patch)):
        raise _rejected("lists of lists are not supported")
    if field.key:
        return _merge_keyed(original, patch, field)
    if any(isinstance(v, dict) for v in patch):
        raise _bad_request("cannot merge lists without merge key: this list holds scalars, not objects")
    merged: list[Any] = []
    seen: set[Any] = set()
    for value in (*original, *patch):
        identity = _ident(value)
        if identity not in seen:
            seen.add(identity)
            merged.append(value)
    return _order(merged, patch, original, _ident)


_Identity = Callable[[Any], Any]


def _keyed_ident(key: str) -> _Identity:
    def identity(item: Any) -> Any:
        if isinstance(item, dict) and key in item:
            return _ident(item[key])
        return ("unkeyed", id(item))  # never matches another item

    return identity


def _merge_keyed(original: list[Any], patch: list[Any], field: _Field) -> list[Any]:
    """Merge a list of objects item by item on ``field.key``, honouring ``$patch`` items."""
    key = field.key
    identity = _keyed_ident(key)
    current = list(original)
    regular: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise _bad_request(f'items of a list merged on "{key}" must be objects, not {_json_type(item)}')
        directive = item.get(_DIRECTIVE, _ABSENT)
        if directive is _ABSENT:
            regular.append(item)
        elif directive == "delete":
            if key not in item:
                raise _bad_request(f"map: {_brief(item)} does not contain declared merge key: {key}")
            gone = identity(item)
            current = [v for v in current if identity(v) != gone]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            regular.append({k: v for k, v in item.items() if k != _DIRECTIVE})
        else:
            raise _bad_request(f"unknown patch type: {_brief(directive)} in map: {_brief(item)}")
    if replace:
        return [_merge_map({}, item, field.fields) for item in regular]

    server_order = list(current)
    positions = {identity(v): i for i, v in reversed(list(enumerate(current)))}
    for item in regular:
        if key not in item:
            raise _bad_request(f"map: {_brief(item)} does not contain declared merge key: {key}")
        position = positions.get(identity(item))
        if position is None:
            positions[identity(item)] = len(current)
            current.append(_merge_map({}, item, field.fields))
        else:
            current[position] = _merge_map(current[position], item, field.fields)
    return _order(current, regular, server_order, identity)


def _order(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], identity: _Identity
) -> list[Any]:
    """Order a merged list as Kubernetes does: patch order first, then the live object's order.

    Items named in ``patch_order`` keep that relative order, the others keep their ``server_order``; the two
    runs are interleaved so that an item present in both orders never moves past one it followed.
    """
    in_patch: dict[Any, int] = {}
    for i, v in enumerate(patch_order):
        in_patch.setdefault(identity(v), i)
    in_server: dict[Any, int] = {}
    for i, v in enumerate(server_order):
        in_server.setdefault(identity(v), i)
    from_patch = sorted((v for v in merged if identity(v) in in_patch), key=lambda v: in_patch[identity(v)])
    server_only = sorted(
        (v for v in merged if identity(v) not in in_patch),
        key=lambda v: in_server.get(identity(v), len(server_order)),
    )
    result: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(from_patch):
        if i < len(server_only) and j < len(from_patch):
            left = in_server.get(identity(server_only[i]))
            right = in_server.get(identity(from_patch[j]))
            take_left = left is not None and right is not None and left < right
        else:
            take_left = i < len(server_only)
        if take_left:
            result.append(server_only[i])
            i += 1
        else:
            result.append(from_patch[j])
            j += 1
    return result


def _set_element_orders(
    original: dict[str, Any], patch: dict[str, Any], schema: Mapping[str, _Field]
) -> set[str]:
    """Apply every ``$setElementOrder/<field>``: merge that list and order it as listed.

    Returns the fields done here, which the caller's main loop must skip.
    """
    done: set[str] = set()
    for directive, order in patch.items():
        if not directive.startswith(_SET_ELEMENT_ORDER):
            continue
        name = _directive_target(directive, _SET_ELEMENT_ORDER)
        if not isinstance(order, list):
            raise _bad_request("invalid patch format of setElementOrder list")
        field = schema.get(name, _LOOSE)
        patch_list = patch.get(name)
        if (name in patch and patch_list is None) or not field.merge:
            continue  # a null deletes the list; a replaced list is already in the patch's order
        if patch_list is not None and not isinstance(patch_list, list):
            raise _bad_request("invalid patch format of setElementOrder list")
        current = original.get(name)
        current_list: list[Any] | None = current if isinstance(current, list) else None
        if patch_list is None and current_list is None:
            continue
        identity = _keyed_ident(field.key) if field.key else _ident
        if field.key:
            for item in order:
                if not isinstance(item, dict) or field.key not in item:
                    raise _bad_request(
                        f"map: {_brief(item)} does not contain declared merge key: {field.key}"
                    )
        server_order = list(current_list or [])
        if patch_list is None:
            merged = server_order
        else:
            _check_order(name, patch_list, order, identity)
            merged = _merge_list(current_list or [], patch_list, field)
        original[name] = _order(merged, order, server_order, identity)
        done.add(name)
    return done


def _check_order(name: str, patch_list: list[Any], order: list[Any], identity: _Identity) -> None:
    """The patch list's items must all be in ``$setElementOrder``, in the same relative order."""
    items = [v for v in patch_list if not (isinstance(v, dict) and _DIRECTIVE in v)]
    i = 0
    for listed in order:
        if i < len(items) and identity(items[i]) == identity(listed):
            i += 1
    if i < len(items):
        raise _bad_request(
            f"the order in patch list {_brief(patch_list)} does not match "
            f"$setElementOrder/{name} list {_brief(order)}"
        )


# --------------------------------------------------------------------------------------------------
# Dispatch on the request's content type


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode(body: bytes | str) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise _bad_request("error decoding patch: the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _bad_request(f"error decoding patch: {exc}") from None


def apply_patch(content_type: str, original: Any, body: bytes, kind: str, is_builtin: bool) -> Any:
    """Decode a PATCH request's body and apply it to ``original`` as its ``Content-Type`` says.

    Parameters after ``;`` in the content type (``charset``) are ignored, as kube-apiserver does. A type the
    resource does not accept is 415 listing those it does; strategic merge patch is accepted only when
    ``is_builtin``. Server-side apply is accepted by the server but not applied here: the caller must route
    it elsewhere before calling, and passing it is a programming error (ValueError).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    accepted = BUILTIN_PATCH_TYPES if is_builtin else CUSTOM_RESOURCE_PATCH_TYPES
    if media_type not in accepted:
        raise _unsupported_media_type(accepted)
    if media_type not in PATCH_TYPES:
        raise ValueError(f"{media_type} is server-side apply, which apply_patch does not handle")
    document = _decode(body)
    try:
        if media_type == JSON_PATCH:
            return json_patch(original, document)
        if not isinstance(document, dict):
            what = "merge patch" if media_type == MERGE_PATCH else "strategic merge patch"
            raise _bad_request(f"a {what} must be a JSON object, not {_json_type(document)}")
        if media_type == MERGE_PATCH:
            return merge_patch(original, document)
        return strategic_merge_patch(original, document, kind)
    except RecursionError:
        raise _bad_request("the patch is nested too deeply") from None
