"""The sending steps of ``mailplane demo``: offline, state in a temporary folder, every send delivered once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mailplane.cli.demo import STEPS
from mailplane.cli.demo_sending import send_from_designated_mailbox, validate_example_integration

REPO = Path(__file__).resolve().parents[2]


def test_demo_lists_the_validate_step_then_the_send_step():
    steps = [step for _, step in STEPS]
    assert steps.index(validate_example_integration) + 1 == steps.index(send_from_designated_mailbox)


def test_validate_step__example_config_valid_and_summarized(capsys):
    validate_example_integration(REPO, dt.date(2026, 3, 1))
    out = capsys.readouterr().out
    assert out.startswith("ok: ")
    assert "sends from helpdesk-noreply@fabrikam.com (Fabrikam Helpdesk)" in out


def test_send_step__test_message_and_retries_delivered_once_each_status_shown_nothing_written_to_examples(capsys):
    before = sorted(p.name for p in (REPO / "examples").iterdir())
    send_from_designated_mailbox(REPO, dt.date(2026, 3, 1))
    out = capsys.readouterr().out
    assert "send-test helpdesk-noreply@fabrikam.com -> support@fabrikam.com: sent" in out
    assert "support@fabrikam.com received 3 messages" in out
    assert "3 sent, 0 failed" in out
    assert "API response log (2 requests, secrets redacted)" in out
    assert sorted(p.name for p in (REPO / "examples").iterdir()) == before
