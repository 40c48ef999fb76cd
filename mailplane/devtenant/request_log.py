"""A log of the requests the dev tenant served, with counters for tests and benchmarks.

Each ``$batch`` item is recorded individually (``in_batch=True``) as well as the batch request itself
(kind ``"batch"``). Nothing secret is recorded: no headers, no bodies.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["RequestLog", "RequestRecord"]


@dataclass(frozen=True)
class RequestRecord:
    """One served request (or ``$batch`` item)."""

    at: float
    method: str
    path: str
    kind: str
    mailbox: str | None
    status: int
    in_batch: bool = False
    fault: str | None = None


class RequestLog:
    """Append-only, thread-safe."""

    def __init__(self) -> None:
        """Empty."""
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        """Record one request."""
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        """A copy of all records, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._records.clear()

    def count(
        self,
        *,
        method: str | None = None,
        kind: str | None = None,
        mailbox: str | None = None,
        status: int | None = None,
        in_batch: bool | None = None,
        include_batch_envelopes: bool = False,
    ) -> int:
        """How many requests match (``$batch`` envelopes are left out unless asked for, items are counted)."""
        with self._lock:
            return sum(
                1
                for r in self._records
                if (include_batch_envelopes or r.kind != "batch" or kind == "batch")
                and (method is None or r.method == method.upper())
                and (kind is None or r.kind == kind)
                and (mailbox is None or (r.mailbox or "").lower() == mailbox.lower())
                and (status is None or r.status == status)
                and (in_batch is None or r.in_batch == in_batch)
            )

    @property
    def throttled(self) -> int:
        """How many requests (or batch items) were answered 429."""
        return self.count(status=429)

    def counters(self) -> dict[str, int]:
        """Count ``{"<METHOD> <kind> <status>": n}`` over all records (batch items included)."""
        out: dict[str, int] = {}
        with self._lock:
            for r in self._records:
                key = f"{r.method} {r.kind} {r.status}"
                out[key] = out.get(key, 0) + 1
        return out

    @staticmethod
    def now() -> float:
        """Return the timestamp records carry (wall clock seconds)."""
        return time.time()
