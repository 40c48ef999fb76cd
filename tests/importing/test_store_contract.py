"""The import store contract: every backend (``STORE_BACKENDS`` in conftest.py) must pass all of it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest
from importing_harness import START, with_store

from mailplane.importing.store import (
    DestinationInput,
    DocumentInput,
    FollowerInput,
    ImportedMessage,
    ThreadKeys,
)

SUPPORT = "support@fabrikam.com"
BILLING = "billing@fabrikam.com"
TTL = dt.timedelta(minutes=5)


def message(
    immutable_id: str,
    internet_id: str,
    *,
    mailbox: str = SUPPORT,
    destinations: tuple[str, ...] = (SUPPORT,),
    thread: ThreadKeys | None = None,
    subject: str = "Printer on fire",
    fields: dict | None = None,
    exclusive: bool = False,
    minutes: int = 0,
    followers: tuple[FollowerInput, ...] = (),
    documents: tuple[DocumentInput, ...] = (),
) -> ImportedMessage:
    return ImportedMessage(
        mailbox=mailbox,
        immutable_id=immutable_id,
        internet_message_id=internet_id,
        received_at=START + dt.timedelta(minutes=minutes),
        destinations=tuple(
            DestinationInput(address, "ticket", fields if fields is not None else {"title": subject})
            for address in destinations
        ),
        subject=subject,
        thread=thread or ThreadKeys(),
        attributes={"subject": subject, "fromAddress": "ann@example.com"},
        followers=followers,
        documents=documents,
        exclusive=exclusive,
    )


# --- leases ------------------------------------------------------------------------------------------------------


def test_lease__free_mailbox__first_worker_gets_it_second_is_refused(store):
    async def scenario(s):
        first = await s.acquire_lease(SUPPORT, "worker-a", TTL)
        second = await s.acquire_lease(SUPPORT, "worker-b", TTL)
        return first, second, await s.get_lease(SUPPORT)

    first, second, current = with_store(store, scenario)
    assert first is not None
    assert first.holder == "worker-a"
    assert first.expires_at == START + TTL
    assert second is None
    assert current == first


def test_lease__holder_died_and_lease_expired__another_worker_takes_it_and_old_holder_cannot_renew(store, clock):
    async def scenario(s):
        await s.acquire_lease(SUPPORT, "worker-a", TTL)
        clock.advance(minutes=6)
        taken = await s.acquire_lease(SUPPORT, "worker-b", TTL)
        renewed_by_dead = await s.renew_lease(SUPPORT, "worker-a", TTL)
        return taken, renewed_by_dead

    taken, renewed_by_dead = with_store(store, scenario)
    assert taken is not None
    assert taken.holder == "worker-b"
    assert renewed_by_dead is None


def test_lease__holder_renews_before_expiry__others_still_refused_after_original_ttl(store, clock):
    async def scenario(s):
        await s.acquire_lease(SUPPORT, "worker-a", TTL)
        clock.advance(minutes=4)
        renewed = await s.renew_lease(SUPPORT, "worker-a", TTL)
        clock.advance(minutes=4)
        return renewed, await s.acquire_lease(SUPPORT, "worker-b", TTL)

    renewed, other = with_store(store, scenario)
    assert renewed is not None
    assert renewed.expires_at == START + dt.timedelta(minutes=9)
    assert other is None


def test_lease__released__next_worker_takes_it_and_release_by_non_holder_is_ignored(store):
    async def scenario(s):
        await s.acquire_lease(SUPPORT, "worker-a", TTL)
        await s.release_lease(SUPPORT, "worker-b")
        still_held = await s.get_lease(SUPPORT)
        await s.release_lease(SUPPORT, "worker-a")
        return still_held, await s.get_lease(SUPPORT), await s.acquire_lease(SUPPORT, "worker-b", TTL)

    still_held, after_release, taken = with_store(store, scenario)
    assert still_held is not None
    assert still_held.holder == "worker-a"
    assert after_release is None
    assert taken is not None


def test_lease__mailboxes_are_independent_and_compared_case_insensitively(store):
    async def scenario(s):
        return (
            await s.acquire_lease(SUPPORT, "worker-a", TTL),
            await s.acquire_lease(BILLING, "worker-b", TTL),
            await s.acquire_lease(SUPPORT.upper(), "worker-b", TTL),
        )

    support, billing, support_upper = with_store(store, scenario)
    assert support is not None
    assert billing is not None
    assert support_upper is None


def test_lease__many_workers_race_for_one_mailbox__exactly_one_wins(store_factory):
    async def scenario():
        stores = [store_factory() for _ in range(6)]
        for s in stores:
            await s.open()
        try:
            results = await asyncio.gather(
                *(s.acquire_lease(SUPPORT, f"worker-{n}", TTL) for n, s in enumerate(stores))
            )
        finally:
            for s in stores:
                await s.close()
        return results

    results = asyncio.run(scenario())
    assert sum(result is not None for result in results) == 1


# --- delta links -------------------------------------------------------------------------------------------------


def test_delta_link__saved_then_forgotten__next_run_starts_a_full_sync(store):
    async def scenario(s):
        before = await s.get_delta_link(SUPPORT, "inbox")
        await s.set_delta_link(SUPPORT, "inbox", "https://graph/delta?$deltatoken=1")
        await s.set_delta_link(SUPPORT, "inbox", "https://graph/delta?$deltatoken=2")
        saved = await s.get_delta_link(SUPPORT.upper(), "Inbox")
        other_folder = await s.get_delta_link(SUPPORT, "archive")
        await s.set_delta_link(SUPPORT, "inbox", None)
        return before, saved, other_folder, await s.get_delta_link(SUPPORT, "inbox")

    before, saved, other_folder, forgotten = with_store(store, scenario)
    assert before is None
    assert saved == "https://graph/delta?$deltatoken=2"
    assert other_folder is None
    assert forgotten is None


# --- record_import: exactly once ---------------------------------------------------------------------------------


def test_record_import__new_message__conversation_message_followers_documents_and_stored_state(store):
    follower = FollowerInput("Ann@Example.com", "Ann", "participant", ("from",), "person", "p1")
    documents = (
        DocumentInput("document", "invoice.pdf", "application/pdf", 1200, "ab" * 32, "blob:ab", None),
        DocumentInput("document", "huge.iso", "application/octet-stream", 90_000_000, skipped=True, skip_reason="big"),
        DocumentInput("embeddedFile", "logo.png", "image/png", 300, "cd" * 32, "blob:cd", "logo@x"),
    )

    async def scenario(s):
        outcome = await s.record_import(message("imm-1", "<m1@x>", followers=(follower,), documents=documents))
        return outcome, await s.list_conversations(), await s.get_message_state(SUPPORT, "imm-1")

    outcome, conversations, state = with_store(store, scenario)
    assert not outcome.duplicate
    assert outcome.state.state == "stored"
    [conversation] = conversations
    assert outcome.conversations == ((SUPPORT, conversation.id, True),)
    assert conversation.parent_type == "ticket"
    assert conversation.parent_fields == {"title": "Printer on fire"}
    [stored] = conversation.messages
    assert (stored.immutable_id, stored.internet_message_id, stored.mailbox) == ("imm-1", "<m1@x>", SUPPORT)
    assert stored.attributes["fromAddress"] == "ann@example.com"
    [person] = conversation.followers
    assert (person.address, person.parent_type, person.parent_id) == ("ann@example.com", "person", "p1")
    assert stored.followers == ((person.id, "from"),)
    assert [(d.name, d.kind, d.skipped, d.skip_reason) for d in stored.documents] == [
        ("invoice.pdf", "document", False, None),
        ("huge.iso", "document", True, "big"),
        ("logo.png", "embeddedFile", False, None),
    ]
    assert state is not None
    assert state.state == "stored"
    assert state.received_at == START


def test_record_import__same_copy_recorded_twice__second_call_writes_nothing(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>"))
        again = await s.record_import(message("imm-1", "<m1@x>"))
        return again, await s.count_messages(), await s.list_conversations()

    again, count, conversations = with_store(store, scenario)
    assert again.duplicate
    assert again.conversations == ()
    assert count == 1
    assert len(conversations) == 1


def test_record_import__second_copy_with_same_internet_id_in_another_mailbox__no_new_records_but_own_state(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>"))
        copy = await s.record_import(message("imm-2", "<m1@x>", mailbox=BILLING, destinations=(SUPPORT,)))
        return copy, await s.count_messages(), await s.get_message_state(BILLING, "imm-2")

    copy, count, state = with_store(store, scenario)
    assert copy.duplicate
    assert count == 1
    assert state is not None
    assert state.state == "stored"


def test_record_import__two_destinations__one_conversation_each_and_a_copy_adds_nothing(store):
    async def scenario(s):
        first = await s.record_import(message("imm-1", "<m1@x>", destinations=(SUPPORT, BILLING)))
        copy = await s.record_import(message("imm-2", "<m1@x>", mailbox=BILLING, destinations=(SUPPORT, BILLING)))
        return first, copy, await s.list_conversations(SUPPORT), await s.list_conversations(BILLING)

    first, copy, support, billing = with_store(store, scenario)
    assert [(d, created) for d, _, created in first.conversations] == [(SUPPORT, True), (BILLING, True)]
    assert copy.duplicate
    assert len(support) == len(billing) == 1
    assert support[0].id != billing[0].id


def test_record_import__exclusive_and_another_destination_holds_it__nothing_added(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>", destinations=(SUPPORT,), exclusive=True))
        other = await s.record_import(
            message("imm-2", "<m1@x>", mailbox=BILLING, destinations=(BILLING,), exclusive=True)
        )
        return other, await s.count_messages()

    other, count = with_store(store, scenario)
    assert other.duplicate
    assert count == 1


# --- threading ---------------------------------------------------------------------------------------------------


def test_threading__same_graph_conversation_id_in_same_mailbox__joins_the_conversation(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>", thread=ThreadKeys("CONV-1")))
        reply = await s.record_import(message("imm-2", "<m2@x>", thread=ThreadKeys("CONV-1"), subject="RE: x"))
        return reply, await s.list_conversations()

    reply, conversations = with_store(store, scenario)
    [conversation] = conversations
    assert reply.conversations == ((SUPPORT, conversation.id, False),)
    assert [m.internet_message_id for m in conversation.messages] == ["<m1@x>", "<m2@x>"]


def test_threading__graph_id_differs_but_in_reply_to_names_an_imported_message__joins_it(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>", thread=ThreadKeys("CONV-1")))
        await s.record_import(message("imm-2", "<m2@x>", thread=ThreadKeys("CONV-9", in_reply_to=("<m1@x>",))))
        await s.record_import(
            message("imm-3", "<m3@x>", thread=ThreadKeys("CONV-8", references=("<m1@x>", "<unknown@x>")))
        )
        return await s.list_conversations()

    [conversation] = with_store(store, scenario)
    assert len(conversation.messages) == 3


def test_threading__graph_conversation_id_from_another_mailbox__does_not_join(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>", thread=ThreadKeys("CONV-1")))
        await s.record_import(message("imm-2", "<m2@x>", mailbox=BILLING, thread=ThreadKeys("CONV-1")))
        return await s.list_conversations()

    assert len(with_store(store, scenario)) == 2


def test_threading__reply_fills_only_empty_parent_fields(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>", thread=ThreadKeys("C"), fields={"title": "A", "co": None}))
        await s.record_import(
            message("imm-2", "<m2@x>", thread=ThreadKeys("C"), fields={"title": "B", "co": "Contoso"})
        )
        return await s.list_conversations()

    [conversation] = with_store(store, scenario)
    assert conversation.parent_fields == {"title": "A", "co": "Contoso"}


def test_followers__same_address_on_two_messages__one_follower_named_by_both(store):
    ann_from = FollowerInput("ann@example.com", "Ann", "participant", ("from",))
    ann_cc = FollowerInput("ANN@example.com", "Ann", "participant", ("cc",))

    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>", thread=ThreadKeys("C"), followers=(ann_from,)))
        await s.record_import(message("imm-2", "<m2@x>", thread=ThreadKeys("C"), followers=(ann_cc,)))
        return await s.list_conversations()

    [conversation] = with_store(store, scenario)
    [ann] = conversation.followers
    assert [m.followers for m in conversation.messages] == [((ann.id, "from"),), ((ann.id, "cc"),)]


def test_followers__destination_lists_its_own__they_replace_the_messages_for_that_destination_only(store):
    ann_person = FollowerInput("ann@example.com", "Ann", "participant", ("from",), "person", "p-ann")
    ann_address = FollowerInput("ann@example.com", "Ann", "participant", ("from",))
    base = message("imm-1", "<m1@x>", destinations=(SUPPORT, BILLING), followers=(ann_person,))
    own = dataclasses.replace(base.destinations[1], followers=(ann_address,))
    imported = dataclasses.replace(base, destinations=(base.destinations[0], own))

    async def scenario(s):
        await s.record_import(imported)
        return {c.destination: c.followers for c in await s.list_conversations()}

    followers = with_store(store, scenario)
    assert [(f.address, f.parent_type, f.parent_id) for f in followers[SUPPORT]] == [
        ("ann@example.com", "person", "p-ann")
    ]
    assert [(f.address, f.parent_type, f.parent_id) for f in followers[BILLING]] == [("ann@example.com", None, None)]


# --- states: mark read, failures, moves, recovery ----------------------------------------------------------------


def test_states__stored_then_marked_read__nothing_pending(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>"))
        await s.record_import(message("imm-2", "<m2@x>", minutes=1))
        pending_before = await s.pending_mailbox_actions(SUPPORT)
        await s.mark_read(SUPPORT, ["imm-1", "imm-2", "imm-unknown"])
        return pending_before, await s.pending_mailbox_actions(SUPPORT), await s.list_message_states(SUPPORT)

    before, after, states = with_store(store, scenario)
    assert [p.immutable_id for p in before] == ["imm-1", "imm-2"]
    assert after == []
    assert [(st.immutable_id, st.state) for st in states] == [("imm-1", "read"), ("imm-2", "read")]


def test_states__failure_recorded_twice_then_moved__attempts_counted_and_retryable_by_age(store, clock):
    async def scenario(s):
        first = await s.record_failure(SUPPORT, "imm-9", reason="broken MIME", received_at=START)
        second = await s.record_failure(SUPPORT, "imm-9", reason="still broken")
        pending = await s.pending_mailbox_actions(SUPPORT)
        moved = await s.mark_moved(SUPPORT, "imm-9", in_failure_folder=True)
        clock.advance(hours=2)
        young = await s.failures_to_retry(SUPPORT, START - dt.timedelta(hours=1))
        old = await s.failures_to_retry(SUPPORT, START + dt.timedelta(minutes=1))
        return first, second, pending, moved, young, old, await s.pending_mailbox_actions(SUPPORT)

    first, second, pending, moved, young, old, pending_after = with_store(store, scenario)
    assert (first.state, first.attempts) == ("failed", 1)
    assert (second.state, second.attempts, second.reason) == ("failed", 2, "still broken")
    assert second.received_at == START
    assert [p.immutable_id for p in pending] == ["imm-9"]
    assert moved is not None
    assert (moved.state, moved.in_failure_folder) == ("moved", True)
    assert [f.immutable_id for f in young] == ["imm-9"]
    assert old == []
    assert pending_after == []


def test_states__failed_copy_imported_on_retry__stored_in_failure_folder_until_moved_back(store):
    async def scenario(s):
        await s.record_failure(SUPPORT, "imm-1", reason="Graph 503", received_at=START)
        await s.mark_moved(SUPPORT, "imm-1", in_failure_folder=True)
        outcome = await s.record_import(message("imm-1", "<m1@x>"))
        await s.mark_read(SUPPORT, ["imm-1"])
        pending = await s.pending_mailbox_actions(SUPPORT)
        back = await s.mark_moved(SUPPORT, "imm-1", in_failure_folder=False)
        return outcome, pending, back, await s.pending_mailbox_actions(SUPPORT)

    outcome, pending, back, pending_after = with_store(store, scenario)
    assert not outcome.duplicate
    assert (outcome.state.state, outcome.state.in_failure_folder, outcome.state.attempts) == ("stored", True, 1)
    assert [(p.state, p.in_failure_folder) for p in pending] == [("read", True)]
    assert back is not None
    assert (back.state, back.in_failure_folder) == ("read", False)
    assert pending_after == []


def test_states__failure_reported_after_the_copy_was_stored__store_keeps_the_import(store):
    async def scenario(s):
        await s.record_import(message("imm-1", "<m1@x>"))
        late = await s.record_failure(SUPPORT, "imm-1", reason="late timeout")
        return late, await s.get_message_state(SUPPORT, "imm-1")

    late, state = with_store(store, scenario)
    assert late.state == "stored"
    assert state is not None
    assert state.reason is None


def test_states__many_ids_looked_up_at_once__only_known_ones_returned(store):
    async def scenario(s):
        for n in range(3):
            await s.record_import(message(f"imm-{n}", f"<m{n}@x>", minutes=n))
        ids = [f"imm-{n}" for n in range(1200)]
        return await s.get_message_states(SUPPORT, ids)

    states = with_store(store, scenario)
    assert sorted(states) == ["imm-0", "imm-1", "imm-2"]


def test_record_import__concurrent_workers_record_the_same_message__stored_once(store_factory):
    async def scenario():
        stores = [store_factory() for _ in range(4)]
        for s in stores:
            await s.open()
        try:
            outcomes = await asyncio.gather(*(s.record_import(message("imm-1", "<m1@x>")) for s in stores))
            count = await stores[0].count_messages()
        finally:
            for s in stores:
                await s.close()
        return outcomes, count

    outcomes, count = asyncio.run(scenario())
    assert count == 1
    assert sum(not outcome.duplicate for outcome in outcomes) == 1


def test_open_import_store__sqlite_settings__opens_a_working_store_at_the_configured_path(tmp_path):
    from mailplane.importing import open_import_store
    from mailplane.integration import StoreSettings

    store = open_import_store(StoreSettings("sqlite", sqlite_path=tmp_path / "nested" / "s.sqlite3"))

    async def scenario(s):
        await s.set_delta_link(SUPPORT, "inbox", "link")
        return await s.get_delta_link(SUPPORT, "inbox")

    assert with_store(store, scenario) == "link"
    assert (tmp_path / "nested" / "s.sqlite3").is_file()


def test_open_import_store__postgres_without_its_variable__error_names_the_variable():
    import pytest

    from mailplane.exceptions import StoreError
    from mailplane.importing import open_import_store
    from mailplane.integration import StoreSettings

    with pytest.raises(StoreError, match="MAILPLANE_TEST_DSN is not set"):
        open_import_store(StoreSettings("postgres", dsn_env="MAILPLANE_TEST_DSN"), environ={})


def test_threading__reply_imported_before_the_message_it_answers__earliest_message_gives_the_parent_fields(store):
    async def scenario(s):
        await s.record_import(
            message("imm-2", "<m2@x>", thread=ThreadKeys("C"), subject="RE: A", fields={"title": "RE: A"}, minutes=5)
        )
        await s.record_import(message("imm-1", "<m1@x>", thread=ThreadKeys("C"), subject="A", fields={"title": "A"}))
        await s.record_import(
            message("imm-3", "<m3@x>", thread=ThreadKeys("C"), subject="RE: RE: A", fields={"title": None}, minutes=9)
        )
        return await s.list_conversations()

    [conversation] = with_store(store, scenario)
    assert conversation.parent_fields == {"title": "A"}
    assert conversation.subject == "A"
    assert [m.internet_message_id for m in conversation.messages] == ["<m1@x>", "<m2@x>", "<m3@x>"]


# --- reading -----------------------------------------------------------------------------------------------------


def test_list_conversations__pages_by_id__every_conversation_once_in_order_and_destination_filter_kept(store):
    async def scenario(s):
        for n in range(5):
            await s.record_import(message(f"imm-{n}", f"<m{n}@x>", thread=ThreadKeys(f"C{n}")))
        await s.record_import(message("imm-b", "<b@x>", mailbox=BILLING, destinations=(BILLING,)))
        pages, after = [], 0
        while page := await s.list_conversations(SUPPORT, after_id=after, limit=2):
            pages.append([c.id for c in page])
            after = page[-1].id
        everything = await s.list_conversations()
        return pages, everything, await s.list_conversations(after_id=everything[-1].id)

    pages, everything, beyond = with_store(store, scenario)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [c.id for c in everything if c.destination == SUPPORT]
    assert [c.id for c in everything] == sorted(c.id for c in everything)
    assert len(everything) == 6
    assert beyond == []


@pytest.mark.parametrize("limit", [0, -3, True])
def test_list_conversations__limit_below_one__refused_before_reading(store, limit):
    async def scenario(s):
        with pytest.raises(ValueError, match="limit must be a whole number of at least 1"):
            await s.list_conversations(limit=limit)

    with_store(store, scenario)
