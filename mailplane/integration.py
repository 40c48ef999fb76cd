"""The runtime integration config (JSON): validated by schema and by meaning, then typed.

Pure: reads a file or takes a dict, never imports the custom handler, never reads the environment. The sender, the
importer, the notification receiver and ``mailplane validate`` all go through :func:`integration_problems` /
:func:`load_integration_config`, so they accept and reject the same files.

Schema errors come from ``schemas/integration.schema.json`` (via :func:`mailplane.schema.schema_problems`); the
semantic checks here catch what a schema cannot: references between sections, mapped fields that do not exist,
unknown merge codes, cron expressions, loopback-only plain http, duplicate accounts.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from croniter import croniter

from mailplane.exceptions import ConfigProblem, IntegrationConfigError
from mailplane.schema import load_schema, schema_problems
from mailplane.templates import (
    PERSONALIZED_CODES,
    MergeContext,
    RenderedMessage,
    merge_code_problems,
    merge_codes_in,
    render_template,
)

__all__ = [
    "DEFAULT_GRAPH_BASE_URL",
    "MESSAGE_PROPERTIES",
    "RECORD_ATTRIBUTES",
    "SCHEMA",
    "ApplicationSettings",
    "ChangeNotifications",
    "ConversationMapping",
    "DefaultSource",
    "DesignatedMailbox",
    "FollowerParent",
    "FollowerSettings",
    "IntegrationConfig",
    "LookupSource",
    "MessageSource",
    "MessageTemplate",
    "PropertySource",
    "RecordField",
    "RecordShape",
    "RecordType",
    "RecoverySettings",
    "SendingLimits",
    "SharedAccount",
    "StoreSettings",
    "WebhookSink",
    "integration_problems",
    "load_integration_config",
    "read_integration_file",
]

SCHEMA = "integration.schema.json"
DEFAULT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
_MIB = 1024 * 1024
_LOOPBACK_NAMES = frozenset({"localhost"})

Scalar = str | int | float | bool | None
Participation = Literal["participant", "observer"]
HeaderName = Literal["from", "to", "cc"]
RecordKind = Literal["conversation", "message", "follower", "messageFollower", "document", "embeddedFile"]

MESSAGE_PROPERTIES: tuple[str, ...] = tuple(load_schema(SCHEMA)["$defs"]["messageProperty"]["enum"])
"""Message properties a field can be filled from (the schema's ``$defs/messageProperty``)."""

RECORD_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "conversation": (
        "id", "mailbox", "subject", "parentType", "parentId", "graphConversationId", "createdAt", "updatedAt",
        "messageCount",
    ),
    "message": (
        "id", "conversation", "mailbox", "graphMessageId", "internetMessageId", "inReplyTo", "references", "subject",
        "textBody", "htmlBody", "bodyPreview", "fromAddress", "fromName", "senderAddress", "replyToAddress",
        "toAddresses", "ccAddresses", "receivedAt", "sentAt", "importance", "categories", "hasAttachments",
        "skippedAttachments",
    ),
    "follower": ("id", "conversation", "address", "name", "parentType", "parentId", "participation"),
    "messageFollower": ("id", "message", "follower", "header"),
    "document": (
        "id", "message", "conversation", "name", "contentType", "size", "sha256", "content", "skipped", "skipReason",
    ),
    "embeddedFile": ("id", "message", "conversation", "name", "contentType", "size", "sha256", "content", "contentId"),
}  # fmt: skip
"""The attributes the importer produces for each record kind; ``records.<kind>.fields`` values must be among them."""

_DEFAULT_RECORD_NAMES = {
    "conversation": "conversation",
    "message": "message",
    "follower": "follower",
    "messageFollower": "message_follower",
    "document": "document",
    "embeddedFile": "embedded_file",
}
WELL_KNOWN_FOLDERS = frozenset(
    {
        "archive", "clutter", "conflicts", "conversationhistory", "deleteditems", "drafts", "inbox", "junkemail",
        "localfailures", "msgfolderroot", "outbox", "recoverableitemsdeletions", "scheduled", "searchfolders",
        "sentitems", "serverfailures", "syncissues",
    }
)  # fmt: skip


# --- the typed config --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DesignatedMailbox:
    """The mailbox notifications are sent from."""

    address: str
    display_name: str
    reply_to: str | None = None
    save_to_sent_items: bool = False


@dataclass(frozen=True)
class MessageSource:
    """Fill a field from a property of the incoming message (one of :data:`MESSAGE_PROPERTIES`)."""

    property: str
    if_empty: Scalar = None
    max_length: int | None = None


@dataclass(frozen=True)
class DefaultSource:
    """Fill a field with a fixed value."""

    value: Scalar


@dataclass(frozen=True)
class LookupSource:
    """Find the ``record_type`` record whose ``where`` field equals the message property ``equals``; take ``take``.

    ``take`` is a path through reference fields, e.g. ``("company", "name")``.
    """

    record_type: str
    where: str
    equals: str
    take: tuple[str, ...]
    if_not_found: Scalar = None


PropertySource = MessageSource | DefaultSource | LookupSource


@dataclass(frozen=True)
class ConversationMapping:
    """What an incoming conversation becomes: a ``parent`` record whose fields are filled by ``properties``."""

    parent: str
    properties: Mapping[str, PropertySource] = field(default_factory=lambda: MappingProxyType({}))
    follower_parents: tuple[str, ...] = ()


@dataclass(frozen=True)
class SharedAccount:
    """A shared mailbox mail is imported from. ``failure_folder`` has the settings' default applied."""

    address: str
    display_name: str
    conversation: ConversationMapping
    failure_folder: str
    enabled: bool = True
    folder: str = "inbox"
    new_conversation_template: str | None = None
    new_message_template: str | None = None


@dataclass(frozen=True)
class RecordField:
    """A field of a record type. ``references`` is set for ``type == "reference"``."""

    name: str
    type: str = "string"
    references: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class RecordType:
    """A record type of the integrating product (ticket, person, company, ...)."""

    name: str
    fields: Mapping[str, RecordField]
    description: str | None = None


@dataclass(frozen=True)
class FollowerParent:
    """A record type matched by address to make followers."""

    record_type: str
    address_field: str
    participation: Participation = "participant"
    headers: tuple[HeaderName, ...] = ("from", "to", "cc")


@dataclass(frozen=True)
class FollowerSettings:
    """How addresses on a message become followers."""

    parents: tuple[FollowerParent, ...] = ()
    unmatched: Literal["address-only", "ignore"] = "address-only"
    exclude_own_mailboxes: bool = True


@dataclass(frozen=True)
class RecordShape:
    """The destination ``name`` of a record kind and ``fields``: destination field -> importer attribute."""

    kind: str
    name: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class MessageTemplate:
    """A notification template (subject and at least one body); merge codes are checked at load time."""

    name: str
    subject: str
    text: str | None = None
    html: str | None = None
    description: str | None = None

    def render(self, context: MergeContext) -> RenderedMessage:
        """Fill the merge codes for ``context`` (values HTML-escaped in the HTML body)."""
        return render_template(self.subject, context, text=self.text, html_body=self.html)

    @property
    def merge_codes(self) -> frozenset[str]:
        """Every merge code the template uses."""
        parts = (self.subject, self.text or "", self.html or "")
        return frozenset(code for part in parts for code in merge_codes_in(part))


@dataclass(frozen=True)
class RecoverySettings:
    """The scheduled recovery job."""

    enabled: bool = True
    grace_period: dt.timedelta = dt.timedelta(minutes=2)
    max_unread_age: dt.timedelta = dt.timedelta(days=7)
    max_failed_age: dt.timedelta = dt.timedelta(days=1)
    schedule: str = "*/20 * * * *"


@dataclass(frozen=True)
class ApplicationSettings:
    """Application settings (defaults as documented in the schema)."""

    recovery: RecoverySettings = field(default_factory=RecoverySettings)
    attachment_size_limit_bytes: int = 25 * _MIB
    failure_folder: str = "mailplane-failed"
    incoming_message_handler: str | None = None
    personalized_emails: bool = False


@dataclass(frozen=True)
class SendingLimits:
    """Per-mailbox sending limits the sender's rate governor enforces."""

    recipients_per_day: int = 10_000
    messages_per_minute: int = 30
    recipients_per_message: int = 500


@dataclass(frozen=True)
class StoreSettings:
    """Where state is kept. ``sqlite_path`` is absolute (resolved against the config file's directory)."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path | None = None
    dsn_env: str | None = None

    def postgres_dsn(self, environ: Mapping[str, str]) -> str:
        """The PostgreSQL connection string from ``environ`` (pass ``os.environ``). Raises ``KeyError`` when unset."""
        if self.backend != "postgres" or self.dsn_env is None:
            raise ValueError("the store is not PostgreSQL")
        return environ[self.dsn_env]


@dataclass(frozen=True)
class WebhookSink:
    """Post each imported conversation to ``url``, signed with the HMAC secret in the variable ``secret_env``."""

    url: str
    secret_env: str
    timeout_seconds: float = 10.0
    max_attempts: int = 10


@dataclass(frozen=True)
class ChangeNotifications:
    """Graph change notifications for ``mailplane serve``: where Graph reaches it and the clientState secret's variable.

    ``public_url`` has no trailing slash; Graph posts to :attr:`notification_url` and :attr:`lifecycle_url`.
    """

    public_url: str
    client_state_env: str = "MAILPLANE_CLIENT_STATE"
    subscription_minutes: int = 4230

    @property
    def notification_url(self) -> str:
        """Where Graph posts change notifications."""
        return f"{self.public_url}/notifications"

    @property
    def lifecycle_url(self) -> str:
        """Where Graph posts lifecycle notifications (reauthorizationRequired, subscriptionRemoved, missed)."""
        return f"{self.public_url}/lifecycle"


@dataclass(frozen=True)
class IntegrationConfig:
    """A validated integration config. Build it with :func:`load_integration_config`."""

    designated: DesignatedMailbox | None
    accounts: tuple[SharedAccount, ...]
    record_types: Mapping[str, RecordType]
    followers: FollowerSettings
    records: Mapping[str, RecordShape]
    multiple_destinations: bool
    templates: Mapping[str, MessageTemplate]
    settings: ApplicationSettings
    sending_limits: SendingLimits
    store: StoreSettings
    webhook_sink: WebhookSink | None
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL
    change_notifications: ChangeNotifications | None = None
    source: str = "<config>"

    def account(self, address: str) -> SharedAccount:
        """The shared account with ``address`` (case-insensitive). Raises ``KeyError``."""
        wanted = address.lower()
        for account in self.accounts:
            if account.address.lower() == wanted:
                return account
        raise KeyError(address)

    @property
    def mailboxes(self) -> tuple[str, ...]:
        """Every configured mailbox address (designated first), lower-cased, without duplicates."""
        seen: dict[str, None] = {}
        if self.designated is not None:
            seen[self.designated.address.lower()] = None
        for account in self.accounts:
            seen[account.address.lower()] = None
        return tuple(seen)


# --- reading -----------------------------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def read_integration_file(path: str | Path) -> Any:
    """Parse a JSON config file. Raises :class:`IntegrationConfigError` (missing file, bad JSON, duplicate keys)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IntegrationConfigError(source, [ConfigProblem((), "file not found. Check the path.")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrationConfigError(source, [ConfigProblem((), f"cannot be read: {exc}.")]) from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except _DuplicateKeyError as exc:
        raise IntegrationConfigError(
            source,
            [ConfigProblem((), f"key {exc.key!r} appears twice in one object; JSON keeps only one. Merge them.")],
        ) from None
    except json.JSONDecodeError as exc:
        raise IntegrationConfigError(
            source,
            [
                ConfigProblem(
                    (), f"is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}. Fix the syntax."
                )
            ],
        ) from None


# --- semantic checks ---------------------------------------------------------------------------------------------

_Path = tuple[str | int, ...]


def _did_you_mean(value: str, allowed: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return ""


def _allowed(names: list[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(names)) if names else "none declared"


def _url_problem(url: str, what: str) -> str | None:
    parts = urlsplit(url)
    if parts.username or parts.password:
        return f"{what} must not carry a user name or password; put credentials in the environment"
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host:
        if host in _LOOPBACK_NAMES:
            return None
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return (
            f"{what} {url!r} uses plain http on a non-loopback host; use https (http only for 127.0.0.1, ::1, "
            "localhost)"
        )
    return f"{what} {url!r} is not an http(s) URL with a host"


class _Checker:
    """Semantic checks on a document that already passed the schema."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.problems: list[ConfigProblem] = []
        self.record_types: dict[str, Any] = doc.get("recordTypes", {})

    def add(self, path: _Path, message: str, value: object = None) -> None:
        self.problems.append(ConfigProblem(path, message, value))

    def run(self) -> list[ConfigProblem]:
        self.check_accounts()
        self.check_record_types()
        self.check_followers()
        self.check_records()
        self.check_templates()
        self.check_settings()
        self.check_store()
        self.check_urls()
        return self.problems

    # accounts
    def check_accounts(self) -> None:
        accounts = self.doc["accounts"]
        shared = accounts.get("shared", [])
        if "designated" not in accounts and not shared:
            self.add(
                ("accounts",),
                "configures no mailbox; add accounts.designated (to send) or accounts.shared (to import)",
                accounts,
            )
        first_seen: dict[str, int] = {}
        for index, account in enumerate(shared):
            key = account["address"].lower()
            if key in first_seen:
                self.add(
                    ("accounts", "shared", index, "address"),
                    f"{account['address']!r} is already configured at accounts.shared[{first_seen[key]}]; "
                    "each shared mailbox may appear once",
                    account["address"],
                )
            else:
                first_seen[key] = index
            self.check_account(index, account)

    def check_account(self, index: int, account: dict[str, Any]) -> None:  # noqa: C901 - one pass over one account
        base: _Path = ("accounts", "shared", index)
        conversation = account["conversation"]
        parent = conversation["parent"]
        if self.require_record_type((*base, "conversation", "parent"), parent):
            fields = self.record_types[parent]["fields"]
            for name, source in conversation.get("properties", {}).items():
                path = (*base, "conversation", "properties", name)
                if name not in fields:
                    self.add(
                        path,
                        f"{name!r} is not a field of record type {parent!r}{_did_you_mean(name, tuple(fields))}; "
                        f"its fields: {_allowed(tuple(fields))}",
                        name,
                    )
                if "lookup" in source:
                    self.check_lookup((*path, "lookup"), source["lookup"])
        follower_types = [p["recordType"] for p in self.doc.get("followers", {}).get("parents", [])]
        for position, name in enumerate(conversation.get("followerParents", [])):
            if name not in follower_types:
                self.add(
                    (*base, "conversation", "followerParents", position),
                    f"{name!r} is not in followers.parents{_did_you_mean(name, follower_types)}; "
                    f"declared follower parents: {_allowed(follower_types)}",
                    name,
                )
        folder = account.get("folder", "inbox")
        failure = account.get("failureFolder", self.doc.get("settings", {}).get("failureFolder", "mailplane-failed"))
        if failure.lower() == folder.lower():
            where = (*base, "failureFolder") if "failureFolder" in account else ("settings", "failureFolder")
            self.add(
                where,
                f"{failure!r} is also the folder imported from ({folder!r}); failed messages would be imported "
                "again. Use a separate folder",
                failure,
            )
        elif failure.lower() in WELL_KNOWN_FOLDERS:
            where = (*base, "failureFolder") if "failureFolder" in account else ("settings", "failureFolder")
            self.add(
                where,
                f"{failure!r} is a well-known Exchange folder; use a folder of its own (e.g. 'mailplane-failed')",
                failure,
            )
        templates = self.doc.get("templates", {})
        for event, name in account.get("notifications", {}).items():
            path = (*base, "notifications", event)
            if name not in templates:
                self.add(
                    path,
                    f"template {name!r} is not defined{_did_you_mean(name, tuple(templates))}; "
                    f"defined templates: {_allowed(tuple(templates))}",
                    name,
                )
            elif "designated" not in self.doc["accounts"]:
                self.add(path, "notifications need a sending mailbox; add accounts.designated", name)

    def require_record_type(self, path: _Path, name: str) -> bool:
        if name in self.record_types:
            return True
        names = tuple(self.record_types)
        self.add(
            path,
            f"record type {name!r} is not declared in recordTypes{_did_you_mean(name, names)}; "
            f"declared: {_allowed(names)}",
            name,
        )
        return False

    def check_lookup(self, path: _Path, lookup: dict[str, Any]) -> None:
        record_type = lookup["recordType"]
        if not self.require_record_type((*path, "recordType"), record_type):
            return
        fields = self.record_types[record_type]["fields"]
        if lookup["where"] not in fields:
            self.add(
                (*path, "where"),
                f"{lookup['where']!r} is not a field of record type {record_type!r}"
                f"{_did_you_mean(lookup['where'], tuple(fields))}; its fields: {_allowed(tuple(fields))}",
                lookup["where"],
            )
        current = record_type
        segments = lookup["take"].split(".")
        for position, segment in enumerate(segments):
            current_fields = self.record_types[current]["fields"]
            if segment not in current_fields:
                self.add(
                    (*path, "take"),
                    f"{lookup['take']!r}: {segment!r} is not a field of record type {current!r}"
                    f"{_did_you_mean(segment, tuple(current_fields))}; its fields: {_allowed(tuple(current_fields))}",
                    lookup["take"],
                )
                return
            if position == len(segments) - 1:
                return
            spec = current_fields[segment]
            target = spec.get("references")
            if spec.get("type") != "reference" or target not in self.record_types:
                self.add(
                    (*path, "take"),
                    f"{lookup['take']!r}: {current}.{segment} is not a reference field, so the path cannot continue "
                    "past it; give it type 'reference' and 'references', or end the path there",
                    lookup["take"],
                )
                return
            current = target

    # record types
    def check_record_types(self) -> None:
        names = tuple(self.record_types)
        for type_name, record_type in self.record_types.items():
            for field_name, spec in record_type["fields"].items():
                path: _Path = ("recordTypes", type_name, "fields", field_name)
                kind = spec.get("type", "string")
                target = spec.get("references")
                if kind == "reference" and target is None:
                    self.add(path, "a 'reference' field needs 'references': the record type it points at", spec)
                elif kind != "reference" and target is not None:
                    self.add(
                        (*path, "references"),
                        f"only fields of type 'reference' point at a record type; this field's type is {kind!r}",
                        target,
                    )
                elif target is not None and target not in self.record_types:
                    self.add(
                        (*path, "references"),
                        f"record type {target!r} is not declared in recordTypes{_did_you_mean(target, names)}; "
                        f"declared: {_allowed(names)}",
                        target,
                    )

    # followers
    def check_followers(self) -> None:
        seen: set[str] = set()
        for index, parent in enumerate(self.doc.get("followers", {}).get("parents", [])):
            path: _Path = ("followers", "parents", index)
            name = parent["recordType"]
            if name in seen:
                self.add(
                    (*path, "recordType"), f"{name!r} is already a follower parent; list each record type once", name
                )
            seen.add(name)
            if not self.require_record_type((*path, "recordType"), name):
                continue
            fields = self.record_types[name]["fields"]
            address_field = parent["addressField"]
            if address_field not in fields:
                self.add(
                    (*path, "addressField"),
                    f"{address_field!r} is not a field of record type {name!r}"
                    f"{_did_you_mean(address_field, tuple(fields))}; its fields: {_allowed(tuple(fields))}",
                    address_field,
                )
            elif fields[address_field].get("type", "string") not in ("email", "string"):
                self.add(
                    (*path, "addressField"),
                    f"{name}.{address_field} has type {fields[address_field]['type']!r}; an address field must be of "
                    "type 'email' or 'string'",
                    address_field,
                )

    # record shapes
    def check_records(self) -> None:
        for kind, shape in self.doc.get("records", {}).items():
            allowed = RECORD_ATTRIBUTES[kind]
            for destination, attribute in shape.get("fields", {}).items():
                if attribute not in allowed:
                    self.add(
                        ("records", kind, "fields", destination),
                        f"{attribute!r} is not an attribute of a {kind} record{_did_you_mean(attribute, allowed)}; "
                        f"attributes: {', '.join(allowed)}",
                        attribute,
                    )

    # templates
    def check_templates(self) -> None:
        personalized = self.doc.get("settings", {}).get("personalizedEmails", False)
        templates = self.doc.get("templates", {})
        if templates and "designated" not in self.doc["accounts"]:
            self.add(("templates",), "templates are sent from accounts.designated, which is not configured", None)
        for name, template in templates.items():
            for part in ("subject", "text", "html"):
                if part not in template:
                    continue
                path: _Path = ("templates", name, part)
                text = template[part]
                for message in merge_code_problems(text):
                    self.add(path, message, text)
                used = sorted(set(merge_codes_in(text)) & PERSONALIZED_CODES)
                if used and not personalized:
                    codes = ", ".join(f"{{{{{code}}}}}" for code in used)
                    self.add(
                        path,
                        f"uses {codes}, which needs one message per recipient; set settings.personalizedEmails to true "
                        "or use followers.* codes",
                        text,
                    )

    # settings
    def check_settings(self) -> None:
        recovery = self.doc.get("settings", {}).get("recovery", {})
        schedule = recovery.get("schedule")
        if schedule is not None:
            path: _Path = ("settings", "recovery", "schedule")
            fields = schedule.split()
            if len(fields) != 5:  # noqa: PLR2004 - five cron fields: minute hour day month weekday
                self.add(
                    path,
                    f"{schedule!r} has {len(fields)} fields; use a five-field cron expression "
                    "(minute hour day-of-month month day-of-week), e.g. '*/20 * * * *'",
                    schedule,
                )
            elif not croniter.is_valid(schedule):
                self.add(path, f"{schedule!r} is not a valid cron expression, e.g. '*/20 * * * *'", schedule)

    def check_store(self) -> None:
        store = self.doc.get("store", {})
        backend = store.get("backend", "sqlite")
        wrong = "dsnEnv" if backend == "sqlite" else "path"
        if wrong in store:
            self.add(
                ("store", wrong),
                f"{wrong!r} does not apply to the {backend} backend; "
                + (
                    "set backend to 'postgres' or remove it"
                    if backend == "sqlite"
                    else "remove it (or use backend 'sqlite')"
                ),
                store[wrong] if wrong == "path" else None,
            )

    def check_urls(self) -> None:
        sink = self.doc.get("webhookSink")
        if sink is not None:
            problem = _url_problem(sink["url"], "the webhook URL")
            if problem:
                self.add(("webhookSink", "url"), problem, sink["url"])
        notifications = self.doc.get("changeNotifications")
        if notifications is not None:
            public_url = notifications["publicUrl"]
            problem = _url_problem(public_url, "the public notification URL")
            if problem is None and (urlsplit(public_url).query or urlsplit(public_url).fragment):
                problem = "the public notification URL must not have a query or fragment"
            if problem:
                self.add(("changeNotifications", "publicUrl"), problem, public_url)
        base_url = self.doc.get("graph", {}).get("baseUrl")
        if base_url is not None:
            problem = _url_problem(base_url, "the Graph base URL")
            if problem:
                self.add(("graph", "baseUrl"), problem, base_url)
            elif urlsplit(base_url).query or urlsplit(base_url).fragment:
                self.add(("graph", "baseUrl"), "the Graph base URL must not have a query or fragment", base_url)


def integration_problems(document: Any) -> list[ConfigProblem]:
    """Every finding for a parsed config: schema problems (best match first); if none, the semantic checks."""
    problems = schema_problems(SCHEMA, document)
    if problems:
        return problems
    return _Checker(document).run()


# --- building the typed config -----------------------------------------------------------------------------------


def _local_part(address: str) -> str:
    return address.split("@", 1)[0]


def _source(raw: dict[str, Any]) -> PropertySource:
    if "message" in raw:
        return MessageSource(raw["message"], raw.get("ifEmpty"), raw.get("maxLength"))
    if "default" in raw:
        return DefaultSource(raw["default"])
    lookup = raw["lookup"]
    return LookupSource(
        record_type=lookup["recordType"],
        where=lookup["where"],
        equals=lookup["equals"],
        take=tuple(lookup["take"].split(".")),
        if_not_found=lookup.get("ifNotFound"),
    )


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


def _build(doc: dict[str, Any], source: str, base_dir: Path) -> IntegrationConfig:
    settings_raw = doc.get("settings", {})
    recovery_raw = settings_raw.get("recovery", {})
    settings = ApplicationSettings(
        recovery=RecoverySettings(
            enabled=recovery_raw.get("enabled", True),
            grace_period=dt.timedelta(minutes=recovery_raw.get("gracePeriodMinutes", 2)),
            max_unread_age=dt.timedelta(days=recovery_raw.get("maxUnreadAgeDays", 7)),
            max_failed_age=dt.timedelta(hours=recovery_raw.get("maxFailedAgeHours", 24)),
            schedule=recovery_raw.get("schedule", "*/20 * * * *"),
        ),
        attachment_size_limit_bytes=int(settings_raw.get("attachmentSizeLimitMB", 25) * _MIB),
        failure_folder=settings_raw.get("failureFolder", "mailplane-failed"),
        incoming_message_handler=settings_raw.get("incomingMessageHandler"),
        personalized_emails=settings_raw.get("personalizedEmails", False),
    )
    accounts_raw = doc["accounts"]
    designated = None
    if "designated" in accounts_raw:
        raw = accounts_raw["designated"]
        designated = DesignatedMailbox(
            address=raw["address"],
            display_name=raw.get("displayName", _local_part(raw["address"])),
            reply_to=raw.get("replyTo"),
            save_to_sent_items=raw.get("saveToSentItems", False),
        )
    followers_raw = doc.get("followers", {})
    followers = FollowerSettings(
        parents=tuple(
            FollowerParent(
                record_type=p["recordType"],
                address_field=p["addressField"],
                participation=p.get("participation", "participant"),
                headers=tuple(p.get("headers", ("from", "to", "cc"))),
            )
            for p in followers_raw.get("parents", [])
        ),
        unmatched=followers_raw.get("unmatched", "address-only"),
        exclude_own_mailboxes=followers_raw.get("excludeOwnMailboxes", True),
    )
    all_follower_types = tuple(p.record_type for p in followers.parents)
    accounts = []
    for raw in accounts_raw.get("shared", []):
        conversation = raw["conversation"]
        notifications = raw.get("notifications", {})
        accounts.append(
            SharedAccount(
                address=raw["address"],
                display_name=raw.get("displayName", _local_part(raw["address"])),
                conversation=ConversationMapping(
                    parent=conversation["parent"],
                    properties=_frozen({k: _source(v) for k, v in conversation.get("properties", {}).items()}),
                    follower_parents=tuple(conversation.get("followerParents", all_follower_types)),
                ),
                failure_folder=raw.get("failureFolder", settings.failure_folder),
                enabled=raw.get("enabled", True),
                folder=raw.get("folder", "inbox"),
                new_conversation_template=notifications.get("newConversation"),
                new_message_template=notifications.get("newMessage"),
            )
        )
    record_types = {
        name: RecordType(
            name=name,
            description=raw.get("description"),
            fields=_frozen(
                {
                    field_name: RecordField(
                        name=field_name,
                        type=spec.get("type", "string"),
                        references=spec.get("references"),
                        description=spec.get("description"),
                    )
                    for field_name, spec in raw["fields"].items()
                }
            ),
        )
        for name, raw in doc.get("recordTypes", {}).items()
    }
    records_raw = doc.get("records", {})
    records = {}
    for kind, default_name in _DEFAULT_RECORD_NAMES.items():
        raw = records_raw.get(kind, {})
        mapping = raw.get("fields") or {attribute: attribute for attribute in RECORD_ATTRIBUTES[kind]}
        records[kind] = RecordShape(kind=kind, name=raw.get("name", default_name), fields=_frozen(dict(mapping)))
    templates = {
        name: MessageTemplate(
            name=name,
            subject=raw["subject"],
            text=raw.get("text"),
            html=raw.get("html"),
            description=raw.get("description"),
        )
        for name, raw in doc.get("templates", {}).items()
    }
    limits_raw = doc.get("sendingLimits", {})
    store_raw = doc.get("store", {})
    if store_raw.get("backend", "sqlite") == "sqlite":
        store = StoreSettings("sqlite", sqlite_path=(base_dir / store_raw.get("path", "mailplane.sqlite3")).resolve())
    else:
        store = StoreSettings("postgres", dsn_env=store_raw.get("dsnEnv", "MAILPLANE_POSTGRES_DSN"))
    sink_raw = doc.get("webhookSink")
    sink = (
        WebhookSink(
            url=sink_raw["url"],
            secret_env=sink_raw["secretEnv"],
            timeout_seconds=float(sink_raw.get("timeoutSeconds", 10)),
            max_attempts=sink_raw.get("maxAttempts", 10),
        )
        if sink_raw
        else None
    )
    notifications_raw = doc.get("changeNotifications")
    notifications = (
        ChangeNotifications(
            public_url=notifications_raw["publicUrl"].rstrip("/"),
            client_state_env=notifications_raw.get("clientStateEnv", "MAILPLANE_CLIENT_STATE"),
            subscription_minutes=notifications_raw.get("subscriptionMinutes", 4230),
        )
        if notifications_raw
        else None
    )
    return IntegrationConfig(
        designated=designated,
        accounts=tuple(accounts),
        record_types=_frozen(record_types),
        followers=followers,
        records=_frozen(records),
        multiple_destinations=doc.get("routing", {}).get("multipleDestinations", False),
        templates=_frozen(templates),
        settings=settings,
        sending_limits=SendingLimits(
            recipients_per_day=limits_raw.get("recipientsPerDay", 10_000),
            messages_per_minute=limits_raw.get("messagesPerMinute", 30),
            recipients_per_message=limits_raw.get("recipientsPerMessage", 500),
        ),
        store=store,
        webhook_sink=sink,
        # No trailing slash: the SDK appends "/users/..." itself (graph-mail.md §4, the '//' trap).
        graph_base_url=doc.get("graph", {}).get("baseUrl", DEFAULT_GRAPH_BASE_URL).rstrip("/"),
        change_notifications=notifications,
        source=source,
    )


def load_integration_config(
    path_or_dict: str | Path | Mapping[str, Any], *, source: str | None = None
) -> IntegrationConfig:
    """Load, validate and type an integration config from a JSON file path or an already parsed mapping.

    Raises :class:`IntegrationConfigError` listing every problem (schema problems first with the best match as the
    headline; semantic checks run once the schema passes). A relative SQLite path is resolved against the file's
    directory (the current directory for a mapping).
    """
    if isinstance(path_or_dict, Mapping):
        document: Any = json.loads(json.dumps(path_or_dict))  # a deep, JSON-only copy: the caller's dict stays theirs
        where = source or "<integration config>"
        base_dir = Path.cwd()
    else:
        where = source or str(path_or_dict)
        document = read_integration_file(path_or_dict)
        base_dir = Path(path_or_dict).resolve().parent
    problems = integration_problems(document)
    if problems:
        raise IntegrationConfigError(where, problems)
    return _build(document, where, base_dir)
