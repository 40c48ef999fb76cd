"""Live-tenant acceptance test of importing: one real message, delivered by Exchange, imported exactly once.

Opt-in, and unlike ``test_acc_live_tenant.py`` it **writes** to the tenant. It runs only when these are set
(otherwise it skips and names what is missing):

- ``MAILPLANE_ACC_IMPORT_MAILBOX``: a shared mailbox the mail app may read and change (in its scope);
- ``MAILPLANE_ACC_SENDER``: a mailbox the mail app may send as (the designated mailbox);
- the mail app's credential in azure-identity's variables: ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and
  ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH``;
- ``MAILPLANE_ACC_DELIVERY_SECONDS`` (optional, default 300): how long to wait for Exchange to deliver.

What it does: creates a folder ``mailplane-acc-<run>`` in the shared mailbox, sends one message from the sender to the
shared mailbox (not saved to Sent Items), moves it from the inbox into that folder once delivered, and imports that
folder twice with a fresh SQLite store, as ``mailplane import --once`` would. Nothing else in the mailbox is read,
imported or marked read. Afterwards the folder (with the message) is deleted, which Exchange does by moving it into
Deleted Items.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.acceptance


def _settings() -> dict[str, str]:
    names = ("MAILPLANE_ACC_IMPORT_MAILBOX", "MAILPLANE_ACC_SENDER", "AZURE_TENANT_ID", "AZURE_CLIENT_ID")
    missing = [name for name in names if not os.environ.get(name)]
    if not (os.environ.get("AZURE_CLIENT_SECRET") or os.environ.get("AZURE_CLIENT_CERTIFICATE_PATH")):
        missing.append("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH")
    if missing:
        pytest.skip(f"live-tenant test: set {', '.join(missing)} to run it (see this module's docstring)")
    return {name: os.environ[name] for name in names}


def _config(tmp_path: Path, mailbox: str, folder: str) -> Any:
    from mailplane.integration import load_integration_config

    return load_integration_config(
        {
            "version": 1,
            "accounts": {
                "shared": [
                    {
                        "address": mailbox,
                        "displayName": "acceptance",
                        "folder": folder,
                        "failureFolder": f"{folder}-failed",
                        "conversation": {
                            "parent": "ticket",
                            "properties": {"title": {"message": "subject"}, "requester": {"message": "fromAddress"}},
                        },
                    }
                ]
            },
            "recordTypes": {"ticket": {"fields": {"title": {"type": "string"}, "requester": {"type": "email"}}}},
            "store": {"backend": "sqlite", "path": str(tmp_path / "import.sqlite3")},
        }
    )


async def _send(client: Any, sender: str, mailbox: str, subject: str) -> None:
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    body = SendMailPostRequestBody(
        message=Message(
            subject=subject,
            body=ItemBody(content_type=BodyType.Text, content="mailplane live-tenant import test; safe to delete."),
            to_recipients=[Recipient(email_address=EmailAddress(address=mailbox))],
        ),
        save_to_sent_items=False,
    )
    async with client.call(sender, doing="sending as"):
        await client.service.users.by_user_id(sender).send_mail.post(body)


async def _wait_for_delivery(client: Any, mailbox: str, subject: str, seconds: float) -> str:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
        MessagesRequestBuilder,
    )

    from mailplane.importing.mailbox_graph import IMMUTABLE_ID_PREFERENCE

    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        filter=f"subject eq '{subject}'", select=["id", "subject"], top=5
    )
    config: RequestConfiguration[Any] = RequestConfiguration(query_parameters=query)
    config.headers.add("Prefer", IMMUTABLE_ID_PREFERENCE)
    inbox = client.service.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages
    deadline = time.monotonic() + seconds
    while True:
        async with client.call(mailbox, doing="looking for the test message in"):
            page = await inbox.get(request_configuration=config)
        found = [m.id for m in (page.value if page is not None else None) or [] if m.id]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"the test message {subject!r} did not reach {mailbox} within {seconds:.0f} s")
        await asyncio.sleep(5)


async def _scenario(env: dict[str, str], tmp_path: Path) -> None:
    from msgraph.generated.users.item.messages.item.move.move_post_request_body import MovePostRequestBody

    from mailplane.graph import GraphClient, credential_from_environment
    from mailplane.importing import open_import_store
    from mailplane.importing.blobs import FileBlobStore
    from mailplane.importing.importer import Importer
    from mailplane.importing.mailbox_graph import MailboxGraph

    mailbox, sender = env["MAILPLANE_ACC_IMPORT_MAILBOX"].lower(), env["MAILPLANE_ACC_SENDER"]
    run = uuid.uuid4().hex[:12]
    folder, subject = f"mailplane-acc-{run}", f"mailplane acceptance {run}"
    config = _config(tmp_path, mailbox, folder)
    credential = credential_from_environment()
    try:
        async with GraphClient(credential) as client:
            folders = client.service.users.by_user_id(mailbox).mail_folders
            folder_id = await MailboxGraph(client, mailbox).ensure_folder(folder)
            try:
                await _send(client, sender, mailbox, subject)
                delivered = await _wait_for_delivery(
                    client, mailbox, subject, float(os.environ.get("MAILPLANE_ACC_DELIVERY_SECONDS", "300"))
                )
                async with client.call(mailbox, doing="moving the test message in"):
                    await (
                        client.service.users.by_user_id(mailbox)
                        .messages.by_message_id(delivered)
                        .move.post(MovePostRequestBody(destination_id=folder_id))
                    )

                reports = []
                for _ in range(2):
                    store = open_import_store(config.store)
                    async with store:
                        importer = Importer(config, client, store, blobs=FileBlobStore(tmp_path / "blobs"))
                        reports.append(await importer.import_once())
                        conversations = await store.list_conversations()
                        states = await store.list_message_states()

                assert [r.imported for r in reports] == [1, 0]
                assert [r.failed for r in reports] == [0, 0]
                [conversation] = conversations
                assert conversation.parent_fields["title"] == subject
                assert [s.state for s in states] == ["read"]
                async with client.call(mailbox, doing="reading back the test folder of"):
                    page = await folders.by_mail_folder_id(folder_id).messages.get()
                assert [(m.subject, m.is_read) for m in (page.value if page is not None else None) or []] == [
                    (subject, True)
                ]
            finally:
                for name in (folder, f"{folder}-failed"):
                    existing = await MailboxGraph(client, mailbox).find_folder(name)
                    if existing is not None:
                        async with client.call(mailbox, doing="deleting the test folder of"):
                            await folders.by_mail_folder_id(existing).delete()
    finally:
        await credential.close()


def test_acc_import__one_delivered_message__imported_once_and_read(tmp_path):
    env = _settings()

    asyncio.run(_scenario(env, tmp_path))
