"""The Graph client core: error translation, credential selection, base URL, retries, per-mailbox concurrency.

Requests go through the real msgraph-sdk, either to an httpx MockTransport or, for concurrency, to a tiny Starlette
stub served over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from azure.identity import aio as identity_aio
from hypothesis import given, settings
from hypothesis import strategies as st
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.inner_error import InnerError
from msgraph.generated.models.o_data_errors.main_error import MainError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from mailplane.devtenant.server import BackgroundServer
from mailplane.exceptions import (
    AccessDeniedError,
    AuthenticationError,
    GraphError,
    MailboxNotEnabledError,
    ThrottledError,
)
from mailplane.graph import (
    GRAPH_SCOPE,
    GraphClient,
    MailboxConcurrencyLimiter,
    StaticTokenCredential,
    credential_from_environment,
    normalize_base_url,
    translate_graph_error,
)

MAILBOX = "support@fabrikam.com"


def _odata_error(status, code, message, *, request_id=None, headers=None):
    error = ODataError()
    error.response_status_code = status
    error.response_headers = headers or {}
    error.error = MainError(
        code=code, message=message, inner_error=InnerError(request_id=request_id) if request_id else None
    )
    return error


def _aad_error(code, text):
    return ClientAuthenticationError(
        message=(
            f"ClientSecretCredential.get_token failed: Authentication failed: AADSTS{code}: {text} "
            "Trace ID: 0b6e5c57-7d43-4f5a-9b1c-2f5e3c4d5e6f Correlation ID: 6a1f0c2e-1111-2222-3333-444455556666 "
            "Timestamp: 2026-03-01 09:30:00Z"
        )
    )


# --- error translation -------------------------------------------------------------------------------------------


def test_access_denied__translated__points_at_mailbox_scoping_with_request_id():
    exc = _odata_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.", request_id="r-1")
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert isinstance(error, AccessDeniedError)
    assert str(error) == (
        "sending as support@fabrikam.com: 403 ErrorAccessDenied (the app is not allowed on this mailbox: it is "
        "outside the app's Exchange RBAC scope, or the Mail role is not assigned). Run 'mailplane doctor', or check "
        "the management role assignment for the app's service principal scoped to this mailbox; Exchange applies "
        "changes within 30 minutes to 2 hours (request-id r-1)"
    )
    assert (error.status, error.code, error.request_id) == (403, "ErrorAccessDenied", "r-1")


def test_mailbox_not_enabled__translated__names_hybrid_and_licensing():
    exc = _odata_error(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        headers={"request-id": "r-2"},
    )
    error = translate_graph_error(exc, doing="listing the inbox of", mailbox=MAILBOX)
    assert isinstance(error, MailboxNotEnabledError)
    assert str(error) == (
        "listing the inbox of support@fabrikam.com: the mailbox cannot be used through Graph (404 "
        "MailboxNotEnabledForRESTAPI: it is hosted on-premises in a hybrid setup, has no Exchange Online license, or "
        "is inactive or soft-deleted). Use a mailbox in Exchange Online: license or migrate it (shared mailboxes need "
        "no license but must be in the cloud) (request-id r-2)"
    )


def test_throttled__translated__retry_after_kept():
    exc = _odata_error(
        429,
        "ApplicationThrottled",
        "Application is over its MailboxConcurrency limit.",
        headers=httpx.Headers({"Retry-After": "7", "request-id": "r-3"}),
    )
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 7.0
    assert str(error) == (
        "sending as support@fabrikam.com: Graph is throttling this mailbox (429 ApplicationThrottled) and the retries "
        "ran out; the service asked to wait 7 s. Try again later and send fewer requests at once to this mailbox "
        "(request-id r-3)"
    )


def test_throttled__http_date_retry_after__seconds_from_now():
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    exc = _odata_error(429, "TooManyRequests", "", headers={"retry-after": when})
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert isinstance(error, ThrottledError)
    assert 25 <= error.retry_after <= 31


def test_invalid_token__401__authentication_error():
    exc = _odata_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert isinstance(error, AuthenticationError)
    assert str(error) == (
        "sending as support@fabrikam.com: Graph rejected the access token (401 InvalidAuthenticationToken: Access "
        "token has expired or is not yet valid). Check that the credential is for the right tenant and app and that "
        "the token is for https://graph.microsoft.com"
    )


def test_no_permission_in_token__403_other_code__access_denied_pointing_at_consent():
    exc = _odata_error(
        403, "NoPermissionsInAccessToken", "The token contains no permissions, or permissions can not be understood."
    )
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert isinstance(error, AccessDeniedError)
    assert "admin consent" in str(error)


def test_item_not_found__translated__plain_graph_error_with_code():
    exc = _odata_error(404, "ErrorItemNotFound", "The specified object was not found in the store.", request_id="r-4")
    error = translate_graph_error(exc, doing="marking a message read in", mailbox=MAILBOX)
    assert type(error) is GraphError
    assert error.code == "ErrorItemNotFound"
    assert str(error) == (
        "marking a message read in support@fabrikam.com: 404 ErrorItemNotFound: The specified object was not found "
        "in the store (request-id r-4)"
    )


def test_service_unavailable__translated__try_later():
    error = translate_graph_error(_odata_error(503, "ServiceUnavailable", ""), doing="sending as", mailbox=MAILBOX)
    assert (
        str(error) == "sending as support@fabrikam.com: Graph is unavailable (503 ServiceUnavailable). Try again later"
    )


def test_unparseable_body__api_error__says_it_is_not_graph():
    exc = APIError()
    exc.response_status_code = 502
    exc.response_headers = {}
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert type(error) is GraphError
    assert str(error) == (
        "sending as support@fabrikam.com: Graph answered 502 with a body that is not a Graph error (a proxy or gateway "
        "page?). Check the Graph base URL and any proxy in between"
    )


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (
            "7000222",
            "The provided client secret keys for app '11111111-2222-3333-4444-555555555555' are expired.",
            (
                "getting a token: the client secret has expired (AADSTS7000222). Create a new secret ('pulumi up' on "
                "the tenant stack rotates it) and update AZURE_CLIENT_SECRET"
            ),
        ),
        (
            "7000215",
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
            (
                "getting a token: the client secret is wrong (AADSTS7000215). Use the secret's value, not its id, and "
                "check AZURE_CLIENT_SECRET against the stack's current secret"
            ),
        ),
        (
            "700016",
            "Application with identifier '1111' was not found in the directory 'Fabrikam'.",
            (
                "getting a token: the application was not found in the tenant (AADSTS700016). Check AZURE_CLIENT_ID "
                "and AZURE_TENANT_ID, and that the app is registered (and consented) in that tenant"
            ),
        ),
        (
            "90002",
            "Tenant 'fabrikam.onmicrosoft.cm' not found.",
            (
                "getting a token: the tenant was not found (AADSTS90002). Check AZURE_TENANT_ID (the directory id or a "
                "verified domain) and that the tenant is in this cloud"
            ),
        ),
        (
            "50034",
            "The user account does not exist in the directory.",
            (
                "getting a token: Microsoft Entra refused the token request (AADSTS50034: The user account does not "
                "exist in the directory). Check the credential settings"
            ),
        ),
    ],
    ids=["expired secret", "wrong secret", "app not in tenant", "tenant not found", "other AADSTS"],
)
def test_aadsts_failure__translated__cause_and_what_to_do(code, text, expected):
    error = translate_graph_error(_aad_error(code, text), doing="getting a token")
    assert isinstance(error, AuthenticationError)
    assert str(error) == f"{expected} (request-id 0b6e5c57-7d43-4f5a-9b1c-2f5e3c4d5e6f)"
    assert error.code == f"AADSTS{code}"


def test_no_credential_configured__translated__lists_the_variables():
    error = translate_graph_error(
        CredentialUnavailableError(message="EnvironmentCredential authentication unavailable."),
        doing="sending as",
        mailbox=MAILBOX,
    )
    assert isinstance(error, AuthenticationError)
    assert str(error) == (
        "sending as support@fabrikam.com: no access token could be obtained (EnvironmentCredential authentication "
        "unavailable). Configure a credential: AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, "
        "AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE, or run where a managed identity is available"
    )


def test_connection_refused__translated__names_the_network():
    error = translate_graph_error(
        httpx.ConnectError("All connection attempts failed"), doing="sending as", mailbox=MAILBOX
    )
    assert str(error) == (
        "sending as support@fabrikam.com: could not reach Microsoft Graph (ConnectError: All connection attempts "
        "failed). Check the network, proxy and the configured Graph base URL"
    )


# --- credentials -------------------------------------------------------------------------------------------------

TENANT = {
    "AZURE_TENANT_ID": "33333333-3333-3333-3333-333333333333",
    "AZURE_CLIENT_ID": "44444444-4444-4444-4444-444444444444",
}


def _self_signed_pem(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailplane-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "app.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return str(path)


def _credential_type(environ):
    async def build():
        credential = credential_from_environment(environ)
        await credential.close()
        return type(credential)

    return asyncio.run(build())


def test_secret_in_environment__credential__client_secret():
    assert _credential_type({**TENANT, "AZURE_CLIENT_SECRET": "s"}) is identity_aio.ClientSecretCredential


def test_certificate_in_environment__credential__certificate(tmp_path):
    environ = {**TENANT, "AZURE_CLIENT_CERTIFICATE_PATH": _self_signed_pem(tmp_path)}
    assert _credential_type(environ) is identity_aio.CertificateCredential


def test_federated_token_file__credential__workload_identity(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("eyJ...")
    environ = {**TENANT, "AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
    assert _credential_type(environ) is identity_aio.WorkloadIdentityCredential


def test_identity_endpoint__credential__managed_identity():
    environ = {"IDENTITY_ENDPOINT": "http://169.254.169.254/x", "IDENTITY_HEADER": "h"}
    assert _credential_type(environ) is identity_aio.ManagedIdentityCredential


def test_nothing_configured__credential__default_chain():
    assert _credential_type({}) is identity_aio.DefaultAzureCredential


def test_secret_and_certificate__credential__secret_wins(tmp_path):
    environ = {**TENANT, "AZURE_CLIENT_SECRET": "s", "AZURE_CLIENT_CERTIFICATE_PATH": str(tmp_path / "none.pem")}
    assert _credential_type(environ) is identity_aio.ClientSecretCredential


# --- base URL, scope, transport ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://graph.microsoft.com/v1.0/", "https://graph.microsoft.com/v1.0"),
        ("http://127.0.0.1:8080/v1.0", "http://127.0.0.1:8080/v1.0"),
        ("http://localhost:8080/v1.0/", "http://localhost:8080/v1.0"),
        ("http://[::1]:8080/v1.0", "http://[::1]:8080/v1.0"),
    ],
)
def test_base_url__normalized__no_trailing_slash(url, expected):
    assert normalize_base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://devtenant.test/v1.0", "plain http is only allowed for 127.0.0.1, ::1 or localhost"),
        ("ftp://graph.microsoft.com/v1.0", "is not an http(s) URL with a host"),
        ("https://user:pw@graph.microsoft.com/v1.0", "must not carry credentials"),
    ],
)
def test_base_url__unsafe__refused(url, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        normalize_base_url(url)


class _Recorder:
    def __init__(self, responses=None):
        self.requests: list[httpx.Request] = []  # copies, as sent
        self.responses = list(responses or [])

    def __call__(self, request):
        # A snapshot: the retry handler re-sends the same request object with updated headers.
        self.requests.append(httpx.Request(request.method, request.url, headers=dict(request.headers)))
        if self.responses:
            return self.responses.pop(0)
        return httpx.Response(200, json={"value": []})


async def _list_inbox(client, mailbox=MAILBOX):
    async with client.call(mailbox, doing="listing the inbox of"):
        return await client.service.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages.get()


def test_base_url_with_trailing_slash__request__single_slash_path_and_graph_scope():
    recorder = _Recorder()
    credential = StaticTokenCredential("t0ken")

    async def scenario():
        async with GraphClient(
            credential, base_url="http://127.0.0.1:9/v1.0/", transport=httpx.MockTransport(recorder)
        ) as client:
            await _list_inbox(client)

    asyncio.run(scenario())
    (request,) = recorder.requests
    assert str(request.url) == "http://127.0.0.1:9/v1.0/users/support%40fabrikam.com/mailFolders/inbox/messages"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert credential.scopes_requested == [(GRAPH_SCOPE,)]


def test_other_host__request__no_bearer_token_sent():
    recorder = _Recorder()

    async def scenario():
        async with GraphClient(StaticTokenCredential("t0ken"), transport=httpx.MockTransport(recorder)) as client:
            builder = client.service.users.by_user_id(MAILBOX).messages
            async with client.call(MAILBOX, doing="uploading to"):
                await builder.with_url("https://outlook.office.com/api/v2.0/upload/abc").get()

    asyncio.run(scenario())
    assert "authorization" not in recorder.requests[0].headers


def test_two_clients__http_clients__fresh_and_separate():
    async def scenario():
        first = GraphClient(StaticTokenCredential(), transport=httpx.MockTransport(_Recorder()))
        second = GraphClient(StaticTokenCredential(), transport=httpx.MockTransport(_Recorder()))
        try:
            return first.service.request_adapter._http_client, second.service.request_adapter._http_client
        finally:
            await first.aclose()
            await second.aclose()

    one, two = asyncio.run(scenario())
    assert one is not two
    assert one.is_closed
    assert two.is_closed


# --- retries -----------------------------------------------------------------------------------------------------


def _throttled(retry_after="1"):
    return httpx.Response(
        429,
        headers={"Retry-After": retry_after, "request-id": "r-9"},
        json={
            "error": {"code": "ApplicationThrottled", "message": "Application is over its MailboxConcurrency limit."}
        },
    )


def test_throttled_once__get__waits_retry_after_then_succeeds():
    recorder = _Recorder([_throttled("1")])

    async def scenario():
        async with GraphClient(
            StaticTokenCredential(), transport=httpx.MockTransport(recorder), retry_delay=0
        ) as client:
            started = time.monotonic()
            await _list_inbox(client)
            return time.monotonic() - started

    elapsed = asyncio.run(scenario())
    assert elapsed >= 0.95
    assert [r.headers.get("retry-attempt") for r in recorder.requests] == [None, "1"]


def test_throttled_always__retries_exhausted__throttled_error_with_retry_after():
    recorder = _Recorder([_throttled("0") for _ in range(3)])

    async def scenario():
        async with GraphClient(
            StaticTokenCredential(), transport=httpx.MockTransport(recorder), max_retries=2, retry_delay=0
        ) as client:
            await _list_inbox(client)

    with pytest.raises(ThrottledError) as caught:
        asyncio.run(scenario())
    assert len(recorder.requests) == 3
    assert caught.value.retry_after == 0.0
    assert caught.value.request_id == "r-9"
    assert isinstance(caught.value.__cause__, ODataError)


def test_send_mail_throttled__post__retried():
    recorder = _Recorder([_throttled("0"), httpx.Response(202)])

    async def scenario():
        async with (
            GraphClient(StaticTokenCredential(), transport=httpx.MockTransport(recorder), retry_delay=0) as client,
            client.call(MAILBOX, doing="sending as"),
        ):
            await client.service.users.by_user_id(MAILBOX).send_mail.post(
                SendMailPostRequestBody(message=Message(subject="Hello"))
            )

    asyncio.run(scenario())
    assert [r.method for r in recorder.requests] == ["POST", "POST"]


def test_send_mail_gateway_timeout__post__not_retried_so_never_sent_twice():
    recorder = _Recorder([httpx.Response(504, json={"error": {"code": "GatewayTimeout", "message": ""}})])

    async def scenario():
        async with (
            GraphClient(StaticTokenCredential(), transport=httpx.MockTransport(recorder), retry_delay=0) as client,
            client.call(MAILBOX, doing="sending as"),
        ):
            await client.service.users.by_user_id(MAILBOX).send_mail.post(
                SendMailPostRequestBody(message=Message(subject="Hello"))
            )

    with pytest.raises(GraphError, match=r"Graph is unavailable \(504 GatewayTimeout\)"):
        asyncio.run(scenario())
    assert len(recorder.requests) == 1


def test_list_service_unavailable__get__retried():
    recorder = _Recorder(
        [httpx.Response(503, headers={"Retry-After": "0"}, json={"error": {"code": "x", "message": ""}})]
    )

    async def scenario():
        async with GraphClient(
            StaticTokenCredential(), transport=httpx.MockTransport(recorder), retry_delay=0
        ) as client:
            await _list_inbox(client)

    asyncio.run(scenario())
    assert len(recorder.requests) == 2


def test_access_denied__through_the_client__translated_and_token_not_in_message():
    recorder = _Recorder(
        [
            httpx.Response(
                403,
                json={
                    "error": {
                        "code": "ErrorAccessDenied",
                        "message": "Access is denied.",
                        "innerError": {"request-id": "r-5"},
                    }
                },
            )
        ]
    )

    async def scenario():
        async with GraphClient(
            StaticTokenCredential("s3cret-t0ken"), transport=httpx.MockTransport(recorder)
        ) as client:
            await _list_inbox(client)

    with pytest.raises(AccessDeniedError) as caught:
        asyncio.run(scenario())
    assert caught.value.request_id == "r-5"
    assert str(caught.value).startswith("listing the inbox of support@fabrikam.com: 403 ErrorAccessDenied")
    assert "s3cret-t0ken" not in str(caught.value)


# --- concurrency per mailbox -------------------------------------------------------------------------------------


def test_limiter__many_tasks__never_more_than_limit_in_flight_per_mailbox():
    limiter = MailboxConcurrencyLimiter(4)
    peaks: dict[str, int] = {}

    async def work(mailbox):
        async with limiter.slot(mailbox):
            key = mailbox.lower()
            peaks[key] = max(peaks.get(key, 0), limiter.in_flight(mailbox))
            await asyncio.sleep(0.005)

    async def scenario():
        await asyncio.gather(*(work(m) for m in ["A@x.com", "a@x.com", "b@x.com"] * 10))

    asyncio.run(scenario())
    assert peaks == {"a@x.com": 4, "b@x.com": 4}
    assert limiter.in_flight("a@x.com") == 0


def test_limiter__zero__refused():
    with pytest.raises(ValueError, match="at least 1"):
        MailboxConcurrencyLimiter(0)


class _ConcurrencyStub:
    """A Graph-shaped stub that records the most requests it saw in flight at once, per mailbox and overall."""

    def __init__(self):
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.total = 0
        self.peak_total = 0

    async def messages(self, request):
        user = request.path_params["user"].lower()
        self.in_flight[user] = self.in_flight.get(user, 0) + 1
        self.total += 1
        self.peak[user] = max(self.peak.get(user, 0), self.in_flight[user])
        self.peak_total = max(self.peak_total, self.total)
        try:
            await asyncio.sleep(0.05)
            return JSONResponse({"value": []})
        finally:
            self.in_flight[user] -= 1
            self.total -= 1

    def app(self):
        return Starlette(routes=[Route("/v1.0/users/{user}/mailFolders/inbox/messages", self.messages)])


def _hammer(base_url, *, limited):
    async def scenario():
        async with GraphClient(StaticTokenCredential(), base_url=f"{base_url}/v1.0") as client:

            async def one(mailbox):
                if limited:
                    await _list_inbox(client, mailbox)
                else:
                    await (
                        client.service.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages.get()
                    )

            mailboxes = ["support@fabrikam.com", "Support@Fabrikam.com", "billing@fabrikam.com"] * 8
            await asyncio.gather(*(one(m) for m in mailboxes))

    asyncio.run(scenario())


def test_many_requests__through_the_client__at_most_4_in_flight_per_mailbox_over_real_http():
    stub = _ConcurrencyStub()
    with BackgroundServer(stub.app()) as server:
        _hammer(server.base_url, limited=True)
    assert stub.peak == {"support@fabrikam.com": 4, "billing@fabrikam.com": 4}
    assert stub.peak_total > 4  # different mailboxes do not wait for each other


def test_many_requests__without_the_limiter__stub_sees_more_than_4():
    stub = _ConcurrencyStub()
    with BackgroundServer(stub.app()) as server:
        _hammer(server.base_url, limited=False)
    assert stub.peak["support@fabrikam.com"] > 4


_CODES = st.sampled_from(
    [None, "ErrorAccessDenied", "MailboxNotEnabledForRESTAPI", "ApplicationThrottled", "ErrorItemNotFound", ""]
) | st.text(max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    status=st.none() | st.integers(min_value=100, max_value=599),
    code=_CODES,
    message=st.none() | st.text(max_size=60),
    retry_after=st.none() | st.text(max_size=30),
)
def test_any_graph_error__translated__graph_error_naming_the_mailbox_without_the_token(
    status, code, message, retry_after
):
    headers = {"Authorization": "Bearer s3cret-t0ken"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    exc = _odata_error(status, code, message, headers=headers)
    error = translate_graph_error(exc, doing="sending as", mailbox=MAILBOX)
    assert isinstance(error, GraphError)
    assert str(error).startswith("sending as support@fabrikam.com: ")
    assert "s3cret-t0ken" not in str(error)


def test_read_timeout__translated__warns_the_request_may_have_been_carried_out():
    error = translate_graph_error(httpx.ReadTimeout("timed out"), doing="sending as", mailbox=MAILBOX)
    assert str(error) == (
        "sending as support@fabrikam.com: Graph did not answer in time (ReadTimeout). The request may still have been "
        "carried out: retry only what is safe to repeat (a send needs its idempotency key)"
    )


def test_nothing_listening__through_the_client__could_not_reach_graph():
    with BackgroundServer(Starlette()) as server:
        closed = server.base_url  # the port is free again once the server stops

    async def scenario():
        async with GraphClient(StaticTokenCredential(), base_url=f"{closed}/v1.0", max_retries=0) as client:
            await _list_inbox(client)

    with pytest.raises(
        GraphError, match=r"^listing the inbox of support@fabrikam.com: could not reach Microsoft Graph"
    ):
        asyncio.run(scenario())


class _ExpiredSecretCredential:
    async def get_token(self, *_scopes, **_options):
        raise _aad_error("7000222", "The provided client secret keys for app '1111' are expired.")


def test_expired_secret__through_the_client__authentication_error_before_any_request():
    recorder = _Recorder()

    async def scenario():
        async with GraphClient(_ExpiredSecretCredential(), transport=httpx.MockTransport(recorder)) as client:
            await _list_inbox(client)

    with pytest.raises(AuthenticationError, match=r"the client secret has expired \(AADSTS7000222\)"):
        asyncio.run(scenario())
    assert recorder.requests == []


def test_retry_after_beyond_the_sdk_cap__get__not_retried_and_retry_after_reported():
    recorder = _Recorder([_throttled("300")])

    async def scenario():
        async with GraphClient(StaticTokenCredential(), transport=httpx.MockTransport(recorder)) as client:
            await _list_inbox(client)

    with pytest.raises(ThrottledError) as caught:
        asyncio.run(scenario())
    assert len(recorder.requests) == 1
    assert caught.value.retry_after == 300.0
