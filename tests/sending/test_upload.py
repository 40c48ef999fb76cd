"""Chunked upload to an upload session: ranges, the service's nextExpectedRanges, failures, no token sent."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from mailplane.sending.upload import UploadError, upload_in_chunks


class _Session:
    """An upload session that keeps what it received; ``rewind_once`` makes it ask for a range again."""

    def __init__(self, size: int, *, rewind_once: int | None = None, fail_at: int | None = None) -> None:
        self.size = size
        self.received = bytearray()
        self.ranges: list[str] = []
        self.authorization: list[str | None] = []
        self._rewind = rewind_once
        self._fail_at = fail_at

    def __call__(self, request: httpx.Request) -> httpx.Response:
        content_range = request.headers["content-range"]
        self.ranges.append(content_range)
        self.authorization.append(request.headers.get("authorization"))
        start, _end, total = (int(g) for g in re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", content_range).groups())
        if self._fail_at is not None and start >= self._fail_at:
            return httpx.Response(416, json={"error": {"code": "ErrorInvalidRange"}})
        if start != len(self.received):
            return httpx.Response(416)
        self.received.extend(request.content)
        if self._rewind is not None and len(self.received) >= self._rewind:
            del self.received[self._rewind - 10 :]
            self._rewind = None
        if len(self.received) == total:
            return httpx.Response(201, headers={"Location": "https://x/attachments/1"})
        return httpx.Response(200, json={"nextExpectedRanges": [f"{len(self.received)}-"]})


def _upload(session, content, chunk):
    async def run():
        async with httpx.AsyncClient(transport=httpx.MockTransport(session)) as http:
            await upload_in_chunks(
                http, "https://upload.example/s?authtoken=t", content, name="a.bin", chunk_bytes=chunk
            )

    asyncio.run(run())


def test_content_in_chunks__sequential_ranges_then_201__all_bytes_arrive_without_a_token():
    content = bytes(range(256)) * 40  # 10,240 bytes
    session = _Session(len(content))
    _upload(session, content, 4096)
    assert session.ranges == ["bytes 0-4095/10240", "bytes 4096-8191/10240", "bytes 8192-10239/10240"]
    assert bytes(session.received) == content
    assert session.authorization == [None, None, None]


def test_service_asks_for_a_range_again__upload_continues_from_there():
    content = bytes(range(256)) * 40
    session = _Session(len(content), rewind_once=4096)
    _upload(session, content, 4096)
    assert session.ranges[1] == "bytes 4086-8181/10240"
    assert bytes(session.received) == content


def test_range_refused__upload_error_names_the_file_and_the_range():
    content = b"x" * 10_000
    with pytest.raises(UploadError, match=r"uploading a\.bin: the upload session answered 416 at bytes 4096-8191"):
        _upload(_Session(len(content), fail_at=4096), content, 4096)


def test_chunk_over_4_mb__refused_before_any_request():
    with pytest.raises(ValueError, match="chunk size"):
        _upload(_Session(10), b"x" * 10, 5 * 1024 * 1024)
