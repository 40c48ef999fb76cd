"""Import stores stamp their schema version and refuse a database written by a newer mailplane."""

from __future__ import annotations

import asyncio
import sqlite3

import psycopg
import pytest
from postgres_harness import drop_schema, fresh_schema, postgres_dsn
from psycopg import sql

from mailplane.exceptions import StoreError
from mailplane.importing.store_postgres import PostgresImportStore
from mailplane.importing.store_sqlite import SqliteImportStore
from mailplane.store_schema import IMPORT_SCHEMA_VERSION


async def _open_and_close(store) -> None:
    async with store:
        pass


def test_new_sqlite_import_store__opened__stamped_with_the_current_version_once(tmp_path):
    path = tmp_path / "import.sqlite3"
    asyncio.run(_open_and_close(SqliteImportStore(path)))
    asyncio.run(_open_and_close(SqliteImportStore(path)))

    rows = sqlite3.connect(path).execute("SELECT version FROM import_schema").fetchall()
    assert rows == [(IMPORT_SCHEMA_VERSION,)]


def test_sqlite_import_store_written_by_a_newer_mailplane__open__refused_and_nothing_changed(tmp_path):
    path = tmp_path / "import.sqlite3"
    asyncio.run(_open_and_close(SqliteImportStore(path)))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE import_schema SET version = ?", (IMPORT_SCHEMA_VERSION + 1,))

    with pytest.raises(StoreError, match=r"written by a newer mailplane \(schema version 2; this one knows up to 1\)"):
        asyncio.run(_open_and_close(SqliteImportStore(path)))

    rows = sqlite3.connect(path).execute("SELECT version FROM import_schema").fetchall()
    assert rows == [(IMPORT_SCHEMA_VERSION + 1,)]


def test_sqlite_import_store_from_before_versions__open__stamped_and_its_rows_kept(tmp_path):
    path = tmp_path / "import.sqlite3"
    asyncio.run(_open_and_close(SqliteImportStore(path)))
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE import_schema")
        db.execute("INSERT INTO delta_links (mailbox, folder, link, updated_at) VALUES ('a@x', 'inbox', 'L', 0)")

    asyncio.run(_open_and_close(SqliteImportStore(path)))

    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM import_schema").fetchall() == [(IMPORT_SCHEMA_VERSION,)]
    assert db.execute("SELECT link FROM delta_links").fetchall() == [("L",)]


def test_postgres_import_store_written_by_a_newer_mailplane__open__refused_without_the_password():
    dsn = postgres_dsn()
    schema = fresh_schema()
    try:
        asyncio.run(_open_and_close(PostgresImportStore(dsn, schema=schema)))
        with psycopg.connect(dsn, autocommit=True) as db:
            table = sql.Identifier(schema, "import_schema")
            assert db.execute(sql.SQL("SELECT version FROM {}").format(table)).fetchall() == [(IMPORT_SCHEMA_VERSION,)]
            db.execute(sql.SQL("UPDATE {} SET version = version + 1").format(table))

        with pytest.raises(StoreError, match="written by a newer mailplane") as raised:
            asyncio.run(_open_and_close(PostgresImportStore(dsn, schema=schema)))
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
        assert not password or password not in str(raised.value)
    finally:
        drop_schema(dsn, schema)
