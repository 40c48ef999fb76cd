"""The importer: shared mailboxes in, conversations out, exactly once.

For each enabled shared account, one worker at a time (a lease in the store) runs a *sync*:

1. finish what a previous run left half done (:meth:`ImportStore.pending_mailbox_actions`): mark read what is stored,
   move to the failure folder what failed, move back what a retry imported;
2. read the folder's changes with delta from the saved delta link (from scratch on the first run or when the link is
   no longer valid; the unread listing when delta is unavailable);
3. for each unread message without a state row: read its facts, choose destinations, fill the conversation parent
   fields, match followers, stream attachments and inline images within the size limit (record skips), and write it
   all with one :meth:`ImportStore.record_import` transaction; then mark it read (chained ``$batch`` requests of
   up to 20 in four lanes, plain ``PATCH`` requests while the first batches fill up, see ``_MailboxRun``). A
   message that cannot be imported gets a ``failed`` row with the reason and is moved to the failure folder;
4. save the new delta link.

Nothing is marked read before it is in the store, and nothing is written twice: a crash anywhere leaves either an
unread message without a row (found again by delta or recovery) or a row that says what is left to do.

Recovery (:meth:`Importer.recover`, on the config's cron schedule) lists unread messages older than the grace period
and younger than the maximum age, and retries messages in the failure folder younger than the maximum failed age.
:meth:`Importer.resync` forgets the delta link and syncs from scratch (for the notification receiver's ``missed`` and
``subscriptionRemoved`` lifecycle events).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import importlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailplane.exceptions import GraphError, StoreError
from mailplane.importing.mailbox_graph import (
    BATCH_LIMIT,
    GraphMessage,
    MailboxGraph,
    MessagePage,
    SyncStateLostError,
)
from mailplane.importing.message_facts import MessageFacts, message_facts
from mailplane.importing.routing import InMemoryRecords, choose_destinations, destination_inputs
from mailplane.importing.store import DocumentInput, DocumentKind, ImportedMessage, LeaseLostError, MessageState

if TYPE_CHECKING:
    from mailplane.graph import GraphClient
    from mailplane.importing.blobs import FileBlobStore
    from mailplane.importing.store import ImportStore
    from mailplane.integration import IntegrationConfig, SharedAccount
    from mailplane.mapping import RecordLookup

__all__ = [
    "ImportReport",
    "Importer",
    "IncomingMessageHandler",
    "MailboxReport",
    "load_incoming_message_handler",
    "new_holder_id",
]

logger = logging.getLogger("mailplane.importing")

_MARK_READ_ATTEMPTS = 3
_LAST_SINGLES_PER_LANE = 3
_END_SLACK = 0.5  # request times a batch may add to when the remaining mark-reads could end at the soonest


IncomingMessageHandler = Callable[[dict[str, Any]], Mapping[str, Any] | None]
"""``settings.incomingMessageHandler``: called with a message's properties (the values mappings read, see
``mailplane.integration.MESSAGE_PROPERTIES``) before mapping; returns the properties to change, or ``None``. An
exception quarantines the message (failure folder, with the exception as the reason)."""


def load_incoming_message_handler(config: IntegrationConfig) -> IncomingMessageHandler | None:
    """Import the config's ``incomingMessageHandler`` (``package.module.function``). Raises ValueError if it fails."""
    path = config.settings.incoming_message_handler
    if not path:
        return None
    module_name, _, name = path.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"loading settings.incomingMessageHandler {path!r} of {config.source}: {exc}. "
            "Install the package that provides it, or fix the dotted path."
        ) from exc
    if not callable(handler):
        raise TypeError(f"loading settings.incomingMessageHandler {path!r}: it is not a function. Name a function.")
    return handler


def new_holder_id() -> str:
    """A worker id for leases: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class MailboxReport:
    """What one sync or recovery run did for one mailbox."""

    mailbox: str
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    moved_to_failure_folder: int = 0
    marked_read: int = 0
    retried: int = 0
    skipped_attachments: int = 0
    resynced: bool = False
    used_unread_listing: bool = False
    leased_elsewhere: bool = False
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """Per-mailbox reports of one run."""

    mailboxes: list[MailboxReport] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Messages imported in this run."""
        return sum(m.imported for m in self.mailboxes)

    @property
    def failed(self) -> int:
        """Messages that failed in this run."""
        return sum(m.failed for m in self.mailboxes)


class _MailboxRun:
    """One worker's pass over one mailbox (state shared between its steps)."""

    def __init__(self, importer: Importer, account: SharedAccount, report: MailboxReport) -> None:
        self.importer = importer
        self.account = account
        self.mailbox = account.address.lower()
        self.report = report
        self.graph = MailboxGraph(importer.graph, self.mailbox, page_size=importer.page_size)
        self.store = importer.store
        self._failure_folder_id: str | None = None
        self._source_folder: str | None = None
        self._to_mark: list[tuple[str, int]] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._lanes = 0
        self._lane_count = importer.graph.limiter.limit
        # Batches in flight (start time, items) and the seconds one request took in recent batches: when draining,
        # a lane sizes its batch so that it finishes with the lanes still busy.
        self._sending: dict[int, tuple[float, int]] = {}
        self._request_seconds: float | None = None
        self._draining = False
        # Messages handed to importing and not finished yet, and whether the last page is in: with both, the
        # lanes know how many are left to mark read.
        self._importing = 0
        self._end_known = False
        self._full_batches = 0
        self._warm_up_calls = 0
        self._conversations = _KeyedLocks()
        # Backpressure: importing stays at most two rounds of batches ahead of marking read. Importing everything
        # first would keep the event loop busy while the mark-read lanes wait for their answers to be processed.
        self._high_water = self._lane_count * BATCH_LIMIT * 2
        self._room = asyncio.Event()
        self._room.set()
        self._move_back: set[str] = set()
        self._gate = asyncio.Semaphore(importer.messages_in_parallel)

    # --- mailbox-side actions ----------------------------------------------------------------------------------

    async def source_folder(self) -> str:
        """The folder imported from, as Graph takes it in a URL (the configured display name resolved to an id)."""
        if self._source_folder is None:
            self._source_folder = await self.graph.resolve_folder(self.account.folder)
        return self._source_folder

    async def failure_folder_id(self) -> str:
        if self._failure_folder_id is None:
            self._failure_folder_id = await self.graph.ensure_folder(self.account.failure_folder)
        return self._failure_folder_id

    def queue_mark_read(self, immutable_id: str, *, move_back: bool = False) -> None:
        if move_back:
            self._move_back.add(immutable_id)
        self._to_mark.append((immutable_id, 0))
        if len(self._to_mark) >= self._high_water:
            self._room.clear()
        self._kick()

    # Marking read runs in "lanes", as many as requests may be in flight on the mailbox. Each lane sends one chained
    # $batch at a time (one request in flight), so the lanes together keep the mailbox's concurrency busy. A batch
    # costs one round trip more than its items (the envelope), so lanes send full batches of 20. Two exceptions:
    # until every lane has had a full batch (the start of a run, while importing is still catching up), a free lane
    # takes whatever is waiting rather than stay idle (one message: a plain PATCH), 20 times at most (if batches
    # still do not fill up, importing is the slower side and small batches would only cost more requests); and once
    # the last page is in, the number of messages left is known and batches shrink so that the lanes finish
    # together, instead of one lane still working through a full batch alone, the last few (three per lane at most)
    # as plain PATCHes. Otherwise a lane waits for a full batch.

    def _next_batch(self) -> tuple[int, bool]:
        """Items for a free lane's next mark-read call (0: wait for more), and whether it is a warm-up call."""
        queued = len(self._to_mark)
        if not queued:
            return 0, False
        size = BATCH_LIMIT
        if self._draining or self._end_known:
            left = queued + self._importing
            # The last few go one by one: a plain PATCH is one round trip, a batch of n is n + 1, and lanes taking
            # one at a time end within a round trip of each other.
            size = 1 if left <= self._lane_count * _LAST_SINGLES_PER_LANE else self._balanced_batch_size(left)
        if size <= queued:
            return size, False
        if self._draining:
            return queued, False
        if self._full_batches >= self._lane_count or self._warm_up_calls >= BATCH_LIMIT:
            return 0, False
        return queued, True  # warming up: whatever is waiting (one message: a plain PATCH)

    @staticmethod
    def _round_trips(items: int) -> int:
        """Request times a mark-read call of ``items`` takes: the items, plus the envelope for a batch."""
        return items + 1 if items > 1 else items

    def _balanced_batch_size(self, left: int) -> int:
        """Items for a lane that is free now, so that all lanes finish at about the same time.

        The ``left`` messages would be done soonest as single requests taken by each lane as it comes free (no
        envelopes; lanes still busy come free after their current call). A batch of n chained items costs n + 1
        request times. The free lane takes the largest batch after which the rest, spread the same way, still ends
        within ``_END_SLACK`` of that soonest end: with plenty left, a full batch (its envelope, spread over the
        lanes, costs a quarter of a request time); near the end, smaller ones, so that no lane is still working
        through a batch after the others have finished.
        """
        per_request = self._request_seconds
        if per_request is None:
            return min(BATCH_LIMIT, max(1, -(-left // self._lane_count)))
        now = asyncio.get_running_loop().time()
        busy = [
            max(0.0, (start + self._round_trips(items) * per_request - now) / per_request)
            for start, items in self._sending.values()
        ]
        busy += [0.0] * max(0, self._lane_count - 1 - len(busy))
        soonest = _spread_end([0.0, *busy], left)
        for size in range(min(BATCH_LIMIT, left), 1, -1):
            own = self._round_trips(size)
            if max(own, _spread_end([own, *busy], left - size)) <= soonest + _END_SLACK:
                return size
        return 1

    def _kick(self) -> None:
        while self._lanes < self._lane_count and self._next_batch()[0]:
            self._lanes += 1
            task = asyncio.create_task(self._lane())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _lane(self) -> None:
        try:
            while True:
                size, warm_up = self._next_batch()
                if not size:
                    break
                self._full_batches += size == BATCH_LIMIT
                self._warm_up_calls += warm_up
                batch, self._to_mark = self._to_mark[:size], self._to_mark[size:]
                if len(self._to_mark) < self._high_water:
                    self._room.set()
                await self._flush(batch)
        finally:
            self._lanes -= 1

    async def _flush(self, batch: list[tuple[str, int]]) -> None:
        ids = [immutable_id for immutable_id, _ in batch]
        loop = asyncio.get_running_loop()
        key, started = id(batch), loop.time()
        self._sending[key] = (started, len(ids))
        try:
            result = await self.graph.mark_read(ids)
        except GraphError as error:
            # Left 'stored': the next run's pending actions mark them read.
            self.report.errors.append(str(error))
            logger.warning("%s", error)
            return
        finally:
            del self._sending[key]
        # Includes any wait for a concurrency slot, so it is an estimate; it only decides how the last items are split.
        per_request = (loop.time() - started) / self._round_trips(len(ids))
        previous = self._request_seconds
        self._request_seconds = per_request if previous is None else 0.7 * previous + 0.3 * per_request
        attempts = dict(batch)
        for immutable_id in result.failed:
            if attempts[immutable_id] + 1 < _MARK_READ_ATTEMPTS:
                self._to_mark.append((immutable_id, attempts[immutable_id] + 1))
        finished = [*result.done, *result.gone]
        if finished:
            # Recorded in the background so the lane sends its next batch at once (the store may be busy).
            task = asyncio.create_task(self._record_read(finished, len(result.done)))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _record_read(self, finished: list[str], marked: int) -> None:
        await self.store.mark_read(self.mailbox, finished)
        self.report.marked_read += marked
        for immutable_id in finished:
            if immutable_id in self._move_back:
                await self._move_back_to_folder(immutable_id)

    async def drain(self) -> None:
        """Mark read everything queued, retrying items a batch could not do."""
        self._draining = True
        try:
            while self._to_mark or self._flushes:
                self._kick()
                if self._flushes:
                    await asyncio.gather(*list(self._flushes))
        finally:
            self._draining = False

    async def _move_back_to_folder(self, immutable_id: str) -> None:
        try:
            await self.graph.move(immutable_id, await self.source_folder())
        except GraphError as error:
            self.report.errors.append(str(error))
            return
        await self.store.mark_moved(self.mailbox, immutable_id, in_failure_folder=False)

    async def move_to_failure_folder(self, immutable_id: str) -> None:
        try:
            await self.graph.move(immutable_id, await self.failure_folder_id())
        except GraphError as error:
            # Left 'failed': the next run's pending actions move it.
            self.report.errors.append(str(error))
            logger.warning("%s", error)
            return
        await self.store.mark_moved(self.mailbox, immutable_id, in_failure_folder=True)
        self.report.moved_to_failure_folder += 1

    async def finish_pending(self) -> None:
        for state in await self.store.pending_mailbox_actions(self.mailbox):
            await self.finish(state)
        await self.drain()

    async def finish(self, state: MessageState) -> None:
        if state.state == "stored":
            self.queue_mark_read(state.immutable_id, move_back=state.in_failure_folder)
        elif state.state == "failed":
            await self.move_to_failure_folder(state.immutable_id)
        elif state.state == "read" and state.in_failure_folder:
            await self._move_back_to_folder(state.immutable_id)

    # --- importing ---------------------------------------------------------------------------------------------

    async def consume(
        self, pages: AsyncIterator[MessagePage], *, accept: Callable[[GraphMessage], bool] | None = None
    ) -> str | None:
        """Import every page; the delta link of the last page (``None`` for listings).

        A page's import starts while the previous page's last messages are still being imported (one waiting for
        its attachments would otherwise hold everything up); at most two pages are in progress at once, and
        messages of one conversation are still imported one after another, oldest first within a page.
        """
        delta_link = None
        importing: list[asyncio.Task[None]] = []
        try:
            async for page in _read_ahead(pages):
                await self.importer.check_lease(self.mailbox)
                self._end_known = self._end_known or page.last
                importing.append(
                    asyncio.create_task(self.import_page([m for m in page.messages if accept is None or accept(m)]))
                )
                if len(importing) > 1:
                    await importing.pop(0)
                delta_link = page.delta_link or delta_link
            while importing:
                await importing.pop(0)
        except BaseException as error:
            # A page that could not be read (or a lease lost) ends the sync, but the pages being imported finish
            # first, so their messages are written rather than redone by the next run. Only a cancelled run cancels
            # them.
            for task in importing:
                if isinstance(error, asyncio.CancelledError):
                    task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        await self.drain()
        return delta_link

    async def import_page(self, messages: Sequence[GraphMessage]) -> None:
        ids = [m.id for m in messages if m.id]
        states = await self.store.get_message_states(self.mailbox, ids) if ids else {}
        threads: dict[str, list[GraphMessage]] = {}
        for message in messages:
            if not message.id:
                continue
            state = states.get(message.id)
            if state is not None:
                await self.finish(state)  # already known: at most finish its mailbox side
                continue
            if message.is_read:
                continue  # read by someone before it was imported: not in the import queue
            threads.setdefault(message.conversation_id or message.id, []).append(message)
        # Threads in parallel; within a thread oldest first (delta serves the newest first), so replies find the
        # conversation their original started.
        self._importing += sum(len(thread) for thread in threads.values())
        await asyncio.gather(*(self._import_thread(key, thread) for key, thread in threads.items()))

    async def _import_thread(self, key: str, messages: list[GraphMessage]) -> None:
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        oldest_first = sorted(messages, key=lambda m: m.received_date_time or epoch)
        async with self._conversations.hold(key):  # the conversation may still be importing from the previous page
            for message in oldest_first:
                try:
                    await self.import_message(message)
                finally:
                    self._importing -= 1
                    self._kick()

    async def import_message(self, message: GraphMessage, *, retry: bool = False) -> None:
        immutable_id = message.id or ""
        async with self._gate:
            # Checked inside the gate: an Event wakes every waiter at once, so a check before it would let all the
            # waiting messages through when room frees up, and their CPU would delay the mark-read lanes.
            await self._room.wait()
            try:
                facts = message_facts(message, mailbox=self.mailbox, mailbox_name=self.account.display_name)
                imported = await self._build(facts)
            except (StoreError, asyncio.CancelledError):
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of one message must not stop the run
                await self.fail(message, _reason(exc))
                return
            outcome = await self.store.record_import(imported)
        if outcome.duplicate:
            self.report.duplicates += 1
        else:
            self.report.imported += 1
        if retry:
            self.report.retried += 1
        if outcome.state.state == "stored":
            self.queue_mark_read(immutable_id, move_back=outcome.state.in_failure_folder)

    async def _build(self, facts: MessageFacts) -> ImportedMessage:
        config = self.importer.config
        handler = self.importer.incoming_message_handler
        if handler is not None:
            changed = handler(dict(facts.properties))
            if changed:
                facts = dataclasses.replace(facts, properties={**facts.properties, **changed})
        accounts, exclusive = choose_destinations(config, self.mailbox, facts)
        destinations = destination_inputs(config, accounts, facts, self.importer.records)
        documents = await self._documents(facts) if facts.may_have_files else ()
        skipped = [d.name for d in documents if d.skipped]
        self.report.skipped_attachments += len(skipped)
        attributes = {**facts.attributes, "skippedAttachments": skipped}
        return ImportedMessage(
            mailbox=self.mailbox,
            immutable_id=facts.immutable_id,
            internet_message_id=facts.internet_message_id,
            received_at=facts.received_at,
            destinations=destinations,
            subject=facts.subject,
            thread=facts.thread,
            attributes=attributes,
            documents=documents,
            exclusive=exclusive,
        )

    async def _documents(self, facts: MessageFacts) -> tuple[DocumentInput, ...]:
        limit = self.importer.config.settings.attachment_size_limit_bytes
        documents = []
        for info in await self.graph.list_attachments(facts.immutable_id):
            kind: DocumentKind = "embeddedFile" if info.is_inline else "document"
            if not info.is_file:
                documents.append(
                    DocumentInput(
                        kind,
                        info.name,
                        info.content_type,
                        info.size,
                        skipped=True,
                        skip_reason="an attached item (message or event), not a file",
                    )
                )
                continue
            if info.size > limit:
                documents.append(
                    DocumentInput(
                        kind,
                        info.name,
                        info.content_type,
                        info.size,
                        content_id=info.content_id,
                        skipped=True,
                        skip_reason=f"{info.size} bytes is over the attachment size limit of {limit} bytes",
                    )
                )
                continue
            # Graph's size counts the attachment item, a little more than the file; allow for it.
            with self.importer.blobs.writer(max_bytes=max(info.size, 1) * 2 + 65536) as writer:
                await self.graph.stream_attachment(facts.immutable_id, info.id, writer)
                blob = writer.finish()
            documents.append(
                DocumentInput(kind, info.name, info.content_type, blob.size, blob.sha256, blob.ref, info.content_id)
            )
        return tuple(documents)

    async def fail(self, message: GraphMessage, reason: str) -> None:
        immutable_id = message.id or ""
        logger.warning("importing message %s from %s failed: %s", immutable_id, self.mailbox, reason)
        state = await self.store.record_failure(
            self.mailbox,
            immutable_id,
            reason=reason,
            internet_message_id=message.internet_message_id,
            received_at=message.received_date_time,
        )
        if state.state in ("stored", "read"):
            return
        self.report.failed += 1
        if state.in_failure_folder:
            await self.store.mark_moved(self.mailbox, immutable_id, in_failure_folder=True)
        else:
            await self.move_to_failure_folder(immutable_id)


class _KeyedLocks:
    """One lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


def _spread_end(free: list[float], items: float) -> float:
    """When ``items`` request times of work end if lanes coming free at ``free`` share it evenly (water-filling)."""
    ordered = sorted(free)
    started = 0.0
    for count, start in enumerate(ordered, start=1):
        started += start
        end = (items + started) / count
        if count == len(ordered) or end <= ordered[count]:
            return max(end, start)
    raise AssertionError("unreachable")  # pragma: no cover


async def _read_ahead(pages: AsyncIterator[MessagePage]) -> AsyncIterator[MessagePage]:
    """The same pages, the next one asked for while the caller imports the current one.

    Asked for late, a page request would wait for a concurrency slot behind the mark-read batches, and the lanes
    could run dry meanwhile. An error fetching a page is raised where that page would have been yielded.
    """
    iterator = aiter(pages)
    ahead: asyncio.Future[MessagePage] = asyncio.ensure_future(anext(iterator))
    try:
        while True:
            try:
                page = await ahead
            except StopAsyncIteration:
                return
            ahead = asyncio.ensure_future(anext(iterator))
            yield page
    finally:
        if not ahead.done():
            ahead.cancel()
        with contextlib.suppress(BaseException):
            await ahead
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:2000]


class Importer:
    """Imports the configured shared mailboxes into ``store`` (see the module docstring).

    ``graph`` is a :class:`~mailplane.graph.GraphClient`; ``blobs`` keeps attachment bytes; ``records`` answers
    lookups and follower matching (default: no records). ``holder`` names this worker in leases (default: host, pid
    and a random part). ``lease_ttl`` is how long a dead worker keeps a mailbox. ``page_size`` is the delta page size;
    ``messages_in_parallel`` bounds per-mailbox message processing (Graph requests are separately limited to 4 per
    mailbox by the client). ``clock`` returns the current UTC time.
    """

    def __init__(
        self,
        config: IntegrationConfig,
        graph: GraphClient,
        store: ImportStore,
        *,
        blobs: FileBlobStore,
        records: RecordLookup | None = None,
        holder: str | None = None,
        lease_ttl: dt.timedelta = dt.timedelta(minutes=5),
        page_size: int = 500,
        messages_in_parallel: int = 4,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """Nothing is sent or written until a sync runs."""
        self.config = config
        self.graph = graph
        self.store = store
        self.blobs = blobs
        self.records: RecordLookup = records if records is not None else InMemoryRecords()
        self.holder = holder or new_holder_id()
        self.lease_ttl = lease_ttl
        self.page_size = page_size
        self.messages_in_parallel = messages_in_parallel
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lease_checked: dict[str, float] = {}
        self.incoming_message_handler = load_incoming_message_handler(config)

    def _accounts(self, mailboxes: Iterable[str] | None) -> list[SharedAccount]:
        enabled = [a for a in self.config.accounts if a.enabled]
        if mailboxes is None:
            return enabled
        wanted = {m.lower() for m in mailboxes}
        unknown = wanted - {a.address.lower() for a in enabled}
        if unknown:
            raise ValueError(f"not an enabled shared account in {self.config.source}: {', '.join(sorted(unknown))}")
        return [a for a in enabled if a.address.lower() in wanted]

    async def check_lease(self, mailbox: str) -> None:
        """Renew this worker's lease on ``mailbox`` (at most every third of the TTL). Raises LeaseLostError."""
        loop = asyncio.get_running_loop()
        last = self._lease_checked.get(mailbox, 0.0)
        if loop.time() - last < self.lease_ttl.total_seconds() / 3:
            return
        if await self.store.renew_lease(mailbox, self.holder, self.lease_ttl) is None:
            raise LeaseLostError(f"importing {mailbox}: another worker took the mailbox over (this lease expired)")
        self._lease_checked[mailbox] = loop.time()

    @contextlib.asynccontextmanager
    async def _leased(self, account: SharedAccount, report: MailboxReport) -> AsyncIterator[_MailboxRun | None]:
        mailbox = account.address.lower()
        lease = await self.store.acquire_lease(mailbox, self.holder, self.lease_ttl)
        if lease is None:
            report.leased_elsewhere = True
            yield None
            return
        self._lease_checked[mailbox] = asyncio.get_running_loop().time()
        try:
            yield _MailboxRun(self, account, report)
        finally:
            with contextlib.suppress(StoreError):
                await self.store.release_lease(mailbox, self.holder)

    # --- public API --------------------------------------------------------------------------------------------

    async def import_once(self, mailboxes: Iterable[str] | None = None) -> ImportReport:
        """Sync every enabled shared account (or those named) once, mailboxes in parallel."""
        accounts = self._accounts(mailboxes)
        reports = await asyncio.gather(*(self._sync(a, resync=False) for a in accounts))
        return ImportReport(list(reports))

    async def sync_mailbox(self, mailbox: str) -> MailboxReport:
        """Sync one mailbox from its saved delta link."""
        [account] = self._accounts([mailbox])
        return await self._sync(account, resync=False)

    async def resync(self, mailbox: str) -> MailboxReport:
        """Forget the mailbox's delta link and sync its folder from scratch (after ``missed``/``subscriptionRemoved``).

        Everything already imported is recognised by its state row; only what was missed is imported.
        """
        [account] = self._accounts([mailbox])
        return await self._sync(account, resync=True)

    async def _sync(self, account: SharedAccount, *, resync: bool) -> MailboxReport:
        report = MailboxReport(account.address.lower())
        try:
            async with self._leased(account, report) as run:
                if run is None:
                    return report
                await self._sync_leased(run, account, report, resync=resync)
        except (GraphError, LeaseLostError) as error:
            report.errors.append(str(error))
            logger.warning("%s", error)
        return report

    async def _sync_leased(
        self, run: _MailboxRun, account: SharedAccount, report: MailboxReport, *, resync: bool
    ) -> None:
        mailbox = account.address.lower()
        await run.finish_pending()
        folder = await run.source_folder()
        link = None if resync else await self.store.get_delta_link(mailbox, account.folder)
        report.resynced = resync
        try:
            try:
                new_link = await run.consume(run.graph.delta_pages(folder, link))
            except SyncStateLostError as lost:
                logger.info("%s", lost)
                report.resynced = True
                await self.store.set_delta_link(mailbox, account.folder, None)
                new_link = await run.consume(run.graph.delta_pages(folder, None))
        except GraphError as error:
            if error.status not in (400, 501):
                raise
            logger.warning("%s; falling back to the unread listing", error)
            report.used_unread_listing = True
            await run.consume(run.graph.unread_pages(folder))
            new_link = None
        if new_link:
            await self.store.set_delta_link(mailbox, account.folder, new_link)

    async def recover(
        self,
        mailboxes: Iterable[str] | None = None,
        *,
        max_unread_age: dt.timedelta | None = None,
    ) -> ImportReport:
        """Re-process what crashes and missed notifications left (see the module docstring), mailboxes in parallel.

        Unread messages received between ``max_unread_age`` (default: ``settings.recovery.max_unread_age``) and the
        grace period ago are imported if they have no state; failed messages received within
        ``settings.recovery.max_failed_age`` are retried.
        """
        accounts = self._accounts(mailboxes)
        oldest = self.config.settings.recovery.max_unread_age if max_unread_age is None else max_unread_age
        reports = await asyncio.gather(*(self._recover(a, oldest) for a in accounts))
        return ImportReport(list(reports))

    async def _recover(self, account: SharedAccount, max_unread_age: dt.timedelta) -> MailboxReport:
        report = MailboxReport(account.address.lower())
        settings = self.config.settings.recovery
        now = self.clock()
        newest, oldest = now - settings.grace_period, now - max_unread_age
        try:
            async with self._leased(account, report) as run:
                if run is None:
                    return report
                await run.finish_pending()

                def in_window(message: GraphMessage) -> bool:
                    received = message.received_date_time
                    return received is None or oldest <= received <= newest

                await run.consume(
                    run.graph.unread_pages(await run.source_folder(), received_after=oldest), accept=in_window
                )
                for state in await self.store.failures_to_retry(run.mailbox, now - settings.max_failed_age):
                    message = await run.graph.get_message(state.immutable_id)
                    if message is not None:
                        await run.import_message(message, retry=True)
                await run.drain()
        except (GraphError, LeaseLostError) as error:
            report.errors.append(str(error))
            logger.warning("%s", error)
        return report

    async def watch(
        self,
        *,
        poll_interval: dt.timedelta = dt.timedelta(minutes=1),
        stop: asyncio.Event | None = None,
        wake: asyncio.Event | None = None,
        on_report: Callable[[str, ImportReport], None] | None = None,
    ) -> None:
        """Sync every ``poll_interval`` and run recovery on the config's cron schedule, until ``stop`` is set.

        Setting ``wake`` (e.g. on a change notification) starts the next sync at once.
        """
        from croniter import croniter  # noqa: PLC0415 - only the long-running mode needs it

        stop = stop or asyncio.Event()
        wake = wake or asyncio.Event()
        recovery = self.config.settings.recovery
        schedule = croniter(recovery.schedule, self.clock()) if recovery.enabled else None
        next_recovery = schedule.get_next(dt.datetime) if schedule is not None else None
        while not stop.is_set():
            wake.clear()
            report = await self.import_once()
            if on_report is not None:
                on_report("import", report)
            if schedule is not None and next_recovery is not None and self.clock() >= next_recovery:
                report = await self.recover()
                if on_report is not None:
                    on_report("recovery", report)
                next_recovery = schedule.get_next(dt.datetime)
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
            _, pending = await asyncio.wait(
                waiters, timeout=poll_interval.total_seconds(), return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
