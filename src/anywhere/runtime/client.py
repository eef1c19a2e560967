"""An asyncio Kubernetes API client for unstructured objects (plain dicts).

Controllers in this project handle many kinds, some of them custom, and mostly need a handful of
fields from each; typed models would cost a schema per kind and a conversion per event for no gain
in safety at that boundary. So objects stay JSON dicts, and what the client knows about a kind is
only where it lives: a :class:`Resource` (group, version, plural, namespaced).

One ``aiohttp`` session is shared by every call (pooled keep-alive connections, one TLS context);
requests have a total timeout, watches only a connect timeout because they are meant to stay open.
Failures reported by the server raise :class:`APIError` (with the ``Status`` it sent) or one of its
subclasses; failures to talk to it at all raise :class:`TransportError`.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

import aiohttp
import orjson

from anywhere import __version__
from anywhere.runtime._keepalive import set_keepalive
from anywhere.runtime._kubeconfig import KubeConfig, KubeConfigError, load_kubeconfig, parse_kubeconfig

__all__ = [
    "CONFIGMAPS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "APIError",
    "AlreadyExistsError",
    "Client",
    "ConflictError",
    "Expired",
    "KubeConfig",
    "KubeConfigError",
    "NotFoundError",
    "PatchType",
    "Resource",
    "SocketFactory",
    "TransportError",
    "Watch",
    "WatchEvent",
    "load_kubeconfig",
    "parse_kubeconfig",
]

Obj = dict[str, Any]
# Makes the socket of a new connection from getaddrinfo's answer (family, type, proto, canonname,
# sockaddr): aiohttp's socket_factory.
SocketFactory = Callable[[tuple[int, int, int, str, tuple[Any, ...]]], socket.socket]
JSONPatch = list[Obj]  # named here: inside Client, ``list`` is the verb
PatchType = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """Where a kind lives in the API. ``kind`` is optional, for messages and owner matching."""

    group: str
    version: str
    plural: str
    namespaced: bool = True
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path of the collection (``name`` None) or of one object (and its subresource)."""
        parts = ["api", self.version] if not self.group else ["apis", self.group, self.version]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name is not None:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
SECRETS = Resource("", "v1", "secrets", True, "Secret")
NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace")
NODES = Resource("", "v1", "nodes", False, "Node")
PODS = Resource("", "v1", "pods", True, "Pod")
LEASES = Resource("coordination.k8s.io", "v1", "leases", True, "Lease")


# ---- errors -------------------------------------------------------------------------------------


class APIError(Exception):
    """The server refused a request; ``status`` is the ``Status`` object it answered with."""

    def __init__(self, status: Obj) -> None:
        self.status = status
        self.code = int(status.get("code") or 0)
        self.reason = str(status.get("reason") or "")
        self.message = str(status.get("message") or "")
        super().__init__(f"{self.code} {self.reason}: {self.message}")


class NotFoundError(APIError):
    """404: the object (or the resource, or its namespace) does not exist."""


class ConflictError(APIError):
    """409: a write lost a race (stale ``resourceVersion``); read again and retry."""


class AlreadyExistsError(ConflictError):
    """409 AlreadyExists: a create named an object that exists."""


class Expired(APIError):
    """410: the ``resourceVersion`` asked for is older than the history kept; list again."""


class TransportError(Exception):
    """The server could not be reached, or the connection broke or timed out; retry later."""


def _error(status: Obj) -> APIError:
    code = int(status.get("code") or 0)
    if code == 404:
        return NotFoundError(status)
    if code == 409:
        return (
            AlreadyExistsError(status) if status.get("reason") == "AlreadyExists" else ConflictError(status)
        )
    if code == 410:
        return Expired(status)
    return APIError(status)


def _status_from_body(code: int, body: bytes) -> Obj:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        parsed.setdefault("code", code)
        return parsed
    text = body.decode("utf-8", "replace").strip()[:500]
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": text}


# ---- watch --------------------------------------------------------------------------------------


class WatchEvent(NamedTuple):
    """One watch event: ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK``, and the object."""

    type: str
    object: Obj


class Watch:
    """An open watch stream: ``async for type, obj in watch``; ``async with`` (or ``aclose``) ends it.

    An ``ERROR`` event is not yielded but raised (:class:`Expired` for 410). The stream ends
    normally when the server ends it (its ``timeoutSeconds``, or it shutting down): watch again from
    the last ``resourceVersion`` seen.
    """

    def __init__(self, events: AsyncGenerator[WatchEvent, None]) -> None:
        self._events = events

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _decode_event(line: bytes | bytearray) -> WatchEvent:
    try:
        event = orjson.loads(line)
        kind, obj = event["type"], event["object"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise TransportError(
            f"the watch stream sent something that is not an event: {bytes(line[:200])!r}"
        ) from None
    if kind == "ERROR":
        raise _error(obj if isinstance(obj, dict) else {"code": 500, "message": str(obj)})
    return WatchEvent(str(kind), obj)


# ---- the client ---------------------------------------------------------------------------------


class Client:
    """A connection pool to one API server. Use as ``async with Client(config) as client`` or
    call :meth:`close` when done; the HTTP session is created on first use, inside the event loop.
    """

    def __init__(
        self,
        config: KubeConfig,
        *,
        timeout: float = 30.0,
        max_connections: int = 100,
        user_agent: str = f"anywhere-runtime/{__version__}",
        socket_factory: SocketFactory | None = None,
    ) -> None:
        self.config = config
        # Makes the sockets of new connections (aiohttp's hook): how a client reaches a server
        # only another network namespace can route to (a netns cluster's VIP).
        self._socket_factory = socket_factory
        self._timeout = timeout
        self._max_connections = max_connections
        self._ssl = config.ssl_context()  # built now, so a bad kubeconfig fails at construction
        self._headers = {"Accept": "application/json", "User-Agent": user_agent, **config.headers}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"
        self._http: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(
        cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None, **options: Any
    ) -> Client:
        """A client for ``context`` (default: the current one) of the kubeconfig at ``path``."""
        return cls(load_kubeconfig(path, context=context), **options)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                ssl=self._ssl if self._ssl is not None else True,
                socket_factory=self._make_socket,
            )
            self._http = aiohttp.ClientSession(self.config.server, connector=connector, headers=self._headers)
        return self._http

    def _make_socket(self, addr_info: tuple[int, int, int, str, tuple[Any, ...]]) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = (
            self._socket_factory(addr_info) if self._socket_factory else socket.socket(family, type_, proto)
        )
        if type_ == socket.SOCK_STREAM:
            set_keepalive(sock)  # so that a watch notices a server that vanished (see _keepalive)
        return sock

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ---- plumbing --------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        headers = {"Content-Type": content_type} if body is not None else None
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self._session().request(
                method,
                path,
                params=params,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                server_hostname=self.config.tls_server_name,
            ) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientError as exc:
            raise TransportError(f"{method} {path}: {exc or type(exc).__name__}") from exc
        except TimeoutError as exc:
            raise TransportError(f"{method} {path}: no answer within {self._timeout:g} s") from exc
        if status >= 400:
            raise _error(_status_from_body(status, raw))
        try:
            result = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise TransportError(f"{method} {path}: the answer is not JSON: {raw[:200]!r}") from None
        if not isinstance(result, dict):
            raise TransportError(f"{method} {path}: the answer is not an object")
        return result

    @staticmethod
    def _namespace(resource: Resource, namespace: str | None, obj: Obj | None = None) -> str | None:
        if not resource.namespaced:
            return None
        chosen = namespace or ((obj or {}).get("metadata") or {}).get("namespace")
        if not chosen:
            raise ValueError(f"{resource} is namespaced: give a namespace")
        return str(chosen)

    @staticmethod
    def _name(obj: Obj) -> str:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        return str(name)

    @staticmethod
    def _params(**values: str | int | bool | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in values.items():
            if value is None or value == "":
                continue
            out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out

    # ---- verbs -----------------------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        return await self._request("GET", resource.path(self._namespace(resource, namespace), name))

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a list (all namespaces when ``namespace`` is None); ``metadata.continue``
        in the answer names the next page when ``limit`` cut it."""
        params = self._params(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit,
            resourceVersion=resource_version,
            **{"continue": continue_token},
        )
        return await self._request(
            "GET", resource.path(namespace if resource.namespaced else None), params=params
        )

    async def list_all(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
    ) -> Obj:
        """Every item, fetched ``page_size`` at a time; the answer's ``metadata.resourceVersion``
        is the first page's, the point to start a watch from."""
        first = await self.list(
            resource, namespace, label_selector=label_selector, field_selector=field_selector, limit=page_size
        )
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            page = await self.list(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=page_size,
                continue_token=token,
            )
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        first["items"] = items
        first.setdefault("metadata", {}).pop("continue", None)
        return first

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> Watch:
        """Changes after ``resource_version`` (None or "0": the current objects as ADDED first).

        Nothing is sent until the first iteration. The connection has no read timeout (a quiet
        watch is normal); ``timeout_seconds`` asks the server to end the stream, and bounds it here
        too.
        """
        params = self._params(
            watch=True,
            resourceVersion=resource_version,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            allowWatchBookmarks=allow_bookmarks,
            timeoutSeconds=timeout_seconds,
        )
        total = timeout_seconds + self._timeout if timeout_seconds else None
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=self._timeout)
        path = resource.path(namespace if resource.namespaced else None)
        return Watch(self._stream(path, params, timeout))

    async def _stream(
        self, path: str, params: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> AsyncGenerator[WatchEvent, None]:
        try:
            response = await self._session().get(
                path, params=params, timeout=timeout, server_hostname=self.config.tls_server_name
            )
        except aiohttp.ClientError as exc:
            raise TransportError(f"watch {path}: {exc or type(exc).__name__}") from exc
        except TimeoutError as exc:
            raise TransportError(f"watch {path}: no connection within {self._timeout:g} s") from exc
        async with response:
            if response.status >= 400:
                raise _error(_status_from_body(response.status, await response.read()))
            # Lines can be far longer than aiohttp's readline limit (a ConfigMap may be 1 MiB), so
            # events are split here.
            buffer = bytearray()
            try:
                async for chunk in response.content.iter_any():
                    scan = len(buffer)
                    buffer += chunk
                    while (end := buffer.find(b"\n", scan)) >= 0:
                        line = buffer[:end]
                        del buffer[: end + 1]
                        scan = 0
                        if line.strip():
                            yield _decode_event(line)
            except aiohttp.ClientError as exc:
                raise TransportError(f"watch {path}: the stream broke: {exc or type(exc).__name__}") from exc
            except TimeoutError as exc:
                raise TransportError(f"watch {path}: the stream timed out") from exc
            if buffer.strip():
                raise TransportError(f"watch {path}: the stream ended in the middle of an event")

    async def create(
        self, resource: Resource, obj: Obj, namespace: str | None = None, *, field_manager: str | None = None
    ) -> Obj:
        path = resource.path(self._namespace(resource, namespace, obj))
        return await self._request("POST", path, params=self._params(fieldManager=field_manager), body=obj)

    async def update(self, resource: Resource, obj: Obj, *, field_manager: str | None = None) -> Obj:
        """Replace the object; its ``metadata.resourceVersion`` (when set) makes this a compare-and-swap
        that raises :class:`ConflictError` if someone wrote in between."""
        path = resource.path(self._namespace(resource, None, obj), self._name(obj))
        return await self._request("PUT", path, params=self._params(fieldManager=field_manager), body=obj)

    async def update_status(self, resource: Resource, obj: Obj, *, field_manager: str | None = None) -> Obj:
        """Replace the object's ``status`` through the status subresource (spec changes are ignored)."""
        path = resource.path(self._namespace(resource, None, obj), self._name(obj), "status")
        return await self._request("PUT", path, params=self._params(fieldManager=field_manager), body=obj)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Obj | JSONPatch,
        namespace: str | None = None,
        *,
        type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
        subresource: str | None = None,
    ) -> Obj:
        """Patch by JSON merge patch, JSON patch (a list of operations), strategic merge patch
        (built-in kinds), or server-side apply (``patch`` is the applied configuration; a
        ``field_manager`` is required and ``force`` takes fields over from other managers)."""
        if type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        if force and type != "apply":
            raise ValueError("force applies only to server-side apply")
        params = self._params(fieldManager=field_manager, force=True if force else None)
        path = resource.path(self._namespace(resource, namespace), name, subresource)
        return await self._request(
            "PATCH", path, params=params, body=patch, content_type=_PATCH_CONTENT_TYPES[type]
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: Literal["Background", "Foreground", "Orphan"] | None = None,
        resource_version: str | None = None,
        grace_period_seconds: int | None = None,
    ) -> Obj:
        """Delete (or mark for deletion, while finalizers hold it); ``resource_version`` is a
        precondition. The answer is the object as deleted, or a ``Status``."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        path = resource.path(self._namespace(resource, namespace), name)
        return await self._request("DELETE", path, body=options)
