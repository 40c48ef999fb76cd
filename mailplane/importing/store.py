"""The import store: what the importer remembers, and the records it produces.

Every backend (SQLite for one machine, PostgreSQL for many workers on many machines) implements
:class:`ImportStore`; ``tests/importing/test_store_contract.py`` holds every backend to the same contract.

Exactly once rests on three keys:

* **(mailbox, immutable id)** names one copy of a message in one mailbox. Its :class:`MessageState` row says how far
  the importer got with that copy: ``stored`` (records written, still unread in the mailbox), ``read`` (done),
  ``failed`` (could not be imported; still to be moved to the failure folder) or ``moved`` (in the failure folder,
  with the reason). Immutable ids survive moves within the mailbox, so the row keeps addressing the message.
* **(destination, Internet message id)** names one imported message. A second copy of the same mail (delivered to
  two shared mailboxes, or seen again after a crash) finds the message already there and adds nothing.
* The **per-mailbox lease** keeps one worker per mailbox at a time; an expired lease (a dead worker) can be taken.

:meth:`ImportStore.record_import` writes the state row and every record in one transaction, so after a crash a
message is either wholly in the store (and its row says what is left to do in the mailbox) or not at all (and it is
still unread in the mailbox, so the next run finds it again).

All methods are coroutines; a backend may run blocking database calls in a thread. Times are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self

from mailplane.exceptions import StoreError

__all__ = [
    "ConversationRecord",
    "DestinationInput",
    "DocumentInput",
    "DocumentKind",
    "DocumentRecord",
    "FollowerInput",
    "FollowerRecord",
    "ImportOutcome",
    "ImportStore",
    "ImportedMessage",
    "Lease",
    "LeaseLostError",
    "MessageRecord",
    "MessageState",
    "MessageStateName",
    "ThreadKeys",
    "check_page_limit",
]


def check_page_limit(limit: int | None) -> None:
    """Refuse a page size below 1 for :meth:`ImportStore.list_conversations` (``None``: no limit)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"listing conversations: limit must be a whole number of at least 1 or None, not {limit!r}")


class LeaseLostError(StoreError):
    """Another worker took the mailbox (this worker's lease expired): stop working on it."""


MessageStateName = Literal["stored", "read", "failed", "moved"]
"""How far the importer got with one copy of a message in one mailbox (see the module docstring)."""

Participation = Literal["participant", "observer"]
DocumentKind = Literal["document", "embeddedFile"]


# --- inputs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreadKeys:
    """What threads a message into an existing conversation, tried in this order.

    ``graph_conversation_id`` is Graph's ``conversationId`` (matched within the same mailbox); ``in_reply_to`` and
    ``references`` are Internet message ids from the headers (``references`` oldest first, as in the header).
    """

    graph_conversation_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class FollowerInput:
    """An address on the message (From, To or Cc) that becomes a follower of the conversation.

    ``parent_type``/``parent_id`` name the follower parent record it matched (``None`` for an address-only follower).
    ``headers`` are the headers it appeared in on this message.
    """

    address: str
    name: str | None
    participation: Participation
    headers: tuple[str, ...]
    parent_type: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class DestinationInput:
    """One account a message is imported into, and the conversation parent fields this message would give it.

    ``parent_fields`` are used in full when the message starts a conversation. When it joins one, they only fill
    fields that are still empty (``None``), unless the message was received before every message already in the
    conversation: then its non-empty fields (and subject) win. So a ticket carries what its earliest message gives
    it, whatever order the messages are imported in (delta serves the newest first).

    ``followers`` are this destination's followers (each account may restrict which parent types match, with
    ``followerParents``); ``None`` means the message's own :attr:`ImportedMessage.followers`.
    """

    address: str
    parent_type: str
    parent_fields: Mapping[str, Any] = field(default_factory=dict)
    followers: tuple[FollowerInput, ...] | None = None


@dataclass(frozen=True)
class DocumentInput:
    """An attachment (``document``) or inline image (``embeddedFile``) of the message.

    ``content_ref`` points at the stored bytes (a blob reference); ``None`` when ``skipped`` (over the size limit),
    with ``skip_reason`` saying why. ``size`` is what Graph reported before download.
    """

    kind: DocumentKind
    name: str
    content_type: str | None
    size: int
    sha256: str | None = None
    content_ref: str | None = None
    content_id: str | None = None
    skipped: bool = False
    skip_reason: str | None = None


@dataclass(frozen=True)
class ImportedMessage:
    """Everything :meth:`ImportStore.record_import` writes for one copy of a message.

    ``mailbox``/``immutable_id`` name the copy; ``internet_message_id`` (or a stand-in derived from the immutable id
    when the mail has none) names the message across mailboxes. ``destinations`` lists the accounts it is imported
    into (one unless multiple destinations are enabled). With ``exclusive`` the message is imported only if no
    destination at all holds its Internet message id yet (single-destination routing: exactly one conversation).
    ``attributes`` are the message record's attributes (``mailplane.integration.RECORD_ATTRIBUTES["message"]``).
    ``followers`` go to every destination that does not list its own (:attr:`DestinationInput.followers`).
    """

    mailbox: str
    immutable_id: str
    internet_message_id: str
    received_at: dt.datetime
    destinations: tuple[DestinationInput, ...]
    subject: str = ""
    thread: ThreadKeys = field(default_factory=ThreadKeys)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    followers: tuple[FollowerInput, ...] = ()
    documents: tuple[DocumentInput, ...] = ()
    exclusive: bool = False

    def followers_for(self, destination: DestinationInput) -> tuple[FollowerInput, ...]:
        """The followers the conversation in ``destination`` gets: its own list, or else the message's."""
        return self.followers if destination.followers is None else destination.followers


# --- outputs -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """Who holds a mailbox and until when."""

    mailbox: str
    holder: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class MessageState:
    """The importer's progress on one copy of a message in one mailbox.

    ``in_failure_folder`` is true while the copy sits in the failure folder (after a move; a successful retry moves
    it back). ``attempts`` counts failed import attempts; ``reason`` is the last failure's reason.
    """

    mailbox: str
    immutable_id: str
    internet_message_id: str | None
    state: MessageStateName
    received_at: dt.datetime | None
    updated_at: dt.datetime
    reason: str | None = None
    attempts: int = 0
    in_failure_folder: bool = False


@dataclass(frozen=True)
class ImportOutcome:
    """What :meth:`ImportStore.record_import` did.

    ``conversations`` holds ``(destination, conversation id, created)`` for each destination the message was written
    to now; ``duplicate`` is true when every destination already had the message (nothing new was written except the
    copy's state row); ``state`` is the copy's state afterwards.
    """

    state: MessageState
    conversations: tuple[tuple[str, int, bool], ...] = ()
    duplicate: bool = False


@dataclass(frozen=True)
class FollowerRecord:
    """A follower of a conversation."""

    id: int
    conversation_id: int
    address: str
    name: str | None
    participation: Participation
    parent_type: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class DocumentRecord:
    """A stored attachment or inline image (or the record of one skipped)."""

    id: int
    message_id: int
    conversation_id: int
    kind: DocumentKind
    name: str
    content_type: str | None
    size: int
    sha256: str | None
    content_ref: str | None
    content_id: str | None
    skipped: bool
    skip_reason: str | None


@dataclass(frozen=True)
class MessageRecord:
    """An imported message with the followers it named (``(follower id, header)``) and its documents."""

    id: int
    conversation_id: int
    destination: str
    mailbox: str
    immutable_id: str
    internet_message_id: str
    subject: str
    received_at: dt.datetime
    attributes: Mapping[str, Any]
    followers: tuple[tuple[int, str], ...] = ()
    documents: tuple[DocumentRecord, ...] = ()


@dataclass(frozen=True)
class ConversationRecord:
    """A conversation (its parent record's type and fields), with its messages oldest first and its followers."""

    id: int
    destination: str
    subject: str
    parent_type: str
    parent_fields: Mapping[str, Any]
    graph_conversation_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    messages: tuple[MessageRecord, ...] = ()
    followers: tuple[FollowerRecord, ...] = ()

    @property
    def message_count(self) -> int:
        """How many messages the conversation holds."""
        return len(self.messages)


# --- the interface -----------------------------------------------------------------------------------------------


class ImportStore(Protocol):
    """Where the importer keeps its progress and the conversations it produces (see the module docstring).

    Every write is one transaction: it happens entirely or not at all, also when the process dies in the middle.
    Addresses (mailboxes, destinations, followers) are compared case-insensitively and stored lower-cased.
    """

    async def open(self) -> None:
        """Connect and create the schema if missing. Idempotent; safe when several workers open at once."""
        ...

    async def close(self) -> None:
        """Release connections. The store can be opened again."""
        ...

    async def __aenter__(self) -> Self:
        """``async with store``: open, then close on exit."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        ...

    # leases ----------------------------------------------------------------------------------------------------

    async def acquire_lease(self, mailbox: str, holder: str, ttl: dt.timedelta) -> Lease | None:
        """Take ``mailbox`` for ``holder`` until now + ``ttl``; ``None`` when another holder's lease is still valid.

        Succeeds when the mailbox is free, the previous lease expired (its worker died), or ``holder`` already holds
        it (then it is extended). At most one holder has an unexpired lease on a mailbox at any time.

        Fencing: once a store object took a mailbox's lease, its :meth:`record_import` and :meth:`record_failure` for
        that mailbox check, in their transaction, that the lease is still its own, and raise :class:`LeaseLostError`
        when another worker took it over or it was released (a worker that stalled past its lease, or a task still
        running after its worker gave the mailbox up, never writes next to the new holder). Taking the lease again
        lifts the fence.
        """
        ...

    async def renew_lease(self, mailbox: str, holder: str, ttl: dt.timedelta) -> Lease | None:
        """Extend ``holder``'s lease to now + ``ttl``; ``None`` when ``holder`` no longer holds it.

        A lease that expired but was not taken by anyone else can still be renewed by its holder. A worker whose
        renewal returns ``None`` must stop working on the mailbox.
        """
        ...

    async def release_lease(self, mailbox: str, holder: str) -> None:
        """Give the mailbox up if ``holder`` holds it (otherwise nothing happens)."""
        ...

    async def get_lease(self, mailbox: str) -> Lease | None:
        """The current unexpired lease on ``mailbox``, or ``None``."""
        ...

    # delta links -----------------------------------------------------------------------------------------------

    async def get_delta_link(self, mailbox: str, folder: str) -> str | None:
        """The saved delta link for ``folder`` of ``mailbox``, or ``None`` (first run, or after a resync)."""
        ...

    async def set_delta_link(self, mailbox: str, folder: str, link: str | None) -> None:
        """Save (or with ``None`` forget, forcing a full resync) the delta link. Last write wins."""
        ...

    # importing -------------------------------------------------------------------------------------------------

    async def record_import(self, message: ImportedMessage) -> ImportOutcome:
        """Write one copy's state row (``stored``) and its records, in one transaction, idempotently.

        Exactly once: keyed on (mailbox, immutable id) for the copy and (destination, Internet message id) for the
        records. Calling it again for a copy already ``stored``/``read`` writes nothing and returns the existing
        state. For each destination that already holds the Internet message id (another copy, or a retry), no
        records are added; with ``message.exclusive`` nothing is added when any destination holds it. A copy that was
        ``failed``/``moved`` becomes ``stored`` (keeping ``in_failure_folder``) so the caller can mark it read and
        move it back.

        Threading happens inside the transaction: the conversation of the destination that holds the same Graph
        conversation id from the same mailbox, else the one holding the ``In-Reply-To`` message, else one holding the
        newest of ``References``; otherwise a new conversation is created with the destination's ``parent_fields``.
        Followers are added to the conversation once per address.
        """
        ...

    async def get_message_state(self, mailbox: str, immutable_id: str) -> MessageState | None:
        """The state of one copy, or ``None`` if the importer never recorded it."""
        ...

    async def get_message_states(self, mailbox: str, immutable_ids: Sequence[str]) -> dict[str, MessageState]:
        """States of many copies at once (immutable id -> state); ids without a row are left out."""
        ...

    async def mark_read(self, mailbox: str, immutable_ids: Sequence[str]) -> None:
        """Record that these ``stored`` copies were marked read in the mailbox (state ``read``).

        Idempotent; ids in other states are left alone, so a late confirmation never overrides a newer failure.
        """
        ...

    async def record_failure(
        self,
        mailbox: str,
        immutable_id: str,
        *,
        reason: str,
        internet_message_id: str | None = None,
        received_at: dt.datetime | None = None,
    ) -> MessageState:
        """Record a failed import attempt (state ``failed``, ``attempts`` + 1, ``reason``) for a copy not yet imported.

        The caller then moves the copy to the failure folder and calls :meth:`mark_moved`. A copy that is already
        ``stored`` or ``read`` is returned unchanged: a message in the store is never marked failed afterwards.
        """
        ...

    async def mark_moved(self, mailbox: str, immutable_id: str, *, in_failure_folder: bool) -> MessageState | None:
        """Record where a copy now sits after a move.

        ``in_failure_folder=True``: a ``failed`` copy reached the failure folder (state ``moved``).
        ``in_failure_folder=False``: a copy imported on retry was moved back to its folder (state unchanged).
        Idempotent. Returns the new state (``None`` if the copy has no row).
        """
        ...

    async def pending_mailbox_actions(self, mailbox: str) -> list[MessageState]:
        """Copies whose mailbox side is unfinished, oldest first.

        ``stored`` (mark read), ``read`` but still in the failure folder (move back after a successful retry), and
        ``failed`` (move to the failure folder). A worker finishes these first after taking a mailbox: that is how a
        crash between the store write and the mailbox write is completed without importing anything twice.
        """
        ...

    async def failures_to_retry(self, mailbox: str, received_after: dt.datetime) -> list[MessageState]:
        """Copies in the failure folder (state ``moved``) received after ``received_after``, oldest first."""
        ...

    # reading ---------------------------------------------------------------------------------------------------

    async def list_conversations(
        self, destination: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ConversationRecord]:
        """Conversations (of one destination, or all) with messages, followers and documents, oldest first.

        Paging: at most ``limit`` conversations whose id is greater than ``after_id``; pass the last id of one page
        as ``after_id`` for the next. A conversation is never listed twice. While workers import, one whose
        transaction commits after a later id was read can land behind the pager (possible on PostgreSQL with several
        workers; SQLite hands out ids in commit order): for a complete feed of what gets imported, use the webhook
        sink's outbox.
        """
        ...

    async def list_message_states(self, mailbox: str | None = None) -> list[MessageState]:
        """Every state row (of one mailbox, or all), ordered by mailbox then received time."""
        ...

    async def count_messages(self) -> int:
        """How many message records the store holds (across destinations)."""
        ...
