"""What the importer asks of Graph for one shared mailbox, through msgraph-sdk.

Every request asks for immutable ids (``Prefer: IdType="ImmutableId"``), so a message keeps its id when it is moved
to the failure folder and back, and the store's (mailbox, immutable id) key stays valid.

* Finding mail: delta pages on the folder (:meth:`MailboxGraph.delta_pages`), with the message fields the importer
  needs selected up front (``internetMessageHeaders`` is only returned when selected), so importing a message with
  no attachments needs no request of its own. The unread listing (:meth:`MailboxGraph.unread_pages`) is the fallback
  and what recovery uses.
* Marking read: ``$batch`` of up to 20 ``PATCH {"isRead": true}`` items (:meth:`MailboxGraph.mark_read`). The items
  of one batch are chained with ``dependsOn`` so each batch keeps one request in flight on the mailbox and several
  batches run side by side within the per-mailbox concurrency limit. msgraph-core serializes the chaining field as
  ``depends_on``, which Graph ignores (microsoftgraph/msgraph-sdk-python-core#996), so the batch body is built here
  and sent through the SDK's request adapter (same authentication, middleware and error handling). One message
  alone is marked with a plain ``PATCH`` (a batch would add its envelope's round trip).
* Attachments: listed without their content (sizes are known before anything is downloaded), then each one is
  streamed from ``/$value`` in chunks (:meth:`MailboxGraph.stream_attachment`); nothing holds a whole file in memory.
* Moving: ``move`` to the failure folder (created if missing) and back.

Transient failures (429 after the SDK's own retries, 5xx, dropped connections) are retried here a few times with
backoff for requests that are safe to repeat; what still fails surfaces as :class:`~mailplane.exceptions.GraphError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.item.mail_folders.item.child_folders.child_folders_request_builder import (
    ChildFoldersRequestBuilder,
)
from msgraph.generated.users.item.mail_folders.item.messages.delta.delta_request_builder import DeltaRequestBuilder
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder
from msgraph.generated.users.item.mail_folders.mail_folders_request_builder import MailFoldersRequestBuilder
from msgraph.generated.users.item.messages.item.attachments.attachments_request_builder import (
    AttachmentsRequestBuilder,
)
from msgraph.generated.users.item.messages.item.message_item_request_builder import MessageItemRequestBuilder
from msgraph.generated.users.item.messages.item.move.move_post_request_body import MovePostRequestBody

from mailplane.exceptions import GraphError, ThrottledError
from mailplane.graph import IMMUTABLE_ID_PREFERENCE, retry_after_seconds
from mailplane.integration import WELL_KNOWN_FOLDERS

if TYPE_CHECKING:
    from mailplane.graph import GraphClient

__all__ = [
    "BATCH_LIMIT",
    "MESSAGE_FIELDS",
    "AttachmentInfo",
    "GraphMessage",
    "MailboxGraph",
    "MarkReadResult",
    "MessagePage",
    "SyncStateLostError",
    "parse_graph_datetime",
]

_T = TypeVar("_T")

BATCH_LIMIT = 20
"""Graph's maximum number of requests in one ``$batch``."""

MESSAGE_FIELDS = (
    "id",
    "subject",
    "body",
    "bodyPreview",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "replyTo",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageId",
    "internetMessageHeaders",
    "conversationId",
    "importance",
    "categories",
    "hasAttachments",
    "isRead",
    "parentFolderId",
)
"""Fields selected when finding messages: everything an import needs, so no per-message GET is required."""

_SYNC_STATE_LOST = frozenset({"syncstatenotfound", "resyncrequired", "invalidsyncstatedata", "syncstateinvalid"})
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_DOWNLOAD_CHUNK = 64 * 1024


class SyncStateLostError(GraphError):
    """The delta link is no longer valid (expired or reset by the service): the folder must be synced from scratch."""


@dataclass(frozen=True)
class GraphMessage:
    """A message as Graph's JSON has it (``raw``), with the few fields the importer branches on.

    Pages are parsed as plain JSON rather than into msgraph's generated models: building a ``Message`` model costs
    about 10 ms of CPU (its field table is rebuilt for every object), which would cap an importer at ~100 messages
    per second whatever Graph allows. Requests still go through msgraph's request builders and adapter.
    """

    raw: dict[str, Any]

    @property
    def id(self) -> str | None:
        """The (immutable) id."""
        value = self.raw.get("id")
        return str(value) if value else None

    @property
    def is_read(self) -> bool:
        """Whether the message is read."""
        return bool(self.raw.get("isRead"))

    @property
    def conversation_id(self) -> str | None:
        """Graph's conversation id."""
        value = self.raw.get("conversationId")
        return str(value) if value else None

    @property
    def internet_message_id(self) -> str | None:
        """The Message-ID header as Graph reports it."""
        value = self.raw.get("internetMessageId")
        return str(value) if value else None

    @property
    def received_date_time(self) -> dt.datetime | None:
        """When it was received (UTC)."""
        return parse_graph_datetime(self.raw.get("receivedDateTime"))


def parse_graph_datetime(value: object) -> dt.datetime | None:
    """A Graph timestamp (``2026-03-02T08:00:00Z``) as an aware datetime; ``None`` when missing or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MessagePage:
    """One page of messages.

    ``delta_link`` is set on the last page of a delta round, ``removed`` lists ids gone, ``last`` says no page follows.
    """

    messages: tuple[GraphMessage, ...]
    removed: tuple[str, ...] = ()
    delta_link: str | None = None
    last: bool = True


@dataclass(frozen=True)
class AttachmentInfo:
    """An attachment's metadata, known before its content is downloaded."""

    id: str
    name: str
    content_type: str | None
    size: int
    is_inline: bool
    content_id: str | None
    is_file: bool


@dataclass(frozen=True)
class MarkReadResult:
    """Which ids were marked read, which no longer exist, and which could not be marked this time (with why)."""

    done: tuple[str, ...]
    gone: tuple[str, ...]
    failed: dict[str, str]


def _is_transient(error: GraphError) -> bool:
    if isinstance(error, ThrottledError) or isinstance(error.__cause__, httpx.TransportError):
        return True  # throttled, or no (complete) answer: a dropped connection or a timeout
    return error.status in _RETRYABLE_STATUS


class MailboxGraph:
    """Graph calls for one mailbox (see the module docstring). ``attempts`` bounds retries of transient failures."""

    def __init__(
        self,
        client: GraphClient,
        mailbox: str,
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.25,
        page_size: int = 500,
        first_page_size: int = 50,
    ) -> None:
        """Page sizes asked for with ``Prefer: odata.maxpagesize``: a delta round's first page, then every page."""
        self._client = client
        self.mailbox = mailbox
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._page_size = page_size
        self._first_page_size = first_page_size
        self._user = client.service.users.by_user_id(mailbox)
        self._select_content_id = True

    async def _retrying(self, doing: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``call`` in a concurrency slot, retrying transient failures with backoff."""
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._client.call(self.mailbox, doing=doing):
                    return await call()
            except SyncStateLostError:
                raise
            except GraphError as error:
                if attempt == self._attempts or not _is_transient(error):
                    raise
                delay = error.retry_after if isinstance(error, ThrottledError) and error.retry_after else None
                await asyncio.sleep(delay or self._backoff * 2 ** (attempt - 1) * (0.5 + random.random()))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_json(self, info: RequestInformation) -> dict[str, Any]:
        info.headers.try_add("Accept", "application/json")
        adapter: Any = self._client.service.request_adapter  # its stub declares no return value for this call
        _pin_url(info, adapter.base_url)
        raw = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        data = json.loads(raw or b"{}")
        return data if isinstance(data, dict) else {}

    # --- finding messages ----------------------------------------------------------------------------------------

    async def delta_pages(self, folder: str, delta_link: str | None) -> AsyncIterator[MessagePage]:
        """Pages of one delta round: from ``delta_link`` (changes since) or from scratch. Raises SyncStateLostError.

        The first page is asked for small (``first_page_size``) so importing and marking read start while Graph is
        still building the later, full-size pages.
        """
        builder = self._user.mail_folders.by_mail_folder_id(folder).messages.delta
        next_url = delta_link
        first = True
        while True:
            url = next_url
            config = DeltaRequestBuilder.DeltaRequestBuilderGetRequestConfiguration()
            config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
            size = min(self._first_page_size, self._page_size) if first else self._page_size
            config.headers.add("Prefer", f"odata.maxpagesize={size}")
            if url is None:
                # The query goes on the first request only; from then on it is encoded in the links.
                config.query_parameters = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                    select=list(MESSAGE_FIELDS)
                )

            async def fetch(url: str | None = url, config: Any = config) -> dict[str, Any]:
                request = builder if url is None else builder.with_url(url)
                info = request.to_get_request_information(config)
                return await _translate_lost_sync_state(self._get_json(info), folder, self.mailbox)

            page = await self._retrying(f"syncing folder {folder!r} of", fetch)
            first = False
            messages, removed = [], []
            for item in page.get("value") or []:
                if not isinstance(item, dict):
                    continue
                if "@removed" in item:
                    removed.append(str(item.get("id") or ""))
                else:
                    messages.append(GraphMessage(item))
            next_url = page.get("@odata.nextLink")
            delta = page.get("@odata.deltaLink")
            yield MessagePage(tuple(messages), tuple(removed), delta, last=not next_url)
            if not next_url:
                return

    async def unread_pages(
        self, folder: str, *, received_after: dt.datetime | None = None
    ) -> AsyncIterator[MessagePage]:
        """Pages of the unread messages in ``folder``, oldest first (the fallback when delta is unavailable)."""
        builder = self._user.mail_folders.by_mail_folder_id(folder).messages
        config = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration()
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
        after = (received_after or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).astimezone(dt.UTC)
        # Every $orderby property must appear in $filter, in the same order (InefficientFilter otherwise).
        config.query_parameters = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
            filter=f"isRead eq false and receivedDateTime ge {after.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            orderby=["isRead", "receivedDateTime asc"],
            select=list(MESSAGE_FIELDS),
            top=self._page_size,
        )
        next_url: str | None = None
        while True:
            url = next_url

            async def fetch(url: str | None = url) -> dict[str, Any]:
                if url is None:
                    return await self._get_json(builder.to_get_request_information(config))
                plain = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration()
                plain.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
                return await self._get_json(builder.with_url(url).to_get_request_information(plain))

            page = await self._retrying(f"listing unread messages in folder {folder!r} of", fetch)
            next_url = page.get("@odata.nextLink")
            yield MessagePage(
                tuple(GraphMessage(m) for m in page.get("value") or [] if isinstance(m, dict)), last=not next_url
            )
            if not next_url:
                return

    async def get_message(self, message_id: str) -> GraphMessage | None:
        """One message with the import fields, or ``None`` when it no longer exists."""
        config: RequestConfiguration[Any] = RequestConfiguration(
            query_parameters=MessageItemRequestBuilder.MessageItemRequestBuilderGetQueryParameters(
                select=list(MESSAGE_FIELDS)
            )
        )
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
        builder = self._user.messages.by_message_id(message_id)
        try:
            return GraphMessage(
                await self._retrying(
                    "reading a message in", lambda: self._get_json(builder.to_get_request_information(config))
                )
            )
        except GraphError as error:
            if error.status == 404:  # noqa: PLR2004 - Not Found
                return None
            raise

    # --- attachments ---------------------------------------------------------------------------------------------

    async def list_attachments(self, message_id: str) -> list[AttachmentInfo]:
        """The message's attachments (inline ones included) without their content.

        ``contentId`` belongs to fileAttachment, not to the attachment base type the collection is declared with;
        if the service refuses to select it (400), the list is asked for again without it (and from then on).
        """
        builder = self._user.messages.by_message_id(message_id).attachments
        fields = ["id", "name", "contentType", "size", "isInline"]
        config = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetRequestConfiguration()
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
        config.query_parameters = AttachmentsRequestBuilder.AttachmentsRequestBuilderGetQueryParameters(
            select=[*fields, "contentId"] if self._select_content_id else fields
        )
        try:
            page = await self._retrying(
                "listing the attachments of a message in",
                lambda: self._get_json(builder.to_get_request_information(config)),
            )
        except GraphError as error:
            if error.status != 400 or not self._select_content_id:  # noqa: PLR2004 - Bad Request
                raise
            self._select_content_id = False
            return await self.list_attachments(message_id)
        return [_attachment_info(item) for item in page.get("value") or [] if isinstance(item, dict)]

    async def stream_attachment(
        self, message_id: str, attachment_id: str, sink: Callable[[bytes], Awaitable[None]]
    ) -> None:
        """Stream one attachment's bytes (``/$value``) into ``sink`` chunk by chunk; retried from the start."""
        adapter = self._client.service.request_adapter

        async def download() -> None:
            info = RequestInformation(
                Method.GET,
                "{+baseurl}/users/{user%2Did}/messages/{message%2Did}/attachments/{attachment%2Did}/$value",
                {"user%2Did": self.mailbox, "message%2Did": message_id, "attachment%2Did": attachment_id},
            )
            info.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
            _pin_url(info, adapter.base_url)
            request: httpx.Request = await adapter.convert_to_native_async(info)  # type: ignore[assignment]
            response = await self._client.http_client.send(request, stream=True)
            try:
                if response.status_code >= 400:  # noqa: PLR2004 - an error status
                    body = await response.aread()
                    raise _status_error(response, body)
                restart = getattr(sink, "restart", None)
                if restart is not None:
                    await restart()
                async for chunk in response.aiter_bytes(_DOWNLOAD_CHUNK):
                    await sink(chunk)
            finally:
                await response.aclose()

        await self._retrying("downloading an attachment from", download)

    # --- marking read, moving ------------------------------------------------------------------------------------

    async def mark_read(self, message_ids: Sequence[str]) -> MarkReadResult:
        """Mark up to 20 messages read in one chained ``$batch``; say which succeeded, vanished or failed.

        A single message is marked with a plain ``PATCH``: a batch envelope would cost a round trip of its own.
        """
        if not message_ids:
            return MarkReadResult((), (), {})
        if len(message_ids) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} messages per batch")
        if len(message_ids) == 1:
            return await self._mark_one_read(message_ids[0])
        adapter = self._client.service.request_adapter
        items: list[dict[str, Any]] = []
        by_item: dict[str, str] = {}
        for index, message_id in enumerate(message_ids, start=1):
            item_id = str(index)
            by_item[item_id] = message_id
            item: dict[str, Any] = {
                "id": item_id,
                "method": "PATCH",
                "url": f"/users/{quote(self.mailbox)}/messages/{quote(message_id, safe='')}",
                "headers": {"Content-Type": "application/json", "Prefer": IMMUTABLE_ID_PREFERENCE},
                "body": {"isRead": True},
            }
            if index > 1:
                item["dependsOn"] = [str(index - 1)]
            items.append(item)
        content = json.dumps({"requests": items}).encode()

        async def post() -> Any:
            info = _pin_url(RequestInformation(Method.POST, "{+baseurl}/$batch", {}), adapter.base_url)
            info.headers.try_add("Content-Type", "application/json")
            info.headers.try_add("Accept", "application/json")
            info.content = content
            return await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})

        raw = await self._retrying("marking messages read in", post)
        return _mark_read_result(message_ids, by_item, raw)

    async def _mark_one_read(self, message_id: str) -> MarkReadResult:
        adapter = self._client.service.request_adapter
        content = json.dumps({"isRead": True}).encode()

        async def patch() -> None:
            info = RequestInformation(
                Method.PATCH,
                "{+baseurl}/users/{user%2Did}/messages/{message%2Did}",
                {"user%2Did": self.mailbox, "message%2Did": message_id},
            )
            _pin_url(info, adapter.base_url)
            info.headers.try_add("Content-Type", "application/json")
            info.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
            info.content = content
            await adapter.send_no_response_content_async(info, {"XXX": ODataError})

        try:
            await self._retrying("marking a message read in", patch)
        except GraphError as error:
            if error.status == 404:  # noqa: PLR2004 - the message was deleted meanwhile
                return MarkReadResult((), (message_id,), {})
            # As for a batch item: not marked this time, the caller may try again.
            reason = f"{error.status or ''} {error.code or ''}".strip() or str(error)
            return MarkReadResult((), (), {message_id: reason})
        return MarkReadResult((message_id,), (), {})

    async def move(self, message_id: str, folder_id: str) -> bool:
        """Move a message (its immutable id stays). ``False`` when the message no longer exists."""
        builder = self._user.messages.by_message_id(message_id).move
        config: RequestConfiguration[Any] = RequestConfiguration()
        config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)

        async def post() -> Any:
            return await builder.post(MovePostRequestBody(destination_id=folder_id), config)

        try:
            await self._retrying("moving a message in", post)
        except GraphError as error:
            if error.status == 404:  # noqa: PLR2004 - Not Found
                return False
            raise
        return True

    async def find_folder(self, display_name: str, *, parent: str | None = None) -> str | None:
        """The id of the folder named ``display_name`` (case-insensitive), or ``None``.

        Looked up among the top-level folders, or in ``parent`` (an id or a well-known name) when given.
        """
        escaped = display_name.replace("'", "''")
        folders: Any
        if parent is None:
            folders = self._user.mail_folders
            parameters: Any = MailFoldersRequestBuilder.MailFoldersRequestBuilderGetQueryParameters
        else:
            folders = self._user.mail_folders.by_mail_folder_id(parent).child_folders
            parameters = ChildFoldersRequestBuilder.ChildFoldersRequestBuilderGetQueryParameters
        config: RequestConfiguration[Any] = RequestConfiguration(
            query_parameters=parameters(filter=f"displayName eq '{escaped}'", include_hidden_folders="true")
        )
        found = await self._retrying(f"looking up the folder {display_name!r} of", lambda: folders.get(config))
        for folder in (found.value if found is not None else None) or []:
            if folder.id and (folder.display_name or "").lower() == display_name.lower():
                return folder.id
        return None

    async def resolve_folder(self, folder: str) -> str:
        """What Graph takes for ``folder`` in a URL: a well-known name as it is, display names as the folder's id.

        Graph's ``mailFolders/{id}`` takes ids and well-known names only; the config also allows a top-level display
        name, or a path below a well-known or top-level folder (``Inbox/Support``), looked up one level at a time.
        """
        first, *rest = folder.split("/")
        current = first if first.lower() in WELL_KNOWN_FOLDERS else await self.find_folder(first)
        walked = first
        for name in rest:
            if current is None:
                break
            current = await self.find_folder(name, parent=current)
            walked = f"{walked}/{name}"
        if current is None:
            looking = "" if walked == folder else f" (looking for {folder!r})"
            raise GraphError(
                f"importing from {self.mailbox}: it has no folder {walked!r}{looking}. Create the folder, or set the "
                "account's 'folder' to an existing one: a well-known name such as 'inbox', a top-level folder's name, "
                "or a path such as 'Inbox/Support'",
                status=404,
                code="ErrorItemNotFound",
            )
        return current

    async def ensure_folder(self, display_name: str) -> str:
        """The id of the top-level folder named ``display_name``, created if missing (a race is harmless)."""
        folders = self._user.mail_folders
        found_id = await self.find_folder(display_name)
        if found_id is not None:
            return found_id
        try:
            created = await self._retrying(
                "creating the failure folder in", lambda: folders.post(MailFolder(display_name=display_name))
            )
        except GraphError as error:
            if error.code != "ErrorFolderExists":
                raise
            return await self.ensure_folder(display_name)
        if created is None or not created.id:
            raise GraphError(f"creating the failure folder {display_name!r} in {self.mailbox}: Graph returned no id")
        return created.id

    async def folder_id(self, folder: str) -> str:
        """The id of a folder by well-known name or id."""
        found = await self._retrying(
            "reading a folder of", lambda: self._user.mail_folders.by_mail_folder_id(folder).get()
        )
        if found is None or not found.id:
            raise GraphError(f"reading folder {folder!r} of {self.mailbox}: Graph returned no id")
        return found.id


def _pin_url(info: RequestInformation, base_url: str) -> RequestInformation:
    """Expand ``info``'s URL template once and keep the result.

    kiota expands the template, percent-encoding it character by character, every time the URL is read: three times
    per request, ~0.1 ms each for a URL with a message id.
    """
    info.path_parameters["baseurl"] = base_url  # as the adapter sets it when sending
    info.url = info.url
    return info


def _attachment_info(item: dict[str, Any]) -> AttachmentInfo:
    odata_type = str(item.get("@odata.type") or "").lower()
    size = item.get("size")
    return AttachmentInfo(
        id=str(item.get("id") or ""),
        name=str(item.get("name") or "attachment"),
        content_type=item.get("contentType") if isinstance(item.get("contentType"), str) else None,
        size=int(size) if isinstance(size, int | float) else 0,
        is_inline=bool(item.get("isInline")),
        content_id=item.get("contentId") if isinstance(item.get("contentId"), str) else None,
        is_file=odata_type in ("", "#microsoft.graph.fileattachment"),
    )


async def _translate_lost_sync_state(call: Awaitable[_T], folder: str, mailbox: str) -> _T:
    try:
        return await call
    except ODataError as exc:
        code = (exc.error.code or "").lower() if exc.error else ""
        if exc.response_status_code == 410 or code in _SYNC_STATE_LOST:  # noqa: PLR2004 - Gone
            raise SyncStateLostError(
                f"syncing folder {folder!r} of {mailbox}: the delta link is no longer valid "
                f"({exc.response_status_code} {code or 'Gone'}). Syncing the folder again from scratch",
                status=exc.response_status_code,
                code=code,
            ) from exc
        raise


def _mark_read_result(message_ids: Sequence[str], by_item: dict[str, str], raw: bytes | None) -> MarkReadResult:
    responses = json.loads(raw or b"{}").get("responses") or []
    done, gone, failed = [], [], {}
    seen = set()
    for response in responses:
        message_id = by_item.get(str(response.get("id")))
        if message_id is None:
            continue
        seen.add(message_id)
        status = int(response.get("status") or 0)
        if 200 <= status < 300:  # noqa: PLR2004 - success
            done.append(message_id)
        elif status == 404:  # noqa: PLR2004 - the message was deleted meanwhile
            gone.append(message_id)
        else:
            error = (response.get("body") or {}).get("error") or {}
            failed[message_id] = f"{status} {error.get('code') or ''}".strip()
    for message_id in message_ids:
        if message_id not in seen:
            failed[message_id] = "no answer in the batch response"
    return MarkReadResult(tuple(done), tuple(gone), failed)


def _status_error(response: httpx.Response, body: bytes) -> GraphError:
    code = None
    with contextlib.suppress(ValueError, AttributeError):
        code = json.loads(body).get("error", {}).get("code")
    status = response.status_code
    if status == 429:  # noqa: PLR2004 - Too Many Requests
        return ThrottledError(
            f"downloading an attachment: Graph is throttling ({status} {code or ''}). Retrying later",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            status=status,
            code=code,
        )
    return GraphError(
        f"downloading an attachment: Graph answered {status} {code or ''}".rstrip(),
        status=status,
        code=code,
        request_id=response.headers.get("request-id"),
    )
