"""The Graph client core through the real msgraph-sdk against the dev tenant over real HTTP on 127.0.0.1.

Throttling, access denial, injected faults and sends are the dev tenant's; what is checked here is the client's side:
the per-mailbox limiter keeps the tenant from ever answering 429, Retry-After is honoured, a POST that may have been
applied is never repeated, and failures become mailplane's actionable errors.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

from mailplane.devtenant.app import DevTenant
from mailplane.exceptions import AccessDeniedError, AuthenticationError, GraphError, ThrottledError
from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.integration import load_integration_config
from mailplane.templates import MergeContext, Person

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = "support@fabrikam.com"
NOREPLY = "helpdesk-noreply@fabrikam.com"
EML = (
    b"From: Ann <ann@northwind.example>\r\nTo: support@fabrikam.com\r\nSubject: Printer on fire\r\n"
    b"Message-ID: <printer-1@northwind.example>\r\nDate: Sun, 01 Mar 2026 09:30:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nIt burns.\r\n"
)


@pytest.fixture
def tenant():
    with DevTenant(domain="fabrikam.com", latency_ms=20, concurrency_retry_after=1) as running:
        running.state.add_mailbox(SUPPORT, kind="shared", display_name="Fabrikam Support")
        running.state.add_mailbox(NOREPLY)
        running.state.seed_eml(SUPPORT, EML)
        yield running


@pytest.fixture
def config(tenant):
    document = json.loads((ROOT / "examples" / "integration.json").read_text(encoding="utf-8"))
    document["graph"] = {"baseUrl": tenant.graph_base_url + "/"}
    return load_integration_config(document)


def _client(config, **options):
    return GraphClient(StaticTokenCredential(), base_url=config.graph_base_url, retry_delay=0, **options)


async def _inbox_subjects(client, mailbox=SUPPORT):
    async with client.call(mailbox, doing="listing the inbox of"):
        page = await client.service.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages.get()
    return [m.subject for m in page.value]


def _notification(config):
    template = config.templates["ticket-acknowledgement"]
    rendered = template.render(
        MergeContext(
            sender=Person(config.designated.address, config.designated.display_name),
            recipient=Person("ann@northwind.example", "Ann"),
            followers=(Person("ann@northwind.example", "Ann"),),
            conversation_id="1042",
            conversation_subject="Printer on fire",
            reply_to=Person(SUPPORT, "Fabrikam Support"),
        )
    )
    return SendMailPostRequestBody(
        message=Message(
            subject=rendered.subject,
            body=ItemBody(content_type=BodyType.Html, content=rendered.html),
            to_recipients=[Recipient(email_address=EmailAddress(address="ann@northwind.example", name="Ann"))],
        ),
        save_to_sent_items=False,
    )


async def _send(client, body, mailbox=NOREPLY):
    async with client.call(mailbox, doing="sending as"):
        await client.service.users.by_user_id(mailbox).send_mail.post(body)


def test_config_base_url_with_trailing_slash__list_inbox__seeded_message_returned(config):
    async def scenario():
        async with _client(config) as client:
            return await _inbox_subjects(client)

    assert asyncio.run(scenario()) == ["Printer on fire"]


def test_rendered_template__sent_from_the_designated_mailbox__delivered_once(tenant, config):
    async def scenario():
        async with _client(config) as client:
            await _send(client, _notification(config))

    asyncio.run(scenario())
    (sent,) = tenant.state.outbox(NOREPLY)
    assert sent.to == ["ann@northwind.example"]
    assert tenant.requests.count(kind="sendMail") == 1


def test_mailbox_out_of_scope__list__access_denied_with_request_id(tenant, config):
    tenant.state.set_access_denied(SUPPORT)

    async def scenario():
        async with _client(config) as client:
            await _inbox_subjects(client)

    with pytest.raises(AccessDeniedError) as caught:
        asyncio.run(scenario())
    assert str(caught.value).startswith("listing the inbox of support@fabrikam.com: 403 ErrorAccessDenied")
    assert caught.value.request_id


def _burst(config, *, limited, count=24):
    async def scenario():
        async with _client(config, max_retries=0) as client:

            async def one():
                if limited:
                    return await _inbox_subjects(client)
                builder = client.service.users.by_user_id(SUPPORT).mail_folders.by_mail_folder_id("inbox").messages
                return await builder.get()

            return await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)

    return asyncio.run(scenario())


def test_burst_of_requests__through_the_limiter__dev_tenant_never_throttles(tenant, config):
    results = _burst(config, limited=True)
    assert all(r == ["Printer on fire"] for r in results)
    assert tenant.requests.throttled == 0
    assert tenant.requests.count(mailbox=SUPPORT) == 24


def test_burst_of_requests__without_the_limiter__dev_tenant_throttles(tenant, config):
    results = _burst(config, limited=False)
    assert tenant.requests.throttled > 0
    assert any(isinstance(r, Exception) for r in results)


def test_injected_throttle__list__retry_after_honoured_then_success(tenant, config):
    tenant.faults.throttle(retry_after=1, count=1, method="GET")

    async def scenario():
        async with _client(config) as client:
            return await _inbox_subjects(client)

    assert asyncio.run(scenario()) == ["Printer on fire"]
    assert tenant.requests.throttled == 1


def test_throttled_beyond_retries__list__throttled_error(tenant, config):
    tenant.faults.throttle(retry_after=0, method="GET")

    async def scenario():
        async with _client(config, max_retries=1) as client:
            return await _inbox_subjects(client)

    with pytest.raises(ThrottledError):
        asyncio.run(scenario())


def test_send_applied_then_connection_dropped__post__not_repeated_so_delivered_exactly_once(tenant, config):
    tenant.faults.apply_then_drop(count=1, method="POST", path="sendMail")

    async def scenario():
        async with _client(config) as client:
            await _send(client, _notification(config))

    with pytest.raises(GraphError):
        asyncio.run(scenario())
    assert len(tenant.state.outbox(NOREPLY)) == 1


def test_send_answered_503__post__not_repeated_and_not_delivered(tenant, config):
    tenant.faults.error(503, count=1, method="POST", path="sendMail")

    async def scenario():
        async with _client(config) as client:
            await _send(client, _notification(config))

    with pytest.raises(GraphError, match=r"Graph is unavailable \(503"):
        asyncio.run(scenario())
    assert tenant.state.outbox(NOREPLY) == []
    assert tenant.requests.count(method="POST") == 1


def test_wrong_token__list__authentication_error_without_the_token():
    with DevTenant(domain="fabrikam.com", token="the-right-token") as tenant:
        tenant.state.add_mailbox(SUPPORT, kind="shared")

        async def scenario():
            async with GraphClient(StaticTokenCredential("a-wrong-t0ken"), base_url=tenant.graph_base_url) as client:
                await _inbox_subjects(client)

        with pytest.raises(AuthenticationError) as caught:
            asyncio.run(scenario())
    assert str(caught.value).startswith(
        "listing the inbox of support@fabrikam.com: Graph rejected the access token (401 InvalidAuthenticationToken"
    )
    assert "a-wrong-t0ken" not in str(caught.value)
    assert caught.value.request_id


def test_unknown_mailbox__list__graph_error_with_graph_code(config):
    async def scenario():
        async with _client(config) as client:
            await _inbox_subjects(client, "nobody@fabrikam.com")

    with pytest.raises(GraphError) as caught:
        asyncio.run(scenario())
    assert (caught.value.status, caught.value.code) == (404, "ErrorInvalidUser")
    assert str(caught.value).startswith("listing the inbox of nobody@fabrikam.com: 404 ErrorInvalidUser: ")
