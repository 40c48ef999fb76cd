"""The sender through the real msgraph-sdk against the dev tenant: what is sent, how, and within which limits."""

from __future__ import annotations

import pytest
from sending_harness import INTERNAL, SENDER, delivered_keys, harness, inbox_count

from mailplane.exceptions import IdempotencyConflictError, SendError
from mailplane.integration import SendingLimits
from mailplane.sending.graph_drafts import IDEMPOTENCY_HEADER
from mailplane.sending.outgoing import Address, OutgoingAttachment, OutgoingMessage
from mailplane.sending.store import SendState

EXTERNAL = "ann@northwind.example"


@pytest.fixture
def h(tmp_path):
    with harness(tmp_path) as running:
        yield running


def _message(**changes):
    fields = {"to": (Address(INTERNAL, "Agent"),), "subject": "Ticket 1042", "text": "Hello"}
    return OutgoingMessage(**{**fields, **changes})


def test_html_message_with_cc_bcc_and_reply_to__delivered_once_with_every_field(h):
    message = _message(
        html="<p>Hello <b>Agent</b></p>",
        text=None,
        cc=(Address(EXTERNAL),),
        bcc=(Address("audit@northwind.example"),),
        reply_to=(Address("support@fabrikam.com", "Support"),),
    )

    async def scenario(make, _store):
        return await make().send(message, idempotency_key="ticket-1042-ack")

    receipt = h.run(scenario)
    assert receipt.state == "sent"
    [record] = h.tenant.state.outbox(SENDER)
    assert (record.to, record.cc, record.bcc) == ([INTERNAL], [EXTERNAL], ["audit@northwind.example"])
    [received] = h.tenant.state.messages(INTERNAL, "inbox")
    assert received.subject == "Ticket 1042"
    assert received.body_type == "html"
    assert received.reply_to == [("Support", "support@fabrikam.com")]
    assert (IDEMPOTENCY_HEADER, "ticket-1042-ack") in received.headers
    assert received.bcc == []
    assert h.tenant.state.messages(SENDER, "drafts") == []


def test_same_key_asked_twice__one_delivery_and_the_first_receipt(h):
    async def scenario(make, _store):
        sender = make()
        first = await sender.send(_message(), idempotency_key="k-1")
        second = await sender.send(_message(), idempotency_key="k-1")
        return first, second

    first, second = h.run(scenario)
    assert (first.state, second.state) == ("sent", "sent")
    assert first.parts[0].sent_at == second.parts[0].sent_at
    assert delivered_keys(h.tenant) == ["k-1"]


def test_same_content_without_key__derived_key__one_delivery(h):
    async def scenario(make, _store):
        sender = make()
        await sender.send(_message())
        return await sender.send(_message())

    receipt = h.run(scenario)
    assert receipt.key.startswith("sha256:")
    assert len(delivered_keys(h.tenant)) == 1


def test_same_key_other_content__refused_and_nothing_more_sent(h):
    async def scenario(make, _store):
        sender = make()
        await sender.send(_message(), idempotency_key="k-1")
        await sender.send(_message(subject="Other"), idempotency_key="k-1")

    with pytest.raises(IdempotencyConflictError, match="different message"):
        h.run(scenario)
    assert delivered_keys(h.tenant) == ["k-1"]


def test_small_attachments__inline_in_the_draft_request__no_attachment_requests(h):
    files = (OutgoingAttachment("a.txt", b"alpha"), OutgoingAttachment("b.pdf", b"%PDF-1.7 " * 1000))

    async def scenario(make, _store):
        return await make().send(_message(attachments=files))

    assert h.run(scenario).state == "sent"
    [received] = h.tenant.state.messages(INTERNAL, "inbox")
    assert [(a.name, a.content) for a in received.attachments] == [(f.name, f.content) for f in files]
    assert h.tenant.requests.count(kind="attachment.create") == 0
    assert h.tenant.requests.count(kind="message.create", status=201) == 1


def test_large_and_small_attachments_over_3_mb__small_posted_large_uploaded_in_chunks(h):
    big = bytes(range(256)) * (4 * 4096 + 7)  # 4.2 MB
    files = (OutgoingAttachment("small.txt", b"small"), OutgoingAttachment("big.bin", big))

    async def scenario(make, _store):
        return await make(chunk_bytes=1024 * 1024).send(_message(attachments=files))

    assert h.run(scenario).state == "sent"
    [received] = h.tenant.state.messages(INTERNAL, "inbox")
    assert [(a.name, a.content) for a in received.attachments] == [("small.txt", b"small"), ("big.bin", big)]
    assert h.tenant.requests.count(kind="attachment.create", status=201) == 1
    assert h.tenant.requests.count(kind="attachment.upload", status=200) == 4
    assert h.tenant.requests.count(kind="attachment.upload", status=201) == 1


def test_more_recipients_than_allowed_per_message__split_into_parts_each_within_the_limit(h):
    to = tuple(Address(f"person{i}@northwind.example") for i in range(5))
    limits = SendingLimits(recipients_per_message=2)

    async def scenario(make, _store):
        return await make(limits=limits).send(_message(to=to, bcc=(Address(INTERNAL),)), idempotency_key="many")

    receipt = h.run(scenario)
    assert receipt.state == "sent"
    assert [p.key for p in receipt.parts] == ["many#1/3", "many#2/3", "many#3/3"]
    sent = h.tenant.state.outbox(SENDER)
    assert sorted(len(r.recipients) for r in sent) == [2, 2, 2]
    assert sorted(a for r in sent for a in r.recipients) == sorted([*(a.address for a in to), INTERNAL])


def test_minute_limit_reached__excess_queued_then_sent_by_the_queue_run_when_the_minute_passed(h):
    now = [1_000_000.0]
    limits = SendingLimits(messages_per_minute=2)

    async def scenario(make, _store):
        sender = make(limits=limits, clock=lambda: now[0])
        receipts = [await sender.send(_message(subject=f"n{i}")) for i in range(3)]
        early = await sender.send_queued()
        now[0] += 59.0
        still_early = await sender.send_queued()
        now[0] += 1.0
        late = await sender.send_queued()
        return receipts, early, still_early, late

    receipts, early, still_early, late = h.run(scenario)
    assert [r.state for r in receipts] == ["sent", "sent", "queued"]
    assert receipts[2].not_before == 1_000_060.0
    assert (early.sent, early.waiting, still_early.sent) == ([], 1, [])
    assert late.sent == [receipts[2].key]
    assert len(delivered_keys(h.tenant)) == 3


def test_daily_recipient_budget_spent__message_waits_a_day_never_sent_early(h):
    now = [2_000_000.0]
    limits = SendingLimits(recipients_per_day=3)

    async def scenario(make, _store):
        sender = make(limits=limits, clock=lambda: now[0])
        first = await sender.send(_message(cc=(Address("b@northwind.example"),)))
        second = await sender.send(_message(to=(Address("c@northwind.example"), Address("d@northwind.example"))))
        now[0] += 86_399.0
        await sender.send_queued()
        before = len(delivered_keys(h.tenant))
        now[0] += 1.0
        await sender.send_queued()
        return first, second, before

    first, second, before = h.run(scenario)
    assert (first.state, second.state, before) == ("sent", "queued", 1)
    assert len(delivered_keys(h.tenant)) == 2


def test_queued_send__survives_the_process__sent_by_a_later_queue_run(h):
    now = [3_000_000.0]
    limits = SendingLimits(messages_per_minute=1)

    async def first_process(make, _store):
        sender = make(limits=limits, clock=lambda: now[0])
        await sender.send(_message(subject="a"))
        return await sender.send(_message(subject="b"))

    async def later_process(make, _store):
        now[0] += 61.0
        return await make(limits=limits, clock=lambda: now[0]).send_queued()

    assert h.run(first_process).state == "queued"
    assert len(h.run(later_process).sent) == 1
    assert len(delivered_keys(h.tenant)) == 2


def test_recipient_refused_by_graph__send_failed_with_graphs_reason_draft_removed_nothing_delivered(h):
    async def scenario(make, _store):
        return await make().send(_message(to=(Address("nobody@localhost"),)))

    receipt = h.run(scenario)
    assert receipt.state == "failed"
    assert "ErrorInvalidRecipients" in receipt.errors[0]
    assert "sending a draft as helpdesk-noreply@fabrikam.com" in receipt.errors[0]
    assert delivered_keys(h.tenant) == []
    assert h.tenant.state.messages(SENDER, "drafts") == []


def test_sending_mailbox_access_denied__actionable_error_and_the_send_stays_queued(h):
    h.tenant.state.set_access_denied(SENDER)

    async def scenario(make, store):
        try:
            await make().send(_message(), idempotency_key="denied")
        finally:
            record = store.get("denied")
        return record

    from mailplane.exceptions import AccessDeniedError

    with pytest.raises(AccessDeniedError, match="mailplane doctor"):
        h.run(scenario)
    h.tenant.state.set_access_denied(SENDER, denied=False)

    async def retry(make, _store):
        return await make().send_queued()

    assert h.run(retry).sent == ["denied"]
    assert delivered_keys(h.tenant) == ["denied"]


def test_config_without_designated_mailbox__sender_refused_with_what_to_add():
    import json
    from pathlib import Path

    from mailplane.integration import load_integration_config
    from mailplane.sending.sender import Sender

    document = json.loads((Path(__file__).parents[2] / "examples" / "integration.json").read_text())
    del document["accounts"]["designated"]
    document.pop("templates")
    for account in document["accounts"]["shared"]:
        account.pop("notifications", None)
    config = load_integration_config(document)
    with pytest.raises(SendError, match=r"accounts\.designated"):
        Sender.for_designated(config, None, None)


def test_send_state__sent_record_keeps_draft_id_and_time(h):
    async def scenario(make, store):
        await make().send(_message(), idempotency_key="k")
        return store.get("k")

    record = h.run(scenario)
    assert record.state == SendState.SENT
    assert record.draft_id
    assert record.sent_at
    assert inbox_count(h.tenant) == 1


def test_same_key_after_the_per_message_limit_changed__first_send_returned_not_split_again(h):
    to = tuple(Address(f"p{i}@northwind.example") for i in range(4))

    async def scenario(make, _store):
        first = await make().send(_message(to=to), idempotency_key="k")
        again = await make(limits=SendingLimits(recipients_per_message=2)).send(_message(to=to), idempotency_key="k")
        return first, again

    first, again = h.run(scenario)
    assert [p.key for p in again.parts] == [p.key for p in first.parts] == ["k"]
    assert delivered_keys(h.tenant) == ["k"]


def test_template_with_recipient_codes__one_message_per_recipient_rendered_for_each(h):
    import json
    from pathlib import Path

    from mailplane.integration import load_integration_config
    from mailplane.templates import MergeContext, Person

    document = json.loads((Path(__file__).parents[2] / "examples" / "integration.json").read_text())
    config = load_integration_config(document)
    context = MergeContext(
        sender=Person("someone-else@fabrikam.com"), conversation_id="77", conversation_subject="Broken printer"
    )

    async def scenario(make, _store):
        sender = make(templates=config.templates, reply_to=(Address("support@fabrikam.com", "Fabrikam Support"),))
        return await sender.send_template(
            "ticket-acknowledgement",
            context,
            to=(Address(INTERNAL, "Agent"),),
            cc=(Address(EXTERNAL, "Ann"),),
            idempotency_key="ack-77",
        )

    receipts = h.run(scenario)
    assert [r.key for r in receipts] == [f"ack-77/{INTERNAL}", f"ack-77/{EXTERNAL}"]
    sent = {r.to[0]: r for r in h.tenant.state.outbox(SENDER)}
    assert set(sent) == {INTERNAL, EXTERNAL}
    [received] = h.tenant.state.messages(INTERNAL, "inbox")
    assert received.subject == "[#77] Broken printer"
    assert "Hello Agent," in received.body
    assert "Fabrikam Helpdesk" in received.body
    assert b"Hello Ann," in sent[EXTERNAL].mime


def test_queue_run__sends_finished_longer_ago_than_kept__forgotten_so_their_keys_send_again(h):
    now = [4_000_000.0]

    async def scenario(make, store):
        sender = make(clock=lambda: now[0], keep_finished_days=30)
        await sender.send(_message(), idempotency_key="monthly")
        now[0] += 29 * 86_400.0
        await sender.send_queued()
        kept = store.get("monthly")
        now[0] += 2 * 86_400.0
        await sender.send_queued()
        forgotten = store.get("monthly")
        again = await sender.send(_message(), idempotency_key="monthly")
        return kept, forgotten, again

    kept, forgotten, again = h.run(scenario)
    assert kept.state == SendState.SENT
    assert forgotten is None
    assert again.state == "sent"
    assert delivered_keys(h.tenant) == ["monthly", "monthly"]
