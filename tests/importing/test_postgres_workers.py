"""Many workers on one PostgreSQL store: parallel mailboxes, SIGKILLs at random points, dropped connections, Graph
faults. Afterwards every seeded message is in the store exactly once, read or in the failure folder, nothing else in
the mailboxes changed, and every message was written by the worker that held its mailbox's lease at that moment."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from importing_harness import BILLING, SUPPORT, eml, integration_config, received
from postgres_harness import postgres_dsn

from mailplane.devtenant.app import DevTenant

pytestmark = pytest.mark.postgres

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SALES = "sales@fabrikam.com"
LEGAL = "legal@fabrikam.com"
MAILBOXES = (SUPPORT, BILLING, SALES, LEGAL)
DSN_VARIABLE = "MAILPLANE_WORKERS_TEST_DSN"

# Who made each import decision (a state row written by record_import or record_failure), and who held the mailbox's
# lease when that write committed. The lease row is read FOR SHARE, so a worker taking the lease over waits for the
# write to commit: the audit is exact. Finishing steps (marked read, moved) are not import decisions and not audited.
AUDIT = """
CREATE TABLE write_audit (
    mailbox       text NOT NULL,
    immutable_id  text NOT NULL,
    state         text NOT NULL,
    writer        text NOT NULL,
    lease_holder  text,
    lease_valid   boolean NOT NULL
);
CREATE FUNCTION audit_state_write() RETURNS trigger AS $$
DECLARE
    lease record;
BEGIN
    IF TG_OP = 'UPDATE' AND NOT (NEW.state IN ('stored', 'failed')
                                 AND (OLD.state <> NEW.state OR OLD.attempts <> NEW.attempts)) THEN
        RETURN NEW;
    END IF;
    SELECT holder, expires_at INTO lease FROM leases WHERE mailbox = NEW.mailbox FOR SHARE;
    INSERT INTO write_audit VALUES (NEW.mailbox, NEW.immutable_id, NEW.state, current_setting('application_name'),
                                    lease.holder, COALESCE(lease.expires_at > clock_timestamp(), false));
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_state_write AFTER INSERT OR UPDATE ON message_states
    FOR EACH ROW EXECUTE FUNCTION audit_state_write();
"""


@pytest.fixture
def database():
    """A fresh database on the loopback server for this test (workers connect with their own application_name)."""
    import psycopg

    base = postgres_dsn()
    name = f"mailplane_workers_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(base, dbname=name)
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def tenant():
    with DevTenant(with_exchange=False) as running:
        for address in MAILBOXES:
            running.state.add_mailbox(address, kind="shared", display_name=address.split("@")[0].title())
        yield running


def _config(tmp_path: Path) -> Path:
    data = integration_config(tmp_path)
    shared = data["accounts"]["shared"]
    for address in (SALES, LEGAL):
        shared.append(
            {
                "address": address,
                "conversation": {"parent": "ticket", "properties": {"title": {"message": "subject"}}},
            }
        )
    data["store"] = {"backend": "postgres", "dsnEnv": DSN_VARIABLE}
    path = tmp_path / "integration.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _prepare_schema(dsn: str) -> None:
    import psycopg

    from mailplane.importing.store_postgres import PostgresImportStore

    async def create() -> None:
        async with PostgresImportStore(dsn):
            pass

    asyncio.run(create())
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(AUDIT)


def _seed(tenant, per_mailbox: int) -> dict[str, str]:
    seeded = {}
    for n in range(per_mailbox * len(MAILBOXES)):
        mailbox = MAILBOXES[n % len(MAILBOXES)]
        message_id = f"<pg-{n}@example.org>"
        attachments = [("note.txt", "text/plain", f"attachment {n}".encode())] if n % 5 == 0 else ()
        tenant.state.seed_eml(
            mailbox,
            eml(f"Worker test {n}", to=mailbox, message_id=message_id, attachments=attachments),
            received=received(n * 0.2),
        )
        seeded[message_id] = mailbox
    # Bystanders: an already read message and an archived one must stay exactly as they are.
    tenant.state.seed_eml(SALES, eml("Already read", message_id="<read-before@x>"), is_read=True)
    tenant.state.seed_eml(LEGAL, eml("Archived", to=LEGAL, message_id="<archived@x>"), folder="archive")
    return seeded


def _snapshot(tenant) -> dict[str, tuple[str, bool, str | None]]:
    return {
        m.immutable_id: (m.folder_id, m.is_read, m.internet_message_id)
        for box in tenant.state.mailboxes()
        for m in box.messages.values()
    }


class Workers:
    """Worker processes, each with its own holder name and database application_name."""

    def __init__(self, config_path: Path, graph_url: str, dsn: str, tmp_path: Path) -> None:
        import psycopg

        self.config_path, self.graph_url, self.dsn, self.tmp_path = config_path, graph_url, dsn, tmp_path
        self.make_conninfo = psycopg.conninfo.make_conninfo
        self.running: list[subprocess.Popen[str]] = []
        self.finished: list[subprocess.Popen[str]] = []
        self.started = 0
        self.killed: set[str] = set()
        self.holders: dict[int, str] = {}
        self.started_at: dict[int, float] = {}

    def start(
        self, *, passes: int = 3, lease_seconds: float = 2.0, mailboxes: tuple[str, ...] = ()
    ) -> subprocess.Popen[str]:
        self.started += 1
        holder = f"worker-{self.started}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
            DSN_VARIABLE: self.make_conninfo(self.dsn, application_name=holder),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "postgres_worker.py"),
                str(self.config_path),
                self.graph_url,
                "--holder",
                holder,
                "--blobs",
                str(self.tmp_path / "blobs"),
                "--lease-seconds",
                str(lease_seconds),
                "--passes",
                str(passes),
                *(option for mailbox in mailboxes for option in ("--mailbox", mailbox)),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.running.append(process)
        self.holders[process.pid] = holder
        self.started_at[process.pid] = time.monotonic()
        return process

    def busy(self, *, at_least: float) -> list[subprocess.Popen[str]]:
        """Running workers that started at least ``at_least`` seconds ago (past their start-up, into the work)."""
        now = time.monotonic()
        return [p for p in self.running if now - self.started_at[p.pid] >= at_least]

    def reap(self) -> None:
        for process in [p for p in self.running if p.poll() is not None]:
            self.running.remove(process)
            self.finished.append(process)

    def kill(self, process: subprocess.Popen[str]) -> None:
        self.killed.add(self.holders[process.pid])
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self.reap()

    def wait_all(self, timeout: float = 120) -> None:
        for process in list(self.running):
            process.wait(timeout=timeout)
        self.reap()

    def reports(self) -> list[dict]:
        lines = []
        for process in self.finished:
            out = process.stdout.read() if process.stdout else ""
            lines.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))
        return lines


def _terminate_worker_connections(dsn: str, stop: threading.Event, rng: random.Random, killed: list[int]) -> None:
    """Now and then, cut the workers' database connections (as a failover or a network cut would)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        while not stop.wait(rng.uniform(0.4, 1.2)):
            rows = connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE 'worker-%%' AND pid <> pg_backend_pid()"
            ).fetchall()
            killed.append(len(rows))


@pytest.mark.slow
def test_workers_on_four_mailboxes__killed_and_disconnected_at_random__every_message_exactly_once(
    tenant, database, tmp_path
):
    seed = int(os.environ.get("MAILPLANE_CRASH_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    note = f"seed {seed} (rerun with MAILPLANE_CRASH_SEED={seed})"
    config_path = _config(tmp_path)
    _prepare_schema(database)
    seeded = _seed(tenant, per_mailbox=40)
    before = _snapshot(tenant)
    tenant.graph.latency_ms = 20  # stretch the work so that kills land in the middle of it
    tenant.faults.throttle(retry_after=0, probability=0.06, seed=seed)
    tenant.faults.error(status=503, probability=0.04, seed=seed + 1)
    tenant.faults.drop(probability=0.03, seed=seed + 2)
    tenant.faults.apply_then_drop(method="POST", probability=0.08, seed=seed + 3)

    workers = Workers(config_path, tenant.graph_base_url, database, tmp_path)
    stop_cutting, cuts = threading.Event(), []
    cutter = threading.Thread(
        target=_terminate_worker_connections, args=(database, stop_cutting, random.Random(seed + 5), cuts)
    )
    cutter.start()
    kills = 0

    def start_worker() -> None:
        # Each worker takes two of the four mailboxes, so workers run in parallel and also compete for leases.
        workers.start(passes=40, mailboxes=tuple(rng.sample(MAILBOXES, 2)))

    try:
        for _ in range(3):
            start_worker()
        for _ in range(10):
            time.sleep(rng.uniform(1.5, 3.5))
            workers.reap()
            busy = workers.busy(at_least=1.5)  # a worker needs about a second to start; then it works
            if busy:
                workers.kill(rng.choice(busy))
                kills += 1
            while len(workers.running) < 3:
                start_worker()
    finally:
        stop_cutting.set()
        cutter.join(timeout=30)
        for process in list(workers.running):
            process.send_signal(signal.SIGKILL)
        workers.wait_all()

    tenant.faults.clear()
    imported_under_chaos = _count_messages(database)
    time.sleep(2.1)  # the killed workers' leases expire
    for _ in range(2):
        finisher = workers.start(passes=1, lease_seconds=30)
        finisher.wait(timeout=120)
        workers.reap()
        assert finisher.returncode == 0, finisher.stderr.read()[-3000:]

    assert kills >= 8, note
    assert imported_under_chaos > 0, f"the workers imported nothing before the finishers ran ({note})"
    killed_writers = workers.killed & _writers(database)
    assert killed_writers, f"no worker was killed after it had started writing ({note})"
    _assert_exactly_once(tenant, database, seeded, before, note)
    _assert_written_under_the_lease(database, note)
    assert sum(cuts) > 0, f"no database connection was cut ({note})"


def _writers(dsn: str) -> set[str]:
    import psycopg

    with psycopg.connect(dsn) as connection:
        return {row[0] for row in connection.execute("SELECT DISTINCT writer FROM write_audit").fetchall()}


def _count_messages(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as connection:
        return int(connection.execute("SELECT count(*) FROM messages").fetchone()[0])


def _assert_exactly_once(tenant, dsn, seeded, before, note):
    import psycopg

    with psycopg.connect(dsn) as connection:
        imported = [
            row[0] for row in connection.execute("SELECT internet_message_id FROM messages ORDER BY id").fetchall()
        ]
        states = {
            row[0]: row[1]
            for row in connection.execute("SELECT internet_message_id, state FROM message_states").fetchall()
        }
    moved = {message_id for message_id, state in states.items() if state == "moved"}
    assert len(imported) == len(set(imported)), f"a message was imported twice ({note})"
    assert set(imported) | moved == set(seeded), f"lost: {sorted(set(seeded) - set(imported) - moved)} ({note})"
    assert not set(imported) & moved, note
    assert set(states) == set(seeded), f"state rows for messages nobody seeded ({note})"
    after = _snapshot(tenant)
    assert set(after) == set(before), f"messages appeared or vanished ({note})"
    for immutable_id, (folder, was_read, message_id) in before.items():
        now_folder, now_read, _ = after[immutable_id]
        if message_id not in seeded:
            assert (now_folder, now_read) == (folder, was_read), f"a bystander changed ({note})"
        elif message_id in moved:
            assert now_folder != folder, f"{message_id} recorded as moved but still in the inbox ({note})"
        else:
            assert (now_folder, now_read) == (folder, True), f"{message_id} imported but not read in place ({note})"


def _assert_written_under_the_lease(dsn, note):
    import psycopg

    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT mailbox, immutable_id, state, writer, lease_holder, lease_valid FROM write_audit"
        ).fetchall()
        writers = connection.execute(
            "SELECT immutable_id, array_agg(DISTINCT writer) FROM write_audit WHERE state = 'stored' "
            "GROUP BY immutable_id"
        ).fetchall()
    assert rows, note
    # A lease that ran out while its worker was busy (and nobody took it) still excludes everyone else; what must
    # never happen is a write by a worker while another worker holds the mailbox.
    wrong = [row for row in rows if row[3] != row[4]]
    assert wrong == [], f"state rows written by a worker that did not hold the mailbox's lease ({note})"
    shared = [(immutable_id, names) for immutable_id, names in writers if len(names) > 1]
    assert shared == [], f"messages imported by two workers ({note})"


def test_store__server_cuts_the_connection_between_calls__reconnects_and_the_next_call_works(database):
    import psycopg

    from mailplane.importing.store_postgres import PostgresImportStore

    async def scenario():
        async with PostgresImportStore(psycopg.conninfo.make_conninfo(database, application_name="cut-me")) as store:
            await store.set_delta_link(SUPPORT, "inbox", "link-1")
            with psycopg.connect(database, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cut-me'"
                )
            link = await store.get_delta_link(SUPPORT, "inbox")
            await store.set_delta_link(SUPPORT, "inbox", "link-2")
            return link, await store.get_delta_link(SUPPORT, "inbox"), store.reconnects

    assert asyncio.run(scenario()) == ("link-1", "link-2", 1)


def test_store__server_unreachable__store_error_names_the_server_not_the_password():
    from mailplane.exceptions import StoreError
    from mailplane.importing.store_postgres import PostgresImportStore

    store = PostgresImportStore(
        "postgresql://mailplane:hunter2@127.0.0.1:9/nowhere", reconnect_attempts=1, connect_timeout=2
    )
    with pytest.raises(StoreError) as caught:
        asyncio.run(store.open())
    message = str(caught.value)
    assert "hunter2" not in message
    assert "127.0.0.1:9/nowhere" in message
    assert message.startswith("connecting to the PostgreSQL import store")
