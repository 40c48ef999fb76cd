"""Outgoing messages: validation, derived idempotency keys, splitting by recipient count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailplane.sending.outgoing import (
    Address,
    OutgoingAttachment,
    OutgoingMessage,
    derive_idempotency_key,
    draft_marker,
    parse_address,
    split_by_recipients,
    validate_idempotency_key,
)


def _message(**changes):
    fields = {"to": (Address("ann@example.com"),), "subject": "Hi", "text": "Hello"}
    return OutgoingMessage(**{**fields, **changes})


def test_address_with_display_name__parsed():
    assert parse_address("Ann Smith <ann@example.com>") == Address("ann@example.com", "Ann Smith")


def test_address_without_domain__refused_with_the_expected_form():
    with pytest.raises(ValueError, match=r"name@example\.com"):
        parse_address("ann")


def test_message_without_recipients__refused():
    with pytest.raises(ValueError, match="at least one recipient"):
        OutgoingMessage(subject="x", text="y")


def test_message_without_body__refused():
    with pytest.raises(ValueError, match="needs a body"):
        _message(text=None)


def test_same_address_in_to_and_bcc__kept_once_in_to():
    message = _message(bcc=(Address("ANN@example.com"), Address("bob@example.com")))
    assert [a.address for a in message.bcc] == ["bob@example.com"]
    assert message.recipient_count == 2


def test_attachment_without_content_type__guessed_from_the_name():
    assert OutgoingAttachment("report.pdf", b"%PDF").content_type == "application/pdf"


def test_derived_key__same_content__same_key_and_any_change__another_key():
    base = derive_idempotency_key("alerts@contoso.com", _message())
    assert base == derive_idempotency_key("ALERTS@contoso.com", _message())
    assert base != derive_idempotency_key("alerts@contoso.com", _message(subject="Hi!"))
    assert base != derive_idempotency_key("other@contoso.com", _message())
    with_file = _message(attachments=(OutgoingAttachment("a.txt", b"1"),))
    assert derive_idempotency_key("alerts@contoso.com", with_file) != derive_idempotency_key(
        "alerts@contoso.com", _message(attachments=(OutgoingAttachment("a.txt", b"2"),))
    )


def test_marker__is_a_category_name_per_mailbox_and_key():
    marker = draft_marker("alerts@contoso.com", "order-42")
    assert marker.startswith("mailplane-send-")
    assert len(marker) < 255
    assert marker != draft_marker("alerts@contoso.com", "order-43")


def test_idempotency_key_with_spaces__refused_naming_the_allowed_characters():
    with pytest.raises(ValueError, match="letters, digits"):
        validate_idempotency_key("order 42")


def test_round_trip__message_to_dict_and_back__equal():
    message = _message(cc=(Address("c@example.com", "C"),), html="<p>x</p>", reply_to=(Address("r@example.com"),))
    assert OutgoingMessage.from_dict(message.to_dict()) == message


@given(to=st.integers(0, 30), cc=st.integers(0, 30), bcc=st.integers(0, 30), per_message=st.integers(1, 25))
def test_split__any_recipient_lists__parts_within_limit_and_every_recipient_once_in_its_role(to, cc, bcc, per_message):
    if to + cc + bcc == 0:
        return
    message = _message(
        to=tuple(Address(f"to{i}@example.com") for i in range(to)),
        cc=tuple(Address(f"cc{i}@example.com") for i in range(cc)),
        bcc=tuple(Address(f"bcc{i}@example.com") for i in range(bcc)),
    )
    parts = split_by_recipients(message, per_message)
    assert all(1 <= p.recipient_count <= per_message for p in parts)
    for role in ("to", "cc", "bcc"):
        assert [a for p in parts for a in getattr(p, role)] == list(getattr(message, role))
    assert len(parts) == -(-message.recipient_count // per_message)
