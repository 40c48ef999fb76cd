"""The Microsoft Graph v1.0 mail endpoints of the dev tenant, as msgraph-sdk sends and parses them.

:class:`GraphEmulator` is an ASGI endpoint for everything under ``/v1.0``. Requests become :class:`GraphRequest`s so
that ``$batch`` items run through exactly the same routing, throttling, faults and logging as top-level requests.
What is emulated and where it differs from the real service: ``docs/dev-tenant.md``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from starlette.requests import Request

from mailplane.devtenant.faults import Fault, FaultInjector
from mailplane.devtenant.mime import OutgoingMessage, ParsedAttachment, build_mime, parse_mime
from mailplane.devtenant.notifications import Notifier, validate_notification_url
from mailplane.devtenant.projection import (
    MESSAGE_PROPERTIES,
    attachment_json,
    folder_json,
    format_datetime,
    message_json,
    subscription_json,
)
from mailplane.devtenant.request_log import RequestLog, RequestRecord
from mailplane.devtenant.state import (
    ROOT_FOLDER,
    DeltaCursor,
    DevTenantState,
    Folder,
    GraphError,
    Mailbox,
    StoredMessage,
    Subscription,
    UploadSession,
    item_not_found,
    now_utc,
)
from mailplane.devtenant.throttling import MailboxThrottle

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = ["ConnectionDropped", "GraphEmulator", "GraphRequest", "GraphResponse"]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
MAX_BATCH_ITEMS = 20
BATCH_PARALLELISM = 4  # Outlook runs at most 4 items of a batch at a time
_PAGE_BUILD_CHUNK = 25  # messages projected between chances for other requests to run (see GraphEmulator.delta)
MAX_UPLOAD_SESSION_BYTES = 150 * 1024 * 1024
SUBSCRIPTION_MAX_MINUTES = 4230
_CLIENT_STATE_MAX = 128
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_\-+/=]{20,}$")
_JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
_DATETIME_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")


def _latest(times: list[float | None]) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


class ConnectionDropped(Exception):  # noqa: N818 - it is an event, not an error of the emulator
    """Raised to make the server close the connection without a complete response (injected fault)."""


@dataclass
class GraphRequest:
    """A request to ``/v1.0`` (top level or a ``$batch`` item), transport-neutral."""

    method: str
    path: str  # after /v1.0, percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    base_url: str  # http://127.0.0.1:PORT/v1.0
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_request_id: str = ""
    # Event-loop time from which the request's latency counts (None: when it is handled). A chained $batch item's
    # latency counts from the end of its dependency's, so the emulator's own processing between items does not add
    # up along a chain; ``latency_end`` is set once the latency has passed.
    latency_start: float | None = None
    latency_end: float | None = None

    def header(self, name: str) -> str | None:
        """Return a header value by (case-insensitive) name."""
        return self.headers.get(name.lower())

    @property
    def prefer(self) -> dict[str, str]:
        """``Prefer`` preferences (comma-joined or repeated headers), lower-case names, unquoted values."""
        out: dict[str, str] = {}
        for part in re.findall(r'(?:[^,"]|"[^"]*")+', self.header("prefer") or ""):
            name, _, value = part.strip().partition("=")
            if name:
                out[name.strip().lower()] = value.strip().strip('"')
        return out

    @property
    def immutable_ids(self) -> bool:
        """Whether the request asked for immutable ids."""
        return self.prefer.get("idtype", "").lower() == "immutableid"

    def param(self, name: str) -> str | None:
        """Return an OData system query option (``$`` required: v1.0 ignores ``top=`` without it; any letter case)."""
        for candidate, value in self.query.items():
            if candidate.lower() == f"${name}".lower():
                return value
        return None


@dataclass
class GraphResponse:
    """What a handler returns: JSON (dict), raw bytes, or nothing."""

    status: int
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    slow_seconds: float = 0.0
    drop: bool = False

    def encoded(self) -> tuple[bytes, str | None]:
        """Body bytes and content type."""
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), self.content_type or _JSON_TYPE
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        return b"", self.content_type


Handler = Callable[["GraphEmulator", GraphRequest, dict[str, str], Mailbox | None], Awaitable[GraphResponse]]


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: tuple[str, ...]
    kind: str
    handler: Handler


def _error_body(error: GraphError, request: GraphRequest) -> dict[str, Any]:
    return {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request.request_id,
                "client-request-id": request.client_request_id,
            },
        }
    }


def _bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def _split_segments(path: str) -> list[str]:
    """Split a Graph path into segments, unwrapping key syntax and collapsing empty segments.

    ``/users/a@b//mailFolders('inbox')/messages/delta()`` -> ``[users, a@b, mailFolders, inbox, messages, delta]``.
    """
    segments: list[str] = []
    for raw in path.split("/"):
        if not raw:
            continue
        match = re.fullmatch(r"([^()]+)\((.*)\)", raw)
        if match:
            name, key = match.group(1), match.group(2)
            segments.append(name.removeprefix("microsoft.graph."))
            key = key.strip()
            if len(key) >= 2 and key[0] == key[-1] == "'":  # noqa: PLR2004
                key = key[1:-1].replace("''", "'")
            if key:
                segments.append(key)
            continue
        segments.append(raw.removeprefix("microsoft.graph."))
    # mailFolders/{a}/childFolders/{b}/... addresses folder b directly (folder ids are unique per mailbox).
    changed = True
    while changed:
        changed = False
        for i in range(len(segments) - 3):
            if segments[i].lower() == "mailfolders" and segments[i + 2].lower() == "childfolders":
                segments[i + 1 : i + 4] = [segments[i + 3]]
                changed = True
                break
    return segments


def _json_body(request: GraphRequest) -> dict[str, Any]:
    if not request.body.strip():
        raise _bad_request("Empty Payload. JSON content expected.", "BadRequest")
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise _bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid "
            "JSON format.",
        ) from None
    if not isinstance(data, dict):
        raise _bad_request("Unable to read JSON request payload: a JSON object is expected.")
    return data


def _param(data: dict[str, Any], name: str) -> Any:
    """Bind an action parameter case-insensitively (the SDK sends the CSDL's PascalCase, docs show camelCase)."""
    for key, value in data.items():
        if key.lower() == name.lower():
            return value
    return None


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.Boolean'.", "RequestBodyRead")


def _recipients(value: Any, name: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad_request(
            f"Invalid value for property '{name}': a collection of recipients is expected.", "RequestBodyRead"
        )
    out = []
    for item in value:
        address = ((item or {}).get("emailAddress") or {}) if isinstance(item, dict) else {}
        out.append((str(address.get("name") or ""), str(address.get("address") or "")))
    return out


def _one_recipient(value: Any, name: str) -> tuple[str, str] | None:
    found = _recipients([value], name) if value else []
    return found[0] if found else None


def _parse_attachments(value: Any) -> list[ParsedAttachment]:
    out = []
    for item in value or []:
        if not isinstance(item, dict):
            raise _bad_request("Invalid attachment.", "RequestBodyRead")
        kind = str(item.get("@odata.type", "#microsoft.graph.fileAttachment")).lower()
        if kind not in ("#microsoft.graph.fileattachment", "microsoft.graph.fileattachment"):
            raise _bad_request(
                f"Attachment type {item.get('@odata.type')} is not supported here.", "ErrorInvalidRequest"
            )
        try:
            content = base64.b64decode(str(item.get("contentBytes") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise _bad_request("Invalid base64 string for attachment content.", "RequestBodyRead") from None
        out.append(
            ParsedAttachment(
                name=str(item.get("name") or "attachment"),
                content_type=str(item.get("contentType") or "application/octet-stream"),
                content=content,
                is_inline=bool(item.get("isInline", False)),
                content_id=item.get("contentId"),
            )
        )
    return out


def _message_fields(data: dict[str, Any]) -> dict[str, Any]:  # noqa: C901, PLR0912 - one branch per property
    """Validate a JSON message into stored fields (sendMail, create, PATCH on drafts)."""
    fields: dict[str, Any] = {}
    keys = {k.lower(): k for k in data}

    def present(name: str) -> bool:
        return name.lower() in keys

    def get(name: str) -> Any:
        return data[keys[name.lower()]]

    if present("subject"):
        fields["subject"] = str(get("subject") or "")
    if present("body"):
        body = get("body") or {}
        content_type = str(body.get("contentType") or "text").lower()
        if content_type not in ("text", "html"):
            raise _bad_request(f"Requested value '{body.get('contentType')}' was not found.", "RequestBodyRead")
        fields["body_type"] = content_type
        fields["body"] = str(body.get("content") or "")
    for json_name, field_name in (
        ("toRecipients", "to"),
        ("ccRecipients", "cc"),
        ("bccRecipients", "bcc"),
        ("replyTo", "reply_to"),
    ):
        if present(json_name):
            fields[field_name] = _recipients(get(json_name), json_name)
    if present("from"):
        fields["from_"] = _one_recipient(get("from"), "from")
    if present("sender"):
        fields["sender"] = _one_recipient(get("sender"), "sender")
    if present("importance"):
        importance = str(get("importance")).lower()
        if importance not in ("low", "normal", "high"):
            raise _bad_request(f"Requested value '{get('importance')}' was not found.", "RequestBodyRead")
        fields["importance"] = importance
    if present("categories"):
        fields["categories"] = [str(c) for c in get("categories") or []]
    if present("flag"):
        fields["flag"] = _flag(get("flag"))
    if present("internetMessageHeaders"):
        headers = []
        for header in get("internetMessageHeaders") or []:
            name = str(header.get("name", ""))
            if not name.lower().startswith("x-"):
                raise _bad_request(
                    f"The internet message header name '{name}' should start with 'x-' or 'X-'.",
                    "InvalidInternetMessageHeader",
                )
            headers.append((name, str(header.get("value", ""))))
        fields["headers"] = headers
    if present("attachments"):
        fields["attachments"] = _parse_attachments(get("attachments"))
    if present("isReadReceiptRequested"):
        fields["is_read_receipt_requested"] = _as_bool(get("isReadReceiptRequested"))
    if present("isDeliveryReceiptRequested"):
        fields["is_delivery_receipt_requested"] = _as_bool(get("isDeliveryReceiptRequested"))
    if present("singleValueExtendedProperties"):
        # Only PR_DELETE_AFTER_SUBMIT has an effect here: the sent draft is deleted instead of kept in Sent Items.
        for prop in get("singleValueExtendedProperties") or []:
            prop_id = " ".join(str(prop.get("id", "")).split()).lower()
            if prop_id in ("boolean 0x0e01", "boolean 0xe01"):
                fields["delete_after_submit"] = str(prop.get("value", "")).lower() == "true"
    return fields


def _flag(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_request("Invalid value for property 'flag'.", "RequestBodyRead")
    status = str(value.get("flagStatus", "notFlagged"))
    if status not in ("notFlagged", "complete", "flagged"):
        raise _bad_request(f"Requested value '{status}' was not found.", "RequestBodyRead")
    out: dict[str, Any] = {"flagStatus": status}
    for name in ("completedDateTime", "dueDateTime", "startDateTime"):
        if isinstance(value.get(name), dict):
            out[name] = {"dateTime": str(value[name].get("dateTime")), "timeZone": str(value[name].get("timeZone"))}
    return out


def _check_recipients(to: list[tuple[str, str]], cc: list[tuple[str, str]], bcc: list[tuple[str, str]]) -> None:
    everyone = [*to, *cc, *bcc]
    if not everyone:
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    for _, address in everyone:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient isn't valid., Recipient \"{address}\" isn't resolved. All recipients must be "
                "resolved before a message can be submitted.",
            )


def _message_ids_of(message: StoredMessage) -> list[str]:
    """Return the References chain of a stored message (from its transport headers)."""
    for name, value in message.headers:
        if name.lower() == "references":
            return re.findall(r"<[^<>\s]+>", value)
    return []


def _check_send_as(mailbox: Mailbox, sender: tuple[str, str] | None) -> None:
    address = (sender[1] if sender else "").lower()
    if address and address != mailbox.address.lower() and address not in mailbox.send_as:
        raise GraphError(
            403,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf "
            "of the specified sending account., Cannot submit message.",
        )


def _check_id(value: str) -> None:
    if not _ID_PATTERN.fullmatch(value):
        raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")


# ----- $filter / $orderby for message lists ----------------------------------------------------------------------
_FILTER_PROPERTIES = {
    "isread": ("isRead", "bool"),
    "isdraft": ("isDraft", "bool"),
    "hasattachments": ("hasAttachments", "bool"),
    "receiveddatetime": ("receivedDateTime", "datetime"),
    "sentdatetime": ("sentDateTime", "datetime"),
    "createddatetime": ("createdDateTime", "datetime"),
    "lastmodifieddatetime": ("lastModifiedDateTime", "datetime"),
    "subject": ("subject", "string"),
    "internetmessageid": ("internetMessageId", "string"),
    "conversationid": ("conversationId", "string"),
    "parentfolderid": ("parentFolderId", "string"),
    "importance": ("importance", "string"),
    "from/emailaddress/address": ("from/emailAddress/address", "string"),
}
_ORDERBY_PROPERTIES = {
    k: v[0]
    for k, v in _FILTER_PROPERTIES.items()
    if k
    in (
        "receiveddatetime",
        "sentdatetime",
        "createddatetime",
        "lastmodifieddatetime",
        "subject",
        "isread",
        "importance",
        "hasattachments",
        "from/emailaddress/address",
    )
}
_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")


@dataclass(frozen=True)
class _Condition:
    property: str
    operator: str
    value: Any


def _split_outside_quotes(text: str, word: str) -> list[str]:
    parts, depth, quoted, start = [], 0, False, 0
    lowered = text.lower()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and lowered.startswith(f" {word} ", i):
            parts.append(text[start:i])
            i += len(word) + 2
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, char in enumerate(text):
            depth += char == "("
            depth -= char == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _parse_filter(text: str) -> list[list[_Condition]]:
    """Parse ``a and b or c`` into ``[[a, b], [c]]`` (OR of ANDs)."""
    return [
        [_parse_condition(_strip_parens(clause)) for clause in _split_outside_quotes(_strip_parens(alternative), "and")]
        for alternative in _split_outside_quotes(_strip_parens(text), "or")
    ]


def _parse_condition(clause: str) -> _Condition:
    match = re.fullmatch(r"([A-Za-z/]+)\s+(\w+)\s+(.+)", clause.strip())
    if not match:
        raise _bad_request("Invalid filter clause: syntax error.", "BadRequest")
    name, operator, literal = match.group(1), match.group(2).lower(), match.group(3).strip()
    known = _FILTER_PROPERTIES.get(name.lower())
    if known is None:
        raise _bad_request(f"Could not find a property named '{name}' on type 'Microsoft.OutlookServices.Message'.")
    if operator not in _OPERATORS:
        raise _bad_request(f"Invalid filter clause: unknown operator '{operator}'.")
    canonical, kind = known
    value: Any
    if kind == "bool":
        if literal.lower() not in ("true", "false"):
            raise _bad_request(f"Invalid filter clause: '{literal}' is not a Boolean literal.")
        value = literal.lower() == "true"
    elif kind == "datetime":
        if not _DATETIME_LITERAL.fullmatch(literal):
            raise _bad_request(
                "Invalid filter clause: A binary operator with incompatible types was detected. Found operand types "
                "'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThanOrEqual'."
                if literal.startswith("'")
                else f"Invalid filter clause: '{literal}' is not a DateTimeOffset literal."
            )
        value = _parse_datetime(literal)
    else:
        if not (len(literal) >= 2 and literal[0] == literal[-1] == "'"):  # noqa: PLR2004
            raise _bad_request(f"Invalid filter clause: '{literal}' is not a string literal.")
        value = literal[1:-1].replace("''", "'")
    return _Condition(canonical, operator, value)


def _parse_datetime(literal: str) -> datetime:
    text = literal.replace("Z", "+00:00")
    if "T" not in text:
        text += "T00:00:00+00:00"
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _compare(left: Any, operator: str, right: Any) -> bool:
    if left is None:
        return operator == "ne" if right is not None else operator == "eq"
    if operator == "eq":
        return bool(left == right)
    if operator == "ne":
        return bool(left != right)
    try:
        return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[operator]
    except TypeError:
        return False


def _property_value(message: StoredMessage, name: str) -> Any:
    return {
        "isRead": message.is_read,
        "isDraft": message.is_draft,
        "hasAttachments": any(not a.is_inline for a in message.attachments),
        "receivedDateTime": message.received,
        "sentDateTime": message.sent,
        "createdDateTime": message.created,
        "lastModifiedDateTime": message.modified,
        "subject": message.subject,
        "internetMessageId": message.internet_message_id,
        "conversationId": message.conversation_id,
        "parentFolderId": message.folder_id,
        "importance": message.importance,
        "from/emailAddress/address": (message.from_[1].lower() if message.from_ else None),
    }[name]


# ----- the emulator ----------------------------------------------------------------------------------------------
class GraphEmulator:
    """ASGI endpoint serving ``/v1.0`` (and the upload URLs it hands out) from a :class:`DevTenantState`."""

    def __init__(
        self,
        state: DevTenantState,
        *,
        throttle: MailboxThrottle | None = None,
        faults: FaultInjector | None = None,
        request_log: RequestLog | None = None,
        token: str | None = None,
        max_request_bytes: int = 4 * 1024 * 1024,
        subscription_max_minutes: int = SUBSCRIPTION_MAX_MINUTES,
        latency_ms: float = 0.0,
    ) -> None:
        """Serve ``state``; ``token`` (if set) is the only accepted bearer token; ``latency_ms`` delays each request."""
        self.state = state
        self.throttle = throttle or MailboxThrottle()
        self.faults = faults or FaultInjector()
        self.request_log = request_log or RequestLog()
        self.notifier = Notifier(state)
        self.token = token
        self.max_request_bytes = max_request_bytes
        self.subscription_max_minutes = subscription_max_minutes
        self.application_id = str(uuid.uuid4())
        self.latency_ms = latency_ms

    # ----- ASGI ------------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request under ``/v1.0``."""
        request = Request(scope, receive)
        body = await request.body()
        origin = f"{request.url.scheme}://{request.url.netloc}"
        path = scope["path"]
        prefix = re.match(r"^/+v1\.0(?=/|$)", path)
        graph_path = path[prefix.end() :] if prefix else path
        headers = {k.lower(): v for k, v in request.headers.items()}
        prefer = ", ".join(request.headers.getlist("prefer"))
        if prefer:
            headers["prefer"] = prefer
        graph_request = GraphRequest(
            method=request.method.upper(),
            path=graph_path,
            query=dict(request.query_params.items()),
            headers=headers,
            body=body,
            base_url=f"{origin}/v1.0",
            client_request_id=headers.get("client-request-id") or str(uuid.uuid4()),
        )
        response = await self.handle(graph_request)
        await self._send(response, graph_request, send)

    async def _send(self, response: GraphResponse, request: GraphRequest, send: Send) -> None:
        payload, content_type = response.encoded()
        headers = {
            "request-id": request.request_id,
            "client-request-id": request.client_request_id,
            "x-ms-ags-diagnostic": '{"ServerInfo":{"DataCenter":"Loopback","Slice":"E","Ring":"5","ScaleUnit":"0"}}',
            "cache-control": "private",
            **{k.lower(): v for k, v in response.headers.items()},
        }
        if content_type:
            headers["content-type"] = content_type
        # A dropped response announces a body it never sends, so the client sees an incomplete message.
        headers["content-length"] = str(len(payload) + 1 if response.drop else len(payload))
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": response.status, "headers": raw_headers})
        if response.drop:
            # Headers went out, the body never will: the server aborts the connection mid-response.
            raise ConnectionDropped
        if response.slow_seconds:
            half = len(payload) // 2
            await send({"type": "http.response.body", "body": payload[:half], "more_body": True})
            await asyncio.sleep(response.slow_seconds)
            await send({"type": "http.response.body", "body": payload[half:]})
            return
        await send({"type": "http.response.body", "body": payload})

    # ----- request pipeline ----------------------------------------------------------------------------------
    async def handle(self, request: GraphRequest, *, in_batch: bool = False) -> GraphResponse:
        """Route, authenticate, inject faults, throttle, run the handler, log. Never raises GraphError."""
        kind, mailbox_address, fault_label = "unknown", None, None
        response: GraphResponse
        try:
            if len(request.body) > self.max_request_bytes:
                raise GraphError(413, "RequestEntityTooLarge", "The request payload is too large.")  # noqa: TRY301
            if not in_batch:
                self._authenticate(request)
            route, params = self._route(request)
            kind = route.kind
            mailbox = self._mailbox(params.get("user")) if "user" in params else None
            mailbox_address = mailbox.address if mailbox else None
            fired = self.faults.firing(request.method, "/" + "/".join(_split_segments(request.path)), mailbox_address)
            fault_label = ",".join(f.kind for f in fired) or None
            response = await self._run(route, request, params, mailbox, fired)
        except GraphError as error:
            response = GraphResponse(error.status, _error_body(error, request), dict(error.headers))
        self.request_log.add(
            RequestRecord(
                RequestLog.now(),
                request.method,
                request.path,
                kind,
                mailbox_address,
                response.status,
                in_batch,
                fault_label,
            )
        )
        return response

    async def _run(  # noqa: C901, PLR0912 - one branch per fault kind
        self,
        route: _Route,
        request: GraphRequest,
        params: dict[str, str],
        mailbox: Mailbox | None,
        fired: list[Fault],
    ) -> GraphResponse:
        for fault in fired:
            if fault.kind == "throttle":
                raise GraphError(
                    429,
                    fault.code or "ApplicationThrottled",
                    fault.message or "Application is over its MailboxConcurrency limit.",
                    {"Retry-After": str(fault.retry_after if fault.retry_after is not None else 1)},
                )
            if fault.kind == "error":
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                code = fault.code or {
                    500: "UnknownError",
                    502: "BadGateway",
                    503: "ServiceUnavailable",
                    504: "GatewayTimeout",
                }.get(fault.status, "UnknownError")
                raise GraphError(fault.status, code, fault.message or "", extra)
            if fault.kind == "drop":
                return GraphResponse(200, drop=True)
        if mailbox is not None:
            self.throttle.acquire(mailbox.address)
        try:
            if self.latency_ms:
                await self._latency(request)
            for fault in fired:
                if fault.kind == "latency":
                    await asyncio.sleep(fault.delay_seconds())
                    request.latency_end = asyncio.get_running_loop().time()  # an injected delay is not made up for
            response = await route.handler(self, request, params, mailbox)
        finally:
            if mailbox is not None:
                self.throttle.release(mailbox.address)
        for fault in fired:
            if fault.kind == "apply_then_drop":
                response.drop = True
            elif fault.kind == "slow":
                response.slow_seconds += fault.delay_seconds()
        return response

    async def _latency(self, request: GraphRequest) -> None:
        """Wait until ``latency_ms`` after the request's latency start (see :attr:`GraphRequest.latency_start`)."""
        loop = asyncio.get_running_loop()
        if request.latency_start is None:
            request.latency_start = loop.time()
        end = request.latency_start + self.latency_ms / 1000.0
        await asyncio.sleep(max(0.0, end - loop.time()))
        request.latency_end = end

    def _authenticate(self, request: GraphRequest) -> None:
        authorization = request.header("authorization") or ""
        scheme, _, token = authorization.partition(" ")
        challenge = {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
            'authorize", client_id="00000003-0000-0000-c000-000000000000"'
        }
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        if self.token is not None and token.strip() != self.token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.", challenge)

    def _route(self, request: GraphRequest) -> tuple[_Route, dict[str, str]]:
        segments = _split_segments(request.path)
        if segments and segments[0].lower() == "me":
            raise _bad_request("/me request is only valid with delegated authentication flow.")
        path_matched = False
        for route in _ROUTES:
            params = _match(route.pattern, segments)
            if params is None:
                continue
            path_matched = True
            if route.method == request.method:
                return route, params
        if path_matched:
            raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
        raise GraphError(
            400,
            "BadRequest",
            f"Resource not found for the segment '{segments[-1] if segments else ''}'.",
        )

    def _mailbox(self, ref: str | None) -> Mailbox:
        mailbox = self.state.find_mailbox(ref or "")
        if mailbox is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        if mailbox.access_denied:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return mailbox

    # ----- shared helpers ------------------------------------------------------------------------------------
    def _folder(self, mailbox: Mailbox, ref: str) -> Folder:
        try:
            return self.state.resolve_folder(mailbox, ref)
        except GraphError:
            if not re.fullmatch(r"[A-Za-z]+", ref):
                _check_id(ref)
            raise

    def _message(self, mailbox: Mailbox, params: dict[str, str]) -> StoredMessage:
        message_id = params["message"]
        _check_id(message_id)
        message = self.state.find_message(mailbox, message_id)
        if "folder" in params and self._folder(mailbox, params["folder"]).id != message.folder_id:
            raise item_not_found()
        return message

    @staticmethod
    def _select(request: GraphRequest, allowed: frozenset[str], type_name: str) -> list[str] | None:
        raw = request.param("select")
        if raw is None:
            return None
        lookup = {name.lower(): name for name in allowed}
        selected = []
        for part in raw.split(","):
            name = part.strip()
            if not name:
                continue
            canonical = lookup.get(name.lower())
            if canonical is None:
                raise GraphError(
                    400,
                    "RequestBroker--ParseUri",
                    f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
                )
            if canonical not in selected:
                selected.append(canonical)
        return selected

    def _message_out(
        self, request: GraphRequest, message: StoredMessage, *, select: list[str] | None = None, context: bool = False
    ) -> dict[str, Any]:
        body_type = request.prefer.get("outlook.body-content-type")
        out = message_json(
            message,
            select=select,
            immutable=request.immutable_ids,
            body_content_type=body_type.lower() if body_type else None,
        )
        expand = (request.param("expand") or "").lower()
        if "attachments" in expand:
            out["attachments"] = [attachment_json(a) for a in message.attachments]
        if "singlevalueextendedproperties" in expand and "0x0e08" in expand:
            size = len(message.raw) if message.raw is not None else len(message.body.encode())
            out["singleValueExtendedProperties"] = [{"id": "Long 0xe08", "value": str(size)}]
        if context:
            box = self.state.mailbox(message.mailbox)
            out = {
                "@odata.context": f"{request.base_url}/$metadata#users('{quote(box.address)}')/messages/$entity",
                **out,
            }
        return out

    def _preference_headers(self, request: GraphRequest) -> dict[str, str]:
        applied = []
        body_type = request.prefer.get("outlook.body-content-type")
        if body_type:
            applied.append(f'outlook.body-content-type="{body_type}"')
        if request.immutable_ids:
            applied.append('IdType="ImmutableId"')
        return {"Preference-Applied": ", ".join(applied)} if applied else {}

    # ----- handlers: send --------------------------------------------------------------------------------------
    async def send_mail(self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None) -> GraphResponse:
        """POST /users/{id}/sendMail (JSON, or base64 MIME as text/plain)."""
        del params
        assert mailbox is not None
        if (request.header("content-type") or "").lower().startswith("text/plain"):
            raw = _decode_mime(request.body)
            parsed = parse_mime(raw)
            _check_recipients(parsed.to, parsed.cc, parsed.bcc)
            _check_send_as(mailbox, parsed.from_[0] if parsed.from_ else None)
            self.state.send_mime(mailbox, raw, save_to_sent_items=True)
            return GraphResponse(202)
        data = _json_body(request)
        message = _param(data, "Message")
        if not isinstance(message, dict):
            raise _bad_request("The value of the parameter 'Message' is empty.", "ErrorInvalidParameter")
        save_value = _param(data, "SaveToSentItems")
        save = True if save_value is None else _as_bool(save_value)
        fields = _message_fields(message)
        _check_recipients(fields.get("to", []), fields.get("cc", []), fields.get("bcc", []))
        _check_send_as(mailbox, fields.get("from_"))
        self.state.send_fields(mailbox, fields, save_to_sent_items=save)
        return GraphResponse(202)

    async def create_message(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /users/{id}/messages or /mailFolders/{id}/messages: a draft (JSON or base64 MIME)."""
        assert mailbox is not None
        folder = self._folder(mailbox, params["folder"]) if "folder" in params else None
        if (request.header("content-type") or "").lower().startswith("text/plain"):
            raw = _decode_mime(request.body)
            message = self.state.store_mime(
                mailbox, raw, folder=(folder.id if folder else "drafts"), is_read=True, is_draft=True
            )
        else:
            fields = _message_fields(_json_body(request))
            message = self.state.create_draft(mailbox, fields, folder)
        return GraphResponse(201, self._message_out(request, message, context=True), self._preference_headers(request))

    async def send_draft(self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None) -> GraphResponse:
        """POST /users/{id}/messages/{id}/send."""
        assert mailbox is not None
        with self.state.lock:
            message = self._message(mailbox, params)
            if not message.is_draft:
                raise GraphError(400, "ErrorInvalidOperation", "Only draft messages can be sent.")
            _check_recipients(message.to, message.cc, message.bcc)
            _check_send_as(mailbox, message.from_)
            self.state.send_draft(mailbox, message)
        del request
        return GraphResponse(202)

    # ----- handlers: read ----------------------------------------------------------------------------------------
    async def list_messages(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /users/{id}/messages and /mailFolders/{id}/messages with $filter/$orderby/$select/$top/$skip."""
        assert mailbox is not None
        select = self._select(request, MESSAGE_PROPERTIES, "message")
        top = _page_size(request.param("top"))
        skip = _non_negative(request.param("skip"), "$skip")
        filter_text = request.param("filter")
        groups = _parse_filter(filter_text) if filter_text else []
        order = _parse_orderby(request.param("orderby"))
        if groups and order:
            filtered = [c.property for c in groups[0]]
            ordered = [name for name, _ in order]
            if len(groups) > 1 or filtered[: len(ordered)] != ordered:
                raise GraphError(
                    400, "InefficientFilter", "The restriction or sort order is too complex for this operation."
                )
        with self.state.lock:
            if "folder" in params:
                folder = self._folder(mailbox, params["folder"])
                candidates = self.state.folder_messages(mailbox, folder.id)
                context = f"users('{quote(mailbox.address)}')/mailFolders('{quote(params['folder'])}')/messages"
            else:
                candidates = list(mailbox.messages.values())
                context = f"users('{quote(mailbox.address)}')/messages"
            resolved_groups = [[self._resolve_condition(mailbox, c) for c in group] for group in groups]
            matching = [m for m in candidates if _matches(m, resolved_groups)]
            for name, direction in reversed(order or [("receivedDateTime", "desc")]):
                matching.sort(key=_sort_by(name), reverse=direction == "desc")
            page = matching[skip : skip + top]
            body: dict[str, Any] = {"@odata.context": f"{request.base_url}/$metadata#{context}"}
            if (request.param("count") or "").lower() == "true":
                body["@odata.count"] = len(matching)
            body["value"] = [self._message_out(request, m, select=select) for m in page]
        if skip + top < len(matching):
            body["@odata.nextLink"] = _next_link(request, skip + top, top)
        return GraphResponse(200, body, self._preference_headers(request))

    def _resolve_condition(self, mailbox: Mailbox, condition: _Condition) -> _Condition:
        if condition.property == "parentFolderId":
            try:
                return _Condition(
                    condition.property, condition.operator, self.state.resolve_folder(mailbox, condition.value).id
                )
            except GraphError:
                return condition
        if condition.property == "from/emailAddress/address":
            return _Condition(condition.property, condition.operator, str(condition.value).lower())
        return condition

    async def count_messages(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET …/messages/$count: the number as text (``$filter`` applies)."""
        assert mailbox is not None
        filter_text = request.param("filter")
        groups = _parse_filter(filter_text) if filter_text else []
        with self.state.lock:
            if "folder" in params:
                candidates = self.state.folder_messages(mailbox, self._folder(mailbox, params["folder"]).id)
            else:
                candidates = list(mailbox.messages.values())
            resolved = [[self._resolve_condition(mailbox, c) for c in group] for group in groups]
            count = sum(1 for m in candidates if _matches(m, resolved))
        return GraphResponse(200, str(count).encode(), content_type="text/plain")

    async def get_message(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /users/{id}/messages/{id}."""
        assert mailbox is not None
        select = self._select(request, MESSAGE_PROPERTIES, "message")
        with self.state.lock:
            message = self._message(mailbox, params)
            body = self._message_out(request, message, select=select, context=True)
        return GraphResponse(200, body, self._preference_headers(request))

    async def get_mime(self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None) -> GraphResponse:
        """GET /users/{id}/messages/{id}/$value: the RFC 822 bytes."""
        del request
        assert mailbox is not None
        with self.state.lock:
            message = self._message(mailbox, params)
            raw = message.raw if message.raw is not None else _draft_mime(message)
        return GraphResponse(200, raw, content_type="text/plain")

    # ----- handlers: update, move, delete ----------------------------------------------------------------------
    async def update_message(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """PATCH /users/{id}/messages/{id}: isRead, categories, flag, importance, inferenceClassification (+ drafts)."""
        assert mailbox is not None
        data = {k: v for k, v in _json_body(request).items() if not k.startswith("@")}
        with self.state.lock:
            message = self._message(mailbox, params)
            draft_only = {
                "subject",
                "body",
                "torecipients",
                "ccrecipients",
                "bccrecipients",
                "replyto",
                "from",
                "sender",
                "internetmessageheaders",
                "attachments",
            }
            if not message.is_draft and any(k.lower() in draft_only for k in data):
                raise GraphError(
                    400,
                    "ErrorInvalidPropertyUpdateSentMessage",
                    "Update operation is not supported for this property on a sent message.",
                )
            for key, value in data.items():
                name = key.lower()
                if name == "isread":
                    message.is_read = _as_bool(value)
                elif name == "inferenceclassification":
                    if str(value).lower() not in ("focused", "other"):
                        raise _bad_request(f"Requested value '{value}' was not found.", "RequestBodyRead")
                    message.inference = str(value).lower()
                elif name in ("categories", "flag", "importance") or name in draft_only:
                    fields = _message_fields({key: value})
                    _apply_fields(message, fields)
                elif name in ("isreadreceiptrequested", "isdeliveryreceiptrequested"):
                    _apply_fields(message, _message_fields({key: value}))
                elif name in {p.lower() for p in MESSAGE_PROPERTIES}:
                    raise _bad_request(f"The property '{key}' is read-only and cannot be set.", "ErrorInvalidProperty")
            self.state.touch(message)
            body = self._message_out(request, message, context=True)
        return GraphResponse(200, body, self._preference_headers(request))

    async def move_message(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /users/{id}/messages/{id}/move {DestinationId} -> 201 with the moved message."""
        assert mailbox is not None
        destination_ref = _param(_json_body(request), "DestinationId")
        if not destination_ref:
            raise _bad_request("The value of the parameter 'DestinationId' is empty.", "ErrorInvalidParameter")
        with self.state.lock:
            message = self._message(mailbox, params)
            destination = self._folder(mailbox, str(destination_ref))
            if destination.id != message.folder_id:
                self.state.move_message(mailbox, message, destination)
            else:
                self.state.touch(message)
            body = self._message_out(request, message, context=True)
        return GraphResponse(201, body, self._preference_headers(request))

    def _respond_draft(
        self, mailbox: Mailbox, original: StoredMessage, kind: str, data: dict[str, Any]
    ) -> StoredMessage:
        """Build the draft Exchange creates for createReply/createReplyAll/createForward (and reply/forward)."""
        own = mailbox.address.lower()
        if kind == "forward":
            prefix, to = "FW: ", _recipients(_param(data, "ToRecipients"), "ToRecipients")
            cc: list[tuple[str, str]] = []
        else:
            prefix = "RE: "
            to = list(original.reply_to or ([original.from_] if original.from_ else []))
            cc = []
            if kind == "replyAll":
                to += [r for r in original.to if r[1].lower() != own and r not in to]
                cc = [r for r in original.cc if r[1].lower() != own]
        subject = original.subject or ""
        if not subject.upper().startswith(prefix.strip().upper()):
            subject = prefix + subject
        comment = str(_param(data, "Comment") or "")
        quoted_header = (
            f"From: {original.from_[1] if original.from_ else ''}\n"
            f"Sent: {format_datetime(original.sent) or ''}\nSubject: {original.subject or ''}"
        )
        if original.body_type == "html":
            body = f"<html><body><div>{comment}</div><hr><div>{quoted_header}</div>{original.body}</body></html>"
        else:
            body = f"{comment}\n\n{quoted_header}\n\n{original.body}"
        references = [
            *_message_ids_of(original),
            *([original.internet_message_id] if original.internet_message_id else []),
        ]
        headers = []
        if kind != "forward" and original.internet_message_id:
            headers = [("In-Reply-To", original.internet_message_id), ("References", " ".join(references))]
        fields: dict[str, Any] = {
            "subject": subject,
            "body_type": original.body_type,
            "body": body,
            "to": to,
            "cc": cc,
            "headers": headers,
            "related_ids": references,
        }
        if kind == "forward":
            fields["attachments"] = [
                ParsedAttachment(a.name, a.content_type, a.content, a.is_inline, a.content_id, a.is_item)
                for a in original.attachments
            ]
        overrides = _param(data, "Message")
        if isinstance(overrides, dict):
            extra = _message_fields(overrides)
            if kind == "forward" and "to" in extra and not to:
                fields["to"] = extra.pop("to")
            fields.update(extra)
        return self.state.create_draft(mailbox, fields)

    async def create_response(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST …/createReply, createReplyAll, createForward -> 201 draft; reply, replyAll, forward -> 202 sent."""
        assert mailbox is not None
        action = request.path.rstrip("/").rsplit("/", 1)[-1].removeprefix("microsoft.graph.").lower()
        kind = {
            "createreply": "reply",
            "reply": "reply",
            "createreplyall": "replyAll",
            "replyall": "replyAll",
            "createforward": "forward",
            "forward": "forward",
        }[action]
        data = _json_body(request) if request.body.strip() else {}
        with self.state.lock:
            original = self._message(mailbox, params)
            draft = self._respond_draft(mailbox, original, kind, data)
            if not action.startswith("create"):
                _check_recipients(draft.to, draft.cc, draft.bcc)
                self.state.send_draft(mailbox, draft)
                return GraphResponse(202)
            body = self._message_out(request, draft, context=True)
        return GraphResponse(201, body, self._preference_headers(request))

    async def copy_message(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /users/{id}/messages/{id}/copy {DestinationId} -> 201 with the new copy."""
        assert mailbox is not None
        destination_ref = _param(_json_body(request), "DestinationId")
        if not destination_ref:
            raise _bad_request("The value of the parameter 'DestinationId' is empty.", "ErrorInvalidParameter")
        with self.state.lock:
            message = self._message(mailbox, params)
            destination = self._folder(mailbox, str(destination_ref))
            raw = message.raw if message.raw is not None else _draft_mime(message)
            copy = self.state.store_mime(
                mailbox,
                raw,
                folder=destination.id,
                is_read=message.is_read,
                received=message.received,
                is_draft=message.is_draft,
            )
            body = self._message_out(request, copy, context=True)
        return GraphResponse(201, body, self._preference_headers(request))

    async def delete_message(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """DELETE /users/{id}/messages/{id} -> 204."""
        del request
        assert mailbox is not None
        with self.state.lock:
            self.state.delete_message(mailbox, self._message(mailbox, params))
        return GraphResponse(204)

    # ----- handlers: delta ---------------------------------------------------------------------------------------
    async def delta(self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None) -> GraphResponse:
        """GET /users/{id}/mailFolders/{id}/messages/delta: skip-token pages, then a delta link."""
        assert mailbox is not None
        skip_token = request.param("skiptoken")
        delta_token = request.param("deltatoken")
        page_size = _max_page_size(request)
        with self.state.lock:
            folder = self._folder(mailbox, params["folder"])
            token = skip_token or delta_token
            if token is not None:
                cursor = self._cursor(token, mailbox, folder)
                if delta_token is not None:
                    cursor = self._start_round(cursor)
            else:
                cursor = self._start_round(self._first_cursor(request, mailbox, folder))
            size = page_size or cursor.page_size or DEFAULT_PAGE_SIZE
            pending = cursor.pending or []
            page, rest = pending[:size], pending[size:]
            link_base = f"{request.base_url}/users/{mailbox.address}/mailFolders('{folder.id}')/messages/delta"
            body: dict[str, Any] = {"@odata.context": f"{request.base_url}/$metadata#Collection(message)"}
            if rest:
                next_cursor = DeltaCursor(**{**cursor.__dict__, "pending": rest, "created": now_utc()})
                body["@odata.nextLink"] = f"{link_base}?$skiptoken={self.state.new_cursor_token(next_cursor)}"
            else:
                done = DeltaCursor(
                    **{**cursor.__dict__, "pending": None, "since_seq": cursor.round_seq, "created": now_utc()}
                )
                body["@odata.deltaLink"] = f"{link_base}?$deltatoken={self.state.new_cursor_token(done)}"
        # A page of hundreds of messages is built a few dozen at a time, letting other requests' timers and
        # handlers run in between: one mailbox's big page must not hold up every other request the tenant serves.
        values: list[dict[str, Any]] = []
        for start in range(0, len(page), _PAGE_BUILD_CHUNK):
            if start:
                await asyncio.sleep(0)
            with self.state.lock:
                chunk = page[start : start + _PAGE_BUILD_CHUNK]
                values.extend(self._delta_item(request, mailbox, folder, cursor, entry) for entry in chunk)
        body = {"@odata.context": body["@odata.context"], "value": values, **body}
        headers = self._preference_headers(request)
        if page_size:
            headers["Preference-Applied"] = ", ".join(
                filter(None, [headers.get("Preference-Applied"), f"odata.maxpagesize={page_size}"])
            )
        return GraphResponse(200, body, headers)

    def _cursor(self, token: str, mailbox: Mailbox, folder: Folder) -> DeltaCursor:
        cursor = self.state.delta_cursors.get(token)
        expired = cursor is not None and cursor.created + self.state.delta_token_ttl < now_utc()
        if (
            cursor is None
            or expired
            or cursor.mailbox.lower() != mailbox.address.lower()
            or (cursor.folder_id != folder.id)
        ):
            raise GraphError(
                410,
                "SyncStateNotFound",
                "The sync state generation is not found. The delta token is expired and data must be synchronized "
                "again.",
            )
        if cursor.invalid_code == "resyncRequired":
            raise GraphError(410, "resyncRequired", "A resync is required. The delta token is no longer valid.")
        if cursor.invalid_code is not None:
            raise GraphError(
                410,
                cursor.invalid_code,
                "The sync state generation is not found. The delta token is expired and data must be synchronized "
                "again.",
            )
        return cursor

    def _first_cursor(self, request: GraphRequest, mailbox: Mailbox, folder: Folder) -> DeltaCursor:
        select = self._select(request, MESSAGE_PROPERTIES, "message")
        received_filter = None
        filter_text = request.param("filter")
        if filter_text:
            groups = _parse_filter(filter_text)
            if (
                len(groups) != 1
                or len(groups[0]) != 1
                or groups[0][0].property != "receivedDateTime"
                or groups[0][0].operator not in ("ge", "gt")
            ):
                raise _bad_request(
                    "The query filter contains one or more invalid nodes; delta supports only "
                    "'receivedDateTime ge|gt <value>'.",
                    "ErrorInvalidUrlQueryFilter",
                )
            received_filter = (groups[0][0].operator, groups[0][0].value)
        order = _parse_orderby(request.param("orderby"))
        if order and order != [("receivedDateTime", "desc")]:
            raise _bad_request("Delta supports $orderby=receivedDateTime desc only.", "ErrorInvalidUrlQueryOrderBy")
        top = request.param("top")
        page_size = _page_size(top) if top else _max_page_size(request)
        return DeltaCursor(
            mailbox=mailbox.address,
            folder_id=folder.id,
            since_seq=0,
            select=select,
            received_filter=received_filter,
            immutable=request.immutable_ids,
            page_size=page_size,
            created=now_utc(),
        )

    def _start_round(self, cursor: DeltaCursor) -> DeltaCursor:
        mailbox = self.state.mailbox(cursor.mailbox)
        folder = mailbox.folders[cursor.folder_id]
        entries: list[tuple[str, str]] = []
        messages = sorted(
            self.state.folder_messages(mailbox, folder.id), key=lambda m: (m.received, m.seq), reverse=True
        )
        present = set()
        for message in messages:
            present.add(message.immutable_id)
            if message.seq <= cursor.since_seq:
                continue
            if cursor.received_filter is not None:
                operator, value = cursor.received_filter
                if not _compare(message.received, operator, value):
                    continue
            entries.append(("item", message.immutable_id))
        if cursor.since_seq > 0:
            seen_removed = set()
            for seq, rest_id, immutable_id in folder.tombstones:
                if seq <= cursor.since_seq or immutable_id in present:
                    continue
                removed_id = immutable_id if cursor.immutable else rest_id
                if removed_id not in seen_removed:
                    seen_removed.add(removed_id)
                    entries.append(("removed", removed_id))
        return DeltaCursor(**{**cursor.__dict__, "pending": entries, "round_seq": self.state.seq})

    def _delta_item(
        self, request: GraphRequest, mailbox: Mailbox, folder: Folder, cursor: DeltaCursor, entry: tuple[str, str]
    ) -> dict[str, Any]:
        kind, identifier = entry
        if kind == "item":
            message = mailbox.messages.get(identifier)
            if message is not None and message.folder_id == folder.id:
                body_type = request.prefer.get("outlook.body-content-type")
                return message_json(
                    message,
                    select=cursor.select,
                    immutable=cursor.immutable,
                    body_content_type=body_type.lower() if body_type else None,
                    with_type=True,
                )
            identifier = identifier if cursor.immutable else (message.rest_id if message else identifier)
        return {"@odata.type": "#microsoft.graph.message", "id": identifier, "@removed": {"reason": "deleted"}}

    # ----- handlers: folders -------------------------------------------------------------------------------------
    async def list_folders(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /users/{id}/mailFolders (top level) or /mailFolders/{id}/childFolders."""
        assert mailbox is not None
        top = _page_size(request.param("top"))
        skip = _non_negative(request.param("skip"), "$skip")
        include_hidden = (request.query.get("includeHiddenFolders") or "").lower() == "true"
        name_filter = None
        filter_text = request.param("filter")
        if filter_text:
            match = re.fullmatch(r"\s*displayName\s+eq\s+'((?:[^']|'')*)'\s*", filter_text, re.IGNORECASE)
            if not match:
                raise _bad_request("Only 'displayName eq <string>' is supported on mail folders by the dev tenant.")
            name_filter = match.group(1).replace("''", "'")
        with self.state.lock:
            parent = self._folder(mailbox, params.get("folder", ROOT_FOLDER))
            folders = [
                f
                for f in self.state.child_folders(mailbox, parent.id)
                if (include_hidden or not f.is_hidden)
                and (name_filter is None or f.display_name.lower() == name_filter.lower())
            ]
            context = f"users('{quote(mailbox.address)}')/mailFolders"
            body: dict[str, Any] = {
                "@odata.context": f"{request.base_url}/$metadata#{context}",
                "value": [folder_json(self.state, mailbox, f) for f in folders[skip : skip + top]],
            }
        if skip + top < len(folders):
            body["@odata.nextLink"] = _next_link(request, skip + top, top)
        return GraphResponse(200, body)

    async def get_folder(self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None) -> GraphResponse:
        """GET /users/{id}/mailFolders/{id|well-known name}."""
        assert mailbox is not None
        with self.state.lock:
            folder = self._folder(mailbox, params["folder"])
            body = {
                "@odata.context": f"{request.base_url}/$metadata#users('{quote(mailbox.address)}')/mailFolders/$entity",
                **folder_json(self.state, mailbox, folder),
            }
        return GraphResponse(200, body)

    async def create_folder(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /users/{id}/mailFolders or /mailFolders/{id}/childFolders {displayName, isHidden} -> 201."""
        assert mailbox is not None
        data = _json_body(request)
        name = _param(data, "displayName")
        if not isinstance(name, str) or not name.strip():
            raise _bad_request("The value of the property 'displayName' is empty.", "ErrorInvalidParameter")
        hidden = _param(data, "isHidden")
        with self.state.lock:
            parent = self._folder(mailbox, params.get("folder", ROOT_FOLDER))
            folder = self.state.create_folder(
                mailbox, name, parent=parent.id, is_hidden=_as_bool(hidden) if hidden is not None else False
            )
            body = {
                "@odata.context": f"{request.base_url}/$metadata#users('{quote(mailbox.address)}')/mailFolders/$entity",
                **folder_json(self.state, mailbox, folder),
            }
        return GraphResponse(201, body)

    async def delete_folder(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """DELETE /users/{id}/mailFolders/{id} -> 204: the folder, with what it holds, goes to Deleted Items.

        Exchange soft-deletes a folder into Deleted Items; a well-known (distinguished) folder cannot be deleted.
        """
        del request
        assert mailbox is not None
        with self.state.lock:
            folder = self._folder(mailbox, params["folder"])
            if folder.well_known:
                raise _bad_request("Distinguished folders cannot be deleted.", "ErrorDeleteDistinguishedFolder")
            folder.parent_id = self.state.resolve_folder(mailbox, "deleteditems").id
        return GraphResponse(204)

    async def get_user(self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None) -> GraphResponse:
        """GET /users/{id}: the few user properties a mail integration looks at."""
        del params
        assert mailbox is not None
        return GraphResponse(
            200,
            {
                "@odata.context": f"{request.base_url}/$metadata#users/$entity",
                "id": mailbox.id,
                "displayName": mailbox.display_name,
                "mail": mailbox.address,
                "userPrincipalName": mailbox.address,
            },
        )

    # ----- handlers: attachments ---------------------------------------------------------------------------------
    _ATTACHMENT_PROPERTIES = frozenset(
        (
            "id",
            "name",
            "contentType",
            "size",
            "isInline",
            "lastModifiedDateTime",
            "contentBytes",
            "contentId",
            "contentLocation",
        )
    )

    async def list_attachments(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /users/{id}/messages/{id}/attachments (``$select=id,name,size`` leaves contentBytes out)."""
        assert mailbox is not None
        select = self._select(request, self._ATTACHMENT_PROPERTIES, "attachment")
        with self.state.lock:
            message = self._message(mailbox, params)
            values = [attachment_json(a, select=select) for a in message.attachments]
        return GraphResponse(
            200,
            {
                "@odata.context": f"{request.base_url}/$metadata#users('{quote(mailbox.address)}')/messages"
                f"('{message.id_for(immutable=request.immutable_ids)}')/attachments",
                "value": values,
            },
        )

    def _attachment(self, mailbox: Mailbox, params: dict[str, str]) -> tuple[StoredMessage, Any]:
        message = self._message(mailbox, params)
        for attachment in message.attachments:
            if attachment.id == params["attachment"]:
                return message, attachment
        _check_id(params["attachment"])
        raise item_not_found()

    async def get_attachment(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /users/{id}/messages/{id}/attachments/{id}."""
        assert mailbox is not None
        select = self._select(request, self._ATTACHMENT_PROPERTIES, "attachment")
        with self.state.lock:
            _, attachment = self._attachment(mailbox, params)
            body = attachment_json(attachment, select=select)
        return GraphResponse(200, body)

    async def get_attachment_content(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /users/{id}/messages/{id}/attachments/{id}/$value: the raw bytes."""
        del request
        assert mailbox is not None
        with self.state.lock:
            _, attachment = self._attachment(mailbox, params)
        return GraphResponse(200, attachment.content, content_type=attachment.content_type)

    async def delete_attachment(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """DELETE /users/{id}/messages/{id}/attachments/{id} -> 204."""
        del request
        assert mailbox is not None
        with self.state.lock:
            message, attachment = self._attachment(mailbox, params)
            message.attachments.remove(attachment)
            self.state.touch(message)
        return GraphResponse(204)

    async def add_attachment(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /users/{id}/messages/{id}/attachments (a fileAttachment under 3 MB) -> 201."""
        assert mailbox is not None
        parsed = _parse_attachments([_json_body(request)])[0]
        with self.state.lock:
            message = self._message(mailbox, params)
            stored = self.state.add_attachment(mailbox, message, parsed)
            body = {
                "@odata.context": f"{request.base_url}/$metadata#users('{quote(mailbox.address)}')/messages"
                f"('{message.id_for(immutable=request.immutable_ids)}')/attachments/$entity",
                **attachment_json(stored),
            }
        return GraphResponse(201, body)

    async def create_upload_session(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /users/{id}/messages/{id}/attachments/createUploadSession {AttachmentItem} -> 201 uploadSession."""
        assert mailbox is not None
        item = _param(_json_body(request), "AttachmentItem")
        if not isinstance(item, dict):
            raise _bad_request("The value of the parameter 'AttachmentItem' is empty.", "ErrorInvalidParameter")
        if str(_param(item, "attachmentType") or "file").lower() != "file":
            raise _bad_request("Only attachmentType 'file' is supported.", "ErrorInvalidParameter")
        name = _param(item, "name")
        size = _param(item, "size")
        if not isinstance(name, str) or not name:
            raise _bad_request("The attachment name is missing.", "ErrorInvalidParameter")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise _bad_request("The attachment size is missing or not a positive number.", "ErrorInvalidParameter")
        if size > MAX_UPLOAD_SESSION_BYTES:
            raise GraphError(
                400, "ErrorAttachmentSizeLimitExceeded", "The attachment exceeds the maximum size of 150 MB."
            )
        with self.state.lock:
            message = self._message(mailbox, params)
            session = UploadSession(
                id=secrets.token_urlsafe(24),
                mailbox=mailbox.address,
                message_id=message.immutable_id,
                name=name,
                size=size,
                content_type=str(_param(item, "contentType") or "application/octet-stream"),
                is_inline=bool(_param(item, "isInline") or False),
                content_id=_param(item, "contentId"),
                expires=now_utc() + timedelta(hours=6),
            )
            self.state.upload_sessions[session.id] = session
        origin = request.base_url.removesuffix("/v1.0")
        return GraphResponse(
            201,
            {
                "@odata.context": f"{request.base_url}/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": f"{origin}/_upload/{session.id}?authtoken={secrets.token_urlsafe(32)}",
                "expirationDateTime": session.expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                "nextExpectedRanges": ["0-"],
            },
        )

    async def upload_chunk(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI endpoint for ``PUT {uploadUrl}`` (pre-authenticated: no Authorization header needed) and DELETE."""
        request = Request(scope, receive)
        body = await request.body()
        graph_request = GraphRequest(
            method=request.method.upper(),
            path=scope["path"],
            query={},
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            base_url=f"{request.url.scheme}://{request.url.netloc}/v1.0",
            client_request_id=request.headers.get("client-request-id") or str(uuid.uuid4()),
        )
        session_id = scope["path_params"]["session"]
        try:
            response = self._upload(graph_request, session_id)
        except GraphError as error:
            response = GraphResponse(error.status, _error_body(error, graph_request), dict(error.headers))
        self.request_log.add(
            RequestRecord(
                RequestLog.now(), graph_request.method, "/_upload", "attachment.upload", None, response.status
            )
        )
        await self._send(response, graph_request, send)

    def _upload(self, request: GraphRequest, session_id: str) -> GraphResponse:
        with self.state.lock:
            session = self.state.upload_sessions.get(session_id)
            if session is None or session.expires < now_utc():
                raise GraphError(404, "ErrorItemNotFound", "The upload session was not found or has expired.")
            if request.method == "DELETE":
                del self.state.upload_sessions[session_id]
                return GraphResponse(204)
            if request.method != "PUT":
                raise GraphError(405, "ErrorInvalidRequest", "Use PUT to upload a chunk.")
            match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", request.header("content-range") or "")
            if not match:
                raise GraphError(400, "ErrorInvalidRequest", "The Content-Range header is missing or malformed.")
            start, end, total = (int(g) for g in match.groups())
            if total != session.size:
                raise GraphError(
                    400,
                    "ErrorInvalidRequest",
                    f"The total size {total} does not match the session's size {session.size}.",
                )
            if start != len(session.received) or end < start or end >= total or len(request.body) != end - start + 1:
                raise GraphError(
                    416,
                    "ErrorInvalidRange",
                    f"The uploaded range does not match the expected range {len(session.received)}-.",
                )
            session.received.extend(request.body)
            if len(session.received) < session.size:
                return GraphResponse(
                    200,
                    {
                        "expirationDateTime": session.expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                        "nextExpectedRanges": [str(len(session.received))],
                    },
                )
            mailbox = self.state.mailbox(session.mailbox)
            message = self.state.find_message(mailbox, session.message_id)
            stored = self.state.add_attachment(
                mailbox,
                message,
                ParsedAttachment(
                    session.name, session.content_type, bytes(session.received), session.is_inline, session.content_id
                ),
            )
            del self.state.upload_sessions[session_id]
            location = (
                f"{request.base_url}/users('{mailbox.id}')/messages('{message.rest_id}')/attachments('{stored.id}')"
            )
            return GraphResponse(201, None, {"Location": location})

    # ----- handlers: subscriptions -------------------------------------------------------------------------------
    async def create_subscription(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /subscriptions: validates the endpoints (handshake) before answering 201."""
        del params, mailbox
        data = _json_body(request)
        change_type = _param(data, "changeType")
        url = _param(data, "notificationUrl")
        resource = _param(data, "resource")
        expiration_text = _param(data, "expirationDateTime")
        client_state = _param(data, "clientState")
        lifecycle_url = _param(data, "lifecycleNotificationUrl")
        for name, value in (
            ("changeType", change_type),
            ("notificationUrl", url),
            ("resource", resource),
            ("expirationDateTime", expiration_text),
        ):
            if not isinstance(value, str) or not value:
                raise _bad_request(f"The property '{name}' is required.", "InvalidRequest")
        assert isinstance(change_type, str)
        assert isinstance(url, str)
        assert isinstance(resource, str)
        assert isinstance(expiration_text, str)
        for part in change_type.split(","):
            if part.strip() not in ("created", "updated", "deleted"):
                raise _bad_request(f"'{part}' is not a valid change type.", "InvalidRequest")
        if client_state is not None and len(str(client_state)) > _CLIENT_STATE_MAX:
            raise _bad_request("clientState must not be longer than 128 characters.", "InvalidRequest")
        for target in filter(None, [url, lifecycle_url]):
            _check_notification_url(str(target))
        expiration = self._expiration(expiration_text)
        mailbox_ref, folder_ref = _parse_resource(resource)
        target_mailbox = self._mailbox(mailbox_ref)
        folder_id = self._folder(target_mailbox, folder_ref).id if folder_ref else None
        if not await validate_notification_url(url):
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                "validation request.",
            )
        if lifecycle_url and not await validate_notification_url(str(lifecycle_url)):
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Lifecycle notification endpoint must respond with 200 OK "
                "to validation request.",
            )
        subscription = Subscription(
            id=str(uuid.uuid4()),
            resource=resource,
            change_type=change_type,
            notification_url=url,
            expiration=expiration,
            client_state=str(client_state) if client_state is not None else None,
            lifecycle_notification_url=str(lifecycle_url) if lifecycle_url else None,
            mailbox=target_mailbox.address,
            folder_id=folder_id,
            application_id=self.application_id,
            creator_id=self.application_id,
            immutable_ids=request.immutable_ids,
        )
        with self.state.lock:
            self.state.subscriptions[subscription.id] = subscription
        return GraphResponse(
            201,
            {
                "@odata.context": f"{request.base_url}/$metadata#subscriptions/$entity",
                **subscription_json(subscription),
            },
        )

    def _expiration(self, text: str) -> datetime:
        try:
            expiration = _parse_datetime(text)
        except ValueError:
            raise _bad_request(f"'{text}' is not a valid expirationDateTime.", "InvalidRequest") from None
        now = now_utc()
        if expiration <= now:
            raise _bad_request("Subscription expiration must be in the future.", "InvalidRequest")
        if expiration > now + timedelta(minutes=self.subscription_max_minutes):
            raise _bad_request(
                f"Subscription expiration can only be {self.subscription_max_minutes} minutes in the future.",
                "InvalidRequest",
            )
        return expiration

    def _subscription(self, params: dict[str, str]) -> Subscription:
        subscription = self.state.subscriptions.get(params["subscription"])
        if subscription is None:
            raise GraphError(404, "ResourceNotFound", f"The object '{params['subscription']}' was not found.")
        return subscription

    async def list_subscriptions(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /subscriptions."""
        del params, mailbox
        with self.state.lock:
            values = [subscription_json(s) for s in self.state.subscriptions.values()]
        return GraphResponse(200, {"@odata.context": f"{request.base_url}/$metadata#subscriptions", "value": values})

    async def get_subscription(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """GET /subscriptions/{id}."""
        del mailbox
        with self.state.lock:
            body = subscription_json(self._subscription(params))
        return GraphResponse(200, {"@odata.context": f"{request.base_url}/$metadata#subscriptions/$entity", **body})

    async def update_subscription(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """PATCH /subscriptions/{id} {expirationDateTime[, notificationUrl]} -> 200 (renewal)."""
        del mailbox
        data = _json_body(request)
        with self.state.lock:
            subscription = self._subscription(params)
        expiration_text = _param(data, "expirationDateTime")
        new_url = _param(data, "notificationUrl")
        if _param(data, "lifecycleNotificationUrl") is not None:
            raise _bad_request(
                "lifecycleNotificationUrl can only be set when the subscription is created.", "InvalidRequest"
            )
        if expiration_text is not None:
            subscription.expiration = self._expiration(str(expiration_text))
        if new_url is not None:
            _check_notification_url(str(new_url))
            if not await validate_notification_url(str(new_url)):
                raise GraphError(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                    "validation request.",
                )
            subscription.notification_url = str(new_url)
        return GraphResponse(
            200,
            {
                "@odata.context": f"{request.base_url}/$metadata#subscriptions/$entity",
                **subscription_json(subscription),
            },
        )

    async def delete_subscription(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """DELETE /subscriptions/{id} -> 204."""
        del request, mailbox
        with self.state.lock:
            self._subscription(params)
            del self.state.subscriptions[params["subscription"]]
        return GraphResponse(204)

    async def reauthorize_subscription(
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /subscriptions/{id}/reauthorize -> 204."""
        del request, mailbox
        with self.state.lock:
            self._subscription(params)
        return GraphResponse(204)

    # ----- handlers: $batch --------------------------------------------------------------------------------------
    async def batch(  # noqa: C901, PLR0912, PLR0915 - validation steps of the batch envelope, then the fan-out
        self, request: GraphRequest, params: dict[str, str], mailbox: Mailbox | None
    ) -> GraphResponse:
        """POST /$batch: up to 20 items, each routed, throttled and logged on its own; always 200 overall."""
        del params, mailbox
        data = _json_body(request)
        items = _param(data, "requests")
        if not isinstance(items, list) or not items:
            raise _bad_request("Invalid batch payload format.", "BadRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise _bad_request(f"The number of requests in a batch is limited to {MAX_BATCH_ITEMS}.", "BadRequest")
        ids = [str(item.get("id", "")) if isinstance(item, dict) else "" for item in items]
        if any(not i for i in ids):
            raise _bad_request("Each batch request must have an 'id'.", "BadRequest")
        if len(set(ids)) != len(ids):
            raise _bad_request("Batch request contains duplicate request ids.", "BadRequest")
        for item in items:
            # Only 'dependsOn' sequences items; msgraph-sdk's 'depends_on' spelling is ignored, as Graph does.
            for dependency in item.get("dependsOn") or []:
                if str(dependency) not in ids:
                    raise _bad_request(f"The dependsOn id '{dependency}' does not exist in the batch.", "BadRequest")
        loop = asyncio.get_running_loop()
        done: dict[str, asyncio.Future[GraphResponse]] = {i: loop.create_future() for i in ids}
        latency_ends: dict[str, float | None] = {}
        gate = asyncio.Semaphore(BATCH_PARALLELISM)

        async def run(item: dict[str, Any]) -> GraphResponse:
            item_id = str(item["id"])
            try:
                # An item's latency counts from the latest of the envelope's end, its dependencies' ends and (if
                # it waited behind the batch's parallelism) the moment a place came free.
                starts = [request.latency_end]
                for dependency in item.get("dependsOn") or []:
                    previous = await asyncio.shield(done[str(dependency)])
                    if previous.status >= 400:  # noqa: PLR2004
                        error = GraphError(424, "FailedDependency", "The dependent request failed.")
                        response = GraphResponse(424, _error_body(error, request))
                        done[item_id].set_result(response)
                        return response
                    starts.append(latency_ends.get(str(dependency)))
                waited = gate.locked()
                async with gate:
                    item_request = self._batch_item(request, item)
                    item_request.latency_start = _latest([*starts, loop.time() if waited else None])
                    response = await self.handle(item_request, in_batch=True)
                    latency_ends[item_id] = item_request.latency_end
            except BaseException as error:
                if not done[item_id].done():
                    done[item_id].set_exception(error)
                raise
            done[item_id].set_result(response)
            return response

        results = await asyncio.gather(*(run(item) for item in items), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        responses = []
        dropped = False
        for item_id, result in zip(ids, results, strict=True):
            assert isinstance(result, GraphResponse)
            dropped = dropped or result.drop
            entry: dict[str, Any] = {"id": item_id, "status": result.status}
            payload, content_type = result.encoded()
            headers = dict(result.headers)
            if content_type:
                headers["Content-Type"] = content_type
            entry["headers"] = headers
            if isinstance(result.body, dict):
                entry["body"] = result.body
            elif isinstance(result.body, bytes):
                entry["body"] = base64.b64encode(payload).decode("ascii")
            responses.append(entry)
        return GraphResponse(200, {"responses": responses}, drop=dropped)

    def _batch_item(self, request: GraphRequest, item: dict[str, Any]) -> GraphRequest:
        method = str(item.get("method") or "").upper()
        url = str(item.get("url") or "")
        if not method or not url:
            raise _bad_request("Each batch request needs 'method' and 'url'.", "BadRequest")
        split = urlsplit(url)
        path = split.path
        path = re.sub(r"^/*v1\.0(?=/)", "", path)
        if not path.startswith("/"):
            path = "/" + path
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        body_value = item.get("body")
        if body_value is None:
            body = b""
        elif isinstance(body_value, str):
            body = body_value.encode()
        else:
            body = json.dumps(body_value).encode()
        if body and "content-type" not in headers:
            headers["content-type"] = "application/json"
        return GraphRequest(
            method=method,
            path=unquote(path),
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={"authorization": request.header("authorization") or "", **headers},
            body=body,
            base_url=request.base_url,
            client_request_id=request.client_request_id,
        )


# ----- helpers used by handlers ------------------------------------------------------------------------------------
def _decode_mime(body: bytes) -> bytes:
    compact = re.sub(rb"\s+", b"", body)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not raw:
        raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
    return raw


def _draft_mime(message: StoredMessage) -> bytes:
    return build_mime(
        OutgoingMessage(
            from_=message.from_ or ("", message.mailbox),
            sender=message.sender,
            to=message.to,
            cc=message.cc,
            bcc=message.bcc,
            reply_to=message.reply_to,
            subject=message.subject or "",
            body_type=message.body_type,
            body=message.body,
            message_id=message.internet_message_id or "",
            date=message.modified,
            importance=message.importance,
            headers=message.headers,
            attachments=[
                ParsedAttachment(a.name, a.content_type, a.content, a.is_inline, a.content_id, a.is_item)
                for a in message.attachments
            ],
        ),
        include_bcc=True,
    )


def _apply_fields(message: StoredMessage, fields: dict[str, Any]) -> None:
    mapping = {
        "subject": "subject",
        "body_type": "body_type",
        "body": "body",
        "to": "to",
        "cc": "cc",
        "bcc": "bcc",
        "reply_to": "reply_to",
        "from_": "from_",
        "sender": "sender",
        "importance": "importance",
        "categories": "categories",
        "flag": "flag",
        "headers": "headers",
        "is_read_receipt_requested": "is_read_receipt_requested",
        "is_delivery_receipt_requested": "is_delivery_receipt_requested",
    }
    for key, value in fields.items():
        if key in mapping:
            setattr(message, mapping[key], value)


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"Invalid $top value '{raw}'.", "ErrorInvalidUrlQuery") from None
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise _bad_request(f"The $top value must be between 1 and {MAX_PAGE_SIZE}.", "ErrorInvalidUrlQuery")
    return value


def _non_negative(raw: str | None, name: str) -> int:
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise _bad_request(f"Invalid {name} value '{raw}'.", "ErrorInvalidUrlQuery")
    return value


def _max_page_size(request: GraphRequest) -> int | None:
    raw = request.prefer.get("odata.maxpagesize")
    if raw is None:
        return None
    try:
        return max(1, min(MAX_PAGE_SIZE, int(raw)))
    except ValueError:
        return None


def _parse_orderby(raw: str | None) -> list[tuple[str, str]]:
    if not raw:
        return []
    out = []
    for part in raw.split(","):
        words = part.split()
        if not words:
            continue
        canonical = _ORDERBY_PROPERTIES.get(words[0].lower())
        if canonical is None:
            raise _bad_request(
                f"Could not find a property named '{words[0]}' on type 'Microsoft.OutlookServices.Message'."
            )
        direction = words[1].lower() if len(words) > 1 else "asc"
        if direction not in ("asc", "desc"):
            raise _bad_request(f"Invalid $orderby direction '{words[1]}'.")
        out.append((canonical, direction))
    return out


def _matches(message: StoredMessage, groups: list[list[_Condition]]) -> bool:
    return not groups or any(
        all(_compare(_property_value(message, c.property), c.operator, c.value) for c in group) for group in groups
    )


def _sort_by(name: str) -> Callable[[StoredMessage], tuple[int, Any]]:
    return lambda message: _sort_key(_property_value(message, name))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, value.lower())
    return (1, value)


def _next_link(request: GraphRequest, skip: int, top: int) -> str:
    """Build the nextLink Graph would: the same query with $top and $skip (user id with a raw '@')."""
    parts = [f"$top={top}", f"$skip={skip}"]
    for key, value in request.query.items():
        if key.lower().lstrip("$") in ("top", "skip"):
            continue
        parts.append(f"{key}={quote(value, safe=_QUERY_SAFE)}")
    return f"{request.base_url}{_canonical_path(request.path)}?{'&'.join(parts)}"


_QUERY_SAFE = ",'()$:"


def _canonical_path(path: str) -> str:
    return "/" + "/".join(quote(s, safe="@'()=") for s in _split_segments(path))


def _check_notification_url(url: str) -> None:
    split = urlsplit(url)
    loopback = split.hostname in ("127.0.0.1", "localhost", "::1")
    if split.scheme != "https" and not (split.scheme == "http" and loopback):
        raise _bad_request(
            "Subscription validation request failed. NotificationUrl must be an HTTPS URL (the dev tenant also "
            "accepts http on loopback).",
            "ValidationError",
        )


def _parse_resource(resource: str) -> tuple[str, str | None]:
    segments = _split_segments(resource.split("?", maxsplit=1)[0])
    lowered = [s.lower() for s in segments]
    if len(segments) == 3 and lowered[0] == "users" and lowered[2] == "messages":  # noqa: PLR2004
        return segments[1], None
    if len(segments) == 5 and lowered[0] == "users" and lowered[2] == "mailfolders" and lowered[4] == "messages":  # noqa: PLR2004
        return segments[1], segments[3]
    raise _bad_request(
        f"Resource '{resource}' is not supported; use users/{{id}}/messages or "
        "users/{id}/mailFolders('{folder}')/messages.",
        "InvalidRequest",
    )


def _match(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for expected, actual in zip(pattern, segments, strict=True):
        if expected.startswith("{"):
            params[expected[1:-1]] = actual
        elif expected.lower() != actual.lower():
            return None
    return params


def _message_routes(prefix: tuple[str, ...]) -> list[_Route]:
    m = (*prefix, "{message}")
    E = GraphEmulator  # noqa: N806 - short alias keeps the table readable
    return [
        _Route("GET", (*m, "$value"), "message.mime", E.get_mime),
        _Route("POST", (*m, "send"), "message.send", E.send_draft),
        _Route("POST", (*m, "move"), "message.move", E.move_message),
        _Route("POST", (*m, "copy"), "message.copy", E.copy_message),
        *(
            _Route("POST", (*m, action), f"message.{action}", E.create_response)
            for action in ("createReply", "createReplyAll", "createForward", "reply", "replyAll", "forward")
        ),
        _Route(
            "POST",
            (*m, "attachments", "createUploadSession"),
            "attachment.createUploadSession",
            E.create_upload_session,
        ),
        _Route("GET", (*m, "attachments"), "attachment.list", E.list_attachments),
        _Route("POST", (*m, "attachments"), "attachment.create", E.add_attachment),
        _Route("GET", (*m, "attachments", "{attachment}", "$value"), "attachment.content", E.get_attachment_content),
        _Route("GET", (*m, "attachments", "{attachment}"), "attachment.get", E.get_attachment),
        _Route("DELETE", (*m, "attachments", "{attachment}"), "attachment.delete", E.delete_attachment),
        _Route("GET", m, "message.get", E.get_message),
        _Route("PATCH", m, "message.update", E.update_message),
        _Route("DELETE", m, "message.delete", E.delete_message),
    ]


_USER = ("users", "{user}")
_FOLDER = (*_USER, "mailFolders", "{folder}")
_ROUTES: list[_Route] = [
    _Route("POST", ("$batch",), "batch", GraphEmulator.batch),
    _Route("GET", ("subscriptions",), "subscription.list", GraphEmulator.list_subscriptions),
    _Route("POST", ("subscriptions",), "subscription.create", GraphEmulator.create_subscription),
    _Route(
        "POST",
        ("subscriptions", "{subscription}", "reauthorize"),
        "subscription.reauthorize",
        GraphEmulator.reauthorize_subscription,
    ),
    _Route("GET", ("subscriptions", "{subscription}"), "subscription.get", GraphEmulator.get_subscription),
    _Route("PATCH", ("subscriptions", "{subscription}"), "subscription.update", GraphEmulator.update_subscription),
    _Route("DELETE", ("subscriptions", "{subscription}"), "subscription.delete", GraphEmulator.delete_subscription),
    _Route("GET", _USER, "user.get", GraphEmulator.get_user),
    _Route("POST", (*_USER, "sendMail"), "sendMail", GraphEmulator.send_mail),
    _Route("GET", (*_USER, "mailFolders"), "folder.list", GraphEmulator.list_folders),
    _Route("POST", (*_USER, "mailFolders"), "folder.create", GraphEmulator.create_folder),
    _Route("GET", (*_FOLDER, "childFolders"), "folder.list", GraphEmulator.list_folders),
    _Route("POST", (*_FOLDER, "childFolders"), "folder.create", GraphEmulator.create_folder),
    _Route("GET", (*_FOLDER, "messages", "delta"), "message.delta", GraphEmulator.delta),
    _Route("GET", (*_FOLDER, "messages", "$count"), "message.count", GraphEmulator.count_messages),
    _Route("GET", (*_USER, "messages", "$count"), "message.count", GraphEmulator.count_messages),
    _Route("GET", (*_FOLDER, "messages"), "message.list", GraphEmulator.list_messages),
    _Route("POST", (*_FOLDER, "messages"), "message.create", GraphEmulator.create_message),
    _Route("GET", _FOLDER, "folder.get", GraphEmulator.get_folder),
    _Route("DELETE", _FOLDER, "folder.delete", GraphEmulator.delete_folder),
    _Route("GET", (*_USER, "messages"), "message.list", GraphEmulator.list_messages),
    _Route("POST", (*_USER, "messages"), "message.create", GraphEmulator.create_message),
    *_message_routes((*_FOLDER, "messages")),
    *_message_routes((*_USER, "messages")),
]
