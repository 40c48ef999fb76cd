import base64

import httpx
from devtenant_harness import SHARED, eml, graph_client, run
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.attachment_item import AttachmentItem
from msgraph.generated.models.attachment_type import AttachmentType
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.message import Message
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501
    CreateUploadSessionPostRequestBody,
)

PDF = b"%PDF-1.4 fake" * 100


def test_list_attachments__select_without_content__sizes_without_bytes(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml(attachments=[("a.pdf", "application/pdf", PDF)]))

    async def scenario():
        attachments = graph_client(tenant).users.by_user_id(SHARED).messages.by_message_id(message_id).attachments
        query = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(
            select=["id", "name", "size", "contentType", "isInline"]
        )
        listed = await attachments.get(request_configuration=RequestConfiguration(query_parameters=query))
        full = await attachments.get()
        one = await attachments.by_attachment_id(listed.value[0].id).get()
        return listed.value[0], full.value[0], one

    listed, full, one = run(scenario)
    assert isinstance(listed, FileAttachment)
    assert (listed.name, listed.size, listed.content_type, listed.is_inline) == (
        "a.pdf",
        len(PDF),
        "application/pdf",
        False,
    )
    assert listed.content_bytes is None
    assert full.content_bytes == PDF
    assert one.content_bytes == PDF


def test_attachment_value__raw_bytes(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml(attachments=[("a.pdf", "application/pdf", PDF)]))
    attachment = tenant.state.messages(SHARED)[0].attachments[0]
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}/attachments/{attachment.id}/$value",
        headers={"Authorization": "Bearer t"},
    )
    assert response.content == PDF


def test_has_attachments__inline_image_only__false(tenant):
    raw = (
        b"From: a@example.com\r\nTo: shared@contoso.com\r\nSubject: inline\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/related; boundary="b"\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n'
        b'<img src="cid:logo">\r\n--b\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n'
        b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"PNGDATA")
        + b"\r\n--b--\r\n"
    )
    message_id = tenant.state.seed_eml(SHARED, raw)
    headers = {"Authorization": "Bearer t"}
    message = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}", headers=headers).json()
    attachments = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}/attachments", headers=headers
    ).json()["value"]
    assert message["hasAttachments"] is False
    assert [(a["isInline"], a["contentId"], a["size"]) for a in attachments] == [(True, "logo", 7)]


def test_add_small_attachment_to_draft__201_and_sent_with_message(tenant):
    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        draft = await messages.post(Message(subject="with file"))
        added = await messages.by_message_id(draft.id).attachments.post(
            FileAttachment(
                odata_type="#microsoft.graph.fileAttachment",
                name="n.txt",
                content_type="text/plain",
                content_bytes=b"hello",
            )
        )
        return draft, added

    _draft, added = run(scenario)
    assert (added.name, added.size) == ("n.txt", 5)
    [stored] = tenant.state.messages(SHARED, "drafts")
    assert [a.content for a in stored.attachments] == [b"hello"]


def test_upload_session__sequential_chunks__200_next_range_then_201_location(tenant):
    size = 10_000
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        draft = await messages.post(Message(subject="large"))
        session = await messages.by_message_id(draft.id).attachments.create_upload_session.post(
            CreateUploadSessionPostRequestBody(
                attachment_item=AttachmentItem(attachment_type=AttachmentType.File, name="big.bin", size=size)
            )
        )
        return draft, session

    _draft, session = run(scenario)
    assert session.next_expected_ranges == ["0-"]
    assert session.upload_url.startswith(tenant.base_url)
    statuses = []
    chunk = 4096
    for start in range(0, size, chunk):
        part = payload[start : start + chunk]
        response = httpx.put(
            session.upload_url,
            content=part,
            headers={
                "Content-Range": f"bytes {start}-{start + len(part) - 1}/{size}",
                "Content-Type": "application/octet-stream",
            },
        )
        statuses.append((response.status_code, response.json().get("nextExpectedRanges") if response.content else None))
    assert statuses == [(200, ["4096"]), (200, ["8192"]), (201, None)]
    assert "/attachments('" in response.headers["Location"]
    [stored] = tenant.state.messages(SHARED, "drafts")
    assert stored.attachments[0].content == payload
    assert tenant.requests.count(kind="attachment.createUploadSession", status=201) == 1


def test_upload_session__out_of_order_chunk__416(tenant):
    async def scenario():
        messages = graph_client(tenant).users.by_user_id(SHARED).messages
        draft = await messages.post(Message(subject="large"))
        return await messages.by_message_id(draft.id).attachments.create_upload_session.post(
            CreateUploadSessionPostRequestBody(
                attachment_item=AttachmentItem(attachment_type=AttachmentType.File, name="b", size=100)
            )
        )

    session = run(scenario)
    response = httpx.put(session.upload_url, content=b"x" * 10, headers={"Content-Range": "bytes 50-59/100"})
    assert response.status_code == 416


def test_expand_message_size_property__pr_message_size(tenant):
    raw = eml()
    message_id = tenant.state.seed_eml(SHARED, raw)
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}",
        params={
            "$expand": "singleValueExtendedProperties($filter=Id eq 'LONG 0x0E08')",
            "$select": "internetMessageHeaders",
        },
        headers={"Authorization": "Bearer t"},
    )
    assert response.json()["singleValueExtendedProperties"] == [{"id": "Long 0xe08", "value": str(len(raw))}]
