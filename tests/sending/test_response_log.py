"""The API response log keeps no secret: headers, query parameters and bodies are redacted before storing."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mailplane.sending.response_log import REDACTED, RecordingTransport, redact_headers, redact_text, redact_url


def test_upload_url__authtoken_redacted_rest_kept():
    url = "https://outlook.office.com/api/v2.0/Users('a')/Messages('b')/AttachmentSessions('c')?authtoken=eyJ0eX.abc"
    assert redact_url(url) == url.replace("eyJ0eX.abc", "[redacted]")


def test_query_without_secrets__unchanged():
    url = "http://127.0.0.1:1/v1.0/users/a/mailFolders/drafts/messages?$select=id,categories&$top=100"
    assert redact_url(url) == url


def test_headers__authorization_cookie_and_token_headers_redacted_others_kept():
    headers = {
        "Authorization": "Bearer eyJhbGciOi",
        "Cookie": "session=1",
        "x-ms-client-secret": "s3cr3t",
        "Location": "https://x/upload?authtoken=abc",
        "request-id": "1234",
    }
    assert redact_headers(headers) == {
        "authorization": REDACTED,
        "cookie": REDACTED,
        "x-ms-client-secret": REDACTED,
        "location": "https://x/upload?authtoken=[redacted]",
        "request-id": "1234",
    }


def test_body__token_fields_upload_urls_and_bearer_tokens_redacted():
    body = (
        '{"access_token": "eyJ.a.b", "refresh_token":"r-1", "uploadUrl": "https://o/u?authtoken=zzz&x=1", '
        '"error": {"message": "Bearer abc.def rejected"}, "client_secret": "cs", "id": "AAMk"}'
    )
    redacted = redact_text(body)
    for secret in ("eyJ.a.b", "r-1", "zzz", "abc.def", '"cs"'):
        assert secret not in redacted
    assert '"id": "AAMk"' in redacted
    assert "x=1" in redacted


def test_recording_transport__logs_each_exchange_redacted_and_passes_the_answer_through():
    def answer(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"id": "AAMk", "uploadUrl": "https://o/u?authtoken=secret"})

    recorder = RecordingTransport(httpx.MockTransport(answer))

    async def call():
        async with httpx.AsyncClient(transport=recorder) as client:
            return await client.post(
                "https://graph.microsoft.com/v1.0/users/a/messages", headers={"Authorization": "Bearer tkn"}
            )

    response = asyncio.run(call())
    assert response.json()["uploadUrl"] == "https://o/u?authtoken=secret"
    [entry] = recorder.entries
    assert (entry.method, entry.status) == ("POST", 201)
    assert entry.request_headers["authorization"] == REDACTED
    assert "secret" not in entry.response_body
    assert "tkn" not in str(entry.to_dict())


def test_recording_transport__connection_error_logged_then_raised():
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    recorder = RecordingTransport(httpx.MockTransport(fail))

    async def call():
        async with httpx.AsyncClient(transport=recorder) as client:
            await client.get("https://graph.microsoft.com/v1.0/users/a")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(call())
    [entry] = recorder.entries
    assert (entry.status, entry.error) == (None, "ConnectError")
