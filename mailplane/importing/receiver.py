"""``mailplane serve``: the webhook receiver for Graph change notifications, and the work queue behind it.

Graph's rules, and how they are met (graph-mail.md §3):

* **Validation handshake.** Graph POSTs ``?validationToken=...`` when a subscription is created or its URL changes;
  the token is echoed at once as ``text/plain`` with 200 (the limit is 10 s).
* **Answer within 3 s.** A notification is checked and queued; the request never waits for Graph or the store.
  Slow answers make Graph retry for up to 4 hours and then throttle the endpoint.
* **clientState** is compared in constant time (``hmac.compare_digest``). A mismatch is logged (the subscription id,
  never the value) and answered 202 with no work, as Microsoft recommends: the sender learns nothing.
* **Notifications are hints.** A ``created`` notification only says "look at this mailbox": the worker runs the
  importer's delta sync for it, which finds every new message, including those whose notifications were lost.
  Notifications for one mailbox are coalesced: a burst of 100 causes one sync (and one more if mail arrived during
  it).
* **Lifecycle events**: ``reauthorizationRequired`` reauthorizes and renews the subscription; ``missed`` resyncs the
  mailbox through delta; ``subscriptionRemoved`` recreates the subscription, then resyncs.

Endpoints: ``POST /notifications`` and ``POST /lifecycle`` (the config's ``changeNotifications.publicUrl`` points at
this server's root, behind an https reverse proxy), ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mailplane.importing.subscriptions import SubscriptionManager

if TYPE_CHECKING:
    from starlette.requests import Request

    from mailplane.importing.importer import Importer
    from mailplane.importing.webhook_sink import WebhookSinkDeliverer

__all__ = [
    "LIFECYCLE_EVENTS",
    "MailboxSyncer",
    "NotificationReceiver",
    "ReceiverCounters",
    "bind_socket",
    "importer_syncer",
    "serve_notifications",
]

_log = logging.getLogger(__name__)

LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_MAX_BODY_BYTES = 4 * 1024 * 1024
_MAX_VALIDATION_TOKEN = 2048


class MailboxSyncer(Protocol):
    """What the queue's workers call: import what is new in ``mailbox`` (its importer's delta sync).

    ``full_resync`` asks for a sync that does not trust the saved delta link (after ``missed`` or a removed
    subscription): the importer starts delta afresh and its exactly-once keys skip what it already has.
    """

    def __call__(self, mailbox: str, *, full_resync: bool) -> Awaitable[object]:
        """Sync ``mailbox``."""
        ...


def importer_syncer(importer: Importer) -> MailboxSyncer:
    """The :class:`MailboxSyncer` of an :class:`~mailplane.importing.importer.Importer`.

    It runs ``sync_mailbox``, or ``resync`` (delta from scratch) when a full resync is asked for.
    """

    async def sync(mailbox: str, *, full_resync: bool) -> object:
        if full_resync:
            return await importer.resync(mailbox)
        return await importer.sync_mailbox(mailbox)

    return sync


@dataclass
class ReceiverCounters:
    """What the receiver did since it started (for monitoring and tests)."""

    notifications: int = 0
    """Change notifications accepted (clientState matched)."""
    rejected: int = 0
    """Notifications ignored because their clientState did not match."""
    lifecycle: int = 0
    """Lifecycle notifications accepted."""
    syncs: int = 0
    """Mailbox syncs run."""
    sync_errors: int = 0
    """Syncs that raised (the next notification or the recovery schedule catches up)."""
    unknown_subscriptions: int = 0
    """Notifications for a subscription id that is not in the store (an old or foreign subscription)."""
    deferred: int = 0
    """Syncs put off because another worker held the mailbox (tried again a little later)."""


@dataclass(frozen=True)
class _Notification:
    subscription_id: str


@dataclass(frozen=True)
class _Lifecycle:
    subscription_id: str
    event: str


@dataclass(frozen=True)
class _Sync:
    mailbox: str


_Work = _Notification | _Lifecycle | _Sync


class NotificationReceiver:
    """The ASGI app (:attr:`app`) and the queue of work it hands to background workers.

    ``client_state`` is the secret every subscription was created with; ``manager`` resolves subscription ids and
    handles lifecycle events; ``syncer`` runs a mailbox's import; ``workers`` is how many mailboxes sync at once.
    Call :meth:`start` inside the event loop that serves :attr:`app`, and :meth:`stop` at the end.
    """

    def __init__(
        self,
        *,
        client_state: str,
        manager: SubscriptionManager,
        syncer: MailboxSyncer,
        workers: int = 4,
        busy_retry_seconds: float = 5.0,
    ) -> None:
        """Build the app; no worker runs until :meth:`start`."""
        self._client_state = client_state.encode()
        self._manager = manager
        self._syncer = syncer
        self._worker_count = max(1, workers)
        self._busy_retry_seconds = busy_retry_seconds
        self._queue: asyncio.Queue[_Work] | None = None
        self._queued_notifications: set[str] = set()
        self._queued_syncs: dict[str, bool] = {}
        self._running: set[str] = set()
        self._again: dict[str, bool] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self.counters = ReceiverCounters()
        self.on_sync: Callable[[str, bool], None] | None = None
        """Called after every mailbox sync with ``(mailbox, full_resync)`` (e.g. to wake the webhook sink)."""
        self.app = Starlette(
            routes=[
                Route("/notifications", self._notifications, methods=["POST"]),
                Route("/lifecycle", self._notifications, methods=["POST"]),
                Route("/healthz", self._health, methods=["GET"]),
            ]
        )

    def __repr__(self) -> str:
        """Never shows the clientState."""
        return f"NotificationReceiver(workers={self._worker_count})"

    # --- the requests (fast: check, queue, answer) ---------------------------------------------------------------

    async def _health(self, _request: Request) -> Response:
        queued = 0 if self._queue is None else self._queue.qsize()
        return JSONResponse({"status": "ok", "queued": queued, "running": sorted(self._running)})

    async def _notifications(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            if len(token) > _MAX_VALIDATION_TOKEN:
                return PlainTextResponse("validation token too long", status_code=400)
            return PlainTextResponse(token, status_code=200, headers={"X-Content-Type-Options": "nosniff"})
        body = await request.body()
        if len(body) > _MAX_BODY_BYTES:
            return PlainTextResponse("payload too large", status_code=413)
        try:
            items = json.loads(body)["value"]
            if not isinstance(items, list):
                raise TypeError("value is not a list")  # noqa: TRY301 - one error path for every malformed body
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("expected a Graph notification collection {'value': [...]}", status_code=400)
        for item in items:
            self._accept(item)
        return Response(status_code=202)

    def _client_state_matches(self, value: object) -> bool:
        presented = value.encode() if isinstance(value, str) else b""
        return hmac.compare_digest(presented, self._client_state)

    def _accept(self, item: Any) -> None:
        if not isinstance(item, dict):
            return
        subscription_id = str(item.get("subscriptionId") or "")
        if not self._client_state_matches(item.get("clientState")):
            self.counters.rejected += 1
            _log.warning("ignored a notification for subscription %r: clientState does not match", subscription_id)
            return
        if not subscription_id:
            return
        event = item.get("lifecycleEvent")
        if event is not None:
            if event not in LIFECYCLE_EVENTS:
                _log.info("ignored unknown lifecycle event %r for subscription %s", event, subscription_id)
                return
            self.counters.lifecycle += 1
            self._put(_Lifecycle(subscription_id, str(event)))
            return
        self.counters.notifications += 1
        if subscription_id in self._queued_notifications:
            return  # coalesced: one sync covers the burst
        self._queued_notifications.add(subscription_id)
        self._put(_Notification(subscription_id))

    def _put(self, work: _Work) -> None:
        if self._queue is None:
            raise RuntimeError("the receiver's workers are not started; call 'await receiver.start()'")
        self._queue.put_nowait(work)

    # --- the workers ---------------------------------------------------------------------------------------------

    def request_sync(self, mailbox: str, *, full_resync: bool = False) -> None:
        """Queue a sync of ``mailbox`` (coalesced with one already queued; repeated after one already running)."""
        mailbox = mailbox.lower()
        if mailbox in self._running:
            self._again[mailbox] = self._again.get(mailbox, False) or full_resync
            return
        if mailbox in self._queued_syncs:
            self._queued_syncs[mailbox] = self._queued_syncs[mailbox] or full_resync
            return
        self._queued_syncs[mailbox] = full_resync
        self._put(_Sync(mailbox))

    async def start(self) -> None:
        """Start the workers in the running event loop."""
        if self._queue is not None:
            return
        self._queue = asyncio.Queue()
        self._workers = [
            asyncio.create_task(self._work(), name=f"mailplane-receiver-{n}") for n in range(self._worker_count)
        ]

    async def stop(self) -> None:
        """Stop the workers (a sync in progress is cancelled; its mailbox is resynced by the next run)."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []
        self._queue = None

    async def drain(self) -> None:
        """Wait until the queue is empty and no work runs (tests and orderly shutdown)."""
        while self._queue is not None and (self._queue.qsize() or self._busy):  # noqa: ASYNC110 - polls two counters
            await asyncio.sleep(0.01)

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            work = await queue.get()
            self._busy += 1
            try:
                await self._handle(work)
            except Exception:  # noqa: BLE001 - a worker must survive any single failure
                _log.exception("handling %s failed", work)
            finally:
                self._busy -= 1
                queue.task_done()

    async def _handle(self, work: _Work) -> None:
        if isinstance(work, _Notification):
            self._queued_notifications.discard(work.subscription_id)
            mailbox = await self._manager.mailbox_of(work.subscription_id)
            if mailbox is None:
                self.counters.unknown_subscriptions += 1
                _log.warning("notification for unknown subscription %s; ignored", work.subscription_id)
                return
            self.request_sync(mailbox)
        elif isinstance(work, _Lifecycle):
            await self._lifecycle(work)
        else:
            await self._sync(work.mailbox)

    async def _lifecycle(self, work: _Lifecycle) -> None:
        _log.info("lifecycle event %s for subscription %s", work.event, work.subscription_id)
        if work.event == "reauthorizationRequired":
            await self._manager.reauthorize(work.subscription_id)
            return
        mailbox = await self._manager.mailbox_of(work.subscription_id)
        if mailbox is None:
            self.counters.unknown_subscriptions += 1
            return
        if work.event == "subscriptionRemoved":
            await self._manager.recreate(work.subscription_id)
        # missed, or removed (notifications may have been lost meanwhile): delta is the truth.
        self.request_sync(mailbox, full_resync=True)

    async def _sync(self, mailbox: str) -> None:
        full_resync = self._queued_syncs.pop(mailbox, False)
        self._running.add(mailbox)
        try:
            self.counters.syncs += 1
            report = await self._syncer(mailbox, full_resync=full_resync)
            if getattr(report, "leased_elsewhere", False):
                # Another worker is syncing this mailbox and may have read delta before this mail arrived.
                self.counters.deferred += 1
                asyncio.get_running_loop().call_later(self._busy_retry_seconds, self._retry_later, mailbox, full_resync)
            if self.on_sync is not None:
                self.on_sync(mailbox, full_resync)
        except Exception:  # noqa: BLE001 - logged; the next notification or the recovery schedule catches up
            self.counters.sync_errors += 1
            _log.exception("syncing %s after a notification failed", mailbox)
        finally:
            self._running.discard(mailbox)
        if mailbox in self._again:
            self.request_sync(mailbox, full_resync=self._again.pop(mailbox))

    def _retry_later(self, mailbox: str, full_resync: bool) -> None:
        if self._queue is not None:
            self.request_sync(mailbox, full_resync=full_resync)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one), for :func:`serve_notifications`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def serve_notifications(
    receiver: NotificationReceiver,
    manager: SubscriptionManager,
    *,
    sock: socket.socket,
    stop: asyncio.Event,
    sink: WebhookSinkDeliverer | None = None,
    ready: asyncio.Event | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``receiver.app`` on ``sock`` until ``stop`` is set, with everything behind it.

    In order: the HTTP server starts (subscriptions are validated against it), the receiver's workers start, every
    mailbox gets its subscription (:meth:`SubscriptionManager.ensure_all`; failures are logged and retried by the
    renewal loop), then the renewal loop and the webhook sink (if any) run. ``ready`` is set once the subscriptions
    were attempted.
    """
    config = uvicorn.Config(receiver.app, log_level=log_level, lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    server_task = asyncio.create_task(server.serve(sockets=[sock]), name="mailplane-serve-http")
    background: list[asyncio.Task[None]] = []
    try:
        while not server.started:
            if server_task.done():
                server_task.result()
                raise RuntimeError("the notification receiver's HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        await receiver.start()
        if sink is not None:
            receiver.on_sync = lambda _mailbox, _full: sink.wake()
        try:
            await manager.ensure_all()
        except Exception:  # noqa: BLE001 - logged in ensure_all; the renewal loop retries, recovery imports meanwhile
            _log.exception("creating subscriptions failed; the renewal loop will retry")
        for mailbox in manager.mailboxes:
            # Mail that arrived while no subscription existed: one sync per mailbox at start.
            receiver.request_sync(mailbox)
        background.append(asyncio.create_task(_renew_loop(manager, stop), name="mailplane-subscriptions"))
        if sink is not None:
            background.append(asyncio.create_task(sink.run(stop), name="mailplane-webhook-sink"))
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await server_task
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await receiver.stop()


async def _renew_loop(manager: SubscriptionManager, stop: asyncio.Event) -> None:
    await manager.run(stop)
