"""Fixtures for the Exchange tests: the dev tenant's Exchange admin emulator on a loopback port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from mailplane.devtenant.exchange import DEFAULT_TOKEN, ExchangeAdminState, create_app
from mailplane.devtenant.server import BackgroundServer
from mailplane.exchange.client import ExchangeAdminClient, StaticTokenCredential

if TYPE_CHECKING:
    from collections.abc import Iterator

TENANT = "11111111-1111-1111-1111-111111111111"
APP_ID = "aaaaaaaa-0000-4000-8000-000000000001"
SP_OBJECT_ID = "bbbbbbbb-0000-4000-8000-000000000001"
USERS = ("alice@contoso.com", "bob@contoso.com", "lms-noreply@contoso.com", "ceo@contoso.com")


@dataclass
class Emulator:
    state: ExchangeAdminState
    admin_api_url: str

    def client(self, **kwargs) -> ExchangeAdminClient:
        """A client for out-of-band changes and assertions (the way an admin would click in the portal)."""
        kwargs.setdefault("retry_backoff_seconds", 0.0)
        return ExchangeAdminClient(
            StaticTokenCredential(DEFAULT_TOKEN), tenant_id=TENANT, base_url=self.admin_api_url, **kwargs
        )

    def props(self, **values) -> dict:
        """Provider inputs with the connection filled in (the URL comes from the environment)."""
        return {"tenant_id": TENANT, "admin_api_url": None, **values}


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[ExchangeAdminState, str]]:
    state = ExchangeAdminState()
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
