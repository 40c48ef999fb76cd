"""Change notifications of the dev tenant: the validation handshake and background delivery to webhooks.

Delivery is best effort, like Graph's: one background thread posts each notification once, with a short timeout,
and records what happened in :attr:`Notifier.deliveries` so tests can wait for it.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from mailplane.devtenant.state import Change, DevTenantState, Subscription, now_utc

__all__ = ["Delivery", "Notifier", "validate_notification_url"]

_VALIDATION_TIMEOUT_SECONDS = 10.0
_DELIVERY_TIMEOUT_SECONDS = 3.0


async def validate_notification_url(url: str) -> bool:
    """Graph's handshake: POST ``url?validationToken=...``; the endpoint must echo the token as text within 10 s."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    separator = "&" if "?" in url else "?"
    try:
        async with httpx.AsyncClient(timeout=_VALIDATION_TIMEOUT_SECONDS) as client:
            response = await client.post(
                f"{url}{separator}validationToken={quote(token, safe='')}",
                headers={"Content-Type": "text/plain; charset=utf-8"},
            )
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text == token  # noqa: PLR2004


@dataclass(frozen=True)
class Delivery:
    """One notification POST and its outcome (``status`` is None when the endpoint could not be reached)."""

    url: str
    payload: dict[str, Any]
    status: int | None
    at: float


class Notifier:
    """Matches message changes against subscriptions and posts notifications from a background thread."""

    def __init__(self, state: DevTenantState) -> None:
        """Listen to ``state``; the delivery thread starts on the first notification."""
        self._state = state
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []
        self._pending = 0
        state.add_listener(self._on_change)

    def _on_change(self, change: Change) -> None:
        now = now_utc()
        for subscription in list(self._state.subscriptions.values()):
            if subscription.expiration <= now or subscription.mailbox.lower() != change.mailbox:
                continue
            if subscription.folder_id is not None and subscription.folder_id != change.folder_id:
                continue
            if change.change_type not in [c.strip() for c in subscription.change_type.split(",")]:
                continue
            self.enqueue(subscription.notification_url, self._payload(subscription, change))

    def _payload(self, subscription: Subscription, change: Change) -> dict[str, Any]:
        mailbox = self._state.mailbox(subscription.mailbox)
        message_id = change.immutable_id if subscription.immutable_ids else change.rest_id
        resource = f"Users/{mailbox.id}/Messages/{message_id}"
        return {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": subscription.expiration.isoformat().replace("+00:00", "Z"),
                    "changeType": change.change_type,
                    "resource": resource,
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Message",
                        "@odata.id": resource,
                        "@odata.etag": f'W/"{change.change_key}"',
                        "id": message_id,
                    },
                    "clientState": subscription.client_state,
                    "tenantId": mailbox.tenant_id,
                }
            ]
        }

    def send_lifecycle_event(self, subscription_id: str, event: str) -> None:
        """Post a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved`` or ``missed``)."""
        subscription = self._state.subscriptions[subscription_id]
        if not subscription.lifecycle_notification_url:
            raise ValueError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
        mailbox = self._state.mailbox(subscription.mailbox)
        payload = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": subscription.expiration.isoformat().replace("+00:00", "Z"),
                    "tenantId": mailbox.tenant_id,
                    "clientState": subscription.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }
        self.enqueue(subscription.lifecycle_notification_url, payload)

    def enqueue(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one POST."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mailplane-devtenant-notify", daemon=True)
                self._thread.start()
            self._pending += 1
        self._queue.put((url, payload))

    def _run(self) -> None:
        with httpx.Client(timeout=_DELIVERY_TIMEOUT_SECONDS) as client:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                url, payload = item
                try:
                    status: int | None = client.post(url, json=payload).status_code
                except httpx.HTTPError:
                    status = None
                with self._lock:
                    self.deliveries.append(Delivery(url, payload, status, time.time()))
                    self._pending -= 1

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification was attempted (for tests); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Stop the delivery thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=5)
