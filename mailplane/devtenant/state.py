"""In-memory mail store of the dev tenant: tenants, mailboxes, folders, messages, sends, subscriptions, sync state.

Thread-safe (one re-entrant lock): tests seed and inspect it from their own thread while the emulator serves
requests from uvicorn's thread. Messages keep their MIME (when they have one) and the fields Graph projects from it;
:mod:`mailplane.devtenant.projection` renders them as Graph JSON.

Ids behave like Exchange's: a message has a REST id that changes when it moves and an immutable id that does not
(returned when the request says ``Prefer: IdType="ImmutableId"``); both address it while valid. Folder ids are stable
and derived from the mailbox and folder, so they are the same on every run.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailplane.devtenant.mime import OutgoingMessage, ParsedAttachment, build_mime, parse_mime

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "WELL_KNOWN_FOLDERS",
    "Change",
    "DeltaCursor",
    "DevTenantState",
    "Folder",
    "GraphError",
    "Mailbox",
    "OutboundMessage",
    "StoredAttachment",
    "StoredMessage",
    "Subscription",
    "UploadSession",
]

# Well-known folder name -> display name, created in every mailbox under msgfolderroot (in this order).
WELL_KNOWN_FOLDERS: dict[str, str] = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "archive": "Archive",
    "junkemail": "Junk Email",
    "outbox": "Outbox",
    "conversationhistory": "Conversation History",
}
ROOT_FOLDER = "msgfolderroot"
_MAX_ATTACHMENT_NAME = 255


class GraphError(Exception):
    """A Graph error response: HTTP status, ``error.code`` and ``error.message`` exactly as the service sends them."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        """Keep the parts of the error body."""
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def item_not_found() -> GraphError:
    """Build the error Exchange returns for an id that addresses nothing (deleted, moved, or never existed)."""
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def now_utc() -> datetime:
    """Now, at the one-second precision Graph uses for message timestamps."""
    return datetime.now(UTC).replace(microsecond=0)


def _b64(data: bytes) -> str:
    """Exchange-style id text: standard base64 with '/' and '+' replaced so ids are URL-path safe."""
    return base64.b64encode(data).decode("ascii").replace("/", "-").replace("+", "_")


def new_rest_id() -> str:
    """Make a fresh REST (EWS-format) item id."""
    return "AAMkAD" + _b64(secrets.token_bytes(106))


def new_immutable_id() -> str:
    """Make a fresh immutable item id."""
    return "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A" + _b64(secrets.token_bytes(64))


def new_change_key() -> str:
    """Make a fresh change key (also the weak ETag)."""
    return "CQAAABYAAAA" + _b64(secrets.token_bytes(24))


@dataclass
class StoredAttachment:
    """A file (or attached message) on a message."""

    id: str
    name: str
    content_type: str
    content: bytes
    is_inline: bool = False
    content_id: str | None = None
    is_item: bool = False
    last_modified: datetime = field(default_factory=now_utc)


@dataclass
class StoredMessage:
    """A message as Exchange stores it; see :func:`mailplane.devtenant.projection.message_json` for the JSON."""

    mailbox: str
    immutable_id: str
    rest_id: str
    folder_id: str
    raw: bytes | None
    subject: str | None
    body_type: str
    body: str
    from_: tuple[str, str] | None
    sender: tuple[str, str] | None
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    bcc: list[tuple[str, str]]
    reply_to: list[tuple[str, str]]
    internet_message_id: str | None
    conversation_id: str
    conversation_index: bytes
    headers: list[tuple[str, str]]
    received: datetime
    sent: datetime | None
    created: datetime
    modified: datetime
    is_read: bool
    is_draft: bool
    importance: str = "normal"
    inference: str = "focused"
    categories: list[str] = field(default_factory=list)
    flag: dict[str, Any] = field(default_factory=lambda: {"flagStatus": "notFlagged"})
    is_read_receipt_requested: bool = False
    is_delivery_receipt_requested: bool = False
    attachments: list[StoredAttachment] = field(default_factory=list)
    change_key: str = field(default_factory=new_change_key)
    seq: int = 0
    delete_after_submit: bool = False  # PR_DELETE_AFTER_SUBMIT: sent drafts leave no Sent Items copy

    def id_for(self, *, immutable: bool) -> str:
        """Return the id a response carries (immutable when the request asked for it)."""
        return self.immutable_id if immutable else self.rest_id


@dataclass
class Folder:
    """A mail folder; ``tombstones`` remember messages that left it, for delta's ``@removed`` entries."""

    id: str
    display_name: str
    parent_id: str
    well_known: str | None = None
    is_hidden: bool = False
    tombstones: list[tuple[int, str, str]] = field(default_factory=list)  # (seq, rest id, immutable id)


@dataclass
class OutboundMessage:
    """One message that left a mailbox (sendMail or a sent draft), as transport saw it."""

    mailbox: str
    internet_message_id: str
    subject: str | None
    to: list[str]
    cc: list[str]
    bcc: list[str]
    mime: bytes
    sent_at: datetime
    via: str  # "sendMail" (JSON), "sendMail-mime" or "draft"
    sent_item_id: str | None  # immutable id of the Sent Items copy, if one was saved

    @property
    def recipients(self) -> list[str]:
        """All envelope recipients."""
        return [*self.to, *self.cc, *self.bcc]


@dataclass
class Mailbox:
    """A user or shared mailbox."""

    address: str
    id: str
    kind: str
    display_name: str
    tenant_id: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, StoredMessage] = field(default_factory=dict)  # immutable id -> message
    rest_ids: dict[str, str] = field(default_factory=dict)  # current rest id -> immutable id
    conversations: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # Message-ID -> (id, index)
    outbox: list[OutboundMessage] = field(default_factory=list)
    access_denied: bool = False
    send_as: set[str] = field(default_factory=set)  # other From addresses this mailbox may send as (lower case)


@dataclass
class Subscription:
    """A change-notification subscription."""

    id: str
    resource: str
    change_type: str
    notification_url: str
    expiration: datetime
    client_state: str | None
    lifecycle_notification_url: str | None
    mailbox: str
    folder_id: str | None
    application_id: str
    creator_id: str
    immutable_ids: bool
    latest_supported_tls_version: str = "v1_2"


@dataclass
class DeltaCursor:
    """Server-side state behind a delta token (round start) or skip token (pending pages of a round)."""

    mailbox: str
    folder_id: str
    since_seq: int
    select: list[str] | None
    received_filter: tuple[str, datetime] | None
    immutable: bool
    page_size: int | None
    created: datetime
    pending: list[tuple[str, str]] | None = None  # (kind "item"|"removed", id) still to serve in this round
    round_seq: int = 0
    invalid_code: str | None = None


@dataclass
class UploadSession:
    """A large-attachment upload in progress."""

    id: str
    mailbox: str
    message_id: str  # immutable id
    name: str
    size: int
    content_type: str
    is_inline: bool
    content_id: str | None
    expires: datetime
    received: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class Change:
    """A change to a message, as subscriptions see it."""

    change_type: str  # created | updated | deleted
    mailbox: str
    folder_id: str
    rest_id: str
    immutable_id: str
    change_key: str


@dataclass
class _Tenant:
    id: str
    domains: list[str]


def _recipient_pairs(values: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name or "", address) for name, address in values]


class DevTenantState:
    """Everything the emulator knows; see the module docstring."""

    def __init__(
        self,
        *,
        tenant_id: str = "00000000-0000-0000-0000-0000000000aa",
        domain: str = "contoso.com",
        delta_token_ttl: timedelta = timedelta(days=7),
        delta_cache_size: int = 50_000,
    ) -> None:
        """Start with an empty default tenant named by ``tenant_id`` with ``domain``."""
        self._lock = threading.RLock()
        self._tenants: dict[str, _Tenant] = {tenant_id: _Tenant(tenant_id, [domain])}
        self.default_tenant_id = tenant_id
        self._mailboxes: dict[str, Mailbox] = {}
        self._seq = 0
        self._listeners: list[Callable[[Change], None]] = []
        self.subscriptions: dict[str, Subscription] = {}
        self.delta_cursors: dict[str, DeltaCursor] = {}
        self.upload_sessions: dict[str, UploadSession] = {}
        self.delta_token_ttl = delta_token_ttl
        self.delta_cache_size = delta_cache_size

    @property
    def lock(self) -> threading.RLock:
        """The lock that guards every read and write (re-entrant)."""
        return self._lock

    # ----- tenants and mailboxes -------------------------------------------------------------------------------
    def add_tenant(self, tenant_id: str, domains: Iterable[str] = ()) -> None:
        """Add (or extend) a tenant with its accepted domains."""
        with self._lock:
            tenant = self._tenants.setdefault(tenant_id, _Tenant(tenant_id, []))
            tenant.domains.extend(d.lower() for d in domains if d.lower() not in tenant.domains)

    def tenant_of_domain(self, domain: str) -> str | None:
        """Return the tenant whose accepted domains include ``domain``."""
        with self._lock:
            for tenant in self._tenants.values():
                if domain.lower() in tenant.domains:
                    return tenant.id
        return None

    def add_mailbox(
        self, address: str, *, kind: str = "user", display_name: str | None = None, tenant_id: str | None = None
    ) -> Mailbox:
        """Create a mailbox with its well-known folders (returns the existing one if the address is known)."""
        if kind not in ("user", "shared"):
            raise ValueError(f"adding mailbox {address}: kind {kind!r} is not 'user' or 'shared'")
        key = address.lower()
        with self._lock:
            existing = self._mailboxes.get(key)
            if existing is not None:
                return existing
            domain = key.rpartition("@")[2]
            tenant = tenant_id or self.tenant_of_domain(domain) or self.default_tenant_id
            self.add_tenant(tenant, [domain])
            mailbox = Mailbox(
                address=address,
                id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailplane-devtenant:{key}")),
                kind=kind,
                display_name=display_name or address.partition("@")[0],
                tenant_id=tenant,
            )
            root_id = self._folder_id(key, ROOT_FOLDER)
            mailbox.folders[root_id] = Folder(
                root_id, "Top of Information Store", self._folder_id(key, "root"), ROOT_FOLDER
            )
            for name, display in WELL_KNOWN_FOLDERS.items():
                folder_id = self._folder_id(key, name)
                mailbox.folders[folder_id] = Folder(folder_id, display, root_id, name)
            self._mailboxes[key] = mailbox
            return mailbox

    @staticmethod
    def _folder_id(mailbox_key: str, name: str) -> str:
        digest = hashlib.sha256(f"{mailbox_key}/{name.lower()}".encode()).digest()
        return "AQMkAD" + _b64(digest + hashlib.sha256(digest).digest()[:22]) + "AAAA=="

    def find_mailbox(self, ref: str) -> Mailbox | None:
        """Return the mailbox addressed by SMTP address (any case) or by its user id (GUID)."""
        with self._lock:
            found = self._mailboxes.get(ref.lower())
            if found is not None:
                return found
            for mailbox in self._mailboxes.values():
                if mailbox.id == ref.lower():
                    return mailbox
        return None

    def mailbox(self, ref: str) -> Mailbox:
        """Like :meth:`find_mailbox` but raises ``KeyError`` naming the mailbox."""
        found = self.find_mailbox(ref)
        if found is None:
            raise KeyError(f"dev tenant has no mailbox {ref!r}; add it with add_mailbox() or seed_eml()")
        return found

    def mailboxes(self) -> list[Mailbox]:
        """All mailboxes."""
        with self._lock:
            return list(self._mailboxes.values())

    def set_access_denied(self, mailbox: str, denied: bool = True) -> None:
        """Make Graph answer 403 ErrorAccessDenied for this mailbox (an app outside its RBAC scope)."""
        with self._lock:
            self.mailbox(mailbox).access_denied = denied

    def grant_send_as(self, mailbox: str, address: str) -> None:
        """Let sends from ``mailbox`` carry ``From: address`` (Exchange's SendAs/SendOnBehalf right)."""
        with self._lock:
            self.mailbox(mailbox).send_as.add(address.lower())

    # ----- folders -----------------------------------------------------------------------------------------------
    def resolve_folder(self, mailbox: Mailbox, ref: str) -> Folder:
        """Return a folder by id or well-known name (case-insensitive); ErrorItemNotFound otherwise."""
        with self._lock:
            folder = mailbox.folders.get(ref)
            if folder is not None:
                return folder
            lowered = ref.lower()
            for candidate in mailbox.folders.values():
                if candidate.well_known == lowered:
                    return candidate
        raise item_not_found()

    def folder_id(self, mailbox: str, folder: str) -> str:
        """Return the id of a folder given by well-known name, id, or display name path (e.g. ``"Inbox/Failed"``)."""
        with self._lock:
            box = self.mailbox(mailbox)
            try:
                return self.resolve_folder(box, folder).id
            except GraphError:
                pass
            parent = self.resolve_folder(box, ROOT_FOLDER).id
            for part in folder.split("/"):
                matches = [
                    f for f in box.folders.values() if f.parent_id == parent and f.display_name.lower() == part.lower()
                ]
                if not matches:
                    raise KeyError(f"mailbox {mailbox} has no folder {folder!r}")
                parent = matches[0].id
            return parent

    def child_folders(self, mailbox: Mailbox, parent_id: str) -> list[Folder]:
        """Direct children of a folder, in creation order."""
        with self._lock:
            return [f for f in mailbox.folders.values() if f.parent_id == parent_id]

    def create_folder(
        self, mailbox: str | Mailbox, display_name: str, *, parent: str = ROOT_FOLDER, is_hidden: bool = False
    ) -> Folder:
        """Create a folder; ErrorFolderExists when the parent already has one with that name (any case)."""
        with self._lock:
            box = mailbox if isinstance(mailbox, Mailbox) else self.mailbox(mailbox)
            parent_folder = self.resolve_folder(box, parent)
            for sibling in self.child_folders(box, parent_folder.id):
                if sibling.display_name.lower() == display_name.lower():
                    raise GraphError(400, "ErrorFolderExists", "A folder with the specified name already exists.")
            folder_id = "AQMkAD" + _b64(secrets.token_bytes(66)) + "AAAA=="
            folder = Folder(folder_id, display_name, parent_folder.id, None, is_hidden)
            box.folders[folder_id] = folder
            return folder

    def folder_messages(self, mailbox: Mailbox, folder_id: str) -> list[StoredMessage]:
        """Messages in a folder (unordered)."""
        with self._lock:
            return [m for m in mailbox.messages.values() if m.folder_id == folder_id]

    # ----- messages ----------------------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def seq(self) -> int:
        """The latest change sequence number."""
        return self._seq

    def add_listener(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener(change)`` after every message create/update/delete (runs under the lock: keep it quick)."""
        with self._lock:
            self._listeners.append(listener)

    def _emit(self, change_type: str, message: StoredMessage, folder_id: str | None = None) -> None:
        change = Change(
            change_type,
            message.mailbox.lower(),
            folder_id or message.folder_id,
            message.rest_id,
            message.immutable_id,
            message.change_key,
        )
        for listener in list(self._listeners):
            listener(change)

    def find_message(self, mailbox: Mailbox, message_id: str) -> StoredMessage:
        """Return a message by its current REST id or its immutable id; ErrorItemNotFound otherwise."""
        with self._lock:
            found = mailbox.messages.get(message_id)
            if found is None:
                immutable = mailbox.rest_ids.get(message_id)
                found = mailbox.messages.get(immutable) if immutable else None
            if found is None:
                raise item_not_found()
            return found

    def _conversation(self, mailbox: Mailbox, own_id: str | None, related: list[str]) -> tuple[str, bytes]:
        for key in related:
            known = mailbox.conversations.get(key)
            if known is not None:
                conversation = (known[0], known[1] + secrets.token_bytes(5))
                break
        else:
            root = related[0] if related else (own_id or secrets.token_hex(16))
            digest = hashlib.sha256(f"{mailbox.address.lower()}|{root}".encode()).digest()
            conversation = ("AAQkAD" + _b64(digest + digest[:10]), b"\x01" + digest[:21])
            mailbox.conversations.setdefault(root, conversation)
        if own_id:
            mailbox.conversations.setdefault(own_id, conversation)
        return conversation

    def _insert(self, mailbox: Mailbox, message: StoredMessage) -> StoredMessage:
        message.seq = self._next_seq()
        mailbox.messages[message.immutable_id] = message
        mailbox.rest_ids[message.rest_id] = message.immutable_id
        self._emit("created", message)
        return message

    def store_mime(
        self,
        mailbox: str | Mailbox,
        raw: bytes,
        *,
        folder: str = "inbox",
        is_read: bool = False,
        received: datetime | None = None,
        is_draft: bool = False,
    ) -> StoredMessage:
        """Store a MIME message in a folder, projecting its fields the way Exchange does."""
        parsed = parse_mime(raw)
        with self._lock:
            box = mailbox if isinstance(mailbox, Mailbox) else self.mailbox(mailbox)
            target = self.resolve_folder(box, folder) if not isinstance(folder, Folder) else folder
            when = (received or now_utc()).astimezone(UTC).replace(microsecond=0)
            related = [*parsed.references, *([parsed.in_reply_to] if parsed.in_reply_to else [])]
            conversation_id, conversation_index = self._conversation(box, parsed.message_id, related)
            message = StoredMessage(
                mailbox=box.address,
                immutable_id=new_immutable_id(),
                rest_id=new_rest_id(),
                folder_id=target.id,
                raw=raw,
                subject=parsed.subject,
                body_type=parsed.body_type,
                body=parsed.body,
                from_=parsed.from_[0] if parsed.from_ else None,
                sender=parsed.sender[0] if parsed.sender else None,
                to=parsed.to,
                cc=parsed.cc,
                bcc=parsed.bcc,
                reply_to=parsed.reply_to,
                internet_message_id=parsed.message_id,
                conversation_id=conversation_id,
                conversation_index=conversation_index,
                headers=parsed.headers,
                received=when,
                sent=parsed.date.replace(microsecond=0) if parsed.date else when,
                created=when,
                modified=when,
                is_read=is_read,
                is_draft=is_draft,
                importance=parsed.importance,
                attachments=[self._attachment_from(a) for a in parsed.attachments],
            )
            return self._insert(box, message)

    @staticmethod
    def _attachment_from(parsed: ParsedAttachment) -> StoredAttachment:
        return StoredAttachment(
            id="AAMkAD" + _b64(secrets.token_bytes(60)) + "=",
            name=parsed.name[:_MAX_ATTACHMENT_NAME],
            content_type=parsed.content_type,
            content=parsed.content,
            is_inline=parsed.is_inline,
            content_id=parsed.content_id,
            is_item=parsed.is_item,
        )

    def seed_eml(
        self,
        mailbox: str,
        eml: bytes | str | Path,
        folder: str = "inbox",
        is_read: bool = False,
        received: datetime | None = None,
    ) -> str:
        """Put an .eml (bytes, a path, or message text) into a mailbox folder as delivered mail; return its REST id.

        Creates the mailbox (kind "user") if it is unknown. Never fails on malformed MIME: whatever Python's email
        package can read is stored and the raw bytes are served unchanged by ``$value``.
        """
        if isinstance(eml, str) and "\n" in eml:
            raw = eml.encode("utf-8", "surrogateescape")  # message text rather than a path
        else:
            raw = Path(eml).read_bytes() if isinstance(eml, (str, Path)) else bytes(eml)
        with self._lock:
            box = self.find_mailbox(mailbox) or self.add_mailbox(mailbox)
            return self.store_mime(box, raw, folder=folder, is_read=is_read, received=received).rest_id

    def messages(self, mailbox: str, folder: str = "inbox") -> list[StoredMessage]:
        """Messages in a folder (by well-known name, id or display-name path), newest first."""
        with self._lock:
            box = self.mailbox(mailbox)
            folder_id = self.folder_id(mailbox, folder)
            return sorted(self.folder_messages(box, folder_id), key=lambda m: (m.received, m.seq), reverse=True)

    def touch(self, message: StoredMessage) -> None:
        """Record an update: new change key, modified time and sequence number; notify."""
        with self._lock:
            message.change_key = new_change_key()
            message.modified = now_utc()
            message.seq = self._next_seq()
            self._emit("updated", message)

    def move_message(self, mailbox: Mailbox, message: StoredMessage, destination: Folder) -> StoredMessage:
        """Move a message: it gets a new REST id (the old one stops resolving), keeps its immutable id."""
        with self._lock:
            source = mailbox.folders[message.folder_id]
            seq = self._next_seq()
            source.tombstones.append((seq, message.rest_id, message.immutable_id))
            self._emit("deleted", message, source.id)
            mailbox.rest_ids.pop(message.rest_id, None)
            message.rest_id = new_rest_id()
            mailbox.rest_ids[message.rest_id] = message.immutable_id
            message.folder_id = destination.id
            message.change_key = new_change_key()
            message.modified = now_utc()
            message.seq = self._next_seq()
            self._emit("created", message)
            return message

    def delete_message(self, mailbox: Mailbox, message: StoredMessage) -> None:
        """Remove a message for good."""
        with self._lock:
            folder = mailbox.folders[message.folder_id]
            folder.tombstones.append((self._next_seq(), message.rest_id, message.immutable_id))
            mailbox.messages.pop(message.immutable_id, None)
            mailbox.rest_ids.pop(message.rest_id, None)
            self._emit("deleted", message)

    def create_draft(self, mailbox: Mailbox, fields: dict[str, Any], folder: Folder | None = None) -> StoredMessage:
        """Create a draft from already-validated fields (see graph.py); Drafts unless another folder is given."""
        with self._lock:
            target = folder or self.resolve_folder(mailbox, "drafts")
            when = now_utc()
            own_id = f"<{secrets.token_hex(16).upper()}@devtenant.prod.outlook.com>"
            related = fields.pop("related_ids", [])
            conversation_id, conversation_index = self._conversation(mailbox, own_id, related)
            message = StoredMessage(
                mailbox=mailbox.address,
                immutable_id=new_immutable_id(),
                rest_id=new_rest_id(),
                folder_id=target.id,
                raw=None,
                subject=fields.get("subject", ""),
                body_type=fields.get("body_type", "text"),
                body=fields.get("body", ""),
                from_=fields.get("from_") or (mailbox.display_name, mailbox.address),
                sender=fields.get("sender") or fields.get("from_") or (mailbox.display_name, mailbox.address),
                to=fields.get("to", []),
                cc=fields.get("cc", []),
                bcc=fields.get("bcc", []),
                reply_to=fields.get("reply_to", []),
                internet_message_id=own_id,
                conversation_id=conversation_id,
                conversation_index=conversation_index,
                headers=fields.get("headers", []),
                received=when,
                sent=None,
                created=when,
                modified=when,
                is_read=True,
                is_draft=True,
                importance=fields.get("importance", "normal"),
                categories=fields.get("categories", []),
                flag=fields.get("flag", {"flagStatus": "notFlagged"}),
                is_read_receipt_requested=fields.get("is_read_receipt_requested", False),
                is_delivery_receipt_requested=fields.get("is_delivery_receipt_requested", False),
                attachments=[self._attachment_from(a) for a in fields.get("attachments", [])],
                delete_after_submit=fields.get("delete_after_submit", False),
            )
            return self._insert(mailbox, message)

    def add_attachment(
        self, mailbox: Mailbox, message: StoredMessage, attachment: ParsedAttachment
    ) -> StoredAttachment:
        """Attach a file to a message (drafts only; graph.py checks)."""
        with self._lock:
            stored = self._attachment_from(attachment)
            message.attachments.append(stored)
            self.touch(message)
            del mailbox  # the message knows its mailbox; kept in the signature for symmetry with the other writes
            return stored

    # ----- sending -------------------------------------------------------------------------------------------------
    def _outgoing(self, mailbox: Mailbox, fields: dict[str, Any], message_id: str) -> OutgoingMessage:
        return OutgoingMessage(
            from_=fields.get("from_") or (mailbox.display_name, mailbox.address),
            sender=(mailbox.display_name, mailbox.address),
            to=_recipient_pairs(fields.get("to", [])),
            cc=_recipient_pairs(fields.get("cc", [])),
            bcc=_recipient_pairs(fields.get("bcc", [])),
            reply_to=_recipient_pairs(fields.get("reply_to", [])),
            subject=fields.get("subject") or "",
            body_type=fields.get("body_type", "text"),
            body=fields.get("body", ""),
            message_id=message_id,
            date=now_utc(),
            importance=fields.get("importance", "normal"),
            headers=list(fields.get("headers", [])),
            attachments=list(fields.get("attachments", [])),
        )

    def _transport(
        self,
        mailbox: Mailbox,
        *,
        mime_for_recipients: bytes,
        mime_for_sender: bytes,
        internet_message_id: str,
        subject: str | None,
        to: list[str],
        cc: list[str],
        bcc: list[str],
        via: str,
        sent_item: StoredMessage | None,
        save_to_sent_items: bool,
    ) -> OutboundMessage:
        when = now_utc()
        if sent_item is None and save_to_sent_items:
            sent_item = self.store_mime(mailbox, mime_for_sender, folder="sentitems", is_read=True, received=when)
        record = OutboundMessage(
            mailbox=mailbox.address,
            internet_message_id=internet_message_id,
            subject=subject,
            to=to,
            cc=cc,
            bcc=bcc,
            mime=mime_for_sender,
            sent_at=when,
            via=via,
            sent_item_id=sent_item.immutable_id if sent_item else None,
        )
        mailbox.outbox.append(record)
        delivered: set[str] = set()
        for address in [*to, *cc, *bcc]:
            recipient = self.find_mailbox(address)
            if recipient is None or recipient.tenant_id != mailbox.tenant_id or address.lower() in delivered:
                continue
            delivered.add(address.lower())
            self.store_mime(recipient, mime_for_recipients, folder="inbox", is_read=False, received=when)
        return record

    def send_fields(self, mailbox: Mailbox, fields: dict[str, Any], *, save_to_sent_items: bool) -> OutboundMessage:
        """SendMail with a JSON message (fields validated by graph.py)."""
        with self._lock:
            message_id = f"<{secrets.token_hex(16).upper()}@devtenant.prod.outlook.com>"
            outgoing = self._outgoing(mailbox, fields, message_id)
            return self._transport(
                mailbox,
                mime_for_recipients=build_mime(outgoing, include_bcc=False),
                mime_for_sender=build_mime(outgoing, include_bcc=True),
                internet_message_id=message_id,
                subject=outgoing.subject,
                to=[a for _, a in outgoing.to],
                cc=[a for _, a in outgoing.cc],
                bcc=[a for _, a in outgoing.bcc],
                via="sendMail",
                sent_item=None,
                save_to_sent_items=save_to_sent_items,
            )

    def send_mime(self, mailbox: Mailbox, raw: bytes, *, save_to_sent_items: bool) -> OutboundMessage:
        """SendMail with base64 MIME: Exchange adds a Message-ID if the MIME has none and strips Bcc in transit."""
        parsed = parse_mime(raw)
        message_id = parsed.message_id
        if message_id is None:
            message_id = f"<{secrets.token_hex(16).upper()}@devtenant.prod.outlook.com>"
            raw = f"Message-ID: {message_id}\r\n".encode() + raw
        for_recipients = _strip_header(raw, b"bcc")
        with self._lock:
            return self._transport(
                mailbox,
                mime_for_recipients=for_recipients,
                mime_for_sender=raw,
                internet_message_id=message_id,
                subject=parsed.subject,
                to=[a for _, a in parsed.to],
                cc=[a for _, a in parsed.cc],
                bcc=[a for _, a in parsed.bcc],
                via="sendMail-mime",
                sent_item=None,
                save_to_sent_items=save_to_sent_items,
            )

    def send_draft(self, mailbox: Mailbox, draft: StoredMessage) -> OutboundMessage:
        """Send a draft: it becomes the Sent Items copy (new REST id, same immutable id and internetMessageId).

        A draft created with PR_DELETE_AFTER_SUBMIT (``Boolean 0x0E01`` true) is deleted instead: no copy is kept.
        """
        with self._lock:
            fields = {
                "from_": draft.from_,
                "to": draft.to,
                "cc": draft.cc,
                "bcc": draft.bcc,
                "reply_to": draft.reply_to,
                "subject": draft.subject,
                "body_type": draft.body_type,
                "body": draft.body,
                "importance": draft.importance,
                "headers": draft.headers,
                "attachments": [
                    ParsedAttachment(a.name, a.content_type, a.content, a.is_inline, a.content_id, a.is_item)
                    for a in draft.attachments
                ],
            }
            message_id = draft.internet_message_id or f"<{secrets.token_hex(16).upper()}@devtenant.prod.outlook.com>"
            outgoing = self._outgoing(mailbox, fields, message_id)
            for_sender = build_mime(outgoing, include_bcc=True)
            draft.raw = for_sender
            draft.is_draft = False
            draft.sent = outgoing.date
            draft.received = outgoing.date
            draft.headers = parse_mime(for_sender).headers
            kept = not draft.delete_after_submit
            if kept:
                self.move_message(mailbox, draft, self.resolve_folder(mailbox, "sentitems"))
            else:
                self.delete_message(mailbox, draft)
            return self._transport(
                mailbox,
                mime_for_recipients=build_mime(outgoing, include_bcc=False),
                mime_for_sender=for_sender,
                internet_message_id=message_id,
                subject=outgoing.subject,
                to=[a for _, a in outgoing.to],
                cc=[a for _, a in outgoing.cc],
                bcc=[a for _, a in outgoing.bcc],
                via="draft",
                sent_item=draft if kept else None,
                save_to_sent_items=kept,
            )

    def outbox(self, mailbox: str) -> list[OutboundMessage]:
        """Everything sent from a mailbox, oldest first (sendMail and sent drafts; whether or not saved)."""
        with self._lock:
            return list(self.mailbox(mailbox).outbox)

    def sent_count(self) -> int:
        """How many messages left any mailbox."""
        with self._lock:
            return sum(len(m.outbox) for m in self._mailboxes.values())

    # ----- delta sync state ----------------------------------------------------------------------------------------
    def new_cursor_token(self, cursor: DeltaCursor) -> str:
        """Store a cursor under a fresh opaque token (evicting the oldest beyond the cache size, like Exchange)."""
        token = secrets.token_urlsafe(48)
        with self._lock:
            self.delta_cursors[token] = cursor
            while len(self.delta_cursors) > self.delta_cache_size:
                del self.delta_cursors[next(iter(self.delta_cursors))]
        return token

    def expire_delta_tokens(self, mailbox: str | None = None, *, code: str = "SyncStateNotFound") -> int:
        """Invalidate delta/skip tokens (all, or one mailbox's) as Exchange does when its sync state cache evicts.

        ``code`` is ``"SyncStateNotFound"`` (410, the expired-token answer) or ``"resyncRequired"`` (410).
        Returns how many tokens were invalidated.
        """
        with self._lock:
            hit = 0
            for cursor in self.delta_cursors.values():
                if mailbox is None or cursor.mailbox.lower() == mailbox.lower():
                    cursor.invalid_code = code
                    hit += 1
            return hit


def _strip_header(raw: bytes, name: bytes) -> bytes:
    """Remove one header (with continuation lines) from the header block of raw MIME."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    newline = b"\r\n"
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
        newline = b"\n"
    out: list[bytes] = []
    skipping = False
    for line in head.split(newline):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.split(b":", 1)[0].strip().lower() == name
        if not skipping:
            out.append(line)
    return newline.join(out) + sep + body
