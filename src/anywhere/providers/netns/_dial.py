"""Sockets made inside a fabric: how a process in the host's network namespace reaches a netns
cluster's machines and VIP.

The management plane runs in the host's network namespace and never touches host interfaces or
routes, so the fabric's addresses (node IPs, the control plane VIP) are reachable only from inside
the fabric's namespace. A socket keeps the network namespace it was created in, whichever thread
later uses it; so it is enough to *create* the socket there and hand it to the event loop, which
connects and talks through it as through any other. aiohttp takes such sockets through
``TCPConnector(socket_factory=...)``.

``setns(2)`` moves only the calling thread, so a dedicated thread does it: for each socket it
enters the fabric's namespace, creates the socket, and returns to the namespace it started in.
It does not stay in the fabric between requests, because a thread inside a namespace keeps that
namespace (its bridge and veth peers) alive after the fabric is deleted; creating a socket is
rare (aiohttp pools connections), so two ``setns`` calls per connection cost nothing that matters.
The event loop waits for the socket synchronously (aiohttp's factory is a plain call); the work
is two system calls and a ``socket()``, microseconds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import threading
from typing import Any

import aiohttp

from anywhere.providers.netns._host import NetnsError, netns_path
from anywhere.runtime import SocketFactory

__all__ = ["DialError", "Dialer", "connector_factory", "dialer", "socket_factory"]

AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


class DialError(NetnsError, OSError):
    """A socket could not be made inside a fabric (its namespace is gone, or setns failed).

    An OSError too (errno, message), so aiohttp reports it as a connection error with the message,
    and callers retry it as they retry any connection error."""


class Dialer:
    """Creates sockets inside network namespaces on request, from one dedicated thread.

    One per process is enough (:func:`dialer`); it serves any number of namespaces.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._home: int | None = None  # fd of the thread's own network namespace

    def _start(self) -> None:
        # The fd of the namespace the dialer thread starts in (its creator's): where it returns.
        old, self._home = self._home, os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old)

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="anywhere-netns-dial", initializer=self._start
                )
            return self._executor

    def make_socket(self, namespace: str, addr_info: AddrInfo) -> socket.socket:
        """A socket for ``addr_info`` (getaddrinfo's answer) created inside ``namespace``."""
        sock: socket.socket = self._pool().submit(self._make, namespace, addr_info).result()
        return sock

    def _make(self, namespace: str, addr_info: AddrInfo) -> socket.socket:
        from pyroute2.netns import setns  # type: ignore[import-untyped]

        family, type_, proto, _, _ = addr_info
        path = netns_path(namespace)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise DialError(
                exc.errno,
                f"cannot reach into network namespace {namespace}: {exc.strerror}; is its fabric up?",
            ) from None
        try:
            setns(fd, flags=0)
        except OSError as exc:
            raise DialError(exc.errno, f"cannot enter network namespace {namespace}: {exc}") from None
        finally:
            os.close(fd)
        try:
            return socket.socket(family, type_, proto)
        finally:
            try:
                setns(self._home, flags=0)
            except OSError:
                # A thread that cannot go home must not make another socket: retire it (its
                # namespace reference goes with it) and let the next request start a new one.
                self._retire()
                raise

    def _retire(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    def close(self) -> None:
        """Stop the thread (a later request starts a new one)."""
        self._retire()
        home, self._home = self._home, None
        if home is not None:
            with contextlib.suppress(OSError):
                os.close(home)


_DIALER = Dialer()


def dialer() -> Dialer:
    """The process's dialer."""
    return _DIALER


def socket_factory(namespace: str) -> SocketFactory:
    """aiohttp's ``socket_factory`` for connections made from inside ``namespace``."""

    def make(addr_info: AddrInfo) -> socket.socket:
        return _DIALER.make_socket(namespace, addr_info)

    return make


def connector_factory(namespace: str, **options: Any) -> aiohttp.TCPConnector:
    """An aiohttp connector whose connections are made from inside ``namespace``."""
    return aiohttp.TCPConnector(socket_factory=socket_factory(namespace), **options)
