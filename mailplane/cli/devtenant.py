"""``mailplane devtenant``: serve the local Graph mail + Exchange admin emulator until Ctrl-C."""

from __future__ import annotations

import time
from pathlib import Path

import click

__all__ = ["devtenant"]


@click.command("devtenant")
@click.option("--port", type=int, default=8650, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option(
    "--seed",
    "seed_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory of DIR/<mailbox address>/*.eml (Inbox) and DIR/<mailbox address>/<folder>/*.eml.",
)
@click.option("--mailbox", "mailboxes", multiple=True, help="Create an empty mailbox (repeatable).")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Concurrent requests per mailbox.")
@click.option(
    "--window-limit", type=int, default=10_000, show_default=True, help="Requests per mailbox per 10 minutes."
)
@click.option("--latency-ms", type=float, default=0.0, show_default=True, help="Delay added to every request.")
@click.option("--token", default=None, help="Accept only this bearer token (default: any non-empty token).")
def devtenant(  # noqa: PLR0917 - click passes options positionally
    port: int,
    seed_dir: Path | None,
    mailboxes: tuple[str, ...],
    concurrency: int,
    window_limit: int,
    latency_ms: float,
    token: str | None,
) -> None:
    """Serve the dev tenant (a local Graph mail and Exchange admin emulator) on 127.0.0.1 until Ctrl-C."""
    from mailplane.devtenant.app import DevTenant
    from mailplane.devtenant.seeding import seed_directory
    from mailplane.process import settle_heap

    tenant = DevTenant(
        port=port, concurrency=concurrency, window_limit=window_limit, latency_ms=latency_ms, token=token
    )
    for address in mailboxes:
        tenant.state.add_mailbox(address)
    if seed_dir is not None:
        try:
            seed_directory(tenant.state, seed_dir)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
    try:
        tenant.start()
    except OSError as error:
        raise click.UsageError(
            f"starting the dev tenant on 127.0.0.1:{port}: {error.strerror or error}. Pick another --port."
        ) from error
    settle_heap()
    try:
        click.echo("mailplane dev tenant (development only, never a production endpoint)")
        click.echo(f"  Graph:    {tenant.graph_base_url}")
        exchange = tenant.exchange_base_url if tenant.exchange_mounted else "(not available in this build)"
        click.echo(f"  Exchange: {exchange}")
        click.echo(f"  Control:  {tenant.base_url}/_devtenant/requests")
        for box in tenant.state.mailboxes():
            count = sum(1 for _ in box.messages)
            click.echo(f"  Mailbox:  {box.address} ({box.kind}, {count} messages)")
        click.echo("Press Ctrl-C to stop.", nl=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        tenant.stop()
