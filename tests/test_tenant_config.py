"""Tenant config validation: exact messages for each rule (pure, no Pulumi)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from mailplane.exceptions import TenantConfigError
from mailplane.tenant import TENANT_WIDE_ACKNOWLEDGEMENT, load_stack_file, parse_tenant_config
from tests.conftest import EXAMPLE_STACKS

TODAY = dt.date(2026, 11, 22)
VALID = {
    "tenant": {"id": "11111111-1111-1111-1111-111111111111", "primaryDomain": "contoso.com"},
    "app": {"displayName": "Contoso mail", "redirectUris": ["https://app.contoso.com/cb"]},
    "presets": ["outbound-send"],
    "mailboxes": {"designated": "noreply@contoso.com"},
    "credentials": {"clientSecret": {"anchorDate": "2026-01-01"}},
}


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(TenantConfigError) as caught:
        parse_tenant_config(raw, source="stacks/Pulumi.t.yaml", today=TODAY)
    return [f"{p.location('mailplane:')}: {p.message}" for p in caught.value.problems]


def changed(**changes) -> dict:
    raw = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        target = raw
        for key in parents:
            target = target.setdefault(key, {})
        if value is ...:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return raw


@pytest.mark.parametrize("stack_file", EXAMPLE_STACKS, ids=lambda p: p.name)
def test_example_stack__as_shipped__is_valid(stack_file):
    config = parse_tenant_config(load_stack_file(stack_file), source=str(stack_file), today=TODAY)
    assert config.display_name
    assert config.presets


def test_valid_config__parsed__defaults_applied():
    config = parse_tenant_config(VALID, today=TODAY)
    assert config.sign_in_audience == "AzureADMyOrg"
    assert config.scoping_mode == "rbac"
    assert config.client_secret.rotation_period_months == 6
    assert config.mailboxes == ("noreply@contoso.com",)


def test_misspelt_permission__validated__did_you_mean():
    raw = changed(permissions=[{"name": "Mail.Sned", "type": "application"}])
    assert problems_of(raw) == [
        "mailplane:permissions[0].name: 'Mail.Sned' is not a known application permission of Microsoft Graph. "
        "Did you mean 'Mail.Send' or 'Mail.Read'?"
    ]


def test_permission_of_wrong_type__validated__names_the_existing_type():
    raw = changed(permissions=[{"name": "SMTP.Send", "type": "application"}])
    assert problems_of(raw) == [
        "mailplane:permissions[0].name: 'SMTP.Send' exists only as a delegated permission, not application. "
        "Set type to 'delegated' or pick another permission."
    ]


def test_permission_listed_twice__validated__duplicate_named():
    raw = changed(permissions=[{"name": "User.Read.All", "type": "application"}] * 2)
    assert problems_of(raw) == [
        "mailplane:permissions[1]: User.Read.All (application) is listed twice (also at index 0). Remove one."
    ]


def test_permission_already_in_preset__validated__redundant_entry_named():
    raw = changed(permissions=[{"name": "Mail.Send", "type": "application"}])
    assert problems_of(raw) == [
        "mailplane:permissions[0]: Mail.Send (application) is already granted by a preset. Remove this entry."
    ]


def test_http_redirect_uri__validated__https_suggested():
    raw = changed(app__redirectUris=["http://app.contoso.com/cb"])
    assert problems_of(raw) == [
        "mailplane:app.redirectUris[0]: 'http://app.contoso.com/cb' uses plain http; Web redirect URIs must be https "
        "(http only for localhost). Use 'https://app.contoso.com/cb'."
    ]


@pytest.mark.parametrize("uri", ["http://localhost:8400/cb", "http://127.0.0.1/cb", "https://a.example.com/x"])
def test_allowed_redirect_uri__validated__accepted(uri):
    assert parse_tenant_config(changed(app__redirectUris=[uri]), today=TODAY).redirect_uris == (uri,)


def test_rotation_period_out_of_range__validated__bound_named():
    raw = changed(credentials={"clientSecret": {"anchorDate": "2026-01-01", "rotationPeriodMonths": 25}})
    assert problems_of(raw) == [
        "mailplane:credentials.clientSecret.rotationPeriodMonths: 25 is greater than the maximum of 24"
    ]


def test_anchor_date_in_future__validated__today_suggested():
    raw = changed(credentials={"clientSecret": {"anchorDate": "2027-01-01"}})
    assert problems_of(raw) == [
        "mailplane:credentials.clientSecret.anchorDate: '2027-01-01' is in the future, so no secret would be valid "
        "today. Use today's date (2026-11-22) or earlier."
    ]


def test_tenant_wide_without_acknowledgement__validated__loud_opt_in_required():
    raw = changed(scoping={"mode": "tenant-wide"})
    assert problems_of(raw) == [
        "mailplane:scoping.tenantWideAcknowledgement: tenant-wide mode needs the exact sentence "
        f"{TENANT_WIDE_ACKNOWLEDGEMENT!r}, got None. Prefer mode 'rbac', which limits the app to the declared "
        "mailboxes."
    ]


def test_tenant_wide_with_acknowledgement__validated__accepted():
    raw = changed(scoping={"mode": "tenant-wide", "tenantWideAcknowledgement": TENANT_WIDE_ACKNOWLEDGEMENT})
    assert parse_tenant_config(raw, today=TODAY).scoping_mode == "tenant-wide"


def test_acknowledgement_with_rbac__validated__conflict_named():
    raw = changed(scoping={"mode": "rbac", "tenantWideAcknowledgement": TENANT_WIDE_ACKNOWLEDGEMENT})
    assert problems_of(raw) == [
        "mailplane:scoping.tenantWideAcknowledgement: is set but mode is 'rbac'; the acknowledgement only goes with "
        "mode 'tenant-wide'. Remove it."
    ]


def test_federated_credential_with_personal_accounts__validated__conflict_named():
    raw = changed(
        app__signInAudience="AzureADandPersonalMicrosoftAccount",
        credentials={
            "federated": [
                {
                    "name": "gh",
                    "issuer": "https://token.actions.githubusercontent.com",
                    "subject": "repo:o/r:environment:prod",
                }
            ]
        },
    )
    assert problems_of(raw) == [
        "mailplane:credentials.federated: federated credentials are not supported for apps with signInAudience "
        "'AzureADandPersonalMicrosoftAccount'. Use AzureADMyOrg or AzureADMultipleOrgs, or a certificate."
    ]


def test_outbound_send_without_designated_mailbox__validated__key_named():
    raw = changed(mailboxes=...)
    assert problems_of(raw) == [
        "mailplane:mailboxes.designated: preset 'outbound-send' needs the designated sending mailbox. Set "
        "mailplane:mailboxes.designated."
    ]


def test_unknown_key__validated__did_you_mean_and_allowed_keys():
    raw = changed(scopping={"mode": "rbac"})
    assert problems_of(raw) == [
        "mailplane:scopping: unknown key 'scopping' (did you mean 'scoping'?); allowed keys: app, credentials, "
        "mailboxes, permissions, presets, scoping, tenant"
    ]


def test_several_problems__validated__headline_then_rest():
    raw = changed(tenant__id="not-a-guid", scoping={"mode": "rbca"})
    with pytest.raises(TenantConfigError) as caught:
        parse_tenant_config(raw, source="stacks/Pulumi.t.yaml", today=TODAY)
    assert str(caught.value) == (
        "stacks/Pulumi.t.yaml: mailplane:tenant.id: 'not-a-guid' is not a GUID (expected "
        "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\n"
        "1 more problem:\n"
        "  - mailplane:scoping.mode: 'rbca' is not allowed; use one of 'rbac', 'access-policy', 'tenant-wide'"
    )


def test_bad_email__validated__plain_words_not_regex():
    raw = changed(mailboxes={"designated": "noreply-at-contoso"})
    assert problems_of(raw) == [
        "mailplane:mailboxes.designated: 'noreply-at-contoso' is not an e-mail address (expected name@domain.tld)"
    ]


def test_shared_mailbox_declared_twice__validated__duplicate_named():
    raw = changed(
        presets=["inbound-import"],
        mailboxes={"shared": [{"address": "Support@contoso.com"}, {"address": "support@contoso.com"}]},
    )
    assert problems_of(raw) == [
        "mailplane:mailboxes.shared[1].address: 'support@contoso.com' is declared twice (also at index 0)."
    ]


def test_permission_scoped_to_undeclared_mailbox__validated__declare_first():
    raw = changed(permissions=[{"name": "Mail.Read", "type": "application", "mailboxes": ["ceo@contoso.com"]}])
    assert problems_of(raw) == [
        "mailplane:permissions[0].mailboxes[0]: 'ceo@contoso.com' is not declared under mailplane:mailboxes. "
        "Declare it as the designated or a shared mailbox first."
    ]


def test_no_credential__validated__options_listed():
    raw = changed(credentials=...)
    assert problems_of(raw) == [
        "mailplane:credentials: no credential declared. Add clientSecret, certificate or federated (federated needs "
        "no secret)."
    ]


def test_stack_file_not_yaml__loaded__line_named(tmp_path):
    bad = tmp_path / "Pulumi.bad.yaml"
    bad.write_text("config:\n  mailplane:app: [unclosed\n")
    with pytest.raises(TenantConfigError) as caught:
        load_stack_file(bad)
    assert "is not valid YAML at line 3" in str(caught.value)


def test_secure_value__loaded__never_exposed(tmp_path):
    stack = tmp_path / "Pulumi.s.yaml"
    stack.write_text("config:\n  mailplane:certificatePem:\n    secure: v1:abcdef\n")
    raw = load_stack_file(stack)
    assert str(raw["certificatePem"]) == "[secret]"
    assert "abcdef" not in repr(raw)
