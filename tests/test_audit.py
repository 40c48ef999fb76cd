"""``mailplane audit`` beyond the golden pairs: thresholds, added/removed stacks, git refs, the shared policy rules."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from stack_copies import EXAMPLES, TODAY, example_names, stack_document, write_stack_copy

from mailplane.audit import StackSide, audit_stacks, diff_grants
from mailplane.cli import main
from mailplane.grants import compute_grants
from mailplane.policy_rules import PolicySettings, PolicyViolation, tenant_violations
from mailplane.tenant import load_stack_file, parse_tenant_config

FIXTURES = Path(__file__).parent / "fixtures" / "audit"


def side(path: Path) -> StackSide:
    return StackSide(str(path), config=parse_tenant_config(load_stack_file(path), source=str(path), today=TODAY))


def example_side(stack: str) -> StackSide:
    return side(Path("stacks") / f"Pulumi.{stack}.yaml")


def edited_side(tmp_path: Path, stack: str, edit) -> StackSide:
    return side(write_stack_copy(tmp_path, stack, edit))


def test_same_stacks__nothing_changed__exit_0_and_all_unchanged():
    stacks = {name: example_side(name) for name in example_names()}

    report = audit_stacks(stacks, stacks, today=TODAY)

    assert report.exit_code == 0
    assert {s.status for s in report.stacks} == {"unchanged"}


def test_stack_added__every_grant_is_new__status_added_and_review_needed():
    report = audit_stacks({}, {"example-inbound-import": example_side("example-inbound-import")}, today=TODAY)

    (audit,) = report.stacks
    assert audit.status == "added"
    assert [(c.section, c.action, c.subject, c.risk) for c in audit.changes] == [
        ("permissions", "added", "Mail.ReadWrite", "high"),
        ("permissions", "added", "User.Read", "medium"),
        ("mailboxes", "gains", "billing@fabrikam.com", "high"),
        ("mailboxes", "gains", "support@fabrikam.com", "high"),
        ("app", "added", "owner", "medium"),
        ("credentials", "added", "helpdesk-prod-workload", "medium"),
    ]
    assert report.exit_code == 1


def test_stack_removed__grants_go_away__no_risk_increase():
    report = audit_stacks({"example-outbound-send": example_side("example-outbound-send")}, {}, today=TODAY)

    (audit,) = report.stacks
    assert audit.status == "removed"
    assert audit.risk == "none"
    assert report.exit_code == 0


def test_delegated_user_read_added__threshold_high__exit_0_but_medium__exit_1(tmp_path):
    def add_user_read(config):
        config["mailplane:permissions"] = [{"name": "User.Read", "type": "delegated"}]

    base = {"s": example_side("example-outbound-send")}
    head = {"s": edited_side(tmp_path, "example-outbound-send", add_user_read)}

    assert audit_stacks(base, head, today=TODAY, fail_on="high").exit_code == 0
    assert audit_stacks(base, head, today=TODAY, fail_on="medium").exit_code == 1


def test_audience_widened__threshold_highest__still_needs_review(tmp_path):
    def multi_tenant(config):
        config["mailplane:app"]["signInAudience"] = "AzureADMultipleOrgs"

    base = {"s": example_side("example-delegated-imap-smtp")}
    head = {"s": edited_side(tmp_path, "example-delegated-imap-smtp", multi_tenant)}
    allow = PolicySettings(multi_tenant_apps=("Northwind CRM email",))

    report = audit_stacks(base, head, today=TODAY, fail_on="highest", settings=allow)

    (change,) = report.stacks[0].changes
    assert (change.subject, change.always_review, change.details) == (
        "sign-in audience",
        True,
        {"before": "AzureADMyOrg", "after": "AzureADMultipleOrgs"},
    )
    assert report.exit_code == 1


def test_audience_widened__not_allow_listed__blocked_by_the_shared_rule(tmp_path):
    def multi_tenant(config):
        config["mailplane:app"]["signInAudience"] = "AzureADMultipleOrgs"

    base = {"s": example_side("example-delegated-imap-smtp")}
    head = {"s": edited_side(tmp_path, "example-delegated-imap-smtp", multi_tenant)}

    report = audit_stacks(base, head, today=TODAY)

    assert [v.rule for v in report.stacks[0].violations] == ["single-tenant-audience"]
    assert report.exit_code == 2


def test_tenant_wide_turned_off__risk_decrease__exit_0():
    tenant_wide = FIXTURES / "switched-scoping-to-tenant-wide"
    base = {"s": side(tenant_wide / "head" / "Pulumi.example-inbound-import.yaml")}
    head = {"s": side(tenant_wide / "base" / "Pulumi.example-inbound-import.yaml")}

    report = audit_stacks(base, head, today=TODAY)

    assert ("tenant-wide", "off") in [(c.section, c.action) for c in report.stacks[0].changes]
    assert report.exit_code == 0


def test_unknown_threshold__value_error():
    with pytest.raises(ValueError, match="unknown threshold 'extreme'"):
        audit_stacks({}, {}, today=TODAY, fail_on="extreme")


def test_diff_grants__federated_subject_changed__medium_risk(tmp_path):
    def other_subject(config):
        config["mailplane:credentials"]["federated"][0]["subject"] = "66666666-6666-6666-6666-666666666666"

    before = compute_grants(example_side("example-inbound-import").config)
    after = compute_grants(edited_side(tmp_path, "example-inbound-import", other_subject).config)

    (change,) = diff_grants(before, after, today=TODAY)
    assert (change.section, change.action, change.risk) == ("credentials", "changed", "medium")
    assert change.details["changed"] == {
        "subject": {"before": "55555555-5555-5555-5555-555555555555", "after": "66666666-6666-6666-6666-666666666666"}
    }


@pytest.mark.parametrize("stack", example_names())
def test_tenant_violations__example_stack__none(stack):
    config = example_side(stack).config

    assert tenant_violations(config, compute_grants(config), today=TODAY) == []


def test_tenant_violations__no_owner_declared__app_has_owners_violation(tmp_path):
    def no_owners(config):
        del config["mailplane:app"]["owners"]

    config = edited_side(tmp_path, "example-outbound-send", no_owners).config

    assert tenant_violations(config, compute_grants(config), today=TODAY) == [
        PolicyViolation(
            "app-has-owners",
            "Contoso LMS system mail: has no owners, so nobody is accountable for it and only directory admins can "
            "manage it. Add the object id of a responsible user or group under mailplane:app.owners.",
        )
    ]


# -- the command -----------------------------------------------------------------------------------------------


def test_cli__policy_config_raises_secret_limit__lengthened_rotation_only_needs_review(tmp_path, monkeypatch):
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"client-secret-lifetime": {"maxLifetimeMonths": 24}}), encoding="utf-8")
    monkeypatch.chdir(FIXTURES / "lengthened-rotation-violates-policy")

    result = CliRunner().invoke(
        main,
        ["audit", "--base-dir", "base", "--head-dir", "head", "--today", "2026-11-22", "--policy-config", str(config)],
    )

    assert result.exit_code == 1, result.output
    assert "Policy violations" not in result.output


def test_cli__dir_and_ref_mixed__usage_error_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["audit", "--base", "main", "--head-dir", str(tmp_path)])

    assert result.exit_code == 2
    assert "give --base-dir and --head-dir together" in result.output


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_cli__two_git_refs__reads_stacks_with_git_show(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    shutil.copy(EXAMPLES[0], repo / "stacks")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "base")
    write_stack_copy(repo / "stacks", "example-outbound-send")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "head")
    monkeypatch.chdir(repo)

    result = CliRunner().invoke(main, ["audit", "--base", "HEAD~1", "--format", "json", "--today", "2026-11-22"])

    report = json.loads(result.output)
    assert [(s["stack"], s["status"], s["headSource"]) for s in report["stacks"]] == [
        ("example-delegated-graph-sync", "unchanged", "HEAD:stacks/Pulumi.example-delegated-graph-sync.yaml"),
        ("example-outbound-send", "added", "HEAD:stacks/Pulumi.example-outbound-send.yaml"),
    ]
    assert result.exit_code == 1


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_cli__unknown_base_ref__says_to_fetch_it(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    monkeypatch.chdir(repo)

    result = CliRunner().invoke(main, ["audit", "--base", "origin/main"])

    assert result.exit_code == 1
    assert "reading the stacks at 'origin/main': no such commit. Fetch it first" in result.output


def test_stack_document_helper__reads_config():
    assert "mailplane:app" in stack_document("example-outbound-send")["config"]
    assert dt.date(2026, 11, 22) == TODAY
