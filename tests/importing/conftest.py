"""Fixtures for the importer tests: an import store per backend, a controllable clock.

Every backend in ``STORE_BACKENDS`` runs the whole store contract (``test_store_contract.py``). A backend is a
function ``(request, tmp_path, clock) -> unopened store``; add one entry per backend (it may skip when its server
is unavailable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from importing_harness import FakeClock
from sink_harness import Endpoint

from mailplane.devtenant.server import BackgroundServer
from mailplane.importing.store import ImportStore
from mailplane.importing.store_sqlite import SqliteImportStore


def _sqlite_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> ImportStore:
    del request
    return SqliteImportStore(tmp_path / "import.sqlite3", clock=clock)


def _postgres_store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> ImportStore:
    """A store in the test's own schema of the loopback server (skips with the reason when there is none)."""
    del tmp_path
    from postgres_harness import drop_schema, fresh_schema, postgres_dsn

    from mailplane.importing.store_postgres import PostgresImportStore

    dsn = postgres_dsn()
    node = request.node
    schema = getattr(node, "mailplane_postgres_schema", None)
    if schema is None:
        schema = fresh_schema()
        node.mailplane_postgres_schema = schema
        request.addfinalizer(lambda: drop_schema(dsn, schema))
    return PostgresImportStore(dsn, clock=clock, schema=schema)


StoreBackend = Callable[[pytest.FixtureRequest, Path, FakeClock], ImportStore]
STORE_BACKENDS: dict[str, StoreBackend] = {"sqlite": _sqlite_store, "postgres": _postgres_store}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(STORE_BACKENDS))
def store_factory(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Callable[[], ImportStore]:
    """Makes unopened stores on the same database (several "workers" of one backend)."""
    backend = STORE_BACKENDS[request.param]
    return lambda: backend(request, tmp_path, clock)


@pytest.fixture
def store(store_factory: Callable[[], ImportStore]) -> ImportStore:
    """An unopened store; use it inside ``importing_harness.with_store``."""
    return store_factory()


@pytest.fixture
def tenant():
    """The dev tenant with the two shared mailboxes of ``importing_harness.integration_config``."""
    from importing_harness import BILLING, SUPPORT

    from mailplane.devtenant.app import DevTenant

    with DevTenant(with_exchange=False) as running:
        running.state.add_mailbox(SUPPORT, kind="shared", display_name="Fabrikam Support")
        running.state.add_mailbox(BILLING, kind="shared", display_name="Fabrikam Billing")
        yield running


@pytest.fixture
def make_config(tmp_path):
    """Build a typed config from ``integration_config`` with overrides."""
    from importing_harness import integration_config

    from mailplane.integration import load_integration_config

    return lambda **overrides: load_integration_config(integration_config(tmp_path, **overrides))


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A product's webhook endpoint on loopback (``endpoint.url``, ``endpoint.posts``)."""
    hook = Endpoint()
    with BackgroundServer(hook.app) as server:
        hook.url = f"{server.base_url}/hooks/mailplane"
        yield hook
