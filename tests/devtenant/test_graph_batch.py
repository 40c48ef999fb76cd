import itertools

import httpx
from devtenant_harness import SHARED, eml, graph_client, run
from msgraph.generated.models.message import Message
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from mailplane.devtenant.app import DevTenant

HEADERS = {"Authorization": "Bearer t"}


def test_batch_via_sdk__patch_two_one_missing__200_with_per_item_statuses(tenant):
    message_id = tenant.state.seed_eml(SHARED, eml())
    missing = "AAMkAD" + "Z" * 60

    async def scenario():
        client = graph_client(tenant)
        items = [
            BatchRequestItem(
                request_information=client.users.by_user_id(SHARED)
                .messages.by_message_id(i)
                .to_patch_request_information(Message(is_read=True))
            )
            for i in (message_id, missing)
        ]
        content = BatchRequestContent({item.id: item for item in items})
        response = await client.batch.post(batch_request_content=content)
        return {item.id: response.get_response_by_id(item.id).status for item in items}, [i.id for i in items]

    statuses, ids = run(scenario)
    assert [statuses[i] for i in ids] == [200, 404]
    assert tenant.state.messages(SHARED)[0].is_read is True
    assert tenant.requests.count(kind="message.update", in_batch=True) == 2
    assert tenant.requests.count(kind="batch", include_batch_envelopes=True) == 1


def _batch(tenant, requests):
    return httpx.post(f"{tenant.graph_base_url}/$batch", json={"requests": requests}, headers=HEADERS)


def _get(i, url):
    return {"id": str(i), "method": "GET", "url": url}


def test_batch__21_items__400(tenant):
    response = _batch(tenant, [_get(i, f"/users/{SHARED}/messages") for i in range(21)])
    assert response.status_code == 400


def test_batch__duplicate_ids__400(tenant):
    response = _batch(tenant, [_get(1, f"/users/{SHARED}/messages"), _get(1, f"/users/{SHARED}/messages")])
    assert response.status_code == 400


def test_batch__failed_dependency__424_and_overall_200(tenant):
    first = {"id": "1", "method": "GET", "url": f"/users/{SHARED}/messages/AAMkAD{'Q' * 60}"}
    second = {**_get(2, f"/users/{SHARED}/messages"), "dependsOn": ["1"]}
    response = _batch(tenant, [first, second])
    statuses = {r["id"]: r["status"] for r in response.json()["responses"]}
    assert (response.status_code, statuses) == (200, {"1": 404, "2": 424})


def test_batch__sdk_depends_on_spelling__ignored_not_rejected(tenant):
    items = [
        {**_get(1, f"/users/{SHARED}/messages"), "depends_on": []},
        {**_get(2, f"/v1.0/users/{SHARED}/mailFolders('inbox')"), "depends_on": ["1"]},
    ]
    response = _batch(tenant, items)
    assert sorted(r["status"] for r in response.json()["responses"]) == [200, 200]


def test_batch__items_over_window_limit__429_items_with_retry_after_inside_200():
    with DevTenant(window_limit=3, with_exchange=False) as tenant:
        tenant.state.add_mailbox(SHARED)
        response = _batch(
            tenant,
            [{**_get(i, f"/users/{SHARED}/messages"), **({"dependsOn": [str(i - 1)]} if i else {})} for i in range(5)],
        )
        throttled = tenant.requests.throttled
    responses = sorted(response.json()["responses"], key=lambda r: int(r["id"]))
    assert response.status_code == 200
    assert [r["status"] for r in responses][:3] == [200, 200, 200]
    assert responses[3]["status"] == 429
    assert responses[3]["body"]["error"]["code"] == "ApplicationThrottled"
    assert int(responses[3]["headers"]["Retry-After"]) >= 1
    assert throttled == 1  # the 5th item failed its dependency (424), it was not throttled itself
    assert responses[4]["status"] == 424


def test_batch__items_without_authorization__inherit_the_envelope_token(tenant):
    response = httpx.post(f"{tenant.graph_base_url}/$batch", json={"requests": [_get(1, f"/users/{SHARED}/messages")]})
    assert response.status_code == 401


def _handled_requests(tenant, monkeypatch):
    """Every GraphRequest the emulator handles (the envelope and each item), in the order they were handed in."""
    handled = []
    handle = tenant.graph.handle

    async def recording(request, *, in_batch=False):
        handled.append(request)
        return await handle(request, in_batch=in_batch)

    monkeypatch.setattr(tenant.graph, "handle", recording)
    return handled


def test_latency__chained_items_count_from_the_dependency_s_end__no_drift_along_the_chain(monkeypatch):
    # The model: every request takes the latency. A chained item can start once its dependency's latency is over;
    # the emulator's own work between two items (handler, logging, timer overshoot) must not add up along a chain.
    with DevTenant(latency_ms=20, with_exchange=False) as tenant:
        tenant.state.add_mailbox(SHARED, kind="shared")
        ids = [tenant.state.seed_eml(SHARED, eml(f"m{n}")) for n in range(5)]
        handled = _handled_requests(tenant, monkeypatch)
        items = [
            {"id": str(n), "method": "PATCH", "url": f"/users/{SHARED}/messages/{i}", "body": {"isRead": True}}
            | ({"dependsOn": [str(n - 1)]} if n > 1 else {})
            for n, i in enumerate(ids, start=1)
        ]
        response = _batch(tenant, items)

    assert [r["status"] for r in response.json()["responses"]] == [200] * 5
    envelope, *chain = handled
    assert envelope.path == "/$batch"
    assert len(chain) == 5
    assert chain[0].latency_start == envelope.latency_end
    for previous, item in itertools.pairwise(chain):
        assert item.latency_start == previous.latency_end
    for request in handled:
        assert round(request.latency_end - request.latency_start, 6) == 0.02
    assert round(chain[-1].latency_end - envelope.latency_start, 6) == 0.12  # envelope + 5 items, nothing more


def test_latency__parallel_items_beyond_the_batch_parallelism__count_from_when_they_start(monkeypatch):
    with DevTenant(latency_ms=20, concurrency=4, with_exchange=False) as tenant:
        tenant.state.add_mailbox(SHARED, kind="shared")
        ids = [tenant.state.seed_eml(SHARED, eml(f"m{n}")) for n in range(5)]
        handled = _handled_requests(tenant, monkeypatch)
        response = _batch(tenant, [_get(n, f"/users/{SHARED}/messages/{i}") for n, i in enumerate(ids, start=1)])

    assert [r["status"] for r in response.json()["responses"]] == [200] * 5
    envelope, *items = handled
    first_four, fifth = items[:4], items[4]
    assert all(item.latency_start == envelope.latency_end for item in first_four)
    # The fifth waited for one of the four to finish: its latency starts after theirs ended, never overlapping.
    assert fifth.latency_start >= min(item.latency_end for item in first_four)


def test_latency__an_injected_delay_on_an_item__is_not_made_up_by_the_next(monkeypatch):
    with DevTenant(latency_ms=20, with_exchange=False) as tenant:
        tenant.state.add_mailbox(SHARED, kind="shared")
        ids = [tenant.state.seed_eml(SHARED, eml(f"m{n}")) for n in range(2)]
        tenant.faults.latency(150, count=1, path=f"/messages/{ids[0]}$")
        handled = _handled_requests(tenant, monkeypatch)
        items = [_get(1, f"/users/{SHARED}/messages/{ids[0]}"), _get(2, f"/users/{SHARED}/messages/{ids[1]}")]
        items[1]["dependsOn"] = ["1"]
        response = _batch(tenant, items)

    assert [r["status"] for r in response.json()["responses"]] == [200, 200]
    _, delayed, following = handled
    assert delayed.latency_end - delayed.latency_start >= 0.17  # latency + injected delay
    assert following.latency_start == delayed.latency_end
    assert round(following.latency_end - following.latency_start, 6) == 0.02
