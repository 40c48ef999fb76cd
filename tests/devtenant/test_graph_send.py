import base64

import httpx
import pytest
from devtenant_harness import SENDER, SHARED, eml, graph_client, run
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.messages.item.create_reply.create_reply_post_request_body import (
    CreateReplyPostRequestBody,
)
from msgraph.generated.users.item.messages.item.forward.forward_post_request_body import ForwardPostRequestBody
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody


def _message(subject="Hello", to=SHARED):
    return Message(
        subject=subject,
        body=ItemBody(content_type=BodyType.Text, content="Hi"),
        to_recipients=[Recipient(email_address=EmailAddress(address=to))],
    )


def test_send_mail_json__save_to_sent_items_true__sent_copy_outbox_and_delivery(tenant):
    async def scenario():
        client = graph_client(tenant)
        body = SendMailPostRequestBody(message=_message(), save_to_sent_items=True)
        return await client.users.by_user_id(SENDER).send_mail.post(body)

    assert run(scenario) is None
    [sent] = tenant.state.outbox(SENDER)
    assert (sent.subject, sent.to, sent.via) == ("Hello", [SHARED], "sendMail")
    assert [m.internet_message_id for m in tenant.state.messages(SENDER, "sentitems")] == [sent.internet_message_id]
    [delivered] = tenant.state.messages(SHARED, "inbox")
    assert delivered.internet_message_id == sent.internet_message_id
    assert delivered.from_[1] == SENDER
    assert tenant.requests.count(kind="sendMail", status=202) == 1


def test_send_mail_json__save_to_sent_items_unset_in_sdk__sdk_sends_false_so_no_sent_copy(tenant):
    # msgraph-sdk 1.65 serializes an unset save_to_sent_items as "SaveToSentItems": false.
    async def scenario():
        client = graph_client(tenant)
        body = SendMailPostRequestBody(message=_message(to="someone@example.com"))
        await client.users.by_user_id(SENDER).send_mail.post(body)

    run(scenario)
    assert len(tenant.state.outbox(SENDER)) == 1
    assert tenant.state.messages(SENDER, "sentitems") == []


def test_send_mail_raw_mime__base64_text_plain__202_and_message_id_kept(tenant):
    mime = eml("Raw", sender=SENDER, to=SHARED, message_id="<raw-1@contoso.com>", headers={"Bcc": "hidden@contoso.com"})

    async def scenario():
        client = graph_client(tenant)
        info = RequestInformation(Method.POST, "{+baseurl}/users/{user%2Did}/sendMail", {"user%2Did": SENDER})
        info.headers.try_add("Content-Type", "text/plain")
        info.content = base64.b64encode(mime)
        await client.request_adapter.send_no_response_content_async(info, {"XXX": ODataError})

    run(scenario)
    [sent] = tenant.state.outbox(SENDER)
    assert (sent.internet_message_id, sent.via, sent.bcc) == (
        "<raw-1@contoso.com>",
        "sendMail-mime",
        ["hidden@contoso.com"],
    )
    [delivered] = tenant.state.messages(SHARED)
    assert b"hidden@contoso.com" not in delivered.raw


def test_send_mail_raw_mime__bad_base64__400_invalid_base64(tenant):
    async def scenario():
        client = graph_client(tenant)
        info = RequestInformation(Method.POST, "{+baseurl}/users/{user%2Did}/sendMail", {"user%2Did": SENDER})
        info.headers.try_add("Content-Type", "text/plain")
        info.content = b"this is not base64!"
        await client.request_adapter.send_no_response_content_async(info, {"XXX": ODataError})

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.response_status_code == 400
    assert caught.value.error.code == "ErrorMimeContentInvalidBase64String"
    assert caught.value.error.message == "Invalid base64 string for MIME content."
    assert caught.value.error.inner_error.request_id
    assert tenant.state.outbox(SENDER) == []


def test_send_mail__unresolvable_recipient__400_invalid_recipients(tenant):
    async def scenario():
        client = graph_client(tenant)
        await client.users.by_user_id(SENDER).send_mail.post(SendMailPostRequestBody(message=_message(to="bad")))

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.error.code == "ErrorInvalidRecipients"
    assert 'Recipient "bad" isn\'t resolved' in caught.value.error.message


def test_send_mail__camel_case_parameters__bound_case_insensitively(tenant):
    response = httpx.post(
        f"{tenant.graph_base_url}/users/{SENDER}/sendMail",
        headers={"Authorization": "Bearer x"},
        json={
            "message": {"subject": "camel", "toRecipients": [{"emailAddress": {"address": SHARED}}]},
            "saveToSentItems": "false",
        },
    )
    assert (response.status_code, response.content) == (202, b"")
    assert tenant.state.messages(SENDER, "sentitems") == []
    assert tenant.state.outbox(SENDER)[0].subject == "camel"


def test_draft_then_send__immutable_ids__draft_id_addresses_sent_copy(tenant):
    async def scenario():
        client = graph_client(tenant)
        config = RequestConfiguration()
        config.headers.add("Prefer", 'IdType="ImmutableId"')
        messages = client.users.by_user_id(SENDER).messages
        draft = await messages.post(_message("Draft"), request_configuration=config)
        await messages.by_message_id(draft.id).send.post()
        sent = await messages.by_message_id(draft.id).get(request_configuration=config)
        return draft, sent

    draft, sent = run(scenario)
    assert draft.is_draft is True
    assert draft.is_read is True
    assert draft.parent_folder_id == tenant.state.folder_id(SENDER, "drafts")
    assert draft.internet_message_id
    assert draft.conversation_id
    assert draft.change_key
    assert sent.id == draft.id
    assert sent.is_draft is False
    assert sent.parent_folder_id == tenant.state.folder_id(SENDER, "sentitems")
    assert sent.internet_message_id == draft.internet_message_id
    [record] = tenant.state.outbox(SENDER)
    assert (record.via, record.internet_message_id) == ("draft", draft.internet_message_id)
    assert tenant.requests.count(kind="message.send", status=202) == 1


def test_draft_then_send__delete_after_submit_property__delivered_and_no_sent_copy_kept(tenant):
    from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty

    async def scenario():
        client = graph_client(tenant)
        config = RequestConfiguration()
        config.headers.add("Prefer", 'IdType="ImmutableId"')
        messages = client.users.by_user_id(SENDER).messages
        message = _message("Gone after send")
        message.single_value_extended_properties = [
            SingleValueLegacyExtendedProperty(id="Boolean 0x0E01", value="true")
        ]
        draft = await messages.post(message, request_configuration=config)
        await messages.by_message_id(draft.id).send.post()
        await messages.by_message_id(draft.id).get(request_configuration=config)

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.response_status_code == 404
    [record] = tenant.state.outbox(SENDER)
    assert (record.subject, record.sent_item_id) == ("Gone after send", None)
    assert tenant.state.messages(SENDER, "sentitems") == []
    assert tenant.state.messages(SENDER, "drafts") == []
    assert [m.subject for m in tenant.state.messages(SHARED, "inbox")] == ["Gone after send"]


def test_draft_then_send__rest_ids__old_draft_id_is_gone_after_send(tenant):
    async def scenario():
        client = graph_client(tenant)
        messages = client.users.by_user_id(SENDER).messages
        draft = await messages.post(_message("Draft"))
        await messages.by_message_id(draft.id).send.post()
        await messages.by_message_id(draft.id).get()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (404, "ErrorItemNotFound")


def test_send_of_sent_message__not_a_draft__400(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())

    async def scenario():
        await graph_client(tenant).users.by_user_id(SHARED).messages.by_message_id(message_id).send.post()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert caught.value.response_status_code == 400


def test_create_reply__received_message__draft_threaded_to_sender_then_sent_with_in_reply_to(tenant):
    original_id = tenant.state.seed_eml(SHARED, eml("Question", message_id="<q1@example.com>"))

    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        draft = await messages.by_message_id(original_id).create_reply.post(
            CreateReplyPostRequestBody(comment="Thanks, we are on it.")
        )
        original = await messages.by_message_id(original_id).get()
        await messages.by_message_id(draft.id).send.post()
        return draft, original

    draft, original = run(scenario)
    assert draft.subject == "RE: Question"
    assert [r.email_address.address for r in draft.to_recipients] == ["customer@example.com"]
    assert draft.conversation_id == original.conversation_id
    assert "Thanks, we are on it." in draft.body.content
    [sent] = tenant.state.outbox(SHARED)
    assert b"In-Reply-To: <q1@example.com>" in sent.mime
    assert b"References: <q1@example.com>" in sent.mime


def test_forward__with_to_recipients__sent_with_attachments(tenant):
    original_id = tenant.state.seed_eml(SHARED, eml("Invoice", attachments=[("i.pdf", "application/pdf", b"%PDF-1")]))

    async def scenario():
        await (
            graph_client(tenant)
            .users.by_user_id(SHARED)
            .messages.by_message_id(original_id)
            .forward.post(
                ForwardPostRequestBody(
                    to_recipients=[Recipient(email_address=EmailAddress(address=SENDER))], comment="FYI"
                )
            )
        )

    run(scenario)
    [sent] = tenant.state.outbox(SHARED)
    assert (sent.subject, sent.to) == ("FW: Invoice", [SENDER])
    [delivered] = tenant.state.messages(SENDER)
    assert [a.name for a in delivered.attachments] == ["i.pdf"]


def test_send_mail__from_another_address_without_send_as__403_send_as_denied(tenant):
    def send(sender):
        async def scenario():
            message = _message()
            message.from_ = Recipient(email_address=EmailAddress(address=sender))
            body = SendMailPostRequestBody(message=message, save_to_sent_items=False)
            await graph_client(tenant).users.by_user_id(SENDER).send_mail.post(body)

        run(scenario)

    with pytest.raises(ODataError) as caught:
        send("ceo@contoso.com")
    assert (caught.value.response_status_code, caught.value.error.code) == (403, "ErrorSendAsDenied")
    send(SENDER.upper())
    tenant.state.grant_send_as(SENDER, "noreply@contoso.com")
    send("noreply@contoso.com")
    assert [m.mime.count(b"From:") for m in tenant.state.outbox(SENDER)] == [1, 1]
    assert b"noreply@contoso.com" in tenant.state.outbox(SENDER)[1].mime
