"""A TCP proxy in the test process, to take a server away from its clients and give it back.

Bytes pass through untouched (TLS included: clients see the upstream's own certificate). ``stop``
closes the listener and every open connection, as a network outage would; ``start`` again listens
on the same port. Threads, not asyncio: the tests that use it are synchronous.

Usage::

    proxy = TcpProxy(("127.0.0.1", upstream_port))
    proxy.start()  # proxy.port: where clients connect
    ...
    proxy.stop()  # connections refused, open ones cut
    proxy.start()  # back, same port
    ...
    proxy.close()
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["TcpProxy"]

CONNECT_TIMEOUT = 10.0
CHUNK = 65536


class _Pair:
    """A client connection and its upstream one: closed when both directions have ended."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.sockets = (client, upstream)
        self._open_directions = 2
        self._lock = threading.Lock()

    def direction_done(self) -> bool:
        """One direction ended; whether it was the last one."""
        with self._lock:
            self._open_directions -= 1
            return self._open_directions == 0

    def cut(self) -> None:
        """End both connections at once (shutdown wakes the threads blocked in recv)."""
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Forwards connections on 127.0.0.1:``port`` to ``upstream``; see the module doc."""

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self.port = port
        self.accepted = 0  # connections forwarded since creation
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._pairs: set[_Pair] = set()
        self._threads: set[threading.Thread] = set()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        """Listen (on the same port as before, after a stop)."""
        with self._lock:
            if self._listener is not None:
                raise RuntimeError("the proxy is already running")
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", self.port))
                listener.listen(128)
            except OSError:
                listener.close()
                raise
            self.port = listener.getsockname()[1]
            self._listener = listener
            self._spawn(self._accept, listener)

    def stop(self) -> None:
        """Close the listener and cut every open connection; wait for the proxy's threads."""
        with self._lock:
            listener, self._listener = self._listener, None
            pairs, self._pairs = set(self._pairs), set()
            threads = set(self._threads)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
            listener.close()
        for pair in pairs:
            pair.cut()
        for thread in threads:
            thread.join(timeout=CONNECT_TIMEOUT + 5)
        for pair in pairs:
            pair.close()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- threads -------------------------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, daemon=True, name="tcp-proxy")
        self._threads.add(thread)  # under self._lock, or from a thread the proxy owns
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    pair.cut()
                    pair.close()
                    return
                self._pairs.add(pair)
                self.accepted += 1
                self._spawn(self._pump, pair, client, upstream)
                self._spawn(self._pump, pair, upstream, client)

    def _pump(self, pair: _Pair, source: socket.socket, destination: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                destination.sendall(data)
        except OSError:
            pair.cut()
        else:
            with contextlib.suppress(OSError):
                destination.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        if pair.direction_done():
            with self._lock:
                self._pairs.discard(pair)
            pair.close()
