"""The send store's interface and records: send state, the queue, the recipient ledger and the send-test status.

A send moves through these states, each persisted before the Graph call it leads to, so that a process that dies
anywhere resumes from what the store says::

    queued ──> drafting ──> drafted ──> sending ──> sent
       │           │            │           │
       └───────────┴────────────┴───────────┴─────> failed   (a refusal that retrying cannot fix)

* ``queued``: accepted; waits for the rate governor (``not_before``) and for a worker.
* ``drafting``: a draft is being created on Graph; after a crash or an unanswered request the draft may exist, so
  the next attempt looks for it by its marker category before creating one.
* ``drafted``: the draft exists (``draft_id``, an immutable id); attachments are added until all are there.
* ``sending``: the send was asked for; after a crash the draft is read back: still a draft -> send it again; sent
  (or gone, when it is deleted after submission) -> ``sent``.

:class:`SendStore` is what the sender needs; :mod:`mailplane.sending.sqlite_store` implements it on SQLite (one
machine) and :mod:`mailplane.sending.postgres_store` on PostgreSQL (senders on many machines).
"""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from mailplane.exceptions import StoreError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Collection, Iterable, Mapping

    from mailplane.integration import SendingLimits, StoreSettings
    from mailplane.sending.governor import LedgerEntry
    from mailplane.sending.outgoing import OutgoingMessage

__all__ = [
    "FINAL_STATES",
    "UNFINISHED_STATES",
    "ResponseLogEntry",
    "SendRecord",
    "SendState",
    "SendStore",
    "SendSummary",
    "SendTestStatus",
    "claimable_keys",
    "lease_owner_gone",
    "open_send_store",
]


class SendState(enum.StrEnum):
    """Where a send is; see the module docstring for the transitions."""

    QUEUED = "queued"
    DRAFTING = "drafting"
    DRAFTED = "drafted"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


FINAL_STATES = frozenset({SendState.SENT, SendState.FAILED})
UNFINISHED_STATES = tuple(s for s in SendState if s not in FINAL_STATES)


def lease_owner_gone(owner: str) -> bool:
    """Whether a lease's owner (``host:pid:...``) is a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def claimable_keys(
    rows: Iterable[Mapping[str, Any]], *, owner: str, now: float, limit: int, keys: Collection[str] | None
) -> list[str]:
    """The keys :meth:`SendStore.claim_due` leases, from due rows (``key``, ``lease_owner``, ``lease_until``) in order.

    At most ``limit``, only among ``keys`` when given; a row leased by another owner that is still live is skipped.
    """
    claimable: list[str] = []
    for row in rows:
        if len(claimable) >= limit:
            break
        if keys is not None and row["key"] not in keys:
            continue
        lease_owner, lease_until = row["lease_owner"], row["lease_until"]
        leased_elsewhere = (
            lease_owner is not None
            and lease_owner != owner
            and (lease_until or 0) > now
            and not lease_owner_gone(lease_owner)
        )
        if not leased_elsewhere:
            claimable.append(row["key"])
    return claimable


@dataclass(frozen=True)
class SendRecord:
    """One message to send (one part, when a message was split by recipient count).

    ``key`` is unique in the store. ``group_key`` is the caller's key when the message was split (``part`` of
    ``parts``), else equal to ``key``. Times are seconds since the epoch.
    """

    key: str
    mailbox: str
    message: OutgoingMessage
    fingerprint: str
    marker: str
    state: SendState = SendState.QUEUED
    draft_id: str | None = None
    not_before: float = 0.0
    attempts: int = 0
    last_error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    sent_at: float | None = None
    group_key: str = ""
    part: int = 1
    parts: int = 1

    @property
    def is_final(self) -> bool:
        """Sent or failed: nothing more happens to it."""
        return self.state in FINAL_STATES

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | sqlite3.Row, message: OutgoingMessage) -> SendRecord:
        """Build from a ``send_messages`` row (its columns are named like the fields) and the decoded message."""
        columns = {f.name: row[f.name] for f in fields(cls) if f.name not in {"message", "state"}}
        return cls(message=message, state=SendState(row["state"]), **columns)


@dataclass(frozen=True)
class ResponseLogEntry:
    """One Graph exchange as recorded for the send-test log (already redacted: no tokens, no secrets)."""

    at: float
    method: str
    url: str
    status: int | None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "at": self.at,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "requestHeaders": self.request_headers,
            "responseHeaders": self.response_headers,
            "responseBody": self.response_body,
            **({"error": self.error} if self.error else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResponseLogEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(
            at=float(data["at"]),
            method=str(data["method"]),
            url=str(data["url"]),
            status=data.get("status"),
            request_headers=dict(data.get("requestHeaders") or {}),
            response_headers=dict(data.get("responseHeaders") or {}),
            response_body=str(data.get("responseBody") or ""),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class SendTestStatus:
    """The last ``mailplane send-test`` of a mailbox: when, the outcome, and the redacted API response log."""

    mailbox: str
    at: float
    status: str
    detail: str
    key: str
    recipient: str
    response_log: tuple[ResponseLogEntry, ...] = ()


@dataclass(frozen=True)
class SendSummary:
    """A mailbox's sends at a glance: how many in each state, the last one sent, the latest failures."""

    counts: dict[str, int]
    last_sent_at: float | None
    recent_failures: tuple[SendRecord, ...]


class SendStore(Protocol):
    """What the sender keeps between runs. Every method commits before it returns."""

    def add(self, records: list[SendRecord]) -> list[SendRecord]:
        """Store new sends; a key already present is kept as it is and returned instead (the first one wins).

        Raises :class:`~mailplane.exceptions.IdempotencyConflictError` when a present key has another fingerprint.
        """
        ...

    def get(self, key: str) -> SendRecord | None:
        """The send with ``key``, with its attachments."""
        ...

    def group(self, group_key: str) -> list[SendRecord]:
        """Every part of the send the caller named ``group_key``, in part order."""
        ...

    def claim_due(
        self,
        mailbox: str,
        now: float,
        owner: str,
        lease_seconds: float,
        limit: int,
        *,
        keys: Collection[str] | None = None,
    ) -> list[SendRecord]:
        """Lease up to ``limit`` unfinished sends of ``mailbox`` that are due (``not_before <= now``), oldest first.

        ``keys`` limits the choice to those sends. A send leased by another live owner is skipped; leases of
        owners that died or expired are taken over.
        """
        ...

    def release(self, key: str, owner: str) -> None:
        """Give a lease back."""
        ...

    def update(self, key: str, **changes: Any) -> SendRecord:
        """Change ``state``, ``draft_id``, ``not_before``, ``attempts``, ``last_error`` or ``sent_at``."""
        ...

    def reserve_budget(self, mailbox: str, key: str, recipients: int, now: float, limits: SendingLimits) -> float:
        """Atomically check the governor and, if ``key`` may go now, record it in the ledger and return ``now``.

        Otherwise return the earliest time it may go (nothing recorded). A key already in the ledger (a retry) is
        moved to ``now`` when allowed instead of counting twice.
        """
        ...

    def confirm_sent(self, mailbox: str, key: str, at: float) -> None:
        """Move ``key``'s ledger entry to ``at`` (when the send was known to be accepted), never earlier.

        Exchange counts a message when it is submitted, which is after the reservation; dating the entry at the
        acceptance keeps the ledger's window from reopening a slot before Exchange's does.
        """
        ...

    def ledger(self, mailbox: str, since: float) -> list[LedgerEntry]:
        """Ledger entries of ``mailbox`` after ``since``."""
        ...

    def records(self, mailbox: str | None = None, states: frozenset[SendState] | None = None) -> list[SendRecord]:
        """Sends (without attachment contents), oldest first, optionally filtered."""
        ...

    def summary(self, mailbox: str, *, failures: int = 5) -> SendSummary:
        """Counts by state (every state present), the last send time and the ``failures`` latest failed sends."""
        ...

    def forget_finished(self, mailbox: str, before: float) -> int:
        """Delete sent sends sent before ``before`` and failed ones last changed before it; return how many.

        Their keys are forgotten: the same key may then be sent again.
        """
        ...

    def next_due(self, mailbox: str) -> float | None:
        """When the earliest unfinished send of ``mailbox`` is due, or None when there is none."""
        ...

    def save_send_test(self, status: SendTestStatus) -> None:
        """Replace the mailbox's send-test status."""
        ...

    def send_test(self, mailbox: str) -> SendTestStatus | None:
        """The mailbox's last send-test status."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def open_send_store(settings: StoreSettings, environ: Mapping[str, str] | None = None) -> SendStore:
    """Open the send store the integration config names (``IntegrationConfig.store``).

    SQLite at ``store.path``; PostgreSQL with the connection string in the variable ``store.dsnEnv`` names (read
    from ``environ``, default ``os.environ``). Raises :class:`~mailplane.exceptions.StoreError`.
    """
    if settings.backend == "postgres":
        env = os.environ if environ is None else environ
        try:
            dsn = settings.postgres_dsn(env)
        except KeyError:
            raise StoreError(
                f"opening the PostgreSQL send store: the variable {settings.dsn_env} is not set. Set it to the "
                "database's connection string (postgresql://user@host/db), or use store.backend 'sqlite'"
            ) from None
        from mailplane.sending.postgres_store import PostgresSendStore  # noqa: PLC0415 - psycopg only when used

        return PostgresSendStore(dsn)
    if settings.sqlite_path is None:
        raise StoreError("opening the send store: store.path is not set. Set it in the integration config")
    from mailplane.sending.sqlite_store import SQLiteSendStore  # noqa: PLC0415 - avoid an import cycle

    return SQLiteSendStore(settings.sqlite_path)
