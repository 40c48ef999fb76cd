"""The send store on SQLite (stdlib ``sqlite3``, WAL): one file, safe for several processes on one machine.

Tables are prefixed ``send_`` so the file can be shared with the import store. Every write is its own transaction
(autocommit); the governor's check-and-record runs in ``BEGIN IMMEDIATE`` so two processes cannot both take the last
slot of a mailbox's limits. Leases name their owner as ``host:pid:random``; a lease whose owner process is gone
from this host is taken over at once, others when they expire.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from mailplane.exceptions import IdempotencyConflictError, StoreError
from mailplane.sending.governor import DAY_SECONDS, LedgerEntry, earliest_send_time
from mailplane.sending.outgoing import OutgoingAttachment, OutgoingMessage
from mailplane.sending.store import (
    UNFINISHED_STATES,
    ResponseLogEntry,
    SendRecord,
    SendState,
    SendSummary,
    SendTestStatus,
    claimable_keys,
)
from mailplane.store_schema import SEND_SCHEMA_VERSION, check_schema_version

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from mailplane.integration import SendingLimits

__all__ = ["SQLiteSendStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS send_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS send_messages (
    key TEXT PRIMARY KEY,
    mailbox TEXT NOT NULL,
    group_key TEXT NOT NULL,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    marker TEXT NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL,
    draft_id TEXT,
    not_before REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    sent_at REAL,
    lease_owner TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS send_messages_due ON send_messages (mailbox, state, not_before);
CREATE INDEX IF NOT EXISTS send_messages_group ON send_messages (group_key, part);
CREATE TABLE IF NOT EXISTS send_attachments (
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (key, position)
);
CREATE TABLE IF NOT EXISTS send_ledger (
    mailbox TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL,
    recipients INTEGER NOT NULL,
    PRIMARY KEY (mailbox, key)
);
CREATE INDEX IF NOT EXISTS send_ledger_at ON send_ledger (mailbox, at);
CREATE TABLE IF NOT EXISTS send_tests (
    mailbox TEXT PRIMARY KEY,
    at REAL NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    key TEXT NOT NULL,
    recipient TEXT NOT NULL,
    response_log TEXT NOT NULL
);
"""
_UPDATABLE = frozenset({"state", "draft_id", "not_before", "attempts", "last_error", "sent_at"})
_UNFINISHED = tuple(s.value for s in UNFINISHED_STATES)


class SQLiteSendStore:
    """:class:`~mailplane.sending.store.SendStore` on a SQLite file (created with its folder when missing)."""

    def __init__(self, path: Path | str, *, busy_timeout_seconds: float = 30.0) -> None:
        """Open (and create or migrate) the store at ``path``. Raises :class:`StoreError`."""
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
            self._db.executescript(_SCHEMA)  # idempotent; executescript commits on its own
            with self._transaction():
                row = self._db.execute("SELECT version FROM send_schema").fetchone()
                where = f"the send store {self.path}"
                if check_schema_version(row["version"] if row else None, known=SEND_SCHEMA_VERSION, store=where):
                    self._db.execute("INSERT INTO send_schema (version) VALUES (?)", (SEND_SCHEMA_VERSION,))
        except (sqlite3.Error, OSError) as error:
            raise StoreError(
                f"opening the send store {self.path}: {error}. Check that the folder is writable and the file is a "
                "SQLite database (store.path in the integration config)"
            ) from error

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- sends ---------------------------------------------------------------------------------------------------
    def add(self, records: list[SendRecord]) -> list[SendRecord]:
        """Store new sends; return what the store holds for each key (see SendStore.add)."""
        with self._transaction():
            for record in records:
                existing = self._db.execute(
                    "SELECT fingerprint FROM send_messages WHERE key = ?", (record.key,)
                ).fetchone()
                if existing is not None:
                    if existing["fingerprint"] != record.fingerprint:
                        raise IdempotencyConflictError(
                            f"sending {record.group_key or record.key}: the idempotency key was already used for a "
                            "different message. Use a new key for a new message, or send exactly the same content "
                            "to retry",
                            key=record.key,
                        )
                    continue
                self._db.execute(
                    "INSERT INTO send_messages (key, mailbox, group_key, part, parts, fingerprint, marker, message, "
                    "state, draft_id, not_before, attempts, last_error, created_at, updated_at, sent_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.key,
                        record.mailbox.lower(),
                        record.group_key or record.key,
                        record.part,
                        record.parts,
                        record.fingerprint,
                        record.marker,
                        json.dumps(record.message.to_dict()),
                        record.state.value,
                        record.draft_id,
                        record.not_before,
                        record.attempts,
                        record.last_error,
                        record.created_at,
                        record.updated_at,
                        record.sent_at,
                    ),
                )
                for position, attachment in enumerate(record.message.attachments):
                    self._db.execute(
                        "INSERT INTO send_attachments (key, position, name, content_type, content) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (record.key, position, attachment.name, attachment.content_type, attachment.content),
                    )
        return [self._must_get(record.key) for record in records]

    def _must_get(self, key: str) -> SendRecord:
        record = self.get(key)
        if record is None:
            raise StoreError(f"reading send {key} from {self.path}: it is not there")
        return record

    def _record(self, row: sqlite3.Row, *, with_attachments: bool = True) -> SendRecord:
        attachments: tuple[OutgoingAttachment, ...] = ()
        if with_attachments:
            attachments = tuple(
                OutgoingAttachment(a["name"], bytes(a["content"]), a["content_type"])
                for a in self._db.execute(
                    "SELECT name, content_type, content FROM send_attachments WHERE key = ? ORDER BY position",
                    (row["key"],),
                )
            )
        return SendRecord.from_row(row, OutgoingMessage.from_dict(json.loads(row["message"]), attachments))

    def get(self, key: str) -> SendRecord | None:
        """The send with ``key``, with its attachments."""
        row = self._db.execute("SELECT * FROM send_messages WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._record(row)

    def group(self, group_key: str) -> list[SendRecord]:
        """Every part of the send named ``group_key``."""
        rows = self._db.execute("SELECT * FROM send_messages WHERE group_key = ? ORDER BY part", (group_key,))
        return [self._record(row) for row in rows.fetchall()]

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
        """Lease due, unfinished sends of ``mailbox`` (see SendStore.claim_due)."""
        placeholders = ", ".join("?" for _ in _UNFINISHED)
        with self._transaction():
            rows = self._db.execute(
                f"SELECT key, lease_owner, lease_until FROM send_messages WHERE mailbox = ? "  # noqa: S608 - fixed
                f"AND state IN ({placeholders}) AND not_before <= ? ORDER BY not_before, created_at, part",
                (mailbox.lower(), *_UNFINISHED, now),
            ).fetchall()
            claimed = claimable_keys(rows, owner=owner, now=now, limit=limit, keys=keys)
            for key in claimed:
                self._db.execute(
                    "UPDATE send_messages SET lease_owner = ?, lease_until = ? WHERE key = ?",
                    (owner, now + lease_seconds, key),
                )
        return [self._must_get(key) for key in claimed]

    def release(self, key: str, owner: str) -> None:
        """Give a lease back."""
        self._db.execute(
            "UPDATE send_messages SET lease_owner = NULL, lease_until = NULL WHERE key = ? AND lease_owner = ?",
            (key, owner),
        )

    def update(self, key: str, **changes: Any) -> SendRecord:
        """Change the given fields of a send (see SendStore.update)."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of a send")
        values = {name: (value.value if isinstance(value, SendState) else value) for name, value in changes.items()}
        values["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in values)
        self._db.execute(
            f"UPDATE send_messages SET {assignments} WHERE key = ?",  # noqa: S608 - names from _UPDATABLE
            (*values.values(), key),
        )
        if changes.get("state") == SendState.SENT:
            # The content is no longer needed once the message went out; the metadata stays in the message JSON.
            self._db.execute("DELETE FROM send_attachments WHERE key = ?", (key,))
        return self._must_get(key)

    def records(self, mailbox: str | None = None, states: frozenset[SendState] | None = None) -> list[SendRecord]:
        """Sends without attachment contents (``message.attachments`` is empty), oldest first."""
        query = "SELECT * FROM send_messages"
        clauses, params = [], []
        if mailbox is not None:
            clauses.append("mailbox = ?")
            params.append(mailbox.lower())
        if states is not None:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(s.value for s in states)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        rows = self._db.execute(query + " ORDER BY created_at, part", params).fetchall()
        return [self._record(row, with_attachments=False) for row in rows]

    def summary(self, mailbox: str, *, failures: int = 5) -> SendSummary:
        """Counts by state, the last send time and the latest failures of ``mailbox``."""
        box = mailbox.lower()
        counts = {state.value: 0 for state in SendState}
        for row in self._db.execute(
            "SELECT state, COUNT(*) AS n FROM send_messages WHERE mailbox = ? GROUP BY state", (box,)
        ):
            counts[row["state"]] = row["n"]
        last = self._db.execute("SELECT MAX(sent_at) AS last FROM send_messages WHERE mailbox = ?", (box,)).fetchone()
        rows = self._db.execute(
            "SELECT * FROM send_messages WHERE mailbox = ? AND state = ? ORDER BY updated_at DESC LIMIT ?",
            (box, SendState.FAILED.value, failures),
        ).fetchall()
        return SendSummary(
            counts, last["last"] if last else None, tuple(self._record(r, with_attachments=False) for r in rows)
        )

    def forget_finished(self, mailbox: str, before: float) -> int:
        """Delete finished sends of ``mailbox`` last changed before ``before``."""
        box = mailbox.lower()
        with self._transaction():
            self._db.execute(
                "DELETE FROM send_attachments WHERE key IN (SELECT key FROM send_messages WHERE mailbox = ? "
                "AND state IN (?, ?) AND COALESCE(sent_at, updated_at) < ?)",
                (box, SendState.SENT.value, SendState.FAILED.value, before),
            )
            cursor = self._db.execute(
                "DELETE FROM send_messages WHERE mailbox = ? AND state IN (?, ?) AND COALESCE(sent_at, updated_at) < ?",
                (box, SendState.SENT.value, SendState.FAILED.value, before),
            )
        return cursor.rowcount

    def next_due(self, mailbox: str) -> float | None:
        """When the earliest unfinished send of ``mailbox`` is due."""
        placeholders = ", ".join("?" for _ in _UNFINISHED)
        row = self._db.execute(
            f"SELECT MIN(not_before) AS due FROM send_messages WHERE mailbox = ? "  # noqa: S608 - fixed
            f"AND state IN ({placeholders})",
            (mailbox.lower(), *_UNFINISHED),
        ).fetchone()
        return None if row is None or row["due"] is None else float(row["due"])

    # --- the ledger ----------------------------------------------------------------------------------------------
    def reserve_budget(self, mailbox: str, key: str, recipients: int, now: float, limits: SendingLimits) -> float:
        """Check the governor and record the send in one transaction (see SendStore.reserve_budget)."""
        box = mailbox.lower()
        with self._transaction():
            self._db.execute("DELETE FROM send_ledger WHERE mailbox = ? AND at <= ?", (box, now - DAY_SECONDS))
            entries = [
                LedgerEntry(row["at"], row["recipients"])
                for row in self._db.execute(
                    "SELECT at, recipients FROM send_ledger WHERE mailbox = ? AND key != ?", (box, key)
                )
            ]
            moment = earliest_send_time(entries, recipients, now, limits)
            if moment <= now:
                self._db.execute(
                    "INSERT INTO send_ledger (mailbox, key, at, recipients) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (mailbox, key) DO UPDATE SET at = excluded.at, recipients = excluded.recipients",
                    (box, key, now, recipients),
                )
        return moment

    def confirm_sent(self, mailbox: str, key: str, at: float) -> None:
        """Date ``key``'s ledger entry at ``at`` unless it is already later (see SendStore.confirm_sent)."""
        self._db.execute(
            "UPDATE send_ledger SET at = MAX(at, ?) WHERE mailbox = ? AND key = ?", (at, mailbox.lower(), key)
        )

    def ledger(self, mailbox: str, since: float) -> list[LedgerEntry]:
        """Ledger entries of ``mailbox`` after ``since``, oldest first."""
        rows = self._db.execute(
            "SELECT at, recipients FROM send_ledger WHERE mailbox = ? AND at > ? ORDER BY at", (mailbox.lower(), since)
        )
        return [LedgerEntry(row["at"], row["recipients"]) for row in rows]

    # --- send-test status ----------------------------------------------------------------------------------------
    def save_send_test(self, status: SendTestStatus) -> None:
        """Replace the mailbox's send-test status."""
        self._db.execute(
            "INSERT OR REPLACE INTO send_tests (mailbox, at, status, detail, key, recipient, response_log) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                status.mailbox.lower(),
                status.at,
                status.status,
                status.detail,
                status.key,
                status.recipient,
                json.dumps([entry.to_dict() for entry in status.response_log]),
            ),
        )

    def send_test(self, mailbox: str) -> SendTestStatus | None:
        """The mailbox's last send-test status."""
        row = self._db.execute("SELECT * FROM send_tests WHERE mailbox = ?", (mailbox.lower(),)).fetchone()
        if row is None:
            return None
        return SendTestStatus(
            mailbox=row["mailbox"],
            at=row["at"],
            status=row["status"],
            detail=row["detail"],
            key=row["key"],
            recipient=row["recipient"],
            response_log=tuple(ResponseLogEntry.from_dict(e) for e in json.loads(row["response_log"])),
        )

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        """``with SQLiteSendStore(path) as store``."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close the connection."""
        self.close()
