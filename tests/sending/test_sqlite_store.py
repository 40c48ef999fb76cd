"""The send stores (SQLite, and PostgreSQL when the test server runs): idempotent adds, leases, the governor's
atomic reservation across processes, send-test status.
"""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest
from sending_harness import drop_schema, fresh_schema, postgres_dsn

from mailplane.exceptions import IdempotencyConflictError, StoreError
from mailplane.integration import SendingLimits, StoreSettings
from mailplane.sending.outgoing import Address, OutgoingAttachment, OutgoingMessage, content_fingerprint
from mailplane.sending.sqlite_store import SQLiteSendStore
from mailplane.sending.store import ResponseLogEntry, SendRecord, SendState, SendTestStatus, open_send_store
from mailplane.store_schema import SEND_SCHEMA_VERSION

MAILBOX = "alerts@contoso.com"


def _record(key="k1", subject="Hi", **changes):
    message = OutgoingMessage(
        to=(Address("ann@example.com"),),
        subject=subject,
        text="Hello",
        attachments=(OutgoingAttachment("a.bin", bytes(range(256)) * 10),),
    )
    fields = {
        "key": key,
        "mailbox": MAILBOX,
        "message": message,
        "fingerprint": content_fingerprint(message),
        "marker": f"mailplane-send-{key}",
        "created_at": 1.0,
        "updated_at": 1.0,
    }
    return SendRecord(**{**fields, **changes})


def _open(spec):
    kind, where, *schema = spec
    if kind == "sqlite":
        return SQLiteSendStore(where)
    from mailplane.sending.postgres_store import PostgresSendStore

    return PostgresSendStore(where, schema=schema[0])


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request, tmp_path):
    if request.param == "sqlite":
        yield ("sqlite", str(tmp_path / "state" / "send.sqlite3"))
        return
    dsn = postgres_dsn()
    schema = fresh_schema()
    yield ("postgres", dsn, schema)
    drop_schema(dsn, schema)


@pytest.fixture
def store(store_spec):
    with _open(store_spec) as opened:
        yield opened


def test_new_sqlite_store__file_in_wal_mode_with_send_tables(tmp_path):
    with SQLiteSendStore(tmp_path / "send.sqlite3") as store:
        db = sqlite3.connect(store.path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"send_messages", "send_attachments", "send_ledger", "send_tests"} <= tables


def test_add__round_trips_message_and_attachment_bytes(store):
    [stored] = store.add([_record()])
    assert stored.state == SendState.QUEUED
    assert stored.message == _record().message
    assert stored.message.attachments[0].content == bytes(range(256)) * 10


def test_add_same_key_same_content__first_record_kept(store):
    store.add([_record()])
    store.update("k1", state=SendState.SENT, sent_at=5.0)
    [again] = store.add([_record()])
    assert again.state == SendState.SENT


def test_add_same_key_other_content__conflict_error_says_to_use_a_new_key(store):
    store.add([_record()])
    with pytest.raises(IdempotencyConflictError, match="already used for a different message"):
        store.add([_record(subject="Other")])


def test_sent__attachment_contents_dropped_but_metadata_kept(store):
    store.add([_record()])
    sent = store.update("k1", state=SendState.SENT)
    assert sent.message.attachments == ()
    assert store.records()[0].message.to == (Address("ann@example.com"),)


def test_claim__leased_by_a_live_owner__skipped_until_released(store):
    store.add([_record("a"), _record("b")])
    first = store.claim_due(MAILBOX, 10.0, "host:1:x", 60.0, 10)
    assert [r.key for r in first] == ["a", "b"]
    assert store.claim_due(MAILBOX, 10.0, "other:2:y", 60.0, 10) == []
    store.release("a", "host:1:x")
    assert [r.key for r in store.claim_due(MAILBOX, 10.0, "other:2:y", 60.0, 10)] == ["a"]


def test_claim__lease_expired__taken_over(store):
    store.add([_record("a")])
    store.claim_due(MAILBOX, 10.0, "otherhost:1:x", 5.0, 10)
    assert [r.key for r in store.claim_due(MAILBOX, 16.0, "me:2:y", 5.0, 10)] == ["a"]


def test_claim__owner_process_died_on_this_host__taken_over_before_expiry(store):
    import socket

    process = multiprocessing.get_context("spawn").Process(target=int)
    process.start()
    process.join()
    store.add([_record("a")])
    store.claim_due(MAILBOX, 10.0, f"{socket.gethostname()}:{process.pid}:x", 600.0, 10)
    assert [r.key for r in store.claim_due(MAILBOX, 11.0, "me:2:y", 600.0, 10)] == ["a"]


def test_claim__not_yet_due_and_finished_sends__not_claimed(store):
    store.add([_record("later", not_before=100.0), _record("done")])
    store.update("done", state=SendState.FAILED, last_error="400")
    assert store.claim_due(MAILBOX, 50.0, "me:1:x", 60.0, 10) == []
    assert store.next_due(MAILBOX) == 100.0


def test_reserve__limit_reached__returns_when_and_records_nothing(store):
    limits = SendingLimits(recipients_per_day=100, messages_per_minute=2)
    assert store.reserve_budget(MAILBOX, "a", 1, 100.0, limits) == 100.0
    assert store.reserve_budget(MAILBOX, "b", 1, 101.0, limits) == 101.0
    assert store.reserve_budget(MAILBOX, "c", 1, 102.0, limits) == 160.0
    assert len(store.ledger(MAILBOX, 0.0)) == 2
    # The same key again (a retry of a send) replaces its own entry instead of counting twice.
    assert store.reserve_budget(MAILBOX, "b", 1, 130.0, limits) == 130.0
    assert [e.at for e in store.ledger(MAILBOX, 0.0)] == [100.0, 130.0]


def _reserve_many(spec, worker, count, results):
    limits = SendingLimits(recipients_per_day=1000, messages_per_minute=7)
    with _open(spec) as store:
        granted = sum(
            1 for i in range(count) if store.reserve_budget(MAILBOX, f"{worker}-{i}", 1, 500.0, limits) <= 500
        )
    results.put(granted)


def test_reserve_from_four_processes_at_once__exactly_the_limit_granted(store_spec):
    _open(store_spec).close()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_reserve_many, args=(store_spec, w, 5, results)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(results.get() for _ in workers) == 7


def test_send_test_status__saved_and_read_back(store):
    entry = ResponseLogEntry(1.0, "POST", "http://127.0.0.1/v1.0/users/a/messages", 201, {"accept": "*/*"})
    store.save_send_test(SendTestStatus(MAILBOX, 2.0, "sent", "delivered", "k", "ann@example.com", (entry,)))
    status = store.send_test(MAILBOX.upper())
    assert status is not None
    assert (status.status, status.response_log) == ("sent", (entry,))


def test_open__postgres_backend_without_its_variable__error_names_the_variable():
    with pytest.raises(StoreError, match="the variable SEND_DSN is not set"):
        open_send_store(StoreSettings("postgres", dsn_env="SEND_DSN"), environ={})


def test_open__postgres_server_unreachable__store_error_without_the_password():
    dsn = "postgresql://mailplane:hunter2@127.0.0.1:9/mailplane"
    with pytest.raises(StoreError, match="opening the PostgreSQL send store") as caught:
        open_send_store(StoreSettings("postgres", dsn_env="SEND_DSN"), environ={"SEND_DSN": dsn})
    assert "hunter2" not in str(caught.value)


def test_open__path_is_a_directory__store_error_names_the_path(tmp_path):
    with pytest.raises(StoreError, match=str(tmp_path)):
        SQLiteSendStore(tmp_path)


def test_summary__counts_every_state_last_send_and_latest_failures_first(store):
    store.add([_record("a"), _record("b"), _record("c"), _record("d")])
    store.update("a", state=SendState.SENT, sent_at=10.0)
    store.update("b", state=SendState.FAILED, last_error="400 first")
    store.update("c", state=SendState.FAILED, last_error="400 second")
    summary = store.summary(MAILBOX)
    assert summary.counts == {"queued": 1, "drafting": 0, "drafted": 0, "sending": 0, "sent": 1, "failed": 2}
    assert summary.last_sent_at == 10.0
    assert [r.last_error for r in summary.recent_failures] == ["400 second", "400 first"]


def test_forget_finished__old_sent_and_failed_deleted_unfinished_and_recent_kept(store):
    import time

    store.add([_record("old-sent"), _record("old-failed"), _record("queued"), _record("new-sent")])
    store.update("old-sent", state=SendState.SENT)
    store.update("old-failed", state=SendState.FAILED)
    cutoff = time.time() + 0.001
    time.sleep(0.01)
    store.update("new-sent", state=SendState.SENT)
    assert store.forget_finished(MAILBOX, cutoff) == 2
    assert sorted(r.key for r in store.records(MAILBOX)) == ["new-sent", "queued"]
    assert store.get("queued").message.attachments


def test_send_store_written_by_a_newer_mailplane__open__refused_with_what_to_do(store_spec):
    with _open(store_spec):
        pass
    if store_spec[0] == "sqlite":
        with sqlite3.connect(store_spec[1]) as db:
            assert db.execute("SELECT version FROM send_schema").fetchall() == [(SEND_SCHEMA_VERSION,)]
            db.execute("UPDATE send_schema SET version = version + 1")
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(store_spec[1], autocommit=True) as db:
            table = sql.Identifier(store_spec[2], "send_schema")
            assert db.execute(sql.SQL("SELECT version FROM {}").format(table)).fetchall() == [(SEND_SCHEMA_VERSION,)]
            db.execute(sql.SQL("UPDATE {} SET version = version + 1").format(table))

    with pytest.raises(StoreError, match=r"newer mailplane \(schema version 2; .*Upgrade mailplane on every worker"):
        _open(store_spec)
