import asyncio
import datetime as dt
import logging
import socket

import pytest
from sink_harness import SECRET, Endpoint, FakeClock, imported, open_postgres_store

from mailplane.devtenant.server import BackgroundServer
from mailplane.exceptions import SinkError
from mailplane.importing.webhook_sink import (
    WebhookSinkDeliverer,
    idempotency_key,
    sign_payload,
    verify_signature,
)
from mailplane.integration import WebhookSink

ENV = {"HOOK_SECRET": SECRET}


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request):
    """Which store holds the outbox (every store implements it)."""
    return request.param


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store_factory(backend, clock, tmp_path):
    cleanups = []
    made = []

    def make(share_with=None):
        """A new store; ``share_with=n``: another connection to the n-th store's database (a second worker)."""
        if backend == "sqlite":
            from mailplane.importing.store_sqlite import SqliteImportStore

            store = SqliteImportStore(tmp_path / "import.sqlite3", clock=clock)
        elif backend == "postgres":
            if share_with is not None:
                from mailplane.importing.store_postgres import PostgresImportStore

                first = made[share_with]
                store = PostgresImportStore(first._dsn, clock=clock, schema=first.schema)
            else:
                store, cleanup = open_postgres_store(clock)
                cleanups.append(cleanup)
        else:
            raise AssertionError(backend)
        made.append(store)
        return store

    yield make
    for cleanup in cleanups:
        cleanup()


def _deliverer(url, store, clock, *, max_attempts=5, **kwargs):
    settings = WebhookSink(url=url, secret_env="HOOK_SECRET", timeout_seconds=5, max_attempts=max_attempts)
    return WebhookSinkDeliverer(settings, store, environ=ENV, clock=clock, backoff_base=1.0, **kwargs)


def test_signature__body_changed_or_old_timestamp__rejected():
    body = b'{"a": 1}'
    signature = sign_payload(SECRET.encode(), "1700000000", body)
    assert verify_signature(SECRET.encode(), "1700000000", body, signature, now=1700000010)
    assert not verify_signature(SECRET.encode(), "1700000000", b'{"a": 2}', signature, now=1700000010)
    assert not verify_signature(b"other", "1700000000", body, signature, now=1700000010)
    assert not verify_signature(SECRET.encode(), "1700000000", body, signature, now=1700000000 + 3600)
    assert not verify_signature(SECRET.encode(), "soon", body, signature, now=1700000000)


def test_sink__endpoint_up__each_imported_message_posted_once_signed_with_its_conversation(
    store_factory, clock, endpoint
):
    async def scenario():
        async with store_factory() as store:
            for message in (imported(1), imported(2, in_reply_to=1), imported(3)):
                await store.record_import(message)
            deliverer = _deliverer(endpoint.url, store, clock)
            try:
                first = await deliverer.deliver_due()
                second = await deliverer.deliver_due()
            finally:
                await deliverer.aclose()
            return first, second, await store.list_sink_deliveries()

    first, second, deliveries = asyncio.run(scenario())
    assert (first.enqueued, first.delivered, second.attempted) == (3, 3, 0)
    assert [d.status for d in deliveries] == ["delivered"] * 3
    assert endpoint.keys() == [idempotency_key("support@contoso.com", f"<m{n}@example.com>") for n in (1, 2, 3)]
    for post in endpoint.posts:
        assert post.headers["content-type"] == "application/json"
        assert verify_signature(
            SECRET.encode(), post.headers["x-mailplane-timestamp"], post.body, post.headers["x-mailplane-signature"]
        )
        assert SECRET not in post.body.decode()
    threaded = endpoint.posts[1].json["conversation"]
    assert threaded["messageCount"] == 2
    assert [m["internetMessageId"] for m in threaded["messages"]] == ["<m1@example.com>", "<m2@example.com>"]
    assert threaded["parentFields"] == {"title": "Subject 1", "status": "new"}
    assert threaded["messages"][0]["attributes"]["fromAddress"] == "customer@example.com"
    assert threaded["followers"][0]["address"] == "customer@example.com"
    assert endpoint.posts[2].json["conversation"]["messageCount"] == 1


def test_sink__503_twice_then_ok__retried_with_backoff_same_key_then_delivered(store_factory, clock, endpoint):
    endpoint.script = [(503, {}), (502, {})]

    async def scenario():
        async with store_factory() as store:
            await store.record_import(imported(1))
            deliverer = _deliverer(endpoint.url, store, clock, jitter=lambda: 1.0)
            try:
                passes = [await deliverer.deliver_due()]
                [after_first] = await store.list_sink_deliveries()
                passes.append(await deliverer.deliver_due())  # not due yet: nothing is posted
                clock.advance(seconds=1)
                passes.append(await deliverer.deliver_due())
                [after_second] = await store.list_sink_deliveries()
                clock.advance(seconds=2)
                passes.append(await deliverer.deliver_due())
            finally:
                await deliverer.aclose()
            return passes, after_first, after_second, await store.list_sink_deliveries()

    passes, after_first, after_second, [final] = asyncio.run(scenario())
    assert [(p.delivered, p.retrying) for p in passes] == [(0, 1), (0, 0), (0, 1), (1, 0)]
    assert after_first.next_attempt_at == FakeClock().now + dt.timedelta(seconds=1)
    assert after_second.next_attempt_at == FakeClock().now + dt.timedelta(seconds=1 + 2)
    assert "503" in after_first.last_error
    assert "attempt 1 of 5" in after_first.last_error
    assert (final.status, final.attempts) == ("delivered", 3)
    assert [p.headers["x-mailplane-attempt"] for p in endpoint.posts] == ["1", "2", "3"]
    assert len(set(endpoint.keys())) == 1


def test_sink__429_with_retry_after__next_attempt_waits_at_least_retry_after(store_factory, clock, endpoint):
    endpoint.script = [(429, {"Retry-After": "120"})]

    async def scenario():
        async with store_factory() as store:
            await store.record_import(imported(1))
            deliverer = _deliverer(endpoint.url, store, clock)
            try:
                await deliverer.deliver_due()
                clock.advance(seconds=119)
                early = await deliverer.deliver_due()
                clock.advance(seconds=1)
                due = await deliverer.deliver_due()
            finally:
                await deliverer.aclose()
            return early, due, await store.list_sink_deliveries()

    early, due, [final] = asyncio.run(scenario())
    assert early.attempted == 0
    assert due.delivered == 1
    assert final.status == "delivered"


def test_sink__endpoint_refuses_with_400__failed_at_once_with_reason_then_requeued(store_factory, clock, endpoint):
    endpoint.script = [(400, {})]

    async def scenario():
        async with store_factory() as store:
            await store.record_import(imported(1))
            deliverer = _deliverer(endpoint.url, store, clock)
            try:
                refused = await deliverer.deliver_due()
                [failed] = await store.list_sink_deliveries("failed")
                requeued = await store.retry_failed_sink_deliveries()
                again = await deliverer.deliver_due()
            finally:
                await deliverer.aclose()
            return refused, failed, requeued, again

    refused, failed, requeued, again = asyncio.run(scenario())
    assert refused.failed == 1
    assert "400 Bad Request" in failed.last_error
    assert "refused" in failed.last_error
    assert (requeued, again.delivered) == (1, 1)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sink__endpoint_down_then_back__nothing_lost_and_secret_never_logged(store_factory, clock, caplog):
    caplog.set_level(logging.DEBUG)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hooks/mailplane"
    hook = Endpoint()

    async def scenario():
        async with store_factory() as store:
            for number in range(1, 6):
                await store.record_import(imported(number))
            deliverer = _deliverer(url, store, clock, max_attempts=10)
            try:
                down = await deliverer.deliver_due()
                clock.advance(minutes=5)
                still_down = await deliverer.deliver_due()
                with BackgroundServer(hook.app, port=port):
                    clock.advance(minutes=10)
                    back = await deliverer.deliver_due()
            finally:
                await deliverer.aclose()
            return down, still_down, back, await store.list_sink_deliveries()

    down, still_down, back, deliveries = asyncio.run(scenario())
    assert (down.retrying, still_down.retrying, back.delivered) == (5, 5, 5)
    assert [d.status for d in deliveries] == ["delivered"] * 5
    assert [d.attempts for d in deliveries] == [3] * 5
    assert "could not connect" in caplog.text
    assert SECRET not in caplog.text
    assert sorted(hook.keys()) == sorted(d.idempotency_key for d in deliveries)


def test_sink__attempts_run_out__failed_and_kept_not_dropped(store_factory, clock):
    url = f"http://127.0.0.1:{_free_port()}/hooks/mailplane"

    async def scenario():
        async with store_factory() as store:
            await store.record_import(imported(1))
            deliverer = _deliverer(url, store, clock, max_attempts=3)
            try:
                for _ in range(3):
                    await deliverer.deliver_due()
                    clock.advance(hours=1)
            finally:
                await deliverer.aclose()
            return await store.list_sink_deliveries()

    [delivery] = asyncio.run(scenario())
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "attempts ran out" in delivery.last_error


def test_sink__crash_after_store_write__next_deliverer_finds_the_record(store_factory, clock, endpoint):
    async def scenario():
        store = store_factory()
        async with store:
            await store.record_import(imported(1))
            # The worker dies here: no delivery was queued or posted.
        async with store:
            deliverer = _deliverer(endpoint.url, store, clock)
            try:
                return await deliverer.deliver_due()
            finally:
                await deliverer.aclose()

    result = asyncio.run(scenario())
    assert (result.enqueued, result.delivered) == (1, 1)
    assert len(endpoint.posts) == 1


def test_sink__two_deliverers_on_one_store__every_delivery_posted_exactly_once(store_factory, clock, endpoint):
    async def run_two():
        first_store, second_store = store_factory(), store_factory(share_with=0)
        async with first_store:
            for number in range(1, 31):
                await first_store.record_import(imported(number))
            async with second_store:
                deliverers = [
                    _deliverer(endpoint.url, first_store, clock, holder="worker-a"),
                    _deliverer(endpoint.url, second_store, clock, holder="worker-b"),
                ]
                try:

                    async def drain(deliverer):
                        while (await deliverer.deliver_due(limit=3)).attempted:
                            pass

                    await asyncio.gather(*(drain(d) for d in deliverers))
                finally:
                    for deliverer in deliverers:
                        await deliverer.aclose()
                return await first_store.list_sink_deliveries()

    deliveries = asyncio.run(run_two())
    assert len(deliveries) == 30
    assert all(d.status == "delivered" and d.attempts == 1 for d in deliveries)
    assert sorted(endpoint.keys()) == sorted(d.idempotency_key for d in deliveries)


def test_sink__secret_variable_unset__error_names_the_variable_not_a_value(clock):
    settings = WebhookSink(url="https://hooks.example.com/in?token=abc", secret_env="HOOK_SECRET")
    with pytest.raises(SinkError) as caught:
        WebhookSinkDeliverer(settings, None, environ={}, clock=clock)
    message = str(caught.value)
    assert "HOOK_SECRET" in message
    assert "token=abc" not in message
    assert message.startswith("starting the webhook sink for https://hooks.example.com/in: ")
