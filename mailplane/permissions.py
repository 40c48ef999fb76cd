"""The permission catalog: facts about Microsoft Graph permissions, by name.

Built from Microsoft's published permission data by ``scripts/build_catalog.py`` and shipped with the package, so
validation, grants, the audit and the offline plan work without network access. Ids in the catalog are used only to
render offline plans and test fixtures; deployments resolve ids from the tenant's Microsoft Graph service principal.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

PermissionType = Literal["application", "delegated"]
PERMISSION_TYPES: tuple[PermissionType, ...] = ("application", "delegated")

MICROSOFT_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_ONLINE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"

PRIVILEGE_LABELS = {1: "low", 2: "medium", 3: "high", 4: "highest"}

__all__ = [
    "EXCHANGE_ONLINE_APP_ID",
    "MICROSOFT_GRAPH_APP_ID",
    "PERMISSION_TYPES",
    "PRIVILEGE_LABELS",
    "Permission",
    "PermissionCatalog",
    "PermissionType",
    "catalog",
]


@dataclass(frozen=True, order=True)
class Permission:
    """One grantable permission of one resource app: a Graph application role or delegated scope."""

    name: str
    type: PermissionType
    id: str
    privilege_level: int
    admin_consent: bool
    resource: str = "microsoftGraph"

    @property
    def privilege_label(self) -> str:
        """Microsoft's privilege level as a word: low, medium, high, highest."""
        return PRIVILEGE_LABELS.get(self.privilege_level, "unknown")


class PermissionCatalog:
    """Look-ups over the shipped catalog. Immutable; get the shared instance with :func:`catalog`."""

    def __init__(self, document: dict) -> None:
        """Index ``document`` (the JSON written by ``scripts/build_catalog.py``)."""
        self._by_key: dict[tuple[str, str, PermissionType], Permission] = {}
        self._app_ids: dict[str, str] = {}
        for resource, body in document["resources"].items():
            self._app_ids[resource] = body["appId"]
            for name, kinds in body["permissions"].items():
                for kind, facts in kinds.items():
                    self._by_key[(resource, name, kind)] = Permission(
                        name=name,
                        type=kind,
                        id=facts["id"],
                        privilege_level=facts["privilegeLevel"],
                        admin_consent=facts["adminConsent"],
                        resource=resource,
                    )

    def app_id(self, resource: str = "microsoftGraph") -> str:
        """The application (client) id of a resource app, e.g. Microsoft Graph."""
        return self._app_ids[resource]

    def get(self, name: str, type_: PermissionType, resource: str = "microsoftGraph") -> Permission | None:
        """The permission ``name`` of ``type_``, or None when the resource has no such permission."""
        return self._by_key.get((resource, name, type_))

    def require(self, name: str, type_: PermissionType, resource: str = "microsoftGraph") -> Permission:
        """Like :meth:`get`, but raise ``KeyError`` with a did-you-mean when it does not exist."""
        found = self.get(name, type_, resource)
        if found is None:
            raise KeyError(self.explain_unknown(name, type_, resource))
        return found

    def types_of(self, name: str, resource: str = "microsoftGraph") -> tuple[PermissionType, ...]:
        """Which permission types exist for ``name`` (empty when the name is unknown)."""
        return tuple(t for t in PERMISSION_TYPES if (resource, name, t) in self._by_key)

    def names(self, type_: PermissionType | None = None, resource: str = "microsoftGraph") -> list[str]:
        """All permission names of a resource, optionally of one type, sorted."""
        return sorted({n for (r, n, t) in self._by_key if r == resource and (type_ is None or t == type_)})

    def suggest(self, name: str, type_: PermissionType | None = None, resource: str = "microsoftGraph") -> list[str]:
        """Close matches for a misspelt permission name (case-insensitive first, then by similarity)."""
        candidates = self.names(type_, resource)
        exact_case = [c for c in candidates if c.lower() == name.lower()]
        if exact_case:
            return exact_case
        lowered = {c.lower(): c for c in candidates}
        return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.75)]

    def explain_unknown(self, name: str, type_: PermissionType, resource: str = "microsoftGraph") -> str:
        """A one-sentence reason why (name, type) is not grantable, with what to do instead."""
        other_types = self.types_of(name, resource)
        if other_types:
            return (
                f"{name!r} exists only as a {' and '.join(other_types)} permission, not {type_}. "
                f"Set type to {other_types[0]!r} or pick another permission."
            )
        suggestions = self.suggest(name, type_, resource)
        hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        return f"{name!r} is not a known {type_} permission of Microsoft Graph.{hint}"


@cache
def catalog() -> PermissionCatalog:
    """The catalog shipped with this package (loaded once)."""
    text = resources.files("mailplane.catalog").joinpath("graph_permissions.json").read_text(encoding="utf-8")
    return PermissionCatalog(json.loads(text))
