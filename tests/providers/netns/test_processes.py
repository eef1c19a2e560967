"""Processes in a machine's namespace outlive the event loop (and the manager) that started them,
are found again from their records, and stop with TERM, or KILL when TERM is ignored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from anywhere.providers.netns._host import (
    ToolMissingError,
    namespace_of_pid,
    netns_id,
    pid_alive,
    wait_until,
)
from anywhere.providers.netns.inventory import cleanup_all, leaks, scope_id
from anywhere.providers.netns.machines import MachineNamespace
from anywhere.providers.netns.processes import ProcessError, ProcessTable
from tests.providers.netns.hardware import make_fabric, requires_root, state_dir

__all__ = ["state_dir"]

pytestmark = requires_root


def test_a_process_survives_the_loop_that_started_it(tmp_path: Path) -> None:
    state = tmp_path / "netns-state"

    async def start() -> tuple[str, int]:
        fabric = await make_fabric(state)
        machine = MachineNamespace(fabric, "cp-0")
        await machine.plug()
        record = await machine.processes.spawn(
            "service", ["sh", "-c", "echo started; exec sleep 600"], env={"ROLE": "test"}
        )
        return machine.namespace, record.pid

    async def find_and_stop(namespace: str, pid: int) -> None:
        table = ProcessTable(state / "machines" / "cp-0" / "processes", namespace)
        assert table.running("service")
        record = table.get("service")
        assert record is not None
        assert record.pid == pid
        assert record.env == {"ROLE": "test"}
        assert namespace_of_pid(pid) == netns_id(namespace)
        log = Path(record.log_file)
        assert await wait_until(lambda: log.read_text() == "started\n", 5), log.read_text()
        assert await table.stop("service", grace=2)
        assert not pid_alive(pid)
        assert table.get("service") is None
        assert not await table.stop("service")

    scope = None
    try:
        namespace, pid = asyncio.run(start())
        scope = scope_id(state)
        assert pid_alive(pid)  # the loop is closed; the process runs on
        asyncio.run(find_and_stop(namespace, pid))
    finally:

        async def clean() -> list[str]:
            await cleanup_all(state)
            return await leaks(state, scope)

        assert asyncio.run(clean()) == []


async def test_spawn_ensure_stop_and_kill(state_dir: Path) -> None:
    fabric = await make_fabric(state_dir)
    machine = MachineNamespace(fabric, "cp-1")
    await machine.plug()
    table = machine.processes
    first = await table.spawn("svc", ["sleep", "600"])
    with pytest.raises(ProcessError, match="already running"):
        await table.spawn("svc", ["sleep", "600"])
    assert await table.ensure("svc", ["sleep", "600"]) == first
    second = await table.ensure("svc", ["sleep", "601"])  # other arguments: restarted
    assert second.pid != first.pid
    assert not pid_alive(first.pid, first.start_ticks)

    # A crash (kill -9) keeps the record; the process is seen as not running.
    assert table.kill("svc") == second.pid
    assert await table.wait_exit("svc", 5)
    assert table.get("svc") is not None
    assert table.kill("svc") is None

    # TERM ignored: KILL after the grace period, the whole process group with it.
    stubborn = await table.spawn("stubborn", ["sh", "-c", "trap '' TERM; sleep 600 & wait"])
    assert await table.stop("stubborn", grace=0.3)
    assert not pid_alive(stubborn.pid, stubborn.start_ticks)

    with pytest.raises(ValueError, match="not a process name"):
        table.get("../escape")
    with pytest.raises(ToolMissingError, match="not found on PATH"):
        await table.spawn("nothing", ["no-such-program-anywhere"])
