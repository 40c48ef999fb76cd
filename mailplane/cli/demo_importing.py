"""The demo's import step: deliver ``examples/mail/*.eml`` to the dev tenant's shared mailboxes, import, show it all.

Each message is delivered to every shared account of ``examples/integration.json`` named in its To or Cc, in file
order, a minute apart. A message with an ``X-Mailplane-Demo-Attachment: <name>; <type>; <bytes>`` header gets an
attachment of that size generated at delivery time (the too-large attachment is not committed to the repository).
The import writes to a temporary SQLite store; nothing is written into ``examples/``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import os
import tempfile
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mailplane.devtenant.app import DevTenant
    from mailplane.importing.store import ConversationRecord
    from mailplane.integration import IntegrationConfig

__all__ = ["deliver_examples", "import_examples"]

_GENERATED = "X-Mailplane-Demo-Attachment"


def _with_generated_attachment(raw: bytes) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    spec = message.get(_GENERATED)
    if spec is None:
        return raw
    name, content_type, size = (part.strip() for part in str(spec).split(";"))
    del message[_GENERATED]
    assert isinstance(message, EmailMessage)
    maintype, _, subtype = content_type.partition("/")
    body = message.get_content()
    message.clear_content()
    message.set_content(body)
    # Compressible filler: only its size matters, and it never leaves this process.
    message.add_attachment(b"\0" * int(size), maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def deliver_examples(tenant: DevTenant, config: IntegrationConfig, mail_dir: Path) -> list[tuple[str, str]]:
    """Deliver every ``.eml`` in ``mail_dir`` to the shared accounts it addresses; return ``(file, mailbox)`` pairs."""
    accounts = {a.address.lower() for a in config.accounts if a.enabled}
    for account in config.accounts:
        tenant.state.add_mailbox(account.address, kind="shared", display_name=account.display_name)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    delivered = []
    for index, path in enumerate(sorted(mail_dir.glob("*.eml"))):
        raw = _with_generated_attachment(path.read_bytes())
        headers = email.message_from_bytes(raw.split(b"\n\n", 1)[0] + b"\n\n", policy=email.policy.compat32)
        addressed = [a.lower() for _, a in getaddresses(headers.get_all("To", []) + headers.get_all("Cc", []))]
        for mailbox in dict.fromkeys(a for a in addressed if a in accounts):
            tenant.state.seed_eml(mailbox, raw, received=start + dt.timedelta(minutes=index))
            delivered.append((path.name, mailbox))
    return delivered


def _describe(conversation: ConversationRecord) -> list[str]:
    fields = conversation.parent_fields
    title = fields.get("title") or conversation.subject
    lines = [
        f"#{conversation.id} {conversation.parent_type} in {conversation.destination}: {title!r}",
        "    " + ", ".join(f"{k}={v!r}" for k, v in fields.items() if k not in ("title", "description")),
    ]
    names = {f.id: f for f in conversation.followers}
    followers = [
        f"{f.address} ({f.participation}{', ' + f.parent_type + ' ' + str(f.parent_id) if f.parent_type else ''})"
        for f in names.values()
    ]
    lines.append(f"    followers: {'; '.join(followers) or '-'}")
    for message in conversation.messages:
        sender = message.attributes.get("fromName") or message.attributes.get("fromAddress") or "(no sender)"
        lines.append(f"    - {message.received_at:%H:%M} {sender}: {message.subject!r}")
        for document in message.documents:
            what = f"        {document.kind} {document.name} ({document.size:,} bytes"
            if document.skipped:
                lines.append(f"{what}) SKIPPED: {document.skip_reason}")
            else:
                lines.append(f"{what}, sha256 {(document.sha256 or '')[:12]}...)")
    return lines


async def _import(config: IntegrationConfig, base_url: str, records_path: Path, blob_dir: Path) -> list[str]:
    from mailplane.cli.import_mail import render_report
    from mailplane.graph import GraphClient, StaticTokenCredential
    from mailplane.importing import open_import_store
    from mailplane.importing.blobs import FileBlobStore
    from mailplane.importing.importer import Importer, ImportReport
    from mailplane.importing.routing import InMemoryRecords

    records = InMemoryRecords.from_file(records_path)
    store = open_import_store(config.store)
    async with GraphClient(StaticTokenCredential(), base_url=base_url) as graph, store:
        importer = Importer(config, graph, store, blobs=FileBlobStore(blob_dir), records=records)
        # One mailbox after another in config order, so the story reads the same on every run ('mailplane import'
        # syncs them in parallel; which copy of a mail addressed to two teams comes first then varies).
        mailboxes = [account.address for account in config.accounts if account.enabled]
        report = ImportReport([r for m in mailboxes for r in (await importer.import_once([m])).mailboxes])
        again = await importer.import_once()
        lines = [render_report("import", report), render_report("import again", again), ""]
        conversations = await store.list_conversations()
        for conversation in sorted(conversations, key=lambda c: min(m.received_at for m in c.messages)):
            lines.extend(_describe(conversation))
        states = await store.list_message_states()
        lines.append("")
        lines.append(
            f"{len(states)} mailbox copies recorded: "
            + ", ".join(
                f"{n} {s}" for s in ("read", "moved", "stored", "failed") if (n := sum(x.state == s for x in states))
            )
        )
    return lines


def import_examples(project_dir: Path, today: dt.date) -> None:  # noqa: ARG001 - the demo step signature
    """The demo step (see the module docstring)."""
    from mailplane.devtenant.app import DevTenant
    from mailplane.integration import StoreSettings, load_integration_config

    config_path = project_dir / "examples" / "integration.json"
    config = load_integration_config(config_path)
    with tempfile.TemporaryDirectory(prefix="mailplane-demo-") as scratch, DevTenant(with_exchange=False) as tenant:
        work = Path(scratch)
        config = dataclasses.replace(
            config,
            store=StoreSettings("sqlite", sqlite_path=work / "import.sqlite3"),
            graph_base_url=tenant.graph_base_url,
        )
        delivered = deliver_examples(tenant, config, project_dir / "examples" / "mail")
        click.echo(
            f"{os.path.relpath(project_dir / 'examples' / 'mail')}: {len(delivered)} deliveries of "
            f"{len({name for name, _ in delivered})} messages to "
            + ", ".join(sorted({mailbox for _, mailbox in delivered}))
        )
        lines = asyncio.run(
            _import(config, tenant.graph_base_url, project_dir / "examples" / "records.json", work / "blobs")
        )
        for line in lines:
            click.echo(line)
