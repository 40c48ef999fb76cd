"""``mailplane serve``: receive Graph change notifications and import as mail arrives; deliver to the webhook sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from mailplane.cli.options import graph_url_option

if TYPE_CHECKING:
    from mailplane.importing.serving_state import ServingStore
    from mailplane.integration import IntegrationConfig
    from mailplane.mapping import RecordLookup

__all__ = ["serve"]

_log = logging.getLogger("mailplane.serve")


def _client_state(config: IntegrationConfig) -> str:
    from mailplane.exceptions import MailplaneError
    from mailplane.importing.subscriptions import MAX_CLIENT_STATE_LENGTH

    settings = config.change_notifications
    if settings is None:
        raise MailplaneError(
            f"serving change notifications for {config.source}: the config has no changeNotifications section. "
            "Add changeNotifications.publicUrl (the https address Graph reaches this server at)"
        )
    value = os.environ.get(settings.client_state_env, "")
    if not value:
        raise MailplaneError(
            f"serving change notifications for {config.source}: the variable {settings.client_state_env} "
            "(changeNotifications.clientStateEnv) is not set. Export a random secret of up to 128 characters in it, "
            "e.g. $(openssl rand -hex 32)"
        )
    if len(value) > MAX_CLIENT_STATE_LENGTH:
        raise MailplaneError(
            f"serving change notifications for {config.source}: the secret in {settings.client_state_env} is "
            f"{len(value)} characters long; Graph allows at most {MAX_CLIENT_STATE_LENGTH}. Use a shorter one"
        )
    return value


async def _requeue(config: IntegrationConfig) -> int:
    from mailplane.importing import open_import_store

    store = cast("ServingStore", open_import_store(config.store))
    async with store:
        return await store.retry_failed_sink_deliveries()


async def _serve(
    config: IntegrationConfig,
    *,
    host: str,
    port: int,
    workers: int,
    graph_url: str | None,
    records: RecordLookup | None,
    blob_dir: Path,
    poll_seconds: float,
) -> None:
    from mailplane.cli.import_mail import render_report
    from mailplane.graph import GraphClient, credential_for_base_url
    from mailplane.importing import open_import_store
    from mailplane.importing.blobs import FileBlobStore
    from mailplane.importing.importer import Importer, ImportReport
    from mailplane.importing.receiver import NotificationReceiver, bind_socket, importer_syncer, serve_notifications
    from mailplane.importing.subscriptions import SubscriptionManager
    from mailplane.importing.webhook_sink import WebhookSinkDeliverer
    from mailplane.process import settle_heap

    client_state = _client_state(config)
    settings = config.change_notifications
    assert settings is not None
    base_url = graph_url or config.graph_base_url
    store = cast("ServingStore", open_import_store(config.store))
    sock = bind_socket(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with GraphClient(credential_for_base_url(base_url), base_url=base_url) as graph, store:
        importer = Importer(config, graph, store, blobs=FileBlobStore(blob_dir), records=records)
        enabled = [a for a in config.accounts if a.enabled]
        manager = SubscriptionManager(
            graph,
            store,
            settings,
            [a.address for a in enabled],
            client_state=client_state,
            folders={a.address: a.folder for a in enabled},
        )
        receiver = NotificationReceiver(
            client_state=client_state, manager=manager, syncer=importer_syncer(importer), workers=workers
        )
        sink = WebhookSinkDeliverer(config.webhook_sink, store) if config.webhook_sink is not None else None
        settle_heap()
        click.echo(
            f"mailplane serve: listening on {host}:{sock.getsockname()[1]}; Graph posts to "
            f"{settings.notification_url} (lifecycle: {settings.lifecycle_url}); {len(enabled)} mailbox(es)"
        )

        def show(kind: str, report: ImportReport) -> None:
            if any(m.imported or m.failed or m.errors for m in report.mailboxes):
                click.echo(render_report(kind, report))

        # Notifications are hints: a slow poll and the recovery schedule catch what they miss.
        watcher = asyncio.create_task(
            importer.watch(poll_interval=dt.timedelta(seconds=poll_seconds), stop=stop, on_report=show)
        )
        try:
            await serve_notifications(receiver, manager, sock=sock, stop=stop, sink=sink, log_level="warning")
        finally:
            stop.set()
            await watcher
            if sink is not None:
                await sink.aclose()


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The integration config (JSON) with a changeNotifications section.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (behind an https proxy).")
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@click.option("--workers", default=4, show_default=True, help="Mailboxes synced at the same time.")
@graph_url_option
@click.option(
    "--records",
    "records_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="JSON file with the product's records for lookups and followers (as for 'mailplane import').",
)
@click.option(
    "--blob-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where attachment bytes are stored (default: next to the SQLite store).",
)
@click.option("--poll-seconds", default=900.0, show_default=True, help="Seconds between syncs without a notification.")
@click.option(
    "--requeue-failed-deliveries",
    is_flag=True,
    help="Put the webhook sink's failed deliveries back in the queue, then exit.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every notification, sync and delivery.")
def serve(  # noqa: PLR0917 - click passes every option
    config_path: Path,
    host: str,
    port: int,
    workers: int,
    graph_url: str | None,
    records_path: Path | None,
    blob_dir: Path | None,
    poll_seconds: float,
    requeue_failed_deliveries: bool,
    verbose: bool,
) -> None:
    """Receive Graph change notifications for the shared mailboxes and import new mail as it arrives.

    Creates (and renews) one subscription per shared mailbox, answers Graph's validation handshake, checks the
    clientState of every notification, and syncs a mailbox through delta when a notification or lifecycle event
    arrives. Also posts imports to the webhook sink when one is configured. See docs/notifications.md.
    """
    from mailplane.cli.import_mail import default_blob_dir
    from mailplane.exceptions import MailplaneError
    from mailplane.importing.routing import InMemoryRecords
    from mailplane.integration import load_integration_config

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        config = load_integration_config(config_path)
        if requeue_failed_deliveries:
            count = asyncio.run(_requeue(config))
            click.echo(f"re-queued {count} failed webhook sink deliveries")
            return
        asyncio.run(
            _serve(
                config,
                host=host,
                port=port,
                workers=workers,
                graph_url=graph_url,
                records=InMemoryRecords.from_file(records_path) if records_path else None,
                blob_dir=blob_dir or default_blob_dir(config),
                poll_seconds=poll_seconds,
            )
        )
    except (MailplaneError, ValueError, OSError) as error:
        raise click.ClickException(str(error)) from error
