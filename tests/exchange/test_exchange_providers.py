"""Every Exchange dynamic provider against the emulator over real HTTP: create, create again, drift, update,
replace, delete; and bad input and faults mid-apply."""

from __future__ import annotations

import base64
import importlib

import dill
import pytest
from exchange_tenant import APP_ID, SP_OBJECT_ID, TENANT
from pulumi.dynamic.dynamic import serialize_provider

from components.exchange.access_policy import ApplicationAccessPolicyProvider
from components.exchange.mailbox import MailboxProvider
from components.exchange.mailbox_member import MailboxMemberProvider
from components.exchange.management_scope import ManagementScopeProvider
from components.exchange.role_assignment import ManagementRoleAssignmentProvider
from components.exchange.security_group import MailSecurityGroupProvider
from components.exchange.service_principal import ServicePrincipalPointerProvider
from mailplane.devtenant.exchange import Fault
from mailplane.exceptions import (
    ExchangeAccessDeniedError,
    ExchangeConflictError,
    ExchangeError,
    ExchangeNotFoundError,
)


def prepared(provider, props):
    result = provider.check({}, dict(props))
    assert result.failures == [], [f.reason for f in result.failures]
    return result.inputs


def lifecycle_outs(provider, props):
    inputs = prepared(provider, props)
    created = provider.create(inputs)
    return inputs, created


# -- pickling ------------------------------------------------------------------------------------------------------

ALL_PROVIDERS = [
    ServicePrincipalPointerProvider,
    ManagementScopeProvider,
    ManagementRoleAssignmentProvider,
    MailSecurityGroupProvider,
    ApplicationAccessPolicyProvider,
    MailboxProvider,
    MailboxMemberProvider,
]


@pytest.mark.parametrize("provider_class", ALL_PROVIDERS, ids=lambda c: c.__name__)
def test_provider__serialised_as_pulumi_does__pickled_by_reference_and_deterministic(provider_class):
    # The offline plan reloads the `components` package, so take the class the module now holds.
    current = getattr(importlib.import_module(provider_class.__module__), provider_class.__name__)
    blob = serialize_provider(current())
    assert blob == serialize_provider(current())
    assert type(dill.loads(base64.b64decode(blob))) is current
    # By reference (module + name), not by value: the state stays small and the host imports the same code.
    assert len(blob) < 200


# -- service principal pointer ------------------------------------------------------------------------------------


def sp_props(emulator, **overrides):
    return emulator.props(**{"app_id": APP_ID, "object_id": SP_OBJECT_ID, "display_name": "Contoso LMS", **overrides})


def test_pointer__created_then_created_again__second_create_adopts_without_new_call(emulator):
    provider = ServicePrincipalPointerProvider()
    inputs, first = lifecycle_outs(provider, sp_props(emulator))
    second = provider.create(inputs)
    assert first.id == second.id == SP_OBJECT_ID
    assert first.outs["adopted"] is False
    assert second.outs["adopted"] is True
    assert emulator.state.cmdlets_called().count("New-ServicePrincipal") == 1


def test_pointer__existing_for_same_app_with_other_object_id__create_reports_conflict(emulator):
    emulator.client().create_service_principal(APP_ID, "cccccccc-0000-4000-8000-000000000009", "stale")
    provider = ServicePrincipalPointerProvider()
    with pytest.raises(ExchangeConflictError, match="ObjectId cccccccc-0000-4000-8000-000000000009, not bbbbbbbb"):
        provider.create(prepared(provider, sp_props(emulator)))


def test_pointer__renamed_and_then_deleted_out_of_band__read_reports_both(emulator):
    provider = ServicePrincipalPointerProvider()
    inputs, created = lifecycle_outs(provider, sp_props(emulator))
    emulator.client().set_service_principal(SP_OBJECT_ID, "renamed by hand")
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["display_name"] == "renamed by hand"
    assert provider.diff(created.id, drifted.outs, inputs).changes is True
    emulator.client().delete_service_principal(SP_OBJECT_ID)
    assert provider.read(created.id, created.outs).id == ""


def test_pointer__display_name_changes__updates_in_place_and_other_app_replaces(emulator):
    provider = ServicePrincipalPointerProvider()
    _inputs, created = lifecycle_outs(provider, sp_props(emulator))
    news = prepared(provider, sp_props(emulator, display_name="Contoso LMS (prod)"))
    diff = provider.diff(created.id, created.outs, news)
    assert (diff.changes, diff.replaces) == (True, [])
    updated = provider.update(created.id, created.outs, news)
    assert updated.outs["display_name"] == "Contoso LMS (prod)"
    other = prepared(provider, sp_props(emulator, app_id="aaaaaaaa-0000-4000-8000-000000000002"))
    diff = provider.diff(created.id, updated.outs, other)
    assert diff.replaces == ["app_id"]
    assert diff.delete_before_replace is True


def test_pointer__deleted__removed_and_second_delete_is_a_no_op(emulator):
    provider = ServicePrincipalPointerProvider()
    _, created = lifecycle_outs(provider, sp_props(emulator))
    provider.delete(created.id, created.outs)
    provider.delete(created.id, created.outs)
    assert emulator.client().list_service_principals() == []


def test_pointer__object_id_not_a_guid__check_fails_naming_the_key(emulator):
    result = ServicePrincipalPointerProvider().check({}, sp_props(emulator, object_id="not-a-guid"))
    assert [(f.property, f.reason) for f in result.failures] == [
        ("object_id", "Exchange service principal pointer: object_id must be a GUID, got 'not-a-guid'.")
    ]


# -- management scope ---------------------------------------------------------------------------------------------


def scope_props(emulator, mailboxes=("lms-noreply@contoso.com",), **overrides):
    return emulator.props(**{"name": "mailplane-contoso", "mailboxes": list(mailboxes), **overrides})


def test_scope__created_then_created_again__filter_built_from_mailboxes_and_adopted(emulator):
    provider = ManagementScopeProvider()
    inputs, first = lifecycle_outs(provider, scope_props(emulator, ["Bob@contoso.com", "alice@contoso.com"]))
    assert inputs["recipient_restriction_filter"] == (
        "(PrimarySmtpAddress -eq 'alice@contoso.com') -or (PrimarySmtpAddress -eq 'bob@contoso.com')"
    )
    second = provider.create(inputs)
    assert (first.id, second.outs["adopted"]) == ("mailplane-contoso", True)
    assert (
        emulator.client().get_management_scope("mailplane-contoso").recipient_restriction_filter
        == (inputs["recipient_restriction_filter"])
    )


def test_scope__same_name_with_other_filter__create_reports_conflict(emulator):
    emulator.client().create_management_scope("mailplane-contoso", "(PrimarySmtpAddress -eq 'ceo@contoso.com')")
    provider = ManagementScopeProvider()
    with pytest.raises(ExchangeConflictError, match="already exists with the filter"):
        provider.create(prepared(provider, scope_props(emulator)))


def test_scope__filter_changed_then_scope_removed_out_of_band__read_reports_drift_then_gone(emulator):
    provider = ManagementScopeProvider()
    inputs, created = lifecycle_outs(provider, scope_props(emulator))
    emulator.client().set_management_scope("mailplane-contoso", "(PrimarySmtpAddress -eq 'ceo@contoso.com')")
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["recipient_restriction_filter"] == "(PrimarySmtpAddress -eq 'ceo@contoso.com')"
    diff = provider.diff(created.id, drifted.outs, inputs)
    assert (diff.changes, diff.replaces) == (True, [])
    repaired = provider.update(created.id, drifted.outs, inputs)
    assert repaired.outs["recipient_restriction_filter"] == inputs["recipient_restriction_filter"]
    emulator.client().delete_management_scope("mailplane-contoso")
    assert provider.read(created.id, created.outs).id == ""


def test_scope__mailbox_added__updates_in_place_and_rename_replaces(emulator):
    provider = ManagementScopeProvider()
    _, created = lifecycle_outs(provider, scope_props(emulator))
    news = prepared(provider, scope_props(emulator, ["lms-noreply@contoso.com", "alice@contoso.com"]))
    assert provider.diff(created.id, created.outs, news).replaces == []
    updated = provider.update(created.id, created.outs, news)
    assert "alice@contoso.com" in updated.outs["recipient_restriction_filter"]
    renamed = prepared(provider, scope_props(emulator, name="mailplane-other"))
    assert provider.diff(created.id, updated.outs, renamed).replaces == ["name"]


def test_scope__unknown_mailbox__create_fails_clearly_and_writes_nothing(emulator):
    provider = ManagementScopeProvider()
    inputs = prepared(provider, scope_props(emulator, ["lms-noreply@contoso.com", "typo@contoso.com"]))
    with pytest.raises(ExchangeNotFoundError) as caught:
        provider.create(inputs)
    assert str(caught.value) == (
        "creating the Exchange management scope 'mailplane-contoso': 'typo@contoso.com' is not a recipient in "
        "Exchange Online. Fix the address in the stack file, or create the mailbox first (user mailboxes need a "
        "licensed user)."
    )
    assert "New-ManagementScope" not in emulator.state.cmdlets_called()


def test_scope__deleted__removed(emulator):
    provider = ManagementScopeProvider()
    _, created = lifecycle_outs(provider, scope_props(emulator))
    provider.delete(created.id, created.outs)
    with pytest.raises(ExchangeNotFoundError):
        emulator.client().get_management_scope("mailplane-contoso")


# -- role assignment ----------------------------------------------------------------------------------------------


@pytest.fixture
def pointer_and_scopes(emulator):
    client = emulator.client()
    client.create_service_principal(APP_ID, SP_OBJECT_ID, "Contoso LMS")
    client.create_management_scope("mailplane-contoso", "(PrimarySmtpAddress -eq 'lms-noreply@contoso.com')")
    client.create_management_scope("mailplane-wide", "(PrimarySmtpAddress -like '*@contoso.com')")
    return client


def ra_props(emulator, **overrides):
    values = {
        "name": "mailplane-contoso-mail.send",
        "role": "Application Mail.Send",
        "app": SP_OBJECT_ID,
        "custom_resource_scope": "mailplane-contoso",
    }
    values.update(overrides)
    return emulator.props(**values)


@pytest.mark.usefixtures("pointer_and_scopes")
def test_assignment__created_then_created_again__explicit_name_found_and_adopted(emulator):
    provider = ManagementRoleAssignmentProvider()
    inputs, first = lifecycle_outs(provider, ra_props(emulator))
    second = provider.create(inputs)
    assert first.id == "mailplane-contoso-mail.send"
    assert (first.outs["adopted"], second.outs["adopted"]) == (False, True)
    assert first.outs["recipient_write_scope"] == "CustomRecipientScope"
    assert emulator.state.cmdlets_called().count("New-ManagementRoleAssignment") == 1


def test_assignment__same_name_other_role__create_reports_conflict(emulator, pointer_and_scopes):
    pointer_and_scopes.create_role_assignment(
        "mailplane-contoso-mail.send", "Application Mail.ReadWrite", SP_OBJECT_ID, "mailplane-contoso"
    )
    provider = ManagementRoleAssignmentProvider()
    with pytest.raises(ExchangeConflictError, match=r"role: want 'Application Mail\.Send', found 'Application Mail"):
        provider.create(prepared(provider, ra_props(emulator)))


def test_assignment__rescoped_then_removed_out_of_band__read_reports_drift_then_gone(emulator, pointer_and_scopes):
    provider = ManagementRoleAssignmentProvider()
    inputs, created = lifecycle_outs(provider, ra_props(emulator))
    pointer_and_scopes.set_role_assignment("mailplane-contoso-mail.send", "mailplane-wide")
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["custom_resource_scope"] == "mailplane-wide"
    assert provider.diff(created.id, drifted.outs, inputs).replaces == []
    repaired = provider.update(created.id, drifted.outs, inputs)
    assert repaired.outs["custom_resource_scope"] == "mailplane-contoso"
    pointer_and_scopes.delete_role_assignment("mailplane-contoso-mail.send")
    assert provider.read(created.id, created.outs).id == ""


@pytest.mark.usefixtures("pointer_and_scopes")
def test_assignment__role_changes__replaced_deleting_first(emulator):
    provider = ManagementRoleAssignmentProvider()
    _, created = lifecycle_outs(provider, ra_props(emulator))
    news = prepared(provider, ra_props(emulator, role="Application Mail.ReadWrite"))
    diff = provider.diff(created.id, created.outs, news)
    assert (diff.replaces, diff.delete_before_replace) == (["role"], True)
    provider.delete(created.id, created.outs)
    replaced = provider.create(news)
    assert replaced.outs["role"] == "Application Mail.ReadWrite"


def test_assignment__deleted__removed(emulator, pointer_and_scopes):
    provider = ManagementRoleAssignmentProvider()
    _, created = lifecycle_outs(provider, ra_props(emulator))
    provider.delete(created.id, created.outs)
    assert pointer_and_scopes.list_role_assignments() == []


def test_assignment__name_too_long_and_not_an_app_role__check_fails(emulator):
    result = ManagementRoleAssignmentProvider().check({}, ra_props(emulator, name="x" * 65, role="Mail Recipients"))
    assert [f.property for f in result.failures] == ["name", "role"]


# -- mail-enabled security group ------------------------------------------------------------------------------------


def group_props(emulator, members=("lms-noreply@contoso.com", "alice@contoso.com"), **overrides):
    values = {"alias": "mailplane-contoso-scope", "name": "mailplane-contoso-scope", "display_name": "Contoso scope"}
    values.update(overrides)
    return emulator.props(members=list(members), **values)


def test_group__created_then_created_again__members_filled_and_adopted(emulator):
    provider = MailSecurityGroupProvider()
    inputs, first = lifecycle_outs(provider, group_props(emulator))
    second = provider.create(inputs)
    assert first.outs["members"] == ["alice@contoso.com", "lms-noreply@contoso.com"]
    assert (first.outs["adopted"], second.outs["adopted"]) == (False, True)
    assert emulator.client().get_distribution_group("mailplane-contoso-scope").is_security_group


def test_group__member_added_and_group_deleted_out_of_band__read_reports_drift_then_gone(emulator):
    provider = MailSecurityGroupProvider()
    inputs, created = lifecycle_outs(provider, group_props(emulator))
    emulator.client().create_distribution_group_member("mailplane-contoso-scope", "ceo@contoso.com")
    drifted = provider.read(created.id, created.outs)
    assert "ceo@contoso.com" in drifted.outs["members"]
    assert provider.diff(created.id, drifted.outs, inputs).changes is True
    repaired = provider.update(created.id, drifted.outs, inputs)
    assert repaired.outs["members"] == ["alice@contoso.com", "lms-noreply@contoso.com"]
    emulator.client().delete_distribution_group("mailplane-contoso-scope")
    assert provider.read(created.id, created.outs).id == ""


def test_group__display_name_changes__replaced_deleting_first(emulator):
    provider = MailSecurityGroupProvider()
    _, created = lifecycle_outs(provider, group_props(emulator))
    diff = provider.diff(created.id, created.outs, prepared(provider, group_props(emulator, display_name="New")))
    assert (diff.replaces, diff.delete_before_replace) == (["display_name"], True)


def test_group__alias_taken_by_a_mailbox__create_reports_conflict(emulator):
    provider = MailSecurityGroupProvider()
    with pytest.raises(ExchangeConflictError, match="the alias is taken by a UserMailbox"):
        provider.create(prepared(provider, group_props(emulator, alias="alice", name="alice")))


def test_group__member_add_fails_mid_apply__rerun_finishes_the_same_group(emulator):
    provider = MailSecurityGroupProvider()
    inputs = prepared(provider, group_props(emulator))
    emulator.state.inject_fault(Fault("Add-DistributionGroupMember", on_call=2, status=400, message="boom"))
    with pytest.raises(ExchangeError, match="running Add-DistributionGroupMember on 'mailplane-contoso-scope'"):
        provider.create(inputs)
    rerun = provider.create(inputs)
    assert rerun.outs["members"] == ["alice@contoso.com", "lms-noreply@contoso.com"]
    assert emulator.state.cmdlets_called().count("New-DistributionGroup") == 1


def test_group__deleted__removed(emulator):
    provider = MailSecurityGroupProvider()
    _, created = lifecycle_outs(provider, group_props(emulator))
    provider.delete(created.id, created.outs)
    with pytest.raises(ExchangeNotFoundError):
        emulator.client().get_distribution_group("mailplane-contoso-scope")


# -- application access policy ------------------------------------------------------------------------------------


@pytest.fixture
def scope_group(emulator):
    client = emulator.client()
    client.create_security_group("mailplane-contoso-scope", "mailplane-contoso-scope", "Contoso scope")
    client.create_distribution_group_member("mailplane-contoso-scope", "lms-noreply@contoso.com")
    return client


def aap_props(emulator, **overrides):
    values = {
        "app_id": APP_ID,
        "group": "mailplane-contoso-scope",
        "access_right": "RestrictAccess",
        "description": "mailplane: Contoso LMS",
    }
    values.update(overrides)
    return emulator.props(**values)


def test_policy__created_then_created_again__adopted_and_restricts(emulator, scope_group):
    provider = ApplicationAccessPolicyProvider()
    inputs, first = lifecycle_outs(provider, aap_props(emulator))
    second = provider.create(inputs)
    assert first.id == second.id
    assert second.outs["adopted"] is True
    assert scope_group.test_access_policy("lms-noreply@contoso.com", APP_ID).granted
    assert not scope_group.test_access_policy("ceo@contoso.com", APP_ID).granted


def test_policy__same_app_and_group_with_deny__create_reports_conflict(emulator, scope_group):
    scope_group.create_access_policy(APP_ID, "mailplane-contoso-scope", "DenyAccess", "by hand")
    provider = ApplicationAccessPolicyProvider()
    with pytest.raises(ExchangeConflictError, match="a policy with AccessRight DenyAccess already exists"):
        provider.create(prepared(provider, aap_props(emulator)))


def test_policy__description_changed_then_policy_removed_out_of_band__drift_then_gone(emulator, scope_group):
    provider = ApplicationAccessPolicyProvider()
    inputs, created = lifecycle_outs(provider, aap_props(emulator))
    scope_group.set_access_policy(created.id, "edited in PowerShell")
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["description"] == "edited in PowerShell"
    diff = provider.diff(created.id, drifted.outs, inputs)
    assert (diff.changes, diff.replaces) == (True, [])
    assert provider.update(created.id, drifted.outs, inputs).outs["description"] == "mailplane: Contoso LMS"
    scope_group.delete_access_policy(created.id)
    assert provider.read(created.id, created.outs).id == ""


@pytest.mark.usefixtures("scope_group")
def test_policy__only_description_updates_in_place_anything_else_replaces(emulator):
    provider = ApplicationAccessPolicyProvider()
    _, created = lifecycle_outs(provider, aap_props(emulator))
    described = prepared(provider, aap_props(emulator, description="new words"))
    assert provider.diff(created.id, created.outs, described).replaces == []
    other_group = prepared(provider, aap_props(emulator, group="other-group"))
    diff = provider.diff(created.id, created.outs, other_group)
    assert (diff.replaces, diff.delete_before_replace) == (["group"], True)
    denied = prepared(provider, aap_props(emulator, access_right="DenyAccess"))
    assert provider.diff(created.id, created.outs, denied).replaces == ["access_right"]


def test_policy__group_missing__create_fails_clearly(emulator):
    provider = ApplicationAccessPolicyProvider()
    with pytest.raises(ExchangeNotFoundError, match="the scope group 'mailplane-contoso-scope' does not exist"):
        provider.create(prepared(provider, aap_props(emulator)))


def test_policy__deleted__removed(emulator, scope_group):
    provider = ApplicationAccessPolicyProvider()
    _, created = lifecycle_outs(provider, aap_props(emulator))
    provider.delete(created.id, created.outs)
    assert scope_group.list_access_policies() == []


# -- shared mailbox -----------------------------------------------------------------------------------------------


def mailbox_props(emulator, **overrides):
    values = {"address": "Support@contoso.com", "display_name": "Support"}
    values.update(overrides)
    return emulator.props(**values)


def test_mailbox__created_then_created_again__shared_sign_in_blocked_and_adopted(emulator):
    provider = MailboxProvider()
    inputs, first = lifecycle_outs(provider, mailbox_props(emulator))
    second = provider.create(inputs)
    assert first.id == "support@contoso.com"
    assert first.outs["recipient_type_details"] == "SharedMailbox"
    assert first.outs["block_sign_in"] is True
    assert (first.outs["adopted"], second.outs["adopted"]) == (False, True)
    assert emulator.state.cmdlets_called().count("New-Mailbox") == 1


def test_mailbox__address_of_a_user_mailbox__create_refuses_to_take_it_over(emulator):
    provider = MailboxProvider()
    with pytest.raises(ExchangeConflictError, match="a UserMailbox already has this address"):
        provider.create(prepared(provider, mailbox_props(emulator, address="alice@contoso.com")))


def test_mailbox__renamed_and_sign_in_enabled_out_of_band__read_reports_drift_and_update_repairs(emulator):
    provider = MailboxProvider()
    inputs, created = lifecycle_outs(provider, mailbox_props(emulator))
    emulator.client().set_mailbox("support@contoso.com", display_name="Help", account_disabled=False)
    drifted = provider.read(created.id, created.outs)
    assert (drifted.outs["display_name"], drifted.outs["block_sign_in"]) == ("Help", False)
    diff = provider.diff(created.id, drifted.outs, inputs)
    assert (diff.changes, diff.replaces) == (True, [])
    repaired = provider.update(created.id, drifted.outs, inputs)
    assert (repaired.outs["display_name"], repaired.outs["block_sign_in"]) == ("Support", True)


def test_mailbox__removed_out_of_band__read_reports_gone_and_create_explains_soft_delete(emulator):
    provider = MailboxProvider()
    inputs, created = lifecycle_outs(provider, mailbox_props(emulator))
    emulator.client().delete_mailbox("support@contoso.com")
    assert provider.read(created.id, created.outs).id == ""
    with pytest.raises(ExchangeConflictError, match=r"a removed \(soft-deleted\) mailbox still holds this address"):
        provider.create(inputs)


def test_mailbox__new_address__replaced(emulator):
    provider = MailboxProvider()
    _, created = lifecycle_outs(provider, mailbox_props(emulator))
    news = prepared(provider, mailbox_props(emulator, address="helpdesk@contoso.com"))
    assert provider.diff(created.id, created.outs, news).replaces == ["address", "alias"]


def test_mailbox__deleted_by_default__mailbox_and_mail_retained(emulator):
    provider = MailboxProvider()
    _, created = lifecycle_outs(provider, mailbox_props(emulator))
    provider.delete(created.id, created.outs)
    assert emulator.client().get_mailbox("support@contoso.com").recipient_type_details == "SharedMailbox"
    assert "Remove-Mailbox" not in emulator.state.cmdlets_called()


def test_mailbox__deleted_with_remove_on_delete__soft_deleted(emulator):
    provider = MailboxProvider()
    _, created = lifecycle_outs(provider, mailbox_props(emulator, remove_on_delete=True))
    provider.delete(created.id, created.outs)
    assert emulator.client().get_mailbox("support@contoso.com", soft_deleted=True).soft_deleted
    with pytest.raises(ExchangeNotFoundError):
        emulator.client().get_mailbox("support@contoso.com")


def test_mailbox__new_mailbox_answers_500_after_creating__create_reads_back_and_succeeds(emulator):
    emulator.state.inject_fault(Fault("New-Mailbox", status=500, after_apply=True))
    provider = MailboxProvider()
    created = provider.create(prepared(provider, mailbox_props(emulator)))
    assert created.outs["recipient_type_details"] == "SharedMailbox"
    assert emulator.state.cmdlets_called().count("New-Mailbox") == 1


def test_mailbox__new_mailbox_answers_500_without_creating__error_raised_and_rerun_creates(emulator):
    emulator.state.inject_fault(Fault("New-Mailbox", status=500))
    provider = MailboxProvider()
    inputs = prepared(provider, mailbox_props(emulator))
    with pytest.raises(ExchangeError, match="running New-Mailbox on 'support': TransientException"):
        provider.create(inputs)
    assert provider.create(inputs).outs["adopted"] is False


def test_mailbox__403_with_diagnostics__access_denied_names_the_reason_and_nothing_is_made(emulator):
    emulator.state.inject_fault(
        Fault.forbidden("New-Mailbox", diagnostics='2000008;reason="missing role Mail Recipient Creation"')
    )
    provider = MailboxProvider()
    with pytest.raises(ExchangeAccessDeniedError) as caught:
        provider.create(prepared(provider, mailbox_props(emulator)))
    assert "missing role Mail Recipient Creation" in str(caught.value)
    assert "Exchange.ManageAsApp" in str(caught.value)
    with pytest.raises(ExchangeNotFoundError):
        emulator.client().get_mailbox("support@contoso.com")


# -- mailbox members ----------------------------------------------------------------------------------------------


@pytest.fixture
def support_mailbox(emulator):
    client = emulator.client()
    client.create_shared_mailbox("support", "Support", "support", "support@contoso.com")
    return client


def member_props(emulator, **overrides):
    values = {"mailbox": "support@contoso.com", "user": "alice@contoso.com"}
    values.update(overrides)
    return emulator.props(**values)


@pytest.mark.usefixtures("support_mailbox")
def test_member__created_then_created_again__full_access_without_automapping_and_idempotent(emulator):
    provider = MailboxMemberProvider()
    inputs, first = lifecycle_outs(provider, member_props(emulator, send_as=True))
    second = provider.create(inputs)
    assert (first.id, first.outs["full_access"], first.outs["send_as"]) == (
        "support@contoso.com/alice@contoso.com",
        True,
        True,
    )
    assert {**second.outs, "adopted": False} == first.outs
    assert second.outs["adopted"] is True
    org = emulator.state.tenant(TENANT)
    mailbox = org.find("support@contoso.com")
    assert [ace.auto_mapping for ace in org.full_access[mailbox.guid]] == [False]
    assert emulator.state.cmdlets_called().count("Add-MailboxPermission") == 1


def test_member__send_as_removed_then_all_rights_removed_out_of_band__drift_then_gone(emulator, support_mailbox):
    provider = MailboxMemberProvider()
    inputs, created = lifecycle_outs(provider, member_props(emulator, send_as=True))
    support_mailbox.delete_recipient_permission("support@contoso.com", "alice@contoso.com")
    drifted = provider.read(created.id, created.outs)
    assert (drifted.outs["full_access"], drifted.outs["send_as"]) == (True, False)
    assert provider.diff(created.id, drifted.outs, inputs).changes is True
    assert provider.update(created.id, drifted.outs, inputs).outs["send_as"] is True
    support_mailbox.delete_recipient_permission("support@contoso.com", "alice@contoso.com")
    support_mailbox.delete_mailbox_permission("support@contoso.com", "alice@contoso.com")
    assert provider.read(created.id, created.outs).id == ""


@pytest.mark.usefixtures("support_mailbox")
def test_member__automapping_turned_on__full_access_re_added_with_it(emulator):
    provider = MailboxMemberProvider()
    _, created = lifecycle_outs(provider, member_props(emulator))
    news = prepared(provider, member_props(emulator, auto_mapping=True))
    assert provider.diff(created.id, created.outs, news).replaces == []
    provider.update(created.id, created.outs, news)
    org = emulator.state.tenant(TENANT)
    assert [ace.auto_mapping for ace in org.full_access[org.find("support@contoso.com").guid]] == [True]


@pytest.mark.usefixtures("support_mailbox")
def test_member__other_user__replaced(emulator):
    provider = MailboxMemberProvider()
    _, created = lifecycle_outs(provider, member_props(emulator))
    assert provider.diff(
        created.id, created.outs, prepared(provider, member_props(emulator, user="bob@contoso.com"))
    ).replaces == ["user"]


@pytest.mark.usefixtures("support_mailbox")
def test_member__unknown_user__create_fails_clearly_and_grants_nothing(emulator):
    provider = MailboxMemberProvider()
    with pytest.raises(ExchangeNotFoundError) as caught:
        provider.create(prepared(provider, member_props(emulator, user="nobody@contoso.com")))
    assert str(caught.value).startswith(
        "adding nobody@contoso.com to the mailbox support@contoso.com: 'nobody@contoso.com' is not a recipient"
    )
    assert "Add-MailboxPermission" not in emulator.state.cmdlets_called()


def test_member__deleted__rights_removed_and_mailbox_kept(emulator, support_mailbox):
    provider = MailboxMemberProvider()
    _, created = lifecycle_outs(provider, member_props(emulator, send_as=True))
    provider.delete(created.id, created.outs)
    users = [e.user for e in support_mailbox.list_mailbox_permissions("support@contoso.com")]
    trustees = [e.trustee for e in support_mailbox.list_recipient_permissions("support@contoso.com")]
    assert users == ["NT AUTHORITY\\SELF"]
    assert trustees == ["NT AUTHORITY\\SELF"]
    assert support_mailbox.get_mailbox("support@contoso.com")


def test_member__neither_right__check_fails(emulator):
    result = MailboxMemberProvider().check({}, member_props(emulator, full_access=False, send_as=False))
    assert [f.property for f in result.failures] == ["full_access"]


# -- a whole rbac apply interrupted mid-way -------------------------------------------------------------------------


def test_rbac_apply__assignment_fails_mid_apply__rerun_adopts_what_exists_and_finishes(emulator):
    steps = [
        (ServicePrincipalPointerProvider(), sp_props(emulator)),
        (ManagementScopeProvider(), scope_props(emulator)),
        (ManagementRoleAssignmentProvider(), ra_props(emulator)),
    ]
    emulator.state.inject_fault(
        Fault(
            "New-ManagementRoleAssignment",
            status=400,
            exception_type="Microsoft.Exchange.Configuration.Tasks.TaskException",
            message="The operation couldn't be completed.",
        )
    )
    for provider, props in steps[:2]:
        provider.create(prepared(provider, props))
    provider, props = steps[2]
    inputs = prepared(provider, props)
    with pytest.raises(ExchangeError, match=r"running New-ManagementRoleAssignment on 'mailplane-contoso-mail\.send'"):
        provider.create(inputs)
    rerun = [provider.create(prepared(provider, props)) for provider, props in steps]
    assert [r.outs["adopted"] for r in rerun] == [True, True, False]
    called = emulator.state.cmdlets_called()
    assert (called.count("New-ServicePrincipal"), called.count("New-ManagementScope")) == (1, 1)
    assert [
        c.in_scope for c in emulator.client().test_service_principal_authorization(APP_ID, "lms-noreply@contoso.com")
    ] == [True]


def test_rbac_apply__role_missing_for_assignments__403_explains_then_rerun_after_grant_finishes(emulator):
    emulator.state.deny_cmdlets(TENANT, "New-ManagementRoleAssignment")
    pointer, scope, assignment = (
        ServicePrincipalPointerProvider(),
        ManagementScopeProvider(),
        ManagementRoleAssignmentProvider(),
    )
    pointer.create(prepared(pointer, sp_props(emulator)))
    scope.create(prepared(scope, scope_props(emulator)))
    inputs = prepared(assignment, ra_props(emulator))
    with pytest.raises(ExchangeAccessDeniedError) as caught:
        assignment.create(inputs)
    assert "does not have the role required to run New-ManagementRoleAssignment" in str(caught.value)
    assert "Exchange Administrator role" in str(caught.value)
    emulator.state.allow_cmdlets(TENANT, "New-ManagementRoleAssignment")
    assert assignment.create(inputs).outs["adopted"] is False
    assert [r.name for r in emulator.client().list_role_assignments()] == ["mailplane-contoso-mail.send"]


def test_policy__new_policy_answers_500_after_creating__create_finds_it_and_succeeds(emulator, scope_group):
    emulator.state.inject_fault(Fault("New-ApplicationAccessPolicy", status=500, after_apply=True))
    provider = ApplicationAccessPolicyProvider()
    created = provider.create(prepared(provider, aap_props(emulator)))
    assert created.outs["access_right"] == "RestrictAccess"
    assert len(scope_group.list_access_policies()) == 1


def test_group__unknown_member__create_fails_clearly_and_makes_no_group(emulator):
    provider = MailSecurityGroupProvider()
    with pytest.raises(ExchangeNotFoundError, match=r"'typo@contoso\.com' is not a recipient in Exchange Online"):
        provider.create(prepared(provider, group_props(emulator, members=["alice@contoso.com", "typo@contoso.com"])))
    assert "New-DistributionGroup" not in emulator.state.cmdlets_called()
