"""Graph change-notification subscriptions for the shared mailboxes: created, renewed before expiry, recreated.

One subscription per shared mailbox, on the folder it is imported from
(``users/{mailbox}/mailFolders('inbox')/messages`` by default; a folder configured by display name or path is
subscribed to by its id) with change type ``created`` (the importer only needs to learn that mail arrived), a
``lifecycleNotificationUrl`` (so Graph warns before it drops a subscription) and the ``clientState`` secret, created
with ``Prefer: IdType="ImmutableId"`` so the notifications name messages by their immutable ids. The ids and expiry
times are kept in the import store (:class:`SubscriptionStore`), so any worker can renew them and a restart reuses
them.

Lifetimes: Graph caps subscriptions to Outlook messages (without resource data) at 10,080 minutes in the current
documentation and 4,230 minutes in older versions; the default asks for 4,230, which every version accepts, and
:meth:`SubscriptionManager.renew_due` renews once half the lifetime has passed, so a renewal that fails has days of
retries before the subscription lapses. A subscription Graph no longer knows (404, or a ``subscriptionRemoved``
lifecycle event) is recreated, and the mailbox is resynced through delta because notifications may have been lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.subscription import Subscription

from mailplane.exceptions import GraphError
from mailplane.graph import IMMUTABLE_ID_PREFERENCE, GraphClient
from mailplane.importing.mailbox_graph import MailboxGraph
from mailplane.importing.serving_state import SubscriptionRecord, SubscriptionStore
from mailplane.integration import ChangeNotifications

if TYPE_CHECKING:
    from kiota_abstractions.default_query_parameters import QueryParameters

__all__ = [
    "MAX_CLIENT_STATE_LENGTH",
    "SubscriptionManager",
    "SubscriptionRecord",
    "SubscriptionStore",
    "folder_resource",
    "inbox_resource",
]

_log = logging.getLogger(__name__)

MAX_CLIENT_STATE_LENGTH = 128
_NOT_FOUND = 404


def folder_resource(mailbox: str, folder: str) -> str:
    """The subscription resource for new mail in one folder (a well-known name or an id) of ``mailbox``."""
    return f"users/{mailbox.lower()}/mailFolders('{folder}')/messages"


def inbox_resource(mailbox: str) -> str:
    """The subscription resource for new mail in ``mailbox``'s inbox."""
    return folder_resource(mailbox, "inbox")


def _immutable_ids() -> RequestConfiguration[QueryParameters]:
    config: RequestConfiguration[QueryParameters] = RequestConfiguration()
    config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
    return config


class SubscriptionManager:
    """Keeps one live subscription per mailbox (see the module docstring).

    ``graph`` is the runtime's :class:`~mailplane.graph.GraphClient`; ``store`` keeps the records; ``settings`` the
    config's ``changeNotifications``; ``client_state`` the secret read from ``settings.client_state_env``.
    ``clock`` returns the current UTC time. ``folders`` maps a mailbox to the folder it is imported from (its
    account's ``folder``; default the inbox).
    """

    def __init__(
        self,
        graph: GraphClient,
        store: SubscriptionStore,
        settings: ChangeNotifications,
        mailboxes: Sequence[str],
        *,
        client_state: str,
        clock: Callable[[], dt.datetime] | None = None,
        folders: Mapping[str, str] | None = None,
    ) -> None:
        """Nothing is sent until :meth:`ensure_all`."""
        if not client_state or len(client_state) > MAX_CLIENT_STATE_LENGTH:
            raise ValueError(
                f"the clientState secret in {settings.client_state_env} must be 1 to {MAX_CLIENT_STATE_LENGTH} "
                "characters (Graph's limit)"
            )
        self._graph = graph
        self._store = store
        self._settings = settings
        self._mailboxes = tuple(dict.fromkeys(m.lower() for m in mailboxes))
        self._folders = {m.lower(): f for m, f in (folders or {}).items()}
        self._client_state = client_state
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._by_id: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        """The mailboxes and the endpoint; never the clientState."""
        return f"SubscriptionManager({list(self._mailboxes)!r}, {self._settings.notification_url!r})"

    @property
    def mailboxes(self) -> tuple[str, ...]:
        """The mailboxes kept subscribed (lower-case)."""
        return self._mailboxes

    @property
    def lifetime(self) -> dt.timedelta:
        """The lifetime asked for at creation and each renewal."""
        return dt.timedelta(minutes=self._settings.subscription_minutes)

    def _lock(self, mailbox: str) -> asyncio.Lock:
        return self._locks.setdefault(mailbox, asyncio.Lock())

    async def mailbox_of(self, subscription_id: str) -> str | None:
        """The mailbox a subscription id belongs to (this process's or another worker's), or ``None``."""
        mailbox = self._by_id.get(subscription_id)
        if mailbox is not None:
            return mailbox
        record = await self._store.find_subscription(subscription_id)
        if record is None:
            return None
        self._by_id[subscription_id] = record.mailbox
        return record.mailbox

    def _expiration(self) -> dt.datetime:
        # Whole seconds: Graph echoes the time back, and comparisons stay exact.
        return (self._clock() + self.lifetime).replace(microsecond=0)

    def _due(self, record: SubscriptionRecord) -> bool:
        return record.expires_at - self._clock() < self.lifetime / 2

    async def ensure_all(self) -> list[SubscriptionRecord]:
        """Make sure every mailbox has a live subscription: reuse, renew when due, or create. Returns the records.

        A mailbox whose subscription cannot be created is logged and skipped (the others still get theirs); the
        recovery schedule still imports its mail. The first error is raised after all mailboxes were tried.
        """
        records: list[SubscriptionRecord] = []
        first_error: GraphError | None = None
        for mailbox in self._mailboxes:
            try:
                records.append(await self.ensure(mailbox))
            except GraphError as exc:
                _log.error("%s", exc)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return records

    async def ensure(self, mailbox: str) -> SubscriptionRecord:
        """The mailbox's live subscription: the stored one (checked with Graph, renewed when due) or a new one.

        A stored subscription for another notification URL or another folder (the config changed) is deleted and
        replaced.
        """
        mailbox = mailbox.lower()
        async with self._lock(mailbox):
            record = await self._store.get_subscription(mailbox)
            resource = await self._resource(mailbox)
            wanted = (self._settings.notification_url, resource)
            if record is not None and (record.notification_url, record.resource) == wanted:
                renewed = await self._renew_locked(record)
                if renewed is not None:
                    return renewed
            elif record is not None:
                await self._delete_quietly(record)
            return await self._create_locked(mailbox, resource)

    async def renew_due(self) -> list[SubscriptionRecord]:
        """Renew every stored subscription with less than half its lifetime left; recreate those Graph lost."""
        renewed: list[SubscriptionRecord] = []
        for record in await self._store.list_subscriptions():
            if record.mailbox not in self._mailboxes or not self._due(record):
                continue
            try:
                async with self._lock(record.mailbox):
                    current = await self._store.get_subscription(record.mailbox)
                    if current is None or not self._due(current):
                        continue
                    result = await self._renew_locked(current) or await self._create_locked(record.mailbox)
                renewed.append(result)
            except GraphError as exc:
                _log.error("%s", exc)
        return renewed

    async def ensure_missing(self) -> list[SubscriptionRecord]:
        """Create the subscriptions of mailboxes that have none (their creation failed earlier)."""
        created: list[SubscriptionRecord] = []
        for mailbox in self._mailboxes:
            if await self._store.get_subscription(mailbox) is not None:
                continue
            try:
                created.append(await self.ensure(mailbox))
            except GraphError as exc:
                _log.error("%s", exc)
        return created

    async def reauthorize(self, subscription_id: str) -> SubscriptionRecord | None:
        """Answer ``reauthorizationRequired``: reauthorize and extend the subscription (recreate it if Graph lost it).

        Returns the new record, or ``None`` when the id is not one of ours.
        """
        mailbox = await self.mailbox_of(subscription_id)
        if mailbox is None:
            _log.warning("reauthorizationRequired for unknown subscription %s; ignored", subscription_id)
            return None
        async with self._lock(mailbox):
            record = await self._store.get_subscription(mailbox)
            if record is None or record.subscription_id != subscription_id:
                return record
            try:
                async with self._graph.call(mailbox, doing="reauthorizing the change-notification subscription of"):
                    await self._graph.service.subscriptions.by_subscription_id(subscription_id).reauthorize.post()
            except GraphError as exc:
                if exc.status != _NOT_FOUND:
                    raise
                return await self._create_locked(mailbox)
            return await self._renew_locked(record) or await self._create_locked(mailbox)

    async def recreate(self, subscription_id: str) -> SubscriptionRecord | None:
        """Answer ``subscriptionRemoved``: create a new subscription for that mailbox. ``None`` if the id is unknown."""
        mailbox = await self.mailbox_of(subscription_id)
        if mailbox is None:
            _log.warning("subscriptionRemoved for unknown subscription %s; ignored", subscription_id)
            return None
        async with self._lock(mailbox):
            record = await self._store.get_subscription(mailbox)
            if record is not None and record.subscription_id != subscription_id:
                return record  # another worker already replaced it
            if record is not None:
                await self._delete_quietly(record)
            return await self._create_locked(mailbox)

    async def delete_all(self) -> None:
        """Delete every subscription of the configured mailboxes (when an integration is switched off)."""
        for mailbox in self._mailboxes:
            async with self._lock(mailbox):
                record = await self._store.get_subscription(mailbox)
                if record is not None:
                    await self._delete_quietly(record)

    async def run(self, stop: asyncio.Event, *, check_every: dt.timedelta = dt.timedelta(minutes=15)) -> None:
        """Renew due subscriptions every ``check_every`` until ``stop`` is set (errors are logged, never fatal)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=check_every.total_seconds())
            if stop.is_set():
                return
            try:
                await self.renew_due()
                await self.ensure_missing()
            except Exception:  # noqa: BLE001 - the loop must outlive a store outage
                _log.exception("renewing subscriptions failed; trying again in %s", check_every)

    # --- Graph calls (the mailbox's lock is held) ----------------------------------------------------------------

    async def _resource(self, mailbox: str) -> str:
        folder = await MailboxGraph(self._graph, mailbox).resolve_folder(self._folders.get(mailbox, "inbox"))
        return folder_resource(mailbox, folder)

    async def _create_locked(self, mailbox: str, resource: str | None = None) -> SubscriptionRecord:
        resource = resource or await self._resource(mailbox)
        body = Subscription(
            change_type="created",
            notification_url=self._settings.notification_url,
            lifecycle_notification_url=self._settings.lifecycle_url,
            resource=resource,
            expiration_date_time=self._expiration(),
            client_state=self._client_state,
        )
        async with self._graph.call(mailbox, doing="creating the change-notification subscription for"):
            created = await self._graph.service.subscriptions.post(body, request_configuration=_immutable_ids())
        if created is None or not created.id:
            raise GraphError(
                f"creating the change-notification subscription for {mailbox}: Graph answered without a "
                "subscription id. Try again; check the Graph base URL if it persists"
            )
        record = SubscriptionRecord(
            mailbox=mailbox,
            subscription_id=created.id,
            resource=resource,
            notification_url=self._settings.notification_url,
            expires_at=created.expiration_date_time or body.expiration_date_time,  # type: ignore[arg-type]
        )
        await self._store.save_subscription(record)
        self._by_id[record.subscription_id] = mailbox
        _log.info("created subscription %s for %s until %s", record.subscription_id, mailbox, record.expires_at)
        return record

    async def _renew_locked(self, record: SubscriptionRecord) -> SubscriptionRecord | None:
        """PATCH the expiry when due (or just confirm the subscription exists); ``None`` when Graph lost it."""
        subscriptions = self._graph.service.subscriptions.by_subscription_id(record.subscription_id)
        try:
            async with self._graph.call(record.mailbox, doing="renewing the change-notification subscription of"):
                if self._due(record):
                    answer = await subscriptions.patch(Subscription(expiration_date_time=self._expiration()))
                else:
                    answer = await subscriptions.get()
        except GraphError as exc:
            if exc.status == _NOT_FOUND:
                _log.warning("subscription %s of %s is gone; recreating it", record.subscription_id, record.mailbox)
                return None
            raise
        expires_at = (answer.expiration_date_time if answer is not None else None) or record.expires_at
        renewed = SubscriptionRecord(
            mailbox=record.mailbox,
            subscription_id=record.subscription_id,
            resource=record.resource,
            notification_url=record.notification_url,
            expires_at=expires_at,
        )
        await self._store.save_subscription(renewed)
        self._by_id[renewed.subscription_id] = renewed.mailbox
        return renewed

    async def _delete_quietly(self, record: SubscriptionRecord) -> None:
        try:
            async with self._graph.call(record.mailbox, doing="deleting the change-notification subscription of"):
                await self._graph.service.subscriptions.by_subscription_id(record.subscription_id).delete()
        except GraphError as exc:
            if exc.status != _NOT_FOUND:
                _log.warning("%s", exc)
        await self._store.delete_subscription(record.mailbox, record.subscription_id)
        self._by_id.pop(record.subscription_id, None)
