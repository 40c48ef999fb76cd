"""Helpers for the webhook sink and notification tests: a fake clock, stores with an outbox, imported messages."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field

from postgres_harness import drop_schema, fresh_schema, postgres_dsn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from mailplane.importing.store import DestinationInput, FollowerInput, ImportedMessage, ThreadKeys

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
SECRET = "whsec-test-0123456789"


class FakeClock:
    """A settable UTC clock shared by the store and the deliverer."""

    def __init__(self, start: dt.datetime = START) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def imported(
    number: int,
    *,
    mailbox: str = "support@contoso.com",
    in_reply_to: int | None = None,
    destination: str | None = None,
) -> ImportedMessage:
    """A message as the importer would record it; ``in_reply_to`` threads it under an earlier number."""
    return ImportedMessage(
        mailbox=mailbox,
        immutable_id=f"AAMk-{mailbox}-{number}",
        internet_message_id=f"<m{number}@example.com>",
        received_at=START + dt.timedelta(minutes=number),
        destinations=(
            DestinationInput(destination or mailbox, "ticket", {"title": f"Subject {number}", "status": "new"}),
        ),
        subject=f"Subject {number}",
        thread=ThreadKeys(in_reply_to=(f"<m{in_reply_to}@example.com>",) if in_reply_to is not None else ()),
        attributes={"fromAddress": "customer@example.com", "subject": f"Subject {number}", "receivedAt": START},
        followers=(FollowerInput("customer@example.com", "Customer", "participant", ("from",)),),
    )


def open_postgres_store(clock: FakeClock):
    """A PostgreSQL store in its own schema, and a function that drops the schema."""
    from mailplane.importing.store_postgres import PostgresImportStore

    dsn = postgres_dsn()
    schema = fresh_schema()
    return PostgresImportStore(dsn, clock=clock, schema=schema), lambda: drop_schema(dsn, schema)


@dataclass
class Post:
    """One request the endpoint received."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """An HTTP endpoint that answers with scripted statuses (then 200) and keeps every request."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        async def hook(request) -> Response:
            body = await request.body()
            with self.lock:
                self.posts.append(Post({k.lower(): v for k, v in request.headers.items()}, body))
                status, headers = self.script.pop(0) if self.script else (200, {})
            return Response(status_code=status, headers=headers)

        self.app = Starlette(routes=[Route("/hooks/mailplane", hook, methods=["POST"])])

    def keys(self) -> list[str]:
        return [post.headers["idempotency-key"] for post in self.posts]
