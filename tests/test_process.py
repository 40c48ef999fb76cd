"""settle_heap: what exists at set-up leaves the collector's view, what comes later is still collected."""

from __future__ import annotations

import gc
import weakref

from mailplane.process import settle_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_settle_heap__objects_alive_before_are_frozen_and_later_cycles_still_collected():
    kept = [_Node() for _ in range(1000)]
    try:
        settle_heap()
        assert gc.get_freeze_count() >= len(kept)
        scanned = {id(o) for o in gc.get_objects()}  # what the next collections will look at
        assert not any(id(node) in scanned for node in kept)

        later = _cycle()
        gc.collect()
        assert later() is None  # a cycle made after set-up is collected as usual
    finally:
        gc.unfreeze()
