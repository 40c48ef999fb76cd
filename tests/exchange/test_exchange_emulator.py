"""The Exchange admin emulator's wire behaviour (raw HTTP), and its OPATH subset."""

from __future__ import annotations

import httpx
import pytest
from exchange_tenant import TENANT

from mailplane.devtenant.exchange import DEFAULT_TOKEN, Fault
from mailplane.devtenant.exchange_filters import FilterSyntaxError, compile_filter

ANCHOR = f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{TENANT}"


def post(emulator, cmdlet, parameters=None, *, token=DEFAULT_TOKEN, anchor=ANCHOR, headers=None, url=None):
    sent = {"Authorization": f"Bearer {token}", **({"X-AnchorMailbox": anchor} if anchor else {}), **(headers or {})}
    return httpx.post(
        url or f"{emulator.admin_api_url}/{TENANT}/InvokeCommand",
        json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters or {}}},
        headers=sent,
    )


def test_wrong_token__401_with_reason_in_x_ms_diagnostics(emulator):
    response = post(emulator, "Get-Mailbox", token="forged")
    assert response.status_code == 401
    assert 'error_category="invalid_token"' in response.headers["x-ms-diagnostics"]
    assert emulator.state.cmdlets_called() == []


def test_missing_anchor_mailbox__rejected(emulator):
    response = post(emulator, "Get-Mailbox", anchor=None)
    assert response.status_code == 400
    assert "X-AnchorMailbox is required" in response.text


def test_get_mailbox__value_array_of_pascal_case_rows_and_paging_by_post(emulator):
    first = post(emulator, "Get-Mailbox", headers={"Prefer": "odata.maxpagesize=3"}).json()
    assert len(first["value"]) == 3
    assert {"PrimarySmtpAddress", "RecipientTypeDetails", "DisplayName"} <= set(first["value"][0])
    second = post(emulator, "Get-Mailbox", url=first["@odata.nextLink"]).json()
    assert len(second["value"]) == 1
    assert "@odata.nextLink" not in second


def test_unknown_object__error_body_in_the_service_shape(emulator):
    response = post(emulator, "Get-ManagementScope", {"Identity": "nope"})
    error = response.json()["error"]
    assert response.status_code == 400
    assert error["message"] == "Error executing cmdlet"
    code, exception_type, text = error["details"][0]["message"].split("|")
    assert code.startswith("Ex")
    assert exception_type == "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    assert text == 'The management scope "nope" couldn\'t be found.'
    assert error["innererror"]["internalexception"]["type"] == exception_type


def test_unknown_role__role_assignment_rejected(emulator):
    post(
        emulator,
        "New-ServicePrincipal",
        {"AppId": "aaaaaaaa-0000-4000-8000-000000000001", "ObjectId": "bbbbbbbb-0000-4000-8000-000000000001"},
    )
    response = post(
        emulator,
        "New-ManagementRoleAssignment",
        {"Role": "Application Mail.Teleport", "App": "bbbbbbbb-0000-4000-8000-000000000001"},
    )
    assert (
        'The role "Application Mail.Teleport" couldn\'t be found.' in response.json()["error"]["details"][0]["message"]
    )


def test_access_policy__shared_mailbox_as_scope__rejected_as_not_a_security_principal(emulator):
    post(emulator, "New-Mailbox", {"Shared": True, "Name": "support", "PrimarySmtpAddress": "support@contoso.com"})
    response = post(
        emulator,
        "New-ApplicationAccessPolicy",
        {
            "AppId": ["aaaaaaaa-0000-4000-8000-000000000001"],
            "PolicyScopeGroupId": "support@contoso.com",
            "AccessRight": "RestrictAccess",
        },
    )
    assert response.status_code == 400
    assert "must be a security principal" in response.text


def test_duplicate_full_access__warning_not_error(emulator):
    post(emulator, "New-Mailbox", {"Shared": True, "Name": "support", "PrimarySmtpAddress": "support@contoso.com"})
    grant = {"Identity": "support", "User": "alice@contoso.com", "AccessRights": ["FullAccess"]}
    assert post(emulator, "Add-MailboxPermission", grant).status_code == 200
    again = post(emulator, "Add-MailboxPermission", grant).json()
    assert again["value"] == []
    assert again["@adminapi.warnings"] == ["An existing permission entry was found for user: alice."]


def test_removed_mailbox__soft_deleted_keeps_address_until_purged(emulator):
    post(emulator, "New-Mailbox", {"Shared": True, "Name": "support", "PrimarySmtpAddress": "support@contoso.com"})
    post(emulator, "Remove-Mailbox", {"Identity": "support@contoso.com"})
    assert post(emulator, "Get-Mailbox", {"Identity": "support@contoso.com"}).status_code == 400
    soft = post(emulator, "Get-Mailbox", {"Identity": "support@contoso.com", "SoftDeletedMailbox": True}).json()
    assert soft["value"][0]["IsSoftDeletedByRemove"] is True
    again = post(
        emulator, "New-Mailbox", {"Shared": True, "Name": "support2", "PrimarySmtpAddress": "support@contoso.com"}
    )
    assert "ProxyAddressExistsException" in again.text
    post(emulator, "Remove-Mailbox", {"Identity": "support@contoso.com", "PermanentlyDelete": True})
    created = post(
        emulator, "New-Mailbox", {"Shared": True, "Name": "support2", "PrimarySmtpAddress": "support@contoso.com"}
    )
    assert created.status_code == 200


def test_fault__third_call_of_a_cmdlet__only_that_call_fails(emulator):
    emulator.state.inject_fault(Fault("Get-Recipient", on_call=3, status=500))
    statuses = [post(emulator, "Get-Recipient", {"Identity": "alice"}).status_code for _ in range(4)]
    assert statuses == [200, 200, 500, 200]


def test_fault__after_apply__write_happens_and_answer_is_an_error(emulator):
    emulator.state.inject_fault(Fault("New-ManagementScope", after_apply=True, status=502))
    response = post(emulator, "New-ManagementScope", {"Name": "s", "RecipientRestrictionFilter": "(Alias -eq 'x')"})
    assert response.status_code == 502
    assert post(emulator, "Get-ManagementScope", {"Identity": "s"}).status_code == 200


def test_state__kept_per_tenant(emulator):
    post(emulator, "New-ManagementScope", {"Name": "s", "RecipientRestrictionFilter": "(Alias -eq 'x')"})
    other = f"{emulator.admin_api_url}/22222222-2222-2222-2222-222222222222/InvokeCommand"
    assert post(emulator, "Get-ManagementScope", url=other).json()["value"] == []


# -- OPATH subset ---------------------------------------------------------------------------------------------------


RECORD = {"primarysmtpaddress": ("alice@contoso.com",), "alias": ("alice",), "memberofgroup": ("CN=g,DC=x",)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(PrimarySmtpAddress -eq 'ALICE@contoso.com')", True),
        ("(PrimarySmtpAddress -eq 'bob@contoso.com') -or (Alias -eq 'alice')", True),
        ("(Alias -eq 'alice') -and -not (MemberOfGroup -eq 'CN=g,DC=x')", False),
        ("Alias -like 'ali*'", True),
        ("Alias -ne 'alice'", False),
        ("(Alias -eq 'it''s')", False),
    ],
)
def test_filter__supported_operators__evaluated_case_insensitively(text, expected):
    assert compile_filter(text)(RECORD) is expected


@pytest.mark.parametrize("text", ["", "(Alias -eq 'x'", "Alias -gt 'x'", "Alias -eq 'x' -xor Alias -eq 'y'"])
def test_filter__invalid__syntax_error(text):
    with pytest.raises(FilterSyntaxError):
        compile_filter(text)


def test_missing_role__403_with_empty_body_and_reason_until_given_back(emulator):
    emulator.state.deny_cmdlets(TENANT, "New-ManagementRoleAssignment")
    denied = post(emulator, "New-ManagementRoleAssignment", {"Role": "Application Mail.Send", "App": "x"})
    assert (denied.status_code, denied.content) == (403, b"")
    assert "does not have the role required to run New-ManagementRoleAssignment" in denied.headers["x-ms-diagnostics"]
    emulator.state.allow_cmdlets(TENANT, "New-ManagementRoleAssignment")
    allowed = post(emulator, "New-ManagementRoleAssignment", {"Role": "Application Mail.Send", "App": "x"})
    assert allowed.status_code == 400  # Now it runs, and the pointer "x" does not exist.


def test_dev_tenant__graph_and_exchange_together__client_reaches_exchange_under_adminapi():
    from mailplane.devtenant.app import DevTenant
    from mailplane.exchange.client import ExchangeAdminClient, StaticTokenCredential

    with DevTenant(tenant_id=TENANT) as tenant:
        tenant.exchange_state.add_user_mailbox(TENANT, "alice@contoso.com")
        client = ExchangeAdminClient(
            StaticTokenCredential("any-token"), tenant_id=TENANT, base_url=f"{tenant.exchange_base_url}/beta"
        )
        with client:
            assert client.get_recipient("alice@contoso.com").recipient_type_details == "UserMailbox"
        empty = httpx.post(
            f"{tenant.exchange_base_url}/beta/{TENANT}/InvokeCommand", json={}, headers={"X-AnchorMailbox": ANCHOR}
        )
        assert empty.status_code == 401
