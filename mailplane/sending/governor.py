"""The rate governor's decisions: when may a mailbox send a message with N recipients? Pure functions, no I/O.

Exchange Online limits each mailbox to a number of messages per minute and a number of recipients per rolling
24 hours (``IntegrationConfig.sending_limits``). The sender keeps a ledger of what each mailbox sent (one entry per
message: when, how many recipients); :func:`earliest_send_time` reads it and says when the next message may go.
Both windows are rolling: an entry counts while ``now - window < entry.at``. The store calls these functions inside
a write transaction and records the new entry in the same transaction, so two workers can never both take the last
slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mailplane.integration import SendingLimits

__all__ = [
    "DAY_SECONDS",
    "MINUTE_SECONDS",
    "LedgerEntry",
    "Usage",
    "earliest_send_time",
    "recipients_per_part",
    "usage_at",
]

MINUTE_SECONDS = 60.0
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class LedgerEntry:
    """One message a mailbox sent (or is sending): when (seconds since the epoch) and to how many recipients."""

    at: float
    recipients: int


@dataclass(frozen=True)
class Usage:
    """What a mailbox has used of its limits at one moment."""

    messages_last_minute: int
    recipients_last_day: int


def usage_at(entries: Iterable[LedgerEntry], now: float) -> Usage:
    """Messages in the rolling minute and recipients in the rolling 24 hours that end at ``now``."""
    listed = list(entries)
    return Usage(
        messages_last_minute=sum(1 for e in listed if now - MINUTE_SECONDS < e.at),
        recipients_last_day=sum(e.recipients for e in listed if now - DAY_SECONDS < e.at),
    )


def recipients_per_part(limits: SendingLimits) -> int:
    """The most recipients one message may have: the per-message limit, and never more than a whole day's budget."""
    return min(limits.recipients_per_message, limits.recipients_per_day)


def _leaves_window(at: float, window: float) -> float:
    """The first moment at which an entry made at ``at`` no longer counts in a window of ``window`` seconds."""
    moment = at + window
    while moment - window < at:  # floating point: at + window - window can come out below at
        moment = math.nextafter(moment, math.inf)
    return moment


def earliest_send_time(entries: Iterable[LedgerEntry], recipients: int, now: float, limits: SendingLimits) -> float:
    """The earliest moment at or after ``now`` when a message to ``recipients`` recipients stays within ``limits``.

    Returns ``now`` when it may go at once. Assumes nothing else is sent in between (the caller asks again then).
    Raises ``ValueError`` when no moment would do (more recipients than a day allows: split the message first).
    """
    if recipients < 1:
        raise ValueError("a message has at least one recipient")
    if recipients > limits.recipients_per_day:
        raise ValueError(
            f"a message to {recipients} recipients can never fit a budget of {limits.recipients_per_day} recipients "
            "per 24 hours; split it (recipients_per_part)"
        )
    listed = list(entries)
    in_minute = sorted(e.at for e in listed if now - MINUTE_SECONDS < e.at)
    in_day = sorted((e for e in listed if now - DAY_SECONDS < e.at), key=lambda e: e.at)
    moment = now
    excess_messages = len(in_minute) - limits.messages_per_minute + 1
    if excess_messages > 0:
        # The excess_messages-th oldest entry must leave the window: it does at exactly its time + one minute.
        moment = max(moment, _leaves_window(in_minute[excess_messages - 1], MINUTE_SECONDS))
    used = sum(e.recipients for e in in_day)
    excess_recipients = used + recipients - limits.recipients_per_day
    for entry in in_day:
        if excess_recipients <= 0:
            break
        excess_recipients -= entry.recipients
        moment = max(moment, _leaves_window(entry.at, DAY_SECONDS))
    return moment
