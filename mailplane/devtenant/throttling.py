"""Outlook's per-mailbox throttling: concurrent requests and requests per rolling window.

Defaults are the service's documented limits (4 concurrent requests and 10,000 requests per 10 minutes, per app and
mailbox). Requests over either limit get 429 ApplicationThrottled with ``Retry-After`` in seconds; rejected requests
do not count towards the window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from mailplane.devtenant.state import GraphError

__all__ = ["MailboxThrottle"]


@dataclass
class _MailboxUsage:
    in_flight: int = 0
    recent: deque[float] = field(default_factory=deque)


class MailboxThrottle:
    """Admission control per mailbox (thread-safe)."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        window_limit: int = 10_000,
        window_seconds: float = 600.0,
        concurrency_retry_after: int = 1,
    ) -> None:
        """Limits; ``concurrency_retry_after`` is the Retry-After sent when the concurrency limit is hit."""
        self.concurrency = concurrency
        self.window_limit = window_limit
        self.window_seconds = window_seconds
        self.concurrency_retry_after = concurrency_retry_after
        self._lock = threading.Lock()
        self._usage: dict[str, _MailboxUsage] = {}

    def acquire(self, mailbox: str) -> None:
        """Admit one request for ``mailbox`` or raise the 429 GraphError; pair with :meth:`release`."""
        key = mailbox.lower()
        now = time.monotonic()
        with self._lock:
            usage = self._usage.setdefault(key, _MailboxUsage())
            while usage.recent and usage.recent[0] <= now - self.window_seconds:
                usage.recent.popleft()
            if usage.in_flight >= self.concurrency:
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": str(self.concurrency_retry_after)},
                )
            if len(usage.recent) >= self.window_limit:
                wait = usage.recent[0] + self.window_seconds - now
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Application is over its MailboxRequests limit.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
            usage.in_flight += 1
            usage.recent.append(now)

    def release(self, mailbox: str) -> None:
        """One admitted request finished."""
        with self._lock:
            usage = self._usage.get(mailbox.lower())
            if usage is not None and usage.in_flight > 0:
                usage.in_flight -= 1

    def in_flight(self, mailbox: str) -> int:
        """Count the requests currently being served for a mailbox."""
        with self._lock:
            usage = self._usage.get(mailbox.lower())
            return usage.in_flight if usage else 0

    def reset(self) -> None:
        """Forget all usage (between test phases)."""
        with self._lock:
            self._usage.clear()
