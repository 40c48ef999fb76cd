"""What the importer reads off a Graph message: its keys, thread headers, addresses and property values. Pure.

Malformed mail is the normal case here, not the exception: a missing ``Message-ID`` gets a stand-in derived from the
immutable id (so the message is still imported exactly once), missing senders and subjects become empty values,
header values are cut to a sane length and only the message ids in ``In-Reply-To`` / ``References`` are kept.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from mailplane.importing.mailbox_graph import parse_graph_datetime
from mailplane.importing.store import ThreadKeys

if TYPE_CHECKING:
    from mailplane.importing.mailbox_graph import GraphMessage

__all__ = ["MAX_HEADER_CHARS", "MAX_REFERENCES", "MessageFacts", "html_to_text", "message_facts"]

MAX_HEADER_CHARS = 16_384
"""Header values (and the subject) longer than this are cut: a 1 MB header is an attack or a broken client."""
MAX_REFERENCES = 50
"""Only the newest References entries are kept for threading."""
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,998}>")
_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre"})


@dataclass(frozen=True)
class MessageFacts:
    """One message as the importer sees it.

    ``internet_message_id`` is the ``Message-ID`` or, when missing, ``<immutable-id@mailbox.invalid>``.
    ``addresses`` lists ``(header, name, address)`` for From, To and Cc in header order. ``properties`` are the
    values config mappings read (``mailplane.integration.MESSAGE_PROPERTIES``); ``attributes`` the message record's.
    ``may_have_files`` is true when attachments or inline images (``cid:`` in the body) may be present.
    """

    immutable_id: str
    internet_message_id: str
    subject: str
    received_at: dt.datetime
    is_read: bool
    thread: ThreadKeys
    addresses: tuple[tuple[str, str | None, str], ...]
    properties: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    may_have_files: bool = False
    missing_message_id: bool = False


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (tags dropped, blocks on their own lines, entities decoded)."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = "".join(extractor.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _cut(value: str | None, limit: int = MAX_HEADER_CHARS) -> str:
    if not value:
        return ""
    # Lone surrogates (undecodable bytes) cannot be stored as UTF-8; replace them.
    text = value.encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _address(recipient: object) -> tuple[str | None, str] | None:
    """``(name, address)`` of a Graph recipient object (``{"emailAddress": {"name", "address"}}``)."""
    email = recipient.get("emailAddress") if isinstance(recipient, dict) else None
    if not isinstance(email, dict):
        return None
    address = (_text(email.get("address")) or "").strip()
    if not address or "@" not in address:
        return None
    name = _cut(_text(email.get("name")), 256) or None
    return name, _cut(address, 320).lower()


def _recipients(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _message_ids(value: str, *, newest: bool = False) -> tuple[str, ...]:
    # References lists the oldest first: of a huge one, keep the end.
    window = value[-MAX_HEADER_CHARS:] if newest else value[:MAX_HEADER_CHARS]
    return tuple(_MESSAGE_ID.findall(window))


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def message_facts(message: GraphMessage, *, mailbox: str, mailbox_name: str) -> MessageFacts:
    """Read ``message`` (selected with :data:`~mailplane.importing.mailbox_graph.MESSAGE_FIELDS`)."""
    raw = message.raw
    immutable_id = message.id or ""
    headers: dict[str, str] = {}
    for entry in _recipients(raw.get("internetMessageHeaders")):
        if not isinstance(entry, dict):
            continue
        name = (_text(entry.get("name")) or "").lower()
        if name in ("in-reply-to", "references") and name not in headers:
            headers[name] = _text(entry.get("value")) or ""
    in_reply_to = _message_ids(headers.get("in-reply-to", ""))[:1]
    references = _message_ids(headers.get("references", ""), newest=True)[-MAX_REFERENCES:]
    raw_id = (message.internet_message_id or "").strip()
    found = _message_ids(raw_id)
    missing = not found
    internet_message_id = found[0] if found else f"<{immutable_id}@{mailbox.lower()}.invalid>"

    addresses: list[tuple[str, str | None, str]] = []
    sender = _address(raw.get("from")) or _address(raw.get("sender"))
    if sender is not None:
        addresses.append(("from", *sender))
    for header, key in (("to", "toRecipients"), ("cc", "ccRecipients")):
        for recipient in _recipients(raw.get(key)):
            found_address = _address(recipient)
            if found_address is not None:
                addresses.append((header, *found_address))

    body_field = raw.get("body")
    body_value: dict[str, Any] = body_field if isinstance(body_field, dict) else {}
    body = _text(body_value.get("content"))
    body_type = (_text(body_value.get("contentType")) or "").lower()
    html_body = _cut(body, 10_000_000) if body_type == "html" else None
    text_body = html_to_text(html_body) if html_body is not None else _cut(body, 10_000_000)
    subject = _cut(_text(raw.get("subject")), 998)
    received_at = message.received_date_time or dt.datetime.now(dt.UTC)
    from_name, from_address = sender if sender is not None else (None, None)
    to_addresses = [a for h, _, a in addresses if h == "to"]
    cc_addresses = [a for h, _, a in addresses if h == "cc"]
    reply_to = next((pair for r in _recipients(raw.get("replyTo")) if (pair := _address(r)) is not None), None)
    sender_only = _address(raw.get("sender"))
    importance = (_text(raw.get("importance")) or "normal").lower()
    categories = [_cut(c, 256) for c in _recipients(raw.get("categories")) if isinstance(c, str)]
    sent_at = parse_graph_datetime(raw.get("sentDateTime"))
    has_attachments = bool(raw.get("hasAttachments"))
    properties: dict[str, Any] = {
        "subject": subject,
        "textBody": text_body,
        "htmlBody": html_body,
        "bodyPreview": _cut(_text(raw.get("bodyPreview")), 255),
        "fromAddress": from_address,
        "fromName": from_name,
        "senderAddress": sender_only[1] if sender_only else from_address,
        "replyToAddress": reply_to[1] if reply_to else None,
        "toAddresses": ", ".join(to_addresses),
        "ccAddresses": ", ".join(cc_addresses),
        "receivedAt": _iso(received_at),
        "sentAt": _iso(sent_at),
        "internetMessageId": internet_message_id,
        "conversationId": message.conversation_id,
        "importance": importance,
        "categories": ", ".join(categories),
        "hasAttachments": has_attachments,
        "mailbox": mailbox.lower(),
        "mailboxName": mailbox_name,
    }
    attributes = {
        "mailbox": mailbox.lower(),
        "graphMessageId": immutable_id,
        "internetMessageId": internet_message_id,
        "inReplyTo": in_reply_to[0] if in_reply_to else None,
        "references": list(references),
        "subject": subject,
        "textBody": text_body,
        "htmlBody": html_body,
        "bodyPreview": properties["bodyPreview"],
        "fromAddress": from_address,
        "fromName": from_name,
        "senderAddress": properties["senderAddress"],
        "replyToAddress": properties["replyToAddress"],
        "toAddresses": to_addresses,
        "ccAddresses": cc_addresses,
        "receivedAt": properties["receivedAt"],
        "sentAt": properties["sentAt"],
        "importance": importance,
        "categories": categories,
        "hasAttachments": has_attachments,
    }
    return MessageFacts(
        immutable_id=immutable_id,
        internet_message_id=internet_message_id,
        subject=subject,
        received_at=received_at,
        is_read=message.is_read,
        thread=ThreadKeys(message.conversation_id, in_reply_to, references),
        addresses=tuple(addresses),
        properties=properties,
        attributes=attributes,
        may_have_files=has_attachments or (html_body is not None and "cid:" in html_body.lower()),
        missing_message_id=missing,
    )
