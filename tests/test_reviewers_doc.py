"""README.md, for reviewers: its rendered audit example is exactly what ``mailplane audit`` prints for the fixtures."""

from __future__ import annotations

import os
import re
import sys

from click.testing import CliRunner
from stack_copies import ROOT

from mailplane.cli import main

DOC = ROOT / "README.md"
PAIR = ROOT / "tests" / "fixtures" / "audit-docs"
BLOCK = re.compile(r"(<!-- BEGIN audit example[^\n]*-->\n)(.*?)(<!-- END audit example -->)", re.DOTALL)


def rendered_example(monkeypatch) -> tuple[str, int]:
    monkeypatch.chdir(PAIR)
    result = CliRunner().invoke(main, ["audit", "--base-dir", "main", "--head-dir", "pr-42", "--today", "2026-11-22"])
    return result.output, result.exit_code


def as_quote(markdown: str) -> str:
    """The audit comment as a markdown blockquote, so its headings stay out of the README's outline."""
    return "".join(f"> {line}\n" if line else ">\n" for line in markdown.splitlines())


def test_reviewers_doc__audit_example__matches_what_the_audit_renders(monkeypatch):
    output, exit_code = rendered_example(monkeypatch)
    text = DOC.read_text(encoding="utf-8")
    if os.environ.get("MAILPLANE_UPDATE_GOLDEN") == "1":
        text = BLOCK.sub(lambda m: m.group(1) + as_quote(output) + m.group(3), text)
        DOC.write_text(text, encoding="utf-8")
    match = BLOCK.search(text)

    assert match is not None, "README.md lost its audit example markers"
    assert match.group(2) == as_quote(output)
    assert exit_code == 1
    assert (
        "| added | `Mail.Send` | application | 3 (high) | required | Exchange RBAC role on 1 mailbox | high |" in output
    )


def test_reviewers_doc__permission_table__names_every_deployer_permission():
    sys.path.insert(0, str(ROOT / "bootstrap"))
    try:
        import deployer_permissions
    finally:
        sys.path.remove(str(ROOT / "bootstrap"))
    text = DOC.read_text(encoding="utf-8")

    for permission in (*deployer_permissions.DEPLOYER_APP_ROLES, *deployer_permissions.DEPLOYER_DIRECTORY_ROLES):
        assert permission.name in text, permission.name


def test_reviewers_doc__policy_table__names_every_rule():
    from mailplane.policy_rules import RULES

    text = DOC.read_text(encoding="utf-8")

    assert all(f"| `{rule.name}` |" in text for rule in RULES)
