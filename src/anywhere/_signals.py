"""Signals in our long-running processes: SIGTERM and SIGINT end them cleanly, and only them.

:func:`until_signalled` runs a process's work until SIGTERM or SIGINT cancels it (its cleanup runs).

Forked children must not stop their parent. An asyncio server handles SIGTERM through a wakeup file descriptor: the C-level handler writes the
signal's number to it and the event loop reads it. A child made with ``os.fork()`` (pyroute2 forks
a helper to open a netlink socket inside a network namespace, and stops it with SIGTERM) inherits
both the handler and the descriptor, so a SIGTERM meant for the child is read by the parent's loop
as its own, and the parent shuts down. After a fork, the child therefore gets the default handlers
back and no wakeup descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Coroutine
from typing import Any

__all__ = ["keep_signals_in_this_process", "until_signalled"]

_registered = False


def _reset_in_child() -> None:
    with contextlib.suppress(ValueError):  # raised off the main thread, where nothing was inherited
        signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def keep_signals_in_this_process() -> None:
    """Make every later ``os.fork()`` child forget this process's signal handling (idempotent)."""
    global _registered
    if not _registered:
        os.register_at_fork(after_in_child=_reset_in_child)
        _registered = True


async def until_signalled(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until SIGTERM/SIGINT cancels it (its cleanup runs), or it ends."""
    keep_signals_in_this_process()
    task = asyncio.create_task(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
