"""The HTTP edge of the API server: request identity, parameters, negotiation and response shapes.

Everything here is about one request and holds no state, so the handlers in :mod:`server` read as
the verbs they implement.
"""

from __future__ import annotations

import base64
import platform
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from anywhere import __version__
from anywhere.apiserver import protobuf, selectors
from anywhere.apiserver.errors import StatusError
from anywhere.apiserver.objects import Obj
from anywhere.apiserver.resources import ResourceType


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


USER_KEY: web.RequestKey[User] = web.RequestKey("user", User)
VERB_KEY: web.RequestKey[tuple[str, str]] = web.RequestKey("verb", tuple)
WARNINGS_KEY: web.RequestKey[list[str]] = web.RequestKey("warnings", list)


class StaleWrite(StatusError):
    """409: the object changed between our read and our write; the operation may be retried."""


@dataclass
class Target:
    """What a resource path names."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def status_response(error: StatusError) -> web.Response:
    return json_response(error.status(), error.code)


@dataclass(frozen=True)
class Selection:
    """A request's labelSelector and fieldSelector, as one test of an object."""

    labels: selectors.LabelSelector
    fields: selectors.FieldSelector

    @property
    def empty(self) -> bool:
        return self.labels.empty and self.fields.empty

    def matches(self, obj: Obj) -> bool:
        return self.labels.matches((obj.get("metadata") or {}).get("labels") or {}) and self.fields.matches(
            obj
        )


def selection(request: web.Request, rt: ResourceType, name: str | None = None) -> Selection:
    """The selectors of a list or watch; a watch of one object (``name``) selects it by name."""
    query = request.query
    labels = selectors.parse_label_selector(query.get("labelSelector", ""))
    if name:
        fields = selectors.parse_field_selector(f"metadata.name={name}", {"metadata.name"})
    else:
        supported = {"metadata.name", "metadata.namespace", *rt.selectable_fields}
        fields = selectors.parse_field_selector(query.get("fieldSelector", ""), supported)
    return Selection(labels, fields)


def stale(rt: ResourceType, name: str) -> StaleWrite:
    return StaleWrite(
        409,
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        reason="Conflict",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def report_unknown_fields(request: web.Request, rt: ResourceType, paths: list[str]) -> None:
    """``fieldValidation``: Strict refuses unknown fields, Warn (the default) warns, Ignore drops them."""
    mode = request.query.get("fieldValidation", "Warn")
    if mode not in ("Strict", "Warn", "Ignore"):
        raise StatusError(
            400,
            f'fieldValidation must be one of "Ignore", "Warn", or "Strict", got "{mode}"',
            reason="BadRequest",
        )
    if mode == "Ignore":
        return
    problems = [f'unknown field "{path}"' for path in paths]
    if mode == "Strict":
        raise StatusError(
            400,
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"strict decoding error: {', '.join(problems)}",
            reason="BadRequest",
        )
    request.setdefault(WARNINGS_KEY, []).extend(problems)


def verb(method: str, target: Target, watch: bool) -> str:
    """The Kubernetes verb of a request, as metrics and (later) authorization name it."""
    if method == "GET":
        if target.name is None:
            return "watch" if watch else "list"
        return "get"
    collection = target.name is None
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "deletecollection" if collection else "delete",
    }.get(method, method.lower())


def wants_table(request: web.Request) -> bool:
    """``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` first."""
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def table_version(request: web.Request) -> str:
    first = request.headers.get("Accept", "").split(",")[0]
    return "meta.k8s.io/v1beta1" if "v=v1beta1" in first else "meta.k8s.io/v1"


def as_table(rt: ResourceType, items: list[Obj], request: web.Request, metadata: Obj) -> Obj:
    from anywhere.apiserver import tables

    options: dict[str, Any] = {
        "include_object": request.query.get("includeObject", "Metadata"),
        "resource_version": metadata.get("resourceVersion", ""),
        "continue_token": metadata.get("continue"),
        "api_version": table_version(request),
    }
    for item in items:
        item.setdefault("apiVersion", rt.api_version)
        item.setdefault("kind", rt.kind)
    if rt.builtin:
        return tables.builtin_table(rt.kind, items, **options)
    version = {"additionalPrinterColumns": list(rt.printer_columns)}
    return tables.table(items, tables.columns_for_crd_version(version), **options)


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "33",
        "gitVersion": f"v1.33.0-anywhere.{__version__}",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise StatusError(400, f"invalid resource version {text!r}: must be a number") from None
    if value < 0:
        raise StatusError(400, f"invalid resource version {text!r}")
    return value


def int_param(text: str | None, name: str) -> int:
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise StatusError(400, f"invalid value for {name}: {text!r} is not a number") from None
    if value < 0:
        raise StatusError(400, f"invalid value for {name}: must not be negative")
    return value


def encode_continue(key: str, revision: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"v": 1, "rv": revision, "start": key})).decode()


def decode_continue(token: str | None) -> tuple[str, int]:
    if not token:
        return "", 0
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["start"]), int(data["rv"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise StatusError(
            400, "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        ) from None


def parse_body(raw: bytes, content_type: str) -> Obj:
    """A request body as an object: JSON, YAML or Kubernetes protobuf, as ``content_type`` says;
    a 415 for another type, a 400 for a body that does not parse or is not an object."""
    try:
        if content_type in ("application/json", "", "application/octet-stream"):
            body = orjson.loads(raw) if raw else None
        elif content_type == protobuf.CONTENT_TYPE:
            body = protobuf.decode_request(raw)
        elif content_type in ("application/yaml", "application/x-yaml"):
            body = yaml.safe_load(raw)
        else:
            raise StatusError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json, application/yaml, {protobuf.CONTENT_TYPE} (got {content_type})",
            )
    except (orjson.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise StatusError(
            400, f"the request body is not valid JSON or YAML: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(body, dict):
        raise StatusError(400, "the request body must be a JSON object")
    return body


def query_flag(value: str | None) -> bool:
    """A boolean query parameter as kube-apiserver reads it (Go's strconv.ParseBool true values):
    authorization and routing must agree on whether ``?watch=...`` is a watch."""
    return value in ("1", "t", "T", "true", "TRUE", "True")
