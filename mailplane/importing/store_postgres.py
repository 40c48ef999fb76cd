"""The PostgreSQL import store: many workers on many machines share one database.

psycopg 3, async, one connection per store object (a worker); every method is one transaction. How it keeps
exactly once with many workers:

* **Leases** are one conditional upsert (``INSERT ... ON CONFLICT DO UPDATE ... WHERE the holder is the same or the
  lease expired``), so two workers can never both hold a mailbox.
* **Imports** take transaction-scoped advisory locks, first on the Internet message id, then on each destination in
  sorted order (a fixed order, so no deadlock), and rely on the unique constraints
  ``(mailbox, immutable_id)`` and ``(destination, internet_message_id)``: two workers importing copies of the same mail
  from two mailboxes at once write it once, and threading into a conversation never races.
* **Sink deliveries** are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and a claim lease.
* **A dropped connection** (server restart, failover, network cut) is reopened and the transaction run again, up to
  ``reconnect_attempts`` times; every write is idempotent, so a transaction whose commit was lost in flight is safe to
  repeat. Deadlocks and serialization failures are retried the same way.

The schema is created idempotently in ``schema`` (default ``public``; tests give each test its own), under an
advisory lock so workers starting together create it once. Times are ``timestamptz`` from the store's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

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

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["SCHEMA", "PostgresImportStore"]

_T = TypeVar("_T")
_Row = dict[str, Any]
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCHEMA_LOCK = 0x6D61696C706C616E  # "mailplan": serializes schema creation across workers

SCHEMA = """
CREATE TABLE IF NOT EXISTS import_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    mailbox     text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS delta_links (
    mailbox     text NOT NULL,
    folder      text NOT NULL,
    link        text NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (mailbox, folder)
);
CREATE TABLE IF NOT EXISTS conversations (
    id                     bigserial PRIMARY KEY,
    destination            text NOT NULL,
    subject                text NOT NULL,
    parent_type            text NOT NULL,
    parent_fields          jsonb NOT NULL,
    graph_conversation_id  text,
    first_received_at      timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS thread_keys (
    destination      text NOT NULL,
    thread_key       text NOT NULL,
    conversation_id  bigint NOT NULL REFERENCES conversations(id),
    PRIMARY KEY (destination, thread_key)
);
CREATE TABLE IF NOT EXISTS messages (
    id                   bigserial PRIMARY KEY,
    conversation_id      bigint NOT NULL REFERENCES conversations(id),
    destination          text NOT NULL,
    mailbox              text NOT NULL,
    immutable_id         text NOT NULL,
    internet_message_id  text NOT NULL,
    subject              text NOT NULL,
    received_at          timestamptz NOT NULL,
    attributes           jsonb NOT NULL,
    UNIQUE (destination, internet_message_id)
);
CREATE INDEX IF NOT EXISTS messages_by_internet_id ON messages(internet_message_id);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id);
CREATE TABLE IF NOT EXISTS followers (
    id               bigserial PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations(id),
    address          text NOT NULL,
    name             text,
    participation    text NOT NULL,
    parent_type      text,
    parent_id        text,
    UNIQUE (conversation_id, address)
);
CREATE TABLE IF NOT EXISTS message_followers (
    message_id   bigint NOT NULL REFERENCES messages(id),
    follower_id  bigint NOT NULL REFERENCES followers(id),
    header       text NOT NULL,
    PRIMARY KEY (message_id, follower_id, header)
);
CREATE TABLE IF NOT EXISTS documents (
    id               bigserial PRIMARY KEY,
    message_id       bigint NOT NULL REFERENCES messages(id),
    conversation_id  bigint NOT NULL REFERENCES conversations(id),
    kind             text NOT NULL,
    name             text NOT NULL,
    content_type     text,
    size             bigint NOT NULL,
    sha256           text,
    content_ref      text,
    content_id       text,
    skipped          boolean NOT NULL,
    skip_reason      text
);
CREATE INDEX IF NOT EXISTS documents_by_message ON documents(message_id);
CREATE TABLE IF NOT EXISTS message_states (
    mailbox              text NOT NULL,
    immutable_id         text NOT NULL,
    internet_message_id  text,
    state                text NOT NULL CHECK (state IN ('stored', 'read', 'failed', 'moved')),
    reason               text,
    attempts             integer NOT NULL DEFAULT 0,
    in_failure_folder    boolean NOT NULL DEFAULT false,
    received_at          timestamptz,
    updated_at           timestamptz NOT NULL,
    PRIMARY KEY (mailbox, immutable_id)
);
CREATE INDEX IF NOT EXISTS message_states_by_state ON message_states(mailbox, state, received_at);
CREATE TABLE IF NOT EXISTS sink_deliveries (
    id               bigserial PRIMARY KEY,
    message_id       bigint NOT NULL UNIQUE REFERENCES messages(id),
    conversation_id  bigint NOT NULL REFERENCES conversations(id),
    idempotency_key  text NOT NULL UNIQUE,
    status           text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    claimed_by       text,
    claimed_until    timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz
);
CREATE INDEX IF NOT EXISTS sink_deliveries_due ON sink_deliveries(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS subscriptions (
    mailbox           text PRIMARY KEY,
    subscription_id   text NOT NULL UNIQUE,
    resource          text NOT NULL,
    notification_url  text NOT NULL,
    expires_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
"""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the import store takes timezone-aware times")
    return value


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else value.astimezone(dt.UTC)


def _retryable(exc: psycopg.Error, connection: AsyncConnection[Any] | None) -> bool:
    if isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure):
        return True
    if connection is None or connection.closed or connection.broken:
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.ConnectionFailure)


class PostgresImportStore:
    """:class:`~mailplane.importing.store.ImportStore` on PostgreSQL, with the sink outbox and subscription records.

    See the module docstring.

    ``dsn`` is a libpq connection string or URI (it holds the password: it is never logged or shown). Keyword-only:
    ``clock`` (current UTC time; tests pass a fake one), ``schema`` (a lower-case SQL identifier, created if missing),
    ``reconnect_attempts`` and ``reconnect_delay`` (seconds, doubled per attempt) for dropped connections,
    ``connect_timeout`` (seconds).
    """

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        schema: str = "public",
        reconnect_attempts: int = 5,
        reconnect_delay: float = 0.2,
        connect_timeout: float = 10.0,
    ) -> None:
        """Nothing is opened until :meth:`open`."""
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema {schema!r}: use lower-case letters, digits and '_' (at most 63)")
        self._dsn = dsn
        self._clock = clock or _utc_now
        self._schema = schema
        self._reconnect_attempts = max(1, reconnect_attempts)
        self._reconnect_delay = reconnect_delay
        self._connect_timeout = connect_timeout
        self._connection: AsyncConnection[_Row] | None = None
        self._lock = asyncio.Lock()
        self._opened = False
        self._held: dict[str, str] = {}  # mailbox -> holder whose lease this object took (fences its writes)
        self.reconnects = 0
        """How many times a dropped connection was reopened (for monitoring and tests)."""

    def __repr__(self) -> str:
        """The class, the server and the schema; never the password."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self._dsn)
        except psycopg.ProgrammingError:
            info = {}
        where = f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
        return f"PostgresImportStore({where!r}, schema={self._schema!r})"

    @property
    def schema(self) -> str:
        """The schema the tables live in."""
        return self._schema

    # --- plumbing ----------------------------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return _aware(self._clock())

    async def _connect(self) -> AsyncConnection[_Row]:
        try:
            connection = await psycopg.AsyncConnection.connect(
                self._dsn, row_factory=dict_row, connect_timeout=max(1, int(self._connect_timeout))
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"connecting to the PostgreSQL import store {self!r}: {_first_line(exc)}. Check the connection "
                "string in the store's dsnEnv variable and that the server accepts connections"
            ) from exc
        await connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)), prepare=False)
        await connection.commit()
        return connection

    async def _transaction(self, work: Callable[[AsyncConnection[_Row]], Awaitable[_T]], doing: str) -> _T:
        if not self._opened:
            raise StoreError(f"{doing} in {self!r}: the store is not open. Call 'await store.open()' first.")
        async with self._lock:
            delay = self._reconnect_delay
            for attempt in range(1, self._reconnect_attempts + 1):
                connection = self._connection
                try:
                    if connection is None or connection.closed or connection.broken:
                        if connection is not None:
                            self.reconnects += 1
                        self._connection = connection = None
                        connection = self._connection = await self._connect()
                    async with connection.transaction():
                        return await work(connection)
                except (StoreError, psycopg.Error) as exc:
                    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
                    retryable = isinstance(cause, psycopg.Error) and _retryable(cause, connection)
                    if not retryable or attempt == self._reconnect_attempts:
                        if isinstance(exc, StoreError):
                            raise
                        raise StoreError(
                            f"{doing} in {self!r}: {_first_line(exc)}. Check the PostgreSQL server and its log"
                        ) from exc
                    if connection is not None and (connection.closed or connection.broken):
                        self.reconnects += 1
                        self._connection = None
                    await asyncio.sleep(delay)
                    delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def open(self) -> None:
        """Connect and create the schema and tables if missing (idempotent; safe from many workers at once)."""
        if self._opened:
            return
        self._opened = True
        try:
            await self._transaction(self._create_schema, "creating the import store schema")
        except BaseException:
            self._opened = False
            await self._close_connection()
            raise

    async def _create_schema(self, connection: AsyncConnection[_Row]) -> None:
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        await connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
        await connection.execute(SCHEMA.encode())  # several statements, no parameters
        cursor = await connection.execute("SELECT version FROM import_schema")
        row = await cursor.fetchone()
        if check_schema_version(row["version"] if row else None, known=IMPORT_SCHEMA_VERSION, store=repr(self)):
            await connection.execute("INSERT INTO import_schema (version) VALUES (%s)", (IMPORT_SCHEMA_VERSION,))

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            await connection.close()

    async def close(self) -> None:
        """Close the connection. The store can be opened again."""
        async with self._lock:
            self._opened = False
            await self._close_connection()

    async def __aenter__(self) -> Self:
        """Open."""
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close."""
        await self.close()

    async def drop_schema(self) -> None:
        """Drop the schema and everything in it (tests and throwaway deployments only)."""

        async def work(connection: AsyncConnection[_Row]) -> None:
            await connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self._schema)))

        await self._transaction(work, "dropping the import store schema")

    # --- leases ------------------------------------------------------------------------------------------------

    async def acquire_lease(self, mailbox: str, holder: str, ttl: dt.timedelta) -> Lease | None:
        """See :meth:`ImportStore.acquire_lease`."""
        mailbox = mailbox.lower()

        async def work(connection: AsyncConnection[_Row]) -> Lease | None:
            now = self._now()
            row = await (
                await connection.execute(
                    "INSERT INTO leases (mailbox, holder, expires_at) VALUES (%s, %s, %s) "
                    "ON CONFLICT (mailbox) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at "
                    "WHERE leases.holder = excluded.holder OR leases.expires_at <= %s "
                    "RETURNING holder, expires_at",
                    (mailbox, holder, now + ttl, now),
                )
            ).fetchone()
            return None if row is None else Lease(mailbox, row["holder"], _utc(row["expires_at"]))  # type: ignore[arg-type]

        return self._note_lease(mailbox, holder, await self._transaction(work, f"taking the lease on {mailbox}"))

    def _note_lease(self, mailbox: str, holder: str, lease: Lease | None) -> Lease | None:
        # A lost (or released) lease keeps its fence: tasks of this worker still running on the mailbox must not
        # write once another worker may hold it. Taking the lease again lifts it.
        if lease is not None:
            self._held[mailbox] = holder
        return lease

    async def _check_fence(self, connection: AsyncConnection[_Row], mailbox: str) -> None:
        """Raise LeaseLostError when this object took ``mailbox``'s lease and another worker holds it now.

        FOR SHARE makes a worker taking the lease over wait until this transaction ends, so the check holds until
        the commit.
        """
        holder = self._held.get(mailbox)
        if holder is None:
            return
        row = await (
            await connection.execute("SELECT holder FROM leases WHERE mailbox = %s FOR SHARE", (mailbox,))
        ).fetchone()
        if row is None or row["holder"] != holder:
            current = "nobody" if row is None else row["holder"]
            raise LeaseLostError(
                f"importing {mailbox}: this worker's lease ran out and {current} holds the mailbox now. "
                "This worker stops working on it; the new holder carries on"
            )

    async def renew_lease(self, mailbox: str, holder: str, ttl: dt.timedelta) -> Lease | None:
        """See :meth:`ImportStore.renew_lease`."""
        mailbox = mailbox.lower()

        async def work(connection: AsyncConnection[_Row]) -> Lease | None:
            row = await (
                await connection.execute(
                    "UPDATE leases SET expires_at = %s WHERE mailbox = %s AND holder = %s RETURNING expires_at",
                    (self._now() + ttl, mailbox, holder),
                )
            ).fetchone()
            return None if row is None else Lease(mailbox, holder, _utc(row["expires_at"]))  # type: ignore[arg-type]

        return self._note_lease(mailbox, holder, await self._transaction(work, f"renewing the lease on {mailbox}"))

    async def release_lease(self, mailbox: str, holder: str) -> None:
        """See :meth:`ImportStore.release_lease`."""
        mailbox = mailbox.lower()

        async def work(connection: AsyncConnection[_Row]) -> None:
            await connection.execute("DELETE FROM leases WHERE mailbox = %s AND holder = %s", (mailbox, holder))

        await self._transaction(work, f"releasing the lease on {mailbox}")

    async def get_lease(self, mailbox: str) -> Lease | None:
        """See :meth:`ImportStore.get_lease`."""
        mailbox = mailbox.lower()

        async def work(connection: AsyncConnection[_Row]) -> Lease | None:
            row = await (
                await connection.execute(
                    "SELECT holder, expires_at FROM leases WHERE mailbox = %s AND expires_at > %s",
                    (mailbox, self._now()),
                )
            ).fetchone()
            return None if row is None else Lease(mailbox, row["holder"], _utc(row["expires_at"]))  # type: ignore[arg-type]

        return await self._transaction(work, f"reading the lease on {mailbox}")

    # --- delta links -------------------------------------------------------------------------------------------

    async def get_delta_link(self, mailbox: str, folder: str) -> str | None:
        """See :meth:`ImportStore.get_delta_link`."""

        async def work(connection: AsyncConnection[_Row]) -> str | None:
            row = await (
                await connection.execute(
                    "SELECT link FROM delta_links WHERE mailbox = %s AND folder = %s", (mailbox.lower(), folder.lower())
                )
            ).fetchone()
            return None if row is None else str(row["link"])

        return await self._transaction(work, f"reading the delta link of {mailbox}")

    async def set_delta_link(self, mailbox: str, folder: str, link: str | None) -> None:
        """See :meth:`ImportStore.set_delta_link`."""

        async def work(connection: AsyncConnection[_Row]) -> None:
            if link is None:
                await connection.execute(
                    "DELETE FROM delta_links WHERE mailbox = %s AND folder = %s", (mailbox.lower(), folder.lower())
                )
            else:
                await connection.execute(
                    "INSERT INTO delta_links (mailbox, folder, link, updated_at) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (mailbox, folder) DO UPDATE SET link = excluded.link, "
                    "updated_at = excluded.updated_at",
                    (mailbox.lower(), folder.lower(), link, self._now()),
                )

        await self._transaction(work, f"saving the delta link of {mailbox}")

    # --- importing ---------------------------------------------------------------------------------------------

    async def record_import(self, message: ImportedMessage) -> ImportOutcome:
        """See :meth:`ImportStore.record_import`."""
        if not message.destinations:
            raise ValueError(f"message {message.immutable_id} has no destination")

        async def work(connection: AsyncConnection[_Row]) -> ImportOutcome:
            return await self._record_import(connection, message)

        return await self._transaction(work, f"recording message {message.immutable_id} of {message.mailbox}")

    async def _record_import(self, connection: AsyncConnection[_Row], message: ImportedMessage) -> ImportOutcome:
        mailbox = message.mailbox.lower()
        now = self._now()
        # Fixed lock order (message id, then destinations sorted) so concurrent imports never deadlock.
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"msgid:{message.internet_message_id}",)
        )
        for address in sorted({d.address.lower() for d in message.destinations}):
            await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"dest:{address}",))
        await self._check_fence(connection, mailbox)
        existing = await self._state_row(connection, mailbox, message.immutable_id, lock=True)
        if existing is not None and existing.state in ("stored", "read"):
            return ImportOutcome(existing, (), duplicate=True)
        written: list[tuple[str, int, bool]] = []
        held_anywhere = message.exclusive and (
            await (
                await connection.execute(
                    "SELECT 1 FROM messages WHERE internet_message_id = %s LIMIT 1", (message.internet_message_id,)
                )
            ).fetchone()
            is not None
        )
        if not held_anywhere:
            for destination in message.destinations:
                result = await self._write_destination(connection, message, destination, now)
                if result is not None:
                    written.append(result)
        in_failure_folder = bool(existing.in_failure_folder) if existing is not None else False
        row = await (
            await connection.execute(
                "INSERT INTO message_states (mailbox, immutable_id, internet_message_id, state, reason, attempts, "
                "in_failure_folder, received_at, updated_at) VALUES (%s, %s, %s, 'stored', NULL, %s, %s, %s, %s) "
                "ON CONFLICT (mailbox, immutable_id) DO UPDATE SET state = 'stored', "
                "internet_message_id = excluded.internet_message_id, updated_at = excluded.updated_at "
                "RETURNING *",
                (
                    mailbox,
                    message.immutable_id,
                    message.internet_message_id,
                    existing.attempts if existing is not None else 0,
                    in_failure_folder,
                    _aware(message.received_at),
                    now,
                ),
            )
        ).fetchone()
        if row is None:  # pragma: no cover - RETURNING always yields the row
            raise StoreError(f"recording message {message.immutable_id}: the state row vanished")
        return ImportOutcome(_state_from_row(row), tuple(written), duplicate=not written)

    async def _write_destination(
        self,
        connection: AsyncConnection[_Row],
        message: ImportedMessage,
        destination: DestinationInput,
        now: dt.datetime,
    ) -> tuple[str, int, bool] | None:
        address = destination.address.lower()
        held = await (
            await connection.execute(
                "SELECT 1 FROM messages WHERE destination = %s AND internet_message_id = %s",
                (address, message.internet_message_id),
            )
        ).fetchone()
        if held is not None:
            return None
        mailbox = message.mailbox.lower()
        conversation_id = await self._find_conversation(connection, address, mailbox, message.thread)
        created = conversation_id is None
        if conversation_id is None:
            row = await (
                await connection.execute(
                    "INSERT INTO conversations (destination, subject, parent_type, parent_fields, "
                    "graph_conversation_id, first_received_at, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        address,
                        message.subject,
                        destination.parent_type,
                        Jsonb(dict(destination.parent_fields), dumps=_dumps),
                        message.thread.graph_conversation_id,
                        _aware(message.received_at),
                        now,
                        now,
                    ),
                )
            ).fetchone()
            conversation_id = int(row["id"])  # type: ignore[index]
        else:
            row = await (
                await connection.execute(
                    "SELECT subject, parent_fields, first_received_at FROM conversations WHERE id = %s FOR UPDATE",
                    (conversation_id,),
                )
            ).fetchone()
            if row is None:  # pragma: no cover - thread keys only point at existing conversations
                raise StoreError(f"recording message {message.immutable_id}: conversation {conversation_id} vanished")
            fields = dict(row["parent_fields"])
            received = _aware(message.received_at)
            # A reply imported before the message it answers: the earliest message gives the parent fields.
            earlier = received < row["first_received_at"]
            for name, value in destination.parent_fields.items():
                if value is not None and (earlier or fields.get(name) is None):
                    fields[name] = value
            await connection.execute(
                "UPDATE conversations SET parent_fields = %s, subject = %s, first_received_at = %s, updated_at = %s "
                "WHERE id = %s",
                (
                    Jsonb(fields, dumps=_dumps),
                    message.subject if earlier else row["subject"],
                    min(received, row["first_received_at"]),
                    now,
                    conversation_id,
                ),
            )
        keys = [f"msgid:{message.internet_message_id}"]
        if message.thread.graph_conversation_id:
            keys.append(f"graph:{mailbox}:{message.thread.graph_conversation_id}")
        async with connection.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO thread_keys (destination, thread_key, conversation_id) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                [(address, key, conversation_id) for key in keys],
            )
        row = await (
            await connection.execute(
                "INSERT INTO messages (conversation_id, destination, mailbox, immutable_id, internet_message_id, "
                "subject, received_at, attributes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    conversation_id,
                    address,
                    mailbox,
                    message.immutable_id,
                    message.internet_message_id,
                    message.subject,
                    _aware(message.received_at),
                    Jsonb(dict(message.attributes), dumps=_dumps),
                ),
            )
        ).fetchone()
        message_id = int(row["id"])  # type: ignore[index]
        for follower in message.followers_for(destination):
            follower_address = follower.address.lower()
            follower_row = await (
                await connection.execute(
                    "INSERT INTO followers (conversation_id, address, name, participation, parent_type, parent_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (conversation_id, address) "
                    "DO UPDATE SET address = excluded.address RETURNING id",
                    (
                        conversation_id,
                        follower_address,
                        follower.name,
                        follower.participation,
                        follower.parent_type,
                        follower.parent_id,
                    ),
                )
            ).fetchone()
            follower_id = int(follower_row["id"])  # type: ignore[index]
            async with connection.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO message_followers (message_id, follower_id, header) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(message_id, follower_id, header) for header in follower.headers],
                )
        if message.documents:
            async with connection.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO documents (message_id, conversation_id, kind, name, content_type, size, sha256, "
                    "content_ref, content_id, skipped, skip_reason) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
                            document.skipped,
                            document.skip_reason,
                        )
                        for document in message.documents
                    ],
                )
        return (address, conversation_id, created)

    @staticmethod
    async def _find_conversation(
        connection: AsyncConnection[_Row], destination: str, mailbox: str, thread: ThreadKeys
    ) -> int | None:
        candidates: list[str] = []
        if thread.graph_conversation_id:
            candidates.append(f"graph:{mailbox}:{thread.graph_conversation_id}")
        candidates.extend(f"msgid:{ref}" for ref in thread.in_reply_to)
        candidates.extend(f"msgid:{ref}" for ref in reversed(thread.references))
        for key in candidates:
            row = await (
                await connection.execute(
                    "SELECT conversation_id FROM thread_keys WHERE destination = %s AND thread_key = %s",
                    (destination, key),
                )
            ).fetchone()
            if row is not None:
                return int(row["conversation_id"])
        return None

    @staticmethod
    async def _state_row(
        connection: AsyncConnection[_Row], mailbox: str, immutable_id: str, *, lock: bool = False
    ) -> MessageState | None:
        if lock:
            cursor = await connection.execute(
                "SELECT * FROM message_states WHERE mailbox = %s AND immutable_id = %s FOR UPDATE",
                (mailbox, immutable_id),
            )
        else:
            cursor = await connection.execute(
                "SELECT * FROM message_states WHERE mailbox = %s AND immutable_id = %s", (mailbox, immutable_id)
            )
        row = await cursor.fetchone()
        return None if row is None else _state_from_row(row)

    async def get_message_state(self, mailbox: str, immutable_id: str) -> MessageState | None:
        """See :meth:`ImportStore.get_message_state`."""

        async def work(connection: AsyncConnection[_Row]) -> MessageState | None:
            return await self._state_row(connection, mailbox.lower(), immutable_id)

        return await self._transaction(work, f"reading the state of message {immutable_id}")

    async def get_message_states(self, mailbox: str, immutable_ids: Sequence[str]) -> dict[str, MessageState]:
        """See :meth:`ImportStore.get_message_states`."""
        ids = list(immutable_ids)

        async def work(connection: AsyncConnection[_Row]) -> dict[str, MessageState]:
            rows = await (
                await connection.execute(
                    "SELECT * FROM message_states WHERE mailbox = %s AND immutable_id = ANY(%s)", (mailbox.lower(), ids)
                )
            ).fetchall()
            return {row["immutable_id"]: _state_from_row(row) for row in rows}

        return await self._transaction(work, f"reading message states of {mailbox}")

    async def mark_read(self, mailbox: str, immutable_ids: Sequence[str]) -> None:
        """See :meth:`ImportStore.mark_read`."""
        ids = list(immutable_ids)

        async def work(connection: AsyncConnection[_Row]) -> None:
            await connection.execute(
                "UPDATE message_states SET state = 'read', updated_at = %s "
                "WHERE mailbox = %s AND immutable_id = ANY(%s) AND state = 'stored'",
                (self._now(), mailbox.lower(), ids),
            )

        await self._transaction(work, f"recording read messages of {mailbox}")

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
        received = None if received_at is None else _aware(received_at)

        async def work(connection: AsyncConnection[_Row]) -> MessageState:
            await self._check_fence(connection, mailbox.lower())
            existing = await self._state_row(connection, mailbox.lower(), immutable_id, lock=True)
            if existing is not None and existing.state in ("stored", "read"):
                return existing
            row = await (
                await connection.execute(
                    "INSERT INTO message_states (mailbox, immutable_id, internet_message_id, state, reason, attempts, "
                    "in_failure_folder, received_at, updated_at) VALUES (%s, %s, %s, 'failed', %s, 1, false, %s, %s) "
                    "ON CONFLICT (mailbox, immutable_id) DO UPDATE SET state = 'failed', reason = excluded.reason, "
                    "attempts = message_states.attempts + 1, updated_at = excluded.updated_at, "
                    "internet_message_id = COALESCE(excluded.internet_message_id, message_states.internet_message_id), "
                    "received_at = COALESCE(excluded.received_at, message_states.received_at) RETURNING *",
                    (mailbox.lower(), immutable_id, internet_message_id, reason, received, self._now()),
                )
            ).fetchone()
            return _state_from_row(row)  # type: ignore[arg-type]

        return await self._transaction(work, f"recording the failure of message {immutable_id}")

    async def mark_moved(self, mailbox: str, immutable_id: str, *, in_failure_folder: bool) -> MessageState | None:
        """See :meth:`ImportStore.mark_moved`."""

        async def work(connection: AsyncConnection[_Row]) -> MessageState | None:
            if in_failure_folder:
                query = (
                    "UPDATE message_states SET state = CASE WHEN state = 'failed' THEN 'moved' ELSE state END, "
                    "in_failure_folder = true, updated_at = %s WHERE mailbox = %s AND immutable_id = %s RETURNING *"
                )
            else:
                query = (
                    "UPDATE message_states SET in_failure_folder = false, updated_at = %s "
                    "WHERE mailbox = %s AND immutable_id = %s RETURNING *"
                )
            row = await (await connection.execute(query, (self._now(), mailbox.lower(), immutable_id))).fetchone()
            return None if row is None else _state_from_row(row)

        return await self._transaction(work, f"recording the move of message {immutable_id}")

    async def pending_mailbox_actions(self, mailbox: str) -> list[MessageState]:
        """See :meth:`ImportStore.pending_mailbox_actions`."""

        async def work(connection: AsyncConnection[_Row]) -> list[MessageState]:
            rows = await (
                await connection.execute(
                    "SELECT * FROM message_states WHERE mailbox = %s AND (state IN ('stored', 'failed') "
                    "OR (state = 'read' AND in_failure_folder)) ORDER BY received_at, immutable_id",
                    (mailbox.lower(),),
                )
            ).fetchall()
            return [_state_from_row(row) for row in rows]

        return await self._transaction(work, f"reading the unfinished mailbox actions of {mailbox}")

    async def failures_to_retry(self, mailbox: str, received_after: dt.datetime) -> list[MessageState]:
        """See :meth:`ImportStore.failures_to_retry`."""

        async def work(connection: AsyncConnection[_Row]) -> list[MessageState]:
            rows = await (
                await connection.execute(
                    "SELECT * FROM message_states WHERE mailbox = %s AND state = 'moved' AND received_at > %s "
                    "ORDER BY received_at, immutable_id",
                    (mailbox.lower(), _aware(received_after)),
                )
            ).fetchall()
            return [_state_from_row(row) for row in rows]

        return await self._transaction(work, f"reading the failed messages of {mailbox}")

    # --- reading -----------------------------------------------------------------------------------------------

    async def list_conversations(
        self, destination: str | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[ConversationRecord]:
        """See :meth:`ImportStore.list_conversations`."""
        check_page_limit(limit)

        async def work(connection: AsyncConnection[_Row]) -> list[ConversationRecord]:
            # LIMIT NULL is no limit in PostgreSQL.
            if destination is None:
                cursor = await connection.execute(
                    "SELECT * FROM conversations WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit)
                )
            else:
                cursor = await connection.execute(
                    "SELECT * FROM conversations WHERE id > %s AND destination = %s ORDER BY id LIMIT %s",
                    (after_id, destination.lower(), limit),
                )
            return [await _conversation(connection, row) for row in await cursor.fetchall()]

        return await self._transaction(work, "listing conversations")

    async def get_conversation(self, conversation_id: int) -> ConversationRecord | None:
        """One conversation with its messages, followers and documents, or ``None``."""

        async def work(connection: AsyncConnection[_Row]) -> ConversationRecord | None:
            row = await (
                await connection.execute("SELECT * FROM conversations WHERE id = %s", (conversation_id,))
            ).fetchone()
            return None if row is None else await _conversation(connection, row)

        return await self._transaction(work, f"reading conversation {conversation_id}")

    async def list_message_states(self, mailbox: str | None = None) -> list[MessageState]:
        """See :meth:`ImportStore.list_message_states`."""

        async def work(connection: AsyncConnection[_Row]) -> list[MessageState]:
            if mailbox is None:
                cursor = await connection.execute(
                    "SELECT * FROM message_states ORDER BY mailbox, received_at, immutable_id"
                )
            else:
                cursor = await connection.execute(
                    "SELECT * FROM message_states WHERE mailbox = %s ORDER BY mailbox, received_at, immutable_id",
                    (mailbox.lower(),),
                )
            return [_state_from_row(row) for row in await cursor.fetchall()]

        return await self._transaction(work, "listing message states")

    async def count_messages(self) -> int:
        """See :meth:`ImportStore.count_messages`."""

        async def work(connection: AsyncConnection[_Row]) -> int:
            row = await (await connection.execute("SELECT COUNT(*) AS n FROM messages")).fetchone()
            return int(row["n"])  # type: ignore[index]

        return await self._transaction(work, "counting messages")

    # --- the webhook sink's outbox -----------------------------------------------------------------------------

    async def enqueue_sink_deliveries(self, *, limit: int = 1000, recent_only: bool = False) -> int:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.enqueue_sink_deliveries`."""

        async def work(connection: AsyncConnection[_Row]) -> int:
            floor = 0
            if recent_only:
                newest = await (
                    await connection.execute("SELECT COALESCE(MAX(message_id), 0) AS newest FROM sink_deliveries")
                ).fetchone()
                floor = int(newest["newest"]) - SINK_SCAN_WINDOW  # type: ignore[index]
            rows = await (
                await connection.execute(
                    "SELECT m.id, m.conversation_id, m.destination, m.internet_message_id FROM messages m "
                    "WHERE m.id > %s AND NOT EXISTS (SELECT 1 FROM sink_deliveries d WHERE d.message_id = m.id) "
                    "ORDER BY m.id LIMIT %s",
                    (floor, limit),
                )
            ).fetchall()
            if not rows:
                return 0
            now = self._now()
            added = 0
            for row in rows:
                cursor = await connection.execute(
                    "INSERT INTO sink_deliveries (message_id, conversation_id, idempotency_key, status, "
                    "next_attempt_at, created_at) VALUES (%s, %s, %s, 'pending', %s, %s) ON CONFLICT DO NOTHING",
                    (
                        row["id"],
                        row["conversation_id"],
                        idempotency_key(row["destination"], row["internet_message_id"]),
                        now,
                        now,
                    ),
                )
                added += cursor.rowcount
            return added

        return await self._transaction(work, "queueing webhook sink deliveries")

    async def claim_sink_deliveries(self, holder: str, *, limit: int, lease: dt.timedelta) -> list[SinkDelivery]:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.claim_sink_deliveries`."""

        async def work(connection: AsyncConnection[_Row]) -> list[SinkDelivery]:
            now = self._now()
            rows = await (
                await connection.execute(
                    "UPDATE sink_deliveries SET claimed_by = %s, claimed_until = %s WHERE id IN ("
                    "SELECT id FROM sink_deliveries WHERE status = 'pending' AND next_attempt_at <= %s "
                    "AND (claimed_until IS NULL OR claimed_until <= %s) ORDER BY id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED) RETURNING *",
                    (holder, now + lease, now, now, limit),
                )
            ).fetchall()
            return sorted((_delivery_from_row(row) for row in rows), key=lambda d: d.id)

        return await self._transaction(work, "claiming webhook sink deliveries")

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
        status: SinkDeliveryStatus = "delivered" if delivered else ("pending" if retry_at is not None else "failed")

        async def work(connection: AsyncConnection[_Row]) -> SinkDelivery | None:
            now = self._now()
            row = await (
                await connection.execute(
                    "UPDATE sink_deliveries SET status = %s, attempts = attempts + 1, claimed_by = NULL, "
                    "claimed_until = NULL, last_error = %s, next_attempt_at = COALESCE(%s, next_attempt_at), "
                    "delivered_at = CASE WHEN %s THEN %s::timestamptz ELSE delivered_at END "
                    "WHERE id = %s AND claimed_by = %s RETURNING *",
                    (status, error, retry_at, delivered, now, delivery_id, holder),
                )
            ).fetchone()
            return None if row is None else _delivery_from_row(row)

        return await self._transaction(work, f"recording webhook sink delivery {delivery_id}")

    async def retry_failed_sink_deliveries(self) -> int:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.retry_failed_sink_deliveries`."""

        async def work(connection: AsyncConnection[_Row]) -> int:
            cursor = await connection.execute(
                "UPDATE sink_deliveries SET status = 'pending', attempts = 0, next_attempt_at = %s "
                "WHERE status = 'failed'",
                (self._now(),),
            )
            return cursor.rowcount

        return await self._transaction(work, "re-queueing failed webhook sink deliveries")

    async def list_sink_deliveries(self, status: SinkDeliveryStatus | None = None) -> list[SinkDelivery]:
        """See :meth:`mailplane.importing.webhook_sink.SinkOutbox.list_sink_deliveries`."""

        async def work(connection: AsyncConnection[_Row]) -> list[SinkDelivery]:
            if status is None:
                cursor = await connection.execute("SELECT * FROM sink_deliveries ORDER BY id")
            else:
                cursor = await connection.execute(
                    "SELECT * FROM sink_deliveries WHERE status = %s ORDER BY id", (status,)
                )
            return [_delivery_from_row(row) for row in await cursor.fetchall()]

        return await self._transaction(work, "listing webhook sink deliveries")

    # --- change notification subscriptions ---------------------------------------------------------------------

    async def save_subscription(self, record: SubscriptionRecord) -> None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.save_subscription`."""

        async def work(connection: AsyncConnection[_Row]) -> None:
            await connection.execute(
                "DELETE FROM subscriptions WHERE subscription_id = %s AND mailbox <> %s",
                (record.subscription_id, record.mailbox.lower()),
            )
            await connection.execute(
                "INSERT INTO subscriptions (mailbox, subscription_id, resource, notification_url, expires_at, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (mailbox) DO UPDATE SET "
                "subscription_id = excluded.subscription_id, resource = excluded.resource, "
                "notification_url = excluded.notification_url, expires_at = excluded.expires_at, "
                "updated_at = excluded.updated_at",
                (
                    record.mailbox.lower(),
                    record.subscription_id,
                    record.resource,
                    record.notification_url,
                    _aware(record.expires_at),
                    self._now(),
                ),
            )

        await self._transaction(work, f"saving the subscription of {record.mailbox}")

    async def get_subscription(self, mailbox: str) -> SubscriptionRecord | None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.get_subscription`."""

        async def work(connection: AsyncConnection[_Row]) -> SubscriptionRecord | None:
            row = await (
                await connection.execute("SELECT * FROM subscriptions WHERE mailbox = %s", (mailbox.lower(),))
            ).fetchone()
            return None if row is None else _subscription_from_row(row)

        return await self._transaction(work, f"reading the subscription of {mailbox}")

    async def find_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.find_subscription`."""

        async def work(connection: AsyncConnection[_Row]) -> SubscriptionRecord | None:
            row = await (
                await connection.execute("SELECT * FROM subscriptions WHERE subscription_id = %s", (subscription_id,))
            ).fetchone()
            return None if row is None else _subscription_from_row(row)

        return await self._transaction(work, f"finding subscription {subscription_id}")

    async def list_subscriptions(self) -> list[SubscriptionRecord]:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.list_subscriptions`."""

        async def work(connection: AsyncConnection[_Row]) -> list[SubscriptionRecord]:
            rows = await (await connection.execute("SELECT * FROM subscriptions ORDER BY mailbox")).fetchall()
            return [_subscription_from_row(row) for row in rows]

        return await self._transaction(work, "listing subscriptions")

    async def delete_subscription(self, mailbox: str, subscription_id: str) -> None:
        """See :meth:`mailplane.importing.subscriptions.SubscriptionStore.delete_subscription`."""

        async def work(connection: AsyncConnection[_Row]) -> None:
            await connection.execute(
                "DELETE FROM subscriptions WHERE mailbox = %s AND subscription_id = %s",
                (mailbox.lower(), subscription_id),
            )

        await self._transaction(work, f"forgetting the subscription of {mailbox}")


# --- rows to records ---------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _dumps(value: object) -> str:
    import json  # noqa: PLC0415 - only for JSON columns

    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


def _state_from_row(row: _Row) -> MessageState:
    return MessageState(
        mailbox=row["mailbox"],
        immutable_id=row["immutable_id"],
        internet_message_id=row["internet_message_id"],
        state=row["state"],
        received_at=_utc(row["received_at"]),
        updated_at=_utc(row["updated_at"]),  # type: ignore[arg-type]
        reason=row["reason"],
        attempts=int(row["attempts"]),
        in_failure_folder=bool(row["in_failure_folder"]),
    )


def _delivery_from_row(row: _Row) -> SinkDelivery:
    return SinkDelivery(
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        conversation_id=int(row["conversation_id"]),
        idempotency_key=row["idempotency_key"],
        status=row["status"],
        attempts=int(row["attempts"]),
        next_attempt_at=_utc(row["next_attempt_at"]),  # type: ignore[arg-type]
        created_at=_utc(row["created_at"]),  # type: ignore[arg-type]
        last_error=row["last_error"],
        delivered_at=_utc(row["delivered_at"]),
    )


def _subscription_from_row(row: _Row) -> SubscriptionRecord:
    return SubscriptionRecord(
        mailbox=row["mailbox"],
        subscription_id=row["subscription_id"],
        resource=row["resource"],
        notification_url=row["notification_url"],
        expires_at=_utc(row["expires_at"]),  # type: ignore[arg-type]
        updated_at=_utc(row["updated_at"]),
    )


async def _conversation(connection: AsyncConnection[_Row], conversation: _Row) -> ConversationRecord:
    conversation_id = int(conversation["id"])
    documents: dict[int, list[DocumentRecord]] = {}
    for row in await (
        await connection.execute("SELECT * FROM documents WHERE conversation_id = %s ORDER BY id", (conversation_id,))
    ).fetchall():
        documents.setdefault(int(row["message_id"]), []).append(
            DocumentRecord(
                id=int(row["id"]),
                message_id=int(row["message_id"]),
                conversation_id=conversation_id,
                kind=row["kind"],
                name=row["name"],
                content_type=row["content_type"],
                size=int(row["size"]),
                sha256=row["sha256"],
                content_ref=row["content_ref"],
                content_id=row["content_id"],
                skipped=bool(row["skipped"]),
                skip_reason=row["skip_reason"],
            )
        )
    message_followers: dict[int, list[tuple[int, str]]] = {}
    for row in await (
        await connection.execute(
            "SELECT mf.message_id, mf.follower_id, mf.header FROM message_followers mf "
            "JOIN messages m ON m.id = mf.message_id WHERE m.conversation_id = %s "
            "ORDER BY mf.message_id, mf.follower_id, mf.header",
            (conversation_id,),
        )
    ).fetchall():
        message_followers.setdefault(int(row["message_id"]), []).append((int(row["follower_id"]), row["header"]))
    messages = tuple(
        MessageRecord(
            id=int(row["id"]),
            conversation_id=conversation_id,
            destination=row["destination"],
            mailbox=row["mailbox"],
            immutable_id=row["immutable_id"],
            internet_message_id=row["internet_message_id"],
            subject=row["subject"],
            received_at=_utc(row["received_at"]),  # type: ignore[arg-type]
            attributes=dict(row["attributes"]),
            followers=tuple(message_followers.get(int(row["id"]), ())),
            documents=tuple(documents.get(int(row["id"]), ())),
        )
        for row in await (
            await connection.execute(
                "SELECT * FROM messages WHERE conversation_id = %s ORDER BY received_at, id", (conversation_id,)
            )
        ).fetchall()
    )
    followers = tuple(
        FollowerRecord(
            id=int(row["id"]),
            conversation_id=conversation_id,
            address=row["address"],
            name=row["name"],
            participation=row["participation"],
            parent_type=row["parent_type"],
            parent_id=row["parent_id"],
        )
        for row in await (
            await connection.execute(
                "SELECT * FROM followers WHERE conversation_id = %s ORDER BY id", (conversation_id,)
            )
        ).fetchall()
    )
    return ConversationRecord(
        id=conversation_id,
        destination=conversation["destination"],
        subject=conversation["subject"],
        parent_type=conversation["parent_type"],
        parent_fields=dict(conversation["parent_fields"]),
        graph_conversation_id=conversation["graph_conversation_id"],
        created_at=_utc(conversation["created_at"]),  # type: ignore[arg-type]
        updated_at=_utc(conversation["updated_at"]),  # type: ignore[arg-type]
        messages=messages,
        followers=followers,
    )
