"""Injectable faults for the dev tenant: latency, 5xx, 429, dropped connections, slow bodies, and apply-then-drop.

A fault matches requests by method, a regular expression searched in the path (after ``/v1.0``) and the mailbox,
and fires a number of times (``count``), with a probability (``probability`` with a ``seed`` for repeatable runs),
or on every match. ``after`` lets the first N matching requests through untouched. Faults also apply to the items of
a ``$batch`` (status faults make that item fail; drop faults lose the whole batch response).
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULT_KINDS", "Fault", "FaultInjector"]

FAULT_KINDS = ("latency", "error", "throttle", "drop", "slow", "apply_then_drop")


@dataclass
class Fault:
    """One injected fault; ``fired`` counts how often it took effect."""

    kind: str
    method: str | None = None
    path: str | None = None
    mailbox: str | None = None
    count: int | None = None
    probability: float | None = None
    seed: int | None = None
    after: int = 0
    status: int = 503
    code: str | None = None
    message: str | None = None
    retry_after: int | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fired: int = 0
    seen: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        """Validate and compile."""
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"adding a dev tenant fault: kind {self.kind!r} is not one of {', '.join(FAULT_KINDS)}")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"adding a dev tenant fault: probability {self.probability} is not within 0..1")
        self._pattern = re.compile(self.path, re.IGNORECASE) if self.path else None
        self._random = random.Random(self.seed)  # noqa: S311 - fault injection, not cryptography

    def delay_seconds(self) -> float:
        """Return the latency (with jitter) this firing adds, in seconds."""
        jitter = self._random.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.latency_ms + jitter) / 1000.0

    def _matches(self, method: str, path: str, mailbox: str | None) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self._pattern and not self._pattern.search(path):
            return False
        return not (self.mailbox and (mailbox or "").lower() != self.mailbox.lower())

    def _fires(self) -> bool:
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.count is not None and self.fired >= self.count:
            return False
        if self.probability is not None and self._random.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def describe(self) -> dict[str, Any]:
        """Describe the fault as JSON (the control endpoint returns it)."""
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "mailbox": self.mailbox,
            "count": self.count,
            "probability": self.probability,
            "after": self.after,
            "status": self.status,
            "fired": self.fired,
            "seen": self.seen,
        }


class FaultInjector:
    """The set of active faults (thread-safe)."""

    def __init__(self) -> None:
        """No faults."""
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: str, **options: Any) -> Fault:
        """Add a fault of ``kind`` (see :data:`FAULT_KINDS`) with :class:`Fault` options; return it."""
        fault = Fault(kind=kind, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def latency(self, ms: float, *, jitter_ms: float = 0.0, **match: Any) -> Fault:
        """Delay matching requests by ``ms`` (± ``jitter_ms``) before they are handled (they count as in flight)."""
        return self.add("latency", latency_ms=ms, jitter_ms=jitter_ms, **match)

    def error(
        self, status: int = 503, *, code: str | None = None, retry_after: int | None = None, **match: Any
    ) -> Fault:
        """Answer matching requests with a Graph error of ``status`` (not applied)."""
        return self.add("error", status=status, code=code, retry_after=retry_after, **match)

    def throttle(self, *, retry_after: int = 1, **match: Any) -> Fault:
        """Answer matching requests with 429 ApplicationThrottled and ``Retry-After`` (not applied)."""
        return self.add("throttle", status=429, retry_after=retry_after, **match)

    def drop(self, **match: Any) -> Fault:
        """Close the connection without a response; the request is NOT applied."""
        return self.add("drop", **match)

    def apply_then_drop(self, **match: Any) -> Fault:
        """Apply the request, then close the connection before the response is complete (the reply is lost)."""
        return self.add("apply_then_drop", **match)

    def slow(self, ms: float, *, jitter_ms: float = 0.0, **match: Any) -> Fault:
        """Send the status line and headers at once, then the body only after ``ms`` (tests read timeouts)."""
        return self.add("slow", latency_ms=ms, jitter_ms=jitter_ms, **match)

    def remove(self, fault: Fault) -> None:
        """Deactivate one fault."""
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        """Deactivate all faults."""
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        """The active faults."""
        with self._lock:
            return list(self._faults)

    def firing(self, method: str, path: str, mailbox: str | None) -> list[Fault]:
        """Return the faults that fire for this request (each one's counters advance)."""
        with self._lock:
            return [f for f in self._faults if f._matches(method, path, mailbox) and f._fires()]  # noqa: SLF001
