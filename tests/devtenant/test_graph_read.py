from datetime import UTC, datetime, timedelta

import httpx
import pytest
from devtenant_harness import SHARED, eml, graph_client, run
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.message_collection_response import MessageCollectionResponse
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph_core import PageIterator

from mailplane.devtenant.app import DevTenant

BASE = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


def _seed(tenant, count, *, read_every=0):
    return [
        tenant.state.seed_eml(
            SHARED,
            eml(f"Message {i}", message_id=f"<m{i}@example.com>"),
            is_read=bool(read_every and i % read_every == 0),
            received=BASE + timedelta(minutes=i),
        )
        for i in range(count)
    ]


def _config(**query):
    return RequestConfiguration(
        query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(**query)
    )


def test_list_inbox__25_messages_default_page__three_pages_of_10_via_next_link(tenant):
    _seed(tenant, 25)

    async def scenario():
        inbox = graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages
        page = await inbox.get()
        sizes = [len(page.value)]
        links = [page.odata_next_link]
        while page.odata_next_link:
            page = await inbox.with_url(page.odata_next_link).get()
            sizes.append(len(page.value))
            links.append(page.odata_next_link)
        return sizes, links

    sizes, links = run(scenario)
    assert sizes == [10, 10, 5]
    assert "$skip=10" in links[0]
    assert links[-1] is None
    assert "/users/shared@contoso.com/" in links[0]


def test_page_iterator__top_7__every_message_once_newest_first(tenant):
    _seed(tenant, 16)

    async def scenario():
        client = graph_client(tenant)
        inbox = client.users.by_user_id(SHARED).mail_folders.by_mail_folder_id("Inbox").messages
        page = await inbox.get(request_configuration=_config(top=7, select=["id", "subject"]))
        seen = []
        iterator = PageIterator(page, client.request_adapter)
        await iterator.iterate(lambda m: seen.append(m.subject) or True)
        return seen

    assert run(scenario) == [f"Message {i}" for i in reversed(range(16))]


def test_list__unread_filter_and_received_order__only_unread_oldest_first(tenant):
    _seed(tenant, 6, read_every=2)

    async def scenario():
        inbox = graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages
        page = await inbox.get(
            request_configuration=_config(
                filter="isRead eq false and receivedDateTime ge 2024-01-01T10:02:00Z",
                orderby=["isRead", "receivedDateTime asc"],
                top=50,
            )
        )
        return [m.subject for m in page.value]

    assert run(scenario) == ["Message 3", "Message 5"]


def test_list__orderby_not_leading_in_filter__400_inefficient_filter(tenant):
    _seed(tenant, 2)

    async def scenario():
        inbox = graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages
        await inbox.get(request_configuration=_config(filter="isRead eq false", orderby=["receivedDateTime asc"]))

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (400, "InefficientFilter")
    assert caught.value.error.message == "The restriction or sort order is too complex for this operation."


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("receivedDateTime gt 2024-01-01T10:01:00Z", ["Message 3", "Message 2"]),
        ("receivedDateTime lt 2024-01-01T10:01:00Z", ["Message 0"]),
        ("internetMessageId eq '<m2@example.com>'", ["Message 2"]),
        ("isRead eq true", ["Message 2", "Message 0"]),
    ],
)
def test_list__filter_variants__matching_messages(tenant, filter_text, expected):
    _seed(tenant, 4, read_every=2)
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages",
        params={"$filter": filter_text, "$select": "subject"},
        headers={"Authorization": "Bearer t"},
    )
    assert response.status_code == 200, response.text
    assert [m["subject"] for m in response.json()["value"]] == expected


def test_list__top_over_1000__400(tenant):
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/messages",
        params={"$top": "1001"},
        headers={"Authorization": "Bearer t"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "ErrorInvalidUrlQuery")


def test_headers__only_with_select__absent_by_default_present_when_selected(tenant):
    tenant.state.seed_eml(SHARED, eml(headers={"In-Reply-To": "<x@example.com>"}))

    async def scenario():
        inbox = graph_client(tenant).users.by_user_id(SHARED).mail_folders.by_mail_folder_id("inbox").messages
        plain = await inbox.get()
        selected = await inbox.get(request_configuration=_config(select=["id", "internetMessageHeaders"]))
        return plain.value[0], selected.value[0]

    plain, selected = run(scenario)
    assert plain.internet_message_headers is None
    assert plain.subject == "Hello"
    assert ("In-Reply-To", "<x@example.com>") in [(h.name, h.value) for h in selected.internet_message_headers]
    assert selected.subject is None


def test_get_message_and_mime__seeded_eml__fields_and_exact_bytes(tenant):
    raw = eml("Subject ü", message_id="<one@example.com>")
    message_id = tenant.state.seed_eml(SHARED, raw)

    async def scenario():
        item = graph_client(tenant).users.by_user_id(SHARED).messages.by_message_id(message_id)
        return await item.get(), await item.content.get()

    message, mime = run(scenario)
    assert (message.id, message.subject, message.internet_message_id) == (message_id, "Subject ü", "<one@example.com>")
    assert message.from_.email_address.address == "customer@example.com"
    assert message.is_read is False
    assert message.is_draft is False
    assert message.body_preview == "Hi there"
    assert mime == raw


@pytest.mark.parametrize(
    "user_ref",
    ["shared%40contoso.com", "shared@contoso.com", "SHARED@Contoso.com", "{guid}"],
)
def test_user_addressing__encoded_raw_case_or_guid__same_mailbox(tenant, user_ref):
    tenant.state.seed_eml(SHARED, eml())
    user_ref = user_ref.replace("{guid}", tenant.state.mailbox(SHARED).id)
    response = httpx.get(
        f"{tenant.base_url}/v1.0//users/{user_ref}/mailFolders('Inbox')/messages", headers={"Authorization": "Bearer t"}
    )
    assert response.status_code == 200
    assert len(response.json()["value"]) == 1


def test_folder_key_syntax__well_known_names_any_case_and_ids__same_folder(tenant):
    tenant.state.seed_eml(SHARED, eml())
    folder_id = tenant.state.folder_id(SHARED, "inbox")
    for ref in ("mailFolders('INBOX')", "mailFolders/inbox", f"mailFolders('{folder_id}')", f"mailFolders/{folder_id}"):
        response = httpx.get(
            f"{tenant.graph_base_url}/users/{SHARED}/{ref}/messages", headers={"Authorization": "Bearer t"}
        )
        assert (ref, response.status_code, len(response.json()["value"])) == (ref, 200, 1)


def test_unknown_user__404_error_invalid_user_with_request_ids(tenant):
    async def scenario():
        await graph_client(tenant).users.by_user_id("nobody@contoso.com").messages.get()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    error = caught.value
    assert (error.response_status_code, error.error.code) == (404, "ErrorInvalidUser")
    assert error.error.inner_error.request_id
    assert error.error.inner_error.client_request_id
    assert error.error.inner_error.date


def test_message_ids__malformed_400_unknown_404(tenant):
    headers = {"Authorization": "Bearer t"}
    malformed = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages/GONE", headers=headers)
    unknown = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages/AAMkAD" + "A" * 60, headers=headers)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "ErrorInvalidIdMalformed")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "ErrorItemNotFound")
    assert unknown.json()["error"]["message"] == "The specified object was not found in the store."


def test_auth__no_bearer_token__401_invalid_authentication_token(tenant):
    response = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.headers["request-id"]
    assert response.headers["client-request-id"]


def test_auth__configured_token__other_tokens_rejected():
    with DevTenant(token="right", with_exchange=False) as tenant:
        tenant.state.add_mailbox(SHARED)
        wrong = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", headers={"Authorization": "Bearer wrong"})
        right = httpx.get(f"{tenant.graph_base_url}/users/{SHARED}/messages", headers={"Authorization": "Bearer right"})
    assert (wrong.status_code, right.status_code) == (401, 200)


def test_access_denied_mailbox__403_error_access_denied(tenant):
    tenant.state.set_access_denied(SHARED)

    async def scenario():
        await graph_client(tenant).users.by_user_id(SHARED).messages.get()

    with pytest.raises(ODataError) as caught:
        run(scenario)
    assert (caught.value.response_status_code, caught.value.error.code) == (403, "ErrorAccessDenied")


def test_client_request_id__sent_by_client__echoed_in_header_and_error(tenant):
    response = httpx.get(
        f"{tenant.graph_base_url}/users/nobody@contoso.com/messages",
        headers={"Authorization": "Bearer t", "client-request-id": "abc-123"},
    )
    assert response.headers["client-request-id"] == "abc-123"
    assert response.json()["error"]["innerError"]["client-request-id"] == "abc-123"


def test_prefer_text_body__html_message__text_body_and_preference_applied(tenant):
    html_mail = (
        b"From: a@example.com\r\nTo: shared@contoso.com\r\nSubject: html\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"\r\n<html><body><p>Hello <b>world</b></p></body></html>\r\n"
    )
    message_id = tenant.state.seed_eml(SHARED, html_mail)
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/messages/{message_id}",
        headers={"Authorization": "Bearer t", "Prefer": 'outlook.body-content-type="text", IdType="ImmutableId"'},
    )
    body = response.json()
    assert body["body"] == {"contentType": "text", "content": "Hello world"}
    assert body["id"] != message_id  # immutable id requested
    assert 'outlook.body-content-type="text"' in response.headers["Preference-Applied"]


def test_message_collection_response__parsed_by_sdk_model(tenant):
    _seed(tenant, 1)

    async def scenario():
        return await graph_client(tenant).users.by_user_id(SHARED).messages.get()

    page = run(scenario)
    assert isinstance(page, MessageCollectionResponse)
    assert page.value[0].received_date_time == BASE


def test_count_segment__unread_filter__plain_text_number(tenant):
    _seed(tenant, 5, read_every=2)
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/mailFolders/inbox/messages/$count",
        params={"$filter": "isRead eq false"},
        headers={"Authorization": "Bearer t"},
    )
    assert (response.status_code, response.text) == (200, "2")


def test_query_option_without_dollar__ignored_like_v1__default_page(tenant):
    _seed(tenant, 12)
    response = httpx.get(
        f"{tenant.graph_base_url}/users/{SHARED}/messages", params={"top": "50"}, headers={"Authorization": "Bearer t"}
    )
    assert len(response.json()["value"]) == 10
