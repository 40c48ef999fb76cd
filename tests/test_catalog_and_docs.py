"""The shipped permission catalog and the generated README table stay in sync with their sources."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from mailplane.permissions import catalog
from tests.conftest import REPO_ROOT


def test_catalog__rebuilt_from_microsoft_data__identical_to_committed(shared_dir):
    result = subprocess.run(
        [
            sys.executable,
            "scripts/build_catalog.py",
            "--check",
            "--data",
            str(shared_dir / "data" / "graph-permissions"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_catalog__well_known_facts__match_microsoft():
    send = catalog().require("Mail.Send", "application")
    assert (send.id, send.privilege_level, send.admin_consent) == ("b633e1c5-b582-4048-a93e-9f11b44c7e96", 3, True)
    assert catalog().require("offline_access", "delegated").id == "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"
    assert catalog().types_of("IMAP.AccessAsUser.All") == ("delegated",)
    assert catalog().require("Exchange.ManageAsApp", "application", resource="exchangeOnline").privilege_level == 4


def test_catalog__no_descriptions_copied():
    text = (REPO_ROOT / "mailplane" / "catalog" / "graph_permissions.json").read_text()
    assert "Description" not in text
    assert "Allows the app" not in text


def test_readme_preset_table__regenerated__unchanged():
    spec = importlib.util.spec_from_file_location("update_readme", REPO_ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (REPO_ROOT / "README.md").read_text()
    assert module.render(text) == text, "README.md's preset table is stale: run python scripts/update_readme.py"
    assert "| `outbound-send` | `Mail.Send` | application | 3 (high) | yes |" in text


def test_readme__first_lines__two_quickstart_commands_and_ci_runs_the_test_one():
    head = (REPO_ROOT / "README.md").read_text().splitlines()[:6]
    assert any(line.startswith("./scripts/demo") for line in head)
    assert any(line.startswith("./scripts/test") for line in head)
    assert "./scripts/test" in (REPO_ROOT / ".ci" / "run").read_text()
