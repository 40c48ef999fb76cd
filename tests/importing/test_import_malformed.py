"""Malformed mail is imported or quarantined with a reason; it never stops the run."""

from __future__ import annotations

from importing_harness import SUPPORT, eml, read_store, received, run_importer

BROKEN_MIME = (
    b"From: Broken <broken@example.org>\r\nTo: support@fabrikam.com\r\nSubject: broken multipart\r\n"
    b"Message-ID: <broken-mime@example.org>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
    b"--never-closed\r\nContent-Type: text/plain\r\n\r\nhalf a body\r\n--never-clo"
)
WRONG_CHARSET = (
    b"From: =?iso-8859-1?q?J=F6rg?= <joerg@example.de>\r\nTo: support@fabrikam.com\r\n"
    b"Subject: =?utf-8?b?w5xiZXJ3ZWlzdW5n?= \xe4\xf6\xfc raw latin-1\r\nMessage-ID: <charset@example.de>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\xfc\xdfe aus K\xf6ln (latin-1 bytes)\r\n"
)
UNKNOWN_CHARSET = (
    b"From: x@example.org\r\nTo: support@fabrikam.com\r\nSubject: unknown charset\r\n"
    b"Message-ID: <unknown-charset@example.org>\r\n"
    b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\x80\x81\x82 body\r\n"
)
NO_HEADERS = b"\r\njust a body, no headers at all\r\n"
ONLY_BODY_NO_FROM = b"Subject: nobody sent this\r\n\r\nno From, no To, no Message-ID, no Date\r\n"


def _huge_headers() -> bytes:
    references = " ".join(f"<ref{n}@example.org>" for n in range(6000))
    return (
        b"From: big@example.org\r\nTo: support@fabrikam.com\r\nMessage-ID: <huge@example.org>\r\n"
        b"Subject: "
        + b"very long subject " * 3000
        + b"\r\nReferences: "
        + references.encode()
        + b"\r\nX-Junk: "
        + b"j" * 200_000
        + b"\r\n\r\nbody\r\n"
    )


def test_malformed_mail_among_good_mail__import__every_message_imported_or_quarantined_and_the_run_continues(
    tenant, make_config
):
    config = make_config()
    malformed = [BROKEN_MIME, WRONG_CHARSET, UNKNOWN_CHARSET, NO_HEADERS, ONLY_BODY_NO_FROM, _huge_headers()]
    for minute, raw in enumerate(malformed):
        tenant.state.seed_eml(SUPPORT, raw, received=received(minute))
    tenant.state.seed_eml(SUPPORT, eml("A normal one", message_id="<normal@example.org>"), received=received(30))

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert report.imported + report.failed == len(malformed) + 1
    states = read_store(config, lambda s: s.list_message_states(SUPPORT))
    assert len(states) == len(malformed) + 1
    for state in states:
        assert state.state in ("read", "moved"), state
        if state.state == "moved":
            assert state.reason
    inbox = tenant.state.messages(SUPPORT, "inbox")
    assert all(m.is_read for m in inbox)
    conversations = read_store(config, lambda s: s.list_conversations())
    messages = {m.internet_message_id: m for c in conversations for m in c.messages}
    assert "<normal@example.org>" in messages
    huge = messages["<huge@example.org>"]
    assert len(huge.subject) <= 998
    assert len(huge.attributes["references"]) <= 50
    assert huge.attributes["references"][-1] == "<ref5999@example.org>"
    no_id = [m for m in messages.values() if m.internet_message_id.endswith(".invalid>")]
    assert len(no_id) >= 2  # the two without a Message-ID got stand-ins from their immutable ids


def test_message_without_message_id__imported_twice_by_two_runs__stored_once(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, ONLY_BODY_NO_FROM, received=received(1))
    run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))
    run_importer(tenant, config, lambda importer: importer.resync(SUPPORT))

    assert read_store(config, lambda s: s.count_messages()) == 1
