"""Decisions the Exchange providers make, as plain functions. Pure: no Pulumi, no I/O.

What changed, what forces a replacement, whether an existing object can be adopted, how a member list must change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "DiffDecision",
    "MemberChanges",
    "decide_diff",
    "member_changes",
    "mismatches",
    "normalise",
]


def normalise(value: Any) -> Any:
    """Compare values the way Exchange does: case-insensitive strings, order-insensitive lists."""
    if isinstance(value, str):
        return value.strip().lower()
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(sorted(normalise(v) for v in value))
    return value


@dataclass(frozen=True)
class DiffDecision:
    """The outcome of comparing recorded state with the desired inputs."""

    changed: tuple[str, ...]
    replaces: tuple[str, ...]

    @property
    def has_changes(self) -> bool:
        """True when anything differs."""
        return bool(self.changed)


def decide_diff(
    olds: Mapping[str, Any],
    news: Mapping[str, Any],
    *,
    update_in_place: Iterable[str],
    replace: Iterable[str],
) -> DiffDecision:
    """Which of ``update_in_place`` and ``replace`` keys differ between ``olds`` and ``news``.

    A key missing from ``olds`` (state written by an older version) counts as changed. An unknown value in
    ``news`` (a preview) differs from any recorded value, so it shows as a change, as Pulumi expects.
    """
    update_keys, replace_keys = list(update_in_place), list(replace)
    changed = [k for k in [*replace_keys, *update_keys] if normalise(olds.get(k)) != normalise(news.get(k))]
    return DiffDecision(changed=tuple(changed), replaces=tuple(k for k in changed if k in replace_keys))


def mismatches(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Readable differences between what is declared and what exists, one ``key: want X, found Y`` per key."""
    return [
        f"{key}: want {desired[key]!r}, found {actual.get(key)!r}"
        for key in desired
        if normalise(desired[key]) != normalise(actual.get(key))
    ]


@dataclass(frozen=True)
class MemberChanges:
    """How to turn the current member list into the desired one."""

    add: tuple[str, ...]
    remove: tuple[str, ...]


def member_changes(desired: Iterable[str], current: Iterable[str]) -> MemberChanges:
    """Members to add and to remove (case-insensitive addresses), each sorted."""
    want = {m.strip().lower() for m in desired}
    have = {m.strip().lower() for m in current}
    return MemberChanges(add=tuple(sorted(want - have)), remove=tuple(sorted(have - want)))
