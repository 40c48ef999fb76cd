"""``mailplane validate``: the same checks as the Pulumi program, on stack files."""

from __future__ import annotations

from click.testing import CliRunner
from stack_copies import ROOT

from mailplane.cli import main

INVALID = (
    ROOT / "tests" / "fixtures" / "audit" / "invalid-head-stack" / "head" / "Pulumi.example-delegated-imap-smtp.yaml"
)


def test_validate__example_stacks__ok_exit_0(monkeypatch):
    monkeypatch.chdir(ROOT)

    result = CliRunner().invoke(main, ["validate"])

    assert result.exit_code == 0
    assert result.output.count("ok: stacks/Pulumi.") == 4


def test_validate__plain_http_redirect__names_the_key_exit_1():
    result = CliRunner().invoke(main, ["validate", str(INVALID)])

    assert result.exit_code == 1
    assert (
        "mailplane:app.redirectUris[0]: 'http://crm.northwind.com/oauth/microsoft/callback' uses plain http"
        in result.output
    )
    assert "1 of 1 stack file invalid." in result.output
