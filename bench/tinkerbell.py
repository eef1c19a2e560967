"""Benchmark of the tinkerbell (bare metal) provider against the sushy-tools Redfish emulator, through the CLI.

    .venv/bin/python bench/tinkerbell.py [--baseline-servers 3]

It starts the emulator with five servers (tests/redfish, as the tests do), then measures, in one run:

- baseline: one server's netboot and release done directly with the sushy client, one call after
  another as a careful script would: set a one-time PXE boot, power on, poll until the BMC reports
  On, power off, poll until Off (per server, over ``--baseline-servers`` servers). This is what the
  BMCs themselves cost; the emulator applies each power change 1-11 s after accepting it (random),
  so every figure here carries that noise, and the ratios matter more than the seconds;
- ``anywhere create cluster`` of a 1+2 cluster (CSV and BMC checks, management plane, hardware
  claimed, DHCP configuration checked by dnsmasq, PXE boot and power on over Redfish, workflow,
  nodes, Ready), ``upgrade cluster`` to the next Kubernetes version with RollingUpdate (every machine
  replaced on the spare servers: a power on and a power off each), ``upgrade cluster`` to the next
  with InPlace (no BMC involved), and ``delete cluster`` (every server powered off).

Each figure is printed with its ratio to the baseline per server. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the emulator's launcher lives with the tests

from tests.harness import run_anywhere  # noqa: E402
from tests.providers.tinkerbell.spec import ROLES, write_csv, write_spec  # noqa: E402
from tests.redfish import Emulator, fake_systems, start  # noqa: E402


def baseline(emulator: Emulator, count: int) -> float:
    """Seconds per server for PXE once, power on and wait, power off and wait, with sushy, sequentially."""
    import sushy
    from sushy import auth

    root = sushy.Sushy(
        f"{emulator.url}/redfish/v1",
        verify=False,
        auth=auth.BasicAuth(emulator.username, emulator.password),
    )
    systems = [root.get_system(f"/redfish/v1/Systems/{s.uuid}") for s in emulator.systems[:count]]

    def wait(system: object, wanted: object) -> None:
        while True:
            system.refresh()  # type: ignore[attr-defined]
            if system.power_state == wanted:  # type: ignore[attr-defined]
                return
            time.sleep(0.5)

    started = time.perf_counter()
    for system in systems:
        system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
        system.reset_system(sushy.RESET_ON)
        wait(system, sushy.POWER_STATE_ON)
        system.reset_system(sushy.RESET_FORCE_OFF)
        wait(system, sushy.POWER_STATE_OFF)
    return (time.perf_counter() - started) / count


def cli(folder: Path, *args: str) -> float:
    started = time.perf_counter()
    result = run_anywhere(folder, *args, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"anywhere {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-servers", type=int, default=3)
    args = parser.parse_args()
    emulator = start(fake_systems(len(ROLES)))
    try:
        per_server = baseline(emulator, args.baseline_servers)
        print(
            f"baseline: {per_server:.2f} s per server (PXE once, on, wait, off, wait; sequential sushy)",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="anywhere-bench-") as tmp:
            folder = Path(tmp)
            name = "bench"
            csv = write_csv(folder / "hardware.csv", emulator, ROLES)
            figures = [
                (
                    "create 1+2",
                    3,
                    cli(
                        folder,
                        "create",
                        "cluster",
                        "-f",
                        str(write_spec(folder, name, "1.30")),
                        "--hardware-csv",
                        str(csv),
                    ),
                ),
                (
                    "rolling upgrade 1+2",
                    3,
                    cli(folder, "upgrade", "cluster", "-f", str(write_spec(folder, name, "1.31"))),
                ),
                (
                    "in-place upgrade 1+2",
                    3,
                    cli(
                        folder,
                        "upgrade",
                        "cluster",
                        "-f",
                        str(write_spec(folder, name, "1.32", strategy="InPlace")),
                    ),
                ),
                ("delete 1+2", 3, cli(folder, "delete", "cluster", name)),
            ]
        for label, servers, seconds in figures:
            ratio = seconds / per_server
            print(
                f"{label:>22}: {seconds:6.1f} s  = {ratio:5.2f} x baseline per server ({servers} servers)",
                flush=True,
            )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
