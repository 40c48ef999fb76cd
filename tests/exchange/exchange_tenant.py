"""The Exchange tests' tenant: fixed ids, seeded users, and a handle on the running emulator."""

from __future__ import annotations

from dataclasses import dataclass

from mailplane.devtenant.exchange import DEFAULT_TOKEN, ExchangeAdminState
from mailplane.exchange.client import ExchangeAdminClient, StaticTokenCredential

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
