"""Benchmark of the vsphere provider against govmomi's vCenter simulator, through the CLI.

    .venv/bin/python bench/vsphere.py [--baseline-vms 5]

It builds and starts the simulator (tests/vcsim, as the tests do), then measures, in one run:

- baseline: one VM's life done directly with pyVmomi, one call after another as a careful script
  would: clone the template, power on, wait for the guest's IP, power off, destroy (per VM, over
  ``--baseline-vms`` VMs). This is what vCenter (here the simulator) itself costs;
- ``anywhere create cluster`` of a 1+1 and of a 3+2 cluster (preflight, management plane, clones,
  IPs, nodes registered on the VMs' behalf, Ready), ``upgrade cluster`` scaling the 3+2 cluster's
  workers to 4, ``upgrade cluster`` to Kubernetes 1.34 (every VM replaced from the new template,
  rolling), and ``delete cluster`` of each (every VM destroyed).

Each figure is printed with its ratio to the baseline per VM, so it reads the same on a slower or
busier host. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the simulator's launcher lives with the tests

from tests.harness import run_anywhere  # noqa: E402
from tests.providers.vsphere.spec import write  # noqa: E402
from tests.vcsim import DEFAULT_CONFIG, Vcsim, build, connect, start, wait_for  # noqa: E402


def baseline(v: Vcsim, count: int) -> float:
    """Seconds per VM for clone, power on, IP, power off, destroy with pyVmomi, sequentially."""
    from pyVmomi import vim

    si = connect(v)
    content = si.content
    datacenter = content.searchIndex.FindByInventoryPath("DC0")
    template = content.searchIndex.FindByInventoryPath("DC0/vm/Templates/ubuntu-2204-kube-v1-33")
    folder = content.searchIndex.FindByInventoryPath("DC0/vm/anywhere")
    pool = content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0/Resources")
    if not (datacenter and template and folder and pool):
        raise SystemExit("the simulator lacks DC0, its template, folder or resource pool")

    def wait(task: object) -> object:
        wait_for(si, task, "info.state", lambda s: str(s) in ("success", "error"), 60)
        info = task.info  # type: ignore[attr-defined]
        if str(info.state) != "success":
            raise RuntimeError(f"task failed: {info.error}")
        return info.result

    started = time.perf_counter()
    for index in range(count):
        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), powerOn=False, template=False)
        vm = wait(template.CloneVM_Task(folder=folder, name=f"baseline-{index}", spec=spec))
        wait(vm.PowerOnVM_Task())
        wait_for(si, vm, "guest.ipAddress", bool, 60)
        wait(vm.PowerOffVM_Task())
        wait(vm.Destroy_Task())
    return (time.perf_counter() - started) / count


def timed(folder: Path, v: Vcsim, *args: str) -> float:
    env = {"EKSA_VSPHERE_USERNAME": v.username, "EKSA_VSPHERE_PASSWORD": v.password}
    started = time.perf_counter()
    result = run_anywhere(folder, *args, env=env, timeout=None)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"anywhere {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-vms", type=int, default=5)
    options = parser.parse_args()

    binary = build()
    with tempfile.TemporaryDirectory(prefix="anywhere-bench-vsphere-") as scratch:
        folder = Path(scratch)
        v = start(
            DEFAULT_CONFIG,
            username="bench@vsphere.local",
            password=secrets.token_hex(16),
            binary=binary,
            log_path=folder / "vcsim.log",
        )
        try:
            per_vm = baseline(v, options.baseline_vms)
            print(f"baseline: one VM cloned, powered on, IP reported, destroyed with pyVmomi: {per_vm:.3f} s")

            def report(what: str, seconds: float) -> None:
                print(f"{what}: {seconds:.1f} s ({seconds / per_vm:.0f}x a bare VM)")

            small = write(folder, "small", v, control_planes=1, workers=1)
            report("create 1+1", timed(folder, v, "create", "cluster", "-f", str(small)))
            large = write(folder, "large", v, control_planes=3, workers=2)
            report("create 3+2", timed(folder, v, "create", "cluster", "-f", str(large)))
            write(folder, "large", v, control_planes=3, workers=4)
            report("scale 3+2 -> 3+4", timed(folder, v, "upgrade", "cluster", "-f", str(large)))
            write(folder, "large", v, control_planes=3, workers=4, version="1.34")
            report(
                "upgrade 3+4 1.33 -> 1.34 (7 VMs replaced)",
                timed(folder, v, "upgrade", "cluster", "-f", str(large)),
            )
            report("delete 1+1", timed(folder, v, "delete", "cluster", "small"))
            report("delete 3+4", timed(folder, v, "delete", "cluster", "large"))
        finally:
            for name in ("small", "large"):
                if (folder / name).exists():
                    subprocess.run(
                        [sys.executable, "-m", "anywhere", "delete", "cluster", name],
                        cwd=folder,
                        env={
                            **os.environ,
                            "EKSA_VSPHERE_USERNAME": v.username,
                            "EKSA_VSPHERE_PASSWORD": v.password,
                        },
                        capture_output=True,
                        check=False,
                    )
            v.stop()


if __name__ == "__main__":
    main()
