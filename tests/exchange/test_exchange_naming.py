"""Pure helpers: Exchange object names, recipient filters, diff and adoption decisions."""

from __future__ import annotations

import pytest

from mailplane.exchange.naming import (
    access_policy_group_alias,
    bounded_name,
    mailbox_alias,
    recipient_filter,
    role_assignment_name,
    scope_name,
)
from mailplane.exchange.reconcile import decide_diff, member_changes, mismatches

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def test_recipient_filter__mixed_case_duplicates_and_order__one_stable_sorted_filter():
    assert recipient_filter(["Support@Contoso.com", "billing@contoso.com", "support@contoso.com"]) == (
        "(PrimarySmtpAddress -eq 'billing@contoso.com') -or (PrimarySmtpAddress -eq 'support@contoso.com')"
    )


def test_recipient_filter__quote_in_address__doubled():
    assert recipient_filter(["o'brien@contoso.com"]) == "(PrimarySmtpAddress -eq 'o''brien@contoso.com')"


def test_recipient_filter__no_mailbox__refused():
    with pytest.raises(ValueError, match="at least one mailbox"):
        recipient_filter([" "])


def test_names__derived_from_component_name():
    assert scope_name("contoso") == "mailplane-contoso"
    assert scope_name("contoso", ["Mail.Send"]) == "mailplane-contoso-mail.send"
    assert role_assignment_name("contoso", "Application Mail.ReadWrite") == "mailplane-contoso-mail.readwrite"
    assert access_policy_group_alias("Contoso LMS") == "mailplane-contoso-lms-scope"
    assert access_policy_group_alias("contoso", "custom-alias") == "custom-alias"
    assert mailbox_alias("Help Desk@contoso.com") == "help-desk"


def test_bounded_name__over_64__prefix_plus_stable_hash_within_limit():
    long = "mailplane-" + "x" * 80
    bounded = bounded_name(long)
    assert len(bounded) == 64
    assert bounded == bounded_name(long)
    assert bounded != bounded_name(long + "y")
    assert bounded_name("short") == "short"


def test_decide_diff__only_update_keys_differ__update_in_place():
    decision = decide_diff(
        {"name": "a", "filter": "x"}, {"name": "A", "filter": "y"}, update_in_place=["filter"], replace=["name"]
    )
    assert (decision.changed, decision.replaces) == (("filter",), ())


def test_decide_diff__replace_key_unknown_in_preview__replacement_shown():
    decision = decide_diff({"app": "a"}, {"app": UNKNOWN}, update_in_place=[], replace=["app"])
    assert decision.replaces == ("app",)


def test_decide_diff__list_order_differs__no_change():
    assert not decide_diff({"m": ["a", "b"]}, {"m": ["b", "a"]}, update_in_place=["m"], replace=[]).has_changes


def test_mismatches__readable_lines():
    assert mismatches({"role": "Application Mail.Send", "app": "x"}, {"role": "Application Mail.Read", "app": "X"}) == [
        "role: want 'Application Mail.Send', found 'Application Mail.Read'"
    ]


def test_member_changes__case_insensitive_add_and_remove():
    changes = member_changes(["A@x.com", "b@x.com"], ["a@x.com", "c@x.com"])
    assert (changes.add, changes.remove) == (("b@x.com",), ("c@x.com",))
