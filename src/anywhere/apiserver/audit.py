"""The audit log: kube-apiserver's ``--audit-policy-file`` and ``--audit-log-path``.

The policy is an ``audit.k8s.io/v1`` ``Policy`` (what an EKS Anywhere cluster's
``controlPlaneConfiguration.auditPolicyContent`` carries): rules matched in order by users,
userGroups, verbs, resources (group, resources incl. ``res/sub``, ``*/sub`` and ``res/*``,
resourceNames), namespaces and nonResourceURLs; the first match decides the level (None, Metadata,
Request, RequestResponse), the stages to omit and whether managedFields are left out. The log is one
``audit.k8s.io/v1`` ``Event`` per line, as Kubernetes writes it, so the same tools read both.

What we add on purpose: a Secret's ``data``/``stringData`` values (and the copy of them that
``kubectl apply`` keeps in the last-applied annotation), tokens in TokenReviews and TokenRequests,
and a failed Secret write's error messages (which may quote a rejected value) never reach the log,
whatever level the policy asks for. Request headers are never logged.

Writing never blocks the event loop: events go through a bounded queue to a writer task that
renders them (decoding, redacting and encoding request and response objects) and appends them in
batches, in a worker thread. When the queue is full the request waits for room (no event is
dropped); other requests keep being served.

Stages: a request's ``RequestReceived`` and ``ResponseComplete`` are written when it completes (the
user is known only after authentication, and both carry the received time); a watch writes
``RequestReceived`` and ``ResponseStarted`` when its stream starts, ``ResponseComplete`` when it
ends; a request refused by authentication is one ``ResponseStarted`` event with code 401 and the
methods that were tried, as Kubernetes logs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import yaml
from aiohttp import web

from anywhere.apiserver._configfile import ConfigFileError, list_field, load_document, only_fields, top_level
from anywhere.apiserver._http import USER_KEY, User
from anywhere.apiserver.rbac import Attributes, attributes_of

log = logging.getLogger("anywhere.apiserver.audit")

API_VERSION = "audit.k8s.io/v1"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
QUEUE_SIZE = 10_000
BATCH = 1_000
JSON_TYPES = frozenset(
    {
        "application/json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    }
)


class AuditConfigError(ConfigFileError):
    """The policy file (or log path) cannot be used; the message names the file, the field and the fix."""


# ---- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def matches(self, attrs: Attributes) -> bool:
        if self.group != attrs.api_group:
            return False
        if not self.resources:
            return True
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        for pattern in self.resources:
            if pattern in ("*", combined):
                return True
            if attrs.subresource and pattern == f"*/{attrs.subresource}":
                return True
            if pattern.endswith("/*") and pattern[:-2] == attrs.resource:
                return True
        return False


@dataclass(frozen=True)
class Rule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, attrs: Attributes) -> bool:
        user = attrs.user
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not set(user.groups) & set(self.user_groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            if not attrs.resource_request:
                return False
            if self.namespaces and attrs.namespace not in self.namespaces:
                return False  # "" names the cluster-scoped resources
            return not self.resources or any(gr.matches(attrs) for gr in self.resources)
        if self.non_resource_urls:
            return not attrs.resource_request and any(
                _path_matches(attrs.path, u) for u in self.non_resource_urls
            )
        return True


def _path_matches(path: str, spec: str) -> bool:
    return spec in ("*", path) or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


@dataclass(frozen=True)
class Decision:
    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def evaluate(self, attrs: Attributes) -> Decision:
        """The first matching rule decides; no match means level None."""
        for rule in self.rules:
            if rule.matches(attrs):
                omit = (
                    self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                )
                return Decision(rule.level, self.omit_stages | rule.omit_stages, omit)
        return Decision("None", self.omit_stages, self.omit_managed_fields)


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; :class:`AuditConfigError` says what is wrong and where."""
    return load_document(path, "audit policy", parse_policy, AuditConfigError)


def parse_policy(document: Any) -> Policy:
    """Validate an ``audit.k8s.io/v1`` ``Policy`` document (the text ``auditPolicyContent`` holds)."""
    document = top_level(
        document,
        API_VERSION,
        "Policy",
        {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"},
        AuditConfigError,
    )
    rules = list_field(document.get("rules"), "rules", AuditConfigError)
    if not rules:
        raise AuditConfigError("rules: a policy needs at least one rule")
    return Policy(
        tuple(_rule(rule, f"rules[{i}]") for i, rule in enumerate(rules)),
        _stages(document.get("omitStages"), "omitStages"),
        _bool(document.get("omitManagedFields"), "omitManagedFields") or False,
    )


def _rule(rule: Any, where: str) -> Rule:
    if not isinstance(rule, dict):
        raise AuditConfigError(f"{where}: must be an object with a level")
    only_fields(
        rule,
        {
            "level",
            "users",
            "userGroups",
            "verbs",
            "resources",
            "namespaces",
            "nonResourceURLs",
            "omitStages",
            "omitManagedFields",
        },
        where,
        AuditConfigError,
    )
    level = rule.get("level")
    if level not in LEVELS:
        raise AuditConfigError(f"{where}.level: {level!r} is not one of {', '.join(LEVELS)}")
    urls = _strings(rule.get("nonResourceURLs"), f"{where}.nonResourceURLs")
    for i, url in enumerate(urls):
        if url != "*" and not url.startswith("/"):
            raise AuditConfigError(f"{where}.nonResourceURLs[{i}]: {url!r} must begin with '/'")
        if "*" in url[:-1]:
            raise AuditConfigError(f"{where}.nonResourceURLs[{i}]: {url!r}: '*' may only end the URL")
    resources = tuple(
        _group_resources(gr, f"{where}.resources[{i}]")
        for i, gr in enumerate(list_field(rule.get("resources"), f"{where}.resources", AuditConfigError))
    )
    namespaces = _strings(rule.get("namespaces"), f"{where}.namespaces")
    if urls and (resources or namespaces):
        raise AuditConfigError(
            f"{where}.nonResourceURLs: rules cannot apply to both regular resources and non-resource URLs"
        )
    return Rule(
        level=level,
        users=_strings(rule.get("users"), f"{where}.users"),
        user_groups=_strings(rule.get("userGroups"), f"{where}.userGroups"),
        verbs=_strings(rule.get("verbs"), f"{where}.verbs"),
        resources=resources,
        namespaces=namespaces,
        non_resource_urls=urls,
        omit_stages=_stages(rule.get("omitStages"), f"{where}.omitStages"),
        omit_managed_fields=_bool(rule.get("omitManagedFields"), f"{where}.omitManagedFields"),
    )


def _group_resources(value: Any, where: str) -> GroupResources:
    if not isinstance(value, dict):
        raise AuditConfigError(f"{where}: must be an object with group, resources, resourceNames")
    only_fields(value, {"group", "resources", "resourceNames"}, where, AuditConfigError)
    group = value.get("group") or ""
    if not isinstance(group, str) or "/" in group:
        raise AuditConfigError(f"{where}.group: {group!r} is not an API group (a group has no version)")
    resources = _strings(value.get("resources"), f"{where}.resources")
    names = _strings(value.get("resourceNames"), f"{where}.resourceNames")
    if names and not resources:
        raise AuditConfigError(f"{where}.resourceNames: using resourceNames requires at least one resource")
    return GroupResources(group, resources, names)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = list_field(value, where, AuditConfigError)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise AuditConfigError(f"{where}[{i}]: must be a string")
    return tuple(items)


def _stages(value: Any, where: str) -> frozenset[str]:
    stages = _strings(value, where)
    for i, stage in enumerate(stages):
        if stage not in STAGES:
            raise AuditConfigError(f"{where}[{i}]: {stage!r}: allowed stages are {', '.join(STAGES)}")
    return frozenset(stages)


def _bool(value: Any, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise AuditConfigError(f"{where}: must be true or false")
    return value


# ---- what a request is about ---------------------------------------------------------------------


# A request that authentication refused has no user; policies match it as one with no name and no
# groups, and its events carry an empty user, as kube-apiserver's do.
NOBODY = User("")


def attributes(method: str, path: str, query: Mapping[str, str], user: User | None) -> Attributes:
    """The request as kube-apiserver's RequestInfo parses it (whether or not the resource exists),
    by the one parser authorization uses; ``user`` is ``None`` for a request refused by authentication."""
    return attributes_of(user or NOBODY, method, path, query)


# ---- keeping secrets out of the log ----------------------------------------------------------------


def _sensitive(attrs: Attributes) -> str | None:
    """What the request's objects carry that must not be logged."""
    if not attrs.resource_request:
        return None
    if attrs.api_group == "" and attrs.resource == "secrets":
        return "secret"
    if attrs.api_group == "authentication.k8s.io" and attrs.resource == "tokenreviews":
        return "tokenreview"
    if attrs.api_group == "" and attrs.resource == "serviceaccounts" and attrs.subresource == "token":
        return "tokenrequest"
    return None


def redact(obj: Any, sensitive: str | None) -> Any:
    """``obj`` with secret values replaced (in place; the caller owns it). Any Secret anywhere in it,
    and, for a request on a sensitive resource, the body whatever its shape (patches have no kind)."""
    if isinstance(obj, list):
        if sensitive == "secret":  # a JSON patch: every value it sets may be secret data
            for op in obj:
                if isinstance(op, dict) and "value" in op:
                    op["value"] = REDACTED
            return obj
        return [redact(item, None) for item in obj]
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("kind")
    if kind == "Status":
        if sensitive == "secret":  # a rejected value may be quoted in the message
            _withhold_messages(obj)
        return obj
    if kind == "Table":
        for row in obj.get("rows") or []:
            if isinstance(row, dict) and isinstance(row.get("object"), dict):
                redact(row["object"], sensitive)
        return obj
    if isinstance(obj.get("items"), list):
        for item in obj["items"]:
            redact(item, sensitive if kind != "List" else None)
        return obj
    if kind == "Secret" or sensitive == "secret":
        for field_name in ("data", "stringData"):
            values = obj.get(field_name)
            if isinstance(values, dict):
                obj[field_name] = dict.fromkeys(values, REDACTED)
            elif values is not None:
                obj[field_name] = REDACTED
        annotations = (obj.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            annotations[LAST_APPLIED] = REDACTED
    elif sensitive == "tokenreview" and isinstance(obj.get("spec"), dict) and "token" in obj["spec"]:
        obj["spec"]["token"] = REDACTED
    elif sensitive == "tokenrequest" and isinstance(obj.get("status"), dict) and "token" in obj["status"]:
        obj["status"]["token"] = REDACTED
    return obj


def _withhold_messages(status: dict[str, Any]) -> None:
    """A rejected body's messages (400, 422) may quote the value that was rejected: not in the log."""
    if status.get("code") not in (400, 422):
        return
    if status.get("message"):
        status["message"] = f"{REDACTED} (a failed Secret request's message may quote its data)"
    for cause in (status.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and "message" in cause:
            cause["message"] = REDACTED


def _without_managed_fields(obj: Any) -> Any:
    """``obj`` (and a list's items) without metadata.managedFields, in place."""
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        items = obj.get("items")
        if isinstance(items, list):
            for item in items:
                _without_managed_fields(item)
    return obj


# ---- the writer ------------------------------------------------------------------------------------

Render = Callable[[], bytes]  # makes one event's line; called in the writer's thread


class AuditLog:
    """JSON lines appended to a file (``-``: standard output) by a writer task, in batches, off the loop."""

    def __init__(self, path: str, *, queue_size: int = QUEUE_SIZE) -> None:
        self.path = path
        self._queue: asyncio.Queue[Render | None] = asyncio.Queue(queue_size)
        self._file: BinaryIO | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._file = await asyncio.to_thread(open_log, self.path)
        self._task = asyncio.create_task(self._drain(), name="audit-log")

    async def write(self, render: Render) -> None:
        """Queue one event (``render`` makes its line, in the writer's thread); waits (this request
        only) when the writer is behind by a whole queue."""
        try:
            self._queue.put_nowait(render)
        except asyncio.QueueFull:
            await self._queue.put(render)

    async def _drain(self) -> None:
        assert self._file is not None
        while True:
            first = await self._queue.get()
            batch = [] if first is None else [first]
            done = first is None
            while not done and len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    done = True
                else:
                    batch.append(item)
            if batch:
                try:
                    await asyncio.to_thread(_append, self._file, batch)
                except OSError as exc:
                    log.error("cannot write %d audit events to %s: %s", len(batch), self.path, exc)
            if done:
                return

    async def close(self) -> None:
        """Write what is queued, then close the file."""
        if self._task is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._file is not None and self._file is not sys.stdout.buffer:
            await asyncio.to_thread(self._file.close)
        self._file = None


def open_log(path: str) -> BinaryIO:
    """The log file opened for appending (created owner-only: the log says who did what)."""
    if path == "-":
        return sys.stdout.buffer
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise AuditConfigError(f"cannot open the audit log {path}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "ab", buffering=0)


def _append(file: BinaryIO, batch: list[Render]) -> None:
    lines = []
    for render in batch:
        try:
            lines.append(render())
        except Exception:  # one event that cannot be rendered must not cost the others
            log.exception("cannot render an audit event")
    file.write(b"".join(lines))
    file.flush()


# ---- the auditor -----------------------------------------------------------------------------------


@dataclass
class _Pending:
    """One request's audit state between its arrival and its last stage."""

    audit_id: str
    received: str
    decision: Decision | None = None
    attrs: Attributes | None = None
    emitted: set[str] = field(default_factory=set)


_PENDING: web.RequestKey[_Pending] = web.RequestKey("audit", _Pending)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Auditor:
    """Applies a policy to every request and writes the events; :meth:`install` hooks it into an app."""

    def __init__(self, policy: Policy, log_path: str) -> None:
        self.policy = policy
        self.log = AuditLog(log_path)

    async def start(self) -> None:
        await self.log.start()

    async def close(self) -> None:
        await self.log.close()

    def install(self, app: web.Application) -> None:
        """Outermost middleware (it sees the final status of every request, errors included) and a
        response-prepare hook (the Audit-Id header; a watch's first stages when its stream starts)."""
        app.middlewares.insert(0, self._middleware)
        app.on_response_prepare.append(self._on_prepare)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        pending = _Pending(str(uuid.uuid4()), _now())
        request[_PENDING] = pending
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a redirect or an aiohttp-level refusal: log its code, pass it on
            await self._complete(request, pending, exc.status, None)
            raise
        await self._complete(request, pending, response.status, response)
        return response

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        pending = request.get(_PENDING)
        if pending is None:
            return
        response.headers["Audit-Id"] = pending.audit_id
        if isinstance(response, web.Response) or response.status >= 300:
            return  # not a stream: everything is written when the request completes
        _, decision = self._decide(request, pending)
        if decision.level != "None":
            for stage in ("RequestReceived", "ResponseStarted"):
                await self._emit(request, pending, stage, response.status, None)

    def _decide(self, request: web.Request, pending: _Pending) -> tuple[Attributes, Decision]:
        if pending.attrs is None or pending.decision is None:
            pending.attrs = attributes(request.method, request.path, request.query, request.get(USER_KEY))
            pending.decision = self.policy.evaluate(pending.attrs)
        return pending.attrs, pending.decision

    async def _complete(
        self, request: web.Request, pending: _Pending, code: int, response: web.StreamResponse | None
    ) -> None:
        _, decision = self._decide(request, pending)
        if decision.level == "None":
            return
        if code == 401 and request.get(USER_KEY) is None:
            await self._emit(request, pending, "ResponseStarted", code, response)
            return
        await self._emit(request, pending, "RequestReceived", code, None)
        await self._emit(request, pending, "ResponseComplete", code, response)

    async def _emit(
        self,
        request: web.Request,
        pending: _Pending,
        stage: str,
        code: int,
        response: web.StreamResponse | None,
    ) -> None:
        attrs, decision = self._decide(request, pending)
        if stage in decision.omit_stages or stage in pending.emitted:
            return
        pending.emitted.add(stage)
        user = attrs.user
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": API_VERSION,
            "level": decision.level,
            "auditID": pending.audit_id,
            "stage": stage,
            "requestURI": request.raw_path,
            "verb": attrs.verb,
            "user": {"username": user.name, "groups": list(user.groups)} if user is not NOBODY else {},
            "sourceIPs": [request.remote] if request.remote else [],
        }
        agent = request.headers.get("User-Agent")
        if agent:
            event["userAgent"] = agent
        if attrs.resource_request:
            ref = {
                "resource": attrs.resource,
                "namespace": attrs.namespace,
                "name": attrs.name,
                "apiGroup": attrs.api_group,
                "apiVersion": attrs.api_version,
                "subresource": attrs.subresource,
            }
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        sensitive = _sensitive(attrs)
        if stage != "RequestReceived":
            event["responseStatus"] = self._response_status(request, code, response, sensitive)
        request_raw: tuple[bytes, str] | None = None
        response_raw: bytes | None = None
        if stage == "ResponseComplete" and decision.level in ("Request", "RequestResponse"):
            request_raw = await self._request_body(request, code)
        if stage == "ResponseComplete" and decision.level == "RequestResponse":
            response_raw = _json_bytes(response)
        stamps = (pending.received, pending.received if stage == "RequestReceived" else _now())

        def render() -> bytes:
            """The line, made in the writer's thread: decoding, redacting and encoding whole objects
            (a list of thousands at RequestResponse) is work the event loop should not wait for."""
            if request_raw is not None:
                body = _decode_request(*request_raw)
                if body is not None:
                    event["requestObject"] = _prepare(body, sensitive, decision.omit_managed_fields)
            if response_raw is not None:
                with contextlib.suppress(orjson.JSONDecodeError):
                    body = orjson.loads(response_raw)
                    event["responseObject"] = _prepare(body, sensitive, decision.omit_managed_fields)
            event["requestReceivedTimestamp"], event["stageTimestamp"] = stamps
            return orjson.dumps(event) + b"\n"

        await self.log.write(render)

    def _response_status(
        self, request: web.Request, code: int, response: web.StreamResponse | None, sensitive: str | None
    ) -> dict[str, Any]:
        status: dict[str, Any] = {"metadata": {}, "code": code}
        if code < 400:
            return status
        status["status"] = "Failure"
        if code == 401 and request.get(USER_KEY) is None:
            status["message"] = _auth_methods(request)
            status["reason"] = "Unauthorized"
            return status
        body = _json_body(response)
        if isinstance(body, dict) and body.get("kind") == "Status":
            if sensitive == "secret":
                _withhold_messages(body)
            for name in ("message", "reason"):
                if body.get(name):
                    status[name] = body[name]
        return status

    async def _request_body(self, request: web.Request, code: int) -> tuple[bytes, str] | None:
        """The request's body and its type, once the server accepted to read it (not 401/403/413)."""
        if request.method not in ("POST", "PUT", "PATCH", "DELETE") or not request.body_exists:
            return None
        if code in (401, 403, 413):
            return None
        try:
            raw = await request.read()  # aiohttp keeps the body the handler read
        except Exception:  # a body the server could not read: the event still says what happened
            return None
        return (raw, request.content_type) if raw else None


def _decode_request(raw: bytes, content_type: str) -> Any:
    """A request body as an object (JSON, YAML or Kubernetes protobuf), or None."""
    try:
        if content_type in JSON_TYPES or content_type in ("", "application/octet-stream"):
            return orjson.loads(raw)
        if content_type in ("application/yaml", "application/x-yaml", "application/apply-patch+yaml"):
            return yaml.safe_load(raw)
        from anywhere.apiserver import protobuf

        if content_type == protobuf.CONTENT_TYPE:
            return protobuf.decode_request(raw)
    except Exception:  # a body the server refused as malformed
        return None
    return None


def _prepare(body: Any, sensitive: str | None, omit_managed_fields: bool) -> Any:
    body = redact(body, sensitive)
    return _without_managed_fields(body) if omit_managed_fields else body


def _json_bytes(response: web.StreamResponse | None) -> bytes | None:
    """A response's JSON body as sent (immutable bytes, safe to decode in another thread)."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return None
    body = response.body
    if isinstance(body, bytearray):
        return bytes(body) or None
    return body if isinstance(body, bytes) and body else None


def _json_body(response: web.StreamResponse | None) -> Any:
    raw = _json_bytes(response)
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _auth_methods(request: web.Request) -> str:
    """Which credentials a refused request presented (their kinds, never their values)."""
    methods = []
    parts = request.headers.get("Authorization", "").strip().split(" ")
    if len(parts) > 1 and parts[0].lower() == "bearer":
        methods.append("bearer")
    transport = request.transport
    if transport is not None and transport.get_extra_info("peercert"):
        methods.append("x509")
    if methods:
        return "Authentication failed, attempted: " + ", ".join(methods)
    return "Authentication failed, no credentials provided"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
