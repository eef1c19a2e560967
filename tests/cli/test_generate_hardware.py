"""`anywhere generate hardware -z hardware.csv [-o FILE]`: the Hardware objects and BMC Secrets of a
hardware CSV as YAML; a bad CSV is reported in full, without a traceback or a password."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from anywhere.api.infra.hardware import hardware_objects, parse_hardware_csv
from anywhere.cli.main import app
from tests.conftest import start_server, stop_server

runner = CliRunner()
PASSWORD = "Pa55-w0rd!"
CSV = f"""hostname,bmc_ip,bmc_username,bmc_password,mac,ip_address,netmask,gateway,nameservers,labels,disk
hw-1,127.0.0.1:8443,admin,{PASSWORD},52:54:00:00:00:01,10.10.0.11,255.255.255.0,10.10.0.1,1.1.1.1,type=cp,/dev/sda
hw-2,127.0.0.1:8443,admin,{PASSWORD},52:54:00:00:00:02,10.10.0.12,255.255.255.0,10.10.0.1,1.1.1.1,type=worker,/dev/sda
"""
BAD_CSV = f"""hostname,bmc_ip,bmc_username,bmc_password,mac,ip_address,netmask,gateway,nameservers,labels,disk
hw-1,127.0.0.1:8443,admin,{PASSWORD},zz:54:00:00:00:01,10.10.0.11,255.255.255.0,10.99.0.1,1.1.1.1,type=cp,sda
hw-1,127.0.0.1:8443,admin,{PASSWORD},52:54:00:00:00:02,10.10.0.12,255.255.255.0,10.10.0.1,1.1.1.1,{PASSWORD},/dev/sda
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["generate", "hardware", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str, name: str = "hardware.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_prints_the_objects(tmp_path: Path) -> None:
    path = write(tmp_path, CSV)
    code, stdout, stderr = invoke("-z", str(path))
    assert code == 0, stderr
    documents = list(yaml.safe_load_all(stdout))
    assert documents == hardware_objects(parse_hardware_csv(CSV, str(path)))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Secret", "bmc-hw-1-auth"),
        ("Hardware", "hw-1"),
        ("Secret", "bmc-hw-2-auth"),
        ("Hardware", "hw-2"),
    ]
    assert PASSWORD not in stdout  # base64 in data, as an API server stores it


def test_writes_a_private_file(tmp_path: Path) -> None:
    path = write(tmp_path, CSV)
    output = tmp_path / "out" / "hardware.yaml"
    code, stdout, stderr = invoke("--hardware-csv", str(path), "--output", str(output))
    assert code == 0, stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert list(yaml.safe_load_all(output.read_text())) == hardware_objects(parse_hardware_csv(CSV, "x"))
    assert stdout.strip() == (
        f"Wrote 2 Hardware and 2 BMC Secret(s) to {output} (readable by you only: it holds BMC passwords)"
    )
    # An existing file readable by others is replaced by a private one.
    output.write_text("old")
    output.chmod(0o644)
    code, _, stderr = invoke("-z", str(path), "-o", str(output))
    assert code == 0, stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert output.read_text() != "old"
    assert [p.name for p in output.parent.iterdir()] == ["hardware.yaml"]  # no partial file left


def test_a_bad_csv_lists_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, BAD_CSV)
    output = tmp_path / "hardware.yaml"
    code, stdout, stderr = invoke("-z", str(path), "-o", str(output))
    assert code == 1
    assert stdout == ""
    assert not output.exists()
    lines = stderr.strip().splitlines()
    assert lines == [
        f"{path} line 2, column mac: 'zz:54:00:00:00:01' is not a MAC address (six hex pairs, e.g. "
        "52:54:00:12:34:56)",
        f"{path} line 2, column gateway: 10.99.0.1 is not in the machine's subnet 10.10.0.0/24 (ip_address "
        "10.10.0.11, netmask 255.255.255.0); the machine could not reach it: fix the gateway, ip_address or "
        "netmask",
        f"{path} line 2, column disk: 'sda' is not a device path; give the disk the OS is installed on as "
        "/dev/..., e.g. /dev/sda or /dev/nvme0n1",
        f"{path} line 3, column hostname: hw-1 is also the hostname of line 2; it names the Hardware object, "
        "so each machine needs its own",
        f"{path} line 3, column labels: '<redacted>' is not a label; write key=value, pairs separated by '|' "
        "(e.g. type=cp|rack=r1)",
        f"error: {path}: 5 problems in the hardware CSV; fix them and run again",
    ]
    assert PASSWORD not in stderr


def test_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    code, _, stderr = invoke("-z", str(missing))
    assert (code, stderr.strip()) == (1, f"error: hardware CSV {missing}: no such file")
    binary = tmp_path / "hw.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    code, _, stderr = invoke("-z", str(binary))
    assert (code, stderr.strip()) == (1, f"error: hardware CSV {binary}: not a text file (UTF-8 expected)")
    code, _, stderr = invoke("-z", str(tmp_path))
    assert code == 1
    assert stderr.startswith(f"error: hardware CSV {tmp_path}: cannot read it: ")
    path = write(tmp_path, CSV)
    code, _, stderr = invoke("-z", str(path), "-o", str(tmp_path))  # a directory
    assert code == 1
    assert stderr.startswith(f"error: --output {tmp_path}: cannot write it: ")


def test_the_csv_is_required() -> None:
    code, _, stderr = invoke()
    assert code == 2
    assert "--hardware-csv" in stderr


def test_the_cli_does_not_import_a_redfish_client() -> None:
    """Every command imports this module: it must stay cheap (BMC checks import what they need)."""
    script = "import sys, anywhere.cli.main; print(sorted(m for m in sys.modules if m.startswith('sushy')))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_kubectl_applies_the_output(tmp_path: Path) -> None:
    """The output is what `kubectl apply` takes, and applying it twice changes nothing (Secret values
    in ``data``, as the API server keeps them); `kubectl get hw` shows who holds which hardware."""
    code, stdout, stderr = invoke("-z", str(write(tmp_path, CSV)))
    assert code == 0, stderr
    server = start_server(tmp_path / "plane")
    try:
        server.kubectl("create", "namespace", "eksa-system")
        applied = server.kubectl("apply", "-f", "-", input=stdout).stdout.splitlines()
        assert applied == [
            "secret/bmc-hw-1-auth created",
            "hardware.tinkerbell.org/hw-1 created",
            "secret/bmc-hw-2-auth created",
            "hardware.tinkerbell.org/hw-2 created",
        ]
        again = server.kubectl("apply", "-f", "-", input=stdout).stdout.splitlines()
        assert again == [line.replace("created", "unchanged") for line in applied]
        server.kubectl(
            "label", "hw", "hw-1", "-n", "eksa-system", "v1alpha1.tinkerbell.org/ownerName=c1-cp-a"
        )
        table = server.kubectl("get", "hw", "-n", "eksa-system").stdout.splitlines()
        assert table[0].split() == ["NAME", "OWNER", "MAC", "IP", "BMC", "AGE"]
        assert table[1].split()[:5] == ["hw-1", "c1-cp-a", "52:54:00:00:00:01", "10.10.0.11", "127.0.0.1"]
        assert table[2].split()[:4] == ["hw-2", "52:54:00:00:00:02", "10.10.0.12", "127.0.0.1"]
        assert "hardware.tinkerbell.org/hw-2" in server.kubectl("get", "tinkerbell", "-A").stdout
    finally:
        stop_server(server)
