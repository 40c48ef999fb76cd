"""Two-slot client secret rotation, simulated day by day over three years with frozen dates."""

from __future__ import annotations

import datetime as dt

import pytest

from mailplane.rotation import add_months, period_index, secret_generations


def days(start: dt.date, count: int):
    return (start + dt.timedelta(days=n) for n in range(count))


@pytest.mark.parametrize(
    ("anchor", "period"),
    [(dt.date(2026, 1, 1), 6), (dt.date(2025, 1, 31), 1), (dt.date(2024, 2, 29), 3), (dt.date(2025, 8, 31), 24)],
)
def test_three_years_daily__any_day__valid_secret_with_a_period_left_and_one_new_secret_per_period(anchor, period):
    seen_generations: set[int] = set()
    previous: dict[str, tuple] = {}
    births_per_period: dict[int, int] = {}
    for today in days(anchor, 3 * 366):
        slots = secret_generations(anchor, period, today)
        active = slots[0]
        assert active.active
        assert active.starts <= today < active.expires, today
        # At least one whole period of life left on the active secret.
        assert add_months(today, period) <= active.expires, today
        # Every secret that exists is still valid.
        assert all(s.starts <= today < s.expires for s in slots), today
        assert {s.slot for s in slots} == ({"a"} if len(slots) == 1 else {"a", "b"})
        current = {s.slot: (s.generation, s.display_name, s.end_date_rfc3339) for s in slots}
        for slot, state in current.items():
            if slot in previous and previous[slot] != state:
                # A slot only changes at a period boundary, to the new generation.
                assert period_index(anchor, period, today) != period_index(anchor, period, today - dt.timedelta(1))
                assert state[0] == period_index(anchor, period, today)
        for generation, *_ in current.values():
            if generation not in seen_generations:
                seen_generations.add(generation)
                births_per_period[period_index(anchor, period, today)] = (
                    births_per_period.get(period_index(anchor, period, today), 0) + 1
                )
        previous = current
    assert set(births_per_period.values()) == {1}, births_per_period
    assert sorted(seen_generations) == list(range(len(seen_generations)))


def test_between_boundaries__any_day__inputs_identical():
    anchor = dt.date(2026, 1, 1)
    first = secret_generations(anchor, 6, dt.date(2026, 7, 1))
    for today in days(dt.date(2026, 7, 1), 184):
        assert secret_generations(anchor, 6, today) == first
    assert secret_generations(anchor, 6, dt.date(2027, 1, 1)) != first


def test_each_secret__lifetime__exactly_two_periods_counted_from_the_anchor():
    anchor = dt.date(2026, 1, 31)
    for today in days(anchor, 800):
        for secret in secret_generations(anchor, 1, today):
            assert secret.starts == add_months(anchor, secret.generation)
            assert secret.expires == add_months(anchor, secret.generation + 2)


def test_month_end_anchor__months_added__clamped_from_anchor_without_drift():
    anchor = dt.date(2025, 1, 31)
    assert [add_months(anchor, n) for n in (1, 2, 13)] == [
        dt.date(2025, 2, 28),
        dt.date(2025, 3, 31),
        dt.date(2026, 2, 28),
    ]


def test_year_rollover__period_index__counts_calendar_months():
    assert period_index(dt.date(2025, 11, 15), 1, dt.date(2026, 1, 14)) == 1
    assert period_index(dt.date(2025, 11, 15), 1, dt.date(2026, 1, 15)) == 2


def test_today_before_anchor__period_index__refuses():
    with pytest.raises(ValueError, match="before the rotation anchor"):
        period_index(dt.date(2026, 1, 1), 6, dt.date(2025, 12, 31))
