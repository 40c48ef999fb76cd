"""Client-secret rotation in two overlapping slots, as a pure function of (anchor date, period, today).

Generation ``g`` of the secret starts at ``anchor + g * period`` and expires at ``anchor + (g + 2) * period``: a new
secret appears every period and each lives two periods. Generations alternate between slot ``a`` (even) and slot
``b`` (odd), so at any day the two slots hold the newest secret (the *active* one, at least one period of life left)
and the previous one (still valid, so consumers have a whole period to switch). End dates are computed from the
anchor, never from the clock, so nothing is replaced between period boundaries.

Month arithmetic clamps to the end of the month and always counts from the anchor (Jan 31 + 1 month = Feb 28 or 29,
Jan 31 + 2 months = Mar 31): no drift, no year-rollover bug.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Literal

__all__ = ["SecretGeneration", "add_months", "period_index", "secret_generations"]

Slot = Literal["a", "b"]


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, clamped to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def period_index(anchor: dt.date, period_months: int, today: dt.date) -> int:
    """Which rotation period ``today`` falls in (0 for the first period starting at ``anchor``)."""
    if period_months < 1:
        raise ValueError(f"rotation period must be at least 1 month, got {period_months}")
    if today < anchor:
        raise ValueError(f"today ({today}) is before the rotation anchor ({anchor}); no secret exists yet")
    months = (today.year - anchor.year) * 12 + (today.month - anchor.month)
    index = max(months // period_months, 0)
    while add_months(anchor, (index + 1) * period_months) <= today:
        index += 1
    while index > 0 and add_months(anchor, index * period_months) > today:
        index -= 1
    return index


@dataclass(frozen=True)
class SecretGeneration:
    """One client secret: which slot it occupies, its generation number, and its validity window."""

    slot: Slot
    generation: int
    starts: dt.date
    expires: dt.date
    active: bool

    @property
    def end_date_rfc3339(self) -> str:
        """The expiry as the RFC 3339 timestamp Entra's ``endDateTime`` takes (midnight UTC)."""
        return f"{self.expires.isoformat()}T00:00:00Z"

    @property
    def display_name(self) -> str:
        """Deterministic display name shown in the Entra portal: slot and generation."""
        return f"mailplane-{self.slot}-gen{self.generation}"


def secret_generations(anchor: dt.date, period_months: int, today: dt.date) -> list[SecretGeneration]:
    """The secrets that should exist on ``today``: the active one first, then the previous one (if any).

    In the first period only the active secret exists; from the second on, both slots are filled.
    """
    current = period_index(anchor, period_months, today)
    generations = [current] if current == 0 else [current, current - 1]
    return [
        SecretGeneration(
            slot="a" if g % 2 == 0 else "b",
            generation=g,
            starts=add_months(anchor, g * period_months),
            expires=add_months(anchor, (g + 2) * period_months),
            active=g == current,
        )
        for g in generations
    ]
