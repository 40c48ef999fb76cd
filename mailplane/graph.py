"""The Microsoft Graph client core that the sender and the importer share.

* :class:`GraphClient` wraps a msgraph ``GraphServiceClient`` built from any azure-identity credential (client
  secret, certificate, workload identity federation, managed identity; :func:`credential_from_environment` picks one
  from the usual ``AZURE_*`` variables). The Graph scope is always passed explicitly: without it the SDK derives the
  scope from the request host, which is wrong for every host but graph.microsoft.com (graph-mail.md §4).
* Each client owns a fresh ``httpx.AsyncClient`` (never one shared between clients or created at import time), with
  msgraph's default middleware and a retry handler that honours ``Retry-After``. POST requests are retried on 429
  only: a 503/504 may come after Exchange accepted a send, and a blind retry would deliver it twice; the sender decides
  those with its idempotency key.
* The base URL is switchable (the dev tenant: ``http://127.0.0.1:PORT/v1.0``). It is set on the request adapter
  without a trailing slash; giving it to httpx instead makes the SDK send ``/v1.0//users/...``. Plain http is allowed
  for loopback only, which is also all the SDK's token provider accepts.
* :class:`MailboxConcurrencyLimiter` keeps at most 4 requests in flight per mailbox (Outlook's "MailboxConcurrency"
  limit). Use ``async with client.call(mailbox, doing=...)`` around every request: it takes a slot and turns SDK and
  azure-identity exceptions into mailplane's :class:`~mailplane.exceptions.GraphError` tree.

The msgraph batch module needs the ``Deprecated`` package, which msgraph-core imports without declaring it; it is a
direct dependency in pyproject.toml for that reason (import ``msgraph_core.requests.batch_request_item`` otherwise
fails with ModuleNotFoundError).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from kiota_abstractions.api_error import APIError
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.options import RetryHandlerOption, UrlReplaceHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph._version import VERSION as MSGRAPH_VERSION
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core import APIVersion, GraphClientFactory
from msgraph_core.middleware.options import GraphTelemetryHandlerOption

from mailplane.exceptions import (
    AccessDeniedError,
    AuthenticationError,
    GraphError,
    MailboxNotEnabledError,
    ThrottledError,
)

if TYPE_CHECKING:
    from types import TracebackType

    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = [
    "GRAPH_BASE_URL",
    "GRAPH_SCOPE",
    "IMMUTABLE_ID_PREFERENCE",
    "MAX_CONCURRENT_REQUESTS_PER_MAILBOX",
    "GraphClient",
    "MailboxConcurrencyLimiter",
    "StaticTokenCredential",
    "build_graph_service_client",
    "credential_for_base_url",
    "credential_from_environment",
    "normalize_base_url",
    "retry_after_seconds",
    "translate_graph_error",
]

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
MAX_CONCURRENT_REQUESTS_PER_MAILBOX = 4
# The Prefer header value that makes Graph answer with immutable ids (they survive moves between folders).
IMMUTABLE_ID_PREFERENCE = 'IdType="ImmutableId"'
_LOOPBACK_NAMES = frozenset({"localhost"})
# The SDK's defaults (kiota_http): 100 s per request, 30 s to connect.
_DEFAULT_TIMEOUT = httpx.Timeout(100.0, connect=30.0)


# --- credentials -------------------------------------------------------------------------------------------------


class StaticTokenCredential:
    """An async credential that always returns the same bearer token (the dev tenant accepts any token).

    For the dev tenant and tests only; real tenants use an azure-identity credential.
    """

    def __init__(self, token: str = "dev-tenant-token", *, lifetime_seconds: int = 3600) -> None:  # noqa: S107 - a fake
        """``token`` is sent as ``Authorization: Bearer <token>``."""
        self._token = token
        self._lifetime = lifetime_seconds
        self.scopes_requested: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        """Return the token; record the scopes asked for (tests check that the Graph scope is passed)."""
        self.scopes_requested.append(scopes)
        return AccessToken(self._token, int(time.time()) + self._lifetime)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> Self:
        """Usable as an async context manager, like azure-identity's credentials."""
        return self

    async def __aexit__(self, *_: object) -> None:
        """Nothing to release."""


def credential_from_environment(environ: Mapping[str, str] | None = None) -> AsyncTokenCredential:
    """An azure-identity async credential chosen from the ``AZURE_*`` variables in ``environ`` (default ``os.environ``).

    In this order, the same variables azure-identity's EnvironmentCredential and DefaultAzureCredential read:

    1. ``AZURE_TENANT_ID`` + ``AZURE_CLIENT_ID`` + ``AZURE_CLIENT_SECRET`` -> ClientSecretCredential;
    2. ... + ``AZURE_CLIENT_CERTIFICATE_PATH`` (and ``AZURE_CLIENT_CERTIFICATE_PASSWORD``) -> CertificateCredential;
    3. ... + ``AZURE_FEDERATED_TOKEN_FILE`` -> WorkloadIdentityCredential (workload identity federation: Kubernetes,
       GitHub Actions with a token file);
    4. ``IDENTITY_ENDPOINT`` or ``MSI_ENDPOINT`` (Azure-hosted) -> ManagedIdentityCredential (``AZURE_CLIENT_ID``
       picks a user-assigned identity);
    5. otherwise DefaultAzureCredential without interactive sign-in (it also tries the developer tools' sign-in).

    The variables are read from ``environ`` and passed explicitly, so the choice is testable and never depends on
    process state the caller did not hand over (a user name/password pair is deliberately not supported: app-only).
    """
    from azure.identity import aio  # noqa: PLC0415 - azure-identity's aio module is heavy; only load it when used

    env = os.environ if environ is None else environ
    tenant_id = env.get("AZURE_TENANT_ID")
    client_id = env.get("AZURE_CLIENT_ID")
    authority = env.get("AZURE_AUTHORITY_HOST")
    extra: dict[str, Any] = {"authority": authority} if authority else {}
    if tenant_id and client_id:
        if env.get("AZURE_CLIENT_SECRET"):
            return aio.ClientSecretCredential(tenant_id, client_id, env["AZURE_CLIENT_SECRET"], **extra)
        if env.get("AZURE_CLIENT_CERTIFICATE_PATH"):
            return aio.CertificateCredential(
                tenant_id,
                client_id,
                env["AZURE_CLIENT_CERTIFICATE_PATH"],
                password=env.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                **extra,
            )
        if env.get("AZURE_FEDERATED_TOKEN_FILE"):
            return aio.WorkloadIdentityCredential(
                tenant_id=tenant_id, client_id=client_id, token_file_path=env["AZURE_FEDERATED_TOKEN_FILE"], **extra
            )
    if env.get("IDENTITY_ENDPOINT") or env.get("MSI_ENDPOINT"):
        return aio.ManagedIdentityCredential(client_id=client_id) if client_id else aio.ManagedIdentityCredential()
    return aio.DefaultAzureCredential(exclude_interactive_browser_credential=True)


def credential_for_base_url(
    base_url: str, environ: Mapping[str, str] | None = None
) -> StaticTokenCredential | AsyncTokenCredential:
    """The credential a command uses for ``base_url``: the dev tenant's static token or the environment's.

    A loopback URL (the dev tenant) without ``AZURE_CLIENT_ID``/managed-identity variables gets a
    :class:`StaticTokenCredential` with ``$MAILPLANE_DEV_TOKEN`` (default ``dev-tenant-token``); anything else gets
    :func:`credential_from_environment`.
    """
    env = os.environ if environ is None else environ
    host = (urlsplit(base_url).hostname or "").lower()
    has_azure = any(env.get(name) for name in ("AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"))
    if _is_loopback(host) and not has_azure:
        return StaticTokenCredential(env.get("MAILPLANE_DEV_TOKEN", "dev-tenant-token"))
    return credential_from_environment(env)


# --- base URL, retries, the SDK client ---------------------------------------------------------------------------


def normalize_base_url(url: str) -> str:
    """``url`` without a trailing slash; https, or plain http on a loopback host only. Raises ``ValueError``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        raise ValueError(f"Graph base URL {url!r} is not an http(s) URL with a host, e.g. {GRAPH_BASE_URL}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"Graph base URL {url!r} must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not _is_loopback(host):
        # The SDK's token provider refuses http for any other host ("Only https is supported").
        raise ValueError(f"Graph base URL {url!r}: plain http is only allowed for 127.0.0.1, ::1 or localhost")
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _PostSafeRetryHandler(RetryHandler):
    """msgraph's RetryHandler (429/503/504, honours Retry-After), except that POST is retried on 429 only.

    A 429 means the request was not processed. A 503/504 on POST (sendMail, createReply, move) may come after the
    service acted on it; retrying blindly would send twice, so it surfaces to the caller instead.
    """

    def should_retry(self, request: httpx.Request, options: RetryHandlerOption, response: httpx.Response) -> bool:
        if request.method.upper() == "POST" and response.status_code != 429:  # noqa: PLR2004 - Too Many Requests
            return False
        return bool(super().should_retry(request, options, response))


def _build_http_client(
    *, transport: httpx.AsyncBaseTransport | None, timeout: httpx.Timeout, max_retries: int, retry_delay: float
) -> httpx.AsyncClient:
    # A new dict per client: msgraph's own `options` are module-level and shared by every default adapter.
    options = {
        UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(
            enabled=True, replacement_pairs={"/users/me-token-to-replace": "/me"}
        ),
        GraphTelemetryHandlerOption.get_key(): GraphTelemetryHandlerOption(
            api_version=APIVersion.v1, sdk_version=MSGRAPH_VERSION
        ),
        RetryHandlerOption.get_key(): RetryHandlerOption(delay=retry_delay, max_retries=max_retries),
    }
    middleware = KiotaClientFactory.get_default_middleware(options)
    middleware = [
        _PostSafeRetryHandler(options=options[RetryHandlerOption.get_key()]) if isinstance(m, RetryHandler) else m
        for m in middleware
    ]
    middleware.append(GraphClientFactory._get_telemetry_handler(options))  # noqa: SLF001 - same as the default chain
    # No base_url on the httpx client: the adapter's base URL is set without a trailing slash (see the module doc).
    # Keep enough idle connections for 4 requests in flight on each of many mailboxes: httpx keeps 20 by default,
    # and over HTTP/1.1 (proxies, the dev tenant) every request beyond that opened and closed a connection.
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=200)
    client = httpx.AsyncClient(timeout=timeout, transport=transport, http2=transport is None, limits=limits)
    return GraphClientFactory.create_with_custom_middleware(middleware, client=client)


def build_graph_service_client(
    credential: TokenCredential | AsyncTokenCredential,
    *,
    base_url: str = GRAPH_BASE_URL,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = _DEFAULT_TIMEOUT,
    max_retries: int = RetryHandlerOption.DEFAULT_MAX_RETRIES,
    retry_delay: float = RetryHandlerOption.DEFAULT_DELAY,
) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    """A msgraph ``GraphServiceClient`` for ``credential`` and the fresh ``httpx.AsyncClient`` it owns.

    ``transport`` replaces httpx's network transport (tests: ``httpx.MockTransport`` or an ASGI transport).
    ``max_retries`` (0..10) and ``retry_delay`` (seconds added to each computed backoff when the answer has no
    ``Retry-After``) configure the retry handler. Close the returned httpx client when done.
    """
    url = normalize_base_url(base_url)
    host = urlsplit(url).hostname or ""
    allowed_hosts = [host] if host else []
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE], allowed_hosts=allowed_hosts)
    http_client = _build_http_client(
        transport=transport, timeout=timeout, max_retries=max_retries, retry_delay=retry_delay
    )
    adapter = GraphRequestAdapter(auth, client=http_client)
    adapter.base_url = url
    return GraphServiceClient(request_adapter=adapter), http_client


# --- concurrency per mailbox -------------------------------------------------------------------------------------


class MailboxConcurrencyLimiter:
    """At most ``limit`` concurrent requests per mailbox (addresses compared case-insensitively).

    One asyncio semaphore per mailbox, created on first use. Use it from one event loop.
    """

    def __init__(self, limit: int = MAX_CONCURRENT_REQUESTS_PER_MAILBOX) -> None:
        """``limit`` is the number of requests allowed in flight at once for one mailbox."""
        if limit < 1:
            raise ValueError("the per-mailbox concurrency limit must be at least 1")
        self._limit = limit
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._in_flight: dict[str, int] = {}

    @property
    def limit(self) -> int:
        """Requests allowed in flight per mailbox."""
        return self._limit

    def in_flight(self, mailbox: str) -> int:
        """Requests currently holding a slot for ``mailbox``."""
        return self._in_flight.get(mailbox.lower(), 0)

    @asynccontextmanager
    async def slot(self, mailbox: str) -> AsyncIterator[None]:
        """Wait for a free slot for ``mailbox``, hold it for the ``async with`` body."""
        key = mailbox.lower()
        semaphore = self._semaphores.setdefault(key, asyncio.Semaphore(self._limit))
        async with semaphore:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            try:
                yield
            finally:
                self._in_flight[key] -= 1


# --- the client --------------------------------------------------------------------------------------------------


class GraphClient:
    """The SDK client, its HTTP client and the per-mailbox limiter, configured once.

    ``credential`` is any azure-identity credential (sync or async) or :class:`StaticTokenCredential`. Keyword-only:
    ``base_url`` (default Graph v1.0), ``transport`` (an httpx transport, for tests), ``max_retries``,
    ``retry_delay``, ``max_concurrent_per_mailbox`` (default 4). Close it with ``await client.aclose()`` or use
    ``async with``. The credential is not closed (the caller owns it).
    """

    __slots__ = ("_base_url", "_credential", "_http_client", "_limiter", "_service")

    def __init__(
        self,
        credential: TokenCredential | AsyncTokenCredential,
        /,
        *,
        base_url: str = GRAPH_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = _DEFAULT_TIMEOUT,
        max_retries: int = RetryHandlerOption.DEFAULT_MAX_RETRIES,
        retry_delay: float = RetryHandlerOption.DEFAULT_DELAY,
        max_concurrent_per_mailbox: int = MAX_CONCURRENT_REQUESTS_PER_MAILBOX,
    ) -> None:
        """Build the SDK client; nothing is sent until the first request."""
        self._credential = credential
        self._base_url = normalize_base_url(base_url)
        self._service, self._http_client = build_graph_service_client(
            credential,
            base_url=self._base_url,
            transport=transport,
            timeout=timeout,
            max_retries=max_retries,
            retry_delay=retry_delay,
        )
        self._limiter = MailboxConcurrencyLimiter(max_concurrent_per_mailbox)

    @property
    def service(self) -> GraphServiceClient:
        """The msgraph ``GraphServiceClient`` (``client.service.users.by_user_id(mailbox)...``)."""
        return self._service

    @property
    def base_url(self) -> str:
        """The Graph base URL requests go to (no trailing slash)."""
        return self._base_url

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The httpx client behind the SDK (its middleware included), for streaming downloads the SDK would buffer.

        Send only requests built by the SDK's request adapter (``convert_to_native_async``), so they carry the
        token, and never log their headers.
        """
        return self._http_client

    @property
    def limiter(self) -> MailboxConcurrencyLimiter:
        """The per-mailbox concurrency limiter every request goes through."""
        return self._limiter

    @asynccontextmanager
    async def call(self, mailbox: str, *, doing: str) -> AsyncIterator[None]:
        """Hold a concurrency slot for ``mailbox`` and translate Graph/identity errors raised in the body.

        ``doing`` completes the sentence "<doing> <mailbox>: <cause>. <what to do>", e.g. ``"sending as"`` or
        ``"listing the inbox of"``::

            async with client.call(mailbox, doing="sending as"):
                await client.service.users.by_user_id(mailbox).send_mail.post(body)
        """
        async with self._limiter.slot(mailbox):
            try:
                yield
            except (ODataError, APIError, ClientAuthenticationError, httpx.TransportError) as exc:
                raise translate_graph_error(exc, doing=doing, mailbox=mailbox) from exc

    async def aclose(self) -> None:
        """Close the HTTP client (not the credential)."""
        await self._http_client.aclose()

    async def __aenter__(self) -> Self:
        """``async with GraphClient(...) as client``."""
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the HTTP client."""
        await self.aclose()


# --- error translation -------------------------------------------------------------------------------------------

_AADSTS = re.compile(r"AADSTS(\d+)")
_TRACE_ID = re.compile(r"Trace ID: ([0-9a-fA-F-]{36})")
_AADSTS_ADVICE = {
    "7000222": (
        "the client secret has expired",
        "Create a new secret ('pulumi up' on the tenant stack rotates it) and update AZURE_CLIENT_SECRET",
    ),
    "7000215": (
        "the client secret is wrong",
        "Use the secret's value, not its id, and check AZURE_CLIENT_SECRET against the stack's current secret",
    ),
    "700016": (
        "the application was not found in the tenant",
        "Check AZURE_CLIENT_ID and AZURE_TENANT_ID, and that the app is registered (and consented) in that tenant",
    ),
    "90002": (
        "the tenant was not found",
        "Check AZURE_TENANT_ID (the directory id or a verified domain) and that the tenant is in this cloud",
    ),
    "700027": (
        "the certificate is not registered on the app or has expired",
        "Upload the current certificate to the app registration ('pulumi up') and check AZURE_CLIENT_CERTIFICATE_PATH",
    ),
    "70021": (
        "no federated identity credential on the app matches the presented token",
        "Check the federated credential's issuer, subject and audience in the tenant stack",
    ),
}


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if value is None and isinstance(headers, Mapping):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    if isinstance(value, (set, list, tuple)):
        value = next(iter(value), None)
    return str(value) if value is not None else None


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # noqa: PLC0415 - rare path

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _subject(doing: str, mailbox: str | None) -> str:
    return f"{doing} {mailbox}" if mailbox else doing


def _with_request_id(text: str, request_id: str | None) -> str:
    return f"{text} (request-id {request_id})" if request_id else text


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    head = text.split(". ", 1)[0]
    return head.rstrip(".")


def _translate_authentication(exc: ClientAuthenticationError, subject: str) -> AuthenticationError:
    text = str(exc.message or exc)
    match = _AADSTS.search(text)
    trace = _TRACE_ID.search(text)
    request_id = trace.group(1) if trace else None
    if match is None:
        message = (
            f"{subject}: no access token could be obtained ({_first_sentence(text)}). Configure a credential: "
            "AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or "
            "AZURE_FEDERATED_TOKEN_FILE, or run where a managed identity is available"
        )
        return AuthenticationError(_with_request_id(message, request_id), status=None, code=None, request_id=request_id)
    code = f"AADSTS{match.group(1)}"
    advice = _AADSTS_ADVICE.get(match.group(1))
    if advice is None:
        detail = _first_sentence(text[match.start() :])
        message = f"{subject}: Microsoft Entra refused the token request ({detail}). Check the credential settings"
    else:
        cause, what_to_do = advice
        message = f"{subject}: {cause} ({code}). {what_to_do}"
    return AuthenticationError(_with_request_id(message, request_id), code=code, request_id=request_id)


def translate_graph_error(  # noqa: C901, PLR0911, PLR0912 - one branch per documented Graph failure
    exc: BaseException, *, doing: str, mailbox: str | None = None
) -> GraphError:
    """Turn an SDK, HTTP or azure-identity exception into mailplane's actionable :class:`GraphError` tree.

    ``doing`` + ``mailbox`` start the message ("sending as support@fabrikam.com: ..."). The message carries the
    Graph error code and the request-id, never a token or an Authorization header. Raise the result
    ``from exc``. Exceptions of other types become a plain :class:`GraphError` naming their type.
    """
    subject = _subject(doing, mailbox)
    if isinstance(exc, ClientAuthenticationError):
        return _translate_authentication(exc, subject)
    if isinstance(exc, httpx.TimeoutException):
        return GraphError(
            f"{subject}: Graph did not answer in time ({type(exc).__name__}). The request may still have been "
            "carried out: retry only what is safe to repeat (a send needs its idempotency key)"
        )
    if isinstance(exc, httpx.TransportError):
        return GraphError(
            f"{subject}: could not reach Microsoft Graph ({type(exc).__name__}: {exc}). Check the network, proxy "
            "and the configured Graph base URL"
        )
    if not isinstance(exc, APIError):
        return GraphError(f"{subject}: unexpected {type(exc).__name__}: {exc}")
    status = exc.response_status_code
    headers = exc.response_headers
    code: str | None = None
    detail = ""
    request_id = _header(headers, "request-id")
    if isinstance(exc, ODataError) and exc.error is not None:
        code = exc.error.code
        detail = exc.error.message or ""
        inner = exc.error.inner_error
        if inner is not None and inner.request_id:
            request_id = inner.request_id
    cause = f"{status} {code}" if code else f"{status}"
    kwargs: dict[str, Any] = {"status": status, "code": code, "request_id": request_id}
    if code == "MailboxNotEnabledForRESTAPI":
        message = (
            f"{subject}: the mailbox cannot be used through Graph ({cause}: it is hosted on-premises in a hybrid "
            "setup, has no Exchange Online license, or is inactive or soft-deleted). Use a mailbox in Exchange "
            "Online: license or migrate it (shared mailboxes need no license but must be in the cloud)"
        )
        return MailboxNotEnabledError(_with_request_id(message, request_id), **kwargs)
    if status == 403 and code == "ErrorAccessDenied":  # noqa: PLR2004 - Forbidden
        message = (
            f"{subject}: {cause} (the app is not allowed on this mailbox: it is outside the app's Exchange RBAC "
            "scope, or the Mail role is not assigned). Run 'mailplane doctor', or check the management role "
            "assignment for the app's service principal scoped to this mailbox; Exchange applies changes within "
            "30 minutes to 2 hours"
        )
        return AccessDeniedError(_with_request_id(message, request_id), **kwargs)
    if status == 403:  # noqa: PLR2004 - Forbidden
        message = (
            f"{subject}: {cause}{': ' + _first_sentence(detail) if detail else ''} (the token carries no permission "
            "for this call). Check that admin consent was granted for the app's Mail permissions ('mailplane plan' "
            "shows what the stack grants)"
        )
        return AccessDeniedError(_with_request_id(message, request_id), **kwargs)
    if status == 401:  # noqa: PLR2004 - Unauthorized
        message = (
            f"{subject}: Graph rejected the access token ({cause}{': ' + _first_sentence(detail) if detail else ''}). "
            "Check that the credential is for the right tenant and app and that the token is for "
            f"{GRAPH_SCOPE.removesuffix('/.default')}"
        )
        return AuthenticationError(_with_request_id(message, request_id), **kwargs)
    if status == 429:  # noqa: PLR2004 - Too Many Requests
        retry_after = retry_after_seconds(_header(headers, "Retry-After"))
        wait = f"; the service asked to wait {retry_after:g} s" if retry_after is not None else ""
        message = (
            f"{subject}: Graph is throttling this mailbox ({cause}) and the retries ran out{wait}. Try again later "
            "and send fewer requests at once to this mailbox"
        )
        return ThrottledError(_with_request_id(message, request_id), retry_after=retry_after, **kwargs)
    if not isinstance(exc, ODataError):
        message = (
            f"{subject}: Graph answered {status} with a body that is not a Graph error (a proxy or gateway page?). "
            "Check the Graph base URL and any proxy in between"
        )
        return GraphError(_with_request_id(message, request_id), **kwargs)
    if status in (502, 503, 504):
        message = f"{subject}: Graph is unavailable ({cause}). Try again later"
        return GraphError(_with_request_id(message, request_id), **kwargs)
    message = f"{subject}: {cause}{': ' + _first_sentence(detail) if detail else ''}"
    return GraphError(_with_request_id(message, request_id), **kwargs)
