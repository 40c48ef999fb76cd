"""Fixtures for the Exchange tests: the dev tenant's Exchange admin emulator on a loopback port."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from exchange_tenant import TENANT, USERS, Emulator
from starlette.applications import Starlette
from starlette.routing import Mount

from mailplane.devtenant.exchange import DEFAULT_TOKEN, ExchangeAdminState, create_app
from mailplane.devtenant.server import BackgroundServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[ExchangeAdminState, str]]:
    state = ExchangeAdminState(tokens=(DEFAULT_TOKEN,))
    app = Starlette(routes=[Mount("/adminapi", app=create_app(state))])
    with BackgroundServer(app) as server:
        yield state, f"{server.base_url}/adminapi/beta"


@pytest.fixture
def emulator(_server, monkeypatch) -> Emulator:
    """A fresh tenant with four user mailboxes; providers reach it through the environment."""
    state, url = _server
    with state.lock:
        state.tenants.clear()
        state.faults.clear()
        state.calls.clear()
    state.tenant(TENANT, domain="contoso.com")
    for user in USERS:
        state.add_user_mailbox(TENANT, user)
    monkeypatch.setenv("MAILPLANE_EXCHANGE_ADMIN_URL", url)
    monkeypatch.setenv("MAILPLANE_EXCHANGE_TOKEN", DEFAULT_TOKEN)
    return Emulator(state, url)
