"""Exactly once under faults: 429, 5xx, dropped connections, timeouts and crashes between steps.

Every scenario counts what the dev tenant's transport carried out (its outbox) and what landed in a mailbox of the
tenant (the recipient's inbox): each idempotency key must appear exactly once, however the requests failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from sending_harness import INTERNAL, SENDER, delivered_keys, harness, inbox_count, short_timeout

from mailplane.sending.outgoing import Address, OutgoingAttachment, OutgoingMessage
from mailplane.sending.store import SendState

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


class SimulatedCrash(BaseException):
    """Stands for the process dying at a step boundary (not an Exception: nothing may catch it on the way)."""


def _message(subject="Ticket 7", **changes):
    fields = {"to": (Address(INTERNAL),), "subject": subject, "text": "Hello"}
    return OutgoingMessage(**{**fields, **changes})


@pytest.fixture
def h(tmp_path):
    with harness(tmp_path) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgres"])
def hb(request, tmp_path):
    """The harness on each store backend (PostgreSQL only when the test server runs)."""
    with harness(tmp_path, backend=request.param) as running:
        yield running


# (fault kind, options, path regex, method)
FAULTS = [
    pytest.param("apply_then_drop", {}, r"/messages$", "POST", id="draft-created-but-answer-lost"),
    pytest.param("apply_then_drop", {}, r"/send$", "POST", id="send-done-but-answer-lost"),
    pytest.param("drop", {}, r"/messages$", "POST", id="draft-request-dropped"),
    pytest.param("drop", {}, r"/send$", "POST", id="send-request-dropped"),
    pytest.param("error", {"status": 503}, r"/messages$", "POST", id="draft-503"),
    pytest.param("error", {"status": 502}, r"/send$", "POST", id="send-502"),
    pytest.param("error", {"status": 500}, r"/messages/[^/]+$", "GET", id="read-back-500"),
    pytest.param("throttle", {"retry_after": 1}, r"/messages$", "POST", id="draft-429"),
    pytest.param("throttle", {"retry_after": 1}, r"/send$", "POST", id="send-429"),
    pytest.param("slow", {"latency_ms": 1500}, r"/messages$", "POST", id="draft-answer-too-slow"),
    pytest.param("latency", {"latency_ms": 1500}, r"/send$", "POST", id="send-times-out-then-applies"),
]


@pytest.mark.parametrize(("kind", "options", "path", "method"), FAULTS)
def test_fault_on_a_step__retried_within_the_run__delivered_exactly_once(h, kind, options, path, method):
    # The read-back only happens after an unknown send outcome: make one so that the GET fault is exercised.
    if method == "GET":
        h.tenant.faults.add("apply_then_drop", path=r"/send$", method="POST", count=1)
    fault = h.tenant.faults.add(kind, path=path, method=method, count=2, **options)

    async def scenario(make, _store):
        return await make().send(_message(), idempotency_key="k", wait=True)

    receipt = h.run(scenario, timeout=short_timeout(), max_retries=3)
    assert fault.fired >= 1
    assert receipt.state == "sent"
    assert delivered_keys(h.tenant) == ["k"]
    assert inbox_count(h.tenant) == 1


@pytest.mark.parametrize("keep_copy", [True, False], ids=["save-to-sent-items", "delete-after-submit"])
def test_answers_lost_on_create_and_send__one_sent_copy_or_none__no_duplicate_drafts_left(h, keep_copy):
    h.tenant.faults.apply_then_drop(path=r"/messages$", method="POST", count=1)
    h.tenant.faults.apply_then_drop(path=r"/send$", method="POST", count=1)

    async def scenario(make, store):
        receipt = await make(save_to_sent_items=keep_copy).send(_message(), idempotency_key="k")
        return receipt, store.get("k")

    receipt, record = h.run(scenario)
    assert receipt.state == "sent"
    assert delivered_keys(h.tenant) == ["k"]
    assert h.tenant.state.messages(SENDER, "drafts") == []
    assert len(h.tenant.state.messages(SENDER, "sentitems")) == (1 if keep_copy else 0)
    # Without a copy the read-back finds nothing: the send is taken as done, and says why.
    assert (record.last_error is None) == keep_copy


def test_throttled_beyond_the_clients_retries__send_waits_for_retry_after_then_goes_once(h):
    h.tenant.faults.throttle(path=r"/send$", method="POST", count=3, retry_after=1)

    async def scenario(make, _store):
        first = await make().send(_message(), idempotency_key="k")
        later = await make().send_queued(wait=True)
        return first, later

    first, later = h.run(scenario, max_retries=1)
    assert first.state == "queued"
    assert "throttling" in first.errors[0]
    assert later.sent == ["k"]
    assert delivered_keys(h.tenant) == ["k"]


def test_outcome_unknown_every_time__send_left_for_a_later_run_then_settled_once(h):
    h.tenant.faults.apply_then_drop(path=r"/send$", method="POST", count=1)
    h.tenant.faults.error(500, path=r"/messages/[^/]+$", method="GET", count=4)

    async def scenario(make, store):
        first = await make(max_attempts=2).send(_message(), idempotency_key="k")
        record = store.get("k")
        store.update("k", not_before=0.0)
        later = await make().send_queued(wait=True)
        return first, record, later

    first, record, later = h.run(scenario)
    assert first.state == "queued"
    assert record.state == SendState.SENDING
    assert later.sent == ["k"]
    assert delivered_keys(h.tenant) == ["k"]


class _LoseOneChunkAnswer(httpx.AsyncBaseTransport):
    """Upload PUTs: the n-th one reaches the service, then its answer is lost."""

    def __init__(self, lose: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._lose = lose
        self.seen = 0

    async def handle_async_request(self, request):
        self.seen += 1
        response = await self._inner.handle_async_request(request)
        if self.seen == self._lose:
            await response.aclose()
            raise httpx.ReadError("connection lost", request=request)
        return response


@pytest.mark.parametrize("lose", [1, 3], ids=["middle-chunk", "last-chunk"])
def test_upload_chunk_answer_lost__attachment_attached_once_message_sent_once(h, lose):
    big = os.urandom(3 * 1024 * 1024 + 10)
    transport = _LoseOneChunkAnswer(lose)

    async def scenario(make, _store):
        sender = make(chunk_bytes=1024 * 1024 + 512 * 1024, upload_transport=transport)
        return await sender.send(_message(attachments=(OutgoingAttachment("big.bin", big),)), idempotency_key="k")

    assert h.run(scenario).state == "sent"
    [received] = h.tenant.state.messages(INTERNAL, "inbox")
    assert [(a.name, a.content) for a in received.attachments] == [("big.bin", big)]
    assert delivered_keys(h.tenant) == ["k"]


STEPS = ["drafting", "draft-created", "drafted", "attached", "sending", "send-accepted", "sent"]


@pytest.mark.parametrize("step", STEPS)
def test_process_stops_at_a_step_boundary__next_run_resumes__delivered_exactly_once(hb, step):
    h = hb
    files = (OutgoingAttachment("small.txt", b"s"), OutgoingAttachment("big.bin", os.urandom(3_200_000)))

    def crash(name, _record):
        if name == step:
            raise SimulatedCrash(name)

    async def crashing(make, _store):
        await make(on_step=crash).send(_message(attachments=files), idempotency_key="k")

    with pytest.raises(SimulatedCrash):
        h.run(crashing)

    async def next_run(make, _store):
        return await make().send_queued(wait=True)

    h.run(next_run)
    assert delivered_keys(h.tenant) == ["k"]
    [received] = h.tenant.state.messages(INTERNAL, "inbox")
    assert sorted(a.name for a in received.attachments) == ["big.bin", "small.txt"]
    assert h.tenant.state.messages(SENDER, "drafts") == []


CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    sys.path.insert(0, {here!r})
    from mailplane.graph import GraphClient, StaticTokenCredential
    from mailplane.sending.outgoing import Address, OutgoingMessage
    from mailplane.sending.sender import Sender
    from mailplane.sending.sqlite_store import SQLiteSendStore

    def die(name, record):
        if name == {step!r}:
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        async with GraphClient(StaticTokenCredential(), base_url={url!r}, retry_delay=0) as client:
            store = SQLiteSendStore({store!r})
            sender = Sender(client, store, {mailbox!r}, on_step=die)
            message = OutgoingMessage(to=(Address({to!r}),), subject="killed", text="x")
            await sender.send(message, idempotency_key="k")

    asyncio.run(main())
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["draft-created", "sending", "send-accepted"])
def test_process_killed_mid_send__lease_of_the_dead_process_taken_over__delivered_exactly_once(h, step):
    script = CHILD.format(
        here=str(HERE), step=step, url=h.tenant.graph_base_url, store=str(h.store_path), mailbox=SENDER, to=INTERNAL
    )
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=60, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]

    async def next_run(make, store):
        leased = store.get("k")
        return leased, await make().send_queued(wait=True)

    leased, run = h.run(next_run)
    assert leased.state != SendState.SENT
    assert run.sent == ["k"]
    assert delivered_keys(h.tenant) == ["k"]


@pytest.mark.slow
def test_many_sends_under_random_faults_of_every_kind__each_delivered_exactly_once(hb):
    h = hb
    faults = h.tenant.faults
    faults.apply_then_drop(path=r"/messages$", method="POST", probability=0.15, seed=1)
    faults.apply_then_drop(path=r"/send$", method="POST", probability=0.15, seed=2)
    faults.error(503, path=r"/send$", method="POST", probability=0.1, seed=3)
    faults.error(502, path=r"/messages", method="GET", probability=0.1, seed=4)
    faults.throttle(path=r"/messages", probability=0.1, seed=5, retry_after=1)
    faults.drop(path=r"/send$", method="POST", probability=0.1, seed=6)
    keys = [f"storm-{i}" for i in range(30)]

    async def scenario(make, store):
        sender = make(max_attempts=20)
        for key in keys:
            await store_only(sender, store, key)
        return await sender.send_queued(wait=True)

    async def store_only(sender, store, key):
        store.add(sender.prepare(_message(subject=key), key))

    run = h.run(scenario, timeout=short_timeout(), max_retries=5)
    assert sorted(run.sent) == sorted(keys)
    assert sorted(delivered_keys(h.tenant)) == sorted(keys)
    assert inbox_count(h.tenant) == len(keys)
    assert sum(f.fired for f in faults.faults) > 10


@pytest.mark.slow
def test_two_workers_with_their_own_connections_drain_one_queue__each_message_delivered_once(hb):
    import asyncio

    h = hb
    keys = [f"shared-{i}" for i in range(24)]
    h.tenant.faults.apply_then_drop(path=r"/send$", method="POST", probability=0.2, seed=11)

    async def worker():
        async with h.client() as client:
            with h.open_store() as store:
                return await h.sender(client, store).send_queued(wait=True)

    async def both():
        async with h.client() as client:
            with h.open_store() as store:
                sender = h.sender(client, store)
                store.add([r for key in keys for r in sender.prepare(_message(subject=key), key)])
        return await asyncio.gather(worker(), worker())

    runs = asyncio.run(both())
    assert sorted(key for run in runs for key in run.sent) == sorted(keys)
    assert sorted(delivered_keys(h.tenant)) == sorted(keys)
