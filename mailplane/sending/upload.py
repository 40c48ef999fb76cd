"""Chunked upload of a large attachment to an Outlook upload session: sequential ``PUT``s with ``Content-Range``.

The upload URL is pre-authenticated: no ``Authorization`` header goes with it (sending the Graph token to it would
hand the token to another host). Chunks are at most 4 MB, as Outlook asks (the default, 3.75 MiB, is a multiple of
320 KiB, which OneDrive needs too). Each answer (200 with ``nextExpectedRanges``, 201 at the end) is checked; any
other answer, or a lost connection, raises :class:`UploadError`, after which the caller checks whether the
attachment arrived and otherwise starts a new session (a chunk whose answer was lost cannot be told apart from one
that never arrived).

msgraph-core's ``LargeFileUploadTask`` is not used: it fails on Outlook's ``nextExpectedRanges: ["4096"]`` form
(``int('')``) after the first chunk.
"""

from __future__ import annotations

import httpx

from mailplane.exceptions import GraphError

__all__ = ["DEFAULT_CHUNK_BYTES", "MAX_CHUNK_BYTES", "UploadError", "upload_in_chunks"]

_CHUNK_UNIT = 320 * 1024
DEFAULT_CHUNK_BYTES = 12 * _CHUNK_UNIT  # 3.75 MiB: under Outlook's 4 MB per request
MAX_CHUNK_BYTES = 4 * 1024 * 1024
_CONTINUE, _CREATED = 200, 201


class UploadError(GraphError):
    """A chunk of an upload session was not accepted (or its answer was lost)."""


def _next_offset(response: httpx.Response, default: int) -> int:
    try:
        ranges = response.json().get("nextExpectedRanges") or []
    except ValueError:
        return default
    if not ranges:
        return default
    start = str(ranges[0]).split("-", 1)[0]
    return int(start) if start.isdigit() else default


async def upload_in_chunks(
    http: httpx.AsyncClient, upload_url: str, content: bytes, *, name: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> None:
    """PUT ``content`` to ``upload_url`` in chunks; return when the service answered 201 (the attachment exists)."""
    if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk size {chunk_bytes} must be 1 to {MAX_CHUNK_BYTES} bytes")
    total = len(content)
    offset = 0
    doing = f"uploading {name}"
    while offset < total:
        end = min(offset + chunk_bytes, total) - 1
        headers = {"Content-Range": f"bytes {offset}-{end}/{total}", "Content-Type": "application/octet-stream"}
        try:
            response = await http.put(upload_url, content=content[offset : end + 1], headers=headers)
        except httpx.HTTPError as error:
            raise UploadError(
                f"{doing}: the connection failed at bytes {offset}-{end} of {total} ({type(error).__name__}). "
                "The send is retried"
            ) from error
        if response.status_code == _CREATED:
            return
        if response.status_code != _CONTINUE:
            raise UploadError(
                f"{doing}: the upload session answered {response.status_code} at bytes {offset}-{end} of {total}. "
                "The send is retried",
                status=response.status_code,
            )
        offset = _next_offset(response, end + 1)
    raise UploadError(f"{doing}: all {total} bytes were sent but the session never confirmed the attachment")
