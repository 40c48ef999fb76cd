"""Lease fencing, for every store backend: a worker whose lease ran out and was taken over never writes again."""

import asyncio
import datetime as dt

import pytest
from sink_harness import imported

from mailplane.importing.store import LeaseLostError

MAILBOX = "support@contoso.com"
TTL = dt.timedelta(minutes=1)


def _two_workers(store_factory):
    async def scenario(body):
        first, second = store_factory(), store_factory()
        async with first, second:
            return await body(first, second)

    return lambda body: asyncio.run(scenario(body))


def test_fencing__lease_ran_out_and_another_worker_took_it__stalled_worker_cannot_write(store_factory, clock):
    async def body(stalled, successor):
        assert await stalled.acquire_lease(MAILBOX, "worker-a", TTL)
        clock.advance(minutes=2)  # worker-a stalls past its lease
        assert await successor.acquire_lease(MAILBOX, "worker-b", TTL)
        with pytest.raises(LeaseLostError, match="worker-b holds the mailbox now"):
            await stalled.record_import(imported(1, mailbox=MAILBOX))
        with pytest.raises(LeaseLostError):
            await stalled.record_failure(MAILBOX, "AAMk-x", reason="broken MIME")
        written = await successor.record_import(imported(1, mailbox=MAILBOX))
        return written, await successor.list_message_states(), await successor.count_messages()

    written, states, count = _two_workers(store_factory)(body)
    assert not written.duplicate
    assert [s.immutable_id for s in states] == [f"AAMk-{MAILBOX}-1"]
    assert count == 1


def test_fencing__lease_ran_out_but_nobody_took_it__holder_still_writes(store_factory, clock):
    async def body(worker, _other):
        assert await worker.acquire_lease(MAILBOX, "worker-a", TTL)
        clock.advance(minutes=2)
        return await worker.record_import(imported(1, mailbox=MAILBOX))

    assert not _two_workers(store_factory)(body).duplicate


def test_fencing__lease_released__late_task_cannot_write_until_the_lease_is_taken_again(store_factory):
    async def body(worker, other):
        assert await worker.acquire_lease(MAILBOX, "worker-a", TTL)
        await worker.release_lease(MAILBOX, "worker-a")
        with pytest.raises(LeaseLostError, match="nobody holds the mailbox now"):
            await worker.record_import(imported(1, mailbox=MAILBOX))
        assert await other.acquire_lease(MAILBOX, "worker-b", TTL)
        await other.release_lease(MAILBOX, "worker-b")
        assert await worker.acquire_lease(MAILBOX, "worker-a", TTL)
        return await worker.record_import(imported(1, mailbox=MAILBOX))

    assert not _two_workers(store_factory)(body).duplicate


def test_fencing__renewal_refused__later_writes_of_that_worker_refused_too(store_factory, clock):
    async def body(stalled, successor):
        assert await stalled.acquire_lease(MAILBOX, "worker-a", TTL)
        clock.advance(minutes=2)
        assert await successor.acquire_lease(MAILBOX, "worker-b", TTL)
        assert await stalled.renew_lease(MAILBOX, "worker-a", TTL) is None
        with pytest.raises(LeaseLostError):
            await stalled.record_import(imported(1, mailbox=MAILBOX))
        return await successor.count_messages()

    assert _two_workers(store_factory)(body) == 0
