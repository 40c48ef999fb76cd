"""What the import stores keep for serving: the webhook sink's deliveries and the notification subscriptions.

Every import store (SQLite, PostgreSQL) implements :class:`SinkOutbox` (used by
:mod:`mailplane.importing.webhook_sink`) and :class:`SubscriptionStore` (used by
:mod:`mailplane.importing.subscriptions`) next to :class:`~mailplane.importing.store.ImportStore`. This module is
light on purpose: the stores import it without pulling in HTTP or Graph clients.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from mailplane.importing.store import ImportStore

if TYPE_CHECKING:
    from mailplane.importing.store import ConversationRecord

__all__ = [
    "SINK_SCAN_WINDOW",
    "ServingStore",
    "SinkDelivery",
    "SinkDeliveryStatus",
    "SinkOutbox",
    "SubscriptionRecord",
    "SubscriptionStore",
    "idempotency_key",
]


SINK_SCAN_WINDOW = 10_000
"""How far below the newest enqueued message id a ``recent_only`` scan for undelivered records starts."""


def idempotency_key(destination: str, internet_message_id: str) -> str:
    """The delivery key of one message in one destination: the same on every attempt, from any worker or store."""
    digest = hashlib.sha256(f"{destination.lower()}\n{internet_message_id}".encode()).hexdigest()
    return f"imp_{digest[:32]}"


SinkDeliveryStatus = Literal["pending", "delivered", "failed"]


# --- the outbox (implemented by every import store) --------------------------------------------------------------


@dataclass(frozen=True)
class SinkDelivery:
    """One message record's delivery to the sink: its conversation is posted, keyed by ``idempotency_key``."""

    id: int
    message_id: int
    conversation_id: int
    idempotency_key: str
    status: SinkDeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime
    last_error: str | None = None
    delivered_at: dt.datetime | None = None


class SinkOutbox(Protocol):
    """The delivery queue of the webhook sink, kept in the import store next to the records it delivers."""

    async def enqueue_sink_deliveries(self, *, limit: int = 1000, recent_only: bool = False) -> int:
        """Add a ``pending`` delivery for each message record that has none yet (at most ``limit``); return how many.

        Idempotent, safe from several workers at once. The key is :func:`idempotency_key` of the record's
        destination and Internet message id. ``recent_only`` looks only at records whose id is above the newest
        enqueued one minus :data:`SINK_SCAN_WINDOW` (cheap on a large store; ids committed out of order by concurrent
        workers stay well inside the window); without it every record is checked.
        """
        ...

    async def claim_sink_deliveries(self, holder: str, *, limit: int, lease: dt.timedelta) -> list[SinkDelivery]:
        """Take up to ``limit`` due ``pending`` deliveries for ``holder`` until now + ``lease``, oldest first.

        Due: ``next_attempt_at`` reached and not claimed by a live holder. Two holders never get the same delivery
        while the lease runs.
        """
        ...

    async def finish_sink_delivery(
        self,
        delivery_id: int,
        holder: str,
        *,
        delivered: bool,
        error: str | None = None,
        retry_at: dt.datetime | None = None,
    ) -> SinkDelivery | None:
        """Record an attempt (``attempts`` + 1) and release the claim.

        ``delivered``; else ``pending`` again at ``retry_at``; else ``failed`` with ``error``. Ignored (returns
        ``None``) when ``holder`` lost the claim.
        """
        ...

    async def retry_failed_sink_deliveries(self) -> int:
        """Put every ``failed`` delivery back in the queue (due now, attempts reset); return how many."""
        ...

    async def list_sink_deliveries(self, status: SinkDeliveryStatus | None = None) -> list[SinkDelivery]:
        """Deliveries (of one status, or all), oldest first."""
        ...

    async def get_conversation(self, conversation_id: int) -> ConversationRecord | None:
        """One conversation with its messages, followers and documents, or ``None``."""
        ...


@dataclass(frozen=True)
class SubscriptionRecord:
    """A mailbox's subscription as last created or renewed (never the clientState: that stays in the environment)."""

    mailbox: str
    subscription_id: str
    resource: str
    notification_url: str
    expires_at: dt.datetime
    updated_at: dt.datetime | None = None


class SubscriptionStore(Protocol):
    """Where subscription ids and expiry times are kept (every import store implements it)."""

    async def save_subscription(self, record: SubscriptionRecord) -> None:
        """Insert or replace the subscription of ``record.mailbox``."""
        ...

    async def get_subscription(self, mailbox: str) -> SubscriptionRecord | None:
        """The subscription of ``mailbox``, or ``None``."""
        ...

    async def find_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        """The record with ``subscription_id``, or ``None``."""
        ...

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        """Every record, by mailbox."""
        ...

    async def delete_subscription(self, mailbox: str, subscription_id: str) -> None:
        """Forget the subscription if it is still the mailbox's current one."""
        ...


class ServingStore(ImportStore, SinkOutbox, SubscriptionStore, Protocol):
    """An import store that also keeps the sink's deliveries and the subscriptions (every backend is one)."""
