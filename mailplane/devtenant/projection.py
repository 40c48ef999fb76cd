"""Graph v1.0 JSON shapes of stored messages, folders, attachments and subscriptions.

Property names and value types follow the CSDL (``tests/fixtures/graph_types.json`` pins them); the fidelity tests
walk every payload against it.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mailplane.devtenant.mime import escape_text_as_html, html_to_text

if TYPE_CHECKING:
    from datetime import datetime

    from mailplane.devtenant.state import (
        DevTenantState,
        Folder,
        Mailbox,
        StoredAttachment,
        StoredMessage,
        Subscription,
    )

__all__ = [
    "MESSAGE_PROPERTIES",
    "attachment_json",
    "folder_json",
    "format_datetime",
    "message_json",
    "recipient",
    "subscription_json",
]

# Returned by default (no $select); internetMessageHeaders and uniqueBody only when selected.
DEFAULT_MESSAGE_PROPERTIES = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)
MESSAGE_PROPERTIES = frozenset(("id", *DEFAULT_MESSAGE_PROPERTIES, "internetMessageHeaders", "uniqueBody"))
_PREVIEW_CHARS = 255


def format_datetime(value: datetime | None) -> str | None:
    """Graph's message timestamp form: ``2024-05-01T10:00:00Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def recipient(pair: tuple[str, str] | None) -> dict[str, Any] | None:
    """``{"emailAddress": {"name", "address"}}``."""
    if pair is None:
        return None
    name, address = pair
    return {"emailAddress": {"name": name or address, "address": address}}


def _body(message: StoredMessage, content_type: str | None) -> dict[str, str]:
    if content_type == "text" and message.body_type == "html":
        return {"contentType": "text", "content": html_to_text(message.body)}
    if content_type == "html" and message.body_type == "text":
        return {"contentType": "html", "content": escape_text_as_html(message.body)}
    return {"contentType": message.body_type, "content": message.body}


def _preview(message: StoredMessage) -> str:
    text = html_to_text(message.body) if message.body_type == "html" else message.body
    return " ".join(text.split())[:_PREVIEW_CHARS]


def message_json(
    message: StoredMessage,
    *,
    select: list[str] | None = None,
    immutable: bool = False,
    body_content_type: str | None = None,
    with_type: bool = False,
) -> dict[str, Any]:
    """Render a message as Graph returns it (all default properties, or id + @odata.etag + the selected ones)."""
    message_id = message.id_for(immutable=immutable)
    values: dict[str, Any] = {
        "createdDateTime": format_datetime(message.created),
        "lastModifiedDateTime": format_datetime(message.modified),
        "changeKey": message.change_key,
        "categories": list(message.categories),
        "receivedDateTime": format_datetime(message.received),
        "sentDateTime": format_datetime(message.sent),
        "hasAttachments": any(not a.is_inline for a in message.attachments),
        "internetMessageId": message.internet_message_id,
        "subject": message.subject,
        "bodyPreview": _preview(message),
        "importance": message.importance,
        "parentFolderId": message.folder_id,
        "conversationId": message.conversation_id,
        "conversationIndex": base64.b64encode(message.conversation_index).decode("ascii"),
        "isDeliveryReceiptRequested": message.is_delivery_receipt_requested,
        "isReadReceiptRequested": message.is_read_receipt_requested,
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "webLink": "https://outlook.office365.com/owa/?ItemID="
        + quote(message_id, safe="")
        + "&exvsurl=1&viewmodel=ReadMessageItem",
        "inferenceClassification": message.inference,
        "body": _body(message, body_content_type),
        "sender": recipient(message.sender),
        "from": recipient(message.from_),
        "toRecipients": [recipient(p) for p in message.to],
        "ccRecipients": [recipient(p) for p in message.cc],
        "bccRecipients": [recipient(p) for p in message.bcc],
        "replyTo": [recipient(p) for p in message.reply_to],
        "flag": dict(message.flag),
    }
    out: dict[str, Any] = {}
    if with_type:
        out["@odata.type"] = "#microsoft.graph.message"
    out["@odata.etag"] = f'W/"{message.change_key}"'
    out["id"] = message_id
    if select is None:
        out.update(values)
        return out
    for name in select:
        if name == "internetMessageHeaders":
            # Exchange returns the transport headers only for mail that went through transport.
            out[name] = [{"name": k, "value": v} for k, v in message.headers] if message.raw is not None else None
        elif name == "uniqueBody":
            out[name] = _body(message, body_content_type)
        elif name in values:
            out[name] = values[name]
    return out


def attachment_json(attachment: StoredAttachment, *, select: list[str] | None = None) -> dict[str, Any]:
    """Render a fileAttachment (or an itemAttachment for an attached message)."""
    if attachment.is_item:
        values: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.itemAttachment",
            "id": attachment.id,
            "lastModifiedDateTime": format_datetime(attachment.last_modified),
            "name": attachment.name,
            "contentType": attachment.content_type,
            "size": len(attachment.content),
            "isInline": attachment.is_inline,
        }
    else:
        values = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": attachment.content_type,
            "id": attachment.id,
            "lastModifiedDateTime": format_datetime(attachment.last_modified),
            "name": attachment.name,
            "contentType": attachment.content_type,
            "size": len(attachment.content),
            "isInline": attachment.is_inline,
            "contentId": attachment.content_id,
            "contentLocation": None,
            "contentBytes": base64.b64encode(attachment.content).decode("ascii"),
        }
    if select is None:
        return values
    return {k: v for k, v in values.items() if k.startswith("@") or k == "id" or k in select}


def folder_json(state: DevTenantState, mailbox: Mailbox, folder: Folder) -> dict[str, Any]:
    """Render a mailFolder with its counts."""
    with state.lock:
        messages = state.folder_messages(mailbox, folder.id)
        return {
            "id": folder.id,
            "displayName": folder.display_name,
            "parentFolderId": folder.parent_id,
            "childFolderCount": len(state.child_folders(mailbox, folder.id)),
            "unreadItemCount": sum(1 for m in messages if not m.is_read),
            "totalItemCount": len(messages),
            "isHidden": folder.is_hidden,
        }


def subscription_json(subscription: Subscription) -> dict[str, Any]:
    """Render a subscription as Graph returns it."""
    return {
        "id": subscription.id,
        "resource": subscription.resource,
        "applicationId": subscription.application_id,
        "changeType": subscription.change_type,
        "clientState": subscription.client_state,
        "notificationUrl": subscription.notification_url,
        "notificationQueryOptions": None,
        "lifecycleNotificationUrl": subscription.lifecycle_notification_url,
        "expirationDateTime": subscription.expiration.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "creatorId": subscription.creator_id,
        "includeResourceData": False,
        "latestSupportedTlsVersion": subscription.latest_supported_tls_version,
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationUrlAppId": None,
    }
