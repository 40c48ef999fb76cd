"""mailplane serve end to end: the receiver and the subscription manager against the dev tenant's subscriptions and
notifications, through the real msgraph-sdk, with the real importer behind the queue."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import pytest
from importing_harness import BILLING, RECORDS, SUPPORT, accounts_importing_support_from, eml
from sink_harness import SECRET, Endpoint

from mailplane.devtenant.server import BackgroundServer
from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.importing import open_import_store
from mailplane.importing.blobs import FileBlobStore
from mailplane.importing.importer import Importer
from mailplane.importing.receiver import NotificationReceiver, bind_socket, importer_syncer, serve_notifications
from mailplane.importing.routing import InMemoryRecords
from mailplane.importing.subscriptions import SubscriptionManager, folder_resource, inbox_resource
from mailplane.importing.webhook_sink import WebhookSinkDeliverer, verify_signature
from mailplane.integration import WebhookSink

CLIENT_STATE = "client-state-secret-1234"


async def eventually(predicate, *, within: float = 30.0, what: str = "the condition"):
    """Wait (without asserting on time) until ``predicate()`` (may be async) is true."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {within} s")


class Service:
    """mailplane serve's parts, running in the test's event loop."""

    def __init__(self, tenant, config, sock, clock=None, sink_url=None):
        self.tenant, self.config, self.sock, self.clock = tenant, config, sock, clock
        self.sink_url = sink_url

    async def __aenter__(self):
        self.store = open_import_store(self.config.store)
        self.graph = GraphClient(StaticTokenCredential(), base_url=self.tenant.graph_base_url, retry_delay=0)
        await self.store.open()
        blobs = FileBlobStore(self.config.store.sqlite_path.with_name("blobs"))
        self.importer = Importer(self.config, self.graph, self.store, blobs=blobs, records=InMemoryRecords(RECORDS))
        self.manager = SubscriptionManager(
            self.graph,
            self.store,
            self.config.change_notifications,
            [SUPPORT, BILLING],
            client_state=CLIENT_STATE,
            clock=self.clock,
            folders={a.address: a.folder for a in self.config.accounts},  # as 'mailplane serve' passes them
        )
        self.receiver = NotificationReceiver(
            client_state=CLIENT_STATE, manager=self.manager, syncer=importer_syncer(self.importer), workers=2
        )
        self.sink = None
        if self.sink_url is not None:
            settings = WebhookSink(url=self.sink_url, secret_env="HOOK_SECRET", timeout_seconds=5, max_attempts=3)
            self.sink = WebhookSinkDeliverer(settings, self.store, environ={"HOOK_SECRET": SECRET})
        self.stop, ready = asyncio.Event(), asyncio.Event()
        self.task = asyncio.create_task(
            serve_notifications(
                self.receiver, self.manager, sock=self.sock, stop=self.stop, ready=ready, sink=self.sink
            )
        )
        await asyncio.wait_for(ready.wait(), 30)
        await self.receiver.drain()
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await self.task
        if self.sink is not None:
            await self.sink.aclose()
        await self.graph.aclose()
        await self.store.close()

    async def subscription(self, mailbox):
        return await self.store.get_subscription(mailbox)

    async def imported(self):
        return await self.store.count_messages()


@pytest.fixture
def sock():
    return bind_socket("127.0.0.1", 0)


def _notifying(make_config, sock, **overrides):
    """The harness config with change notifications posted to ``sock``'s port."""
    port = sock.getsockname()[1]
    notifications = {"publicUrl": f"http://127.0.0.1:{port}", "subscriptionMinutes": 60}
    return make_config(changeNotifications=notifications, **overrides)


@pytest.fixture
def config(make_config, sock):
    return _notifying(make_config, sock)


def test_serve__start__one_validated_subscription_per_mailbox_with_lifecycle_url_and_immutable_ids(
    tenant, config, sock
):
    async def scenario():
        async with Service(tenant, config, sock) as service:
            return [await service.subscription(m) for m in (SUPPORT, BILLING)]

    records = asyncio.run(scenario())
    subscriptions = tenant.state.subscriptions
    assert sorted(s.id for s in subscriptions.values()) == sorted(r.subscription_id for r in records)
    for record in records:
        created = subscriptions[record.subscription_id]
        assert created.resource == inbox_resource(record.mailbox)
        assert created.change_type == "created"
        assert created.client_state == CLIENT_STATE
        assert created.notification_url == config.change_notifications.notification_url
        assert created.lifecycle_notification_url == config.change_notifications.lifecycle_url
        assert created.immutable_ids
        assert record.expires_at == created.expiration


def test_serve__new_mail_arrives__notification_queued_mailbox_synced_and_message_marked_read(tenant, config, sock):
    async def scenario():
        async with Service(tenant, config, sock) as service:
            before = service.receiver.counters.syncs
            tenant.state.seed_eml(SUPPORT, eml("Printer on fire", message_id="<n1@contoso.example>"))
            await eventually(service.imported, what="the import")
            await service.receiver.drain()
            return service.receiver.counters, before, await service.store.list_conversations()

    counters, syncs_before, [conversation] = asyncio.run(scenario())
    assert counters.notifications >= 1
    assert counters.syncs > syncs_before
    assert (counters.rejected, counters.sync_errors) == (0, 0)
    assert conversation.parent_fields["title"] == "Printer on fire"
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))


def test_serve__account_imports_from_a_named_folder__subscribed_by_folder_id_and_mail_there_imported(
    tenant, make_config, sock
):
    config = _notifying(make_config, sock, accounts=accounts_importing_support_from("Support Queue"))
    queue = tenant.state.create_folder(SUPPORT, "Support Queue")

    async def scenario():
        async with Service(tenant, config, sock) as service:
            record = await service.subscription(SUPPORT)
            tenant.state.seed_eml(SUPPORT, eml("Routed by a rule", message_id="<n-queue@x>"), folder=queue.id)
            await eventually(service.imported, what="the import")
            return record, await service.store.list_conversations()

    record, conversations = asyncio.run(scenario())
    assert record.resource == folder_resource(SUPPORT, queue.id)
    assert tenant.state.subscriptions[record.subscription_id].folder_id == queue.id
    assert [c.subject for c in conversations] == ["Routed by a rule"]
    assert [m.is_read for m in tenant.state.messages(SUPPORT, "Support Queue")] == [True]


def test_receiver__wrong_client_state__answered_202_and_nothing_synced(tenant, config, sock):
    async def scenario():
        async with Service(tenant, config, sock) as service:
            record = await service.subscription(SUPPORT)
            syncs = service.receiver.counters.syncs
            payload = {
                "value": [
                    {
                        "subscriptionId": record.subscription_id,
                        "clientState": "not-the-secret",
                        "changeType": "created",
                        "resource": "Users/x/Messages/y",
                    },
                    {"subscriptionId": record.subscription_id, "changeType": "created"},  # no clientState at all
                ]
            }
            async with httpx.AsyncClient() as client:
                response = await client.post(config.change_notifications.notification_url, json=payload)
            await service.receiver.drain()
            return response.status_code, service.receiver.counters, syncs

    status, counters, syncs_before = asyncio.run(scenario())
    assert status == 202
    assert counters.rejected == 2
    assert counters.syncs == syncs_before


def test_receiver__validation_token_with_special_characters__echoed_decoded_as_text_plain(tenant, config, sock):
    token = "Validation: Testing client application reachability for subscription Request-Id: 1 & 2 + ü"

    async def scenario():
        async with Service(tenant, config, sock), httpx.AsyncClient() as client:
            return await client.post(config.change_notifications.lifecycle_url, params={"validationToken": token})

    response = asyncio.run(scenario())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == token


def test_receiver__malformed_body__400_and_nothing_queued(tenant, config, sock):
    async def scenario():
        async with Service(tenant, config, sock) as service, httpx.AsyncClient() as client:
            response = await client.post(config.change_notifications.notification_url, content=b"{not json")
            return response.status_code, service.receiver.counters

    status, counters = asyncio.run(scenario())
    assert status == 400
    assert counters.notifications == counters.rejected == 0


def test_lifecycle__reauthorization_required__subscription_reauthorized_and_kept(tenant, config, sock):
    async def scenario():
        async with Service(tenant, config, sock) as service:
            record = await service.subscription(SUPPORT)
            tenant.notifier.send_lifecycle_event(record.subscription_id, "reauthorizationRequired")
            await eventually(
                lambda: tenant.requests.count(kind="subscription.reauthorize", status=204) == 1,
                what="the reauthorization",
            )
            await service.receiver.drain()
            return record, await service.subscription(SUPPORT), service.receiver.counters

    before, after, counters = asyncio.run(scenario())
    assert counters.lifecycle == 1
    assert after.subscription_id == before.subscription_id
    assert before.subscription_id in tenant.state.subscriptions


def test_lifecycle__missed__mailbox_resynced_through_delta_and_the_missed_mail_imported(tenant, config, sock):
    async def scenario():
        async with Service(tenant, config, sock) as service:
            record = await service.subscription(SUPPORT)
            subscription = tenant.state.subscriptions[record.subscription_id]
            real_url = subscription.notification_url
            subscription.notification_url = "http://127.0.0.1:9/lost"  # this notification never arrives
            tenant.state.seed_eml(SUPPORT, eml("Lost in transit", message_id="<lost@contoso.example>"))
            assert tenant.notifier.wait_idle()
            subscription.notification_url = real_url
            assert await service.imported() == 0
            tenant.notifier.send_lifecycle_event(record.subscription_id, "missed")
            await eventually(service.imported, what="the resync")
            await service.receiver.drain()
            return service.receiver.counters, await service.store.list_conversations()

    counters, [conversation] = asyncio.run(scenario())
    assert conversation.parent_fields["title"] == "Lost in transit"
    assert counters.lifecycle == 1
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))


def test_lifecycle__subscription_removed__recreated_then_new_mail_arrives_through_the_new_one(tenant, config, sock):
    async def scenario():
        async with Service(tenant, config, sock) as service:
            old = await service.subscription(SUPPORT)
            tenant.notifier.send_lifecycle_event(old.subscription_id, "subscriptionRemoved")
            del tenant.state.subscriptions[old.subscription_id]  # Graph dropped it
            new = await eventually(lambda: _replaced(service, old.subscription_id), what="the new subscription")
            await service.receiver.drain()
            tenant.state.seed_eml(SUPPORT, eml("After the outage", message_id="<after@contoso.example>"))
            await eventually(service.imported, what="the import through the new subscription")
            return old, new

    old, new = asyncio.run(scenario())
    assert new.subscription_id != old.subscription_id
    assert new.subscription_id in tenant.state.subscriptions
    assert old.subscription_id not in tenant.state.subscriptions


async def _replaced(service, old_id):
    record = await service.subscription(SUPPORT)
    return record if record is not None and record.subscription_id != old_id else None


class Clock:
    def __init__(self):
        self.offset = dt.timedelta()

    def __call__(self):
        return dt.datetime.now(dt.UTC) + self.offset


def test_subscriptions__half_the_lifetime_passed__renewed_with_patch(tenant, config, sock):
    clock = Clock()

    async def scenario():
        async with Service(tenant, config, sock, clock=clock) as service:
            before = await service.subscription(SUPPORT)
            none_due = await service.manager.renew_due()
            clock.offset = dt.timedelta(minutes=31)
            renewed = await service.manager.renew_due()
            return before, none_due, renewed, await service.subscription(SUPPORT)

    before, none_due, renewed, after = asyncio.run(scenario())
    assert none_due == []
    assert sorted(r.mailbox for r in renewed) == [BILLING, SUPPORT]
    assert after.subscription_id == before.subscription_id
    assert after.expires_at - before.expires_at >= dt.timedelta(minutes=30)
    assert tenant.state.subscriptions[after.subscription_id].expiration == after.expires_at
    assert tenant.requests.count(kind="subscription.update", status=200) == 2


def test_subscriptions__gone_at_graph_when_renewing__recreated(tenant, config, sock):
    clock = Clock()

    async def scenario():
        async with Service(tenant, config, sock, clock=clock) as service:
            before = await service.subscription(SUPPORT)
            del tenant.state.subscriptions[before.subscription_id]
            clock.offset = dt.timedelta(minutes=31)
            await service.manager.renew_due()
            return before, await service.subscription(SUPPORT)

    before, after = asyncio.run(scenario())
    assert after.subscription_id != before.subscription_id
    assert tenant.state.subscriptions[after.subscription_id].mailbox.lower() == SUPPORT


def _subscriptions_across_a_restart(tenant, sock, before, after):
    """The (SUPPORT, BILLING) subscription records after serving with ``before``, then restarting with ``after``."""
    port = sock.getsockname()[1]

    async def scenario():
        async with Service(tenant, before, sock) as service:
            first = [await service.subscription(m) for m in (SUPPORT, BILLING)]
        again = bind_socket("127.0.0.1", port)
        async with Service(tenant, after, again) as service:
            second = [await service.subscription(m) for m in (SUPPORT, BILLING)]
        return first, second

    return asyncio.run(scenario())


def test_subscriptions__service_restarted__stored_subscriptions_reused_not_duplicated(tenant, config, sock):
    first, second = _subscriptions_across_a_restart(tenant, sock, config, config)
    assert [r.subscription_id for r in first] == [r.subscription_id for r in second]
    assert len(tenant.state.subscriptions) == 2
    assert tenant.requests.count(kind="subscription.create") == 2


def test_serve__with_a_webhook_sink__new_mail_is_imported_then_posted_signed_once(tenant, config, sock):
    endpoint = Endpoint()

    async def scenario():
        with BackgroundServer(endpoint.app) as server:
            url = f"{server.base_url}/hooks/mailplane"
            async with Service(tenant, config, sock, sink_url=url):
                tenant.state.seed_eml(SUPPORT, eml("Printer on fire", message_id="<hook@contoso.example>"))
                await eventually(lambda: endpoint.posts, what="the webhook delivery")
                await asyncio.sleep(0.2)  # a second post would arrive now

    asyncio.run(scenario())
    [post] = endpoint.posts
    assert verify_signature(
        SECRET.encode(), post.headers["x-mailplane-timestamp"], post.body, post.headers["x-mailplane-signature"]
    )
    assert post.json["conversation"]["messages"][0]["internetMessageId"] == "<hook@contoso.example>"


def test_subscriptions__restarted_with_another_folder__that_mailboxs_subscription_replaced_the_others_reused(
    tenant, config, make_config, sock
):
    moved = _notifying(make_config, sock, accounts=accounts_importing_support_from("Support Queue"))
    queue = tenant.state.create_folder(SUPPORT, "Support Queue")

    first, second = _subscriptions_across_a_restart(tenant, sock, config, moved)

    (support_before, billing_before), (support_after, billing_after) = first, second
    assert support_before.resource == inbox_resource(SUPPORT)
    assert support_after.resource == folder_resource(SUPPORT, queue.id)
    assert support_after.subscription_id != support_before.subscription_id
    assert billing_after.subscription_id == billing_before.subscription_id
    assert sorted(tenant.state.subscriptions) == sorted([support_after.subscription_id, billing_after.subscription_id])
