"""Importing shared mailboxes into conversations, exactly once.

* :mod:`mailplane.importing.store` defines :class:`~mailplane.importing.store.ImportStore`, the interface every store
  backend implements (SQLite in :mod:`mailplane.importing.store_sqlite`; PostgreSQL for many workers), and the record
  types it reads and writes.
* :func:`open_import_store` opens the backend a config's ``store`` section names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mailplane.exceptions import StoreError

if TYPE_CHECKING:
    import datetime as dt

    from mailplane.importing.store import ImportStore
    from mailplane.integration import StoreSettings

__all__ = ["open_import_store"]

# backend -> "module:class"; a backend's module is imported only when a config names it.
_BACKENDS = {
    "sqlite": "mailplane.importing.store_sqlite:SqliteImportStore",
    "postgres": "mailplane.importing.store_postgres:PostgresImportStore",
}


def open_import_store(
    settings: StoreSettings,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> ImportStore:
    """An unopened store for ``settings`` (call ``await store.open()``). ``environ`` holds the PostgreSQL DSN variable.

    Raises :class:`~mailplane.exceptions.StoreError` when the backend is unavailable or misconfigured.
    """
    import os  # noqa: PLC0415 - only the postgres backend reads the environment

    target = _BACKENDS.get(settings.backend)
    if target is None:
        raise StoreError(f"opening the import store: unknown backend {settings.backend!r}. Use 'sqlite' or 'postgres'.")
    if settings.backend == "sqlite":
        if settings.sqlite_path is None:
            raise StoreError("opening the SQLite import store: no path configured. Set store.path in the config.")
        location: object = settings.sqlite_path
    else:
        env = os.environ if environ is None else environ
        try:
            location = settings.postgres_dsn(env)
        except KeyError:
            raise StoreError(
                f"opening the PostgreSQL import store: the variable {settings.dsn_env} is not set. "
                "Export the connection string in it."
            ) from None
    module_name, _, class_name = target.partition(":")
    try:
        backend = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise StoreError(
            f"opening the {settings.backend} import store: {exc}. "
            f"Install mailplane with the '{settings.backend}' extra."
        ) from exc
    return backend(location, clock=clock)
