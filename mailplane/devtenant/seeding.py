"""Seed a dev tenant from a directory of .eml files.

Layout: ``DIR/<mailbox address>/*.eml`` goes to that mailbox's Inbox; ``DIR/<mailbox address>/<folder>/*.eml`` goes
to the folder named by a well-known name (``archive``, ``sentitems``...) or a display name (created when missing).
Files are seeded in name order, so numbering them fixes the order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailplane.devtenant.state import DevTenantState, GraphError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["seed_directory"]


def seed_directory(state: DevTenantState, directory: Path) -> dict[str, int]:
    """Seed every mailbox directory under ``directory``; return messages seeded per mailbox."""
    counts: dict[str, int] = {}
    for mailbox_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        address = mailbox_dir.name
        if "@" not in address:
            raise ValueError(
                f"seeding the dev tenant from {mailbox_dir}: the directory name is not a mailbox address. "
                "Name it after the mailbox, e.g. shared@contoso.com."
            )
        box = state.find_mailbox(address) or state.add_mailbox(address)
        counts[address] = 0
        for path in sorted(mailbox_dir.glob("*.eml")):
            state.seed_eml(address, path)
            counts[address] += 1
        for folder_dir in sorted(p for p in mailbox_dir.iterdir() if p.is_dir()):
            try:
                folder_id = state.folder_id(address, folder_dir.name)
            except (KeyError, GraphError):
                folder_id = state.create_folder(box, folder_dir.name).id
            for path in sorted(folder_dir.glob("*.eml")):
                state.seed_eml(address, path, folder_id)
                counts[address] += 1
    return counts
