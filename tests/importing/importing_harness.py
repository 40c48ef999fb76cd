"""Helpers for the importer tests: a controllable clock, running a scenario against a store."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from mailplane.importing.store import ImportStore

T = TypeVar("T")
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves forward by hand (``clock.advance(minutes=5)``)."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def with_store(store: ImportStore, scenario: Callable[[ImportStore], Awaitable[T]]) -> T:
    """Open ``store``, run ``scenario(store)`` on a fresh event loop, close the store."""

    async def run() -> Any:
        async with store:
            return await scenario(store)

    return asyncio.run(run())


# --- importer scenarios against the dev tenant --------------------------------------------------------------------

SUPPORT = "support@fabrikam.com"
BILLING = "billing@fabrikam.com"
AGENT = "agent.smith@fabrikam.com"


def integration_config(tmp_path, **overrides: Any) -> dict[str, Any]:
    """A small integration config (two shared accounts, people as follower parents), as a JSON-ready dict."""
    config: dict[str, Any] = {
        "version": 1,
        "accounts": {
            "shared": [
                {
                    "address": SUPPORT,
                    "displayName": "Fabrikam Support",
                    "conversation": {
                        "parent": "ticket",
                        "properties": {
                            "title": {"message": "subject", "ifEmpty": "(no subject)", "maxLength": 200},
                            "requesterEmail": {"message": "fromAddress"},
                            "queue": {"default": "support"},
                            "company": {
                                "lookup": {
                                    "recordType": "person",
                                    "where": "email",
                                    "equals": "fromAddress",
                                    "take": "company.name",
                                    "ifNotFound": None,
                                }
                            },
                        },
                    },
                },
                {
                    "address": BILLING,
                    "displayName": "Fabrikam Billing",
                    "failureFolder": "billing-failed",
                    "conversation": {
                        "parent": "ticket",
                        "properties": {"title": {"message": "subject"}, "queue": {"default": "billing"}},
                    },
                },
            ]
        },
        "recordTypes": {
            "ticket": {
                "fields": {
                    "title": {"type": "string"},
                    "requesterEmail": {"type": "email"},
                    "queue": {"type": "string"},
                    "company": {"type": "string"},
                }
            },
            "person": {
                "fields": {
                    "email": {"type": "email"},
                    "name": {"type": "string"},
                    "company": {"type": "reference", "references": "company"},
                }
            },
            "company": {"fields": {"name": {"type": "string"}}},
            "agent": {"fields": {"email": {"type": "email"}, "name": {"type": "string"}}},
        },
        "followers": {
            "parents": [
                {"recordType": "agent", "addressField": "email", "participation": "observer"},
                {"recordType": "person", "addressField": "email", "participation": "participant"},
            ],
            "unmatched": "address-only",
        },
        "routing": {"multipleDestinations": False},
        "settings": {
            "recovery": {"gracePeriodMinutes": 2, "maxFailedAgeHours": 24},
            "attachmentSizeLimitMB": 1,
        },
        "store": {"backend": "sqlite", "path": str(tmp_path / "import.sqlite3")},
    }
    config.update(overrides)
    return config


def accounts_importing_support_from(folder: str) -> dict[str, Any]:
    """The config's ``accounts`` with SUPPORT importing from ``folder`` (a display name) instead of the inbox."""
    shared = integration_config(Path("unused"))["accounts"]["shared"]
    shared[0]["folder"] = folder
    return {"shared": shared}


RECORDS = {
    "person": [
        {"id": "p-ann", "email": "ann@contoso.example", "name": "Ann Archer", "company": "c-contoso"},
        {"id": "p-bob", "email": "Bob@Tailspin.example", "name": "Bob Baker", "company": "c-tailspin"},
    ],
    "company": [{"id": "c-contoso", "name": "Contoso Ltd"}, {"id": "c-tailspin", "name": "Tailspin Toys"}],
    "agent": [{"id": "a-smith", "email": AGENT, "name": "Agent Smith"}],
}


def eml(
    subject: str = "Printer on fire",
    *,
    sender: str = "Ann Archer <ann@contoso.example>",
    to: str = SUPPORT,
    cc: str | None = None,
    body: str = "Hello, the printer is on fire.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: Any = (),
    date: str = "Mon, 02 Mar 2026 08:00:00 +0000",
) -> bytes:
    """A small RFC 822 message."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = date
    if message_id:
        message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(body)
    for filename, content_type, content in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def received(minute: float) -> dt.datetime:
    """A receive time ``minute`` minutes into the past hour (seeded mail needs distinct, ordered times)."""
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=60 - minute)


def run_importer(
    tenant: Any, config: Any, operation: Callable[[Any], Awaitable[T]], *, records: Any = None, **options: Any
) -> T:
    """Run ``operation(importer)`` against the dev tenant with a fresh client, store and blob folder.

    ``options`` go to the :class:`~mailplane.importing.importer.Importer` (``page_size=...``).
    """
    from mailplane.graph import GraphClient, StaticTokenCredential
    from mailplane.importing import open_import_store
    from mailplane.importing.blobs import FileBlobStore
    from mailplane.importing.importer import Importer
    from mailplane.importing.routing import InMemoryRecords

    async def scenario() -> T:
        store = open_import_store(config.store)
        blobs = FileBlobStore(config.store.sqlite_path.with_name("blobs"))
        async with GraphClient(StaticTokenCredential(), base_url=tenant.graph_base_url, retry_delay=0) as graph, store:
            importer = Importer(
                config, graph, store, blobs=blobs, records=records or InMemoryRecords(RECORDS), **options
            )
            return await operation(importer)

    return asyncio.run(scenario())


def read_store(config: Any, operation: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``operation(store)`` on the config's store."""
    from mailplane.importing import open_import_store

    return with_store(open_import_store(config.store), operation)


def strip_external_tag(properties: dict[str, Any]) -> dict[str, Any] | None:
    """An incomingMessageHandler for the tests: drop an "[EXT] " subject prefix; refuse subjects with "poison"."""
    subject = properties.get("subject") or ""
    if "poison" in subject:
        raise ValueError("the handler refuses this message")
    if subject.startswith("[EXT] "):
        return {"subject": subject.removeprefix("[EXT] ")}
    return None
