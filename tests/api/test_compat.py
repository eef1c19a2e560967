"""EKS Anywhere's own spec test files (../shared/compat) get their expected verdict from `anywhere validate -f`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from anywhere.cli.main import app
from tests.conftest import COMPAT_DIR

_MANIFEST = COMPAT_DIR / "cases.json"
CASES = json.loads(_MANIFEST.read_text())["cases"] if _MANIFEST.exists() else []


def test_compat_material_is_present() -> None:
    assert CASES, f"no compat cases at {_MANIFEST}; the shared folder must sit beside the checkout"


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_case_gets_expected_verdict(case: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["validate", "-f", str(COMPAT_DIR / case["file"])])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    verdict = "valid" if result.exit_code == 0 else "invalid"
    assert verdict == case["expect"], f"{case['name']}: exit {result.exit_code}\n{result.output}"
    if verdict == "invalid":
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert case["file"] in result.output, "the error must name the file"
