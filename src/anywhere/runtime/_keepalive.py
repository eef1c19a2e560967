"""TCP keepalive for API connections: how a client notices a server that vanished.

A watch is quiet from the client's side: it sends nothing after its request, so when the server's
machine disappears (deleted, partitioned, its VIP moved to another machine) nothing tells the
client, and it waits on a dead stream until the watch's own timeout, minutes later. Go's dialer,
hence client-go, turns TCP keepalive on for every connection (15 s) for this reason; here the
probes start sooner, because a control plane VIP moves in seconds: the machine that took the VIP
over answers the first probe with a reset, and a peer that answers nothing is given up after
:data:`IDLE` + :data:`INTERVAL` x :data:`COUNT` seconds.
"""

from __future__ import annotations

import socket
from typing import Any, Final

IDLE: Final = 10
INTERVAL: Final = 5
COUNT: Final = 3


def set_keepalive(sock: Any) -> None:
    """Turn TCP keepalive on for ``sock`` (a socket, or asyncio's TransportSocket) with our timings.

    Options a platform lacks are skipped: the timings are Linux's; elsewhere the system's apply.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", IDLE), ("TCP_KEEPINTVL", INTERVAL), ("TCP_KEEPCNT", COUNT)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
