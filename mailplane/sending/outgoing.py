"""What a caller asks to send: recipients, subject, bodies, attachments; idempotency keys and recipient splitting.

Pure: no I/O. An :class:`OutgoingMessage` is validated when it is built (addresses, one body at least, attachment
names), so a message that reaches the store can be sent as it is. Its idempotency key is the caller's, or derived
from the sending mailbox and the whole content (:func:`derive_idempotency_key`): the same message asked for twice is
one send. A message with more recipients than a mailbox may put on one message is split by
:func:`split_by_recipients` into parts that each carry a key derived from the original one.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass, field
from email.utils import parseaddr

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "Address",
    "OutgoingAttachment",
    "OutgoingMessage",
    "content_fingerprint",
    "derive_idempotency_key",
    "draft_marker",
    "parse_address",
    "split_by_recipients",
    "validate_idempotency_key",
]

MAX_IDEMPOTENCY_KEY_LENGTH = 200
# The integration schema's e-mail pattern, so that a send accepts exactly the addresses a config accepts.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_KEY = re.compile(r"^[A-Za-z0-9._:@/+=-]+$")


@dataclass(frozen=True, order=True)
class Address:
    """An e-mail address with an optional display name."""

    address: str
    name: str | None = None

    def to_dict(self) -> dict[str, str]:
        """JSON form (stored with the send)."""
        return {"address": self.address, **({"name": self.name} if self.name else {})}


def parse_address(text: str) -> Address:
    """``"ann@example.com"`` or ``"Ann Smith <ann@example.com>"`` -> :class:`Address`. Raises ``ValueError``."""
    name, address = parseaddr(text.strip())
    if not address or not _ADDRESS.match(address) or len(address) > 320:  # noqa: PLR2004 - RFC 5321 path limit
        raise ValueError(f"{text!r} is not an e-mail address; write name@example.com or 'Name <name@example.com>'")
    return Address(address, name or None)


@dataclass(frozen=True)
class OutgoingAttachment:
    """A file to attach. ``content_type`` defaults from the file name's extension."""

    name: str
    content: bytes = field(repr=False)
    content_type: str = ""

    def __post_init__(self) -> None:
        """Validate the name; guess the content type when none is given."""
        if not self.name or "/" in self.name or "\\" in self.name or len(self.name) > 255:  # noqa: PLR2004
            raise ValueError(f"attachment name {self.name!r} must be a file name (no folders, at most 255 characters)")
        if not self.content_type:
            guessed = mimetypes.guess_type(self.name)[0] or "application/octet-stream"
            object.__setattr__(self, "content_type", guessed)

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.content)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the content (part of the derived idempotency key)."""
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class OutgoingMessage:
    """A message to send from a mailbox: at least one recipient and at least one of ``text``/``html``.

    ``reply_to`` lists where replies should go (Reply-To). Recipients keep their order; duplicates are dropped,
    compared case-insensitively, within and across To, Cc and Bcc (To wins, then Cc).
    """

    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    reply_to: tuple[Address, ...] = ()
    attachments: tuple[OutgoingAttachment, ...] = ()

    def __post_init__(self) -> None:
        """Drop duplicate recipients; check there is someone to send to and something to say."""
        seen: set[str] = set()
        for role in ("to", "cc", "bcc"):
            kept = []
            for recipient in getattr(self, role):
                if recipient.address.lower() not in seen:
                    seen.add(recipient.address.lower())
                    kept.append(recipient)
            object.__setattr__(self, role, tuple(kept))
        if not seen:
            raise ValueError("a message needs at least one recipient (to, cc or bcc)")
        if self.text is None and self.html is None:
            raise ValueError("a message needs a body: text or html")
        if "\n" in self.subject or "\r" in self.subject:
            raise ValueError("the subject must be one line")

    @property
    def recipient_count(self) -> int:
        """To + Cc + Bcc (what Exchange counts against the daily recipient limit)."""
        return len(self.to) + len(self.cc) + len(self.bcc)

    @property
    def attachment_bytes(self) -> int:
        """Total size of the attachments."""
        return sum(a.size for a in self.attachments)

    def to_dict(self) -> dict[str, object]:
        """JSON form without attachment contents (those are stored separately)."""
        return {
            "to": [a.to_dict() for a in self.to],
            "cc": [a.to_dict() for a in self.cc],
            "bcc": [a.to_dict() for a in self.bcc],
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "replyTo": [a.to_dict() for a in self.reply_to],
            "attachments": [
                {"name": a.name, "contentType": a.content_type, "size": a.size, "sha256": a.sha256}
                for a in self.attachments
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object], attachments: tuple[OutgoingAttachment, ...] = ()) -> OutgoingMessage:
        """Rebuild a message from :meth:`to_dict` and its attachments."""

        def people(key: str) -> tuple[Address, ...]:
            values = data.get(key) or []
            assert isinstance(values, list)
            return tuple(Address(str(v["address"]), v.get("name")) for v in values)

        text, html = data.get("text"), data.get("html")
        return cls(
            to=people("to"),
            cc=people("cc"),
            bcc=people("bcc"),
            subject=str(data.get("subject") or ""),
            text=None if text is None else str(text),
            html=None if html is None else str(html),
            reply_to=people("replyTo"),
            attachments=attachments,
        )


def validate_idempotency_key(key: str) -> str:
    """Return ``key`` if it is a usable idempotency key; raise ``ValueError`` saying what is allowed otherwise."""
    if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH or not _KEY.match(key):
        raise ValueError(
            f"idempotency key {key!r} must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters of letters, digits "
            "and . _ : @ / + = -"
        )
    return key


def derive_idempotency_key(mailbox: str, message: OutgoingMessage) -> str:
    """A key that is the same for the same mailbox and content, and differs when anything that is sent differs."""
    canonical = json.dumps({"mailbox": mailbox.lower(), **message.to_dict()}, sort_keys=True, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def content_fingerprint(message: OutgoingMessage) -> str:
    """Hex SHA-256 of the content, to tell a key reused for a different message from a retry of the same one."""
    canonical = json.dumps(message.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def draft_marker(mailbox: str, key: str) -> str:
    """The category put on the Graph draft of send ``key``, so a retry finds the draft instead of making another."""
    digest = hashlib.sha256(f"{mailbox.lower()}\n{key}".encode()).hexdigest()[:32]
    return f"mailplane-send-{digest}"


def split_by_recipients(message: OutgoingMessage, per_message: int) -> list[OutgoingMessage]:
    """``message`` as it is when it has at most ``per_message`` recipients, else split into parts that do.

    Recipients are taken in order (To, then Cc, then Bcc) and each keeps its role; every part carries the same
    subject, bodies, Reply-To and attachments. Recipients in different parts do not see each other.
    """
    if per_message < 1:
        raise ValueError("recipients per message must be at least 1")
    if message.recipient_count <= per_message:
        return [message]
    tagged = [("to", a) for a in message.to] + [("cc", a) for a in message.cc] + [("bcc", a) for a in message.bcc]
    parts = []
    for start in range(0, len(tagged), per_message):
        chunk = tagged[start : start + per_message]
        parts.append(
            OutgoingMessage(
                to=tuple(a for role, a in chunk if role == "to"),
                cc=tuple(a for role, a in chunk if role == "cc"),
                bcc=tuple(a for role, a in chunk if role == "bcc"),
                subject=message.subject,
                text=message.text,
                html=message.html,
                reply_to=message.reply_to,
                attachments=message.attachments,
            )
        )
    return parts
