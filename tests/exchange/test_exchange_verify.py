"""Post-apply scoping checks: the pure judgements, the verification resource against the emulator, and doctor."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from exchange_tenant import APP_ID, SP_OBJECT_ID, TENANT

from components.exchange.access_policy import ApplicationAccessPolicyProvider
from components.exchange.management_scope import ManagementScopeProvider
from components.exchange.role_assignment import ManagementRoleAssignmentProvider
from components.exchange.security_group import MailSecurityGroupProvider
from components.exchange.service_principal import ServicePrincipalPointerProvider
from components.exchange.verification import ScopeVerificationProvider
from mailplane.cli import main
from mailplane.devtenant.exchange import Fault
from mailplane.exchange.models import AccessPolicyCheck, AuthorizationCheck
from mailplane.exchange.verify import expectations_from_grants, judge_access_policy, judge_rbac
from mailplane.grants import compute_grants
from mailplane.tenant import parse_tenant_config

SEND = "Application Mail.Send"
READ_WRITE = "Application Mail.ReadWrite"


def row(role, *, in_scope, scope="mailplane-contoso"):
    return AuthorizationCheck(role, role.removeprefix("Application "), scope, "CustomRecipientScope", in_scope)


# -- pure judgements ----------------------------------------------------------------------------------------------


def test_judge_rbac__scoped_mailbox_in_scope_of_its_role__as_expected():
    check = judge_rbac("lms@contoso.com", [SEND], [row(SEND, in_scope=True), row(READ_WRITE, in_scope=False)])
    assert (check.outcome, check.detail) == ("as-expected", "in scope of Application Mail.Send")


def test_judge_rbac__scoped_mailbox_outside_scope__unexpected_names_the_role():
    check = judge_rbac("lms@contoso.com", [SEND], [row(SEND, in_scope=False)])
    assert (check.outcome, check.detail) == ("unexpected", "outside the scope of: Application Mail.Send")


def test_judge_rbac__role_missing__unexpected_says_not_assigned():
    assert judge_rbac("lms@contoso.com", [SEND], []).detail == "role not assigned: Application Mail.Send"


def test_judge_rbac__out_of_scope_mailbox_reachable_org_wide__unexpected_names_role_and_scope():
    check = judge_rbac("ceo@contoso.com", [], [row(SEND, in_scope=True, scope="Organization")])
    assert check.detail == "reachable through Application Mail.Send (scope Organization) but must not be"
    assert check.expected == "out-of-scope"


def test_judge_access_policy__denied_for_out_of_scope__as_expected_and_granted_is_unexpected():
    denied = AccessPolicyCheck(APP_ID, "ceo", "Denied")
    assert judge_access_policy("ceo@contoso.com", [], denied).outcome == "as-expected"
    granted = AccessPolicyCheck(APP_ID, "ceo", "Granted")
    assert judge_access_policy("ceo@contoso.com", [], granted).detail == "AccessCheckResult Granted, expected Denied"


def grants_for(mode):
    raw = {
        "tenant": {"id": TENANT, "primaryDomain": "contoso.com"},
        "app": {"displayName": "Contoso LMS"},
        "presets": ["outbound-send"],
        "mailboxes": {"designated": "lms-noreply@contoso.com"},
        "scoping": {"mode": mode, "outOfScopeMailbox": "ceo@contoso.com"},
        "credentials": {"clientSecret": {"anchorDate": "2026-01-01"}},
    }
    return compute_grants(parse_tenant_config(raw))


def test_expectations__rbac_and_access_policy__roles_per_mailbox_and_empty_for_out_of_scope():
    assert expectations_from_grants(grants_for("rbac")) == {"ceo@contoso.com": (), "lms-noreply@contoso.com": (SEND,)}
    assert expectations_from_grants(grants_for("access-policy")) == {
        "ceo@contoso.com": (),
        "lms-noreply@contoso.com": ("access",),
    }


# -- against the emulator -----------------------------------------------------------------------------------------


def apply(provider, props):
    inputs = provider.check({}, props).inputs
    return provider.create(inputs)


@pytest.fixture
def rbac_applied(emulator):
    apply(
        ServicePrincipalPointerProvider(),
        emulator.props(app_id=APP_ID, object_id=SP_OBJECT_ID, display_name="Contoso LMS"),
    )
    apply(ManagementScopeProvider(), emulator.props(name="mailplane-contoso", mailboxes=["lms-noreply@contoso.com"]))
    apply(
        ManagementRoleAssignmentProvider(),
        emulator.props(
            name="mailplane-contoso-mail.send", role=SEND, app=SP_OBJECT_ID, custom_resource_scope="mailplane-contoso"
        ),
    )
    return emulator


def verification_props(emulator, mode="rbac"):
    roles = [SEND] if mode == "rbac" else ["access"]
    return emulator.props(
        mode=mode, app_id=APP_ID, expectations={"lms-noreply@contoso.com": roles, "ceo@contoso.com": []}, triggers=[]
    )


def test_verification__rbac_just_applied__pending_propagation_without_waiting(rbac_applied):
    created = apply(ScopeVerificationProvider(), verification_props(rbac_applied))
    assert created.outs["status"] == "pending-propagation"
    assert created.outs["summary"] == (
        "configured: 1 mailbox(es) in scope, the out-of-scope mailbox denied; pending: Exchange applies changes "
        "within 30 min–2 h (run 'mailplane doctor' later to re-check)"  # noqa: RUF001 - the en dash is intended.
    )
    assert [(c["mailbox"], c["outcome"]) for c in created.outs["checks"]] == [
        ("lms-noreply@contoso.com", "as-expected"),
        ("ceo@contoso.com", "as-expected"),
    ]


def test_verification__scope_widened_out_of_band__refresh_reports_misconfigured(rbac_applied):
    provider = ScopeVerificationProvider()
    created = apply(provider, verification_props(rbac_applied))
    rbac_applied.client().set_management_scope("mailplane-contoso", "(PrimarySmtpAddress -like '*@contoso.com')")
    refreshed = provider.read(created.id, created.outs)
    assert refreshed.outs["status"] == "misconfigured"
    assert "ceo@contoso.com: reachable through Application Mail.Send" in refreshed.outs["summary"]


def test_verification__exchange_refuses_the_test__recorded_as_error_not_raised(rbac_applied):
    rbac_applied.state.inject_fault(Fault.forbidden("Test-ServicePrincipalAuthorization", times=10))
    created = apply(ScopeVerificationProvider(), verification_props(rbac_applied))
    assert created.outs["status"] == "error"
    assert "ExchangeAccessDeniedError" not in created.outs["summary"]
    assert "HTTP 403" in created.outs["summary"]


def test_verification__access_policy_applied__granted_in_scope_denied_outside(emulator):
    apply(
        MailSecurityGroupProvider(),
        emulator.props(
            alias="mailplane-contoso-scope",
            name="mailplane-contoso-scope",
            display_name="scope",
            members=["lms-noreply@contoso.com"],
        ),
    )
    apply(
        ApplicationAccessPolicyProvider(),
        emulator.props(app_id=APP_ID, group="mailplane-contoso-scope", access_right="RestrictAccess", description="d"),
    )
    created = apply(ScopeVerificationProvider(), verification_props(emulator, mode="access-policy"))
    assert created.outs["status"] == "pending-propagation"


# -- mailplane doctor ---------------------------------------------------------------------------------------------


def write_stack(tmp_path, mode="rbac"):
    stack = tmp_path / "Pulumi.contoso.yaml"
    scoping = {"mode": mode, "outOfScopeMailbox": "ceo@contoso.com"}
    if mode == "tenant-wide":
        scoping = {
            "mode": mode,
            "tenantWideAcknowledgement": "this app may read and send as every mailbox in the tenant",
        }
    config = {
        "mailplane:tenant": {"id": TENANT, "primaryDomain": "contoso.com"},
        "mailplane:app": {"displayName": "Contoso LMS"},
        "mailplane:presets": ["outbound-send"],
        "mailplane:mailboxes": {"designated": "lms-noreply@contoso.com"},
        "mailplane:scoping": scoping,
        "mailplane:credentials": {"clientSecret": {"anchorDate": "2026-01-01"}},
    }
    stack.write_text(json.dumps({"config": config}), encoding="utf-8")
    return stack


@pytest.mark.usefixtures("rbac_applied")
def test_doctor__rbac_configured__exit_0_and_lists_each_mailbox(tmp_path):
    result = CliRunner().invoke(main, ["doctor", str(write_stack(tmp_path)), "--app-id", APP_ID])
    assert result.exit_code == 0, result.output
    assert "  [ok] lms-noreply@contoso.com (in-scope): in scope of Application Mail.Send" in result.output
    assert "  [ok] ceo@contoso.com (out-of-scope): not reachable by the app" in result.output


def test_doctor__assignment_removed__exit_1_with_the_reason(rbac_applied, tmp_path):
    rbac_applied.client().delete_role_assignment("mailplane-contoso-mail.send")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"clientId": APP_ID}), encoding="utf-8")
    result = CliRunner().invoke(main, ["doctor", str(write_stack(tmp_path)), "--outputs", str(outputs), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["status"] == "misconfigured"
    details = {c["mailbox"]: c["detail"] for c in report["checks"]}
    assert details["lms-noreply@contoso.com"] == "role not assigned: Application Mail.Send"


@pytest.mark.usefixtures("emulator")
def test_doctor__no_app_id__usage_error_exit_2(tmp_path):
    result = CliRunner().invoke(main, ["doctor", str(write_stack(tmp_path))])
    assert result.exit_code == 2
    assert "Pass --app-id <client id> or --outputs" in result.output


@pytest.mark.usefixtures("emulator")
def test_doctor__tenant_wide__exit_1_says_nothing_is_scoped(tmp_path):
    result = CliRunner().invoke(main, ["doctor", str(write_stack(tmp_path, "tenant-wide")), "--app-id", APP_ID])
    assert result.exit_code == 1
    assert "the app reaches EVERY mailbox" in result.output


def test_verification__refreshed_more_than_two_hours_after_apply__configured_no_longer_pending(rbac_applied):
    provider = ScopeVerificationProvider()
    created = apply(provider, verification_props(rbac_applied))
    three_hours_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).replace(microsecond=0).isoformat()
    refreshed = provider.read(created.id, {**created.outs, "applied_at": three_hours_ago})
    assert refreshed.outs["status"] == "configured"
    assert refreshed.outs["applied_at"] == three_hours_ago
    assert refreshed.outs["summary"].endswith("changes made in the last 2 h may not reach Microsoft Graph yet")


# -- the demo's rehearsal on the dev tenant -------------------------------------------------------------------------


def test_rehearsal__example_inbound_import__created_then_adopted_then_drift_reported():
    from mailplane.devtenant.exchange_rehearsal import rehearse_stack

    root = Path(__file__).resolve().parents[2]
    rehearsal = rehearse_stack(root / "stacks" / "Pulumi.example-inbound-import.yaml", project_dir=root)
    assert (rehearsal.created, rehearsal.adopted) == (8, 8)
    assert "  drift    example-inbound-import-exchange-scope: recipient_restriction_filter" in rehearsal.lines
    assert rehearsal.verification["status"] == "misconfigured"
    assert rehearsal.lines[-1].startswith(
        "  verification misconfigured: finance.director@fabrikam.com: reachable through Application Mail.ReadWrite"
    )
