from datetime import UTC, datetime

import httpx
import pytest
from devtenant_harness import SHARED, eml, graph_client, run
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.messages.item.move.move_post_request_body import MovePostRequestBody


def _delta_config(page_size=None, select=None):
    query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=select)
    config = RequestConfiguration(query_parameters=query)
    if page_size:
        config.headers.add("Prefer", f"odata.maxpagesize={page_size}")
    return config


async def _drain(delta, first):
    pages = [first]
    while pages[-1].odata_next_link:
        pages.append(await delta.with_url(pages[-1].odata_next_link).get())
    return pages


def test_delta__initial_sync_in_pages__all_messages_then_delta_link(tenant):
    for i in range(5):
        tenant.state.seed_eml(SHARED, eml(f"m{i}"))

    async def scenario():
        delta = graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages.delta
        first = await delta.get(request_configuration=_delta_config(2, ["id", "subject", "isRead"]))
        return await _drain(delta, first)

    pages = run(scenario)
    assert [len(p.value) for p in pages] == [2, 2, 1]
    assert all("$skiptoken=" in p.odata_next_link for p in pages[:-1])
    assert "$deltatoken=" in pages[-1].odata_delta_link
    assert pages[-1].odata_next_link is None
    assert "mailFolders('" in pages[0].odata_next_link
    assert sorted(m.subject for p in pages for m in p.value) == [f"m{i}" for i in range(5)]
    assert tenant.requests.count(kind="message.delta") == 3


def test_delta__changes_after_delta_link__new_updated_and_removed_entries(tenant):
    keep = tenant.state.seed_eml(SHARED, eml("keep"))
    moved = tenant.state.seed_eml(SHARED, eml("moved"))
    tenant.state.seed_eml(SHARED, eml("unchanged"))

    async def scenario():
        client = graph_client(tenant)
        delta = client.users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages.delta
        pages = await _drain(delta, await delta.get())
        link = pages[-1].odata_delta_link
        messages = client.users.by_user_id(SHARED).messages
        await messages.by_message_id(keep).patch(Message(is_read=True))
        await messages.by_message_id(moved).move.post(MovePostRequestBody(destination_id="archive"))
        tenant.state.seed_eml(SHARED, eml("new"))
        second = await _drain(delta, await delta.with_url(link).get())
        third = await _drain(delta, await delta.with_url(second[-1].odata_delta_link).get())
        return second, third

    second, third = run(scenario)
    values = [m for p in second for m in p.value]
    changed = sorted(m.subject for m in values if m.subject)
    removed = [m for m in values if m.additional_data.get("@removed")]
    assert changed == ["keep", "new"]
    assert [(m.id, m.additional_data["@removed"]) for m in removed] == [(moved, {"reason": "deleted"})]
    assert [m for p in third for m in p.value] == []


def test_delta__wire_forms__delta_and_delta_parens_and_key_syntax(tenant):
    tenant.state.seed_eml(SHARED, eml())
    headers = {"Authorization": "Bearer t"}
    for path in (
        "mailFolders/inbox/messages/delta()",
        "mailFolders('Inbox')/messages/delta",
        "mailFolders/inbox/messages/microsoft.graph.delta()",
    ):
        response = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/{path}", headers=headers)
        body = response.json()
        assert (path, response.status_code, len(body["value"])) == (path, 200, 1)
        assert body["value"][0]["@odata.type"] == "#microsoft.graph.message"


def test_delta__expired_tokens__410_sync_state_not_found(tenant):
    tenant.state.seed_eml(SHARED, eml())

    async def scenario():
        delta = graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages.delta
        link = (await delta.get()).odata_delta_link
        assert tenant.state.expire_delta_tokens(SHARED) >= 1
        await delta.with_url(link).get()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (410, "SyncStateNotFound")


def test_delta__unknown_token__410_sync_state_not_found(tenant):
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/delta",
        params={"$deltatoken": "not-a-token"},
        headers={"Authorization": "Bearer t"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (410, "SyncStateNotFound")


def test_delta__resync_required__410_resync_required(tenant):
    headers = {"Authorization": "Bearer t"}
    first = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/delta", headers=headers)
    tenant.state.expire_delta_tokens(code="resyncRequired")
    again = httpx.get(first.json()["@odata.deltaLink"], headers=headers)
    assert (again.status_code, again.json()["error"]["code"]) == (410, "resyncRequired")


def test_delta__unsupported_filter__400(tenant):
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/delta",
        params={"$filter": "isRead eq false"},
        headers={"Authorization": "Bearer t"},
    )
    assert response.status_code == 400


def test_delta__received_filter__only_newer_messages(tenant):
    tenant.state.seed_eml(SHARED, eml("old"), received=datetime(2023, 1, 1, tzinfo=UTC))
    tenant.state.seed_eml(SHARED, eml("new"), received=datetime(2024, 6, 1, tzinfo=UTC))
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/delta",
        params={"$filter": "receivedDateTime ge 2024-01-01T00:00:00Z"},
        headers={"Authorization": "Bearer t"},
    )
    assert [m["subject"] for m in response.json()["value"]] == ["new"]


def test_delta__token_evicted_from_cache__410_sync_state_not_found(tenant):
    tenant.state.delta_cache_size = 2
    headers = {"Authorization": "Bearer t"}
    url = f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/delta"
    oldest = httpx.get(url, headers=headers).json()["@odata.deltaLink"]
    for _ in range(2):
        httpx.get(url, headers=headers)
    assert httpx.get(oldest, headers=headers).status_code == 410


def test_delta__skip_token_page_retried__same_page_again(tenant):
    for i in range(3):
        tenant.state.seed_eml(SHARED, eml(f"m{i}"))
    headers = {"Authorization": "Bearer t", "Prefer": "odata.maxpagesize=1"}
    first = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/delta", headers=headers)
    next_link = first.json()["@odata.nextLink"]
    again = [httpx.get(next_link, headers=headers).json()["value"][0]["subject"] for _ in range(2)]
    assert again[0] == again[1]


def test_delta__page_of_hundreds__other_requests_run_while_it_is_built(tenant):
    import asyncio

    from mailplane.devtenant.graph import GraphRequest

    for i in range(300):
        tenant.state.seed_eml(SHARED, eml(f"m{i}"))
    request = GraphRequest(
        method="GET",
        path=f"/users/{SHARED}/mailFolders/inbox/messages/delta",
        query={},
        headers={"authorization": "Bearer dev", "prefer": "odata.maxpagesize=300"},
        body=b"",
        base_url="http://127.0.0.1/v1.0",
    )

    async def scenario():
        turns = 0

        async def other_requests():
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(other_requests())
        await asyncio.sleep(0)
        started = turns
        response = await tenant.graph.handle(request)
        during = turns - started
        ticking.cancel()
        return response, during

    response, during = asyncio.run(scenario())

    assert response.status == 200
    assert len(response.body["value"]) == 300
    assert during >= 300 // 25 - 1  # the loop got a turn between every few dozen messages, not only at the end
