"""Lint, format and type checks run with the tests, so CI enforces them (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600
    )


def test_ruff_lint__whole_repository__no_findings():
    result = run_tool("ruff", "check", ".", "--output-format", "concise")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_ruff_format__whole_repository__already_formatted():
    result = run_tool("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy__runtime_package__no_type_errors():
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
