"""What the test harnesses of real services share: stopping a process they started, reading the end
of its log, and running the CLI as a user would. Plain functions, no fixtures, so the benchmarks
import them too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

__all__ = ["log_tail", "run_anywhere", "terminate"]


def terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL if ``process`` has not exited within ``grace`` seconds. Idempotent."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(path: Path, limit: int) -> str:
    """The last ``limit`` bytes of a log file, decoded; empty when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace")


def run_anywhere(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float | None = 900
) -> subprocess.CompletedProcess[str]:
    """``anywhere ARGS`` in ``folder`` as a user would run it (no KUBECONFIG from this process;
    ``env`` added), its output captured; ``timeout`` bounds a hung command, it is no expectation."""
    environment = dict(os.environ)
    environment.pop("KUBECONFIG", None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "anywhere", *args],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
