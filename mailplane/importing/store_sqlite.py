"""The SQLite import store: the embedded default, for workers on one machine.

Standard-library ``sqlite3`` in WAL mode (readers never block the writer), ``synchronous=NORMAL`` (a committed
transaction survives a process crash; only an OS crash can lose the last commits, which the mailbox side then
re-imports because the message is still unread), and a busy timeout so several worker processes can share the file.
Every write is one ``BEGIN IMMEDIATE`` transaction. Calls run on one thread per store object, so the event loop never
blocks on the disk.

Times are stored as UNIX seconds (REAL); JSON columns hold mappings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Self, TypeVar

from mailplane.exceptions import StoreError
from mailplane.importing.serving_state import (
    SINK_SCAN_WINDOW,
    SinkDelivery,
    SinkDeliveryStatus,
    SubscriptionRecord,
    idempotency_key,
)
from mailplane.importing.store import (
    ConversationRecord,
    DestinationInput,
    DocumentRecord,
    FollowerRecord,
    ImportedMessage,
    ImportOutcome,
    Lease,
    LeaseLostError,
    MessageRecord,
    MessageState,
    ThreadKeys,
    check_page_limit,
)
from mailplane.store_schema import IMPORT_SCHEMA_VERSION, check_schema_version

__all__ = ["SCHEMA", "SqliteImportStore"]

_T = TypeVar("_T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS import_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    mailbox     TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS delta_links (
    mailbox     TEXT NOT NULL,
    folder      TEXT NOT NULL,
    link        TEXT NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
CREATE TABLE IF NOT EXISTS conversations (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    destination            TEXT NOT NULL,
    subject                TEXT NOT NULL,
    parent_type            TEXT NOT NULL,
    parent_fields          TEXT NOT NULL,
    graph_conversation_id  TEXT,
    first_received_at      REAL NOT NULL,
    created_at             REAL NOT NULL,
    updated_at             REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS thread_keys (
    destination      TEXT NOT NULL,
    thread_key       TEXT NOT NULL,
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    PRIMARY KEY (destination, thread_key)
);
CREATE TABLE IF NOT EXISTS messages (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id      INTEGER NOT NULL REFERENCES conversations(id),
    destination          TEXT NOT NULL,
    mailbox              TEXT NOT NULL,
    immutable_id         TEXT NOT NULL,
    internet_message_id  TEXT NOT NULL,
    subject              TEXT NOT NULL,
    received_at          REAL NOT NULL,
    attributes           TEXT NOT NULL,
    UNIQUE (destination, internet_message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_internet_id ON messages(internet_message_id);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id);
CREATE TABLE IF NOT EXISTS followers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    address          TEXT NOT NULL,
    name             TEXT,
    participation    TEXT NOT NULL,
    parent_type      TEXT,
    parent_id        TEXT,
    UNIQUE (conversation_id, address)
);
CREATE TABLE IF NOT EXISTS message_followers (
    message_id   INTEGER NOT NULL REFERENCES messages(id),
    follower_id  INTEGER NOT NULL REFERENCES followers(id),
    header       TEXT NOT NULL,
    PRIMARY KEY (message_id, follower_id, header)
);
CREATE TABLE IF NOT EXISTS documents (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       INTEGER NOT NULL REFERENCES messages(id),
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    kind             TEXT NOT NULL,
    name             TEXT NOT NULL,
    content_type     TEXT,
    size             INTEGER NOT NULL,
    sha256           TEXT,
    content_ref      TEXT,
    content_id       TEXT,
    skipped          INTEGER NOT NULL,
    skip_reason      TEXT
);
CREATE INDEX IF NOT EXISTS documents_by_message ON documents(message_id);
CREATE TABLE IF NOT EXISTS message_states (
    mailbox              TEXT NOT NULL,
    immutable_id         TEXT NOT NULL,
    internet_message_id  TEXT,
    state                TEXT NOT NULL CHECK (state IN ('stored', 'read', 'failed', 'moved')),
    reason               TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    in_failure_folder    INTEGER NOT NULL DEFAULT 0,
    received_at          REAL,
    updated_at           REAL NOT NULL,
    PRIMARY KEY (mailbox, immutable_id)
);
CREATE INDEX IF NOT EXISTS message_states_by_state ON message_states(mailbox, state, received_at);
CREATE TABLE IF NOT EXISTS sink_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id       INTEGER NOT NULL UNIQUE REFERENCES messages(id),
    conversation_id  INTEGER NOT NULL REFERENCES conversations(id),
    idempotency_key  TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    claimed_by       TEXT,
    claimed_until    REAL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    delivered_at     REAL
);
CREATE INDEX IF NOT EXISTS sink_deliveries_due ON sink_deliveries(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS subscriptions (
    mailbox           TEXT PRIMARY KEY,
    subscription_id   TEXT NOT NULL UNIQUE,
    resource          TEXT NOT NULL,
    notification_url  TEXT NOT NULL,
    expires_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);
"""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _to_seconds(value: dt.datetime) -> float:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the import store takes timezone-aware times")
    return value.timestamp()


def _from_seconds(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _dumps(value: object) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


class SqliteImportStore:
    """:class:`~mailplane.importing.store.ImportStore` on a SQLite file (see the module docstring).

    ``path`` is the database file (its folder is created). ``clock`` returns the current UTC time (tests pass a fake
    one to expire leases without waiting). ``busy_timeout`` is how long a write waits for another process's write.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        busy_timeout: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        """Nothing is opened until :meth:`open`."""
        self._path = Path(path)
        self._clock = clock or _utc_now
        self._busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._held: dict[str, str] = {}  # mailbox -> holder whose lease this object took (fences its writes)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def __repr__(self) -> str:
        """The class and the file."""
        return f"SqliteImportStore({str(self._path)!r})"

    # --- plumbing ----------------------------------------------------------------------------------------------

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None or self._connection is None:
            raise StoreError(f"using the import store {self._path}: it is not open. Call 'await store.open()' first.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, self._connection, *args))

    @contextmanager
    def _write(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(
                f"writing to the import store {self._path}: {exc}. Check that the file is writable and not locked "
                "by a stuck process."
            ) from exc
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        else:
            connection.commit()

    def _now(self) -> float:
        return _to_seconds(self._clock())

    async def open(self) -> None:
        """Open the file (creating it and its folder) and create the schema if missing."""
        if self._connection is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailplane-sqlite")
        loop = asyncio.get_running_loop()
        try:
            self._connection = await loop.run_in_executor(self._executor, self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self._path,
                timeout=self._busy_timeout.total_seconds(),
                isolation_level=None,
                check_same_thread=False,
            )
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA busy_timeout={int(self._busy_timeout.total_seconds() * 1000)}")
            # One transaction: workers opening the same new file at once create the schema and stamp it once.
            connection.executescript("BEGIN IMMEDIATE;" + SCHEMA)
            try:
                row = connection.execute("SELECT version FROM import_schema").fetchone()
                if check_schema_version(
                    row["version"] if row else None, known=IMPORT_SCHEMA_VERSION, store=f"the import store {self._path}"
                ):
                    connection.execute("INSERT INTO import_schema (version) VALUES (?)", (IMPORT_SCHEMA_VERSION,))
            except BaseException:
                connection.rollback()
                connection.close()
                raise
            connection.commit()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"opening the import store {self._path}: {exc}. Check the path in store.path and its permissions."
            ) from exc
        return connection

    async def close(self) -> None:
        """Close the connection and its thread."""
        connection, executor = self._connection, self._executor
        self._connection = None
        self._executor = None
        if executor is not None and connection is not None:
            await asyncio.get_running_loop().run_in_executor(executor, connection.close)
        if executor is not None:
            executor.shutdown(wait=True)

    async def __aenter__(self) -> Self:
        """Open."""
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        await self.close()

    # --- leases ------------------------------------------------------------------------------------------------

    async def acquire_lease(self, mailbox: str, holder: str, ttl: dt.timedelta) -> Lease | None:
        """See :meth:`ImportStore.acquire_lease`."""
        lease = await self._run(self._acquire_lease, mailbox.lower(), holder, ttl, False)  # noqa: FBT003
        return self._note_lease(mailbox.lower(), holder, lease)

    async def renew_lease(self, mailbox: str, holder: str, ttl: dt.timedelta) -> Lease | None:
        """See :meth:`ImportStore.renew_lease`."""
        lease = await self._run(self._acquire_lease, mailbox.lower(), holder, ttl, True)  # noqa: FBT003
        return self._note_lease(mailbox.lower(), holder, lease)

    def _note_lease(self, mailbox: str, holder: str, lease: Lease | None) -> Lease | None:
        # A lost (or released) lease keeps its fence: tasks of this worker still running on the mailbox must not
        # write once another worker may hold it. Taking the lease again lifts it.
        if lease is not None:
            self._held[mailbox] = holder
        return lease

    def _check_fence(self, connection: sqlite3.Connection, mailbox: str) -> None:
        """Raise LeaseLostError when this object took ``mailbox``'s lease and another worker holds it now.

        Called inside a BEGIN IMMEDIATE transaction: no lease can change hands until it commits.
        """
        holder = self._held.get(mailbox)
        if holder is None:
            return
        row = connection.execute("SELECT holder FROM leases WHERE mailbox = ?", (mailbox,)).fetchone()
        if row is None or row["holder"] != holder:
            current = "nobody" if row is None else row["holder"]
            raise LeaseLostError(
                f"importing {mailbox}: this worker's lease ran out and {current} holds the mailbox now. "
                "This worker stops working on it; the new holder carries on"
            )

    def _acquire_lease(
        self, connection: sqlite3.Connection, mailbox: str, holder: str, ttl: dt.timedelta, renew_only: bool
    ) -> Lease | None:
        now = self._now()
        expires = now + ttl.total_seconds()
        with self._write(connection):
            row = connection.execute("SELECT holder, expires_at FROM leases WHERE mailbox = ?", (mailbox,)).fetchone()
            if row is None:
                if renew_only:
                    return None
                connection.execute(
                    "INSERT INTO leases (mailbox, holder, expires_at) VALUES (?, ?, ?)", (mailbox, holder, expires)
                )
            elif row["holder"] == holder or (not renew_only and row["expires_at"] <= now):
                connection.execute(
                    "UPDATE leases SET holder = ?, expires_at = ? WHERE mailbox = ?", (holder, expires, mailbox)
                )
            else:
                return None
        return Lease(mailbox, holder, _from_seconds(expires))

    async def release_lease(self, mailbox: str, holder: str) -> None:
        """See :meth:`ImportStore.release_lease`."""
        await self._run(self._release_lease, mailbox.lower(), holder)

    def _release_lease(self, connection: sqlite3.Connection, mailbox: str, holder: str) -> None:
        with self._write(connection):
            connection.execute("DELETE FROM leases WHERE mailbox = ? AND holder = ?", (mailbox, holder))

    async def get_lease(self, mailbox: str) -> Lease | None:
        """See :meth:`ImportStore.get_lease`."""
        return await self._run(self._get_lease, mailbox.lower())

    def _get_lease(self, connection: sqlite3.Connection, mailbox: str) -> Lease | None:
        row = connection.execute("SELECT holder, expires_at FROM leases WHERE mailbox = ?", (mailbox,)).fetchone()
        if row is None or row["expires_at"] <= self._now():
            return None
        return Lease(mailbox, row["holder"], _from_seconds(row["expires_at"]))

    # --- delta links -------------------------------------------------------------------------------------------

    async def get_delta_link(self, mailbox: str, folder: str) -> str | None:
        """See :meth:`ImportStore.get_delta_link`."""
        return await self._run(self._get_delta_link, mailbox.lower(), folder.lower())

    def _get_delta_link(self, connection: sqlite3.Connection, mailbox: str, folder: str) -> str | None:
        row = connection.execute(
            "SELECT link FROM delta_links WHERE mailbox = ? AND folder = ?", (mailbox, folder)
        ).fetchone()
        return None if row is None else str(row["link"])

    async def set_delta_link(self, mailbox: str, folder: str, link: str | None) -> None:
        """See :meth:`ImportStore.set_delta_link`."""
        await self._run(self._set_delta_link, mailbox.lower(), folder.lower(), link)

    def _set_delta_link(self, connection: sqlite3.Connection, mailbox: str, folder: str, link: str | None) -> None:
        with self._write(connection):
            if link is None:
                connection.execute("DELETE FROM delta_links WHERE mailbox = ? AND folder = ?", (mailbox, folder))
            else:
                connection.execute(
                    "INSERT INTO delta_links (mailbox, folder, link, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (mailbox, folder) DO UPDATE SET link = excluded.link, "
                    "updated_at = excluded.updated_at",
                    (mailbox, folder, link, self._now()),
                )

    # --- importing ---------------------------------------------------------------------------------------------

    async def record_import(self, message: ImportedMessage) -> ImportOutcome:
        """See :meth:`ImportStore.record_import`."""
        if not message.destinations:
            raise ValueError(f"message {message.immutable_id} has no destination")
        return await self._run(self._record_import, message)

    def _record_import(self, connection: sqlite3.Connection, message: ImportedMessage) -> ImportOutcome:
        mailbox = message.mailbox.lower()
        now = self._now()
        with self._write(connection):
            self._check_fence(connection, mailbox)
            existing = self._state_row(connection, mailbox, message.immutable_id)
            if existing is not None and existing.state in ("stored", "read"):
                return ImportOutcome(existing, (), duplicate=True)
            written: list[tuple[str, int, bool]] = []
            held_anywhere = message.exclusive and (
                connection.execute(
                    "SELECT 1 FROM messages WHERE internet_message_id = ? LIMIT 1", (message.internet_message_id,)
                ).fetchone()
                is not None
            )
            if not held_anywhere:
                for destination in message.destinations:
                    result = self._write_destination(connection, message, destination, now)
                    if result is not None:
                        written.append(result)
            in_failure_folder = bool(existing.in_failure_folder) if existing is not None else False
            connection.execute(
                "INSERT INTO message_states (mailbox, immutable_id, internet_message_id, state, reason, attempts, "
                "in_failure_folder, received_at, updated_at) VALUES (?, ?, ?, 'stored', NULL, ?, ?, ?, ?) "
                "ON CONFLICT (mailbox, immutable_id) DO UPDATE SET state = 'stored', "
                "internet_message_id = excluded.internet_message_id, updated_at = excluded.updated_at",
                (
                    mailbox,
                    message.immutable_id,
                    message.internet_message_id,
                    existing.attempts if existing is not None else 0,
                    int(in_failure_folder),
                    _to_seconds(message.received_at),
                    now,
                ),
            )
            state = self._state_row(connection, mailbox, message.immutable_id)
        if state is None:  # pragma: no cover - written just above in the same transaction
            raise StoreError(f"recording message {message.immutable_id}: the state row vanished")
        return ImportOutcome(state, tuple(written), duplicate=not written)

    def _write_destination(
        self, connection: sqlite3.Connection, message: ImportedMessage, destination: DestinationInput, now: float
    ) -> tuple[str, int, bool] | None:
        address = destination.address.lower()
        if connection.execute(
            "SELECT 1 FROM messages WHERE destination = ? AND internet_message_id = ?",
            (address, message.internet_message_id),
        ).fetchone():
            return None
        mailbox = message.mailbox.lower()
        conversation_id = self._find_conversation(connection, address, mailbox, message.thread)
        created = conversation_id is None
        if conversation_id is None:
            cursor = connection.execute(
                "INSERT INTO conversations (destination, subject, parent_type, parent_fields, graph_conversation_id, "
                "first_received_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    address,
                    message.subject,
                    destination.parent_type,
                    _dumps(dict(destination.parent_fields)),
                    message.thread.graph_conversation_id,
                    _to_seconds(message.received_at),
                    now,
                    now,
                ),
            )
            conversation_id = int(cursor.lastrowid or 0)
        else:
            row = connection.execute(
                "SELECT subject, parent_fields, first_received_at FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            fields = json.loads(row["parent_fields"])
            received = _to_seconds(message.received_at)
            earlier = received < row["first_received_at"]
            for name, value in destination.parent_fields.items():
                if value is not None and (earlier or fields.get(name) is None):
                    fields[name] = value
            connection.execute(
                "UPDATE conversations SET parent_fields = ?, subject = ?, first_received_at = ?, updated_at = ? "
                "WHERE id = ?",
                (
                    _dumps(fields),
                    message.subject if earlier else row["subject"],
                    min(received, row["first_received_at"]),
                    now,
                    conversation_id,
                ),
            )
        keys = [f"msgid:{message.internet_message_id}"]
        if message.thread.graph_conversation_id:
            keys.append(f"graph:{mailbox}:{message.thread.graph_conversation_id}")
        connection.executemany(
            "INSERT OR IGNORE INTO thread_keys (destination, thread_key, conversation_id) VALUES (?, ?, ?)",
            [(address, key, conversation_id) for key in keys],
        )
        cursor = connection.execute(
            "INSERT INTO messages (conversation_id, destination, mailbox, immutable_id, internet_message_id, subject, "
            "received_at, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                address,
                mailbox,
                message.immutable_id,
                message.internet_message_id,
                message.subject,
                _to_seconds(message.received_at),
                _dumps(dict(message.attributes)),
            ),
        )
        message_id = int(cursor.lastrowid or 0)
        for follower in message.followers_for(destination):
            follower_address = follower.address.lower()
            connection.execute(
                "INSERT OR IGNORE INTO followers (conversation_id, address, name, participation, parent_type, "
                "parent_id) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    follower_address,
                    follower.name,
                    follower.participation,
                    follower.parent_type,
                    follower.parent_id,
                ),
            )
            follower_id = connection.execute(
                "SELECT id FROM followers WHERE conversation_id = ? AND address = ?",
                (conversation_id, follower_address),
            ).fetchone()["id"]
            connection.executemany(
                "INSERT OR IGNORE INTO message_followers (message_id, follower_id, header) VALUES (?, ?, ?)",
                [(message_id, follower_id, header) for header in follower.headers],
            )
        connection.executemany(
            "INSERT INTO documents (message_id, conversation_id, kind, name, content_type, size, sha256, content_ref, "
            "content_id, skipped, skip_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    message_id,
                    conversation_id,
                    document.kind,
                    document.name,
                    document.content_type,
                    document.size,
                    document.sha256,
                    document.content_ref,
                    document.content_id,
                    int(document.skipped),
                    document.skip_reason,
                )
                for document in message.documents
            ],
        )
        return (address, conversation_id, created)

    @staticmethod
    def _find_conversation(
        connection: sqlite3.Connection, destination: str, mailbox: str, thread: ThreadKeys
    ) -> int | None:
        candidates: list[str] = []
        if thread.graph_conversation_id:
            candidates.append(f"graph:{mailbox}:{thread.graph_conversation_id}")
        candidates.extend(f"msgid:{ref}" for ref in thread.in_reply_to)
        candidates.extend(f"msgid:{ref}" for ref in reversed(thread.references))
        for key in candidates:
            row = connection.execute(
                "SELECT conversation_id FROM thread_keys WHERE destination = ? AND thread_key = ?", (destination, key)
            ).fetchone()
            if row is not None:
                return int(row["conversation_id"])
        return None

    @staticmethod
    def _state_from_row(row: sqlite3.Row) -> MessageState:
        return MessageState(
            mailbox=row["mailbox"],
            immutable_id=row["immutable_id"],
            internet_message_id=row["internet_message_id"],
            state=row["state"],
            received_at=None if row["received_at"] is None else _from_seconds(row["received_at"]),
            updated_at=_from_seconds(row["updated_at"]),
            reason=row["reason"],
            attempts=int(row["attempts"]),
            in_failure_folder=bool(row["in_failure_folder"]),
        )

    def _state_row(self, connection: sqlite3.Connection, mailbox: str, immutable_id: str) -> MessageState | None:
        row = connection.execute(
            "SELECT * FROM message_states WHERE mailbox = ? AND immutable_id = ?", (mailbox, immutable_id)
        ).fetchone()
        return None if row is None else self._state_from_row(row)

    async def get_message_state(self, mailbox: str, immutable_id: str) -> MessageState | None:
        """See :meth:`ImportStore.get_message_state`."""
        return await self._run(self._state_row, mailbox.lower(), immutable_id)

    async def get_message_states(self, mailbox: str, immutable_ids: Sequence[str]) -> dict[str, MessageState]:
        """See :meth:`ImportStore.get_message_states`."""
        return await self._run(self._states, mailbox.lower(), list(immutable_ids))

    def _states(self, connection: sqlite3.Connection, mailbox: str, ids: list[str]) -> dict[str, MessageState]:
        found: dict[str, MessageState] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in connection.execute(
                f"SELECT * FROM message_states WHERE mailbox = ? AND immutable_id IN ({marks})",  # noqa: S608 - only ? marks
                (mailbox, *chunk),
            ):
                state = self._state_from_row(row)
                found[state.immutable_id] = state
        return found

    async def mark_read(self, mailbox: str, immutable_ids: Sequence[str]) -> None:
        """See :meth:`ImportStore.mark_read`."""
        await self._run(self._mark_read, mailbox.lower(), list(immutable_ids))

    def _mark_read(self, connection: sqlite3.Connection, mailbox: str, ids: list[str]) -> None:
        now = self._now()
        with self._write(connection):
            connection.executemany(
                "UPDATE message_states SET state = 'read', updated_at = ? "
                "WHERE mailbox = ? AND immutable_id = ? AND state = 'stored'",
                [(now, mailbox, immutable_id) for immutable_id in ids],
            )

    async def record_failure(
        self,
        mailbox: str,
        immutable_id: str,
        *,
        reason: str,
        internet_message_id: str | None = None,
        received_at: dt.datetime | None = None,
    ) -> MessageState:
        """See :meth:`ImportStore.record_failure`."""
        received = None if received_at is None else _to_seconds(received_at)
        return await self._run(
            self._record_failure, mailbox.lower(), immutable_id, reason, internet_message_id, received
        )

    def _record_failure(  # noqa: PLR0917 - called through _run, which passes arguments positionally
        self,
        connection: sqlite3.Connection,
        mailbox: str,
        immutable_id: str,
        reason: str,
        internet_message_id: str | None,
        received_at: float | None,
    ) -> MessageState:
        now = self._now()
        with self._write(connection):
            self._check_fence(connection, mailbox)
            existing = self._state_row(connection, mailbox, immutable_id)
            if existing is not None and existing.state in ("stored", "read"):
                return existing
            connection.execute(
                "INSERT INTO message_states (mailbox, immutable_id, internet_message_id, state, reason, attempts, "
                "in_failure_folder, received_at, updated_at) VALUES (?, ?, ?, 'failed', ?, 1, 0, ?, ?) "
                "ON CONFLICT (mailbox, immutable_id) DO UPDATE SET state = 'failed', reason = excluded.reason, "
                "attempts = message_states.attempts + 1, updated_at = excluded.updated_at, "
                "internet_message_id = COALESCE(excluded.internet_message_id, message_states.internet_message_id), "
                "received_at = COALESCE(excluded.received_at, message_states.received_at)",
                (mailbox, immutable_id, internet_message_id, reason, received_at, now),
            )
            state = self._state_row(connection, mailbox, immutable_id)
        if state is None:  # pragma: no cover - written just above
            raise StoreError(f"recording the failure of message {immutable_id}: the state row vanished")
        return state

    async def mark_moved(self, mailbox: str, immutable_id: str, *, in_failure_folder: bool) -> MessageState | None:
        """See :meth:`ImportStore.mark_moved`."""
        return await self._run(self._mark_moved, mailbox.lower(), immutable_id, in_failure_folder)

    def _mark_moved(
        self, connection: sqlite3.Connection, mailbox: str, immutable_id: str, in_failure_folder: bool
    ) -> MessageState | None:
        now = self._now()
        with self._write(connection):
            if in_failure_folder:
                connection.execute(
                    "UPDATE message_states SET state = CASE WHEN state = 'failed' THEN 'moved' ELSE state END, "
                    "in_failure_folder = 1, updated_at = ? WHERE mailbox = ? AND immutable_id = ?",
                    (now, mailbox, immutable_id),
                )
            else:
                connection.execute(
                    "UPDATE message_states SET in_failure_folder = 0, updated_at = ? "
                    "WHERE mailbox = ? AND immutable_id = ?",
                    (now, mailbox, immutable_id),
                )
            return self._state_row(connection, mailbox, immutable_id)

    async def pending_mailbox_actions(self, mailbox: str) -> list[MessageState]:
        """See :meth:`ImportStore.pending_mailbox_actions`."""
        return await self._run(self._pending, mailbox.lower())

    def _pending(self, connection: sqlite3.Connection, mailbox: str) -> list[MessageState]:
        rows = connection.execute(
            "SELECT * FROM message_states WHERE mailbox = ? AND (state IN ('stored', 'failed') "
            "OR (state = 'read' AND in_failure_folder = 1)) ORDER BY received_at, immutable_id",
            (mailbox,),
        )
        return [self._state_from_row(row) for row in rows]

    async def failures_to_retry(self, mailbox: str, received_after: dt.datetime) -> list[MessageState]:
        """See :meth:`ImportStore.failures_to_retry`."""
        return await self._run(self._failures, mailbox.lower(), _to_seconds(received_after))

    def _failures(self, connection: sqlite3.Connection, mailbox: str, after: float) -> list[MessageState]:
        rows = connection.execute(
            "SELECT * FROM message_states WHERE mailbox = ? AND state = 'moved' AND received_at > ? "
            "ORDER BY received_at, immutable_id",
            (mailbox, after),
        )
        return [self._state_from_row(row) for row in rows]

    # --- reading -----------------------------------------------------------------------------------------------

    async def list_conversations(
        self, destination: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ConversationRecord]:
        """See :meth:`ImportStore.list_conversations`."""
        check_page_limit(limit)
        return await self._run(
            self._conversations, None if destination is None else destination.lower(), None, after_id, limit
        )

    def _conversations(
        self,
        connection: sqlite3.Connection,
        destination: str | None,
        conversation_id: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[ConversationRecord]:
        # A negative LIMIT is no limit in SQLite.
        page = -1 if limit is None else limit
        args: tuple[object, ...]
        if conversation_id is not None:
            query, args = "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
        elif destination is not None:
            query = "SELECT * FROM conversations WHERE id > ? AND destination = ? ORDER BY id LIMIT ?"
            args = (after_id, destination, page)
        else:
            query, args = "SELECT * FROM conversations WHERE id > ? ORDER BY id LIMIT ?", (after_id, page)
        conversations = connection.execute(query, args).fetchall()
        result = []
        for conversation in conversations:
            conversation_id = conversation["id"]
            documents: dict[int, list[DocumentRecord]] = {}
            for row in connection.execute(
                "SELECT * FROM documents WHERE conversation_id = ? ORDER BY id", (conversation_id,)
            ):
                documents.setdefault(row["message_id"], []).append(
                    DocumentRecord(
                        id=row["id"],
                        message_id=row["message_id"],
                        conversation_id=conversation_id,
                        kind=row["kind"],
                        name=row["name"],
                        content_type=row["content_type"],
                        size=row["size"],
                        sha256=row["sha256"],
                        content_ref=row["content_ref"],
                        content_id=row["content_id"],
                        skipped=bool(row["skipped"]),
                        skip_reason=row["skip_reason"],
                    )
                )
            message_followers: dict[int, list[tuple[int, str]]] = {}
            for row in connection.execute(
                "SELECT mf.message_id, mf.follower_id, mf.header FROM message_followers mf "
                "JOIN messages m ON m.id = mf.message_id WHERE m.conversation_id = ? "
                "ORDER BY mf.message_id, mf.follower_id, mf.header",
                (conversation_id,),
            ):
                message_followers.setdefault(row["message_id"], []).append((row["follower_id"], row["header"]))
            messages = tuple(
                MessageRecord(
                    id=row["id"],
                    conversation_id=conversation_id,
                    destination=row["destination"],
                    mailbox=row["mailbox"],
                    immutable_id=row["immutable_id"],
                    internet_message_id=row["internet_message_id"],
                    subject=row["subject"],
                    received_at=_from_seconds(row["received_at"]),
                    attributes=json.loads(row["attributes"]),
                    followers=tuple(message_followers.get(row["id"], ())),
                    documents=tuple(documents.get(row["id"], ())),
                )
                for row in connection.execute(
                    "SELECT * FROM messages WHERE conversation_id = ? ORDER BY received_at, id", (conversation_id,)
                )
            )
            followers = tuple(
                FollowerRecord(
                    id=row["id"],
                    conversation_id=conversation_id,
                    address=row["address"],
                    name=row["name"],
                    participation=row["participation"],
                    parent_type=row["parent_type"],
                    parent_id=row["parent_id"],
                )
                for row in connection.execute(
                    "SELECT * FROM followers WHERE conversation_id = ? ORDER BY id", (conversation_id,)
                )
            )
            result.append(
                ConversationRecord(
                    id=conversation_id,
                    destination=conversation["destination"],
                    subject=conversation["subject"],
                    parent_type=conversation["parent_type"],
                    parent_fields=json.loads(conversation["parent_fields"]),
                    graph_conversation_id=conversation["graph_conversation_id"],
                    created_at=_from_seconds(conversation["created_at"]),
                    updated_at=_from_seconds(conversation["updated_at"]),
                    messages=messages,
                    followers=followers,
                )
            )
        return result

    async def list_message_states(self, mailbox: str | None = None) -> list[MessageState]:
        """See :meth:`ImportStore.list_message_states`."""
        return await self._run(self._all_states, None if mailbox is None else mailbox.lower())

    def _all_states(self, connection: sqlite3.Connection, mailbox: str | None) -> list[MessageState]:
        where, args = ("WHERE mailbox = ?", (mailbox,)) if mailbox is not None else ("", ())
        rows = connection.execute(
            f"SELECT * FROM message_states {where} ORDER BY mailbox, received_at, immutable_id",  # noqa: S608
            args,
        )
        return [self._state_from_row(row) for row in rows]

    async def count_messages(self) -> int:
        """See :meth:`ImportStore.count_messages`."""
        return await self._run(self._count_messages)

    @staticmethod
    def _count_messages(connection: sqlite3.Connection) -> int:
        return int(connection.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    # --- the webhook sink's outbox (mailplane.importing.webhook_sink.SinkOutbox) -------------------------------

    async def get_conversation(self, conversation_id: int) -> ConversationRecord | None:
        """One conversation with its messages, followers and documents, or ``None``."""
        found = await self._run(self._conversations, None, conversation_id)
        return found[0] if found else None

    async def enqueue_sink_deliveries(self, *, limit: int = 1000, recent_only: bool = False) -> int:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.enqueue_sink_deliveries`."""
        return await self._run(self._enqueue_sink_deliveries, limit, recent_only)

    def _enqueue_sink_deliveries(self, connection: sqlite3.Connection, limit: int, recent_only: bool) -> int:
        with self._write(connection):
            floor = 0
            if recent_only:
                newest = connection.execute("SELECT COALESCE(MAX(message_id), 0) FROM sink_deliveries").fetchone()[0]
                floor = int(newest) - SINK_SCAN_WINDOW
            rows = connection.execute(
                "SELECT m.id, m.conversation_id, m.destination, m.internet_message_id FROM messages m "
                "WHERE m.id > ? AND NOT EXISTS (SELECT 1 FROM sink_deliveries d WHERE d.message_id = m.id) "
                "ORDER BY m.id LIMIT ?",
                (floor, limit),
            ).fetchall()
            now = self._now()
            for row in rows:
                connection.execute(
                    "INSERT OR IGNORE INTO sink_deliveries (message_id, conversation_id, idempotency_key, status, "
                    "next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                    (
                        row["id"],
                        row["conversation_id"],
                        idempotency_key(row["destination"], row["internet_message_id"]),
                        now,
                        now,
                    ),
                )
        return len(rows)

    async def claim_sink_deliveries(self, holder: str, *, limit: int, lease: dt.timedelta) -> list[SinkDelivery]:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.claim_sink_deliveries`."""
        return await self._run(self._claim_sink_deliveries, holder, limit, lease)

    def _claim_sink_deliveries(
        self, connection: sqlite3.Connection, holder: str, limit: int, lease: dt.timedelta
    ) -> list[SinkDelivery]:
        now = self._now()
        with self._write(connection):  # BEGIN IMMEDIATE: one writer at a time, so no two holders claim a row
            ids = [
                row["id"]
                for row in connection.execute(
                    "SELECT id FROM sink_deliveries WHERE status = 'pending' AND next_attempt_at <= ? "
                    "AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY id LIMIT ?",
                    (now, now, limit),
                )
            ]
            connection.executemany(
                "UPDATE sink_deliveries SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                [(holder, now + lease.total_seconds(), delivery_id) for delivery_id in ids],
            )
            return [self._delivery(connection, delivery_id) for delivery_id in ids]

    @staticmethod
    def _delivery(connection: sqlite3.Connection, delivery_id: int) -> SinkDelivery:
        row = connection.execute("SELECT * FROM sink_deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return SinkDelivery(
            id=int(row["id"]),
            message_id=int(row["message_id"]),
            conversation_id=int(row["conversation_id"]),
            idempotency_key=row["idempotency_key"],
            status=row["status"],
            attempts=int(row["attempts"]),
            next_attempt_at=_from_seconds(row["next_attempt_at"]),
            created_at=_from_seconds(row["created_at"]),
            last_error=row["last_error"],
            delivered_at=None if row["delivered_at"] is None else _from_seconds(row["delivered_at"]),
        )

    async def finish_sink_delivery(
        self,
        delivery_id: int,
        holder: str,
        *,
        delivered: bool,
        error: str | None = None,
        retry_at: dt.datetime | None = None,
    ) -> SinkDelivery | None:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.finish_sink_delivery`."""
        status = "delivered" if delivered else ("pending" if retry_at is not None else "failed")
        retry = None if retry_at is None else _to_seconds(retry_at)
        return await self._run(self._finish_sink_delivery, delivery_id, holder, status, error, retry)

    def _finish_sink_delivery(  # noqa: PLR0917 - one argument per column, called through _run
        self,
        connection: sqlite3.Connection,
        delivery_id: int,
        holder: str,
        status: str,
        error: str | None,
        retry_at: float | None,
    ) -> SinkDelivery | None:
        now = self._now()
        with self._write(connection):
            cursor = connection.execute(
                "UPDATE sink_deliveries SET status = ?, attempts = attempts + 1, claimed_by = NULL, "
                "claimed_until = NULL, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END "
                "WHERE id = ? AND claimed_by = ?",
                (status, error, retry_at, status, now, delivery_id, holder),
            )
            if cursor.rowcount == 0:
                return None
            return self._delivery(connection, delivery_id)

    async def retry_failed_sink_deliveries(self) -> int:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.retry_failed_sink_deliveries`."""
        return await self._run(self._retry_failed_sink_deliveries)

    def _retry_failed_sink_deliveries(self, connection: sqlite3.Connection) -> int:
        with self._write(connection):
            cursor = connection.execute(
                "UPDATE sink_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ? "
                "WHERE status = 'failed'",
                (self._now(),),
            )
            return cursor.rowcount

    async def list_sink_deliveries(self, status: SinkDeliveryStatus | None = None) -> list[SinkDelivery]:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.list_sink_deliveries`."""
        return await self._run(self._list_sink_deliveries, status)

    def _list_sink_deliveries(self, connection: sqlite3.Connection, status: str | None) -> list[SinkDelivery]:
        if status is None:
            ids = connection.execute("SELECT id FROM sink_deliveries ORDER BY id").fetchall()
        else:
            ids = connection.execute(
                "SELECT id FROM sink_deliveries WHERE status = ? ORDER BY id", (status,)
            ).fetchall()
        return [self._delivery(connection, row["id"]) for row in ids]

    # --- change notification subscriptions (mailplane.importing.subscriptions.SubscriptionStore) -----------------

    async def save_subscription(self, record: SubscriptionRecord) -> None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.save_subscription`."""
        await self._run(self._save_subscription, record)

    def _save_subscription(self, connection: sqlite3.Connection, record: SubscriptionRecord) -> None:
        with self._write(connection):
            connection.execute(
                "DELETE FROM subscriptions WHERE subscription_id = ? AND mailbox <> ?",
                (record.subscription_id, record.mailbox.lower()),
            )
            connection.execute(
                "INSERT INTO subscriptions (mailbox, subscription_id, resource, notification_url, expires_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mailbox) DO UPDATE SET "
                "subscription_id = excluded.subscription_id, resource = excluded.resource, "
                "notification_url = excluded.notification_url, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                (
                    record.mailbox.lower(),
                    record.subscription_id,
                    record.resource,
                    record.notification_url,
                    _to_seconds(record.expires_at),
                    self._now(),
                ),
            )

    @staticmethod
    def _subscription(row: sqlite3.Row | None) -> SubscriptionRecord | None:
        if row is None:
            return None
        return SubscriptionRecord(
            mailbox=row["mailbox"],
            subscription_id=row["subscription_id"],
            resource=row["resource"],
            notification_url=row["notification_url"],
            expires_at=_from_seconds(row["expires_at"]),
            updated_at=_from_seconds(row["updated_at"]),
        )

    async def get_subscription(self, mailbox: str) -> SubscriptionRecord | None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.get_subscription`."""
        return await self._run(self._get_subscription, "mailbox", mailbox.lower())

    async def find_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.find_subscription`."""
        return await self._run(self._get_subscription, "subscription_id", subscription_id)

    def _get_subscription(self, connection: sqlite3.Connection, column: str, value: str) -> SubscriptionRecord | None:
        if column not in ("mailbox", "subscription_id"):
            raise ValueError(column)
        row = connection.execute(f"SELECT * FROM subscriptions WHERE {column} = ?", (value,)).fetchone()  # noqa: S608 - fixed column
        return self._subscription(row)

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.list_subscriptions`."""
        return await self._run(self._list_subscriptions)

    def _list_subscriptions(self, connection: sqlite3.Connection) -> list[SubscriptionRecord]:
        rows = connection.execute("SELECT * FROM subscriptions ORDER BY mailbox").fetchall()
        return [record for record in map(self._subscription, rows) if record is not None]

    async def delete_subscription(self, mailbox: str, subscription_id: str) -> None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.delete_subscription`."""
        await self._run(self._delete_subscription, mailbox.lower(), subscription_id)

    def _delete_subscription(self, connection: sqlite3.Connection, mailbox: str, subscription_id: str) -> None:
        with self._write(connection):
            connection.execute(
                "DELETE FROM subscriptions WHERE mailbox = ? AND subscription_id = ?", (mailbox, subscription_id)
            )
