"""The `anywhere` command: bad input of every kind ends in a clear one-line reason and exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from anywhere.api import dump_config
from anywhere.api.generate import generate_config
from anywhere.api.infra import PROVIDERS
from anywhere.cli.main import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def valid_text() -> str:
    return dump_config(generate_config("demo", "sim"))


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_generated_config_validates(tmp_path: Path, provider: str) -> None:
    code, output = invoke("generate", "clusterconfig", "demo", "--provider", provider)
    assert code == 0, output
    path = write(tmp_path, "c.yaml", output)
    code, output = invoke("validate", "-f", str(path))
    assert code == 0, output
    assert output.strip().splitlines()[-1].startswith(f"{path}: Cluster demo is valid")


def test_generate_unknown_provider_fails() -> None:
    code, output = invoke("generate", "clusterconfig", "demo", "--provider", "mars")
    assert code == 2
    assert "unknown provider 'mars'" in output


def test_version() -> None:
    code, output = invoke("version")
    assert code == 0
    assert output.startswith("anywhere ")


BAD_INPUTS = [
    ("empty", "", "the file is empty"),
    ("whitespace", "  \n\n", "the file is empty"),
    ("binary", b"\x00\x01\x02\xff", "binary file, not YAML"),
    ("latin1", "name: caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
    (
        "syntax",
        "apiVersion: anywhere.eks.amazonaws.com/v1alpha1\nkind: Cluster\nmetadata: {name: [x\n",
        "YAML syntax error",
    ),
    ("scalar document", "just a string\n", "not a Kubernetes object"),
    ("no kind", "foo: bar\n", "has no apiVersion or kind"),
    (
        "no cluster",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        "no Cluster of anywhere.eks.amazonaws.com/v1alpha1 found",
    ),
    (
        "wrong group",
        "apiVersion: eks.amazonaws.com/v1alpha1\nkind: Cluster\nmetadata: {name: x}\n",
        "has apiVersion 'eks.amazonaws.com/v1alpha1', expected anywhere.eks.amazonaws.com/v1alpha1",
    ),
    (
        "wrong version",
        "apiVersion: anywhere.eks.amazonaws.com/v1beta3\nkind: Cluster\nmetadata: {name: x}\n",
        "unsupported apiVersion 'anywhere.eks.amazonaws.com/v1beta3'",
    ),
    (
        "unknown kind",
        "apiVersion: anywhere.eks.amazonaws.com/v1alpha1\nkind: Clustr\nmetadata: {name: x}\n",
        "unknown kind 'Clustr' in anywhere.eks.amazonaws.com/v1alpha1; did you mean Cluster?",
    ),
]


@pytest.mark.parametrize(("content", "reason"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gives_one_line_reason(tmp_path: Path, content: str | bytes, reason: str) -> None:
    path = write(tmp_path, "bad.yaml", content)
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert str(path) in lines[0]
    assert reason in lines[0]


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "apiVersion: x\nkind: Cluster\nmetadata:\n  name: [unclosed\n")
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    assert f"{path}:5:" in output or f"{path}:4:" in output


def test_missing_file(tmp_path: Path) -> None:
    code, output = invoke("validate", "-f", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "file not found" in output


def test_two_clusters(tmp_path: Path, valid_text: str) -> None:
    second = valid_text.replace("name: demo\n", "name: other\n", 1).split("---")[0]
    path = write(tmp_path, "two.yaml", valid_text + "---\n" + second)
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    assert "2 Clusters (demo, other) in one file" in output


def test_ref_to_missing_machine_config(tmp_path: Path, valid_text: str) -> None:
    text = valid_text.replace("name: demo-cp", "name: demo-cpx", 1)  # the ref, not the object
    path = write(tmp_path, "ref.yaml", text)
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    assert "SimMachineConfig/demo-cpx is not defined" in output
    assert f"{path}:" in output


def test_unknown_field_names_path_file_line_and_suggests(tmp_path: Path, valid_text: str) -> None:
    text = valid_text.replace("  kubernetesVersion:", "  kubernetesVersoin:", 1)
    path = write(tmp_path, "typo.yaml", text)
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "kubernetesVersoin" in row)
    assert f"{path}:{line}: Cluster/demo: spec.kubernetesVersoin: unknown field 'kubernetesVersoin'" in output
    assert "did you mean 'kubernetesVersion'" in output


def test_wrong_type_and_every_error_at_once(tmp_path: Path, valid_text: str) -> None:
    data = list(yaml.safe_load_all(valid_text))
    data[0]["spec"]["controlPlaneConfiguration"]["count"] = "three"
    data[0]["spec"]["workerNodeGroupConfigurations"][0]["count"] = 1.5
    data[1]["spec"]["bogus"] = True
    path = write(tmp_path, "types.yaml", yaml.safe_dump_all(data))
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    assert "spec.controlPlaneConfiguration.count: must be a whole number (got 'three')" in output
    assert "spec.workerNodeGroupConfigurations[0].count: must be a whole number (got 1.5)" in output
    assert "SimDatacenterConfig/demo: spec.bogus: unknown field 'bogus'" in output
    assert "3 error(s)" in output


def test_static_errors_listed_one_per_line(tmp_path: Path, valid_text: str) -> None:
    text = valid_text.replace("count: 3", "count: 2", 1).replace("192.168.0.0/16", "10.10.0.0/16")
    path = write(tmp_path, "static.yaml", text)
    code, output = invoke("validate", "-f", str(path))
    assert code == 1
    lines = output.strip().splitlines()
    assert any(
        "spec.controlPlaneConfiguration.count: control plane node count cannot be an even number" in x
        for x in lines
    )
    assert any("overlaps the node subnet 10.10.0.0/24" in x for x in lines)
    assert any(
        "control plane endpoint 10.10.0.10 conflicts with pods CIDR block 10.10.0.0/16" in x for x in lines
    )
    assert lines[-1].endswith("3 validation error(s); fix them and run again")
    assert all(x.startswith(f"{path}:") for x in lines[:-1])


def test_update_validation(tmp_path: Path, valid_text: str) -> None:
    old = write(tmp_path, "old.yaml", valid_text)
    new = write(tmp_path, "new.yaml", valid_text.replace("host: 10.10.0.10", "host: 10.10.0.11"))
    code, output = invoke("validate", "-f", str(new), "--from", str(old))
    assert code == 1
    assert "spec.controlPlaneConfiguration.endpoint.host: field is immutable" in output
    upgrade = write(
        tmp_path, "up.yaml", valid_text.replace("kubernetesVersion: '1.33'", "kubernetesVersion: '1.34'")
    )
    code, output = invoke("validate", "-f", str(upgrade), "--from", str(old))
    assert code == 0, output


def test_unquoted_version_is_read_as_text(tmp_path: Path, valid_text: str) -> None:
    text = valid_text.replace("kubernetesVersion: '1.33'", "kubernetesVersion: 1.30")
    path = write(tmp_path, "v.yaml", text)
    code, output = invoke("validate", "-f", str(path))
    assert code == 0, output
    assert "Kubernetes 1.30" in output


def test_console_script_never_shows_a_traceback(tmp_path: Path) -> None:
    """The installed entry point, end to end, on input that is not YAML at all."""
    path = write(tmp_path, "bin.yaml", b"\x7fELF\x00\x00")
    result = subprocess.run(
        [sys.executable, "-m", "anywhere", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("binary file, not YAML; give the cluster configuration file")


def test_bad_arguments_exit_nonzero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "anywhere", "validate"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Missing option '--file'" in result.stderr
