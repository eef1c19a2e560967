"""A TCP forwarder from the host's loopback into a fabric: how the host reaches a cluster's VIP.

The fabric's network (its bridge, the machines, the control plane VIP) exists only inside the
project's namespaces, and the host's interfaces and routes are never touched, so nothing on the
host can route to a VIP. This process listens on a loopback port of the namespace it was started
in (the host's), then moves itself into the fabric's namespace: every connection it accepts comes
from the host, and every connection it opens goes to the target from inside the fabric. TLS goes
through untouched, end to end; a kubeconfig names the VIP as ``tls-server-name``, which the
serving certificates carry. Each connection is opened anew, so after a failover the next one
reaches whichever machine holds the VIP.

    python -m anywhere.providers.netns.forwarder --netns NS --target VIP:6443 \\
        [--listen 127.0.0.1:0] [--port-file FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from pathlib import Path

from anywhere.providers.netns._host import netns_path
from anywhere.runtime import set_keepalive

log = logging.getLogger("anywhere.netns.forwarder")
BUFFER = 64 * 1024
CONNECT_TIMEOUT = 5.0


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def _enter(namespace: str) -> None:
    """Move this process (its only thread, before any loop runs) into ``namespace``'s network."""
    from pyroute2.netns import setns  # type: ignore[import-untyped]

    setns(str(netns_path(namespace)), flags=0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(listener: socket.socket, target: tuple[str, int]) -> None:
    async def connection(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(*target), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            log.info("cannot reach %s:%d: %s", *target, exc)
            client_writer.close()
            return
        # A connection to a VIP outlives the machine that held it: the keepalive notices, and the
        # reset reaches the host's client, which connects again (to the VIP's new holder).
        set_keepalive(upstream_writer.get_extra_info("socket"))
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(connection, sock=listener)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anywhere.providers.netns.forwarder")
    parser.add_argument("--netns", required=True, help="the fabric namespace to connect from")
    parser.add_argument("--target", required=True, type=_address, help="HOST:PORT inside the fabric")
    parser.add_argument("--listen", default="127.0.0.1:0", type=_address, help="HOST:PORT here")
    parser.add_argument("--port-file", type=Path, help="where to write the port listened on")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not netns_path(options.netns).exists():
        print(f"error: network namespace {options.netns} does not exist", file=sys.stderr)
        return 1
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(options.listen)
    except OSError as exc:
        print(
            f"error: cannot listen on {options.listen[0]}:{options.listen[1]}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    listener.listen(128)
    listener.setblocking(False)
    _enter(options.netns)
    port = listener.getsockname()[1]
    if options.port_file is not None:
        options.port_file.write_text(f"{port}\n")
    log.info("forwarding 127.0.0.1:%d to %s:%d in %s", port, *options.target, options.netns)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(listener, options.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
