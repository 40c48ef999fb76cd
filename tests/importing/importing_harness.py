"""Helpers for the importer tests: a controllable clock, running a scenario against a store."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mailplane.importing.store import ImportStore

T = TypeVar("T")
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves forward by hand (``clock.advance(minutes=5)``)."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def with_store(store: ImportStore, scenario: Callable[[ImportStore], Awaitable[T]]) -> T:
    """Open ``store``, run ``scenario(store)`` on a fresh event loop, close the store."""

    async def run() -> Any:
        async with store:
            return await scenario(store)

    return asyncio.run(run())
