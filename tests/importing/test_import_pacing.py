"""How the importer paces its Graph requests: delta pages, read-ahead, single PATCHes and batches for marking read."""

from __future__ import annotations

import asyncio

import pytest
from importing_harness import SUPPORT, eml, read_store, received, run_importer

from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.importing.importer import _KeyedLocks, _read_ahead
from mailplane.importing.mailbox_graph import BATCH_LIMIT, MailboxGraph, MessagePage


def _seed(tenant, count: int) -> None:
    for n in range(count):
        tenant.state.seed_eml(
            SUPPORT, eml(f"Question {n}", message_id=f"<q{n}@contoso.example>"), received=received(n / 10)
        )


def test_a_few_new_messages__import_once__each_marked_read_with_a_plain_patch_and_no_batch(tenant, make_config):
    config = make_config()
    _seed(tenant, 3)

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert report.imported == 3
    assert tenant.requests.count(kind="batch", include_batch_envelopes=True) == 0
    assert tenant.requests.count(method="PATCH", kind="message.update", in_batch=False) == 3
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))


def test_many_new_messages__import_once__marked_read_mostly_in_batches_of_at_most_20_one_request_each(
    tenant, make_config
):
    config = make_config()
    _seed(tenant, 150)

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert report.imported == 150
    batched = tenant.requests.count(method="PATCH", kind="message.update", in_batch=True)
    single = tenant.requests.count(method="PATCH", kind="message.update", in_batch=False)
    envelopes = tenant.requests.count(kind="batch", include_batch_envelopes=True)
    assert batched + single == 150  # every message marked read exactly once
    assert batched > single
    assert envelopes * BATCH_LIMIT >= batched
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))


def test_first_delta_page__import_once__asked_for_small_then_full_size_pages(tenant, make_config):
    config = make_config()
    _seed(tenant, 120)

    run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]), page_size=200)

    # 120 messages fit one page of 200; the first page is asked for with 50, so the rest comes in a second one.
    assert tenant.requests.count(kind="message.delta") == 2


def test_conversation_split_over_pages__import_once__one_conversation_with_every_message(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, eml("Printer on fire", message_id="<t0@contoso.example>"), received=received(0))
    for n in range(1, 8):
        tenant.state.seed_eml(
            SUPPORT, eml(f"Other {n}", message_id=f"<o{n}@contoso.example>"), received=received(n + 0.5)
        )
        tenant.state.seed_eml(
            SUPPORT,
            eml(
                "RE: Printer on fire",
                sender="Agent Smith <agent.smith@fabrikam.com>",
                message_id=f"<t{n}@fabrikam.com>",
                in_reply_to="<t0@contoso.example>",
                references="<t0@contoso.example>",
            ),
            received=received(n),
        )

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]), page_size=3)

    assert report.imported == 15
    conversations = read_store(config, lambda s: s.list_conversations())
    printer = [c for c in conversations if c.parent_fields["title"] == "Printer on fire"]
    assert len(printer) == 1
    assert sorted(m.internet_message_id for m in printer[0].messages) == sorted(
        ["<t0@contoso.example>", *(f"<t{n}@fabrikam.com>" for n in range(1, 8))]
    )


def _mark_one(tenant, message_id: str):
    async def run():
        async with GraphClient(StaticTokenCredential(), base_url=tenant.graph_base_url, retry_delay=0) as graph:
            return await MailboxGraph(graph, SUPPORT, backoff_seconds=0).mark_read([message_id])

    return asyncio.run(run())


def test_one_message__mark_read__plain_patch_says_done_gone_or_failed(tenant):
    _seed(tenant, 2)
    first, second = (m.immutable_id for m in tenant.state.messages(SUPPORT, "inbox"))

    assert _mark_one(tenant, first).done == (first,)
    assert {m.immutable_id: m.is_read for m in tenant.state.messages(SUPPORT, "inbox")} == {first: True, second: False}

    tenant.faults.error(403, code="ErrorAccessDenied", method="PATCH")
    refused = _mark_one(tenant, second)
    assert (refused.done, refused.gone, refused.failed) == ((), (), {second: "403 ErrorAccessDenied"})
    tenant.faults.clear()

    assert _mark_one(tenant, "AAMkAGone-message-id=").gone == ("AAMkAGone-message-id=",)


def _pages(log: list[str], *, fail_at: int | None = None, count: int = 3):
    async def pages():
        try:
            for n in range(count):
                log.append(f"fetch {n}")
                await asyncio.sleep(0)
                if n == fail_at:
                    raise RuntimeError(f"page {n} could not be read")
                yield MessagePage((), last=n == count - 1)
        finally:
            log.append("closed")

    return pages()


def test_pages__read_ahead__next_page_fetched_while_the_current_one_is_imported():
    async def run():
        log: list[str] = []
        async for page in _read_ahead(_pages(log)):
            await asyncio.sleep(0.01)  # importing the page
            log.append(f"imported {'last' if page.last else 'page'}")
        return log

    assert asyncio.run(run()) == [
        "fetch 0",
        "fetch 1",
        "imported page",
        "fetch 2",
        "imported page",
        "closed",
        "imported last",
    ]


def test_page_that_fails__read_ahead__error_raised_where_that_page_would_have_come():
    async def run():
        log: list[str] = []

        async def consume() -> None:
            async for _ in _read_ahead(_pages(log, fail_at=1)):
                await asyncio.sleep(0.01)
                log.append("imported")

        with pytest.raises(RuntimeError, match="page 1 could not be read"):
            await consume()
        return log

    assert asyncio.run(run()) == ["fetch 0", "fetch 1", "closed", "imported"]


def test_consumer_stops_early__read_ahead__the_page_being_fetched_is_abandoned_and_the_pages_closed():
    async def run():
        log: list[str] = []
        reader = _read_ahead(_pages(log, count=5))
        async for _ in reader:
            await asyncio.sleep(0)  # the next page's fetch has started
            break
        await reader.aclose()
        await asyncio.sleep(0.01)
        return log

    assert asyncio.run(run()) == ["fetch 0", "fetch 1", "closed"]


def test_keyed_locks__same_key_one_at_a_time_other_keys_alongside_and_nothing_kept_afterwards():
    async def run():
        locks = _KeyedLocks()
        log: list[str] = []

        async def hold(key: str, name: str) -> None:
            async with locks.hold(key):
                log.append(f"{name} in")
                await asyncio.sleep(0.01)
                log.append(f"{name} out")

        await asyncio.gather(hold("a", "a1"), hold("a", "a2"), hold("b", "b1"))
        return log, locks._locks

    log, left = asyncio.run(run())
    assert log.index("a1 out") < log.index("a2 in")
    assert log.index("b1 in") < log.index("a1 out")
    assert left == {}


def _lanes(*, queued: int, importing: int = 0, end_known: bool = False, full_batches: int = 0, warm_up_calls: int = 0):
    """A mailbox run's mark-read lanes in a given state (no Graph, no store: only the sizing is looked at)."""
    from types import SimpleNamespace

    from mailplane.graph import MailboxConcurrencyLimiter
    from mailplane.importing.importer import MailboxReport, _MailboxRun

    graph = SimpleNamespace(limiter=MailboxConcurrencyLimiter(4), service=SimpleNamespace(users=SimpleNamespace()))
    graph.service.users.by_user_id = lambda _mailbox: None
    importer = SimpleNamespace(graph=graph, page_size=500, store=None, messages_in_parallel=4)
    run = _MailboxRun(importer, SimpleNamespace(address=SUPPORT), MailboxReport(SUPPORT))
    run._to_mark = [(f"id{n}", 0) for n in range(queued)]
    run._importing, run._end_known = importing, end_known
    run._full_batches, run._warm_up_calls = full_batches, warm_up_calls
    return run


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"queued": 25, "importing": 300}, (20, False)),  # more coming: full batches
        ({"queued": 3, "importing": 300}, (3, True)),  # start: whatever is waiting rather than idle
        ({"queued": 1, "importing": 300}, (1, True)),  # one waiting: a plain PATCH
        ({"queued": 3, "importing": 300, "full_batches": 4}, (0, False)),  # every lane had a full batch: wait
        ({"queued": 3, "importing": 300, "warm_up_calls": 20}, (0, False)),  # warm-up spent: wait
        ({"queued": 10, "end_known": True}, (1, False)),  # the last few: one by one
        ({"queued": 30, "importing": 200, "end_known": True}, (20, False)),  # end known, plenty left: full batches
        ({"queued": 14, "end_known": True}, (4, False)),  # 14 left over four free lanes: batches of four
        ({"queued": 0, "importing": 50}, (0, False)),
    ],
)
def test_mark_read_lanes__next_batch__sized_for_the_phase_of_the_run(state, expected):
    assert _lanes(**state)._next_batch() == expected


def _with_busy_lanes(run, busy: list[float], request_seconds: float = 0.1):
    """Other lanes each in a chained batch of 20 with ``busy`` request times of it still to go (a loop must run)."""
    now = asyncio.get_running_loop().time()
    run._request_seconds = request_seconds
    run._sending = {n: (now - (21 - left) * request_seconds, 20) for n, left in enumerate(busy)}
    return run


@pytest.mark.parametrize(
    ("queued", "busy", "expected"),
    [
        # Spread as singles, the 19 would be done after ~8.1 request times. A batch of 7 ends after 8 and leaves
        # 12 that the lanes still finish by ~8.4; a batch of 9 (sized so that every lane ends with one more batch)
        # would end after 10, when the others had long finished their singles.
        (19, [2.9, 4.3, 6.3], 7),
        (300, [5.0, 10.0, 15.0], 20),  # plenty left: a full batch, its envelope costs the lanes a quarter
        (40, [20.0, 20.0, 20.0], 20),  # the others are busy for longer than a full batch takes
        (13, [0.2, 0.4, 0.6], 3),  # everyone nearly free, 13 left: a batch of 3 ends with the rest (~3.7)
    ],
)
def test_mark_read_lanes__end_known__batch_ends_with_the_rest_spread_over_the_lanes(queued, busy, expected):
    async def size():
        return _with_busy_lanes(_lanes(queued=queued, end_known=True), busy)._next_batch()

    assert asyncio.run(size()) == (expected, False)


def test_spread_end__work_shared_by_lanes_as_they_come_free():
    from mailplane.importing.importer import _spread_end

    assert _spread_end([0.0, 0.0, 0.0, 0.0], 8) == 2.0
    assert _spread_end([0.0, 2.0, 4.0, 6.0], 4) == 3.0  # the two earliest lanes share it; the others stay out
    assert _spread_end([5.0, 1.0], 0) == 1.0  # nothing to do: ends when the first lane is free


def test_second_delta_page_refused__import_once__first_page_imported_error_reported_rest_on_the_next_run(
    tenant, make_config
):
    config = make_config()
    _seed(tenant, 12)
    tenant.faults.error(403, code="ErrorAccessDenied", path=r"/messages/delta", after=1)

    first = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]), page_size=5)

    (report,) = first.mailboxes
    assert report.imported == 5  # the first page, imported while the second was being asked for
    assert len(report.errors) == 1
    assert "403" in report.errors[0]
    assert read_store(config, lambda s: s.count_messages()) == 5
    tenant.faults.clear()

    second = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]), page_size=5)

    assert second.imported == 7
    assert read_store(config, lambda s: s.count_messages()) == 12
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))
