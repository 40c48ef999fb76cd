"""Peak memory while importing one message with a 100 MB attachment: the importer streams it, never holds it whole.

    python benchmarks/import_memory.py [--megabytes 100]

The dev tenant runs in its own process (it holds the attachment; that memory is not the importer's). In this process
the importer imports the message into a temporary SQLite store; Python's allocations are traced (tracemalloc) and
the process's peak resident size is read before and after. For comparison, the same attachment is then read the
way msgraph-sdk offers (``.../attachments/{id}/$value`` through ``content.get()``-style buffering), in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import tempfile
import time
import tracemalloc
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from mailplane.devtenant.app import DevTenant
from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.importing import open_import_store
from mailplane.importing.blobs import FileBlobStore
from mailplane.importing.importer import Importer
from mailplane.importing.mailbox_graph import MailboxGraph
from mailplane.integration import load_integration_config

MAILBOX = "support@bench.example"
MIB = 1024 * 1024


def _serve(megabytes: int, ready: Any, stop: Any) -> None:
    tenant = DevTenant(with_exchange=False)
    tenant.state.add_mailbox(MAILBOX, kind="shared")
    message = EmailMessage()
    message["From"] = "Carl Chen <carl@example.org>"
    message["To"] = MAILBOX
    message["Subject"] = "Site survey video"
    message["Message-ID"] = "<memory-bench@example.org>"
    message.set_content("The video is attached.")
    # Incompressible-looking but cheap to make: a repeated 1 MiB block of varied bytes.
    block = bytes(range(256)) * 4096
    message.add_attachment(block * megabytes, maintype="video", subtype="mp4", filename="survey.mp4")
    tenant.state.seed_eml(MAILBOX, message.as_bytes())
    tenant.start()
    ready.put(tenant.graph_base_url)
    stop.wait()
    tenant.stop()


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


async def _import(graph_url: str, work: Path) -> tuple[Any, list[Any]]:
    config = load_integration_config(
        {
            "version": 1,
            "accounts": {
                "shared": [
                    {
                        "address": MAILBOX,
                        "displayName": "Support",
                        "conversation": {"parent": "ticket", "properties": {"title": {"message": "subject"}}},
                    }
                ]
            },
            "recordTypes": {"ticket": {"fields": {"title": {"type": "string"}}}},
            "settings": {"attachmentSizeLimitMB": 150},
            "store": {"backend": "sqlite", "path": str(work / "memory.sqlite3")},
        }
    )
    store = open_import_store(config.store)
    async with GraphClient(StaticTokenCredential(), base_url=graph_url) as graph, store:
        importer = Importer(config, graph, store, blobs=FileBlobStore(work / "blobs"))
        report = await importer.import_once()
        conversations = await store.list_conversations()
    return report, conversations


async def _whole(graph_url: str, message_id: str) -> int:
    """Read the attachment the buffered way (the SDK's primitive ``bytes`` response), for comparison."""
    async with GraphClient(StaticTokenCredential(), base_url=graph_url) as graph:
        reader = MailboxGraph(graph, MAILBOX)
        [attachment] = await reader.list_attachments(message_id)
        info = RequestInformation(
            Method.GET,
            "{+baseurl}/users/{user%2Did}/messages/{message%2Did}/attachments/{attachment%2Did}/$value",
            {"user%2Did": MAILBOX, "message%2Did": message_id, "attachment%2Did": attachment.id},
        )
        adapter: Any = graph.service.request_adapter
        content = await adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        return len(content or b"")


def main() -> None:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(args.megabytes, ready, stop), daemon=True)
    server.start()
    graph_url = ready.get(timeout=600)
    try:
        with tempfile.TemporaryDirectory(prefix="mailplane-memory-") as scratch:
            work = Path(scratch)
            rss_before = _max_rss_mib()
            tracemalloc.start()
            started = time.perf_counter()
            report, conversations = asyncio.run(_import(graph_url, work))
            seconds = time.perf_counter() - started
            _, import_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_after_import = _max_rss_mib()
            [document] = conversations[0].messages[0].documents
            stored = (work / "blobs" / (document.sha256 or "")).stat().st_size
            tracemalloc.start()
            whole_bytes = asyncio.run(_whole(graph_url, conversations[0].messages[0].immutable_id))
            _, whole_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rss_after_whole = _max_rss_mib()
    finally:
        stop.set()
        server.join(timeout=60)
    size_mib = args.megabytes
    print(f"imported {report.imported} message with a {size_mib} MiB attachment in {seconds:.1f} s")
    print(f"stored: {document.name}, {stored / MIB:.1f} MiB on disk, skipped={document.skipped}")
    share = import_peak / (size_mib * MIB)
    print(f"importer: peak Python allocations {import_peak / MIB:8.1f} MiB ({share:.1%} of the attachment)")
    print(f"          peak resident size      {rss_after_import:8.1f} MiB (was {rss_before:.1f} MiB before the import)")
    print(f"buffered read of the same attachment for comparison: peak Python allocations {whole_peak / MIB:.1f} MiB,")
    print(f"          peak resident size then {rss_after_whole:.1f} MiB ({whole_bytes / MIB:.1f} MiB read)")
    print("goal: streaming, i.e. the importer's peak stays a small fraction of the attachment's size")


if __name__ == "__main__":
    main()
