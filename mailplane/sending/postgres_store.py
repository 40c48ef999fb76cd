"""The send store on PostgreSQL: senders on many machines share one queue, one ledger, one send-test status.

psycopg 3, one connection per store object, every method one transaction (so the sender's calls stay short and
synchronous, as with SQLite). Where SQLite relies on ``BEGIN IMMEDIATE`` (one writer at a time), this store locks
what it needs:

* ``reserve_budget`` takes a transaction-scoped advisory lock on the mailbox before it reads the ledger, so two
  workers on two machines can never both take the last slot of a mailbox's limits;
* ``claim_due`` selects with ``FOR UPDATE SKIP LOCKED`` and writes the lease in the same transaction;
* ``add`` inserts with ``ON CONFLICT DO NOTHING`` and then compares fingerprints, so the first send of a key wins.

Leases of processes gone from the same host are taken over at once; others when they expire (``lease_seconds``).
Tables live in ``schema`` (default: the connection's search path, normally ``public``), created idempotently under an
advisory lock; they are prefixed ``send_`` and can share a schema with the import store. Times are seconds since
the epoch (``double precision``) from the caller's clock, as in the SQLite store.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

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

__all__ = ["SCHEMA", "PostgresSendStore"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCHEMA_LOCK = 0x6D61696C73656E64  # "mailsend": serializes schema creation across workers
_UPDATABLE = frozenset({"state", "draft_id", "not_before", "attempts", "last_error", "sent_at"})
_UNFINISHED = [s.value for s in UNFINISHED_STATES]

SCHEMA = """
CREATE TABLE IF NOT EXISTS send_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS send_messages (
    key          text PRIMARY KEY,
    mailbox      text NOT NULL,
    group_key    text NOT NULL,
    part         integer NOT NULL,
    parts        integer NOT NULL,
    fingerprint  text NOT NULL,
    marker       text NOT NULL,
    message      jsonb NOT NULL,
    state        text NOT NULL,
    draft_id     text,
    not_before   double precision NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    created_at   double precision NOT NULL,
    updated_at   double precision NOT NULL,
    sent_at      double precision,
    lease_owner  text,
    lease_until  double precision
);
CREATE INDEX IF NOT EXISTS send_messages_due ON send_messages (mailbox, state, not_before);
CREATE INDEX IF NOT EXISTS send_messages_group ON send_messages (group_key, part);
CREATE TABLE IF NOT EXISTS send_attachments (
    key           text NOT NULL,
    position      integer NOT NULL,
    name          text NOT NULL,
    content_type  text NOT NULL,
    content       bytea NOT NULL,
    PRIMARY KEY (key, position)
);
CREATE TABLE IF NOT EXISTS send_ledger (
    mailbox     text NOT NULL,
    key         text NOT NULL,
    at          double precision NOT NULL,
    recipients  integer NOT NULL,
    PRIMARY KEY (mailbox, key)
);
CREATE INDEX IF NOT EXISTS send_ledger_at ON send_ledger (mailbox, at);
CREATE TABLE IF NOT EXISTS send_tests (
    mailbox       text PRIMARY KEY,
    at            double precision NOT NULL,
    status        text NOT NULL,
    detail        text NOT NULL,
    key           text NOT NULL,
    recipient     text NOT NULL,
    response_log  jsonb NOT NULL
);
"""


class PostgresSendStore:
    """:class:`~mailplane.sending.store.SendStore` on PostgreSQL (``dsn``: a libpq connection string)."""

    def __init__(self, dsn: str, *, schema: str | None = None, connect_timeout: int = 10) -> None:
        """Connect and create the tables when missing. Raises :class:`StoreError` (the DSN is never shown).

        ``schema`` None uses the connection's search path (a DSN can set it: ``options=-csearch_path=mail``).
        """
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema {schema!r} must be a lower-case SQL identifier")
        self.schema = schema
        try:
            self._db = psycopg.connect(dsn, row_factory=dict_row, connect_timeout=connect_timeout, autocommit=True)
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                if schema is not None:
                    self._db.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                    self._db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                self._db.execute(SCHEMA)
                row = self._db.execute("SELECT version FROM send_schema").fetchone()
                where = f"the PostgreSQL send store (schema {schema or 'on the search path'})"
                if check_schema_version(row["version"] if row else None, known=SEND_SCHEMA_VERSION, store=where):
                    self._db.execute("INSERT INTO send_schema (version) VALUES (%s)", (SEND_SCHEMA_VERSION,))
        except StoreError:
            self._db.close()
            raise
        except psycopg.Error as error:
            raise StoreError(
                f"opening the PostgreSQL send store: {type(error).__name__}: "
                f"{_first_line(error)}. Check the server, the connection string in the variable named by "
                "store.dsnEnv, and the role's rights to create tables"
            ) from error

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._db.transaction():
                yield self._db
        except psycopg.OperationalError as error:
            raise StoreError(
                f"writing the PostgreSQL send store: {_first_line(error)}. The send stays where it was; run "
                "'mailplane send-queued' again when the database is reachable"
            ) from error

    # --- sends ---------------------------------------------------------------------------------------------------
    def add(self, records: list[SendRecord]) -> list[SendRecord]:
        """Store new sends; return what the store holds for each key (see SendStore.add)."""
        with self._transaction() as db:
            for record in records:
                inserted = db.execute(
                    "INSERT INTO send_messages (key, mailbox, group_key, part, parts, fingerprint, marker, message, "
                    "state, draft_id, not_before, attempts, last_error, created_at, updated_at, sent_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (key) DO NOTHING RETURNING key",
                    (
                        record.key,
                        record.mailbox.lower(),
                        record.group_key or record.key,
                        record.part,
                        record.parts,
                        record.fingerprint,
                        record.marker,
                        Jsonb(record.message.to_dict()),
                        record.state.value,
                        record.draft_id,
                        record.not_before,
                        record.attempts,
                        record.last_error,
                        record.created_at,
                        record.updated_at,
                        record.sent_at,
                    ),
                ).fetchone()
                if inserted is None:
                    existing = db.execute(
                        "SELECT fingerprint FROM send_messages WHERE key = %s", (record.key,)
                    ).fetchone()
                    if existing is not None and existing["fingerprint"] != record.fingerprint:
                        raise IdempotencyConflictError(
                            f"sending {record.group_key or record.key}: the idempotency key was already used for a "
                            "different message. Use a new key for a new message, or send exactly the same content "
                            "to retry",
                            key=record.key,
                        )
                    continue
                for position, attachment in enumerate(record.message.attachments):
                    db.execute(
                        "INSERT INTO send_attachments (key, position, name, content_type, content) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (record.key, position, attachment.name, attachment.content_type, attachment.content),
                    )
        return [self._must_get(record.key) for record in records]

    def _must_get(self, key: str) -> SendRecord:
        record = self.get(key)
        if record is None:
            raise StoreError(f"reading send {key} from the PostgreSQL send store: it is not there")
        return record

    def _record(self, db: psycopg.Connection[dict[str, Any]], row: dict[str, Any], *, attachments: bool) -> SendRecord:
        files: tuple[OutgoingAttachment, ...] = ()
        if attachments:
            files = tuple(
                OutgoingAttachment(a["name"], bytes(a["content"]), a["content_type"])
                for a in db.execute(
                    "SELECT name, content_type, content FROM send_attachments WHERE key = %s ORDER BY position",
                    (row["key"],),
                ).fetchall()
            )
        return SendRecord.from_row(row, OutgoingMessage.from_dict(row["message"], files))

    def get(self, key: str) -> SendRecord | None:
        """The send with ``key``, with its attachments."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM send_messages WHERE key = %s", (key,)).fetchone()
            return None if row is None else self._record(db, row, attachments=True)

    def group(self, group_key: str) -> list[SendRecord]:
        """Every part of the send named ``group_key``."""
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM send_messages WHERE group_key = %s ORDER BY part", (group_key,)).fetchall()
            return [self._record(db, row, attachments=True) for row in rows]

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
        with self._transaction() as db:
            rows = db.execute(
                "SELECT key, lease_owner, lease_until FROM send_messages WHERE mailbox = %s AND state = ANY(%s) "
                "AND not_before <= %s ORDER BY not_before, created_at, part FOR UPDATE SKIP LOCKED",
                (mailbox.lower(), _UNFINISHED, now),
            ).fetchall()
            claimed = claimable_keys(rows, owner=owner, now=now, limit=limit, keys=keys)
            for key in claimed:
                db.execute(
                    "UPDATE send_messages SET lease_owner = %s, lease_until = %s WHERE key = %s",
                    (owner, now + lease_seconds, key),
                )
        return [self._must_get(key) for key in claimed]

    def release(self, key: str, owner: str) -> None:
        """Give a lease back."""
        with self._transaction() as db:
            db.execute(
                "UPDATE send_messages SET lease_owner = NULL, lease_until = NULL WHERE key = %s AND lease_owner = %s",
                (key, owner),
            )

    def update(self, key: str, **changes: Any) -> SendRecord:
        """Change the given fields of a send (see SendStore.update)."""
        import time  # noqa: PLC0415 - only for the update stamp

        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {', '.join(sorted(unknown))} of a send")
        values = {name: (value.value if isinstance(value, SendState) else value) for name, value in changes.items()}
        values["updated_at"] = time.time()
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in values)
        with self._transaction() as db:
            db.execute(
                sql.SQL("UPDATE send_messages SET {} WHERE key = %s").format(assignments), (*values.values(), key)
            )
            if changes.get("state") == SendState.SENT:
                db.execute("DELETE FROM send_attachments WHERE key = %s", (key,))
        return self._must_get(key)

    def records(self, mailbox: str | None = None, states: frozenset[SendState] | None = None) -> list[SendRecord]:
        """Sends without attachment contents (``message.attachments`` is empty), oldest first."""
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if mailbox is not None:
            clauses.append(sql.SQL("mailbox = %s"))
            params.append(mailbox.lower())
        if states is not None:
            clauses.append(sql.SQL("state = ANY(%s)"))
            params.append([s.value for s in states])
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")
        query = sql.SQL("SELECT * FROM send_messages{} ORDER BY created_at, part").format(where)
        with self._transaction() as db:
            rows = db.execute(query, params).fetchall()
            return [self._record(db, row, attachments=False) for row in rows]

    def summary(self, mailbox: str, *, failures: int = 5) -> SendSummary:
        """Counts by state, the last send time and the latest failures of ``mailbox``."""
        box = mailbox.lower()
        counts = {state.value: 0 for state in SendState}
        with self._transaction() as db:
            for row in db.execute(
                "SELECT state, COUNT(*) AS n FROM send_messages WHERE mailbox = %s GROUP BY state", (box,)
            ).fetchall():
                counts[row["state"]] = row["n"]
            last = db.execute("SELECT MAX(sent_at) AS last FROM send_messages WHERE mailbox = %s", (box,)).fetchone()
            rows = db.execute(
                "SELECT * FROM send_messages WHERE mailbox = %s AND state = %s ORDER BY updated_at DESC LIMIT %s",
                (box, SendState.FAILED.value, failures),
            ).fetchall()
            recent = tuple(self._record(db, r, attachments=False) for r in rows)
        return SendSummary(counts, last["last"] if last else None, recent)

    def forget_finished(self, mailbox: str, before: float) -> int:
        """Delete finished sends of ``mailbox`` last changed before ``before``."""
        finished = [SendState.SENT.value, SendState.FAILED.value]
        with self._transaction() as db:
            db.execute(
                "DELETE FROM send_attachments WHERE key IN (SELECT key FROM send_messages WHERE mailbox = %s "
                "AND state = ANY(%s) AND COALESCE(sent_at, updated_at) < %s)",
                (mailbox.lower(), finished, before),
            )
            cursor = db.execute(
                "DELETE FROM send_messages WHERE mailbox = %s AND state = ANY(%s) "
                "AND COALESCE(sent_at, updated_at) < %s",
                (mailbox.lower(), finished, before),
            )
            return cursor.rowcount

    def next_due(self, mailbox: str) -> float | None:
        """When the earliest unfinished send of ``mailbox`` is due."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT MIN(not_before) AS due FROM send_messages WHERE mailbox = %s AND state = ANY(%s)",
                (mailbox.lower(), _UNFINISHED),
            ).fetchone()
        return None if row is None or row["due"] is None else float(row["due"])

    # --- the ledger ----------------------------------------------------------------------------------------------
    def reserve_budget(self, mailbox: str, key: str, recipients: int, now: float, limits: SendingLimits) -> float:
        """Check the governor and record the send under the mailbox's advisory lock (see SendStore)."""
        box = mailbox.lower()
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"mailplane-send:{box}",))
            db.execute("DELETE FROM send_ledger WHERE mailbox = %s AND at <= %s", (box, now - DAY_SECONDS))
            entries = [
                LedgerEntry(row["at"], row["recipients"])
                for row in db.execute(
                    "SELECT at, recipients FROM send_ledger WHERE mailbox = %s AND key <> %s", (box, key)
                ).fetchall()
            ]
            moment = earliest_send_time(entries, recipients, now, limits)
            if moment <= now:
                db.execute(
                    "INSERT INTO send_ledger (mailbox, key, at, recipients) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (mailbox, key) DO UPDATE SET at = excluded.at, recipients = excluded.recipients",
                    (box, key, now, recipients),
                )
        return moment

    def confirm_sent(self, mailbox: str, key: str, at: float) -> None:
        """Date ``key``'s ledger entry at ``at`` unless it is already later (see SendStore.confirm_sent)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE send_ledger SET at = GREATEST(at, %s) WHERE mailbox = %s AND key = %s",
                (at, mailbox.lower(), key),
            )

    def ledger(self, mailbox: str, since: float) -> list[LedgerEntry]:
        """Ledger entries of ``mailbox`` after ``since``, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT at, recipients FROM send_ledger WHERE mailbox = %s AND at > %s ORDER BY at",
                (mailbox.lower(), since),
            ).fetchall()
        return [LedgerEntry(row["at"], row["recipients"]) for row in rows]

    # --- send-test status ----------------------------------------------------------------------------------------
    def save_send_test(self, status: SendTestStatus) -> None:
        """Replace the mailbox's send-test status."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO send_tests (mailbox, at, status, detail, key, recipient, response_log) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (mailbox) DO UPDATE SET at = excluded.at, "
                "status = excluded.status, detail = excluded.detail, key = excluded.key, "
                "recipient = excluded.recipient, response_log = excluded.response_log",
                (
                    status.mailbox.lower(),
                    status.at,
                    status.status,
                    status.detail,
                    status.key,
                    status.recipient,
                    Jsonb([entry.to_dict() for entry in status.response_log]),
                ),
            )

    def send_test(self, mailbox: str) -> SendTestStatus | None:
        """The mailbox's last send-test status."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM send_tests WHERE mailbox = %s", (mailbox.lower(),)).fetchone()
        if row is None:
            return None
        return SendTestStatus(
            mailbox=row["mailbox"],
            at=row["at"],
            status=row["status"],
            detail=row["detail"],
            key=row["key"],
            recipient=row["recipient"],
            response_log=tuple(ResponseLogEntry.from_dict(e) for e in row["response_log"]),
        )

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def __enter__(self) -> Self:
        """``with PostgresSendStore(dsn) as store``."""
        return self

    def __exit__(self, *_: object) -> None:
        """Close the connection."""
        self.close()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
