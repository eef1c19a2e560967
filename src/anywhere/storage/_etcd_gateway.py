"""etcd's v3 API through its gRPC-JSON gateway (``/v3/...``), over aiohttp.

Why the gateway and not a gRPC client: every etcd since 3.4 serves it on the client port, it needs no
gRPC stack (aiohttp is already ours), and the handful of calls the store makes (range, txn,
compaction, watch) map one-to-one onto POSTs with JSON bodies. What a client library would add —
failing over between members, deciding which failures may be retried — is policy we want to own: a
write whose request reached etcd but whose answer did not may or may not have been applied, so it is
never silently retried.

Keys and values travel base64-encoded; 64-bit integers travel as strings; fields at their zero
value are omitted (``"succeeded"`` is absent when a transaction failed, ``"value"`` when empty).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import os
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from anywhere.storage._interface import Unavailable

API_PREFIX = "/v3/"  # etcd 3.4 served /v3beta/ beside /v3/; 3.5 serves only /v3/
CONNECT_TIMEOUT = 1.0
# gRPC status codes etcd answers with (through the gateway's "code" field).
UNAVAILABLE = 14  # no leader, leader changed, request timed out, server stopped
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8  # too many requests (and a request over the gRPC message limit)
INVALID_ARGUMENT = 3  # a request etcd will never accept (too large, malformed): not worth repeating
# What etcd says about a request over its size limit: its own check (--max-request-bytes, 1.5 MiB by
# default) and, past that limit plus gRPC's allowance (2 MiB in all), the gRPC server's.
_TOO_LARGE = ("etcdserver: request is too large", "received message larger than max")
# etcd's default --max-request-bytes, named in the error a too large object gets.
DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
# Sent with every watch: etcd then cancels the watch when its member loses the leader (a partitioned
# member would otherwise keep it open, silently, forever; etcd-io/etcd#10819, as Kubernetes does).
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
# Errors that mean the request was refused before anything was proposed: a write may be sent again.
# The last three come from a member leaving the cluster or not yet voting: a learner refuses writes,
# a removed member's raft node is stopped, and a member whose gRPC server is down cannot be dialled
# by its own HTTP gateway.
_NOT_APPLIED = (
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "etcdserver: not capable",
    "raft proposal dropped",
    "etcdserver: rpc not supported for learner",
    "raft: stopped",
    'connection error: desc = "transport: Error while dialing',
)

Json = dict[str, Any]


class EtcdError(Exception):
    """etcd answered, with an error (a compacted or future revision, no leader, a timeout)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def compacted(self) -> bool:
        return "required revision has been compacted" in self.message

    @property
    def future_revision(self) -> bool:
        return "required revision is a future revision" in self.message

    @property
    def transient(self) -> bool:
        """Worth asking again (another member, a moment later) when the request was a read."""
        return self.code in (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) and not self.too_large

    @property
    def too_large(self) -> bool:
        """The request exceeds etcd's size limit: no member will ever accept it."""
        return any(text in self.message for text in _TOO_LARGE)

    @property
    def not_applied(self) -> bool:
        return any(self.message.startswith(text) for text in _NOT_APPLIED)


class NoResponse(Exception):
    """One member gave no usable answer (see :func:`post`); the message says why."""


class _NotSent(NoResponse):
    """No connection could be made: nothing reached etcd."""


class _NoAnswer(NoResponse):
    """The request may have reached etcd, but no answer came back."""


def request_may_have_arrived(exc: NoResponse) -> bool:
    """Whether the request behind ``exc`` may have reached etcd (and a write may have been applied)."""
    return not isinstance(exc, _NotSent)


class StreamBroken(Exception):
    """A watch stream ended or failed; resume it from the last revision delivered."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def range_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (etcd's ``--prefix``)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # every key
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """``http(s)://host:port`` URLs, from a comma-separated string or a list; ValueError names the bad one."""
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    result: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"etcd endpoint {item!r} is not a URL like http://127.0.0.1:2379")
        if parts.username or parts.password:
            raise ValueError(
                f"etcd endpoint {parts.scheme}://{parts.hostname}:{parts.port} carries credentials in "
                "the URL; authenticate with a client certificate (--etcd-certfile/--etcd-keyfile)"
            )
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"etcd endpoint {item!r} has a path; give only scheme, host and port")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"etcd endpoint {item!r} has an invalid port") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        result.append(f"{parts.scheme}://{host}" + (f":{port}" if port else ""))
    if not result:
        raise ValueError("no etcd endpoint given; pass URLs like http://127.0.0.1:2379")
    return result


class WatchStream:
    """One open etcd watch (one HTTP response streaming newline-separated JSON messages)."""

    def __init__(self, endpoint: str, response: aiohttp.ClientResponse) -> None:
        self.endpoint = endpoint
        self._response = response
        self._buffer = bytearray()
        self._loop = asyncio.get_running_loop()
        self.last_heard = self._loop.time()  # when etcd last sent anything on this stream

    async def next(self) -> Json:
        """The next ``result`` message; StreamBroken when the stream ends or carries an error."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if not line.strip():
                    continue
                try:
                    message = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise StreamBroken(f"etcd at {self.endpoint} sent a malformed watch message") from exc
                result = message.get("result")
                if not isinstance(result, dict):
                    error = message.get("error") or {}
                    raise StreamBroken(f"etcd at {self.endpoint}: {error.get('message') or 'watch failed'}")
                return result
            try:
                chunk = await self._response.content.readany()
            except (aiohttp.ClientError, OSError) as exc:
                raise StreamBroken(f"the watch stream from etcd at {self.endpoint} broke: {exc}") from exc
            if not chunk:
                raise StreamBroken(f"etcd at {self.endpoint} ended the watch stream")
            self.last_heard = self._loop.time()
            self._buffer += chunk

    def close(self) -> None:
        self._response.close()


async def post(
    session: aiohttp.ClientSession, endpoint: str, method: str, data: bytes, remaining: float
) -> Json:
    """POST ``/v3/<method>`` to one member, once, within ``remaining`` seconds.

    Returns etcd's answer; raises :class:`EtcdError` when etcd answered with an error, and
    :class:`NoResponse` when there was no usable answer (:func:`request_may_have_arrived` tells
    whether a write may nevertheless have been applied). No failover: that is the caller's policy.
    """
    timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=min(CONNECT_TIMEOUT, remaining))
    try:
        async with session.post(endpoint + API_PREFIX + method, data=data, timeout=timeout) as response:
            payload = await response.read()
            status = response.status
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        raise _NotSent(_reason(exc)) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _NoAnswer(_reason(exc)) from None
    try:
        answer = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        raise _NoAnswer(f"HTTP {status} with a body that is not JSON") from None
    if not isinstance(answer, dict):
        raise _NoAnswer(f"HTTP {status} with an unexpected body")
    if status != 200 or ("error" in answer and "header" not in answer):
        if "code" not in answer and "message" not in answer:
            raise _NoAnswer(f"HTTP {status}")  # not etcd speaking (a proxy, a member shutting down)
        message = str(answer.get("message") or answer.get("error"))
        raise EtcdError(int(answer.get("code") or 0), message)
    return answer


class Gateway:
    """Calls to a set of etcd members, preferring the one that answered last."""

    def __init__(
        self, endpoints: Sequence[str], *, ssl_context: ssl.SSLContext | None, timeout: float
    ) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._preferred = 0
        tls: ssl.SSLContext | bool = ssl_context if ssl_context is not None else False
        # Unary calls share a pool; each watch holds its own connection for as long as it lives.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls, limit=64), headers={"Content-Type": "application/json"}
        )
        self._watch_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls, limit=0), headers={"Content-Type": "application/json"}
        )

    def describe(self) -> str:
        return ", ".join(self.endpoints)

    def avoid(self, endpoint: str) -> None:
        """Prefer another member from now on, if ``endpoint`` is the preferred one (it stopped
        answering). By URL, not position: the endpoints change when the membership is synced."""
        if self.endpoints[self._preferred] == endpoint:
            self._preferred = (self._preferred + 1) % len(self.endpoints)

    async def sync_members(self) -> bool:
        """Follow the cluster's membership: the voting members' client URLs become the endpoints.

        What etcd's own client does with ``AutoSyncInterval``: a client given only its machine's
        member learns the others, so that when that member is removed (a rolling replacement)
        requests go to the remaining ones instead of failing. Known endpoints keep their order (the
        configured first one stays preferred while it is a member); learners are left out (they
        serve no client requests). True when the endpoints changed; an unreadable membership
        changes nothing.
        """
        try:
            answer = await self.call("cluster/member/list", {})
        except (EtcdError, Unavailable):
            return False
        voters = [
            url
            for member in answer.get("members") or ()
            if not member.get("isLearner")
            for url in member.get("clientURLs") or ()
        ]
        if not voters:
            return False
        current = self.endpoints[self._preferred]
        endpoints = [e for e in self.endpoints if e in voters] + [
            u for u in voters if u not in self.endpoints
        ]
        if endpoints == self.endpoints:
            return False
        self.endpoints = endpoints
        self._preferred = endpoints.index(current) if current in endpoints else 0
        return True

    async def ping(self, endpoint: str) -> bool:
        """Whether the member at ``endpoint`` answers at all within half the timeout (errors count).

        A serializable read: the member answers from its own state, so a member without a leader
        still counts as alive (the watch's require-leader flag covers that case).
        """
        body = orjson.dumps({"key": b64(b"\x00"), "limit": 1, "keys_only": True, "serializable": True})
        try:
            await self._post(endpoint, "kv/range", body, max(1.0, self.timeout / 2))
        except EtcdError:
            return True
        except NoResponse:
            return False
        return True

    async def call(self, method: str, body: Json, *, write: bool = False) -> Json:
        """POST ``/v3/<method>`` to the preferred member, failing over to the others.

        Reads are asked again elsewhere until the deadline; a write only when it surely was not
        applied (no connection; etcd refused it before proposing). Raises EtcdError for etcd's own
        errors and Unavailable when no member answers within ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        data = orjson.dumps(body)
        failures: dict[str, str] = {}
        refused = 0
        while True:
            endpoint = self.endpoints[self._preferred]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable(_summary("no etcd member answered in time", failures, self.timeout))
            # A read gives up on one member early enough to ask another; a write waits for its answer.
            budget = remaining if write else min(remaining, max(1.0, self.timeout / 2))
            try:
                return await self._post(endpoint, method, data, budget)
            except _NotSent as exc:
                failures[endpoint] = str(exc)
                self.avoid(endpoint)
                refused += 1
                if refused % len(self.endpoints) == 0:
                    # Every member refused: that is a definite answer (nothing listens), so give up
                    # after a few short rounds rather than at the deadline.
                    if refused >= 3 * len(self.endpoints):
                        raise Unavailable(_summary("cannot connect", failures)) from None
                    await asyncio.sleep(min(0.1 * refused / len(self.endpoints), remaining))
            except _NoAnswer as exc:
                failures[endpoint] = str(exc)
                self.avoid(endpoint)  # a frozen member: the next call goes elsewhere
                if write:
                    raise Unavailable(
                        f"etcd at {endpoint} did not answer ({exc}); the write may or may not have "
                        "been applied"
                    ) from None
            except EtcdError as exc:
                if not (exc.not_applied if write else exc.transient):
                    if exc.transient:
                        self.avoid(endpoint)  # a sick member: the caller's next attempt goes elsewhere
                    raise
                failures[endpoint] = exc.message
                self.avoid(endpoint)
                await asyncio.sleep(min(0.05, remaining))

    async def _post(self, endpoint: str, method: str, data: bytes, remaining: float) -> Json:
        return await post(self._session, endpoint, method, data, remaining)

    async def watch(self, create_request: Json) -> WatchStream:
        """Open a watch and wait for etcd to confirm it (``created``); fails over like a read."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        data = orjson.dumps({"create_request": create_request})
        failures: dict[str, str] = {}
        attempts = 0
        while True:
            endpoint = self.endpoints[self._preferred]
            remaining = deadline - loop.time()
            if remaining <= 0 or attempts >= 3 * len(self.endpoints):
                raise Unavailable(_summary("cannot open a watch on etcd", failures, self.timeout))
            try:
                return await self._open(endpoint, data, remaining)
            except (_NotSent, _NoAnswer, StreamBroken) as exc:
                failures[endpoint] = str(exc)
                self.avoid(endpoint)
                attempts += 1
                if attempts % len(self.endpoints) == 0:
                    await asyncio.sleep(min(0.1 * attempts / len(self.endpoints), remaining))

    async def _open(self, endpoint: str, data: bytes, remaining: float) -> WatchStream:
        # The whole opening is bounded, response headers included: a member that has just
        # restarted can accept the connection and then answer nothing.
        budget = min(remaining, max(1.0, self.timeout / 2))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(CONNECT_TIMEOUT, budget))
        stream: WatchStream | None = None
        try:
            async with asyncio.timeout(budget):
                response = await self._watch_session.post(
                    endpoint + API_PREFIX + "watch", data=data, timeout=timeout, headers=REQUIRE_LEADER
                )
                stream = WatchStream(endpoint, response)
                if response.status != 200:
                    raise _NoAnswer(f"HTTP {response.status}")
                first = await stream.next()
            if not first.get("created"):
                raise _NoAnswer("the watch was not created")
        except BaseException as exc:
            if stream is not None:
                stream.close()
            if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
                raise _NotSent(_reason(exc)) from None
            if isinstance(exc, aiohttp.ClientError | OSError):
                raise _NoAnswer(_reason(exc)) from None
            if isinstance(exc, TimeoutError):
                raise _NoAnswer("no confirmation of the watch in time") from None
            raise
        return stream

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._session.close()
        with contextlib.suppress(Exception):
            await self._watch_session.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if isinstance(error, ssl.SSLError):
            return f"TLS: {error.reason or error}"
        return os.strerror(error.errno) if error.errno else str(error.strerror or error)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _summary(what: str, failures: dict[str, str], timeout: float | None = None) -> str:
    detail = "; ".join(f"{where}: {why}" for where, why in failures.items())
    if timeout is not None and not detail:
        detail = f"no answer within {timeout:g}s"
    return f"{what} ({detail})" if detail else what


def decode_key(data: str | None) -> str:
    try:
        return unb64(data).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
