"""The Graph calls a send is made of, for one mailbox: drafts, attachments, upload sessions, send, read-back.

Every message is sent as a draft first (``POST /users/{id}/messages``, then ``POST .../messages/{id}/send``)
because a draft can be found again: it carries a marker category unique to its idempotency key, and its immutable
id (``Prefer: IdType="ImmutableId"``) still addresses the message after it was sent. ``sendMail`` cannot be
recovered that way: after a timeout nothing tells whether it went out.

Attachments: when they are small together (:data:`INLINE_ATTACHMENT_BYTES`) they travel inside the draft's create
request; otherwise each one under 3 MB is posted to the draft's attachments and each larger one goes through
``createUploadSession`` and sequential ``PUT`` chunks (:mod:`mailplane.sending.upload`; msgraph-core's
LargeFileUploadTask cannot parse Outlook's ``nextExpectedRanges`` for a second chunk).

``saveToSentItems``: a draft that is sent always lands in Sent Items unless it carries PR_DELETE_AFTER_SUBMIT
(MAPI ``Boolean 0x0E01``), which is set when the designated mailbox does not keep copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.attachment_item import AttachmentItem
from msgraph.generated.models.attachment_type import AttachmentType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.internet_message_header import InternetMessageHeader
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (  # noqa: E501 - generated module path
    CreateUploadSessionPostRequestBody,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import MessageItemRequestBuilder

from mailplane.exceptions import GraphError
from mailplane.graph import IMMUTABLE_ID_PREFERENCE

if TYPE_CHECKING:
    from mailplane.graph import GraphClient
    from mailplane.sending.outgoing import Address, OutgoingAttachment, OutgoingMessage

__all__ = [
    "DELETE_AFTER_SUBMIT_PROPERTY",
    "IDEMPOTENCY_HEADER",
    "INLINE_ATTACHMENT_BYTES",
    "SMALL_ATTACHMENT_BYTES",
    "DraftFound",
    "DraftState",
    "GraphDrafts",
    "attachments_go_inline",
]

IDEMPOTENCY_HEADER = "X-Mailplane-Idempotency-Key"
DELETE_AFTER_SUBMIT_PROPERTY = "Boolean 0x0E01"  # PR_DELETE_AFTER_SUBMIT
# A create request must stay under Graph's 4 MB request limit once the attachments are base64 (4/3 larger).
INLINE_ATTACHMENT_BYTES = 3_000_000
SMALL_ATTACHMENT_BYTES = 3 * 1024 * 1024  # below: POST .../attachments; at or above: an upload session
_PAGE = 100


@dataclass(frozen=True)
class DraftFound:
    """A draft found by its marker."""

    id: str
    created: str


@dataclass(frozen=True)
class DraftState:
    """A message read back by id: still a draft, or sent."""

    id: str
    is_draft: bool
    folder_id: str | None


def _people(addresses: tuple[Address, ...]) -> list[Recipient]:
    return [Recipient(email_address=EmailAddress(address=a.address, name=a.name)) for a in addresses]


def _file(attachment: OutgoingAttachment) -> FileAttachment:
    return FileAttachment(
        odata_type="#microsoft.graph.fileAttachment",
        name=attachment.name,
        content_type=attachment.content_type,
        content_bytes=attachment.content,
    )


def _immutable_config() -> RequestConfiguration[Any]:
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
    return config


def attachments_go_inline(message: OutgoingMessage) -> bool:
    """Whether the attachments travel inside the create request (small enough together)."""
    return message.attachment_bytes + len((message.html or "") + (message.text or "")) < INLINE_ATTACHMENT_BYTES


class GraphDrafts:
    """The draft-based send operations on ``mailbox``, through ``client`` (immutable ids throughout)."""

    def __init__(self, client: GraphClient, mailbox: str) -> None:
        """Bind to one mailbox."""
        self._client = client
        self.mailbox = mailbox

    def _message(self, draft_id: str) -> MessageItemRequestBuilder:
        return self._client.service.users.by_user_id(self.mailbox).messages.by_message_id(draft_id)

    async def create_draft(
        self,
        message: OutgoingMessage,
        *,
        key: str,
        marker: str,
        sender: Address | None,
        save_to_sent_items: bool,
    ) -> str:
        """Create the draft (with the attachments when they go inline); return its immutable id."""
        body = ItemBody(
            content_type=BodyType.Html if message.html is not None else BodyType.Text,
            content=message.html if message.html is not None else message.text,
        )
        draft = Message(
            subject=message.subject,
            body=body,
            to_recipients=_people(message.to),
            cc_recipients=_people(message.cc),
            bcc_recipients=_people(message.bcc),
            reply_to=_people(message.reply_to),
            categories=[marker],
            internet_message_headers=[InternetMessageHeader(name=IDEMPOTENCY_HEADER, value=key)],
        )
        if sender is not None:
            draft.from_ = Recipient(email_address=EmailAddress(address=sender.address, name=sender.name))
        if not save_to_sent_items:
            draft.single_value_extended_properties = [
                SingleValueLegacyExtendedProperty(id=DELETE_AFTER_SUBMIT_PROPERTY, value="true")
            ]
        if message.attachments and attachments_go_inline(message):
            draft.attachments = [_file(a) for a in message.attachments]
        async with self._client.call(self.mailbox, doing="creating a draft in"):
            created = await self._client.service.users.by_user_id(self.mailbox).messages.post(
                draft, request_configuration=_immutable_config()
            )
        if created is None or not created.id:
            raise GraphError(f"creating a draft in {self.mailbox}: Graph answered without the draft's id. Try again")
        return created.id

    async def find_drafts(self, marker: str) -> list[DraftFound]:
        """Drafts in the Drafts folder that carry ``marker``, oldest first.

        Reads the folder page by page and matches the category here (the designated mailbox's Drafts folder holds
        only messages on their way out), so it works wherever ``categories/any`` filters are not served.
        """
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            select=["id", "categories", "createdDateTime"], top=_PAGE
        )
        config: RequestConfiguration[MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters] = (
            RequestConfiguration(query_parameters=query)
        )
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
        messages = self._client.service.users.by_user_id(self.mailbox).mail_folders.by_mail_folder_id("drafts").messages
        found: list[DraftFound] = []
        async with self._client.call(self.mailbox, doing="looking for an earlier draft in"):
            page = await messages.get(request_configuration=config)
            while page is not None:
                found.extend(
                    DraftFound(m.id, m.created_date_time.isoformat() if m.created_date_time else "")
                    for m in page.value or []
                    if m.id and marker in (m.categories or [])
                )
                if not page.odata_next_link:
                    break
                page = await messages.with_url(page.odata_next_link).get(request_configuration=_immutable_config())
        return sorted(found, key=lambda d: d.created)

    async def draft_state(self, draft_id: str) -> DraftState | None:
        """The message with ``draft_id`` (a draft, or sent), or None when it no longer exists (404)."""
        query = MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(
            select=["id", "isDraft", "parentFolderId"]
        )
        config: RequestConfiguration[MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters] = (
            RequestConfiguration(query_parameters=query)
        )
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
        try:
            async with self._client.call(self.mailbox, doing="reading back a draft in"):
                message = await self._message(draft_id).get(request_configuration=config)
        except GraphError as error:
            if error.status == 404:  # noqa: PLR2004 - Not Found
                return None
            raise
        if message is None:
            return None
        return DraftState(message.id or draft_id, bool(message.is_draft), message.parent_folder_id)

    async def attachment_names(self, draft_id: str) -> list[tuple[str, int]]:
        """(name, size) of every attachment the draft has."""
        query = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(select=["id", "name", "size"])
        config: RequestConfiguration[AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters] = (
            RequestConfiguration(query_parameters=query)
        )
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
        async with self._client.call(self.mailbox, doing="listing the attachments of a draft in"):
            page = await self._message(draft_id).attachments.get(request_configuration=config)
        return [(a.name or "", a.size or 0) for a in (page.value or [] if page else [])]

    async def add_attachment(self, draft_id: str, attachment: OutgoingAttachment) -> None:
        """Attach a file under 3 MB to the draft in one request."""
        async with self._client.call(self.mailbox, doing=f"attaching {attachment.name} to a draft in"):
            await self._message(draft_id).attachments.post(_file(attachment), request_configuration=_immutable_config())

    async def create_upload_session(self, draft_id: str, attachment: OutgoingAttachment) -> str:
        """Open an upload session for a large attachment; return its pre-authenticated upload URL."""
        body = CreateUploadSessionPostRequestBody(
            attachment_item=AttachmentItem(
                attachment_type=AttachmentType.File,
                name=attachment.name,
                size=attachment.size,
                content_type=attachment.content_type,
            )
        )
        async with self._client.call(self.mailbox, doing=f"opening an upload session for {attachment.name} in"):
            session = await self._message(draft_id).attachments.create_upload_session.post(
                body, request_configuration=_immutable_config()
            )
        if session is None or not session.upload_url:
            raise GraphError(
                f"opening an upload session for {attachment.name} in {self.mailbox}: Graph answered without an "
                "upload URL. Try again"
            )
        return session.upload_url

    async def send_draft(self, draft_id: str) -> None:
        """Send the draft (202: accepted for delivery)."""
        async with self._client.call(self.mailbox, doing="sending a draft as"):
            await self._message(draft_id).send.post(request_configuration=_immutable_config())

    async def delete_message(self, draft_id: str) -> None:
        """Delete a message (a duplicate draft); a message already gone is fine."""
        try:
            async with self._client.call(self.mailbox, doing="deleting a duplicate draft in"):
                await self._message(draft_id).delete(request_configuration=_immutable_config())
        except GraphError as error:
            if error.status != 404:  # noqa: PLR2004 - Not Found
                raise
