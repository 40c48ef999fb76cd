"""Names and recipient filters of the Exchange objects mailplane declares. Pure: no Pulumi, no I/O.

Exchange objects are found again by name (role assignments, scopes) or alias (groups), so names must be
deterministic, derived from the stack's component name, and within Exchange's limits (64 characters for a role
assignment name; aliases of letters, digits, ``.``, ``_`` and ``-``).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "MAX_NAME_LENGTH",
    "access_policy_group_alias",
    "bounded_name",
    "mailbox_alias",
    "recipient_filter",
    "role_assignment_name",
    "scope_name",
]

MAX_NAME_LENGTH = 64
_ALIAS_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def bounded_name(name: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """``name`` if it fits, else a prefix plus an 8-character hash of the whole name (still unique, still stable)."""
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: max_length - 9].rstrip('-.')}-{digest}"


def _slug(text: str) -> str:
    return _ALIAS_UNSAFE.sub("-", text).strip("-.").lower() or "mailplane"


def scope_name(component_name: str, permissions: Iterable[str] = ()) -> str:
    """The management scope's name: ``mailplane-<component>`` (plus the permissions it serves when several exist)."""
    suffix = "-".join(p.lower() for p in sorted(permissions))
    return bounded_name(f"mailplane-{component_name}" + (f"-{suffix}" if suffix else ""))


def role_assignment_name(component_name: str, role: str) -> str:
    """``mailplane-<component>-<permission>``, e.g. ``mailplane-contoso-mail.send`` for "Application Mail.Send"."""
    permission = role.removeprefix("Application ").replace(" ", "-").lower()
    return bounded_name(f"mailplane-{component_name}-{permission}")


def access_policy_group_alias(component_name: str, configured: str | None = None) -> str:
    """The access policy group's alias: the configured one, else ``mailplane-<component>-scope``."""
    return configured or bounded_name(f"mailplane-{_slug(component_name)}-scope")


def mailbox_alias(address: str) -> str:
    """A mailbox alias from its address's local part (Exchange's default)."""
    return bounded_name(_slug(address.split("@", 1)[0]))


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def recipient_filter(mailboxes: Iterable[str]) -> str:
    """An OPATH ``RecipientRestrictionFilter`` matching exactly these mailboxes by primary SMTP address.

    Sorted and lower-cased so the same set always gives the same string (no spurious diffs).
    ``ValueError`` when the set is empty: an empty scope would match nothing and hide a config mistake.
    """
    addresses = sorted({m.strip().lower() for m in mailboxes if m and m.strip()})
    if not addresses:
        raise ValueError("a management scope needs at least one mailbox")
    return " -or ".join(f"(PrimarySmtpAddress -eq {_quote(a)})" for a in addresses)
