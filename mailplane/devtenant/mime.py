"""Tolerant reading and writing of RFC 822 messages for the dev tenant.

Seeded mail is whatever people had lying around: broken MIME, unknown charsets, missing headers. Everything here
degrades to "store what could be read" and never raises on bad input.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.policy
import email.utils
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from html.parser import HTMLParser

__all__ = [
    "OutgoingMessage",
    "ParsedAttachment",
    "ParsedMessage",
    "build_mime",
    "decode_header_value",
    "escape_text_as_html",
    "html_to_text",
    "parse_mime",
]


@dataclass
class ParsedAttachment:
    """One attachment found in a MIME message."""

    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    content_id: str | None = None
    is_item: bool = False  # an attached message/rfc822 (Graph itemAttachment)


@dataclass
class ParsedMessage:
    """What Graph projects out of a MIME message."""

    subject: str | None = None
    from_: list[tuple[str, str]] = field(default_factory=list)
    sender: list[tuple[str, str]] = field(default_factory=list)
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    bcc: list[tuple[str, str]] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    date: datetime | None = None
    body_type: str = "text"
    body: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    importance: str = "normal"
    attachments: list[ParsedAttachment] = field(default_factory=list)


def decode_header_value(value: object) -> str:
    """Decode an RFC 2047 header value to text; unreadable pieces are replaced, never raised."""
    if value is None:
        return ""
    text = str(value)
    try:
        pieces = email.header.decode_header(text)
    except Exception:  # noqa: BLE001 - any malformed header degrades to its raw text
        return text
    out = []
    for chunk, charset in pieces:
        if isinstance(chunk, bytes):
            out.append(_decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return re.sub(r"\s*\n\s*", " ", "".join(out)).strip()


def _decode_bytes(data: bytes, charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    try:
        codecs.lookup(name)
    except LookupError:
        name = "utf-8"
    try:
        return data.decode(name)
    except (UnicodeDecodeError, LookupError):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _addresses(message: Message, name: str) -> list[tuple[str, str]]:
    values = message.get_all(name) or []
    try:
        pairs = email.utils.getaddresses([decode_header_value(v) for v in values])
    except Exception:  # noqa: BLE001 - a broken address list yields no recipients rather than a crash
        return []
    return [(display, address) for display, address in pairs if address and "@" in address]


def _message_ids(value: object) -> list[str]:
    return re.findall(r"<[^<>\s]+>", str(value or ""))


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return str(payload)
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return _decode_bytes(payload, charset)


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        name = None
    return decode_header_value(name) if name else None


def _walk(message: Message, parsed: ParsedMessage) -> None:  # noqa: C901 - one branch per MIME part kind
    text_body: str | None = None
    html_body: str | None = None
    stack: list[Message] = [message]
    while stack:
        part = stack.pop(0)
        try:
            content_type = part.get_content_type()
        except Exception:  # noqa: BLE001
            content_type = "text/plain"
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        filename = _filename(part)
        if content_type == "message/rfc822" and part is not message:
            inner = part.get_payload()
            inner_message = inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], Message) else None
            content = inner_message.as_bytes() if inner_message is not None else b""
            subject = decode_header_value(inner_message.get("Subject")) if inner_message is not None else ""
            name = filename or subject or "message"
            parsed.attachments.append(ParsedAttachment(name, "message/rfc822", content, is_item=True))
            continue
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack[0:0] = [child for child in children if isinstance(child, Message)]
            continue
        is_attachment = disposition == "attachment" or (filename is not None and disposition != "inline")
        content_id = str(part.get("Content-ID", "")).strip().strip("<>") or None
        if not is_attachment and content_type == "text/html" and html_body is None:
            html_body = _part_text(part)
            continue
        if not is_attachment and content_type == "text/plain" and text_body is None:
            text_body = _part_text(part)
            continue
        if is_attachment or filename or content_id or not content_type.startswith("text/"):
            try:
                decoded = part.get_payload(decode=True)
            except Exception:  # noqa: BLE001
                decoded = None
            content = decoded if isinstance(decoded, bytes) else b""
            inline = disposition == "inline" or (content_id is not None and disposition != "attachment")
            parsed.attachments.append(
                ParsedAttachment(
                    filename or "attachment",
                    content_type,
                    content,
                    is_inline=inline,
                    content_id=content_id,
                )
            )
    if html_body is not None:
        parsed.body_type, parsed.body = "html", html_body
    else:
        parsed.body_type, parsed.body = "text", text_body or ""


def parse_mime(raw: bytes) -> ParsedMessage:
    """Project a MIME message the way Exchange does; tolerate anything."""
    parsed = ParsedMessage()
    try:
        message = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # noqa: BLE001 - the parser itself is tolerant, this is a last resort
        parsed.body = raw.decode("utf-8", "replace")
        return parsed
    try:
        parsed.headers = [(str(k), decode_header_value(v)) for k, v in message.items()]
    except Exception:  # noqa: BLE001
        parsed.headers = []
    subject = message.get("Subject")
    parsed.subject = decode_header_value(subject) if subject is not None else None
    parsed.from_ = _addresses(message, "From")
    parsed.sender = _addresses(message, "Sender") or parsed.from_
    parsed.to = _addresses(message, "To")
    parsed.cc = _addresses(message, "Cc")
    parsed.bcc = _addresses(message, "Bcc")
    parsed.reply_to = _addresses(message, "Reply-To")
    ids = _message_ids(message.get("Message-ID"))
    parsed.message_id = ids[0] if ids else None
    in_reply_to = _message_ids(message.get("In-Reply-To"))
    parsed.in_reply_to = in_reply_to[0] if in_reply_to else None
    parsed.references = _message_ids(message.get("References"))
    try:
        date = email.utils.parsedate_to_datetime(str(message.get("Date"))) if message.get("Date") else None
    except (TypeError, ValueError, IndexError):
        date = None
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    parsed.date = date.astimezone(UTC) if date else None
    priority = str(message.get("Importance") or message.get("X-Priority") or "").strip().lower()
    if priority.startswith(("high", "1", "2")):
        parsed.importance = "high"
    elif priority.startswith(("low", "5", "4")):
        parsed.importance = "low"
    try:
        _walk(message, parsed)
    except Exception:  # noqa: BLE001 - a body we cannot walk is kept as raw text
        parsed.body_type, parsed.body = "text", raw.decode("utf-8", "replace")
    return parsed


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body (for ``Prefer: outlook.body-content-type="text"`` and bodyPreview)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
    except Exception:  # noqa: BLE001
        return re.sub(r"<[^>]+>", " ", markup)
    text = "".join(extractor.parts)
    return re.sub(r"[ \t]*\n[ \t\n]*", "\n", text).strip()


def _format_addresses(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(email.utils.formataddr((name, address)) for name, address in pairs)


@dataclass
class OutgoingMessage:
    """The fields a draft or JSON sendMail carries, to render as MIME."""

    from_: tuple[str, str]
    sender: tuple[str, str] | None
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    bcc: list[tuple[str, str]]
    reply_to: list[tuple[str, str]]
    subject: str
    body_type: str
    body: str
    message_id: str
    date: datetime
    importance: str = "normal"
    headers: list[tuple[str, str]] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)


def build_mime(outgoing: OutgoingMessage, *, include_bcc: bool) -> bytes:
    """Render a message as Exchange would hand it to transport (``include_bcc`` only for the sender's copy)."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = email.utils.formataddr(outgoing.from_)
    if outgoing.sender and outgoing.sender[1].lower() != outgoing.from_[1].lower():
        message["Sender"] = email.utils.formataddr(outgoing.sender)
    if outgoing.to:
        message["To"] = _format_addresses(outgoing.to)
    if outgoing.cc:
        message["Cc"] = _format_addresses(outgoing.cc)
    if include_bcc and outgoing.bcc:
        message["Bcc"] = _format_addresses(outgoing.bcc)
    if outgoing.reply_to:
        message["Reply-To"] = _format_addresses(outgoing.reply_to)
    message["Subject"] = outgoing.subject
    message["Date"] = email.utils.format_datetime(outgoing.date)
    message["Message-ID"] = outgoing.message_id
    if outgoing.importance != "normal":
        message["Importance"] = outgoing.importance
    for name, value in outgoing.headers:
        message[name] = value
    subtype = "html" if outgoing.body_type == "html" else "plain"
    message.set_content(outgoing.body or "", subtype=subtype)
    for attachment in outgoing.attachments:
        maintype, _, subtype_ = (attachment.content_type or "application/octet-stream").partition("/")
        if attachment.is_item:
            message.add_attachment(
                attachment.content, maintype="application", subtype="octet-stream", filename=attachment.name + ".eml"
            )
            continue
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype_ or "octet-stream",
            filename=attachment.name,
            disposition="inline" if attachment.is_inline else "attachment",
            cid=f"<{attachment.content_id}>" if attachment.content_id else None,
        )
    return message.as_bytes()


def escape_text_as_html(text: str) -> str:
    """Wrap plain text the way Exchange renders a text body as HTML."""
    return "<html><body><pre>" + html.escape(text) + "</pre></body></html>"
