"""A dev tenant, a store and a sender wired together for the sending tests."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from email import message_from_bytes

import httpx

from mailplane.devtenant.app import DevTenant
from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.integration import SendingLimits
from mailplane.sending.graph_drafts import IDEMPOTENCY_HEADER
from mailplane.sending.sender import Sender
from mailplane.sending.sqlite_store import SQLiteSendStore

# The loopback PostgreSQL helpers, shared with the importer tests.
from tests.importing.postgres_harness import drop_schema, fresh_schema, postgres_dsn

SENDER = "helpdesk-noreply@fabrikam.com"
INTERNAL = "agent@fabrikam.com"


def start_tenant(**options) -> DevTenant:
    tenant = DevTenant(domain="fabrikam.com", with_exchange=False, **options).start()
    tenant.state.add_mailbox(SENDER, display_name="Fabrikam Helpdesk")
    tenant.state.add_mailbox(INTERNAL, display_name="Agent")
    return tenant


def delivered_keys(tenant: DevTenant, mailbox: str = SENDER) -> list[str]:
    """The idempotency key of every message that left ``mailbox``, one entry per message sent."""
    keys = []
    for record in tenant.state.outbox(mailbox):
        header = message_from_bytes(record.mime).get(IDEMPOTENCY_HEADER)
        keys.append(" ".join(str(header).split()))
    return keys


def inbox_count(tenant: DevTenant, mailbox: str = INTERNAL) -> int:
    return len(tenant.state.messages(mailbox, "inbox"))


@dataclass
class Harness:
    tenant: DevTenant
    store_path: object
    postgres: tuple[str, str] | None = None  # (dsn, schema) when the sends keep state in PostgreSQL

    def open_store(self):
        if self.postgres is None:
            return SQLiteSendStore(self.store_path)
        from mailplane.sending.postgres_store import PostgresSendStore

        return PostgresSendStore(self.postgres[0], schema=self.postgres[1])

    def client(self, **options) -> GraphClient:
        options.setdefault("retry_delay", 0)
        return GraphClient(StaticTokenCredential(), base_url=self.tenant.graph_base_url, **options)

    def sender(self, client, store, **options) -> Sender:
        options.setdefault("display_name", "Fabrikam Helpdesk")
        options.setdefault("limits", SendingLimits())
        options.setdefault("retry_delay", 0.01)
        options.setdefault("uncertain_grace", 0.05)
        return Sender(client, store, SENDER, **options)

    def run(self, scenario, **client_options):
        """Run ``scenario(sender_factory)`` with a fresh client and store (as a new process would)."""

        async def main():
            async with self.client(**client_options) as client:
                with self.open_store() as store:
                    return await scenario(lambda **o: self.sender(client, store, **o), store)

        return asyncio.run(main())


@contextlib.contextmanager
def harness(tmp_path, backend="sqlite", **tenant_options):
    postgres = None
    if backend == "postgres":
        postgres = (postgres_dsn(), fresh_schema())
    tenant = start_tenant(**tenant_options)
    try:
        yield Harness(tenant, tmp_path / "send.sqlite3", postgres)
    finally:
        tenant.stop()
        if postgres is not None:
            drop_schema(*postgres)


def short_timeout() -> httpx.Timeout:
    return httpx.Timeout(1.0, connect=1.0)
