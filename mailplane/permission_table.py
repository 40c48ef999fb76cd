"""Markdown tables generated from the catalog and the presets (README; kept in sync by a test)."""

from __future__ import annotations

from mailplane.grants import EXCHANGE_APPLICATION_ROLES
from mailplane.permissions import catalog
from mailplane.tenant import PRESET_MAILBOXES, PRESETS

__all__ = ["preset_table_markdown"]


def preset_table_markdown() -> str:
    """One row per (preset, permission): type, Microsoft's privilege level and admin-consent flag, where it lands."""
    rows = [
        "| preset | permission | type | privilege (1-4) | admin consent | granted as (rbac scoping) |",
        "|---|---|---|---|---|---|",
    ]
    for preset, permissions in PRESETS.items():
        for name, type_ in permissions:
            facts = catalog().require(name, type_)
            if type_ == "application" and name in EXCHANGE_APPLICATION_ROLES:
                mailboxes = PRESET_MAILBOXES.get(preset, "declared")
                landing = f"Exchange role `{EXCHANGE_APPLICATION_ROLES[name]}` on the {mailboxes} mailbox(es)"
            else:
                landing = "Entra admin consent (all users)" if type_ == "delegated" else "Entra app-role assignment"
            rows.append(
                f"| `{preset}` | `{name}` | {type_} | {facts.privilege_level} ({facts.privilege_label}) | "
                f"{'yes' if facts.admin_consent else 'no'} | {landing} |"
            )
    return "\n".join(rows)
