"""What kube-apiextensions-apiserver does with a CRD version's structural ``openAPIV3Schema``.

A CustomResourceDefinition is only accepted when its schema is *structural* (:func:`check_structural`,
whose findings become the 422 causes of the CRD write). A custom resource written through such a
CRD then goes through the steps the real server takes, in its order (:func:`admit`):

1. **pruning** (:func:`prune`): fields the schema does not specify are dropped, except below
   ``x-kubernetes-preserve-unknown-fields: true``; ``apiVersion``/``kind``/``metadata`` of the root and
   of every ``x-kubernetes-embedded-resource`` are kept (unknown keys of an embedded ``metadata``
   are dropped, as the server's ObjectMeta coercion does). ``null`` values of fields that are
   neither ``nullable`` nor defaulted are dropped too: the server does that right after pruning.
   :func:`unknown_fields` reports what pruning drops, for ``fieldValidation=Strict|Warn``.
2. **defaulting** (:func:`apply_defaults`): ``default`` values fill absent fields, and ``null``
   values of non-nullable fields, in objects, array items and ``additionalProperties`` values.
   The server decodes (and prunes) before it defaults; since a CRD's defaults must themselves be
   pruned (:func:`check_structural` checks that), the order makes no difference to the result.
3. **validation** (:func:`validate`): the OpenAPI value validations, with the causes Kubernetes
   returns (kube-openapi's messages wrapped in apimachinery's ``field.Error`` wording), then the
   ``apiVersion``/``kind`` of embedded resources, then ``x-kubernetes-list-type`` set/map
   uniqueness.

Not done, on purpose:

* ``x-kubernetes-validations`` (CEL rules) are ignored: no CEL interpreter here. A rule never
  rejects an object, and :func:`check_structural` does not compile rules.
* The root ``metadata`` is left to the server's ObjectMeta handling, and an embedded resource's
  ``metadata`` is only pruned to the ObjectMeta fields, not validated (names, labels).
* Formats ``isbn``, ``isbn10``, ``isbn13`` and ``creditcard`` are accepted unchecked; ``int32``/
  ``int64``/``float``/``double`` are not range-checked (the real validator does not either).
* Patterns are Python regular expressions; Go's RE2 differs in rare corners (``\\p{L}``...).
* kube-openapi lets an array through the type check of a ``type: string`` field that has a
  ``format``; here it is a type error like any other.
* ``anyOf``/``oneOf`` report the failing branch with the fewest errors where kube-openapi picks
  the one with the most passed checks; the messages are the same for the usual one-keyword
  branches.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import lru_cache
from typing import Any, Final

from anywhere.apiserver._gofmt import go_float, go_quote
from anywhere.apiserver._jsonvalues import copy_json, json_equal

__all__ = [
    "Cause",
    "admit",
    "apply_defaults",
    "check_structural",
    "prune",
    "prune_with_paths",
    "structural_causes",
    "unknown_fields",
    "validate",
]

Schema = Mapping[str, Any]
Cause = dict[str, str]

_META_FIELDS: Final = frozenset({"apiVersion", "kind", "metadata"})

# The fields of metav1.ObjectMeta: what survives of an embedded resource's ``metadata``.
_OBJECT_META_FIELDS: Final = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)

_OPENAPI_TYPES: Final = ("array", "boolean", "integer", "number", "object", "string")


# --------------------------------------------------------------------------------------------------
# Reading a schema node: tolerant of malformed input (that is check_structural's job to report).


def _node(value: Any) -> Schema | None:
    return value if isinstance(value, Mapping) else None


def _properties(schema: Schema | None) -> Mapping[str, Any]:
    if schema is None:
        return {}
    props = schema.get("properties")
    return props if isinstance(props, Mapping) else {}


def _items(schema: Schema | None) -> Schema | None:
    return None if schema is None else _node(schema.get("items"))


def _has_additional(schema: Schema | None) -> bool:
    """Whether ``additionalProperties`` is set at all (``true``, ``false`` or a schema)."""
    return schema is not None and isinstance(schema.get("additionalProperties"), bool | Mapping)


def _additional(schema: Schema | None) -> Schema | None:
    """The schema of ``additionalProperties`` values; ``None`` for a boolean (or no) value."""
    return None if schema is None else _node(schema.get("additionalProperties"))


def _flag(schema: Schema | None, key: str) -> bool:
    return schema is not None and schema.get(key) is True


def _has_default(schema: Schema | None) -> bool:
    # A ``default: null`` is no default: the server's Default.Object is nil for it.
    return schema is not None and schema.get("default") is not None


def _child_schema(schema: Schema | None, key: str) -> Schema | None:
    """The schema of ``key`` in an object: its property, else the additionalProperties schema."""
    props = _properties(schema)
    if key in props:
        return _node(props[key])
    return _additional(schema)


# --------------------------------------------------------------------------------------------------
# Go-style rendering, so that messages read as the real server's do.


def _go_number(value: int | float) -> str:
    return go_float(value) if isinstance(value, float) else str(value)


def _go_syntax(value: Any) -> str:
    """``%#v`` of a decoded JSON value, as apimachinery prints a compound bad value."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_number(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_syntax(v) for v in value) + "}"
    if isinstance(value, Mapping):
        entries = ", ".join(f"{go_quote(str(k))}:{_go_syntax(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + entries + "}"
    return repr(value)


def _shown(value: Any) -> str:
    """How ``field.Error.ErrorBody`` shows a bad value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_number(value)
    if isinstance(value, str):
        return go_quote(value)
    return _go_syntax(value)


def _json_text(value: Any) -> str:
    """``json.Marshal`` of a scalar or compound value (numbers as Go writes them)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# --------------------------------------------------------------------------------------------------
# Causes, in the shape of metav1.StatusCause as the lead's StatusError carries them.


def _cause(kind: str, path: str, message: str) -> Cause:
    return {"type": kind, "field": path, "message": message}


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return _cause("FieldValueInvalid", path, f"Invalid value: {_shown(value)}: {detail}")


def _required(path: str, detail: str = "") -> Cause:
    return _cause("FieldValueRequired", path, "Required value" + (f": {detail}" if detail else ""))


def _forbidden(path: str, detail: str) -> Cause:
    return _cause("FieldValueForbidden", path, f"Forbidden: {detail}")


def _not_supported(path: str, value: Any, supported: list[str]) -> Cause:
    detail = ", ".join(go_quote(v) for v in supported)
    return _cause(
        "FieldValueNotSupported",
        path,
        f"Unsupported value: {_shown(value)}" + (f": supported values: {detail}" if detail else ""),
    )


def _duplicate(path: str, value: Any) -> Cause:
    return _cause("FieldValueDuplicate", path, f"Duplicate value: {_shown(value)}")


def _child(path: str, name: str) -> str:
    """``field.Path.Child``: ``a`` + ``b`` is ``a.b``; the root has no leading dot."""
    return f"{path}.{name}" if path else name


def _key(path: str, key: str) -> str:
    """``field.Path.Key``/``Index``: ``a[b]``."""
    return f"{path}[{key}]"


# --------------------------------------------------------------------------------------------------
# Pruning


@dataclass
class _Pruning:
    record: bool
    paths: list[str] = field(default_factory=list)

    def dropped(self, path: str) -> None:
        if self.record:
            self.paths.append(path)


def _prune(value: Any, schema: Schema | None, path: str, state: _Pruning, preserving: bool = False) -> None:
    """The server's pruning algorithm, in place. ``path`` names ``value`` (``spec.items[0]``).

    Below ``x-kubernetes-preserve-unknown-fields`` (``preserving``) unknown fields stay and only the
    known ones are pruned further; list items there stay preserving.
    """
    if not preserving and schema is not None and _flag(schema, "x-kubernetes-preserve-unknown-fields"):
        preserving = True
    if isinstance(value, dict):
        if schema is None:
            for key in list(value):
                state.dropped(_child(path, key))
                del value[key]
            return
        embedded = _flag(schema, "x-kubernetes-embedded-resource")
        props = _properties(schema)
        for key in list(value):
            if embedded and key in _META_FIELDS:
                if key == "metadata":
                    _prune_embedded_meta(value[key], _child(path, key), state)
                continue
            if key in props:
                _prune(value[key], _node(props[key]), _child(path, key), state)
            elif _has_additional(schema):
                _prune(value[key], _additional(schema), _child(path, key), state)
            elif not preserving:
                state.dropped(_child(path, key))
                del value[key]
    elif isinstance(value, list):
        items = None if schema is None else _items(schema)
        if preserving and items is None:
            return
        for i, item in enumerate(value):
            _prune(item, items, f"{path}[{i}]", state, preserving)


def _prune_embedded_meta(meta: Any, path: str, state: _Pruning) -> None:
    """An embedded resource's ``metadata`` keeps the ObjectMeta fields only (the root's is left alone)."""
    if "." not in path or not isinstance(meta, dict):
        return
    for key in list(meta):
        if key not in _OBJECT_META_FIELDS:
            state.dropped(_child(path, key))
            del meta[key]


def _prune_nulls(value: Any, schema: Schema | None) -> None:
    """Drop ``null`` object values whose schema is neither nullable nor defaulted, in place."""
    if isinstance(value, dict):
        for key in list(value):
            sub = _child_schema(schema, key)
            if (
                value[key] is None
                and sub is not None
                and not _flag(sub, "nullable")
                and not _has_default(sub)
            ):
                del value[key]
            else:
                _prune_nulls(value[key], sub)
    elif isinstance(value, list):
        items = _items(schema)
        for item in value:
            _prune_nulls(item, items)


def _root(schema: Schema | None) -> Schema:
    """The root of a resource behaves as an embedded resource: apiVersion/kind/metadata stay."""
    root = dict(schema or {})
    root["x-kubernetes-embedded-resource"] = True
    return root


def prune_with_paths(obj: Any, schema: Schema) -> tuple[Any, list[str]]:
    """Prune a copy of the resource ``obj`` and report the paths pruning dropped, sorted.

    Paths read as the server reports them (``spec.foo``, ``spec.items[0].bar``). ``null`` values
    of non-nullable, non-defaulted fields are dropped as well but not reported: they are not
    unknown fields.
    """
    result = copy_json(obj)
    state = _Pruning(record=True)
    _prune(result, _root(schema), "", state)
    _prune_nulls(result, schema)
    return result, sorted(state.paths)


def prune(obj: Any, schema: Schema) -> Any:
    """A copy of the resource ``obj`` without the fields ``schema`` does not specify (see the module)."""
    result = copy_json(obj)
    _prune(result, _root(schema), "", _Pruning(record=False))
    _prune_nulls(result, schema)
    return result


def unknown_fields(obj: Any, schema: Schema) -> list[str]:
    """The paths of the fields pruning would drop, for ``fieldValidation=Strict`` (error) or
    ``Warn`` (warnings): the server words them ``unknown field "spec.foo"``."""
    return prune_with_paths(obj, schema)[1]


# --------------------------------------------------------------------------------------------------
# Defaulting


def _default(value: Any, schema: Schema | None) -> None:
    """The server's defaulting algorithm, in place; defaults are copied, never shared."""
    if schema is None:
        return
    if isinstance(value, dict):
        for key, prop in _properties(schema).items():
            sub = _node(prop)
            if not _has_default(sub):
                continue
            assert sub is not None
            if key not in value or (value[key] is None and not _flag(sub, "nullable")):
                value[key] = copy_json(sub["default"])
        props = _properties(schema)
        extra = _additional(schema)
        for key in value:
            if key in props:
                _default(value[key], _node(props[key]))
            elif extra is not None:
                if value[key] is None and not _flag(extra, "nullable") and _has_default(extra):
                    value[key] = copy_json(extra["default"])
                _default(value[key], extra)
    elif isinstance(value, list):
        items = _items(schema)
        for i in range(len(value)):
            if (
                value[i] is None
                and items is not None
                and not _flag(items, "nullable")
                and _has_default(items)
            ):
                value[i] = copy_json(items["default"])
            _default(value[i], items)


def apply_defaults(obj: Any, schema: Schema) -> Any:
    """A copy of ``obj`` with the schema's ``default`` values applied where a field is absent (or
    ``null`` and not ``nullable``), recursively, including array items and map values."""
    result = copy_json(obj)
    _default(result, schema)
    return result


# --------------------------------------------------------------------------------------------------
# Validation (kube-openapi's SchemaValidator, as apiextensions converts its errors)

_INVALID_TYPE: Final = "type"
_REQUIRED: Final = "required"
_ENUM: Final = "enum"
_TOO_LONG: Final = "tooLong"
_TOO_MANY: Final = "tooMany"
_OTHER: Final = "other"
_COMPOSITE: Final = "composite"


@dataclass
class _Failure:
    """One kube-openapi error: ``name`` is its own path (``spec.count``; ``.key`` below the root)."""

    code: str
    name: str
    message: str
    value: Any = None
    values: list[Any] | None = None
    limit: int | None = None


def _in_body(name: str, text: str) -> str:
    return f"{name} in body {text}"


def _json_type(value: Any) -> tuple[str, str]:
    """The JSON type and implied format of a decoded value, as kube-openapi infers them."""
    if isinstance(value, bool):
        return "boolean", ""
    if isinstance(value, int):
        return "integer", "int64"
    if isinstance(value, float):
        return "number", "float64"
    if isinstance(value, str):
        return "string", ""
    if isinstance(value, list):
        return "array", ""
    return "object", ""


def _types(schema: Schema) -> list[str]:
    if _flag(schema, "x-kubernetes-int-or-string"):
        return ["integer", "string"]
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) and kind else []


_SUPPORTED_STRING_FORMATS: Final = frozenset(
    {
        "bsonobjectid",
        "uri",
        "email",
        "hostname",
        "ipv4",
        "ipv6",
        "cidr",
        "mac",
        "uuid",
        "uuid3",
        "uuid4",
        "uuid5",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "byte",
        "password",
        "date",
        "duration",
        "datetime",
        "quantity",
    }
)


def _format(schema: Schema, types: list[str]) -> str:
    """The schema's format, or ``""`` where the server strips it as unsupported for the type."""
    fmt = schema.get("format")
    if not isinstance(fmt, str) or not fmt:
        return ""
    kind = types[0] if len(types) == 1 else ""
    if kind in ("", "string"):
        return fmt if fmt.replace("-", "") in _SUPPORTED_STRING_FORMATS else ""
    if kind == "integer":
        return fmt if fmt in ("int32", "int64") else ""
    if kind == "number":
        return fmt if fmt in ("float", "double") else ""
    return ""


_RX_DATETIME: Final = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
_RX_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RX_GO_DURATION: Final = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_RX_SCALA_DURATION: Final = re.compile(r"^\s*(?:\d+\s*[A-Za-zµ]+\s*)+$")
_RX_DURATION_PART: Final = re.compile(r"(\d+)\s*([A-Za-zµ]+)")
_DURATION_UNITS: Final = (
    ("ns", "nano"),
    ("us", "µs", "micro"),
    ("ms", "milli"),
    ("s", "sec"),
    ("m", "min"),
    ("h", "hr", "hour"),
    ("d", "day"),
    ("w", "wk", "week"),
)
_RX_UUID: Final = {
    "uuid": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid3": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid4": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
    "uuid5": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"),
}
_RX_MAC: Final = re.compile(
    r"^(?:[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){7}"
    r"|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){19}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2}"
    r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){3}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){9})$"
)
_RX_BASE64: Final = re.compile(
    r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$"
)
_RX_QUANTITY: Final = re.compile(
    r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$"
)
_RX_URI_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_RX_HEXCOLOR: Final = re.compile(r"^#?(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RX_RGB_PART: Final = r"\s*(0|[1-9]\d?|1\d\d|2[0-4]\d|25[0-5])\s*"
_RX_RGBCOLOR: Final = re.compile(rf"^rgb\({_RX_RGB_PART},{_RX_RGB_PART},{_RX_RGB_PART}\)$")
_RX_SSN: Final = re.compile(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$")
_RX_OBJECT_ID: Final = re.compile(r"^[0-9a-fA-F]{24}$")


def _matcher(rx: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: bool(rx.match(text))


def _is_date(text: str) -> bool:
    if not _RX_DATE.match(text):
        return False
    try:
        _dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_datetime(text: str) -> bool:
    """strfmt's IsDateTime: a full date, ``T``, and ``hh:mm:ss[.frac](Z|±hh:mm)``."""
    if len(text) < 4:
        return False
    parts = text.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _RX_DATETIME.match(parts[1])
    if not match:
        return False
    return int(match.group(1)) <= 23 and int(match.group(2)) <= 59 and int(match.group(3)) <= 59


def _is_duration(text: str) -> bool:
    """Go's ``time.ParseDuration`` syntax, or strfmt's Scala-like ``3 days``."""
    if text in ("0", "+0", "-0") or _RX_GO_DURATION.match(text):
        return True
    if not _RX_SCALA_DURATION.match(text):
        return False
    for _, unit in _RX_DURATION_PART.findall(text):
        unit = unit.strip().lower()
        for variants in _DURATION_UNITS:
            if any(unit == v.lower() for v in variants) or unit.startswith(variants[-1]):
                return True
    return False


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    if "%" in text or ":" not in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_cidr(text: str) -> bool:
    if "/" not in text or "%" in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _is_hostname(text: str) -> bool:
    """RFC 1034 host names, letters of any script allowed, as strfmt's pattern does."""
    if not text or len(text) > 255:
        return False
    labels = text.split(".")
    for label in labels:
        if not label or len(label) > 63 or label[0] == "-" or label[-1] == "-":
            return False
        if not all(ch == "-" or ch.isalnum() or not ch.isascii() for ch in label):
            return False
    return True


def _is_email(text: str) -> bool:
    _, address = parseaddr(text)
    if not address or "@" not in address:
        return False
    local, _, domain = address.rpartition("@")
    return bool(local) and bool(domain) and " " not in address


def _is_uri(text: str) -> bool:
    """``url.ParseRequestURI``: an absolute URI or an absolute path."""
    if not text or any(ch.isspace() for ch in text):
        return False
    return text.startswith("/") or bool(_RX_URI_SCHEME.match(text))


_FORMAT_CHECKS: Final[dict[str, Callable[[str], bool]]] = {
    "date": _is_date,
    "datetime": _is_datetime,
    "duration": _is_duration,
    "ipv4": _is_ipv4,
    "ipv6": _is_ipv6,
    "cidr": _is_cidr,
    "hostname": _is_hostname,
    "email": _is_email,
    "uri": _is_uri,
    "mac": lambda s: bool(_RX_MAC.match(s)),
    "byte": lambda s: bool(_RX_BASE64.match(s)),
    "quantity": lambda s: bool(_RX_QUANTITY.match(s)),
    "hexcolor": lambda s: bool(_RX_HEXCOLOR.match(s)),
    "rgbcolor": lambda s: bool(_RX_RGBCOLOR.match(s)),
    "ssn": lambda s: bool(_RX_SSN.match(s)),
    "bsonobjectid": lambda s: bool(_RX_OBJECT_ID.match(s)),
    "password": lambda s: True,
    **{name: _matcher(rx) for name, rx in _RX_UUID.items()},
}


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | str:
    """A compiled pattern, or the reason it does not compile."""
    try:
        return re.compile(pattern)
    except re.error as err:
        return str(err)


def _is_json_integer(value: float) -> bool:
    return math.isfinite(value) and value.is_integer() and abs(value) <= 2**53


def _type_failure(name: str, expected: str, got: str) -> _Failure:
    return _Failure(_INVALID_TYPE, name, _in_body(name, f"must be of type {expected}: {go_quote(got)}"), got)


def _check_type(value: Any, types: list[str], fmt: str, name: str, out: list[_Failure]) -> None:
    """kube-openapi's type validator (``int-or-string`` arrives as the types integer and string)."""
    if value is None:
        if types and "null" not in types:
            out.append(_type_failure(name, ",".join(types), "null"))
        return
    json_type, implied = _json_type(value)
    float_int = json_type == "number" and "integer" in types and _is_json_integer(value)
    int_float = json_type == "integer" and "number" in types
    if (
        json_type not in ("string", "array")
        and fmt
        and not (json_type in types or implied == fmt or float_int or int_float)
    ):
        out.append(_type_failure(name, fmt, implied))
        return
    if json_type == "string" and fmt and "number" not in types and "integer" not in types:
        return
    if not (json_type in types or float_int or int_float):
        out.append(_type_failure(name, ",".join(types), json_type))


def _check_enum(value: Any, schema: Schema, name: str, out: list[_Failure]) -> None:
    enum = schema.get("enum")
    if not isinstance(enum, list) or not enum:
        return
    if any(json_equal(value, allowed) for allowed in enum):
        return
    out.append(_Failure(_ENUM, name, _in_body(name, f"should be one of {enum}"), value, values=list(enum)))


def _number(schema: Schema, key: str) -> int | float | None:
    value = schema.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _bound_text(value: int | float, bound: int | float) -> str:
    """kube-openapi compares an integer with an int64 bound and a float with a float64 one."""
    if isinstance(value, int) and float(bound).is_integer():
        return str(int(bound))
    return go_float(float(bound))


def _check_number(value: int | float, schema: Schema, name: str, out: list[_Failure]) -> None:
    """multipleOf, minimum, maximum: kube-openapi checks all three and reports each failure."""
    factor = _number(schema, "multipleOf")
    if factor is not None:
        if factor < 0:
            out.append(
                _Failure(
                    _OTHER,
                    name,
                    f"factor MultipleOf declared for {name} must be positive: {_go_number(factor)}",
                    factor,
                )
            )
        elif factor > 0:
            if isinstance(value, int) and float(factor).is_integer():
                ok = value % int(factor) == 0
            else:
                ok = _is_json_integer((1 / factor) * value if factor < 1 else value / factor)
            if not ok:
                out.append(
                    _Failure(
                        _OTHER,
                        name,
                        _in_body(name, f"should be a multiple of {_bound_text(value, factor)}"),
                        value,
                    )
                )
    for key, exclusive_key, below in (
        ("minimum", "exclusiveMinimum", True),
        ("maximum", "exclusiveMaximum", False),
    ):
        bound = _number(schema, key)
        if bound is None:
            continue
        exclusive = _flag(schema, exclusive_key)
        if below:
            failed = value <= bound if exclusive else value < bound
            text = "should be greater than" if exclusive else "should be greater than or equal to"
        else:
            failed = value >= bound if exclusive else value > bound
            text = "should be less than" if exclusive else "should be less than or equal to"
        if failed:
            out.append(_Failure(_OTHER, name, _in_body(name, f"{text} {_bound_text(value, bound)}"), value))


def _check_string(value: str, schema: Schema, fmt: str, name: str, out: list[_Failure]) -> None:
    """maxLength, minLength, pattern (the first failure only, as kube-openapi), then format."""
    max_length = _number(schema, "maxLength")
    min_length = _number(schema, "minLength")
    pattern = schema.get("pattern")
    if max_length is not None and len(value) > max_length:
        out.append(
            _Failure(
                _TOO_LONG,
                name,
                _in_body(name, f"should be at most {int(max_length)} chars long"),
                value,
                limit=int(max_length),
            )
        )
    elif min_length is not None and len(value) < min_length:
        out.append(
            _Failure(_OTHER, name, _in_body(name, f"should be at least {int(min_length)} chars long"), value)
        )
    elif isinstance(pattern, str) and pattern:
        compiled = _compile(pattern)
        if isinstance(compiled, str):
            out.append(
                _Failure(
                    _OTHER,
                    name,
                    _in_body(name, f"should match '{pattern}, but pattern is invalid: {compiled}'"),
                    value,
                )
            )
        elif not compiled.search(value):
            out.append(_Failure(_OTHER, name, _in_body(name, f"should match '{pattern}'"), value))
    if fmt:
        check = _FORMAT_CHECKS.get(fmt.replace("-", ""))
        if check is not None and not check(value):
            out.append(
                _Failure(
                    _INVALID_TYPE, name, _in_body(name, f"must be of type {fmt}: {go_quote(value)}"), value
                )
            )


def _check_array(value: list[Any], schema: Schema, name: str, out: list[_Failure]) -> None:
    items = _items(schema)
    if items is not None:
        for i, item in enumerate(value):
            _validate_node(item, items, f"{name}[{i}]", out)
    min_items = _number(schema, "minItems")
    max_items = _number(schema, "maxItems")
    if min_items is not None and len(value) < min_items:
        out.append(
            _Failure(_OTHER, name, _in_body(name, f"should have at least {int(min_items)} items"), len(value))
        )
    if max_items is not None and len(value) > max_items:
        out.append(
            _Failure(
                _TOO_MANY,
                name,
                _in_body(name, f"should have at most {int(max_items)} items"),
                len(value),
                limit=int(max_items),
            )
        )
    if schema.get("uniqueItems") is True:
        seen: list[Any] = []
        for item in value:
            if any(json_equal(item, other) for other in seen):
                out.append(_Failure(_OTHER, name, _in_body(name, "shouldn't contain duplicates")))
                break
            seen.append(item)


def _check_object(value: dict[str, Any], schema: Schema, name: str, out: list[_Failure]) -> None:
    count = len(value)
    min_props = _number(schema, "minProperties")
    max_props = _number(schema, "maxProperties")
    # kube-openapi stops at a property-count failure: the fields are not looked at.
    if min_props is not None and count < min_props:
        out.append(
            _Failure(_OTHER, name, _in_body(name, f"should have at least {int(min_props)} properties"), count)
        )
        return
    if max_props is not None and count > max_props:
        out.append(
            _Failure(
                _TOO_MANY,
                name,
                _in_body(name, f"should have at most {int(max_props)} properties"),
                count,
                limit=int(max_props),
            )
        )
        return
    props = _properties(schema)
    extra = schema.get("additionalProperties")
    if extra is False:
        for key in value:
            if key not in props:
                out.append(_Failure(_OTHER, name, f"{name}.{key} in body is a forbidden property", key))
    elif isinstance(extra, Mapping):
        for key, item in value.items():
            if key not in props:
                _validate_node(item, extra, f"{name}.{key}", out)
    for key, prop in props.items():
        if key in value and isinstance(prop, Mapping):
            _validate_node(value[key], prop, f"{name}.{key}" if name else key, out)
    required = schema.get("required")
    if isinstance(required, list):
        for key in required:
            if isinstance(key, str) and key not in value:
                out.append(_Failure(_REQUIRED, f"{name}.{key}", _in_body(f"{name}.{key}", "is required")))


def _branches(schema: Schema, key: str) -> list[Schema]:
    value = schema.get(key)
    if not isinstance(value, list):
        return []
    return [b for b in value if isinstance(b, Mapping)]


def _fewest(results: list[list[_Failure]]) -> list[_Failure]:
    """The failing branch to report: the first with the fewest errors."""
    best = results[0]
    for result in results[1:]:
        if len(result) < len(best):
            best = result
    return best


def _check_junctors(value: Any, schema: Schema, name: str, out: list[_Failure]) -> None:
    """anyOf, oneOf, allOf, not: a composite error for the junctor, plus the telling branch errors."""
    if not ("anyOf" in schema or "oneOf" in schema or "allOf" in schema or "not" in schema):
        return  # the common case: nothing to check, and no message to format
    quoted = go_quote(name)
    any_of = _branches(schema, "anyOf")
    if any_of:
        results: list[list[_Failure]] = []
        for branch in any_of:
            found: list[_Failure] = []
            _validate_node(value, branch, name, found)
            if not found:
                break
            results.append(found)
        else:
            out.append(_Failure(_COMPOSITE, name, f"{quoted} must validate at least one schema (anyOf)"))
            out.extend(_fewest(results))
    one_of = _branches(schema, "oneOf")
    if one_of:
        valid = 0
        failures: list[list[_Failure]] = []
        for branch in one_of:
            found = []
            _validate_node(value, branch, name, found)
            if found:
                failures.append(found)
            else:
                valid += 1
        if valid != 1:
            more = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            out.append(
                _Failure(_COMPOSITE, name, f"{quoted} must validate one and only one schema (oneOf). {more}")
            )
            if valid == 0:
                out.extend(_fewest(failures))
    all_of = _branches(schema, "allOf")
    if all_of:
        passed = 0
        for branch in all_of:
            found = []
            _validate_node(value, branch, name, found)
            out.extend(found)
            passed += not found
        if passed != len(all_of):
            more = ". None validated" if passed == 0 else ""
            out.append(_Failure(_COMPOSITE, name, f"{quoted} must validate all the schemas (allOf){more}"))
    negated = _node(schema.get("not"))
    if negated is not None:
        found = []
        _validate_node(value, negated, name, found)
        if not found:
            out.append(_Failure(_COMPOSITE, name, f"{quoted} must not validate the schema (not)"))


def _validate_node(value: Any, schema: Schema, name: str, out: list[_Failure]) -> None:
    """One SchemaValidator.Validate: its validators in kube-openapi's order."""
    types = _types(schema)
    fmt = _format(schema, types)
    if value is None:
        # Only the type (nullable) and enum validators look at null.
        if not _flag(schema, "nullable"):
            _check_type(None, types, fmt, name, out)
        _check_enum(value, schema, name, out)
        return
    if types or fmt:
        _check_type(value, types, fmt, name, out)
    _check_junctors(value, schema, name, out)
    if isinstance(value, str):
        _check_string(value, schema, fmt, name, out)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(value, schema, name, out)
    elif isinstance(value, list):
        _check_array(value, schema, name, out)
    _check_enum(value, schema, name, out)
    if isinstance(value, dict):
        _check_object(value, schema, name, out)


def _failure_cause(failure: _Failure, root_path: str) -> Cause:
    """apiextensions' conversion of a kube-openapi error into a ``field.Error``."""
    if failure.code == _COMPOSITE:
        # Not a per-field error: the server reports it at the validation root.
        return _invalid(root_path, "", failure.message)
    name = failure.name[1:] if failure.name.startswith(".") else failure.name
    path = _child(root_path, name) if name else root_path
    value = "" if failure.value is None else failure.value
    if failure.code == _REQUIRED:
        return _required(path)
    if failure.code == _ENUM:
        supported = [v if isinstance(v, str) else _json_text(v) for v in failure.values or []]
        return _not_supported(path, failure.value, supported)
    if failure.code == _TOO_LONG:
        limit = failure.limit if failure.limit is not None else -1
        detail = f"may not be longer than {limit}" if limit >= 0 else "value is too long"
        return _cause("FieldValueTooLong", path, f"Too long: {detail}")
    if failure.code == _TOO_MANY:
        return _cause(
            "FieldValueTooMany",
            path,
            f"Too many: {_shown(failure.value)}: must have at most {failure.limit} items",
        )
    if failure.code == _INVALID_TYPE:
        return _cause("FieldValueTypeInvalid", path, f"Invalid value: {_shown(value)}: {failure.message}")
    return _invalid(path, value, failure.message)


# Embedded resources: apiVersion and kind are required and well-formed.

_RX_DNS1035: Final = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_MESSAGE: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def _check_embedded(value: Any, schema: Schema | None, path: str, out: list[Cause], root: bool) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        if _flag(schema, "x-kubernetes-embedded-resource") and not root:
            out.extend(_embedded_type_meta(value, path))
        props = _properties(schema)
        for key, item in value.items():
            if key in props:
                _check_embedded(item, _node(props[key]), _child(path, key), out, False)
            elif _has_additional(schema):
                _check_embedded(item, _additional(schema), _key(path, key), out, False)
    elif isinstance(value, list):
        items = _items(schema)
        for i, item in enumerate(value):
            _check_embedded(item, items, _key(path, str(i)), out, False)


def _embedded_type_meta(value: Mapping[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    api_version = value.get("apiVersion")
    kind = value.get("kind")
    if "apiVersion" not in value:
        causes.append(_required(_child(path, "apiVersion")))
    elif not isinstance(api_version, str):
        causes.append(_invalid(_child(path, "apiVersion"), api_version, "must be a string"))
    elif not api_version:
        causes.append(_required(_child(path, "apiVersion")))
    elif api_version.count("/") > 1:
        causes.append(
            _invalid(
                _child(path, "apiVersion"), api_version, f"unexpected GroupVersion string: {api_version}"
            )
        )
    if "kind" not in value:
        causes.append(_required(_child(path, "kind")))
    elif not isinstance(kind, str):
        causes.append(_invalid(_child(path, "kind"), kind, "must be a string"))
    elif not kind:
        causes.append(_required(_child(path, "kind")))
    else:
        problems = []
        if len(kind) > 63:
            problems.append("must be no more than 63 characters")
        if not _RX_DNS1035.match(kind.lower()):
            problems.append(_DNS1035_MESSAGE)
        if problems:
            causes.append(
                _invalid(
                    _child(path, "kind"),
                    kind,
                    "may have mixed case, but should otherwise match: " + ",".join(problems),
                )
            )
    return causes


# x-kubernetes-list-type: set and map uniqueness.


def _scalar_key(value: Any) -> tuple[str, Any]:
    """Identity of a list element as Go's map keys see it: type matters (1 is not 1.0 or true)."""
    if isinstance(value, dict | list):
        return "compound", _json_text(value)
    return type(value).__name__, value


def _non_unique(values: list[Any]) -> list[int]:
    """The index of each value's second appearance."""
    seen: dict[tuple[str, Any], int] = {}
    repeated: list[int] = []
    for i, value in enumerate(values):
        key = _scalar_key(value)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            repeated.append(i)
    return repeated


_UNSPECIFIED: Final = object()


def _check_list_types(value: Any, schema: Schema | None, path: str, out: list[Cause]) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        extra = _additional(schema)
        if extra is not None:
            for key, item in value.items():
                _check_list_types(item, extra, _key(path, key), out)
        props = _properties(schema)
        for key, item in value.items():
            if key in props:
                _check_list_types(item, _node(props[key]), _child(path, key), out)
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            out.extend(_duplicate(_key(path, str(i)), value[i]) for i in _non_unique(value))
        elif list_type == "map":
            out.extend(_list_map_duplicates(value, schema, path))
        items = _items(schema)
        if items is not None:
            for i, item in enumerate(value):
                _check_list_types(item, items, _key(path, str(i)), out)


def _list_map_duplicates(value: list[Any], schema: Schema, path: str) -> list[Cause]:
    for i, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            return [_invalid(_key(path, str(i)), item, "must be an object for an array of list-type map")]
    if len(value) <= 1:
        return []
    names = [k for k in schema.get("x-kubernetes-list-map-keys") or [] if isinstance(k, str)]
    keys: list[Any] = []
    for item in value:
        present = item or {}
        if len(names) == 1:
            keys.append(present.get(names[0], _UNSPECIFIED))
        else:
            keys.append({n: present[n] for n in names if n in present})
    causes = []
    marked = [("unspecified", None) if k is _UNSPECIFIED else k for k in keys]
    for i in _non_unique(marked):
        if len(names) == 1:
            shown: Any = {} if keys[i] is _UNSPECIFIED else {names[0]: keys[i]}
        else:
            shown = keys[i]
        causes.append(_duplicate(_key(path, str(i)), shown))
    return causes


def validate(obj: Any, schema: Schema, root_path: str = "") -> list[Cause]:
    """The causes (``{"type", "field", "message"}``) for which the server rejects ``obj`` with 422.

    ``obj`` should already be pruned and defaulted (see :func:`admit`). ``root_path`` prefixes every
    field, e.g. ``spec.template`` when validating a part of an object. CEL rules
    (``x-kubernetes-validations``) are not evaluated.
    """
    failures: list[_Failure] = []
    _validate_node(obj, schema, "", failures)
    causes = [_failure_cause(f, root_path) for f in failures]
    _check_embedded(obj, schema, root_path, causes, root=not root_path)
    _check_list_types(obj, schema, root_path, causes)
    return causes


def admit(obj: Any, schema: Schema) -> tuple[Any, list[Cause]]:
    """What a create/update of a custom resource goes through: prune, default, then validate.

    Returns the object to store and the causes that reject it (empty when it is valid).
    """
    result = copy_json(obj)
    _prune(result, _root(schema), "", _Pruning(record=False))
    _prune_nulls(result, schema)
    _default(result, schema)
    return result, validate(result, schema)


# --------------------------------------------------------------------------------------------------
# Structural schema checks (CRD admission)

_ROOT: Final = 0
_ITEM: Final = 1
_FIELD: Final = 2

_NESTED_FORBIDDEN: Final = (
    # key, reason (as ValidateStructural words it for logical junctors)
    ("type", "must be empty to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("externalDocs", "must be undefined to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_NESTED_FORBIDDEN_FLAGS: Final = (
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
)
_UNSUPPORTED_KEYWORDS: Final = (
    "id",
    "additionalItems",
    "patternProperties",
    "definitions",
    "dependencies",
    "$ref",
)

# What a structural node may say; at the root, ``metadata`` may only restrict name and generateName.
_STRUCTURAL_KEYS: Final = frozenset(
    {
        "description",
        "title",
        "nullable",
        "items",
        "additionalProperties",
        "format",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "enum",
        "maxProperties",
        "minProperties",
        "required",
        "allOf",
        "oneOf",
        "anyOf",
        "not",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-validations",
    }
)

_INT_OR_STRING_ANY_OF: Final = [{"type": "integer"}, {"type": "string"}]


def _is_int_or_string_any_of(schema: Schema) -> bool:
    return schema.get("anyOf") == _INT_OR_STRING_ANY_OF


def _is_int_or_string_all_of(schema: Schema) -> bool:
    all_of = schema.get("allOf")
    return (
        isinstance(all_of, list)
        and len(all_of) >= 1
        and isinstance(all_of[0], Mapping)
        and all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    )


def _check_nested(schema: Schema, path: str, out: list[Cause], *, skip_any_of: bool = False) -> None:
    """A schema under allOf/anyOf/oneOf/not may only validate values, never shape them."""
    _check_junctor_children(schema, path, out, skip_any_of=skip_any_of, skip_first_all_of=False)
    items = _node(schema.get("items"))
    if items is not None:
        _check_nested(items, _child(path, "items"), out)
    for key, prop in _properties(schema).items():
        if isinstance(prop, Mapping):
            _check_nested(prop, _key(_child(path, "properties"), key), out)
    for key, reason in _NESTED_FORBIDDEN:
        value = schema.get(key)
        if value is not None and value != "" and value != []:
            out.append(_forbidden(_child(path, key), reason))
    if "additionalProperties" in schema:
        out.append(_forbidden(_child(path, "additionalProperties"), "must be undefined to be structural"))
    for key, reason in _NESTED_FORBIDDEN_FLAGS:
        if _flag(schema, key):
            out.append(_forbidden(_child(path, key), reason))
    if "metadata" in _properties(schema):
        out.append(
            _forbidden(
                _key(_child(path, "properties"), "metadata"), "must not be specified in a nested context"
            )
        )


def _check_junctor_children(
    schema: Schema, path: str, out: list[Cause], *, skip_any_of: bool, skip_first_all_of: bool
) -> None:
    if not skip_any_of:
        for i, branch in enumerate(_branches(schema, "anyOf")):
            _check_nested(branch, _key(_child(path, "anyOf"), str(i)), out)
    for i, branch in enumerate(_branches(schema, "allOf")):
        _check_nested(
            branch, _key(_child(path, "allOf"), str(i)), out, skip_any_of=skip_first_all_of and i == 0
        )
    for i, branch in enumerate(_branches(schema, "oneOf")):
        _check_nested(branch, _key(_child(path, "oneOf"), str(i)), out)
    negated = _node(schema.get("not"))
    if negated is not None:
        _check_nested(negated, _child(path, "not"), out)


def _check_completeness(
    value_schema: Schema, structure: Schema | None, s_path: str, v_path: str, out: list[Cause]
) -> None:
    """Every field or array a junctor speaks of must also be specified outside of it."""
    if structure is None:
        out.append(_required(s_path, f"because it is defined in {v_path}"))
        return
    for key in ("anyOf", "allOf", "oneOf"):
        for i, branch in enumerate(_branches(value_schema, key)):
            _check_completeness_branch(branch, structure, s_path, _key(_child(v_path, key), str(i)), out)
    negated = _node(value_schema.get("not"))
    if negated is not None:
        _check_completeness_branch(negated, structure, s_path, _child(v_path, "not"), out)


def _check_completeness_branch(
    branch: Schema, structure: Schema, s_path: str, v_path: str, out: list[Cause]
) -> None:
    _check_completeness(branch, structure, s_path, v_path, out)
    items = _node(branch.get("items"))
    if items is not None:
        _check_completeness_branch_or_missing(
            items, _items(structure), _child(s_path, "items"), _child(v_path, "items"), out
        )
    props = _properties(structure)
    for key, prop in _properties(branch).items():
        if not isinstance(prop, Mapping):
            continue
        s_child = _key(_child(s_path, "properties"), key)
        v_child = _key(_child(v_path, "properties"), key)
        if key not in props:
            out.append(_required(s_child, f"because it is defined in {v_child}"))
        else:
            _check_completeness_branch_or_missing(prop, _node(props[key]), s_child, v_child, out)


def _check_completeness_branch_or_missing(
    branch: Schema, structure: Schema | None, s_path: str, v_path: str, out: list[Cause]
) -> None:
    if structure is None:
        out.append(_required(s_path, f"because it is defined in {v_path}"))
        return
    _check_completeness_branch(branch, structure, s_path, v_path, out)


def _check_root_metadata(meta: Schema, path: str, out: list[Cause]) -> None:
    """At the root, metadata may be ``type: object`` and restrict name and generateName, nothing else."""
    props = _properties(meta)
    extra_props = set(props) - {"name", "generateName"}
    others = [k for k in meta if k in _STRUCTURAL_KEYS]
    if extra_props or others:
        out.append(
            _forbidden(
                path,
                "must not specify anything other than name and generateName, but metadata is implicitly specified",
            )
        )


def _check_list_type_schema(schema: Schema, path: str, out: list[Cause]) -> None:
    kind = schema.get("type")
    map_type = schema.get("x-kubernetes-map-type")
    if map_type is not None:
        if kind != "object":
            if not kind:
                out.append(
                    _required(_child(path, "type"), "must be object if x-kubernetes-map-type is specified")
                )
            else:
                out.append(
                    _invalid(
                        _child(path, "type"), kind, "must be object if x-kubernetes-map-type is specified"
                    )
                )
        if map_type not in ("atomic", "granular"):
            out.append(
                _not_supported(_child(path, "x-kubernetes-map-type"), map_type, ["atomic", "granular"])
            )
    list_type = schema.get("x-kubernetes-list-type")
    items = _items(schema)
    if list_type is not None and kind != "array":
        if not kind:
            out.append(
                _required(_child(path, "type"), "must be array if x-kubernetes-list-type is specified")
            )
        else:
            out.append(
                _invalid(_child(path, "type"), kind, "must be array if x-kubernetes-list-type is specified")
            )
    elif list_type == "set" and items is not None:
        item_type = items.get("type")
        if item_type == "array" and items.get("x-kubernetes-list-type") not in (None, "atomic"):
            out.append(
                _invalid(
                    _child(_child(path, "items"), "x-kubernetes-list-type"),
                    items.get("x-kubernetes-list-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
        if item_type == "object" and items.get("x-kubernetes-map-type") != "atomic":
            out.append(
                _invalid(
                    _child(_child(path, "items"), "x-kubernetes-map-type"),
                    items.get("x-kubernetes-map-type"),
                    "must be atomic as item of a list with x-kubernetes-list-type=set",
                )
            )
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        out.append(
            _not_supported(_child(path, "x-kubernetes-list-type"), list_type, ["atomic", "set", "map"])
        )
    map_keys = schema.get("x-kubernetes-list-map-keys")
    keys = [k for k in map_keys if isinstance(k, str)] if isinstance(map_keys, list) else []
    if keys:
        if list_type is None:
            out.append(
                _required(
                    _child(path, "x-kubernetes-list-type"),
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
        elif list_type != "map":
            out.append(
                _invalid(
                    _child(path, "x-kubernetes-list-type"),
                    list_type,
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
    if list_type == "map":
        if not keys:
            out.append(
                _required(
                    _child(path, "x-kubernetes-list-map-keys"),
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
        if items is None:
            out.append(
                _required(_child(path, "items"), "must have a schema if x-kubernetes-list-type is map")
            )
        elif items.get("type") != "object":
            out.append(
                _invalid(
                    _child(_child(path, "items"), "type"),
                    items.get("type", ""),
                    "must be object if parent array's x-kubernetes-list-type is map",
                )
            )
        else:
            item_props = _properties(items)
            listed = items.get("required")
            required: list[Any] = listed if isinstance(listed, list) else []
            seen: set[str] = set()
            for k in keys:
                prop = _node(item_props.get(k))
                prop_path = _key(_child(_child(path, "items"), "properties"), k)
                if prop is None:
                    out.append(
                        _invalid(
                            _child(path, "x-kubernetes-list-map-keys"),
                            keys,
                            "entries must all be names of item properties",
                        )
                    )
                else:
                    if prop.get("type") in ("array", "object"):
                        out.append(
                            _invalid(
                                _child(prop_path, "type"),
                                items.get("type"),
                                "must be a scalar type if parent array's x-kubernetes-list-type is map",
                            )
                        )
                    if k not in required and not _has_default(prop):
                        out.append(
                            _required(
                                _child(prop_path, "default"),
                                "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property",
                            )
                        )
                    if _flag(prop, "nullable"):
                        out.append(
                            _forbidden(
                                _child(prop_path, "nullable"),
                                "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                            )
                        )
                if k in seen:
                    out.append(
                        _invalid(
                            _child(path, "x-kubernetes-list-map-keys"),
                            keys,
                            "must not contain duplicate entries",
                        )
                    )
                seen.add(k)
    if list_type in ("set", "map") and items is not None and _flag(items, "nullable"):
        out.append(
            _forbidden(
                _child(_child(path, "items"), "nullable"),
                f"cannot be nullable when x-kubernetes-list-type is {list_type}",
            )
        )


def _check_default(schema: Schema, path: str, out: list[Cause]) -> None:
    """A default must be pruned and must validate against its own schema."""
    default = schema["default"]
    embedded = _flag(schema, "x-kubernetes-embedded-resource")
    pruned = copy_json(default)
    _prune(pruned, _root(schema) if embedded else schema, "", _Pruning(record=False))
    default_path = _child(path, "default")
    if not json_equal(pruned, default):
        out.append(_invalid(default_path, default, "must not have unknown fields"))
    out.extend(validate(default, schema, default_path))


def _check_node(
    schema: Schema,
    path: str,
    level: int,
    out: list[Cause],
    *,
    in_meta: bool = False,
    no_defaults: str | None = None,
) -> None:
    """ValidateStructural and the CRD schema checks of one node of the structure, then its children."""
    kind = schema.get("type")
    int_or_string = _flag(schema, "x-kubernetes-int-or-string")
    preserve = _flag(schema, "x-kubernetes-preserve-unknown-fields")
    embedded = _flag(schema, "x-kubernetes-embedded-resource")
    props = _properties(schema)
    extra = schema.get("additionalProperties")
    type_path = _child(path, "type")

    # Keywords OpenAPI has and Kubernetes does not take.
    if isinstance(kind, str) and kind and kind not in _OPENAPI_TYPES:
        out.append(_not_supported(type_path, kind, list(_OPENAPI_TYPES)))
    if kind == "null":
        out.append(_forbidden(type_path, "type cannot be set to null, use nullable as an alternative"))
    if _has_default(schema) and no_defaults is not None:
        out.append(_forbidden(_child(path, "default"), "must not be set " + no_defaults))
    for keyword in _UNSUPPORTED_KEYWORDS:
        if keyword in schema and schema[keyword] not in (None, "", {}):
            out.append(_forbidden(_child(path, keyword), f"{keyword} is not supported"))
    if isinstance(schema.get("items"), list):
        out.append(_forbidden(_child(path, "items"), "items must be a schema object and not an array"))
    if schema.get("uniqueItems") is True:
        out.append(
            _forbidden(
                _child(path, "uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    if props and (extra is False or isinstance(extra, Mapping)):
        out.append(
            _forbidden(
                _child(path, "additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            )
        )
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        out.append(
            _invalid(_child(path, "x-kubernetes-preserve-unknown-fields"), False, "must be true or undefined")
        )
    _check_list_type_schema(schema, path, out)
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern:
        compiled = _compile(pattern)
        if isinstance(compiled, str):
            out.append(
                _invalid(
                    _child(path, "pattern"),
                    pattern,
                    f"must be a valid regular expression, but isn't: {compiled}",
                )
            )

    # The structural invariants.
    if kind == "array" and "items" not in schema:
        out.append(_required(_child(path, "items"), "must be specified"))
    if extra is not None and level == _ROOT:
        out.append(_forbidden(_child(path, "additionalProperties"), "must not be used at the root"))
    if int_or_string and preserve:
        out.append(
            _invalid(
                _child(path, "x-kubernetes-preserve-unknown-fields"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        out.append(
            _invalid(
                _child(path, "x-kubernetes-embedded-resource"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    _check_junctor_children(
        schema,
        path,
        out,
        skip_any_of=_is_int_or_string_any_of(schema),
        skip_first_all_of=_is_int_or_string_all_of(schema),
    )
    if embedded and kind != "object":
        if not kind:
            out.append(_required(type_path, "must be object if x-kubernetes-embedded-resource is true"))
        else:
            out.append(_invalid(type_path, kind, "must be object if x-kubernetes-embedded-resource is true"))
    elif not kind and not int_or_string and not preserve:
        where = {
            _ROOT: "at the root",
            _ITEM: "for specified array items",
            _FIELD: "for specified object fields",
        }[level]
        out.append(_required(type_path, f"must not be empty {where}"))
    if embedded and extra is not None:
        out.append(
            _forbidden(
                _child(path, "additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == _ROOT and isinstance(kind, str) and kind and kind != "object":
        out.append(_invalid(type_path, kind, "must be object at the root"))
    resource = level == _ROOT or embedded
    for meta_key in ("kind", "apiVersion"):
        sub = _node(props.get(meta_key))
        if resource and sub is not None and sub.get("type") != "string":
            out.append(
                _invalid(
                    _child(_key(_child(path, "properties"), meta_key), "type"),
                    sub.get("type", ""),
                    "must be string",
                )
            )
    meta = _node(props.get("metadata"))
    if meta is not None:
        meta_path = _key(_child(path, "properties"), "metadata")
        if resource and meta.get("type") != "object":
            out.append(_invalid(_child(meta_path, "type"), meta.get("type", ""), "must be object"))
        if level == _ROOT:
            _check_root_metadata(meta, meta_path, out)
    if embedded and not preserve and not props:
        out.append(
            _required(
                _child(path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            )
        )
    _check_completeness(schema, schema, path, path, out)

    if _has_default(schema) and not in_meta and no_defaults is None:
        _check_default(schema, path, out)

    # The children of the structure.
    for key, prop in props.items():
        child = _node(prop)
        if child is None:
            continue
        child_meta = in_meta
        child_no_defaults = no_defaults
        if resource and key in _META_FIELDS:
            child_meta = True
            if level == _ROOT:
                child_no_defaults = f"in top-level {key}"
        _check_node(
            child,
            _key(_child(path, "properties"), key),
            _FIELD,
            out,
            in_meta=child_meta,
            no_defaults=child_no_defaults,
        )
    extra_schema = _node(extra)
    if extra_schema is not None:
        reason = "inside additionalProperties applying to object metadata" if in_meta else no_defaults
        _check_node(
            extra_schema,
            _child(path, "additionalProperties"),
            _FIELD,
            out,
            in_meta=in_meta,
            no_defaults=reason,
        )
    items = _items(schema)
    if items is not None:
        _check_node(items, _child(path, "items"), _ITEM, out, in_meta=in_meta, no_defaults=no_defaults)


def structural_causes(schema: Any, root_path: str = "") -> list[Cause]:
    """Why ``schema`` cannot be a CRD version's ``openAPIV3Schema``, as 422 causes.

    ``root_path`` is where the schema sits in the CRD, e.g.
    ``spec.versions[0].schema.openAPIV3Schema``; fields are named the way the server names them
    (``...properties[spec].properties[count].type``). Empty when the schema is accepted.
    """
    if not isinstance(schema, Mapping):
        return [_required(root_path or "openAPIV3Schema", "must be an object")]
    out: list[Cause] = []
    _check_node(schema, root_path, _ROOT, out)
    return out


def check_structural(schema: Any, root_path: str = "") -> list[str]:
    """Why ``schema`` is not a structural schema the server accepts, one ``field: message`` each
    (empty when it is accepted); :func:`structural_causes` gives the same as 422 causes."""
    return [
        f"{c['field']}: {c['message']}" if c["field"] else c["message"]
        for c in structural_causes(schema, root_path)
    ]
