"""Starting and stopping ``anywhere serve`` for the benchmarks (each runs it in a process of its own)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

READY = re.compile(r"ready at (https://\S+)")


def start_serve(
    data_dir: Path, *extra: str, log_name: str = "serve.log"
) -> tuple[subprocess.Popen[str], str]:
    """``anywhere serve --data-dir DATA_DIR --port 0 EXTRA...`` once it says it is ready: the process
    and its URL. It runs in a session of its own (a Ctrl-C here reaches it only as our SIGTERM) and
    writes its log to ``DATA_DIR/LOG_NAME``; a server that does not start ends the benchmark with
    the end of that log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / log_name
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "anywhere", "serve", "--data-dir", str(data_dir), "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = READY.search(line)
    if match is None:
        stop_serve(process)
        tail = log_file.read_text(errors="replace")[-3000:]
        raise SystemExit(f"anywhere serve did not start: {line!r}\n{tail}")
    return process, match.group(1)


def stop_serve(process: subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
