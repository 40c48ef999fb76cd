"""Schema versions of mailplane's stores.

Each store keeps one row in a ``<kind>_schema`` table (``import_schema``, ``send_schema``) with the version of the
tables it created. A new database is stamped with the current version; a database written by a newer mailplane is
refused before anything is read or written, so an older worker left running during an upgrade stops with a clear
error instead of misreading rows it does not know. There is one version so far: a database from before versions
were stamped has the same tables and is stamped as version 1.
"""

from __future__ import annotations

from mailplane.exceptions import StoreError

__all__ = ["IMPORT_SCHEMA_VERSION", "SEND_SCHEMA_VERSION", "check_schema_version"]

IMPORT_SCHEMA_VERSION = 1
"""Version of the import store's tables (SQLite and PostgreSQL)."""

SEND_SCHEMA_VERSION = 1
"""Version of the send store's tables (SQLite and PostgreSQL)."""


def check_schema_version(found: int | None, *, known: int, store: str) -> bool:
    """Whether the version row must be written (a new database); raise StoreError for one from a newer mailplane.

    ``found`` is the version row's value (``None`` when there is none), ``store`` names the store in the message.
    """
    if found is None:
        return True
    if found > known:
        raise StoreError(
            f"opening {store}: it was written by a newer mailplane (schema version {found}; this one knows up to "
            f"{known}). Upgrade mailplane on every worker that uses this store, or point this one at another store"
        )
    return False
