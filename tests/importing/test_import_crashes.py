"""Exactly once under faults and crashes: nothing lost, nothing duplicated, nothing else touched.

The dev tenant injects 429s, 5xx answers, dropped connections and answers cut after the change was applied; worker
processes (``mailplane import --once``) are killed with SIGKILL at random points, many times. Afterwards every seeded
message is in the store exactly once, every one is read or in the failure folder, and no other message or folder
changed.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from importing_harness import BILLING, SUPPORT, eml, integration_config, read_store, received, run_importer

from mailplane.integration import load_integration_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _seed(tenant, count: int, *, with_attachment_every: int = 5) -> dict[str, str]:
    """Seed ``count`` messages over both mailboxes; return internet message id -> mailbox."""
    seeded = {}
    for n in range(count):
        mailbox = SUPPORT if n % 2 == 0 else BILLING
        message_id = f"<crash-{n}@example.org>"
        attachments = [("note.txt", "text/plain", f"attachment {n}".encode())] if n % with_attachment_every == 0 else ()
        tenant.state.seed_eml(
            mailbox,
            eml(f"Crash test {n}", to=mailbox, message_id=message_id, attachments=attachments),
            received=received(n * 0.5),
        )
        seeded[message_id] = mailbox
    return seeded


def _folder(tenant, mailbox: str, folder: str) -> list:
    try:
        return tenant.state.messages(mailbox, folder)
    except KeyError:
        return []  # never created: nothing failed there


def _untouched_messages(tenant) -> dict[str, tuple[str, bool]]:
    """Messages that must never change: already read in the inbox, and in an archive folder."""
    return {
        m.immutable_id: (m.folder_id, m.is_read)
        for box in (SUPPORT, BILLING)
        for folder in ("inbox", "archive")
        for m in tenant.state.messages(box, folder)
        if m.is_read or folder == "archive"
    }


def _seed_bystanders(tenant) -> None:
    tenant.state.seed_eml(SUPPORT, eml("Already read", message_id="<read-before@x>"), is_read=True)
    tenant.state.seed_eml(BILLING, eml("Archived", to=BILLING, message_id="<archived@x>"), folder="archive")


def _assert_exactly_once(tenant, config, seeded: dict[str, str], bystanders: dict[str, tuple[str, bool]], note: str):
    conversations = read_store(config, lambda s: s.list_conversations())
    imported = [m.internet_message_id for c in conversations for m in c.messages]
    states = read_store(config, lambda s: s.list_message_states())
    moved = {s.internet_message_id for s in states if s.state == "moved"}
    assert len(imported) == len(set(imported)), f"duplicates ({note})"
    assert set(imported) | moved == set(seeded), f"lost: {sorted(set(seeded) - set(imported) - moved)} ({note})"
    assert not set(imported) & moved, note
    for mailbox in (SUPPORT, BILLING):
        inbox = {m.internet_message_id: m for m in tenant.state.messages(mailbox, "inbox")}
        failure_folder = "billing-failed" if mailbox == BILLING else "mailplane-failed"
        failed = {m.internet_message_id: m for m in _folder(tenant, mailbox, failure_folder)}
        for message_id, home in seeded.items():
            if home != mailbox:
                continue
            if message_id in moved:
                assert message_id in failed, f"{message_id} not in the failure folder ({note})"
            else:
                assert inbox[message_id].is_read, f"{message_id} imported but unread ({note})"
    after = {
        m.immutable_id: (m.folder_id, m.is_read)
        for box in (SUPPORT, BILLING)
        for folder in ("inbox", "archive")
        for m in tenant.state.messages(box, folder)
        if m.immutable_id in bystanders
    }
    assert after == bystanders, f"a message the importer had no business with changed ({note})"
    total = sum(len(box.messages) for box in tenant.state.mailboxes())
    assert total == len(seeded) + len(bystanders), f"messages appeared or vanished ({note})"


def test_mark_read_fails_after_the_store_write__next_run__marks_read_without_importing_again(tenant, make_config):
    config = make_config()
    seeded = _seed(tenant, 6)
    _seed_bystanders(tenant)
    bystanders = _untouched_messages(tenant)
    # Every mark-read is lost (batches, and the plain PATCH a lane sends while its first batch fills up): as if
    # the worker crashed right after the store write.
    tenant.faults.drop(path=r"^/\$batch$")
    tenant.faults.drop(method="PATCH", path=r"/messages/[^/]+$")

    first = run_importer(tenant, config, lambda importer: importer.import_once())
    assert first.imported == 6
    assert not any(
        m.is_read
        for box in (SUPPORT, BILLING)
        for m in tenant.state.messages(box, "inbox")
        if m.immutable_id not in bystanders
    )
    tenant.faults.clear()
    second = run_importer(tenant, config, lambda importer: importer.import_once())

    assert second.imported == 0
    assert sum(m.marked_read for m in second.mailboxes) == 6
    _assert_exactly_once(tenant, config, seeded, bystanders, "mark-read lost once")


def test_move_applied_but_answer_lost__next_run__in_failure_folder_once_and_recorded_moved(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(
        SUPPORT,
        eml("Doomed", message_id="<doomed@x>", attachments=[("a.txt", "text/plain", b"a")]),
        received=received(1),
    )
    tenant.faults.error(status=500, path=r"/attachments/[^/]+/\$value$", count=4)
    tenant.faults.apply_then_drop(path=r"/move$")  # the move happens, the worker never hears of it

    run_importer(tenant, config, lambda importer: importer.import_once())
    [state] = read_store(config, lambda s: s.list_message_states())
    assert state.state in ("failed", "moved")
    tenant.faults.clear()
    run_importer(tenant, config, lambda importer: importer.import_once())

    [state] = read_store(config, lambda s: s.list_message_states())
    assert (state.state, state.in_failure_folder) == ("moved", True)
    assert [m.internet_message_id for m in tenant.state.messages(SUPPORT, "mailplane-failed")] == ["<doomed@x>"]
    assert tenant.state.messages(SUPPORT, "inbox") == []


def _worker(config_path: Path, graph_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mailplane.cli import main; main()",
            "import",
            "--config",
            str(config_path),
            "--once",
            "--graph-url",
            graph_url,
            "--lease-seconds",
            "1",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


@pytest.mark.slow
def test_workers_killed_at_random_points_under_injected_faults__finally__every_message_exactly_once(tenant, tmp_path):
    seed = int(os.environ.get("MAILPLANE_CRASH_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    note = f"seed {seed}"
    config_data = integration_config(tmp_path)
    config_path = tmp_path / "integration.json"
    config_path.write_text(json.dumps(config_data), encoding="utf-8")
    config = load_integration_config(config_path)
    seeded = _seed(tenant, 40, with_attachment_every=4)
    # Two messages whose attachment can never be downloaded: they must end in the failure folder, moves included.
    doomed = ["<crash-0@example.org>", "<crash-8@example.org>"]
    doomed_ids = [
        m.immutable_id
        for box in (SUPPORT, BILLING)
        for m in tenant.state.messages(box, "inbox")
        if m.internet_message_id in doomed
    ]
    _seed_bystanders(tenant)
    bystanders = _untouched_messages(tenant)

    def doom() -> None:
        for immutable_id in doomed_ids:
            tenant.faults.error(status=500, path=re.escape(immutable_id) + r"/attachments/[^/]+/\$value$")

    doom()
    tenant.graph.latency_ms = 15  # stretch the work so kills land in the middle of it
    tenant.faults.throttle(retry_after=0, probability=0.08, seed=seed)
    tenant.faults.error(status=503, probability=0.05, seed=seed + 1)
    tenant.faults.error(status=500, path=r"/\$value$", probability=0.05, seed=seed + 2)
    tenant.faults.drop(probability=0.04, seed=seed + 3)
    tenant.faults.apply_then_drop(method="POST", probability=0.1, seed=seed + 4)

    kills = 0
    for _ in range(12):
        worker = _worker(config_path, tenant.graph_base_url)
        time.sleep(rng.uniform(0.8, 2.6))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(timeout=30)
        time.sleep(rng.choice([0.0, 1.1]))  # sometimes the dead worker's lease has expired, sometimes not

    tenant.faults.clear()
    doom()
    time.sleep(1.1)
    for _ in range(2):
        finisher = _worker(config_path, tenant.graph_base_url)
        _, stderr = finisher.communicate(timeout=60)
        assert finisher.returncode in (0, 1), stderr.decode()[-2000:]
    assert kills >= 3, f"the workers finished too fast to be killed mid-run ({note})"
    _assert_exactly_once(tenant, config, seeded, bystanders, note)
    moved = {s.internet_message_id for s in read_store(config, lambda s: s.list_message_states()) if s.state == "moved"}
    assert set(doomed) <= moved, note
