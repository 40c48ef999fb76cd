"""``mailplane send``, ``send-queued``, ``send-test`` and ``status``: the sending side of the runtime.

All four take ``--config FILE`` (the integration config; the designated mailbox sends), ``--graph-url`` (default
``$MAILPLANE_GRAPH_URL`` or the config's ``graph.baseUrl``; the dev tenant's URL for local runs) and ``--store``
(a SQLite file; default ``$MAILPLANE_STORE_PATH`` or the config's ``store``, SQLite or PostgreSQL). Credentials
come from the ``AZURE_*`` variables (:func:`mailplane.graph.credential_from_environment`); against a loopback URL
without them, the dev tenant's static token is used (``$MAILPLANE_DEV_TOKEN``).

Exit codes: 0 sent or queued (over a limit; ``send-queued`` sends it later), 1 a send failed or Graph refused the
app, 2 a usage or config error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from mailplane.cli.options import config_option, graph_url_option
from mailplane.exceptions import GraphError, IntegrationConfigError, SendError, StoreError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailplane.integration import IntegrationConfig
    from mailplane.sending.sender import Sender
    from mailplane.sending.store import SendStore, SendTestStatus
    from mailplane.templates import MergeContext

__all__ = ["render_status", "run_send_test", "send", "send_queued", "send_test", "status", "status_data"]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _load(config_path: Path, store_path: Path | None) -> IntegrationConfig:
    from mailplane.integration import StoreSettings, load_integration_config

    try:
        config = load_integration_config(config_path)
    except IntegrationConfigError as error:
        _fail(str(error), 2)
    if store_path is not None:
        config = replace(config, store=StoreSettings("sqlite", sqlite_path=store_path.resolve()))
    if config.designated is None:
        _fail(
            f"sending with {config_path}: the config has no sending mailbox. Add accounts.designated "
            "(the mailbox the tenant stack scopes Mail.Send to)",
            2,
        )
    return config


def _open_store(config: IntegrationConfig) -> SendStore:
    from mailplane.sending.store import open_send_store

    return open_send_store(config.store)


async def _with_sender(
    config: IntegrationConfig,
    graph_url: str | None,
    action: Callable[[Sender], Awaitable[Any]],
    *,
    record_responses: bool = False,
) -> Any:
    """Run ``action`` with a sender for the designated mailbox; close everything afterwards."""
    import httpx

    from mailplane.graph import GraphClient, credential_for_base_url
    from mailplane.sending.response_log import RecordingTransport
    from mailplane.sending.sender import Sender

    base_url = graph_url or config.graph_base_url
    recorder = RecordingTransport(httpx.AsyncHTTPTransport()) if record_responses else None
    store = _open_store(config)
    try:
        async with GraphClient(credential_for_base_url(base_url), base_url=base_url, transport=recorder) as client:
            return await action(Sender.for_designated(config, client, store, recorder=recorder))
    finally:
        store.close()


def _run(coroutine: Awaitable[Any]) -> Any:
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except (SendError, StoreError, GraphError) as error:
        _fail(str(error))


# --- options shared by the commands ------------------------------------------------------------------------------


def _common(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--store",
        "store_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="MAILPLANE_STORE_PATH",
        help="SQLite file for send state (default: $MAILPLANE_STORE_PATH or the config's store.path).",
    )(command)
    command = graph_url_option(command)
    return config_option(command)


def _addresses(values: tuple[str, ...], option: str) -> tuple[Any, ...]:
    from mailplane.sending.outgoing import parse_address

    parsed = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                parsed.append(parse_address(part))
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint=option) from None
    return tuple(parsed)


def _merge_context(path: Path | None, config: IntegrationConfig) -> MergeContext:
    """A merge context from a JSON file (see docs/sending.md); the sender and Reply-To default from the config."""
    from mailplane.templates import ConversationMessage, MergeContext, Person

    assert config.designated is not None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise click.BadParameter(f"reading {path}: {error}", param_hint="--context") from None

    def person(value: Any) -> Person:
        if isinstance(value, str):
            return Person(value)
        return Person(str(value["address"]), value.get("name"))

    def message(value: dict[str, Any]) -> ConversationMessage:
        sent_at = dt.datetime.fromisoformat(str(value.get("sentAt", "1970-01-01T00:00:00+00:00")))
        return ConversationMessage(person(value["author"]), sent_at, str(value.get("text", "")))

    try:
        conversation = data.get("conversation", {})
        reply = data.get("replyTo") or config.designated.reply_to
        return MergeContext(
            sender=Person(config.designated.address, config.designated.display_name),
            followers=tuple(person(f) for f in data.get("followers", [])),
            conversation_id=str(conversation.get("id", "")),
            conversation_subject=str(conversation.get("subject", "")),
            messages=tuple(message(m) for m in conversation.get("messages", [])),
            update=message(data["update"]) if data.get("update") else None,
            reply_to=person(reply) if reply else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise click.BadParameter(
            f"{path}: {error!r} does not fit the context shape (conversation, followers, update, replyTo; see "
            "docs/sending.md)",
            param_hint="--context",
        ) from None


def _read(text: str | None, file: Path | None) -> str | None:
    if file is not None:
        return file.read_text(encoding="utf-8")
    return text


# --- send ---------------------------------------------------------------------------------------------------------


@click.command("send")
@_common
@click.option("--to", multiple=True, help="Recipient (repeatable, or comma-separated): ann@x.com or 'Ann <ann@x.com>'.")
@click.option("--cc", multiple=True, help="Cc recipient (repeatable).")
@click.option("--bcc", multiple=True, help="Bcc recipient (repeatable).")
@click.option("--reply-to", multiple=True, help="Reply-To address (default: the designated mailbox's replyTo).")
@click.option("--subject", default="", help="Subject (not with --template).")
@click.option("--text", help="Plain-text body.")
@click.option("--text-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="Plain-text body file.")
@click.option("--html", help="HTML body.")
@click.option("--html-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="HTML body file.")
@click.option("--template", help="A template of the config (subject and bodies come from it).")
@click.option(
    "--context",
    "context_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="JSON merge context for --template.",
)
@click.option(
    "--attach",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Attach a file (repeatable; large files go through upload sessions).",
)
@click.option("--idempotency-key", help="Your key for this send: the same key is never sent twice.")
@click.option("--wait", is_flag=True, help="Wait for the limits instead of leaving the message queued.")
@click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON.")
def send(  # noqa: PLR0917 - click passes options positionally
    config_path: Path,
    graph_url: str | None,
    store_path: Path | None,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    reply_to: tuple[str, ...],
    subject: str,
    text: str | None,
    text_file: Path | None,
    html: str | None,
    html_file: Path | None,
    template: str | None,
    context_path: Path | None,
    attach: tuple[Path, ...],
    idempotency_key: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Send a message from the designated mailbox, exactly once and within its sending limits."""
    from mailplane.sending.outgoing import OutgoingAttachment, OutgoingMessage

    config = _load(config_path, store_path)
    recipients = {"to": _addresses(to, "--to"), "cc": _addresses(cc, "--cc"), "bcc": _addresses(bcc, "--bcc")}
    files = tuple(OutgoingAttachment(p.name, p.read_bytes()) for p in attach)
    text, html = _read(text, text_file), _read(html, html_file)
    if template is not None:
        if text or html or subject:
            raise click.UsageError("--template brings its own subject and bodies; leave out --subject/--text/--html")
        context = _merge_context(context_path, config)

        async def action(sender: Sender) -> list[Any]:
            receipts = await sender.send_template(
                template, context, attachments=files, idempotency_key=idempotency_key, wait=wait, **recipients
            )
            await sender.send_queued()
            return receipts

    else:
        try:
            message = OutgoingMessage(
                subject=subject, text=text, html=html, reply_to=_addresses(reply_to, "--reply-to"), attachments=files,
                **recipients,
            )  # fmt: skip
        except ValueError as error:
            raise click.UsageError(str(error)) from None

        async def action(sender: Sender) -> list[Any]:
            receipt = await sender.send(message, idempotency_key=idempotency_key, wait=wait)
            await sender.send_queued()  # the next send run also sends what waited before
            return [receipt]

    receipts = _run(_with_sender(config, graph_url, action))
    failed = False
    for receipt in receipts:
        failed = failed or receipt.state == "failed"
        if as_json:
            click.echo(json.dumps(_receipt_json(receipt), indent=2))
            continue
        parts = f" ({len(receipt.parts)} messages: recipients split)" if len(receipt.parts) > 1 else ""
        line = f"{receipt.state}: {receipt.key}{parts}"
        if receipt.state == "queued":
            line += (
                f"; over the sending limits of {config.designated.address if config.designated else ''}, it goes out "
                f"after {_when(receipt.not_before)} with 'mailplane send-queued --config {config_path}'"
            )
        click.echo(line)
        for problem in receipt.errors:
            click.echo(f"  {problem}", err=True)
    sys.exit(1 if failed else 0)


def _receipt_json(receipt: Any) -> dict[str, Any]:
    return {
        "key": receipt.key,
        "state": receipt.state,
        "notBefore": receipt.not_before,
        "parts": [
            {
                "key": p.key,
                "state": p.state.value,
                "recipients": p.message.recipient_count,
                "sentAt": p.sent_at,
                "lastError": p.last_error,
            }
            for p in receipt.parts
        ],
    }


# --- send-queued --------------------------------------------------------------------------------------------------


@click.command("send-queued")
@_common
@click.option("--wait", is_flag=True, help="Keep going until the queue is empty, waiting for the limits.")
@click.option("--max-wait", type=float, default=None, help="With --wait: stop after this many seconds.")
def send_queued(
    config_path: Path, graph_url: str | None, store_path: Path | None, wait: bool, max_wait: float | None
) -> None:
    """Send what the limits allow of the designated mailbox's queue (run it on a schedule, e.g. every minute)."""
    config = _load(config_path, store_path)

    async def action(sender: Sender) -> Any:
        return await sender.send_queued(wait=wait, wait_seconds=max_wait)

    run = _run(_with_sender(config, graph_url, action))
    click.echo(
        f"send-queued {config.designated.address if config.designated else ''}: {len(run.sent)} sent, "
        f"{len(run.failed)} failed, {run.waiting} waiting"
        + (f" (next after {_when(run.next_due)})" if run.next_due else "")
    )
    sys.exit(1 if run.failed else 0)


# --- send-test ----------------------------------------------------------------------------------------------------


def run_send_test(config: IntegrationConfig, to: str, *, graph_url: str | None = None) -> SendTestStatus:
    """Send a test message from the designated mailbox to ``to`` and record the status (see Sender.send_test)."""
    from mailplane.sending.outgoing import parse_address

    recipient = parse_address(to)

    async def action(sender: Sender) -> SendTestStatus:
        return await sender.send_test(recipient)

    result: SendTestStatus = asyncio.run(_with_sender(config, graph_url, action, record_responses=True))
    return result


@click.command("send-test")
@_common
@click.option("--to", "to", required=True, help="Where the test message goes.")
@click.option("--json", "as_json", is_flag=True, help="Print the status (with the redacted response log) as JSON.")
def send_test(config_path: Path, graph_url: str | None, store_path: Path | None, to: str, as_json: bool) -> None:
    """Send a test message from the designated mailbox; record when, the outcome and the API response log."""
    config = _load(config_path, store_path)
    try:
        result = run_send_test(config, to, graph_url=graph_url)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--to") from None
    except (SendError, StoreError, GraphError) as error:
        _fail(f"{error}\n(recorded; 'mailplane status --config {config_path}' shows the API response log)")
    if as_json:
        click.echo(json.dumps(_send_test_json(result), indent=2))
    else:
        click.echo(f"send-test {result.mailbox} -> {result.recipient}: {result.status} ({result.detail})")
        click.echo(f"  {len(result.response_log)} Graph requests logged (redacted); 'mailplane status' shows them")
    sys.exit(0 if result.status != "failed" else 1)


def _send_test_json(result: SendTestStatus) -> dict[str, Any]:
    return {
        "mailbox": result.mailbox,
        "at": _when(result.at),
        "status": result.status,
        "detail": result.detail,
        "recipient": result.recipient,
        "idempotencyKey": result.key,
        "responseLog": [entry.to_dict() for entry in result.response_log],
    }


# --- status -------------------------------------------------------------------------------------------------------


def status_data(config: IntegrationConfig, store: SendStore, *, now: float | None = None) -> dict[str, Any]:
    """The designated mailbox's send status as JSON-ready data: limits and use, queue, last send-test."""
    import time

    from mailplane.sending.governor import DAY_SECONDS, usage_at

    assert config.designated is not None
    mailbox = config.designated.address
    moment = time.time() if now is None else now
    usage = usage_at(store.ledger(mailbox, moment - DAY_SECONDS), moment)
    summary = store.summary(mailbox)
    test = store.send_test(mailbox)
    limits = config.sending_limits
    return {
        "mailbox": mailbox,
        "store": (
            str(config.store.sqlite_path)
            if config.store.backend == "sqlite"
            else f"PostgreSQL (connection string in ${config.store.dsn_env})"
        ),
        "limits": {
            "messagesPerMinute": limits.messages_per_minute,
            "recipientsPerDay": limits.recipients_per_day,
            "recipientsPerMessage": limits.recipients_per_message,
        },
        "usage": {
            "messagesLastMinute": usage.messages_last_minute,
            "recipientsLast24h": usage.recipients_last_day,
        },
        "sends": summary.counts,
        "nextDue": _when(store.next_due(mailbox)) if store.next_due(mailbox) is not None else None,
        "lastSent": _when(summary.last_sent_at),
        "recentFailures": [
            {"key": r.key, "subject": r.message.subject, "error": r.last_error} for r in summary.recent_failures
        ],
        "sendTest": _send_test_json(test) if test is not None else None,
    }


def render_status(data: dict[str, Any], *, show_log: bool = True) -> str:
    """``status_data`` as text."""
    limits, usage, sends = data["limits"], data["usage"], data["sends"]
    lines = [
        f"mailbox {data['mailbox']} (state in {data['store']})",
        (
            f"  limits: {usage['messagesLastMinute']}/{limits['messagesPerMinute']} messages in the last minute, "
            f"{usage['recipientsLast24h']}/{limits['recipientsPerDay']} recipients in the last 24 h, "
            f"at most {limits['recipientsPerMessage']} recipients per message"
        ),
        "  sends: " + ", ".join(f"{count} {state}" for state, count in sends.items()),
        f"  last sent: {data['lastSent']}" + (f"; next queued send due {data['nextDue']}" if data["nextDue"] else ""),
    ]
    lines.extend(f"  failed {f['key']} ({f['subject']!r}): {f['error']}" for f in data["recentFailures"])
    test = data["sendTest"]
    if test is None:
        lines.append("  send-test: never run ('mailplane send-test --config FILE --to ADDR')")
        return "\n".join(lines)
    lines.append(f"  send-test: {test['status']} at {test['at']} to {test['recipient']}: {test['detail']}")
    if show_log:
        lines.append(f"  API response log ({len(test['responseLog'])} requests, secrets redacted):")
        for entry in test["responseLog"]:
            outcome = entry["status"] if entry["status"] is not None else entry.get("error", "no answer")
            request_id = entry["responseHeaders"].get("request-id", "")
            lines.append(f"    {entry['method']} {entry['url']} -> {outcome} {request_id}".rstrip())
    return "\n".join(lines)


@click.command("status")
@config_option
@click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MAILPLANE_STORE_PATH",
    help="SQLite file for send state (default: $MAILPLANE_STORE_PATH or the config's store.path).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON (with the full response log).")
def status(config_path: Path, store_path: Path | None, as_json: bool) -> None:
    """Show the designated mailbox's sending status: limits and use, queue, the last send-test and its API log."""
    config = _load(config_path, store_path)
    try:
        store = _open_store(config)
    except (SendError, StoreError) as error:
        _fail(str(error))
    try:
        data = status_data(config, store)
    finally:
        store.close()
    click.echo(json.dumps(data, indent=2) if as_json else render_status(data))
