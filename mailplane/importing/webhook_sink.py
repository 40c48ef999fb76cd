"""The webhook sink: every imported message's conversation is posted, signed, to the integrating product's endpoint.

For products that take imports over HTTP (``webhookSink`` in the integration config). How it holds up:

* **Nothing is dropped.** The import store is the outbox. Every message record the importer wrote gets one delivery
  row (:meth:`SinkOutbox.enqueue_sink_deliveries` finds the records that have none yet, so a crash between the store
  write and the delivery costs nothing: the next pass picks the record up). A delivery leaves the outbox only when the
  endpoint answered 2xx, or is kept as ``failed`` with the reason when the endpoint refused it for good (4xx) or the
  attempts ran out; :meth:`SinkOutbox.retry_failed_sink_deliveries` puts those back in the queue.
* **Retries** on network errors, timeouts, 408, 425, 429 and 5xx, with exponential backoff and jitter, honouring
  ``Retry-After`` (seconds or an HTTP date), up to ``maxAttempts``. The next attempt time is stored, so a restart
  neither forgets a retry nor hammers the endpoint.
* **Several workers** may deliver from the same store: a delivery is claimed with a short lease first (``SKIP LOCKED``
  on PostgreSQL), so two workers never post the same delivery at the same time.
* **At least once, deduplicated by key.** A crash after the endpoint accepted a delivery but before the store noted
  it repeats the post; every post carries ``Idempotency-Key`` (stable for one message in one destination), which the
  receiver uses to drop repeats.

Each POST carries (see ``docs/scaling.md`` for the receiver's side)::

    Content-Type: application/json
    Idempotency-Key: imp_<32 hex>          same for every attempt of one message's delivery
    X-Mailplane-Timestamp: <unix seconds>
    X-Mailplane-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Mailplane-Attempt: <n>

The secret is read from the environment variable the config names; it is never logged or stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from mailplane.exceptions import SinkError
from mailplane.graph import retry_after_seconds
from mailplane.importing.serving_state import SinkDelivery, SinkDeliveryStatus, SinkOutbox, idempotency_key
from mailplane.importing.store import ConversationRecord
from mailplane.integration import WebhookSink

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryPass",
    "SinkDelivery",
    "SinkDeliveryStatus",
    "SinkOutbox",
    "WebhookSinkDeliverer",
    "conversation_payload",
    "idempotency_key",
    "sign_payload",
    "verify_signature",
]

_log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Mailplane-Signature"
TIMESTAMP_HEADER = "X-Mailplane-Timestamp"
ATTEMPT_HEADER = "X-Mailplane-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_SIGNATURE_VERSION = "v1"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_MAX_RETRY_AFTER = dt.timedelta(hours=1)
_CLAIM_LEASE = dt.timedelta(minutes=2)
_FULL_SCAN_EVERY = dt.timedelta(hours=1)
_REQUEUE = "'mailplane serve --config FILE --requeue-failed-deliveries'"

# --- signing -----------------------------------------------------------------------------------------------------


def sign_payload(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Mailplane-Signature`` value: ``v1=`` + hex HMAC-SHA256 of ``"<timestamp>." + body`` with ``secret``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"{_SIGNATURE_VERSION}={mac}"


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance: dt.timedelta = dt.timedelta(minutes=5),
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is valid for ``body`` sent at ``timestamp`` (a receiver's check; constant time).

    A timestamp further than ``tolerance`` from ``now`` (default: the current time) is rejected, so a captured
    request cannot be replayed later.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance.total_seconds():
        return False
    return hmac.compare_digest(sign_payload(secret, timestamp, body), signature)


# --- the payload -------------------------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {(_camel(k) if isinstance(k, str) else k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return _jsonable(dict(value))
    return value


def conversation_payload(conversation: ConversationRecord, delivery: SinkDelivery) -> dict[str, Any]:
    """The JSON body posted for ``delivery``: the conversation as it is now, and which message was imported.

    Keys are camelCase; times are ISO 8601 UTC. The message attributes and parent fields are passed as the importer
    produced them (their keys are the config's field names and are not renamed).
    """
    raw = asdict(conversation)
    parent_fields = dict(conversation.parent_fields)
    attributes = {message.id: dict(message.attributes) for message in conversation.messages}
    body = _jsonable(raw)
    body["parentFields"] = _jsonable_values(parent_fields)
    body["messageCount"] = conversation.message_count
    for message in body["messages"]:
        message["attributes"] = _jsonable_values(attributes[message["id"]])
        message["followers"] = [{"followerId": fid, "header": header} for fid, header in message["followers"]]
    return {
        "type": "conversation.imported",
        "deliveryKey": delivery.idempotency_key,
        "messageId": delivery.message_id,
        "conversation": body,
    }


def _jsonable_values(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _jsonable(value) for key, value in mapping.items()}


# --- delivering --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPass:
    """What one :meth:`WebhookSinkDeliverer.deliver_due` pass did."""

    enqueued: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        """Deliveries posted in this pass."""
        return self.delivered + self.retrying + self.failed


def _default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class WebhookSinkDeliverer:
    """Posts the outbox's due deliveries to the configured endpoint (see the module docstring).

    ``settings`` is the config's ``webhook_sink``; the HMAC secret is read from ``environ[settings.secret_env]``
    (default ``os.environ``) when the deliverer is built and raises :class:`~mailplane.exceptions.SinkError` when
    unset. Keyword-only: ``transport`` (an httpx transport, for tests), ``clock`` (current UTC time; give the store
    the same one), ``backoff_base`` and ``backoff_cap`` (seconds: attempt ``n`` waits ``base * 2**(n-1)``, capped,
    with jitter between half and all of it), ``holder`` (this worker's name in claims).
    """

    def __init__(
        self,
        settings: WebhookSink,
        outbox: SinkOutbox,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        backoff_base: float = 2.0,
        backoff_cap: float = 600.0,
        holder: str | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        """Read the secret and prepare the HTTP client; nothing is sent until :meth:`deliver_due`."""
        env = os.environ if environ is None else environ
        secret = env.get(settings.secret_env)
        if not secret:
            raise SinkError(
                f"starting the webhook sink for {_safe_url(settings.url)}: the variable {settings.secret_env} "
                "(webhookSink.secretEnv) is not set. Export the HMAC secret shared with the receiving endpoint in it."
            )
        self._secret = secret.encode()
        self._settings = settings
        self._outbox = outbox
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._holder = holder or _default_holder()
        self._jitter = jitter or (lambda: random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not cryptography
        self._client = httpx.AsyncClient(timeout=settings.timeout_seconds, transport=transport, follow_redirects=False)
        self._wake = asyncio.Event()
        self._next_full_scan = 0.0

    def __repr__(self) -> str:
        """The endpoint, never the secret."""
        return f"WebhookSinkDeliverer({_safe_url(self._settings.url)!r})"

    @property
    def holder(self) -> str:
        """The name this deliverer claims deliveries under."""
        return self._holder

    def wake(self) -> None:
        """Deliver soon: call after a store write so :meth:`run` does not wait for its next poll."""
        self._wake.set()

    def backoff(self, attempt: int, retry_after: float | None = None) -> dt.timedelta:
        """How long to wait after failed attempt number ``attempt`` (1-based), at least ``retry_after`` seconds."""
        exponential = min(self._backoff_cap, self._backoff_base * 2 ** max(0, attempt - 1))
        seconds = exponential * self._jitter()
        if retry_after is not None:
            seconds = max(seconds, min(retry_after, _MAX_RETRY_AFTER.total_seconds()))
        return dt.timedelta(seconds=seconds)

    async def deliver_due(self, *, limit: int = 100) -> DeliveryPass:
        """One pass: enqueue new records, then post every due delivery once (oldest first) and record the outcome."""
        # A full scan at start and hourly (records that predate the sink, or a very long outage); else the cheap one.
        full = time.monotonic() >= self._next_full_scan
        enqueued = await self._outbox.enqueue_sink_deliveries(recent_only=not full)
        if full:
            self._next_full_scan = time.monotonic() + _FULL_SCAN_EVERY.total_seconds()
        claimed = await self._outbox.claim_sink_deliveries(self._holder, limit=limit, lease=_CLAIM_LEASE)
        delivered = retrying = failed = 0
        for delivery in claimed:
            outcome = await self._deliver(delivery)
            if outcome == "delivered":
                delivered += 1
            elif outcome == "pending":
                retrying += 1
            else:
                failed += 1
        return DeliveryPass(enqueued, delivered, retrying, failed)

    async def run(self, stop: asyncio.Event, *, poll_interval: float = 5.0) -> None:
        """Deliver until ``stop`` is set: a pass after every :meth:`wake` and at least every ``poll_interval`` s.

        A store or endpoint problem is logged and retried on the next pass; it never ends the loop.
        """
        while not stop.is_set():
            self._wake.clear()
            try:
                result = await self.deliver_due()
            except Exception:  # noqa: BLE001 - the loop must outlive a store outage; the next pass retries
                _log.exception("webhook sink pass for %s failed; retrying", _safe_url(self._settings.url))
                result = DeliveryPass()
            if result.attempted:
                continue  # more may be due right away
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
            _done, pending = await asyncio.wait(waiters, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()

    async def _deliver(self, delivery: SinkDelivery) -> SinkDeliveryStatus:
        attempt = delivery.attempts + 1
        where = f"delivering conversation {delivery.conversation_id} to {_safe_url(self._settings.url)}"
        conversation = await self._outbox.get_conversation(delivery.conversation_id)
        if conversation is None:
            error = f"{where}: the conversation is no longer in the store. Nothing to deliver"
            await self._outbox.finish_sink_delivery(delivery.id, self._holder, delivered=False, error=error)
            return "failed"
        body = json.dumps(conversation_payload(conversation, delivery), ensure_ascii=False).encode()
        now = self._clock()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_payload(self._secret, timestamp, body),
            ATTEMPT_HEADER: str(attempt),
            "User-Agent": "mailplane-webhook-sink",
        }
        retry_after: float | None = None
        try:
            response = await self._client.post(self._settings.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            cause, retryable = f"no answer within {self._settings.timeout_seconds:g} s ({type(exc).__name__})", True
        except httpx.TransportError as exc:
            cause, retryable = f"could not connect ({type(exc).__name__}: {exc})", True
        else:
            if 200 <= response.status_code < 300:  # noqa: PLR2004 - the 2xx range
                await self._outbox.finish_sink_delivery(delivery.id, self._holder, delivered=True)
                return "delivered"
            cause = f"{response.status_code} {response.reason_phrase}".strip()
            retryable = response.status_code in _RETRYABLE_STATUSES or response.status_code >= 500  # noqa: PLR2004
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if retryable and attempt < self._settings.max_attempts:
            retry_at = now + self.backoff(attempt, retry_after)
            error = (
                f"{where}: {cause} (attempt {attempt} of {self._settings.max_attempts}). "
                f"Retrying at {retry_at:%H:%M:%S} UTC"
            )
            _log.warning("%s", error)
            await self._outbox.finish_sink_delivery(
                delivery.id, self._holder, delivered=False, error=error, retry_at=retry_at
            )
            return "pending"
        if retryable:
            advice = f"The attempts ran out; check the endpoint, then {_REQUEUE} re-queues it"
        else:
            advice = f"The endpoint refused it; fix the endpoint or the config, then {_REQUEUE} re-queues it"
        error = f"{where}: {cause} (attempt {attempt}). {advice}"
        _log.error("%s", error)
        await self._outbox.finish_sink_delivery(delivery.id, self._holder, delivered=False, error=error)
        return "failed"

    async def aclose(self) -> None:
        """Close the HTTP client (not the store)."""
        await self._client.aclose()


def _safe_url(url: str) -> str:
    """The URL without its query or user info (either may carry a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
