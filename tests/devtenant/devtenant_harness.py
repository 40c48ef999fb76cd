"""Helpers for the dev tenant tests: real msgraph-sdk clients pointed at the emulator, sample messages."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from azure.core.credentials import AccessToken
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphServiceClient
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph_core import GraphClientFactory

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailplane.devtenant.app import DevTenant

GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
SHARED = "shared@contoso.com"
SENDER = "alerts@contoso.com"
T = TypeVar("T")


class FakeCredential:
    """A TokenCredential that hands out a fixed token (the emulator accepts any non-empty bearer token)."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.scopes_asked: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        del kwargs
        self.scopes_asked.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def graph_client(tenant: DevTenant, *, max_retries: int | None = None, token: str = "fake-token") -> GraphServiceClient:
    """A GraphServiceClient on the emulator (build it inside the coroutine that uses it)."""
    if max_retries is None:
        client = GraphServiceClient(credentials=FakeCredential(token), scopes=GRAPH_SCOPES)
    else:
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(timeout=30),
            options={
                RetryHandlerOption.get_key(): RetryHandlerOption(
                    delay=0, max_retries=max_retries, should_retry=max_retries > 0
                )
            },
        )
        auth = AzureIdentityAuthenticationProvider(FakeCredential(token), scopes=GRAPH_SCOPES)
        client = GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))
    client.request_adapter.base_url = tenant.graph_base_url
    return client


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """Run one async scenario to completion."""
    return asyncio.run(scenario())  # type: ignore[arg-type]


def eml(
    subject: str = "Hello",
    *,
    sender: str = "customer@example.com",
    to: str = SHARED,
    body: str = "Hi there",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    """A small RFC 822 message."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Mon, 01 Jan 2024 10:00:00 +0000"
    if message_id:
        message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content_type, content in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()
