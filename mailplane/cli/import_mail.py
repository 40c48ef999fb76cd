"""``mailplane import``: import the configured shared mailboxes into the store, once, recovering, or watching."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from mailplane.cli.options import config_option, graph_url_option

if TYPE_CHECKING:
    from mailplane.importing.importer import ImportReport
    from mailplane.importing.webhook_sink import SinkOutbox, WebhookSinkDeliverer
    from mailplane.integration import IntegrationConfig
    from mailplane.mapping import RecordLookup

__all__ = ["default_blob_dir", "import_command", "render_report"]


def render_report(kind: str, report: ImportReport) -> str:
    """One line per mailbox: what the run did."""
    lines = []
    for m in report.mailboxes:
        if m.leased_elsewhere:
            lines.append(f"{kind} {m.mailbox}: another worker holds the mailbox; skipped")
            continue
        parts = [
            f"{m.imported} imported",
            f"{m.duplicates} already there",
            f"{m.marked_read} marked read",
            f"{m.failed} failed",
            f"{m.moved_to_failure_folder} moved to the failure folder",
        ]
        if m.retried:
            parts.append(f"{m.retried} retried")
        if m.skipped_attachments:
            parts.append(f"{m.skipped_attachments} attachments skipped (size limit)")
        if m.resynced:
            parts.append("full resync")
        if m.used_unread_listing:
            parts.append("unread listing (delta unavailable)")
        lines.append(f"{kind} {m.mailbox}: " + ", ".join(parts))
        lines.extend(f"  error: {error}" for error in m.errors)
    return "\n".join(lines)


def default_blob_dir(config: IntegrationConfig) -> Path:
    """Next to the SQLite file (``<file>.blobs``), or ``mailplane-blobs`` in the current folder."""
    path = config.store.sqlite_path
    return path.with_name(path.name + ".blobs") if path is not None else Path("mailplane-blobs").resolve()


async def _run(
    config: IntegrationConfig,
    *,
    mode: str,
    graph_url: str | None,
    records: RecordLookup | None,
    mailboxes: tuple[str, ...],
    blob_dir: Path,
    poll_seconds: float,
    max_unread_age_days: float | None,
    lease_ttl: dt.timedelta,
) -> int:
    from mailplane.graph import GraphClient, credential_for_base_url
    from mailplane.importing import open_import_store
    from mailplane.importing.blobs import FileBlobStore
    from mailplane.importing.importer import Importer, ImportReport
    from mailplane.importing.webhook_sink import WebhookSinkDeliverer
    from mailplane.process import settle_heap

    base_url = graph_url or config.graph_base_url
    store = open_import_store(config.store)
    selected = mailboxes or None
    credential = credential_for_base_url(base_url)
    failures = 0
    async with GraphClient(credential, base_url=base_url) as graph, store:
        importer = Importer(config, graph, store, blobs=FileBlobStore(blob_dir), records=records, lease_ttl=lease_ttl)
        outbox = cast("SinkOutbox", store)
        sink = WebhookSinkDeliverer(config.webhook_sink, outbox) if config.webhook_sink is not None else None
        settle_heap()

        def show(kind: str, report: ImportReport) -> None:
            nonlocal failures
            failures += sum(len(m.errors) for m in report.mailboxes)
            click.echo(render_report(kind, report))
            if sink is not None:
                sink.wake()

        if mode == "once":
            show("import", await importer.import_once(selected))
        elif mode == "resync":
            reports = [await importer.resync(m) for m in selected or [a.address for a in config.accounts if a.enabled]]
            show("resync", ImportReport(reports))
        elif mode == "recover":
            max_unread_age = None if max_unread_age_days is None else dt.timedelta(days=max_unread_age_days)
            show("recovery", await importer.recover(selected, max_unread_age=max_unread_age))
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            delivering = asyncio.create_task(sink.run(stop)) if sink is not None else None
            try:
                await importer.watch(poll_interval=dt.timedelta(seconds=poll_seconds), stop=stop, on_report=show)
            finally:
                stop.set()
                if delivering is not None:
                    await delivering
        if sink is not None:
            if mode != "watch":
                failures += await _deliver_once(sink)
            await sink.aclose()
    return 1 if failures else 0


async def _deliver_once(sink: WebhookSinkDeliverer) -> int:
    """Post what is due to the webhook sink until a pass delivers nothing more; 1 when a delivery gave up."""
    from mailplane.importing.webhook_sink import DeliveryPass

    total = DeliveryPass()
    while True:
        result = await sink.deliver_due()
        total = DeliveryPass(
            total.enqueued + result.enqueued,
            total.delivered + result.delivered,
            total.retrying + result.retrying,
            total.failed + result.failed,
        )
        if not result.delivered:
            break
    click.echo(
        f"webhook sink: {total.delivered} delivered, {total.retrying} to retry on the next run, "
        f"{total.failed} given up (re-queue them with 'mailplane serve --requeue-failed-deliveries')"
    )
    return 1 if total.failed else 0


@click.command("import")
@config_option
@click.option("--once", "mode", flag_value="once", default=True, help="Sync every mailbox once and exit (default).")
@click.option("--watch", "mode", flag_value="watch", help="Keep syncing; run recovery on the config's schedule.")
@click.option("--recover", "mode", flag_value="recover", help="Run recovery once and exit.")
@click.option("--resync", "mode", flag_value="resync", help="Forget the delta links and sync from scratch, once.")
@graph_url_option
@click.option(
    "--records",
    "records_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help='JSON file with the product\'s records for lookups and followers: {"person": [{"id": ..., ...}]}.',
)
@click.option("--mailbox", "mailboxes", multiple=True, help="Only this shared mailbox (repeatable).")
@click.option(
    "--blob-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where attachment bytes are stored (default: next to the SQLite store, '<file>.blobs').",
)
@click.option("--poll-seconds", default=60.0, show_default=True, help="With --watch: seconds between syncs.")
@click.option(
    "--max-age-days",
    "max_unread_age_days",
    type=click.FloatRange(min=0, min_open=True),
    help="With --recover: oldest unread mail to recover, in days (default: settings.recovery.maxUnreadAgeDays).",
)
@click.option(
    "--lease-seconds",
    default=300.0,
    show_default=True,
    help="How long a mailbox stays taken by a worker that died before another worker may take it.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log each failure and retry.")
def import_command(  # noqa: PLR0917 - click passes every option
    config_path: Path,
    mode: str,
    graph_url: str | None,
    records_path: Path | None,
    mailboxes: tuple[str, ...],
    blob_dir: Path | None,
    poll_seconds: float,
    max_unread_age_days: float | None,
    lease_seconds: float,
    verbose: bool,
) -> None:
    """Import mail from the config's shared mailboxes into conversations, exactly once.

    New messages are found with delta, written to the store with their followers and documents, then marked read;
    messages that cannot be imported are moved to the failure folder with the reason recorded. Exit code 1 when a
    mailbox reported an error.
    """
    from mailplane.exceptions import MailplaneError

    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(message)s")
    from mailplane.importing.routing import InMemoryRecords
    from mailplane.integration import load_integration_config

    try:
        config = load_integration_config(config_path)
        code = asyncio.run(
            _run(
                config,
                mode=mode,
                graph_url=graph_url,
                records=InMemoryRecords.from_file(records_path) if records_path else None,
                mailboxes=mailboxes,
                blob_dir=blob_dir or default_blob_dir(config),
                poll_seconds=poll_seconds,
                max_unread_age_days=max_unread_age_days,
                lease_ttl=dt.timedelta(seconds=lease_seconds),
            )
        )
    except (MailplaneError, ValueError, TypeError) as error:
        raise click.ClickException(str(error)) from error
    raise SystemExit(code)
