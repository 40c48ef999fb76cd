"""The sender: queue a message, keep the mailbox within its limits, and deliver it exactly once.

Usage::

    async with GraphClient(credential, base_url=config.graph_base_url) as client:
        store = open_send_store(config.store)
        sender = Sender.for_designated(config, client, store)
        receipt = await sender.send(OutgoingMessage(to=(Address("ann@example.com"),), subject="Hi", text="Hello"))
        receipt.state  # "sent", "queued" (over a limit: `mailplane send-queued` sends it later) or "failed"

Exactly once. Every send is stored first under its idempotency key (the caller's, or derived from mailbox and
content), so asking again for the same key returns the first send instead of making a second. Then each step is
written to the store *before* the Graph call it leads to (see :mod:`mailplane.sending.store` for the states), and
the Graph side can be found again: the draft carries a marker category unique to the key, and its immutable id
still names the message once sent. After a crash, a timeout, a dropped connection or a 5xx whose outcome is unknown,
the next attempt looks before it acts: a draft being created is searched for by its marker; a send whose answer was
lost is decided by reading the draft back (still a draft: send it; sent or deleted after submission: done).

Limits. Before a draft is created and again just before it is sent, the store's ledger is checked and written in one
transaction (:meth:`SendStore.reserve_budget`, deciding with :mod:`mailplane.sending.governor`); a send over a
limit stays queued with the time it may go. Once Graph accepted the send, its ledger entry is dated at that moment
(:meth:`SendStore.confirm_sent`): Exchange counts the message when it is submitted, after the reservation, and the
slot must not reopen for us before it does for Exchange. 429 answers are retried by the Graph client (honouring
Retry-After); when those retries run out the send waits for the time the service asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import httpx

from mailplane.exceptions import (
    AccessDeniedError,
    AuthenticationError,
    GraphError,
    IdempotencyConflictError,
    MailboxNotEnabledError,
    SendError,
    ThrottledError,
)
from mailplane.integration import SendingLimits
from mailplane.sending.governor import DAY_SECONDS, recipients_per_part
from mailplane.sending.graph_drafts import SMALL_ATTACHMENT_BYTES, GraphDrafts, attachments_go_inline
from mailplane.sending.outgoing import (
    Address,
    OutgoingAttachment,
    OutgoingMessage,
    content_fingerprint,
    derive_idempotency_key,
    draft_marker,
    split_by_recipients,
    validate_idempotency_key,
)
from mailplane.sending.store import UNFINISHED_STATES, SendRecord, SendState, SendStore, SendTestStatus
from mailplane.sending.upload import DEFAULT_CHUNK_BYTES, UploadError, upload_in_chunks
from mailplane.templates import PERSONALIZED_CODES, MergeContext, Person

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping

    from mailplane.graph import GraphClient
    from mailplane.integration import IntegrationConfig, MessageTemplate
    from mailplane.sending.response_log import RecordingTransport

__all__ = ["QueueRun", "SendReceipt", "Sender"]

_CONFIGURATION_ERRORS = (AuthenticationError, AccessDeniedError, MailboxNotEnabledError)
_NOT_FOUND = 404
_TIMEOUT = 408


@dataclass(frozen=True)
class SendReceipt:
    """What happened to one send (all its parts, when it was split by recipient count)."""

    key: str
    parts: tuple[SendRecord, ...]

    @property
    def state(self) -> str:
        """``sent`` (every part), ``failed`` (a part was refused), or ``queued`` (a part is still on its way)."""
        if all(p.state == SendState.SENT for p in self.parts):
            return "sent"
        if any(p.state == SendState.FAILED for p in self.parts):
            return "failed"
        return "queued"

    @property
    def not_before(self) -> float | None:
        """When the next unfinished part may go (None when every part is finished)."""
        due = [p.not_before for p in self.parts if not p.is_final]
        return max(due) if due else None

    @property
    def errors(self) -> list[str]:
        """The last error of every part that has one."""
        return [p.last_error for p in self.parts if p.last_error]


@dataclass
class QueueRun:
    """What a queue run did."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    waiting: int = 0
    next_due: float | None = None


def _is_uncertain(error: GraphError) -> bool:
    """Whether the request may have been carried out although it failed (no answer, a timeout, a 5xx)."""
    return error.status is None or error.status >= 500 or error.status == _TIMEOUT  # noqa: PLR2004


class Sender:
    """Sends from one mailbox through ``client``, with state in ``store``. Build it with :meth:`for_designated`.

    Keyword-only: ``display_name`` (the From name), ``reply_to`` (default Reply-To), ``limits`` (the mailbox's
    sending limits), ``save_to_sent_items``, ``templates``, ``personalized_emails`` (one message per recipient
    for templates), ``upload_transport`` (httpx transport for upload-session PUTs), ``chunk_bytes``,
    ``workers`` (sends in progress at once), ``lease_seconds``, ``retry_delay`` (first pause after an unknown
    outcome, doubling), ``max_attempts`` (uncertain failures in a row before the send waits for a later run),
    ``uncertain_grace`` (pause before looking for a draft whose create went unanswered), ``recorder`` (a
    :class:`RecordingTransport` under ``client`` whose log ``send_test`` keeps), ``keep_finished_days`` (queue runs
    forget sent and failed sends older than this, default 30; their keys may then be sent again; None keeps all),
    ``on_step`` (called with the step
    name and the record at every step boundary, for progress output), ``clock`` and ``sleep``.
    """

    def __init__(
        self,
        client: GraphClient,
        store: SendStore,
        mailbox: str,
        *,
        display_name: str | None = None,
        reply_to: tuple[Address, ...] = (),
        limits: SendingLimits | None = None,
        save_to_sent_items: bool = False,
        templates: Mapping[str, MessageTemplate] | None = None,
        personalized_emails: bool = False,
        upload_transport: httpx.AsyncBaseTransport | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        workers: int = 4,
        lease_seconds: float = 600.0,
        retry_delay: float = 1.0,
        max_attempts: int = 6,
        uncertain_grace: float = 1.0,
        recorder: RecordingTransport | None = None,
        keep_finished_days: float | None = 30.0,
        on_step: Callable[[str, SendRecord], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Bind the sender to ``mailbox``; nothing is sent until asked."""
        self.mailbox = mailbox.lower()
        self._client = client
        self._store = store
        self._drafts = GraphDrafts(client, mailbox)
        self._sender = Address(mailbox, display_name) if display_name else None
        self._reply_to = reply_to
        self.limits = limits or SendingLimits()
        self._save_to_sent_items = save_to_sent_items
        self._templates = dict(templates or {})
        self._personalized = personalized_emails
        self._upload_transport = upload_transport
        self._chunk_bytes = chunk_bytes
        self._workers = max(1, workers)
        self._lease_seconds = lease_seconds
        self._retry_delay = retry_delay
        self._max_attempts = max(1, max_attempts)
        self._uncertain_grace = uncertain_grace
        self._recorder = recorder
        self._keep_finished_days = keep_finished_days
        self._on_step = on_step
        self._clock = clock
        self._sleep = sleep
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._blocked_until = 0.0

    @classmethod
    def for_designated(
        cls, config: IntegrationConfig, client: GraphClient, store: SendStore, **options: object
    ) -> Sender:
        """A sender for the config's designated mailbox, its limits, Reply-To, Sent Items choice and templates."""
        designated = config.designated
        if designated is None:
            raise SendError(
                f"sending with {config.source}: the config has no sending mailbox. Add accounts.designated "
                "(the mailbox the tenant stack scopes Mail.Send to)"
            )
        settings: dict[str, object] = {
            "display_name": designated.display_name,
            "reply_to": (Address(designated.reply_to),) if designated.reply_to else (),
            "limits": config.sending_limits,
            "save_to_sent_items": designated.save_to_sent_items,
            "templates": config.templates,
            "personalized_emails": config.settings.personalized_emails,
        }
        settings.update(options)
        return cls(client, store, designated.address, **settings)  # type: ignore[arg-type]

    # --- asking for sends ----------------------------------------------------------------------------------------
    def prepare(self, message: OutgoingMessage, idempotency_key: str | None = None) -> list[SendRecord]:
        """The records a send of ``message`` becomes (several when it has too many recipients); nothing stored."""
        if not message.reply_to and self._reply_to:
            message = OutgoingMessage(
                to=message.to,
                cc=message.cc,
                bcc=message.bcc,
                subject=message.subject,
                text=message.text,
                html=message.html,
                reply_to=self._reply_to,
                attachments=message.attachments,
            )
        try:
            key = validate_idempotency_key(idempotency_key) if idempotency_key else None
        except ValueError as error:
            raise SendError(f"sending as {self.mailbox}: {error}") from None
        key = key or derive_idempotency_key(self.mailbox, message)
        parts = split_by_recipients(message, recipients_per_part(self.limits))
        # Every part carries the whole message's fingerprint: a key asked for again is recognized even when the
        # limits changed in between and the message would now be split differently.
        fingerprint = content_fingerprint(message)
        now = self._clock()
        records = []
        for number, part in enumerate(parts, start=1):
            part_key = key if len(parts) == 1 else f"{key}#{number}/{len(parts)}"
            records.append(
                SendRecord(
                    key=part_key,
                    mailbox=self.mailbox,
                    message=part,
                    fingerprint=fingerprint,
                    marker=draft_marker(self.mailbox, part_key),
                    not_before=now,
                    created_at=now,
                    updated_at=now,
                    group_key=key,
                    part=number,
                    parts=len(parts),
                )
            )
        return records

    async def send(
        self,
        message: OutgoingMessage,
        *,
        idempotency_key: str | None = None,
        wait: bool = False,
        wait_seconds: float | None = None,
    ) -> SendReceipt:
        """Store the send and carry it out as far as the limits allow now.

        With ``wait`` the call also waits (at most ``wait_seconds``, default without end) for the governor to let
        every part go. Asking again with the same key (or the same content without a key) returns the same send.
        Raises :class:`~mailplane.exceptions.IdempotencyConflictError` when the key was used for other content and
        :class:`~mailplane.exceptions.GraphError` subclasses for configuration problems (the send stays queued).
        """
        prepared = self.prepare(message, idempotency_key)
        records = self._store.group(prepared[0].group_key)
        if records and records[0].fingerprint != prepared[0].fingerprint:
            raise IdempotencyConflictError(
                f"sending {prepared[0].group_key}: the idempotency key was already used for a different message. Use "
                "a new key for a new message, or send exactly the same content to retry",
                key=prepared[0].group_key,
            )
        records = records or self._store.add(prepared)
        keys = {r.key for r in records}
        deadline = None if wait_seconds is None else self._clock() + wait_seconds
        await self._run(keys=keys, wait=wait, deadline=deadline)
        return self.receipt(records[0].group_key)

    async def send_template(
        self,
        name: str,
        context: MergeContext,
        *,
        to: tuple[Address, ...] = (),
        cc: tuple[Address, ...] = (),
        bcc: tuple[Address, ...] = (),
        attachments: tuple[OutgoingAttachment, ...] = (),
        idempotency_key: str | None = None,
        wait: bool = False,
    ) -> list[SendReceipt]:
        """Render template ``name`` with ``context`` and send it.

        Personalized (one message per recipient, each rendered with ``recipient`` set) when the config turns
        personalized e-mails on or the template uses a ``recipient.*`` merge code; otherwise one message to all.
        """
        template = self._templates.get(name)
        if template is None:
            known = ", ".join(sorted(self._templates)) or "none"
            raise SendError(f"sending template {name!r} as {self.mailbox}: no such template (defined: {known})")
        if context.sender.address.lower() != self.mailbox:
            # The message goes out from this mailbox whatever the caller put there: sender.* codes must agree.
            context = replace(context, sender=Person(self.mailbox, self._sender.name if self._sender else None))
        if context.reply_to is None and self._reply_to:
            context = replace(context, reply_to=Person(self._reply_to[0].address, self._reply_to[0].name))
        personalized = self._personalized or bool(template.merge_codes & PERSONALIZED_CODES)
        if not personalized:
            rendered = template.render(context)
            message = OutgoingMessage(
                to=to, cc=cc, bcc=bcc, subject=rendered.subject, text=rendered.text, html=rendered.html,
                attachments=attachments,
            )  # fmt: skip
            return [await self.send(message, idempotency_key=idempotency_key, wait=wait)]
        receipts = []
        for person in (*to, *cc, *bcc):
            rendered = template.render(replace(context, recipient=Person(person.address, person.name)))
            message = OutgoingMessage(
                to=(person,), subject=rendered.subject, text=rendered.text, html=rendered.html, attachments=attachments
            )
            key = f"{idempotency_key}/{person.address.lower()}" if idempotency_key else None
            receipts.append(await self.send(message, idempotency_key=key, wait=wait))
        return receipts

    async def send_queued(self, *, wait: bool = False, wait_seconds: float | None = None) -> QueueRun:
        """Send every queued send of the mailbox that the limits allow now (with ``wait``: all of them, waiting)."""
        deadline = None if wait_seconds is None else self._clock() + wait_seconds
        return await self._run(keys=None, wait=wait, deadline=deadline)

    async def send_test(self, to: Address, *, wait_seconds: float = 90.0) -> SendTestStatus:
        """Send a test message to ``to`` now (waiting up to ``wait_seconds`` for the limits); record the outcome.

        The status (time, outcome, the redacted API response log when a ``recorder`` was given) is saved in the
        store for ``mailplane status``; it is also returned. Configuration errors are recorded, then raised.
        """
        if self._recorder is not None:
            self._recorder.clear()
        started = self._clock()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
        message = OutgoingMessage(
            to=(to,),
            subject=f"mailplane send test from {self.mailbox}",
            text=(
                f"This is a test message sent by 'mailplane send-test' from {self.mailbox} at {stamp}.\n"
                "If you can read it, the app may send as this mailbox.\n"
            ),
        )
        key = f"send-test:{int(started * 1000)}:{secrets.token_hex(4)}"
        error: GraphError | None = None
        try:
            receipt = await self.send(message, idempotency_key=key, wait=True, wait_seconds=wait_seconds)
        except GraphError as raised:
            error = raised
            receipt = self.receipt(key)
        if error is not None:
            status, detail = "failed", str(error)
        elif receipt.state == "sent":
            status, detail = "sent", f"accepted by Graph for delivery to {to.address}"
        elif receipt.state == "failed":
            status, detail = "failed", "; ".join(receipt.errors)
        else:
            due = receipt.not_before or started
            status = "queued"
            detail = (
                "over the mailbox's sending limits; it goes out with 'mailplane send-queued' after "
                f"{time.strftime('%H:%M:%S UTC', time.gmtime(due))}"
            )
        result = SendTestStatus(
            mailbox=self.mailbox,
            at=self._clock(),
            status=status,
            detail=detail,
            key=key,
            recipient=to.address,
            response_log=tuple(self._recorder.entries) if self._recorder is not None else (),
        )
        self._store.save_send_test(result)
        if error is not None:
            raise error
        return result

    def receipt(self, key: str) -> SendReceipt:
        """The current receipt of the send the caller named ``key`` (or whose derived key that is)."""
        parts = self._store.group(key)
        if not parts:
            raise SendError(f"looking up send {key} of {self.mailbox}: there is no such send in the store", key=key)
        return SendReceipt(key, tuple(parts))

    # --- the queue loop ------------------------------------------------------------------------------------------
    async def _run(self, *, keys: Collection[str] | None, wait: bool, deadline: float | None) -> QueueRun:
        run = QueueRun()
        if keys is None and self._keep_finished_days is not None:
            self._store.forget_finished(self.mailbox, self._clock() - self._keep_finished_days * DAY_SECONDS)
        upload_http = httpx.AsyncClient(transport=self._upload_transport, timeout=httpx.Timeout(120.0, connect=30.0))
        try:
            async with asyncio.TaskGroup() as group:
                for number in range(self._workers):
                    owner = f"{self._owner}:{number}"
                    group.create_task(self._worker(owner, run, keys, wait, deadline, upload_http))
        except BaseExceptionGroup as failures:
            # One worker's error stops the others (their sends stay where the store says); raise it as it is.
            raise failures.exceptions[0] from None
        finally:
            await upload_http.aclose()
        unfinished = self._store.records(self.mailbox, frozenset(UNFINISHED_STATES))
        waiting = [r for r in unfinished if keys is None or r.key in keys]
        run.waiting = len(waiting)
        run.next_due = min((r.not_before for r in waiting), default=None)
        return run

    async def _worker(  # noqa: PLR0917 - private, called from one place
        self,
        owner: str,
        run: QueueRun,
        keys: Collection[str] | None,
        wait: bool,
        deadline: float | None,
        upload_http: httpx.AsyncClient,
    ) -> None:
        while True:
            now = self._clock()
            claimed = []
            if now >= self._blocked_until:
                claimed = self._store.claim_due(self.mailbox, now, owner, self._lease_seconds, 1, keys=keys)
            if claimed:
                record = claimed[0]
                try:
                    final = await self._advance(record, upload_http)
                finally:
                    self._store.release(record.key, owner)
                if final.state == SendState.SENT:
                    run.sent.append(final.key)
                elif final.state == SendState.FAILED:
                    run.failed.append(final.key)
                continue
            if not wait:
                return
            due = self._next_due(keys)
            if due is None:
                return
            due = max(due, self._blocked_until)
            if deadline is not None and due > deadline:
                return
            # Poll at least every second: another worker may finish and leave something due earlier.
            await self._sleep(min(max(due - self._clock(), 0.01), 1.0))

    def _next_due(self, keys: Collection[str] | None) -> float | None:
        if keys is None:
            return self._store.next_due(self.mailbox)
        unfinished = [self._store.get(k) for k in keys]
        due = [r.not_before for r in unfinished if r is not None and not r.is_final]
        return min(due) if due else None

    def _step(self, name: str, record: SendRecord) -> None:
        if self._on_step is not None:
            self._on_step(name, record)

    async def _advance(  # noqa: C901 - one branch per state and per kind of failure, kept together on purpose
        self, record: SendRecord, upload_http: httpx.AsyncClient
    ) -> SendRecord:
        """Carry one send forward until it is finished or has to wait; return its last record."""
        look_first = record.state != SendState.QUEUED  # resumed after a crash: Graph may be ahead of the store
        failures = 0
        while not record.is_final:
            try:
                if record.state == SendState.QUEUED:
                    record = self._reserve_then(record, SendState.DRAFTING)
                    if record.state == SendState.QUEUED:
                        return record
                    self._step("drafting", record)
                elif record.state == SendState.DRAFTING:
                    record = await self._draft(record, look_first=look_first)
                elif record.state == SendState.DRAFTED:
                    record = await self._attach_and_send(record, upload_http)
                    if record.state == SendState.DRAFTED:
                        return record  # waiting for the limits
                else:
                    record = await self._settle_unknown_send(record)
            except ThrottledError as error:
                record = self._store.get(record.key) or record
                wait = error.retry_after if error.retry_after is not None else 30.0
                return self._store.update(record.key, not_before=self._clock() + wait, last_error=str(error))
            except _CONFIGURATION_ERRORS as error:
                self._store.update(record.key, last_error=str(error))
                raise
            except GraphError as error:
                record = self._store.get(record.key) or record
                if not _is_uncertain(error):
                    return await self._refused(record, error)
                failures += 1
                look_first = True
                record = self._store.update(record.key, attempts=record.attempts + 1, last_error=str(error))
                self._step("uncertain", record)
                delay = min(self._retry_delay * 2 ** (failures - 1), 60.0)
                if failures >= self._max_attempts:
                    return self._store.update(record.key, not_before=self._clock() + delay)
                await self._sleep(delay)
        return record

    def _reserve_then(self, record: SendRecord, next_state: SendState) -> SendRecord:
        now = self._clock()
        allowed_at = self._store.reserve_budget(
            self.mailbox, record.key, record.message.recipient_count, now, self.limits
        )
        if allowed_at > now:
            # Other sends of this mailbox wait too (at most a minute: a smaller one may fit the day's budget).
            self._blocked_until = max(self._blocked_until, min(allowed_at, now + 60.0))
            self._step("waiting", record)
            return self._store.update(record.key, not_before=allowed_at)
        return self._store.update(record.key, state=next_state)

    async def _draft(self, record: SendRecord, *, look_first: bool) -> SendRecord:
        draft_id = None
        if look_first:
            if record.attempts:
                await self._sleep(self._uncertain_grace)
            found = await self._drafts.find_drafts(record.marker)
            if found:
                draft_id = found[0].id
                for duplicate in found[1:]:
                    await self._drafts.delete_message(duplicate.id)
        if draft_id is None:
            draft_id = await self._drafts.create_draft(
                record.message,
                key=record.key,
                marker=record.marker,
                sender=self._sender,
                save_to_sent_items=self._save_to_sent_items,
            )
            self._step("draft-created", record)
        record = self._store.update(record.key, state=SendState.DRAFTED, draft_id=draft_id)
        self._step("drafted", record)
        return record

    async def _attach_and_send(self, record: SendRecord, upload_http: httpx.AsyncClient) -> SendRecord:
        assert record.draft_id is not None
        try:
            if record.message.attachments and not attachments_go_inline(record.message):
                await self._ensure_attachments(record, upload_http)
                self._step("attached", record)
            reserved = self._reserve_then(record, SendState.SENDING)
            if reserved.state != SendState.SENDING:
                return reserved
            record = reserved
            self._step("sending", record)
            await self._drafts.send_draft(record.draft_id or "")
        except GraphError as error:
            if error.status == _NOT_FOUND:
                # The draft is gone before it was sent (deleted by someone): make it again.
                return self._store.update(record.key, state=SendState.DRAFTING, draft_id=None, last_error=str(error))
            raise
        self._step("send-accepted", record)
        accepted = self._clock()
        self._store.confirm_sent(self.mailbox, record.key, accepted)
        record = self._store.update(record.key, state=SendState.SENT, sent_at=accepted, last_error=None)
        self._step("sent", record)
        return record

    async def _ensure_attachments(self, record: SendRecord, upload_http: httpx.AsyncClient) -> None:
        draft_id = record.draft_id or ""
        present = Counter(name for name, _ in await self._drafts.attachment_names(draft_id))
        for attachment in record.message.attachments:
            if present[attachment.name] > 0:
                present[attachment.name] -= 1
                continue
            if attachment.size < SMALL_ATTACHMENT_BYTES:
                await self._drafts.add_attachment(draft_id, attachment)
                continue
            upload_url = await self._drafts.create_upload_session(draft_id, attachment)
            try:
                await upload_in_chunks(
                    upload_http, upload_url, attachment.content, name=attachment.name, chunk_bytes=self._chunk_bytes
                )
            except UploadError as error:
                # Whether the last chunk arrived is unknown: the next attempt lists the attachments again.
                raise GraphError(
                    f"attaching {attachment.name} to a draft in {self.mailbox}: {error}", status=None
                ) from error

    async def _settle_unknown_send(self, record: SendRecord) -> SendRecord:
        """The send was asked for but its answer is unknown: decide from the draft whether it went out."""
        state = await self._drafts.draft_state(record.draft_id or "")
        if state is not None and state.is_draft:
            record = self._store.update(record.key, state=SendState.DRAFTED)
            self._step("send-not-done", record)
            return record
        note = None if state is not None else "the draft was gone after the send (deleted after submission)"
        settled = self._clock()
        self._store.confirm_sent(self.mailbox, record.key, settled)
        record = self._store.update(record.key, state=SendState.SENT, sent_at=settled, last_error=note)
        self._step("sent", record)
        return record

    async def _refused(self, record: SendRecord, error: GraphError) -> SendRecord:
        """Graph refused a step outright (a 4xx): the send failed, unless the refusal hides an earlier success."""
        if record.state == SendState.SENDING:
            # e.g. "only drafts can be sent": an earlier send whose answer was lost went through after all.
            record = await self._settle_unknown_send(record)
            if record.state == SendState.SENT:
                return record
        record = self._store.update(record.key, state=SendState.FAILED, last_error=str(error))
        self._step("failed", record)
        if record.draft_id:
            # Keep the Drafts folder to messages on their way out (it is searched for markers); best effort.
            with contextlib.suppress(GraphError):
                await self._drafts.delete_message(record.draft_id)
        return record
