"""The HTTP front of the API server: routing, discovery, and the REST verbs over storage.

Every request is authenticated, then routed by path the way kube-apiserver lays out its API:
``/api/v1/...`` for the core group, ``/apis/{group}/{version}/...`` for the others, with
``namespaces/{ns}/`` for namespaced resources and ``/{name}/{subresource}`` below an object.
Handlers are generic over :class:`ResourceType`; what differs per kind lives in the type table,
the CRD schema, or the anywhere admission.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import yaml
from aiohttp import web

from anywhere.apiserver import admission, fieldmanager, metrics, openapi, structural
from anywhere.apiserver import crd as crd_admission
from anywhere.apiserver._http import (
    USER_KEY,
    VERB_KEY,
    WARNINGS_KEY,
    StaleWrite,
    Target,
    User,
    as_table,
    decode_continue,
    encode_continue,
    int_param,
    json_response,
    parse_body,
    parse_rv,
    query_flag,
    report_unknown_fields,
    selection,
    stale,
    status_response,
    verb,
    version_info,
    wants_table,
)
from anywhere.apiserver._jsonvalues import copy_json
from anywhere.apiserver._views import View
from anywhere.apiserver.audit import Auditor
from anywhere.apiserver.authapi import Access
from anywhere.apiserver.errors import StatusError, already_exists, conflict, invalid, not_found
from anywhere.apiserver.lifecycle import Lifecycle
from anywhere.apiserver.objects import (
    Obj,
    carry_system_fields,
    decode,
    encode,
    now,
    prepare_create,
    stored,
    with_version,
)
from anywhere.apiserver.resources import CRD_TYPE, NAMESPACE_TYPE, WORKLOAD_SCALE, Registry, ResourceType
from anywhere.storage import (
    Compacted,
    Conflict,
    KeyExists,
    KeyNotFound,
    Record,
    Storage,
    Unavailable,
    ValueTooLarge,
    Watch,
)

log = logging.getLogger("anywhere.apiserver")

MAX_BODY_BYTES = 3 * 1024 * 1024
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
BOOKMARK_INTERVAL = 5.0
WATCH_CACHE_SIZE = 4096
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
APPLY_PATCH = "application/apply-patch+yaml"
Authenticator = Callable[[web.Request], Awaitable["User | None"]]


class APIServer:
    """One API server over one :class:`Storage`. Several may share a store (see the etcd backend)."""

    def __init__(
        self,
        storage: Storage,
        authenticate: Authenticator,
        *,
        install_crds: bool = True,
        auditor: Auditor | None = None,
        access: Access | None = None,
    ) -> None:
        self.storage = storage
        self.access = access  # RBAC and the access APIs; None: every authenticated user may do anything
        self.auditor = auditor  # writes the audit log, when a policy asks for one
        # A management API serves the anywhere and Cluster API kinds; a workload cluster's API does not.
        self.install_crds = install_crds
        self.registry = Registry()
        self._authenticate = authenticate
        self._tasks: list[asyncio.Task[None]] = []
        self._namespaces: dict[str, bool] = {}  # name -> terminating; followed from storage
        # What every request consults, kept in memory: the served CRDs, and the namespaces.
        self._views = (
            View(self.storage, CRD_TYPE.storage_prefix(), _by_name(self.registry.set_crd)),
            View(self.storage, NAMESPACE_TYPE.storage_prefix(), _by_name(self._set_namespace)),
        )
        self._streams: set[Watch] = set()  # open watches, ended on stop
        self.metrics = metrics.Metrics(lambda: len(self._streams))
        self._watch_cache: collections.OrderedDict[tuple[int, str], tuple[Obj, bytes]] = (
            collections.OrderedDict()
        )
        self._ready = asyncio.Event()
        self.started = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Install our CRDs, serve every stored CRD and follow their changes, make the default namespaces."""
        if self.install_crds:
            await self._install_crds()
        for view in self._views:
            await view.start()
        self._tasks.append(asyncio.create_task(Lifecycle(self).run()))
        for name in DEFAULT_NAMESPACES:
            with contextlib.suppress(KeyExists):
                namespace = prepare_create(
                    NAMESPACE_TYPE,
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    None,
                )
                namespace["spec"] = {"finalizers": ["kubernetes"]}
                namespace["status"] = {"phase": "Active"}
                await self.storage.create(NAMESPACE_TYPE.storage_key(None, name), stored(namespace))
        await asyncio.to_thread(openapi.v3_discovery, self.registry)  # the first build imports a lot
        self._ready.set()

    async def _install_crds(self) -> None:
        """The CRDs of the anywhere kinds, created or brought up to this version's schemas."""
        from anywhere.api.crds import all_crds, capi_crds

        for definition in [*all_crds(), *capi_crds()]:
            name = definition["metadata"]["name"]
            key = CRD_TYPE.storage_key(None, name)
            record = await self.storage.get(key)
            if record is None:
                obj = crd_admission.admit(prepare_create(CRD_TYPE, definition, None))
                with contextlib.suppress(KeyExists):  # another replica was first
                    await self.storage.create(key, stored(obj))
                continue
            current = decode(record.value)
            wanted = crd_admission.admit(copy_json(definition))["spec"]  # names defaulted as stored
            if current.get("spec") != wanted:
                current["spec"] = wanted
                current = crd_admission.admit(current)  # status keeps the stored versions it had
                current["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
                with contextlib.suppress(Conflict):
                    await self.storage.update(key, stored(current), expected_rv=record.mod_rv)

    def _set_namespace(self, name: str, namespace: Obj | None) -> None:
        if namespace is None:
            self._namespaces.pop(name, None)
        else:
            self._namespaces[name] = bool((namespace.get("metadata") or {}).get("deletionTimestamp"))

    async def stop(self) -> None:
        """End every watch (their clients re-watch elsewhere) and the background tasks."""
        for stream in tuple(self._streams):
            stream.close()
        for view in self._views:
            await view.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def app(self) -> web.Application:
        application = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._errors])
        if self.auditor is not None:
            self.auditor.install(application)
        application.router.add_route("*", "/{tail:.*}", self._dispatch)
        return application

    # ---- middleware and routing ---------------------------------------------------------------

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        response = await self._handle_errors(request, handler)
        for warning in request.get(WARNINGS_KEY, []):
            if not response.prepared:
                response.headers.add("Warning", '299 - "' + warning.replace('"', '\\"') + '"')
        self.metrics.observe(request.get(VERB_KEY), response.status, time.perf_counter() - started)
        return response

    async def _handle_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as error:
            return status_response(error)
        except web.HTTPRequestEntityTooLarge:
            return status_response(
                StatusError(413, f"request body too large; the limit is {MAX_BODY_BYTES} bytes")
            )
        except Unavailable as exc:
            return status_response(StatusError(503, f"storage unavailable: {exc}"))
        except ValueTooLarge as exc:  # as kube-apiserver answers etcd's "request is too large"
            return status_response(StatusError(413, f"Request entity too large: {exc}"))
        except (asyncio.CancelledError, ConnectionResetError, web.HTTPException):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            return status_response(StatusError(500, "an internal error occurred; see the server log"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            ready = self._ready.is_set() or path == "/livez"
            return web.Response(text="ok" if ready else "not ready", status=200 if ready else 503)
        user = await self._authenticate(request)
        if user is None:
            raise StatusError(401, "Unauthorized")
        request[USER_KEY] = user
        if self.access is not None:
            self.access.authorize(request, user)  # 403 unless RBAC allows it
            if (answered := await self.access.serve(request)) is not None:
                return answered
        if path == "/version":
            return json_response(version_info())
        if path == "/metrics":
            return web.Response(body=self.metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "openapi":
            return self._openapi(request, parts[1:])
        if not parts:
            return json_response(
                {
                    "paths": sorted(
                        [
                            "/api",
                            "/api/v1",
                            "/apis",
                            "/healthz",
                            "/livez",
                            "/readyz",
                            "/version",
                            *(f"/apis/{g}/{v}" for g, vs in self.registry.groups().items() if g for v in vs),
                        ]
                    )
                }
            )
        if parts[0] == "api":
            if len(parts) == 1:
                return json_response(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}
                        ],
                    }
                )
            return await self._group_version(request, "", parts[1], parts[2:])
        if parts[0] == "apis":
            if len(parts) == 1:
                return json_response(self._group_list())
            if len(parts) == 2:
                group = self._group(parts[1])
                if group is None:
                    raise StatusError(
                        404, f"the server could not find the requested resource (group {parts[1]})"
                    )
                return json_response(group)
            return await self._group_version(request, parts[1], parts[2], parts[3:])
        raise StatusError(404, "the server could not find the requested resource")

    # ---- OpenAPI -----------------------------------------------------------------------------

    def _openapi(self, request: web.Request, rest: list[str]) -> web.Response:
        """OpenAPI v3 per group-version (what kubectl validates and explains with), and v2 as JSON."""
        if rest == ["v2"]:
            accept = request.headers.get("Accept", "*/*")
            if "application/json" not in accept and "*/*" not in accept:
                raise StatusError(406, "only application/json is served for /openapi/v2; use /openapi/v3")
            return json_response(openapi.v2_document(self.registry))
        if not rest or rest[0] != "v3":
            raise StatusError(404, "the server could not find the requested resource")
        if len(rest) == 1:
            return json_response(openapi.v3_discovery(self.registry))
        if rest[1] == "api" and len(rest) == 3:
            group, version = "", rest[2]
        elif rest[1] == "apis" and len(rest) == 4:
            group, version = rest[2], rest[3]
        else:
            raise StatusError(404, "the server could not find the requested resource")
        document = openapi.v3_document(self.registry, group, version)
        current = openapi.v3_document_hash(self.registry, group, version)
        if document is None or current is None:
            raise StatusError(404, "the server could not find the requested resource")
        requested = request.query.get("hash")
        if requested and requested != current:
            raise web.HTTPMovedPermanently(f"{request.path}?hash={current}")
        response = json_response(document)
        if requested:
            response.headers["Cache-Control"] = "public, immutable"
            response.headers["Expires"] = "Fri, 01 Jan 2100 00:00:00 GMT"
            response.headers["ETag"] = f'"{current}"'
            response.headers["Vary"] = "Accept"
        return response

    # ---- discovery ---------------------------------------------------------------------------

    def _group(self, name: str) -> dict[str, Any] | None:
        versions = self.registry.groups().get(name)
        if not versions:
            return None
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def _group_list(self) -> dict[str, Any]:
        groups = [g for name in self.registry.groups() if name and (g := self._group(name))]
        for group in groups:
            del group["kind"], group["apiVersion"]
        if self.access is not None:
            groups.extend(self.access.groups())
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for rt in self.registry.in_group_version(group, version):
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in sorted(rt.subresources):
                resources.append(
                    {
                        "name": f"{rt.plural}/{sub}",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind if sub != "scale" else "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    async def _group_version(
        self, request: web.Request, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        if not any(True for _ in self.registry.in_group_version(group, version)):
            raise StatusError(404, "the server could not find the requested resource")
        if not rest:
            return json_response(self._resource_list(group, version))
        target = self._target(group, version, rest)
        return await self._serve(request, target)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and rest[2] in NAMESPACE_TYPE.subresources)
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise StatusError(404, "the server could not find the requested resource")
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None:
            raise StatusError(404, "the server could not find the requested resource")
        if namespace is not None and not rt.namespaced:
            raise StatusError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rt.subresources:
            raise StatusError(404, "the server could not find the requested resource")
        return Target(rt, namespace, name, sub)

    # ---- verbs -------------------------------------------------------------------------------

    async def _serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        query = request.query
        request[VERB_KEY] = (verb(method, target, query_flag(query.get("watch"))), target.rt.qualified)
        if target.subresource == "scale":
            return json_response(await self._scale(request, target))
        if target.name is None:
            if method == "GET":
                if query_flag(query.get("watch")):
                    return await self.watch(request, target)
                return json_response(await self.list(request, target))
            if method == "POST":
                return json_response(*await self.create(request, target))
            if method == "DELETE":
                return json_response(await self.delete_collection(request, target))
            raise StatusError(405, f"method {method} is not allowed on a collection")
        if method == "GET":
            return json_response(await self.get(target, request))
        if method == "PUT":
            return json_response(*await self.update(request, target))
        if method == "PATCH":
            return json_response(*await self.patch(request, target))
        if method == "DELETE":
            return json_response(*await self.delete(request, target))
        raise StatusError(405, f"method {method} is not allowed")

    async def _read(self, target: Target) -> tuple[Obj, Record]:
        assert target.name is not None
        record = await self.storage.get(target.rt.storage_key(target.namespace, target.name))
        if record is None:
            raise not_found(target.rt.group, target.rt.plural, target.name)
        return self._present(target.rt, record.value, record.mod_rv), record

    def _watch_object(self, rt: ResourceType, value: bytes, rv: int) -> tuple[Obj, bytes]:
        """An event's object, decoded and encoded once however many watchers send it (read-only)."""
        key = (rv, rt.api_version)
        cached = self._watch_cache.get(key)
        if cached is None:
            obj = self._present(rt, value, rv)
            cached = (obj, orjson.dumps(obj))
            self._watch_cache[key] = cached
            if len(self._watch_cache) > WATCH_CACHE_SIZE:
                self._watch_cache.popitem(last=False)
        return cached

    def _present(self, rt: ResourceType, value: bytes, rv: int) -> Obj:
        obj = with_version(decode(value), rv)
        if not rt.builtin:
            obj["apiVersion"] = rt.api_version
        return obj

    async def get(self, target: Target, request: web.Request | None = None) -> Obj:
        obj, _ = await self._read(target)
        if request is not None and wants_table(request):
            return as_table(
                target.rt, [obj], request, {"resourceVersion": obj["metadata"]["resourceVersion"]}
            )
        return obj

    async def _body(self, request: web.Request, rt: ResourceType) -> Obj:
        return parse_body(await request.read(), request.content_type)

    def _check_kind(self, rt: ResourceType, obj: Obj) -> None:
        """Type fields may be left out (the URL says them); when given they must agree with it."""
        api_version = obj.setdefault("apiVersion", rt.api_version)
        kind = obj.setdefault("kind", rt.kind)
        if kind != rt.kind:
            raise StatusError(
                400, f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        if api_version != rt.api_version and not (
            not rt.builtin and api_version in {f"{rt.group}/{v}" for v in rt.served_versions}
        ):
            raise StatusError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API version ({rt.api_version})",
            )

    async def _namespace_open(self, rt: ResourceType, namespace: str | None) -> None:
        """The namespace exists and is not terminating (from memory; storage if just created)."""
        if not rt.namespaced:
            return
        terminating = self._namespaces.get(namespace or "")
        if terminating is None:
            record = await self.storage.get(NAMESPACE_TYPE.storage_key(None, namespace or ""))
            if record is None:
                raise not_found("", "namespaces", namespace or "")
            terminating = bool((decode(record.value).get("metadata") or {}).get("deletionTimestamp"))
        if terminating:
            raise StatusError(
                403,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                reason="Forbidden",
            )

    def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None, request: web.Request) -> Obj:
        """Unknown fields (per ``fieldValidation``), schema defaults and checks, then kind admission."""
        schema = (
            rt.schema
            if rt.schema is not None
            else openapi.builtin_structural_schema(rt.group, rt.version, rt.kind)
        )
        if schema is not None:
            # One pruning pass serves both fieldValidation and the schema's own pruning.
            obj, unknown = structural.prune_with_paths(obj, schema)
            if unknown:
                report_unknown_fields(request, rt, unknown)
            if rt.schema is not None:  # a CRD's defaults apply after pruning, before validation
                obj = structural.apply_defaults(obj, schema)
            causes = structural.validate(obj, schema)
            if causes:  # for a built-in kind: the types and formats of known fields
                raise invalid(rt.kind, rt.group, str(obj.get("metadata", {}).get("name", "")), causes)
        if admission.applies_to(rt.group):
            obj = admission.admit(obj, old)
        if rt.group == crd_admission.GROUP and rt.kind == "CustomResourceDefinition":
            obj = crd_admission.admit(obj)
        return obj

    async def create(self, request: web.Request, target: Target) -> tuple[Obj, int]:
        obj = await self._body(request, target.rt)
        self._check_kind(target.rt, obj)
        return await self._create_object(request, target, obj, managed=False)

    async def _create_object(
        self, request: web.Request, target: Target, obj: Obj, *, managed: bool
    ) -> tuple[Obj, int]:
        """Store a new object; ``managed`` when its managedFields are already set (server-side apply)."""
        rt = target.rt
        namespace = target.namespace
        body_namespace = (obj.get("metadata") or {}).get("namespace")
        if rt.namespaced:
            if body_namespace and namespace and body_namespace != namespace:
                raise StatusError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or body_namespace or "default"
        await self._namespace_open(rt, namespace)
        obj = prepare_create(rt, obj, namespace)
        if rt.kind == "Namespace" and rt.group == "":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        obj = self._admit(rt, obj, None, request)
        if not managed:
            obj = self._manage(request, rt, None, obj, verb="create", subresource=None)
        name = obj["metadata"]["name"]
        if request.query.get("dryRun") == "All":
            return obj, 201
        try:
            record = await self.storage.create(rt.storage_key(namespace, name), stored(obj))
        except KeyExists:
            raise already_exists(rt.group, rt.plural, name) from None
        return with_version(obj, record.mod_rv), 201

    async def update(self, request: web.Request, target: Target) -> tuple[Obj, int]:
        rt = target.rt
        obj = await self._body(request, rt)
        self._check_kind(rt, obj)
        name = target.name or ""
        body_name = (obj.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise StatusError(400, "the name of the object does not match the name on the URL")
        rv_text = (obj.get("metadata") or {}).get("resourceVersion")
        old, record = await self._read(target)
        expected = parse_rv(rv_text) if rv_text else None
        if expected is None and not rt.builtin:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    {
                        "type": "FieldValueInvalid",
                        "field": "metadata.resourceVersion",
                        "message": "Invalid value: 0x0: must be specified for an update",
                    }
                ],
            )
        return await self._replace(
            request, target, old, obj, expected if expected is not None else record.mod_rv
        )

    async def _replace(
        self,
        request: web.Request,
        target: Target,
        old: Obj,
        new: Obj,
        expected_rv: int,
        *,
        verb: str = "update",
        managed: bool = False,
    ) -> tuple[Obj, int]:
        """Write ``new`` over ``old`` (read at ``expected_rv``), as the object or its status subresource.

        ``managed`` when ``new`` already carries its managedFields (server-side apply computed them).
        """
        rt = target.rt
        name = target.name or ""
        new.setdefault("metadata", {})
        if target.subresource == "status":
            merged = dict(old)
            merged["status"] = new.get("status")
            if merged["status"] is None:
                merged.pop("status")
            new = merged
        elif "status" in rt.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        carry_system_fields(old, new)
        if target.subresource != "status":
            new = self._admit(rt, new, old, request)
        if not managed:
            new = self._manage(request, rt, old, new, verb=verb, subresource=target.subresource)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return await self._remove(target, expected_rv)
        if request.query.get("dryRun") == "All":
            return new, 200
        try:
            record = await self.storage.update(
                rt.storage_key(target.namespace, name), stored(new), expected_rv=expected_rv
            )
        except Conflict:
            raise stale(rt, name) from None
        except KeyNotFound:
            raise not_found(rt.group, rt.plural, name) from None
        return self._present(rt, record.value, record.mod_rv), 200

    async def patch(self, request: web.Request, target: Target) -> tuple[Obj, int]:
        from anywhere.apiserver import patch as patching

        raw = await request.read()
        if request.content_type == APPLY_PATCH:
            return await self._apply(request, target, raw)
        if request.query.get("force"):
            raise StatusError(
                422, "force: Forbidden: may not be specified for non-apply patch", reason="Invalid"
            )
        for _ in range(5):
            old, record = await self._read(target)
            patched = patching.apply_patch(request.content_type, old, raw, target.rt.kind, target.rt.builtin)
            if not isinstance(patched, dict):
                raise StatusError(422, "the patch did not produce an object")
            # A resourceVersion the patch itself sets is a precondition; otherwise a conflict with a
            # concurrent writer is retried on the fresh object, as kube-apiserver does for patches.
            wanted = (patched.get("metadata") or {}).get("resourceVersion")
            if wanted == old["metadata"]["resourceVersion"]:
                wanted = None
            expected = parse_rv(wanted) if wanted else record.mod_rv
            try:
                return await self._replace(request, target, old, patched, expected, verb="patch")
            except StaleWrite:
                if wanted:
                    raise
        raise conflict(
            target.rt.group, target.rt.plural, target.name or "", "too many concurrent changes; try again"
        )

    async def _apply(self, request: web.Request, target: Target, raw: bytes) -> tuple[Obj, int]:
        """Server-side apply: merge the applied configuration, track field ownership, refuse conflicts."""
        rt = target.rt
        try:
            applied = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as exc:
            raise StatusError(
                400, f"the applied configuration is not valid YAML: {str(exc).splitlines()[0]}"
            ) from None
        if not isinstance(applied, dict):
            raise StatusError(400, "the applied configuration must be an object")
        manager = fieldmanager.manager_name(
            request.query.get("fieldManager"), request.headers.get("User-Agent"), verb="apply"
        )
        force = request.query.get("force") in ("true", "1")
        ignored = fieldmanager.ignored_fields(
            has_status_subresource="status" in rt.subresources, subresource=target.subresource
        )

        def merge(live: Obj | None) -> Obj:
            return fieldmanager.apply(
                live,
                applied,
                manager=manager,
                force=force,
                api_version=rt.api_version,
                semantics=self._semantics(rt),
                now=now(),
                subresource=target.subresource or "",
                ignored=ignored,
            )

        for _ in range(5):
            try:
                old, record = await self._read(target)
            except StatusError as error:
                if error.code != 404 or target.subresource:
                    raise
                created = merge(None)
                created.setdefault("metadata", {})["name"] = target.name
                self._check_kind(rt, created)
                return await self._create_object(request, target, created, managed=True)
            merged = merge(old)
            try:
                return await self._replace(
                    request, target, old, merged, record.mod_rv, verb="apply", managed=True
                )
            except StaleWrite:
                continue
        raise conflict(rt.group, rt.plural, target.name or "", "too many concurrent changes; try again")

    def _semantics(self, rt: ResourceType) -> fieldmanager.Semantics:
        return fieldmanager.semantics_for(rt.kind, rt.builtin, rt.schema)

    def _manage(
        self,
        request: web.Request,
        rt: ResourceType,
        old: Obj | None,
        new: Obj,
        *,
        verb: str,
        subresource: str | None,
    ) -> Obj:
        """Record which manager changed which fields (metadata.managedFields), as every write does."""
        sent = fieldmanager.strip_managed_fields_on_input(new)
        if sent is not None:
            new.setdefault("metadata", {})["managedFields"] = sent
            if not sent:
                new["metadata"].pop("managedFields", None)
            return new
        if old is not None and "managedFields" in (old.get("metadata") or {}):
            new["metadata"]["managedFields"] = old["metadata"]["managedFields"]
        manager = fieldmanager.manager_name(
            request.query.get("fieldManager"), request.headers.get("User-Agent"), verb=verb
        )
        return fieldmanager.update(
            old,
            new,
            manager=manager,
            api_version=rt.api_version,
            semantics=self._semantics(rt),
            now=now(),
            subresource=subresource or "",
            ignored=fieldmanager.ignored_fields(
                has_status_subresource="status" in rt.subresources, subresource=subresource
            ),
        )

    async def _scale(self, request: web.Request, target: Target) -> Obj:
        """The ``autoscaling/v1`` Scale view of an object: read it, or set its desired replicas.

        A patch, or a PUT without a resourceVersion, applies to whatever is current: a concurrent
        write to the object is retried here (as kube-apiserver does), not returned as a conflict."""
        rt = target.rt
        paths = rt.scale_paths or WORKLOAD_SCALE
        whole = Target(rt, target.namespace, target.name, None)
        obj, record = await self._read(whole)
        if request.method == "GET":
            return _scale_of(obj, paths)
        if request.method not in ("PUT", "PATCH"):
            raise StatusError(405, f"method {request.method} is not allowed on the scale subresource")
        raw = await request.read()
        put_body = (
            (await self._body(request, rt) if not raw else decode(raw)) if request.method == "PUT" else None
        )
        pinned = bool(((put_body or {}).get("metadata") or {}).get("resourceVersion"))
        for _ in range(5):
            current = _scale_of(obj, paths)
            if put_body is not None:
                wanted = put_body
            else:
                from anywhere.apiserver import patch as patching

                wanted = patching.apply_patch(request.content_type, current, raw, "Scale", True)
            replicas = (wanted.get("spec") or {}).get("replicas") if isinstance(wanted, dict) else None
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise invalid(
                    "Scale",
                    "autoscaling",
                    target.name or "",
                    [
                        {
                            "type": "FieldValueInvalid",
                            "field": "spec.replicas",
                            "message": "must be a whole number of 0 or more",
                        }
                    ],
                )
            updated = decode(encode(obj))
            _set_path(updated, paths[0], replicas)
            try:
                result, _ = await self._replace(request, whole, obj, updated, record.mod_rv, verb="update")
            except StaleWrite:
                if pinned:
                    raise
                obj, record = await self._read(whole)
                continue
            return _scale_of(result, paths)
        raise conflict(rt.group, rt.plural, target.name or "", "too many concurrent changes; try again")

    async def delete(self, request: web.Request, target: Target) -> tuple[Obj, int]:
        options = await self._delete_options(request)
        precondition = (options.get("preconditions") or {}).get("resourceVersion")
        return await self.delete_object(
            target,
            policy=request.query.get("propagationPolicy") or options.get("propagationPolicy") or "Background",
            precondition_rv=parse_rv(precondition) if precondition else None,
            dry_run=request.query.get("dryRun") == "All" or options.get("dryRun") == ["All"],
        )

    async def delete_object(
        self,
        target: Target,
        *,
        policy: str = "Background",
        precondition_rv: int | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, int]:
        """Delete now, or mark for deletion while finalizers (including the GC's) still hold it.

        A concurrent write between our read and our write is retried on the fresh object, as
        kube-apiserver does; only a caller's own resourceVersion precondition makes it a 409.
        """
        for _ in range(5):
            try:
                return await self._delete_once(target, policy, precondition_rv, dry_run)
            except StaleWrite:
                if precondition_rv is not None:
                    raise
        raise conflict(
            target.rt.group, target.rt.plural, target.name or "", "too many concurrent changes; try again"
        )

    async def _delete_once(
        self, target: Target, policy: str, precondition_rv: int | None, dry_run: bool
    ) -> tuple[Obj, int]:
        rt = target.rt
        if policy not in ("Background", "Foreground", "Orphan"):
            raise StatusError(
                400, f"propagationPolicy {policy!r} is not one of Background, Foreground, Orphan"
            )
        old, record = await self._read(target)
        meta = old["metadata"]
        if precondition_rv is not None and precondition_rv != record.mod_rv:
            raise conflict(
                rt.group, rt.plural, target.name or "", "the precondition on resourceVersion does not hold"
            )
        if dry_run:
            return old, 200
        finalizers = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
        is_namespace = rt.kind == "Namespace" and rt.group == ""
        is_crd = rt is CRD_TYPE or (rt.group, rt.plural) == (CRD_TYPE.group, CRD_TYPE.plural)
        if is_crd and CRD_CLEANUP_FINALIZER not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append(CRD_CLEANUP_FINALIZER)
        spec_finalizers = is_namespace and bool((old.get("spec") or {}).get("finalizers"))
        if not finalizers and not spec_finalizers:
            return await self._remove(target, record.mod_rv)
        if meta.get("deletionTimestamp"):
            return old, 200
        meta["deletionTimestamp"] = now()
        meta["deletionGracePeriodSeconds"] = 0
        meta["finalizers"] = finalizers
        if is_namespace:
            old.setdefault("status", {})["phase"] = "Terminating"
        try:
            updated = await self.storage.update(record.key, stored(old), expected_rv=record.mod_rv)
        except Conflict:
            raise stale(rt, target.name or "") from None
        return self._present(rt, updated.value, updated.mod_rv), 200

    async def _remove(self, target: Target, expected_rv: int) -> tuple[Obj, int]:
        rt = target.rt
        try:
            record = await self.storage.delete(
                rt.storage_key(target.namespace, target.name or ""), expected_rv=expected_rv
            )
        except Conflict:
            raise stale(rt, target.name or "") from None
        except KeyNotFound:
            raise not_found(rt.group, rt.plural, target.name or "") from None
        return self._present(rt, record.value, record.mod_rv), 200

    async def _delete_options(self, request: web.Request) -> Obj:
        if not request.can_read_body:
            return {}
        raw = await request.read()
        if not raw:
            return {}
        try:
            options = decode(raw)
        except orjson.JSONDecodeError:
            raise StatusError(400, "the delete options are not valid JSON") from None
        return options if isinstance(options, dict) else {}

    async def delete_collection(self, request: web.Request, target: Target) -> Obj:
        listed = await self.list(request, target)
        for item in listed["items"]:
            meta = item["metadata"]
            with contextlib.suppress(StatusError):
                await self.delete(request, Target(target.rt, meta.get("namespace"), meta["name"], None))
        return listed

    async def list(self, request: web.Request, target: Target) -> Obj:
        rt = target.rt
        query = request.query
        chosen = selection(request, rt)
        limit = int_param(query.get("limit"), "limit")
        start_after, token_rv = decode_continue(query.get("continue"))
        prefix = rt.storage_prefix(target.namespace)
        items: list[Obj] = []
        revision = token_rv
        more = False
        last_key = start_after
        while True:
            page = await self.storage.list(
                prefix, limit=max(limit - len(items), 0) if limit else 0, start_after=last_key
            )
            revision = revision or page.revision
            for record in page.records:
                last_key = record.key
                obj = self._present(rt, record.value, record.mod_rv)
                if chosen.matches(obj):
                    items.append(obj)
            more = page.more
            if not more or not limit or len(items) >= limit:
                break
        metadata: Obj = {"resourceVersion": str(revision)}
        if more and limit:
            metadata["continue"] = encode_continue(last_key, revision)
        if wants_table(request):
            return as_table(rt, items, request, metadata)
        for item in items:
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": metadata, "items": items}

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        query = request.query
        chosen = selection(request, rt, target.name)
        timeout = int_param(query.get("timeoutSeconds"), "timeoutSeconds") or 1800
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        rv_text = query.get("resourceVersion", "")
        prefix = rt.storage_prefix(target.namespace)
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(event_type: str, obj: Obj, encoded: bytes | None = None) -> None:
            body = encoded if encoded is not None else orjson.dumps(obj)
            await response.write(b'{"type":"' + event_type.encode() + b'","object":' + body + b"}\n")

        filtered = not chosen.empty
        sent: set[str] = set()
        if rv_text in ("", "0"):
            listed = await self.storage.list(prefix)
            start = listed.revision
            for record in listed.records:
                obj = self._present(rt, record.value, record.mod_rv)
                if chosen.matches(obj):
                    sent.add(record.key)
                    await send("ADDED", obj)
        else:
            start = parse_rv(rv_text)
        try:
            stream = await self.storage.watch(prefix, start)
            self._streams.add(stream)
        except Compacted as exc:
            await send(
                "ERROR",
                StatusError(
                    410, f"too old resource version: {start} ({exc.oldest})", reason="Expired"
                ).status(),
            )
            return response
        deadline = time.monotonic() + timeout
        last_rv = start
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    event = await stream.next(min(remaining, BOOKMARK_INTERVAL))
                except StopAsyncIteration:
                    break
                if event is None:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break  # the client went away; nothing would notice until the next write
                    if bookmarks:
                        current = await self.storage.revision()
                        await send(
                            "BOOKMARK",
                            {
                                "kind": rt.kind,
                                "apiVersion": rt.api_version,
                                "metadata": {
                                    "resourceVersion": str(max(current, last_rv)),
                                    "annotations": {"k8s.io/initial-events-end": "true"},
                                },
                            },
                        )
                    continue
                last_rv = event.rv
                obj, encoded = self._watch_object(rt, event.value, event.rv)
                if not filtered:
                    await send(event.type, obj, encoded)
                    continue
                if event.prev is not None and event.type != "ADDED":
                    was = chosen.matches(self._present(rt, event.prev, event.rv))
                else:  # replayed from the log, which keeps no previous values
                    was = event.key in sent or (event.type == "DELETED" and chosen.matches(obj))
                is_now = event.type != "DELETED" and chosen.matches(obj)
                if is_now:
                    sent.add(event.key)
                    await send("MODIFIED" if was else "ADDED", obj, encoded)
                elif was:
                    sent.discard(event.key)
                    await send("DELETED", obj, encoded)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stream.close()
            self._streams.discard(stream)
        return response


def _by_name(apply: Callable[[str, Obj | None], None]) -> Callable[[str, Obj | None], None]:
    """A view's ``apply`` by storage key, for followers keyed by object name (cluster-scoped kinds:
    the name is the key's last segment)."""
    return lambda key, obj: apply(key.rsplit("/", 1)[-1], obj)


def _get_path(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.strip(".").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value


def _scale_of(obj: Obj, paths: tuple[str, str, str]) -> Obj:
    from anywhere.apiserver import selectors

    meta = obj.get("metadata") or {}
    selector = _get_path(obj, paths[2]) if paths[2] else None
    if isinstance(selector, dict):  # a metav1.LabelSelector: Scale carries its string form
        selector = str(selectors.label_selector_from_dict(selector))
    status: Obj = {"replicas": _get_path(obj, paths[1]) or 0}
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": _get_path(obj, paths[0]) or 0},
        "status": status,
    }
