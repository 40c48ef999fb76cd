"""Import throughput under the dev tenant's latency and throttling model, and Graph requests per imported message.

    python benchmarks/import_throughput.py [--messages 5000] [--mailboxes 10] [--latency-ms 50] [--naive 100]

The dev tenant runs in its own process (so its CPU does not compete with the importer's) with a fixed latency per
request, at most ``--concurrency`` requests in flight per mailbox and 10,000 requests per mailbox per 10 minutes.
Both processes settle their heap once set up (``mailplane.process.settle_heap``), as ``mailplane import`` and
``mailplane devtenant`` do: full garbage collections of the seeded mailboxes and the SDK's classes would otherwise
stop either event loop for 50-70 ms a few times per run, with every request in flight waiting.

* **Ceiling**: the fewest requests any importer needs is one per message (marking it read; Graph counts each
  ``$batch`` item as a request), plus two per message with an attachment (list, download). Per mailbox at most
  ``concurrency`` requests run at once, each taking at least the latency, so a mailbox needs at least
  ``requests x latency / concurrency`` seconds; the mailboxes run in parallel. (The window of 10,000 requests per
  10 minutes does not bind below 10,000 requests per mailbox.) ceiling = messages / slowest mailbox's minimum time.
* **Naive loop**: list the unread messages, then for each one GET it and PATCH it read, one request at a time,
  writing to the same SQLite store; measured in the same run on ``--naive`` messages of a separate mailbox.
* **The dev tenant's own overhead** (printed for reading the share, not part of it): after the run, one request and
  one chained ``$batch`` of 20 are timed one at a time; what they take beyond the latency is the emulator's
  processing and timer granularity, which the ceiling leaves out.
* **Requests per message**: every Graph request the importer sent (each ``$batch`` item counted as one, the batch
  envelope not), without attachment downloads (list + ``$value``), divided by messages imported; and finding alone
  (delta pages).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from msgraph.generated.models.message import Message
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import MessagesRequestBuilder

from mailplane.devtenant.app import DevTenant
from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.importing import open_import_store
from mailplane.importing.blobs import FileBlobStore
from mailplane.importing.importer import Importer
from mailplane.importing.mailbox_graph import MailboxGraph
from mailplane.importing.message_facts import message_facts
from mailplane.importing.store import DestinationInput, ImportedMessage
from mailplane.importing.store_sqlite import SqliteImportStore
from mailplane.integration import load_integration_config
from mailplane.process import settle_heap

NAIVE_MAILBOX = "naive@bench.example"


def _mailbox(n: int) -> str:
    return f"shared-{n:02d}@bench.example"


def _eml(n: int, mailbox: str, *, attachment: bool) -> bytes:
    message = EmailMessage()
    message["From"] = f"Customer {n} <customer{n % 300}@example.org>"
    message["To"] = mailbox
    message["Cc"] = f"colleague{n % 17}@example.org"
    message["Subject"] = f"Order {100000 + n}: delivery question"
    message["Message-ID"] = f"<bench-{n}@example.org>"
    message["Date"] = "Mon, 02 Mar 2026 08:00:00 +0000"
    message.set_content(f"Hello,\n\nwhere is order {100000 + n}? It was due yesterday.\n\nRegards\n" + "x" * 600)
    if attachment:
        message.add_attachment(b"%PDF-1.4 " + b"0" * 20_000, maintype="application", subtype="pdf", filename="po.pdf")
    return message.as_bytes()


def _serve(args: Any, ready: Any, stop: Any) -> None:

    tenant = DevTenant(latency_ms=args.latency_ms, concurrency=args.concurrency, with_exchange=False)
    per_mailbox = args.messages // args.mailboxes
    n = 0
    for m in range(args.mailboxes):
        mailbox = _mailbox(m)
        tenant.state.add_mailbox(mailbox, kind="shared")
        for _ in range(per_mailbox):
            attachment = args.attachment_every > 0 and n % args.attachment_every == 0
            tenant.state.seed_eml(mailbox, _eml(n, mailbox, attachment=attachment))
            n += 1
    tenant.state.add_mailbox(NAIVE_MAILBOX, kind="shared")
    for k in range(args.naive):
        tenant.state.seed_eml(NAIVE_MAILBOX, _eml(1_000_000 + k, NAIVE_MAILBOX, attachment=False))
    tenant.start()
    settle_heap()  # as 'mailplane devtenant' does once seeded
    ready.put(tenant.base_url)
    stop.wait()
    tenant.stop()


def _cpu_seconds(pid: int | None) -> float:
    """CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _counters(base_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base_url}/_devtenant/requests", timeout=30) as response:
        return dict(json.load(response)["counters"])


def _clear(base_url: str) -> None:
    request = urllib.request.Request(f"{base_url}/_devtenant/requests", method="DELETE")
    urllib.request.urlopen(request, timeout=30).close()


def _config(work: Path, mailboxes: list[str], base_url: str) -> Any:

    return load_integration_config(
        {
            "version": 1,
            "accounts": {
                "shared": [
                    {
                        "address": address,
                        "displayName": address.split("@")[0],
                        "conversation": {
                            "parent": "ticket",
                            "properties": {"title": {"message": "subject"}, "requester": {"message": "fromAddress"}},
                        },
                    }
                    for address in mailboxes
                ]
            },
            "recordTypes": {"ticket": {"fields": {"title": {"type": "string"}, "requester": {"type": "email"}}}},
            "store": {"backend": "sqlite", "path": str(work / "bench.sqlite3")},
            "graph": {"baseUrl": f"{base_url}/v1.0"},
        }
    )


async def _naive(config: Any, base_url: str, work: Path) -> tuple[int, float]:
    """The straightforward loop: one request at a time, GET each message, PATCH it read, write it to the store."""

    store = SqliteImportStore(work / "naive.sqlite3")
    count = 0
    async with GraphClient(StaticTokenCredential(), base_url=f"{base_url}/v1.0") as graph, store:
        user = graph.service.users.by_user_id(NAIVE_MAILBOX)
        started = time.perf_counter()
        config_list = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration(
            query_parameters=MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
                filter="isRead eq false", select=["id"], top=50
            )
        )
        page = await user.mail_folders.by_mail_folder_id("inbox").messages.get(config_list)
        ids = [m.id for m in page.value or []]
        while page.odata_next_link:
            page = await user.mail_folders.by_mail_folder_id("inbox").messages.with_url(page.odata_next_link).get()
            ids.extend(m.id for m in page.value or [])
        reader = MailboxGraph(graph, NAIVE_MAILBOX)
        for message_id in ids:
            message = await reader.get_message(message_id)
            facts = message_facts(message, mailbox=NAIVE_MAILBOX, mailbox_name="naive")
            await store.record_import(
                ImportedMessage(
                    mailbox=NAIVE_MAILBOX,
                    immutable_id=facts.immutable_id,
                    internet_message_id=facts.internet_message_id,
                    received_at=facts.received_at,
                    destinations=(DestinationInput(NAIVE_MAILBOX, "ticket", {"title": facts.subject}),),
                    subject=facts.subject,
                    thread=facts.thread,
                    attributes=facts.attributes,
                )
            )
            await user.messages.by_message_id(message_id).patch(Message(is_read=True))
            count += 1
        elapsed = time.perf_counter() - started
    del config
    return count, elapsed


async def _import(config: Any, work: Path, page_size: int) -> tuple[Any, float]:

    store = open_import_store(config.store)
    async with GraphClient(StaticTokenCredential(), base_url=config.graph_base_url) as graph, store:
        importer = Importer(config, graph, store, blobs=FileBlobStore(work / "blobs"), page_size=page_size)
        settle_heap()  # as 'mailplane import' does once it is set up
        started = time.perf_counter()
        report = await importer.import_once()
        elapsed = time.perf_counter() - started
        stored = await store.count_messages()
    return (report, stored), elapsed


async def _calibrate(base_url: str) -> tuple[float, float]:
    """What one request, and one round trip of a chained batch of 20, take at the dev tenant (seconds).

    The model says a request takes the latency; the emulator adds its own processing and timer granularity. Measured
    on the naive loop's mailbox (already imported) after the run, one request at a time.
    """
    async with httpx.AsyncClient(base_url=f"{base_url}/v1.0", headers={"Authorization": "Bearer bench"}) as http:
        listing = await http.get(f"/users/{NAIVE_MAILBOX}/messages", params={"$select": "id", "$top": "20"})
        ids = [m["id"] for m in listing.json()["value"]]
        singles = []
        for message_id in ids:
            started = time.perf_counter()
            answer = await http.get(f"/users/{NAIVE_MAILBOX}/messages/{message_id}", params={"$select": "id"})
            answer.raise_for_status()
            singles.append(time.perf_counter() - started)
        items = [
            {"id": str(n), "method": "GET", "url": f"/users/{NAIVE_MAILBOX}/messages/{message_id}?$select=id"}
            | ({"dependsOn": [str(n - 1)]} if n > 1 else {})
            for n, message_id in enumerate(ids, start=1)
        ]
        batches = []
        for _ in range(3):
            started = time.perf_counter()
            (await http.post("/$batch", json={"requests": items})).raise_for_status()
            batches.append(time.perf_counter() - started)
    return statistics.median(singles), statistics.median(batches) / (len(items) + 1)


def _split(counters: dict[str, int]) -> dict[str, int]:
    groups = {"finding": 0, "mark read": 0, "attachments": 0, "other": 0, "throttled (429)": 0, "batch envelopes": 0}
    for key, count in counters.items():
        method, kind, status = key.split(" ")
        if status == "429":
            groups["throttled (429)"] += count
        if kind == "batch":
            groups["batch envelopes"] += count
        elif "delta" in kind or kind in ("messages.list", "folder.messages"):
            groups["finding"] += count
        elif kind.startswith("attachment"):
            groups["attachments"] += count
        elif method == "PATCH":
            groups["mark read"] += count
        else:
            groups["other"] += count
    return groups


def _ceiling(args: Any) -> tuple[float, int]:
    """Messages per second the model allows at best (see the module docstring), and how many have attachments."""
    per_mailbox = args.messages // args.mailboxes

    def has_attachment(n: int) -> bool:
        return bool(args.attachment_every) and n % args.attachment_every == 0

    attachment_messages = sum(1 for n in range(per_mailbox * args.mailboxes) if has_attachment(n))
    worst_attachments = max(
        sum(1 for n in range(m * per_mailbox, (m + 1) * per_mailbox) if has_attachment(n))
        for m in range(args.mailboxes)
    )
    min_requests = per_mailbox + 2 * worst_attachments
    ceiling_seconds = min_requests * (args.latency_ms / 1000.0) / args.concurrency
    return per_mailbox * args.mailboxes / ceiling_seconds, attachment_messages


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--mailboxes", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="per request (Graph mail calls: 100+ ms)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--naive", type=int, default=50, help="messages for the naive sequential loop")
    parser.add_argument("--attachment-every", type=int, default=50, help="every Nth message has a 20 kB attachment")
    parser.add_argument("--page-size", type=int, default=500)
    return parser.parse_args()


def main() -> None:
    """Run the benchmark and print the figures."""
    args = _arguments()

    load_before = os.getloadavg()[0]
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve, args=(args, ready, stop), daemon=True)
    setup = time.perf_counter()
    server.start()
    base_url = ready.get(timeout=600)
    print(f"dev tenant ready in {time.perf_counter() - setup:.1f} s at {base_url}")
    try:
        with tempfile.TemporaryDirectory(prefix="mailplane-bench-") as scratch:
            work = Path(scratch)
            mailboxes = [_mailbox(m) for m in range(args.mailboxes)]
            config = _config(work, mailboxes, base_url)
            naive_count, naive_seconds = asyncio.run(_naive(config, base_url, work))
            _clear(base_url)
            tenant_cpu = _cpu_seconds(server.pid)
            own_cpu = time.process_time()
            (report, stored), seconds = asyncio.run(_import(config, work, args.page_size))
            own_cpu = time.process_time() - own_cpu
            tenant_cpu = _cpu_seconds(server.pid) - tenant_cpu
            counters = _counters(base_url)
            single_seconds, batch_item_seconds = asyncio.run(_calibrate(base_url))
    finally:
        stop.set()
        server.join(timeout=30)

    ceiling_rate, attachment_messages = _ceiling(args)
    imported = report.imported
    per_mailbox = args.messages // args.mailboxes
    rate = imported / seconds
    naive_rate = naive_count / naive_seconds
    groups = _split(counters)
    counted = groups["finding"] + groups["mark read"] + groups["other"]
    print(
        f"model: latency {args.latency_ms:g} ms, {args.concurrency} concurrent requests per mailbox, "
        f"10,000 requests per mailbox per 10 min; {args.mailboxes} mailboxes x {per_mailbox} messages "
        f"({attachment_messages} with a 20 kB attachment)"
    )
    print(f"imported {imported} messages ({stored} in the store, {report.failed} failed) in {seconds:.2f} s")
    print(
        f"CPU used meanwhile: importer {own_cpu:.2f} s, dev tenant {tenant_cpu:.2f} s, on {os.cpu_count()} CPUs "
        f"(load average before the run {load_before:.2f})"
    )
    print(f"throughput            {rate:8.1f} messages/s")
    print(
        f"ceiling of the model  {ceiling_rate:8.1f} messages/s  -> {rate / ceiling_rate:6.1%} of the ceiling "
        "(goal >= 90%)"
    )
    print(
        f"naive sequential loop {naive_rate:8.1f} messages/s  -> importer is {rate / naive_rate:6.1f}x the naive loop "
        f"({naive_count} messages in {naive_seconds:.2f} s)"
    )
    latency = args.latency_ms / 1000.0
    print(
        f"the dev tenant itself, one request at a time: a request takes {single_seconds * 1000:.1f} ms, a chained "
        f"$batch of 20 takes {batch_item_seconds * 1000:.1f} ms per round trip (model: {args.latency_ms:g} ms; the "
        f"difference is the emulator's processing and timer granularity, {batch_item_seconds / latency - 1:.1%} "
        "per batch round trip, which the ceiling leaves out)"
    )
    print("Graph requests by purpose (each $batch item counted once):", json.dumps(groups))
    print(
        f"requests per imported message, without attachment downloads: {counted / imported:.3f} (goal <= 1.1); "
        f"finding: {groups['finding'] / imported:.4f} (goal <= 0.05)"
    )
    print(f"started at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
