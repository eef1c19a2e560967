"""The forwarder: a loopback port of the host that reaches an address inside a fabric, while the
host's own network stays as it was."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from anywhere.providers.netns._host import wait_until
from anywhere.providers.netns.machines import MachineNamespace
from tests.providers.netns.hardware import make_fabric, requires_root, state_dir

__all__ = ["state_dir"]

pytestmark = requires_root

ECHO = (
    "import socket\n"
    "s = socket.create_server(('0.0.0.0', 7000))\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    c.sendall(b'from machine: ' + c.recv(100))\n"
    "    c.close()\n"
)


async def _ask(port: int, text: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text)
    await writer.drain()
    answer = await reader.read(100)
    writer.close()
    return answer


async def test_the_host_reaches_a_machine_through_the_forwarder(state_dir: Path, tmp_path: Path) -> None:
    fabric = await make_fabric(state_dir)
    machine = MachineNamespace(fabric, "cp-0")
    lease = await machine.ensure()
    await machine.processes.spawn("echo", [sys.executable, "-c", ECHO])
    port_file = tmp_path / "port"
    forwarder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anywhere.providers.netns.forwarder",
            "--netns",
            fabric.namespace,
            "--target",
            f"{lease.address}:7000",
            "--port-file",
            str(port_file),
        ]
    )
    try:
        assert await wait_until(lambda: port_file.exists() and port_file.read_text().strip() != "", 10)
        port = int(port_file.read_text())
        # the echo server may still be starting: the forwarder closes connections it cannot make
        answer = b""
        for _ in range(100):
            answer = await _ask(port, b"hello")
            if answer:
                break
            await asyncio.sleep(0.1)
        assert answer == b"from machine: hello"
        assert await _ask(port, b"again") == b"from machine: again"  # a new connection each time
    finally:
        forwarder.terminate()
        forwarder.wait(10)


def test_a_missing_namespace_is_a_clear_error() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "anywhere.providers.netns.forwarder",
            "--netns",
            "aw-f-none",
            "--target",
            "10.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "network namespace aw-f-none does not exist" in result.stderr
    assert "Traceback" not in result.stderr
