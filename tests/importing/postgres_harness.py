"""The loopback PostgreSQL for tests: the DSN from scripts/postgres, and one throwaway schema per test."""

from __future__ import annotations

import os
import uuid

import pytest

DSN_VARIABLE = "MAILPLANE_TEST_POSTGRES_DSN"
SKIP_REASON = (
    f"{DSN_VARIABLE} is unset: run ./scripts/test (it starts a loopback PostgreSQL with scripts/postgres), "
    f"or run 'eval \"$(scripts/postgres env)\"' first"
)


def postgres_dsn() -> str:
    """The test server's DSN, or skip the test with the reason."""
    dsn = os.environ.get(DSN_VARIABLE)
    if not dsn:
        pytest.skip(SKIP_REASON)
    return dsn


def fresh_schema() -> str:
    """A schema name no other test uses."""
    return f"test_{uuid.uuid4().hex[:16]}"


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a test's schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
