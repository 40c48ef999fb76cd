"""Golden tests of ``mailplane audit``: before/after stack pairs, the exact markdown and JSON, and the exit code.

Regenerate after an intended change with ``MAILPLANE_UPDATE_GOLDEN=1 pytest tests/test_audit_golden.py`` and review
the diff of tests/golden/audit/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailplane.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
GOLDEN = Path(__file__).parent / "golden" / "audit"
UPDATE = os.environ.get("MAILPLANE_UPDATE_GOLDEN") == "1"

EXPECTED_EXIT = {
    "added-mail-readwrite-application": 1,
    "switched-scoping-to-tenant-wide": 1,
    "added-mailbox-to-scope": 1,
    "shortened-rotation": 0,
    "added-redirect-uri": 1,
    "lengthened-rotation-violates-policy": 2,
    "invalid-head-stack": 2,
}


def run_audit(case: str, monkeypatch, *extra: str):
    monkeypatch.chdir(FIXTURES / case)
    return CliRunner().invoke(
        main, ["audit", "--base-dir", "base", "--head-dir", "head", "--today", "2026-11-22", *extra]
    )


def check_golden(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_fixture_cases__every_folder_has_an_expected_exit_code():
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(EXPECTED_EXIT)


@pytest.mark.parametrize("case", sorted(EXPECTED_EXIT))
def test_audit_markdown__before_after_pair__matches_golden_and_exit_code(case, monkeypatch):
    result = run_audit(case, monkeypatch)

    check_golden(GOLDEN / f"{case}.md", result.output)
    assert result.exit_code == EXPECTED_EXIT[case], result.output


@pytest.mark.parametrize("case", sorted(EXPECTED_EXIT))
def test_audit_json__before_after_pair__matches_golden_and_exit_code(case, monkeypatch):
    result = run_audit(case, monkeypatch, "--format", "json")

    check_golden(GOLDEN / f"{case}.json", result.output)
    assert result.exit_code == EXPECTED_EXIT[case]
    assert json.loads(result.output)["exitCode"] == EXPECTED_EXIT[case]
