"""The API response log of a send: every HTTP exchange with Graph, redacted before it is kept.

:class:`RecordingTransport` wraps an httpx transport (the lowest layer, under msgraph's middleware, so retries and
429s show up as separate entries). What is kept never holds a secret: ``Authorization``, cookies and any header
whose name mentions a token, secret, key, password or signature are replaced by ``[redacted]``; so are query
parameters with such names (the pre-authenticated ``uploadUrl`` carries one) and token fields in bodies. Bodies are
cut to :data:`MAX_BODY_CHARS` characters; request bodies (the message itself) are not kept.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from mailplane.sending.store import ResponseLogEntry

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["MAX_BODY_CHARS", "REDACTED", "RecordingTransport", "redact_headers", "redact_text", "redact_url"]

REDACTED = "[redacted]"
MAX_BODY_CHARS = 2000
_SENSITIVE_NAME = re.compile(
    r"authorization|cookie|token|secret|password|passwd|signature|(^|[-_])sig($|[-_])|(^|[-_])key($|[-_])|"
    r"apikey|api-key|assertion|^code$",
    re.IGNORECASE,
)
# "name": "value" pairs in JSON, and name=value pairs in query strings or form bodies, for sensitive names.
_JSON_FIELD = re.compile(
    r'("(?:[A-Za-z_]*(?:token|secret|password|assertion)[A-Za-z_]*)"\s*:\s*)"(?:[^"\\]|\\.)*"', re.IGNORECASE
)
_PAIR = re.compile(r"((?:[A-Za-z_]*(?:token|secret|password|assertion|sig)[A-Za-z_]*)=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with the values of sensitive query parameters replaced."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [
        (k, REDACTED if _SENSITIVE_NAME.search(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe="$,()'[] ")))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers (lower-cased names) with sensitive values replaced; URLs in Location headers redacted too."""
    out = {}
    for name, value in headers.items():
        lowered = name.lower()
        if _SENSITIVE_NAME.search(lowered):
            out[lowered] = REDACTED
        elif lowered in {"location", "content-location"}:
            out[lowered] = redact_url(value)
        else:
            out[lowered] = value
    return out


def redact_text(text: str) -> str:
    """A body with token/secret fields, sensitive query parameters and bearer tokens replaced."""
    text = _JSON_FIELD.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)
    text = _PAIR.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


class RecordingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that records a redacted :class:`ResponseLogEntry` for every request it carries.

    ``entries`` is the log since the last :meth:`clear`; at most ``max_entries`` are kept (the newest).
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | None = None, *, max_entries: int = 200) -> None:
        """``inner`` does the actual I/O (default: a plain ``httpx.AsyncHTTPTransport``)."""
        self._inner = inner or httpx.AsyncHTTPTransport()
        self._max_entries = max_entries
        self.entries: list[ResponseLogEntry] = []

    def clear(self) -> None:
        """Start a new log."""
        self.entries = []

    def _add(self, entry: ResponseLogEntry) -> None:
        self.entries.append(entry)
        del self.entries[: -self._max_entries]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Carry the request, record it and its answer (or the error), return the answer."""
        started = time.time()
        request_headers = redact_headers(dict(request.headers))
        url = redact_url(str(request.url))
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.HTTPError as error:
            self._add(ResponseLogEntry(started, request.method, url, None, request_headers, error=type(error).__name__))
            raise
        if response.is_stream_consumed:  # a transport that read the body already (httpx.MockTransport does)
            raw = response.content
        else:
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
            await response.aclose()
        try:
            text = httpx.Response(response.status_code, headers=response.headers, content=raw).text
        except (httpx.DecodingError, LookupError):
            text = f"<{len(raw)} bytes that could not be decoded>"
        self._add(
            ResponseLogEntry(
                started,
                request.method,
                url,
                response.status_code,
                request_headers,
                redact_headers(dict(response.headers)),
                redact_text(text[:MAX_BODY_CHARS]),
            )
        )
        # The body was consumed: hand on an identical response that carries it (still encoded, as on the wire).
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=raw,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()
