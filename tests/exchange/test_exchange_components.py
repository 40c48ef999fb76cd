"""Mock-engine tests: which Exchange objects each scoping mode declares, standalone and inside MailIntegration."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pulumi
import pytest
import yaml

from mailplane.grants import compute_grants
from mailplane.permissions import catalog
from mailplane.plan import OfflineTenantMocks, RecordingMonitor, plan_stack
from mailplane.tenant import parse_tenant_config

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 22)
DYNAMIC = "pulumi-python:dynamic/exchange:"


def tenant_config(mode="rbac", **extra):
    raw = {
        "tenant": {"id": "11111111-1111-1111-1111-111111111111", "primaryDomain": "contoso.com"},
        "app": {"displayName": "Contoso LMS"},
        "presets": ["outbound-send", "inbound-import"],
        "mailboxes": {
            "designated": "lms-noreply@contoso.com",
            "shared": [
                {
                    "address": "support@contoso.com",
                    "displayName": "Support",
                    "members": [{"user": "alice@contoso.com", "sendAs": True}],
                }
            ],
        },
        "scoping": {"mode": mode, "outOfScopeMailbox": "ceo@contoso.com"},
        "credentials": {"clientSecret": {"anchorDate": "2026-01-01"}},
    }
    if mode == "tenant-wide":
        raw["scoping"] = {
            "mode": mode,
            "tenantWideAcknowledgement": "this app may read and send as every mailbox in the tenant",
        }
    raw.update(extra)
    return raw


@pytest.fixture
def mocks():
    # Earlier tests (asyncio.run, the plan) may leave the main thread without an event loop; the mock engine needs one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = OfflineTenantMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="mailplane", stack="contoso", preview=False, monitor=monitor)
    yield monitor
    asyncio.set_event_loop(None)
    loop.close()


def exchange_types(monitor):
    return sorted(r.type.removeprefix(DYNAMIC) for r in monitor.recorded if r.type.startswith(DYNAMIC))


def by_type(monitor, name):
    return [r for r in monitor.recorded if r.type == DYNAMIC + name]


# -- MailboxScope standalone --------------------------------------------------------------------------------------


def build_scope(mode):
    from components.mailbox_scope import MailboxScope, MailboxScopeArgs

    grants = compute_grants(parse_tenant_config(tenant_config(mode), today=TODAY))
    return MailboxScope(
        "contoso",
        MailboxScopeArgs(
            grants=grants,
            app_id="aaaaaaaa-0000-4000-8000-000000000001",
            service_principal_object_id="bbbbbbbb-0000-4000-8000-000000000001",
        ),
    )


def test_mailbox_scope__rbac_with_two_mailbox_sets__pointer_one_scope_per_set_one_assignment_per_role(mocks):
    pulumi.runtime.test(lambda: build_scope("rbac").verification)()
    assert exchange_types(mocks) == [
        "ManagementRoleAssignment",
        "ManagementRoleAssignment",
        "ManagementScope",
        "ManagementScope",
        "ScopeVerification",
        "ServicePrincipalPointer",
    ]
    scopes = {r.inputs["name"]: r.inputs["mailboxes"] for r in by_type(mocks, "ManagementScope")}
    assert scopes == {
        "mailplane-contoso-mail.readwrite": ["support@contoso.com"],
        "mailplane-contoso-mail.send": ["lms-noreply@contoso.com"],
    }
    assignments = {
        (r.inputs["name"], r.inputs["role"], r.inputs["custom_resource_scope"])
        for r in by_type(mocks, "ManagementRoleAssignment")
    }
    assert assignments == {
        ("mailplane-contoso-mail.readwrite", "Application Mail.ReadWrite", "mailplane-contoso-mail.readwrite"),
        ("mailplane-contoso-mail.send", "Application Mail.Send", "mailplane-contoso-mail.send"),
    }
    [verification] = by_type(mocks, "ScopeVerification")
    assert verification.inputs["expectations"] == {
        "ceo@contoso.com": [],
        "lms-noreply@contoso.com": ["Application Mail.Send"],
        "support@contoso.com": ["Application Mail.ReadWrite"],
    }
    assert all(
        r.parent.endswith("mailplane:mailbox_scope:MailboxScope::contoso") for r in by_type(mocks, "ManagementScope")
    )


def test_mailbox_scope__access_policy__group_with_scoped_mailboxes_and_restrict_policy(mocks):
    pulumi.runtime.test(lambda: build_scope("access-policy").verification)()
    assert exchange_types(mocks) == ["ApplicationAccessPolicy", "MailSecurityGroup", "ScopeVerification"]
    [group] = by_type(mocks, "MailSecurityGroup")
    assert group.inputs["alias"] == "mailplane-contoso-scope"
    assert group.inputs["members"] == ["lms-noreply@contoso.com", "support@contoso.com"]
    [policy] = by_type(mocks, "ApplicationAccessPolicy")
    assert (policy.inputs["access_right"], policy.inputs["group"]) == ("RestrictAccess", "mailplane-contoso-scope")


def test_mailbox_scope__tenant_wide__declares_nothing_and_says_so(mocks):
    seen = []
    pulumi.runtime.test(lambda: build_scope("tenant-wide").verification.apply(seen.append))()
    assert exchange_types(mocks) == []
    assert seen == [{"status": "not-applicable", "summary": "tenant-wide: nothing is scoped"}]


# -- SharedMailbox standalone -------------------------------------------------------------------------------------


def test_shared_mailbox__default__mailbox_retained_on_delete_and_one_member_per_user(mocks):
    from components.shared_mailbox import SharedMailbox, SharedMailboxArgs

    config = parse_tenant_config(tenant_config(), today=TODAY)
    pulumi.runtime.test(
        lambda: (
            SharedMailbox(
                "support", SharedMailboxArgs(tenant_id=config.tenant_id, mailbox=config.shared_mailboxes[0])
            ).urn
        )
    )()
    [mailbox] = by_type(mocks, "SharedMailbox")
    assert (mailbox.name, mailbox.inputs["remove_on_delete"]) == ("support-mailbox", False)
    [member] = by_type(mocks, "MailboxMember")
    assert member.name == "support-member-alice-contoso-com"
    assert (member.inputs["full_access"], member.inputs["send_as"], member.inputs["auto_mapping"]) == (
        True,
        True,
        False,
    )


def test_shared_mailbox__create_false__only_members_declared(mocks):
    from components.shared_mailbox import SharedMailbox, SharedMailboxArgs

    raw = tenant_config()
    raw["mailboxes"]["shared"][0]["create"] = False
    config = parse_tenant_config(raw, today=TODAY)
    pulumi.runtime.test(
        lambda: (
            SharedMailbox(
                "support", SharedMailboxArgs(tenant_id=config.tenant_id, mailbox=config.shared_mailboxes[0])
            ).urn
        )
    )()
    assert exchange_types(mocks) == ["MailboxMember"]


# -- MailIntegration through the real program (offline plan) ------------------------------------------------------


def plan_for(tmp_path, raw):
    document = {"config": {"azuread:tenantId": raw["tenant"]["id"], **{f"mailplane:{k}": v for k, v in raw.items()}}}
    stack_file = tmp_path / "Pulumi.contoso.yaml"
    stack_file.write_text(yaml.safe_dump(document), encoding="utf-8")
    return plan_stack(stack_file, project_dir=ROOT, today=TODAY)


def entra_application_grants(plan):
    names = {p.id: p.name for p in (catalog().require(n, "application") for n in catalog().names("application"))}
    return sorted(
        names[r.inputs["appRoleId"]]
        for r in plan.resources
        if r.type == "azuread:index/appRoleAssignment:AppRoleAssignment"
    )


def plan_exchange_types(plan):
    return sorted(r.type.removeprefix(DYNAMIC) for r in plan.resources if r.type.startswith(DYNAMIC))


def test_integration__rbac__exchange_roles_declared_and_no_entra_mail_application_grant(tmp_path):
    plan = plan_for(tmp_path, tenant_config("rbac"))
    assert plan_exchange_types(plan) == [
        "MailboxMember",
        "ManagementRoleAssignment",
        "ManagementRoleAssignment",
        "ManagementScope",
        "ManagementScope",
        "ScopeVerification",
        "ServicePrincipalPointer",
        "SharedMailbox",
    ]
    assert not [g for g in entra_application_grants(plan) if g.startswith("Mail")]
    pointer = next(r for r in plan.resources if r.type == DYNAMIC + "ServicePrincipalPointer")
    service_principal = next(r for r in plan.resources if r.type == "azuread:index/servicePrincipal:ServicePrincipal")
    assert pointer.inputs["object_id"] == plan.outputs["servicePrincipalObjectId"]
    assert pointer.inputs["app_id"] == plan.outputs["clientId"]
    assert service_principal.name == "contoso-sp"


def test_integration__access_policy__group_and_policy_with_entra_mail_grants_kept(tmp_path):
    plan = plan_for(tmp_path, tenant_config("access-policy"))
    assert plan_exchange_types(plan) == [
        "ApplicationAccessPolicy",
        "MailSecurityGroup",
        "MailboxMember",
        "ScopeVerification",
        "SharedMailbox",
    ]
    assert entra_application_grants(plan) == ["Mail.ReadWrite", "Mail.Send"]


def test_integration__tenant_wide__no_scoping_objects_only_shared_mailboxes(tmp_path):
    plan = plan_for(tmp_path, tenant_config("tenant-wide"))
    assert plan_exchange_types(plan) == ["MailboxMember", "SharedMailbox"]
    assert entra_application_grants(plan) == ["Mail.ReadWrite", "Mail.Send"]
    assert plan.outputs["exchangeVerification"]["status"] == "not-applicable"


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        (
            "example-outbound-send",
            ["ManagementRoleAssignment", "ManagementScope", "ScopeVerification", "ServicePrincipalPointer"],
        ),
        ("example-delegated-graph-sync", []),
    ],
)
def test_plan__example_stacks__list_their_exchange_objects(stack, expected):
    plan = plan_stack(ROOT / "stacks" / f"Pulumi.{stack}.yaml", project_dir=ROOT, today=TODAY)
    assert plan_exchange_types(plan) == expected
