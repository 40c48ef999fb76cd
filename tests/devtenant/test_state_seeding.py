from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailplane.devtenant.projection import message_json
from mailplane.devtenant.state import DevTenantState

BOX = "shared@contoso.com"


def _state():
    state = DevTenantState()
    state.add_mailbox(BOX, kind="shared")
    return state


def test_seed__unknown_charset_and_encoded_subject__decoded_best_effort():
    raw = (
        b"From: =?iso-8859-1?q?J=F6rg?= <j@example.com>\r\nTo: shared@contoso.com\r\n"
        b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\n"
        b"caf\xc3\xa9\r\n"
    )
    state = _state()
    state.seed_eml(BOX, raw)
    [message] = state.messages(BOX)
    assert message.subject == "Grüße"
    assert message.from_ == ("Jörg", "j@example.com")
    assert message.body.strip() == "café"


def test_seed__latin1_body__decoded_with_declared_charset():
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nna\xefve\r\n"
    state = _state()
    state.seed_eml(BOX, raw)
    assert state.messages(BOX)[0].body.strip() == "naïve"


def test_seed__no_headers_at_all__stored_with_received_time_and_no_sender():
    state = _state()
    received = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    message_id = state.seed_eml(BOX, b"just a body, no headers", received=received)
    [message] = state.messages(BOX)
    projected = message_json(message)
    assert projected["id"] == message_id
    assert (projected["subject"], projected["from"], projected["internetMessageId"]) == (None, None, None)
    assert projected["receivedDateTime"] == "2024-05-01T12:00:00Z"
    assert message.raw == b"just a body, no headers"


def test_seed__broken_multipart_without_closing_boundary__body_kept():
    raw = (
        b"From: a@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="zzz"\r\n\r\n--zzz\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
        b"--zzz\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64"
    )
    state = _state()
    state.seed_eml(BOX, raw)
    [message] = state.messages(BOX)
    assert message.body.strip() == "hello"
    assert [a.name for a in message.attachments] == ["a.pdf"]


def test_seed__path_and_unknown_mailbox__mailbox_created(tmp_path):
    path = tmp_path / "one.eml"
    path.write_bytes(b"From: a@example.com\r\nSubject: from file\r\n\r\nbody\r\n")
    state = DevTenantState()
    state.seed_eml("new@contoso.com", path, folder="archive", is_read=True)
    [message] = state.messages("new@contoso.com", "archive")
    assert (message.subject, message.is_read) == ("from file", True)
    assert state.mailbox("new@contoso.com").tenant_id == state.default_tenant_id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_seed__arbitrary_bytes__never_raises_and_projects(raw):
    state = _state()
    state.seed_eml(BOX, raw)
    message_json(state.messages(BOX)[0], select=["internetMessageHeaders", "subject", "body"])


def test_threading__reply_with_references__same_conversation_id():
    state = _state()
    state.seed_eml(BOX, b"Message-ID: <root@example.com>\r\nSubject: q\r\n\r\nq")
    state.seed_eml(
        BOX,
        b"Message-ID: <r1@example.com>\r\nIn-Reply-To: <root@example.com>\r\n"
        b"References: <root@example.com>\r\nSubject: Re: q\r\n\r\na",
    )
    state.seed_eml(BOX, b"Message-ID: <other@example.com>\r\nSubject: other\r\n\r\nz")
    by_subject = {m.subject: m for m in state.messages(BOX)}
    assert by_subject["q"].conversation_id == by_subject["Re: q"].conversation_id
    assert by_subject["other"].conversation_id != by_subject["q"].conversation_id
    assert len(by_subject["Re: q"].conversation_index) == len(by_subject["q"].conversation_index) + 5


def test_folder_ids__same_mailbox_in_two_states__stable():
    assert _state().folder_id(BOX, "inbox") == _state().folder_id(BOX, "Inbox")
    assert _state().folder_id(BOX, "inbox") != _state().folder_id(BOX, "archive")


def test_delivery__recipient_in_other_tenant__not_delivered_but_in_outbox():
    state = _state()
    state.add_tenant("other-tenant", ["fabrikam.com"])
    state.add_mailbox("someone@fabrikam.com")
    sender = state.mailbox(BOX)
    state.send_fields(sender, {"subject": "x", "to": [("", "someone@fabrikam.com")]}, save_to_sent_items=False)
    assert state.messages("someone@fabrikam.com") == []
    assert state.outbox(BOX)[0].recipients == ["someone@fabrikam.com"]
    assert state.sent_count() == 1


def test_seed__message_text_instead_of_bytes__stored():
    state = _state()
    state.seed_eml(BOX, "From: a@example.com\r\nSubject: text\r\n\r\nbody\r\n")
    assert state.messages(BOX)[0].subject == "text"
