"""compute_grants: the one pure function from tenant config to grants."""

from __future__ import annotations

import datetime as dt

import pytest

from mailplane.grants import EXCHANGE_APPLICATION_ROLES, compute_grants
from mailplane.permissions import catalog
from mailplane.tenant import TENANT_WIDE_ACKNOWLEDGEMENT, load_stack_file, parse_tenant_config
from tests.conftest import EXAMPLE_STACKS

TODAY = dt.date(2026, 11, 22)


def config(**overrides):
    raw = {
        "tenant": {"id": "11111111-1111-1111-1111-111111111111", "primaryDomain": "contoso.com"},
        "app": {"displayName": "Contoso mail"},
        "presets": ["outbound-send", "inbound-import"],
        "mailboxes": {
            "designated": "noreply@contoso.com",
            "shared": [{"address": "support@contoso.com"}, {"address": "sales@contoso.com"}],
        },
        "credentials": {"clientSecret": {"anchorDate": "2026-01-01"}},
    }
    raw.update(overrides)
    return parse_tenant_config(raw, today=TODAY)


def test_rbac_scoping__entra_mail_grant_absent__exchange_roles_scoped_per_preset():
    grants = compute_grants(config())
    assert grants.entra_names("application") == []
    assert grants.entra_names("delegated") == ["User.Read"]
    assert [(r.role, r.mailboxes) for r in grants.exchange_roles] == [
        ("Application Mail.ReadWrite", ("sales@contoso.com", "support@contoso.com")),
        ("Application Mail.Send", ("noreply@contoso.com",)),
    ]
    assert grants.tenant_wide_mail == ()


@pytest.mark.parametrize("stack_file", EXAMPLE_STACKS, ids=lambda p: p.name)
def test_example_stack_with_rbac__grants_computed__no_mailbox_scopable_entra_application_grant(stack_file):
    tenant = parse_tenant_config(load_stack_file(stack_file), today=TODAY)
    grants = compute_grants(tenant)
    if tenant.scoping_mode == "rbac":
        leaked = set(grants.entra_names("application")) & set(EXCHANGE_APPLICATION_ROLES)
        assert not leaked, f"{stack_file.name}: Entra application grants {leaked} would make the app tenant-wide"


def test_access_policy_scoping__grants_computed__entra_grants_kept_and_policy_covers_all_mailboxes():
    grants = compute_grants(config(scoping={"mode": "access-policy"}))
    assert grants.entra_names("application") == ["Mail.ReadWrite", "Mail.Send"]
    assert grants.exchange_roles == ()
    assert grants.scoped_mailboxes == ("noreply@contoso.com", "sales@contoso.com", "support@contoso.com")


def test_tenant_wide_scoping__grants_computed__flagged_with_every_mail_permission():
    grants = compute_grants(
        config(scoping={"mode": "tenant-wide", "tenantWideAcknowledgement": TENANT_WIDE_ACKNOWLEDGEMENT})
    )
    assert grants.tenant_wide_mail == ("Mail.ReadWrite", "Mail.Send")
    assert grants.entra_names("application") == ["Mail.ReadWrite", "Mail.Send"]
    assert grants.scoped_mailboxes == ()


def test_extra_application_permission_without_mailboxes__grants_computed__scoped_to_every_declared_mailbox():
    grants = compute_grants(config(permissions=[{"name": "Mail.Read", "type": "application"}]))
    read = next(r for r in grants.exchange_roles if r.permission == "Mail.Read")
    assert read.mailboxes == ("noreply@contoso.com", "sales@contoso.com", "support@contoso.com")


def test_extra_application_permission_with_mailboxes__grants_computed__scoped_to_those_only():
    grants = compute_grants(
        config(permissions=[{"name": "Calendars.Read", "type": "application", "mailboxes": ["support@contoso.com"]}])
    )
    calendars = next(r for r in grants.exchange_roles if r.permission == "Calendars.Read")
    assert calendars.role == "Application Calendars.Read"
    assert calendars.mailboxes == ("support@contoso.com",)


def test_non_mailbox_application_permission__rbac__stays_an_entra_grant():
    grants = compute_grants(config(permissions=[{"name": "User.Read.All", "type": "application"}]))
    assert grants.entra_names("application") == ["User.Read.All"]
    granted = grants.application[0]
    assert (granted.privilege_level, granted.admin_consent) == (
        catalog().require("User.Read.All", "application").privilege_level,
        True,
    )


def test_same_config__computed_twice__equal_and_serializable():
    assert compute_grants(config()) == compute_grants(config())
    as_dict = compute_grants(config()).to_dict()
    assert as_dict["credentials"] == [
        {"kind": "client-secret", "name": "client-secret", "rotationPeriodMonths": 6, "anchorDate": "2026-01-01"}
    ]


def test_every_exchange_role__catalog__names_an_existing_graph_application_permission():
    for permission in EXCHANGE_APPLICATION_ROLES:
        assert catalog().get(permission, "application") is not None, permission
