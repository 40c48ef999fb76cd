import asyncio
import time

import httpx
import pytest
from devtenant_harness import SHARED, eml, graph_client, run
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

from mailplane.devtenant.app import DevTenant

HEADERS = {"Authorization": "Bearer t"}


@pytest.fixture
def small_tenant():
    with DevTenant(concurrency=2, window_limit=5, window_seconds=2, with_exchange=False) as running:
        running.state.add_mailbox(SHARED, kind="shared")
        yield running


def test_concurrency__more_parallel_requests_than_limit__429_application_throttled(small_tenant):
    small_tenant.faults.latency(300, path="/messages$")

    async def scenario():
        async with httpx.AsyncClient(headers=HEADERS) as client:
            url = f"{small_tenant.graph_base_url}/users/{SHARED}/messages"
            return await asyncio.gather(*(client.get(url) for _ in range(4)))

    responses = run(scenario)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert throttled.json()["error"]["message"] == "Application is over its MailboxConcurrency limit."
    assert small_tenant.requests.throttled == 2


def test_window__over_limit__429_with_retry_after_until_window_frees(small_tenant):
    url = f"{small_tenant.graph_base_url}/users/{SHARED}/messages"
    statuses = [httpx.get(url, headers=HEADERS).status_code for _ in range(6)]
    last = httpx.get(url, headers=HEADERS)
    assert statuses == [200] * 5 + [429]
    assert 1 <= int(last.headers["Retry-After"]) <= 2
    assert small_tenant.requests.count(mailbox=SHARED, status=429) == 2


def test_window__sdk_retry_handler__honours_retry_after_and_succeeds(small_tenant):
    small_tenant.faults.throttle(retry_after=1, count=1, method="PATCH")
    message_id = small_tenant.state.seed_eml(SHARED, eml())

    async def scenario():
        started = time.monotonic()
        item = graph_client(small_tenant, max_retries=3).users.by_user_id(SHARED).messages.by_message_id(message_id)
        updated = await item.patch(Message(is_read=True))
        return updated, time.monotonic() - started

    updated, elapsed = run(scenario)
    assert updated.is_read is True
    assert elapsed >= 1.0
    assert small_tenant.requests.count(method="PATCH", status=429) == 1
    assert small_tenant.requests.count(method="PATCH", status=200) == 1


def test_throttle_fault__retries_exhausted__odata_error_429_with_retry_after(tenant):
    tenant.faults.throttle(retry_after=7)

    async def scenario():
        await graph_client(tenant, max_retries=0).users.by_user_id(SHARED).messages.get()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (429, "ApplicationThrottled")
    assert caught.value.response_headers.get("retry-after") == "7"


def test_error_fault__503_twice__sdk_retries_then_succeeds(tenant):
    fault = tenant.faults.error(503, count=2, retry_after=0, path="/mailFolders$")

    async def scenario():
        return await graph_client(tenant, max_retries=3).users.by_user_id(SHARED).mail_folders.get()

    assert len(run(scenario).value) == 8
    assert fault.fired == 2
    assert tenant.requests.count(kind="folder.list", status=503) == 2


def test_error_fault__500_with_probability_and_seed__repeatable_pattern(tenant):
    def pattern():
        tenant.faults.clear()
        tenant.faults.error(500, probability=0.5, seed=42)
        url = f"{tenant.graph_base_url}/users/{SHARED}/messages"
        return [httpx.get(url, headers=HEADERS).status_code for _ in range(10)]

    first, second = pattern(), pattern()
    assert first == second
    assert set(first) == {200, 500}


def test_drop_fault__request_not_applied__client_sees_protocol_error(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())
    tenant.faults.drop(method="PATCH", mailbox=SHARED, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.patch(
            f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}", json={"isRead": True}, headers=HEADERS
        )
    assert tenant.state.messages(SHARED)[0].is_read is False


def test_apply_then_drop__send_mail__applied_once_but_response_lost(tenant):
    tenant.faults.apply_then_drop(path="/sendMail$", count=1)

    async def scenario():
        body = SendMailPostRequestBody(
            message=Message(
                subject="once", to_recipients=[Recipient(email_address=EmailAddress(address="x@example.com"))]
            )
        )
        await graph_client(tenant).users.by_user_id(SHARED).send_mail.post(body)

    with pytest.raises(httpx.RemoteProtocolError):
        run(scenario)
    assert [m.subject for m in tenant.state.outbox(SHARED)] == ["once"]
    assert tenant.requests.count(kind="sendMail") == 1


def test_apply_then_drop__inside_batch__items_applied_whole_response_lost(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())
    tenant.faults.apply_then_drop(method="PATCH", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            f"{tenant.graph_base_url}/$batch",
            json={
                "requests": [
                    {
                        "id": "1",
                        "method": "PATCH",
                        "url": f"/users/{SHARED}/messages/{message_id}",
                        "headers": {"Content-Type": "application/json"},
                        "body": {"isRead": True},
                    }
                ]
            },
            headers=HEADERS,
        )
    assert tenant.state.messages(SHARED)[0].is_read is True


def test_slow_fault__body_after_delay__client_read_timeout(tenant):
    tenant.faults.slow(1500, path="/messages$")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", headers=HEADERS, timeout=0.3)


def test_latency_option__every_request_delayed():
    with DevTenant(latency_ms=200, with_exchange=False) as tenant:
        tenant.state.add_mailbox(SHARED)
        started = time.monotonic()
        httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", headers=HEADERS)
        assert time.monotonic() - started >= 0.2


def test_latency_fault__jitter_and_after__first_requests_untouched(tenant):
    fault = tenant.faults.latency(100, jitter_ms=50, after=1, count=1)
    url = f"{tenant.graph_base_url}/users/{SHARED}/messages"
    httpx.get(url, headers=HEADERS)
    started = time.monotonic()
    httpx.get(url, headers=HEADERS)
    assert time.monotonic() - started >= 0.05
    assert (fault.seen, fault.fired) == (2, 1)


def test_control_endpoint__add_fault_count_requests_clear(tenant):
    base = tenant.base_url
    added = httpx.post(f"{base}/_devtenant/faults", json={"kind": "error", "status": 502, "count": 1})
    first = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", headers=HEADERS)
    second = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", headers=HEADERS)
    listed = httpx.get(f"{base}/_devtenant/faults").json()["faults"]
    counters = httpx.get(f"{base}/_devtenant/requests").json()
    assert (added.status_code, first.status_code, second.status_code) == (201, 502, 200)
    assert listed[0]["fired"] == 1
    assert counters["counters"] == {"GET message.list 502": 1, "GET message.list 200": 1}
    assert httpx.delete(f"{base}/_devtenant/faults").status_code == 204
    assert httpx.get(f"{base}/_devtenant/faults").json()["faults"] == []
    bad = httpx.post(f"{base}/_devtenant/faults", json={"kind": "explode"})
    assert bad.status_code == 400


def test_control_endpoint__seed_and_outbox(tenant):
    seeded = httpx.post(f"{tenant.base_url}/_devtenant/mailboxes/{SHARED}/messages", content=eml("via http"))
    assert seeded.status_code == 201
    assert tenant.state.messages(SHARED)[0].subject == "via http"
    outbox = httpx.get(f"{tenant.base_url}/_devtenant/mailboxes/{SHARED}/outbox").json()
    assert outbox == {"value": []}


def test_request_log__per_request_config_no_retry__counts_one_429(tenant):
    tenant.faults.throttle()

    async def scenario():
        config = RequestConfiguration(options=[RetryHandlerOption(max_retries=0, should_retry=False)])
        await graph_client(tenant).users.by_user_id(SHARED).messages.get(request_configuration=config)

    with pytest.raises(ODataError):
        run(scenario)
    assert tenant.requests.throttled == 1
