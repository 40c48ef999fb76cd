"""The rate governor's decisions, without I/O: never over a limit, never later than it has to be."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailplane.integration import SendingLimits
from mailplane.sending.governor import (
    DAY_SECONDS,
    MINUTE_SECONDS,
    LedgerEntry,
    earliest_send_time,
    recipients_per_part,
    usage_at,
)

LIMITS = SendingLimits(recipients_per_day=100, messages_per_minute=3, recipients_per_message=50)


def test_empty_ledger__any_message_within_budget__goes_now():
    assert earliest_send_time([], 10, 1000.0, LIMITS) == 1000.0


def test_minute_full__fourth_message__waits_until_the_oldest_leaves_the_minute():
    entries = [LedgerEntry(100.0, 1), LedgerEntry(110.0, 1), LedgerEntry(120.0, 1)]
    assert earliest_send_time(entries, 1, 130.0, LIMITS) == 160.0


def test_minute_entry_exactly_one_minute_old__no_longer_counts():
    entries = [LedgerEntry(100.0, 1), LedgerEntry(110.0, 1), LedgerEntry(120.0, 1)]
    assert earliest_send_time(entries, 1, 160.0, LIMITS) == 160.0


def test_day_budget_nearly_spent__message_waits_until_enough_recipients_expire():
    entries = [LedgerEntry(0.0, 40), LedgerEntry(10_000.0, 40), LedgerEntry(20_000.0, 15)]
    # 95 used; 10 more need 5 freed: the first entry (40) must leave the day.
    assert earliest_send_time(entries, 10, 30_000.0, LIMITS) == DAY_SECONDS
    # 45 more need 40 freed: still only the first entry.
    assert earliest_send_time(entries, 45, 30_000.0, LIMITS) == DAY_SECONDS
    # 46 more need 41 freed: the second entry too.
    assert earliest_send_time(entries, 46, 30_000.0, LIMITS) == 10_000.0 + DAY_SECONDS


def test_more_recipients_than_a_day_allows__refused_with_advice_to_split():
    with pytest.raises(ValueError, match="split it"):
        earliest_send_time([], 101, 0.0, LIMITS)


def test_part_size__per_message_limit_above_the_daily_budget__capped_by_the_budget():
    assert recipients_per_part(SendingLimits(recipients_per_day=20, recipients_per_message=500)) == 20
    assert recipients_per_part(LIMITS) == 50


def test_usage__counts_only_the_rolling_windows():
    entries = [LedgerEntry(0.0, 5), LedgerEntry(100.0, 7), LedgerEntry(150.0, 2)]
    usage = usage_at(entries, 159.0)
    assert (usage.messages_last_minute, usage.recipients_last_day) == (2, 14)


_limits = st.builds(
    SendingLimits,
    recipients_per_day=st.integers(1, 40),
    messages_per_minute=st.integers(1, 5),
    recipients_per_message=st.integers(1, 40),
)
_requests = st.lists(
    st.tuples(st.floats(0, 3 * DAY_SECONDS / 100, allow_nan=False), st.integers(1, 40)), min_size=1, max_size=60
)


@settings(max_examples=300, deadline=None)
@given(limits=_limits, requests=_requests)
def test_any_schedule_of_requests__sending_at_the_governors_times__never_exceeds_either_limit(limits, requests):
    ledger: list[LedgerEntry] = []
    now = 0.0
    part = recipients_per_part(limits)
    for gap, recipients in requests:
        now += gap
        wanted = min(recipients, part)
        at = earliest_send_time(ledger, wanted, now, limits)
        assert at >= now
        # Tight: a moment earlier than the answer would break a limit (unless the answer is "now").
        if at > now:
            before = at - 1e-6
            usage = usage_at(ledger, before)
            assert (
                usage.messages_last_minute >= limits.messages_per_minute
                or usage.recipients_last_day + wanted > limits.recipients_per_day
            )
        ledger.append(LedgerEntry(at, wanted))
        now = at
    for entry in ledger:
        window_end = entry.at
        in_minute = [e for e in ledger if window_end - MINUTE_SECONDS < e.at <= window_end]
        in_day = [e for e in ledger if window_end - DAY_SECONDS < e.at <= window_end]
        assert len(in_minute) <= limits.messages_per_minute
        assert sum(e.recipients for e in in_day) <= limits.recipients_per_day
