"""The sending steps of ``mailplane demo``: validate the example integration config, send, show the status.

The sends go from the config's designated mailbox on the dev tenant: a test message, a send asked for twice, a send
whose answer is lost on the way back; each is delivered once.

State goes to a temporary folder (never next to the example config); the dev tenant runs in-process on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import datetime as dt

    from mailplane.integration import IntegrationConfig

__all__ = ["send_from_designated_mailbox", "validate_example_integration"]

_EXAMPLE = Path("examples") / "integration.json"


def validate_example_integration(project_dir: Path, today: dt.date) -> None:  # noqa: ARG001 - the step signature.
    """Validate ``examples/integration.json`` as ``mailplane validate`` does, and summarize what it configures."""
    from mailplane.cli.validate import check_file
    from mailplane.integration import load_integration_config

    path = project_dir / _EXAMPLE
    result = check_file(str(path))
    if not result.valid:
        raise click.ClickException(f"{os.path.relpath(path)} is invalid: {result.problems[0].message}")
    config = load_integration_config(path)
    designated = config.designated
    limits = config.sending_limits
    click.echo(f"ok: {os.path.relpath(path)}")
    if designated is not None:
        click.echo(f"  sends from {designated.address} ({designated.display_name}), replies to {designated.reply_to}")
    click.echo(f"  imports {', '.join(a.address for a in config.accounts)}")
    click.echo(f"  templates: {', '.join(sorted(config.templates))}")
    click.echo(
        f"  sending limits: {limits.messages_per_minute} messages/minute, {limits.recipients_per_day} recipients/24 h, "
        f"{limits.recipients_per_message} recipients/message (more are split)"
    )


def _on_dev_tenant(config: IntegrationConfig, graph_url: str, state_dir: Path) -> IntegrationConfig:
    from mailplane.integration import StoreSettings

    return replace(
        config, graph_base_url=graph_url, store=StoreSettings("sqlite", sqlite_path=state_dir / "send.sqlite3")
    )


async def _send_twice_and_lose_an_answer(config: IntegrationConfig, recipient: str) -> list[str]:
    from mailplane.graph import GraphClient, StaticTokenCredential
    from mailplane.sending.outgoing import Address, OutgoingMessage
    from mailplane.sending.sender import Sender
    from mailplane.sending.store import open_send_store

    store = open_send_store(config.store)
    lines = []
    try:
        async with GraphClient(StaticTokenCredential(), base_url=config.graph_base_url, retry_delay=0) as client:
            sender = Sender.for_designated(config, client, store, retry_delay=0.05, uncertain_grace=0.05)
            message = OutgoingMessage(to=(Address(recipient),), subject="Ticket 1042 is resolved", text="Closed.")
            for attempt in (1, 2):
                receipt = await sender.send(message, idempotency_key="ticket-1042-resolved")
                lines.append(f"send ticket-1042-resolved (attempt {attempt}): {receipt.state}")
            lost = OutgoingMessage(to=(Address(recipient),), subject="Ticket 1043 is resolved", text="Closed.")
            receipt = await sender.send(lost, idempotency_key="ticket-1043-resolved")
            lines.append(f"send ticket-1043-resolved with its answer lost on the way back: {receipt.state}")
    finally:
        store.close()
    return lines


def send_from_designated_mailbox(project_dir: Path, today: dt.date) -> None:  # noqa: ARG001 - the step signature.
    """Start a dev tenant, send a test message with ``send-test`` logic, show exactly-once sends and the status."""
    from mailplane.cli.sending import render_status, run_send_test, status_data
    from mailplane.devtenant.app import DevTenant
    from mailplane.integration import load_integration_config
    from mailplane.sending.store import open_send_store

    example = load_integration_config(project_dir / _EXAMPLE)
    if example.designated is None:
        raise click.ClickException(f"{_EXAMPLE} has no designated mailbox to send from")
    sender = example.designated.address
    recipient = example.accounts[0].address if example.accounts else sender
    domain = sender.rpartition("@")[2]
    with DevTenant(domain=domain, with_exchange=False) as tenant, tempfile.TemporaryDirectory() as state:
        tenant.state.add_mailbox(sender, display_name=example.designated.display_name)
        if recipient != sender:
            tenant.state.add_mailbox(recipient, kind="shared")
        config = _on_dev_tenant(example, tenant.graph_base_url, Path(state))
        click.echo(f"dev tenant at {tenant.graph_base_url}; send state in a temporary SQLite file")
        result = run_send_test(config, recipient)
        click.echo(f"$ mailplane send-test --config {_EXAMPLE} --to {recipient}")
        click.echo(f"send-test {result.mailbox} -> {result.recipient}: {result.status} ({result.detail})")
        tenant.faults.apply_then_drop(path=r"/send$", method="POST", count=1, after=2)
        for line in asyncio.run(_send_twice_and_lose_an_answer(config, recipient)):
            click.echo(line)
        subjects = [m.subject for m in tenant.state.messages(recipient, "inbox")]
        click.echo(f"{recipient} received {len(subjects)} messages: " + "; ".join(sorted(str(s) for s in subjects)))
        click.echo(f"$ mailplane status --config {_EXAMPLE}")
        store = open_send_store(config.store)
        try:
            data = status_data(config, store)
        finally:
            store.close()
        data["store"] = "a temporary folder"
        click.echo(render_status(data))
