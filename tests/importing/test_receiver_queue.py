"""The receiver's queue: answers before any sync runs, coalesces bursts, retries a mailbox another worker holds."""

import asyncio
import contextlib
from types import SimpleNamespace

import httpx

from mailplane.importing.receiver import NotificationReceiver

STATE = "s3cret-state"


class Manager:
    """Resolves subscription ids like the subscription manager does."""

    async def mailbox_of(self, subscription_id):
        return {"sub-support": "support@fabrikam.com"}.get(subscription_id)


class BlockingSyncer:
    """A sync that waits until the test lets it finish."""

    def __init__(self):
        self.calls = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, mailbox, *, full_resync):
        self.calls.append((mailbox, full_resync))
        self.started.set()
        await self.release.wait()


def _notification(subscription_id="sub-support", client_state=STATE):
    return {"subscriptionId": subscription_id, "clientState": client_state, "changeType": "created"}


@contextlib.asynccontextmanager
async def _receiving(syncer, **options):
    """A started receiver and an HTTP client on its app; stopped on the way out."""
    receiver = NotificationReceiver(client_state=STATE, manager=Manager(), syncer=syncer, **options)
    await receiver.start()
    try:
        transport = httpx.ASGITransport(app=receiver.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            yield receiver, client
    finally:
        await receiver.stop()


async def _post(client, items, path="/notifications"):
    return await client.post(path, json={"value": items})


def test_receiver__sync_still_running__notification_answered_202_without_waiting_for_it():
    async def scenario():
        syncer = BlockingSyncer()
        async with _receiving(syncer, workers=2) as (receiver, client):
            first = await _post(client, [_notification()])
            await asyncio.wait_for(syncer.started.wait(), 10)
            second = await _post(client, [_notification()])  # the sync is blocked: the answer must not wait for it
            answered_while_blocked = not syncer.release.is_set()
            syncer.release.set()
            await receiver.drain()
        return first.status_code, second.status_code, answered_while_blocked, syncer.calls

    first, second, answered_while_blocked, calls = asyncio.run(scenario())
    assert (first, second) == (202, 202)
    assert answered_while_blocked
    # The notification that came in during the sync causes exactly one more sync afterwards.
    assert calls == [("support@fabrikam.com", False), ("support@fabrikam.com", False)]


def test_receiver__burst_of_fifty_notifications__coalesced_into_at_most_two_syncs():
    async def scenario():
        syncer = BlockingSyncer()
        syncer.release.set()
        async with _receiving(syncer, workers=4) as (receiver, client):
            responses = await asyncio.gather(*(_post(client, [_notification()]) for _ in range(50)))
            await receiver.drain()
        return [r.status_code for r in responses], syncer.calls, receiver.counters

    statuses, calls, counters = asyncio.run(scenario())
    assert set(statuses) == {202}
    assert counters.notifications == 50
    assert 1 <= len(calls) <= 2


def test_receiver__missed_during_a_sync__a_full_resync_follows_it():
    async def scenario():
        syncer = BlockingSyncer()
        async with _receiving(syncer, workers=2) as (receiver, client):
            await _post(client, [_notification()])
            await asyncio.wait_for(syncer.started.wait(), 10)
            lifecycle = {"subscriptionId": "sub-support", "clientState": STATE, "lifecycleEvent": "missed"}
            await _post(client, [lifecycle], path="/lifecycle")
            await asyncio.sleep(0.05)  # let the worker pick the lifecycle event up while the sync is blocked
            syncer.release.set()
            await receiver.drain()
        return syncer.calls

    assert asyncio.run(scenario()) == [("support@fabrikam.com", False), ("support@fabrikam.com", True)]


def test_receiver__another_worker_holds_the_mailbox__sync_tried_again_later():
    async def scenario():
        calls = []

        async def syncer(mailbox, *, full_resync):
            del full_resync
            calls.append(mailbox)
            return SimpleNamespace(leased_elsewhere=len(calls) == 1)

        receiver = NotificationReceiver(
            client_state=STATE, manager=Manager(), syncer=syncer, workers=1, busy_retry_seconds=0.01
        )
        await receiver.start()
        receiver.request_sync("support@fabrikam.com")
        while len(calls) < 2:  # noqa: ASYNC110 - waits for the retry the receiver schedules
            await asyncio.sleep(0.01)
        await receiver.drain()
        await receiver.stop()
        return calls, receiver.counters.deferred

    calls, deferred = asyncio.run(scenario())
    assert calls == ["support@fabrikam.com", "support@fabrikam.com"]
    assert deferred == 1


def test_receiver__notification_for_an_unknown_subscription__counted_and_nothing_synced():
    async def scenario():
        syncer = BlockingSyncer()
        async with _receiving(syncer) as (receiver, client):
            response = await _post(client, [_notification("sub-of-another-app")])
            await receiver.drain()
        return response.status_code, syncer.calls, receiver.counters.unknown_subscriptions

    assert asyncio.run(scenario()) == (202, [], 1)
