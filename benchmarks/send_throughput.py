"""Send throughput under Exchange's per-mailbox limit, against the dev tenant's throttling model.

What it measures: M mailboxes each allowed ``messagesPerMinute`` (rolling 60 s), already at that limit when the
measurement starts (the ledger holds one message every 60/limit seconds over the last minute: the steady state of
a busy integration). For ``--seconds`` the governed sender (``Sender.send_queued``, 4 workers per mailbox, draft +
send, exactly once) sends as much as the limit allows; then a naive loop does the same job on fresh mailboxes: one
``sendMail`` at a time, waiting in turn for each message's mailbox to be allowed. Both talk to the dev tenant over
HTTP through msgraph-sdk, with Graph-like latency on every request and a share of requests throttled (429 with
Retry-After); the dev tenant also enforces its 4-concurrent-requests-per-mailbox limit.

Printed: messages sent in the window, the number the limit allowed in it (the slots that opened), the ratio of the
two, 429s the dev tenant answered and how many escaped the client (a send that had to wait because retries ran
out), duplicates (keys delivered more than once), the largest number of messages any mailbox sent in a rolling
minute, and the governed/naive ratio.

    python benchmarks/send_throughput.py                 # 16 mailboxes, 30 s per run, 300 +-100 ms latency
    python benchmarks/send_throughput.py --mailboxes 4 --seconds 20 --latency-ms 100
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from email import message_from_bytes
from pathlib import Path

from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.message import Message
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

from mailplane.devtenant.app import DevTenant
from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.integration import SendingLimits
from mailplane.sending.governor import MINUTE_SECONDS
from mailplane.sending.graph_drafts import IDEMPOTENCY_HEADER
from mailplane.sending.outgoing import Address, OutgoingMessage
from mailplane.sending.sender import Sender
from mailplane.sending.sqlite_store import SQLiteSendStore
from mailplane.sending.store import SendState

RECIPIENT = "inbox@fabrikam.com"


def prefill_steady_state(store: SQLiteSendStore, mailbox: str, limits: SendingLimits, start: float) -> None:
    """Ledger entries as if ``mailbox`` had sent at its limit for the last minute (one every 60/limit s)."""
    spacing = MINUTE_SECONDS / limits.messages_per_minute
    for number in range(limits.messages_per_minute):
        at = start - MINUTE_SECONDS + (number + 0.5) * spacing
        store._db.execute(  # noqa: SLF001 - a benchmark sets up history the public API only records live
            "INSERT INTO send_ledger (mailbox, key, at, recipients) VALUES (?, ?, ?, 1)",
            (mailbox, f"history-{number}", at),
        )


def allowed_in_window(limits: SendingLimits, mailboxes: int, seconds: float) -> tuple[int, float]:
    """Slots that open during the window (the limit's own rate) and where the window ends.

    The history puts slot n at (n + 0.5) * spacing; the window ends half-way between the last slot in it and the
    next, so a send is never counted on the wrong side of the boundary.
    """
    spacing = MINUTE_SECONDS / limits.messages_per_minute
    per_mailbox = sum(1 for n in range(limits.messages_per_minute) if (n + 0.5) * spacing < seconds)
    return per_mailbox * mailboxes, per_mailbox * spacing


def send_times(tenant: DevTenant, mailbox: str) -> list[float]:
    """When the tenant accepted each send of ``mailbox`` (its request log; message timestamps have 1 s precision)."""
    return sorted(
        r.at
        for r in tenant.requests.records
        if r.mailbox and r.mailbox.lower() == mailbox and r.kind in ("message.send", "sendMail") and r.status == 202
    )


def sent_in_window(tenant: DevTenant, mailboxes: list[str], start: float, end: float) -> int:
    return sum(1 for m in mailboxes for at in send_times(tenant, m) if start <= at < end)


def duplicates(tenant: DevTenant, mailboxes: list[str]) -> int:
    """Messages delivered more than once (same idempotency key, or for the naive loop the same subject)."""
    keys = []
    for mailbox in mailboxes:
        for record in tenant.state.outbox(mailbox):
            header = message_from_bytes(record.mime).get(IDEMPOTENCY_HEADER) or record.subject
            keys.append(" ".join(str(header).split()))
    return sum(count - 1 for count in collections.Counter(keys).values() if count > 1)


def busiest_minute(tenant: DevTenant, mailboxes: list[str], limits: SendingLimits, start: float) -> int:
    """The most messages any mailbox had in one rolling minute (the history plus what the tenant accepted)."""
    spacing = MINUTE_SECONDS / limits.messages_per_minute
    history = [start - MINUTE_SECONDS + (n + 0.5) * spacing for n in range(limits.messages_per_minute)]
    worst = 0
    for mailbox in mailboxes:
        sent = sorted([*history, *send_times(tenant, mailbox)])
        for index, moment in enumerate(sent):
            worst = max(worst, sum(1 for other in sent[: index + 1] if moment - MINUTE_SECONDS < other))
    return worst


def message(mailbox: str, number: int) -> OutgoingMessage:
    return OutgoingMessage(to=(Address(RECIPIENT),), subject=f"{mailbox} #{number}", text="Your ticket was updated.")


async def governed_run(
    tenant: DevTenant, store: SQLiteSendStore, mailboxes: list[str], args: argparse.Namespace
) -> tuple[float, int]:
    limits = SendingLimits(messages_per_minute=args.per_minute)
    async with GraphClient(StaticTokenCredential(), base_url=tenant.graph_base_url, retry_delay=0) as client:
        senders = [Sender(client, store, m, limits=limits, workers=4, retry_delay=0.2) for m in mailboxes]
        backlog = limits.messages_per_minute  # more than the window can take
        for sender in senders:
            for number in range(backlog):
                store.add(sender.prepare(message(sender.mailbox, number), f"{sender.mailbox}-{number}"))
        start = time.time()
        for mailbox in mailboxes:
            prefill_steady_state(store, mailbox, limits, start)
        await asyncio.gather(*(s.send_queued(wait=True, wait_seconds=args.seconds) for s in senders))
    escaped = sum(
        1
        for r in store.records()
        if r.mailbox in mailboxes and r.last_error and "throttling" in r.last_error and r.state != SendState.SENT
    )
    return start, escaped


async def naive_run(
    tenant: DevTenant, store: SQLiteSendStore, mailboxes: list[str], args: argparse.Namespace
) -> tuple[float, int]:
    """One sendMail at a time, round robin over the mailboxes, each waiting until its mailbox may send."""
    limits = SendingLimits(messages_per_minute=args.per_minute)
    escaped = 0
    async with GraphClient(StaticTokenCredential(), base_url=tenant.graph_base_url, retry_delay=0) as client:
        start = time.time()
        for mailbox in mailboxes:
            prefill_steady_state(store, mailbox, limits, start)
        number = 0
        while time.time() < start + args.seconds:
            mailbox = mailboxes[number % len(mailboxes)]
            key = f"{mailbox}-{number}"
            while True:
                now = time.time()
                allowed = store.reserve_budget(mailbox, key, 1, now, limits)
                if allowed <= now:
                    break
                await asyncio.sleep(allowed - now)
            body = SendMailPostRequestBody(
                message=Message(
                    subject=f"{mailbox} #{number}",
                    body=ItemBody(content_type=BodyType.Text, content="Your ticket was updated."),
                    to_recipients=[Recipient(email_address=EmailAddress(address=RECIPIENT))],
                ),
                save_to_sent_items=False,
            )
            try:
                async with client.call(mailbox, doing="sending as"):
                    await client.service.users.by_user_id(mailbox).send_mail.post(body)
            except Exception:  # noqa: BLE001 - counted: a naive loop just carries on
                escaped += 1
            store.confirm_sent(mailbox, key, time.time())
            number += 1
    return start, escaped


def report(name: str, *, sent: int, allowed: int, seconds: float, throttled: int, escaped: int, twice: int) -> float:
    ratio = sent / allowed
    print(
        f"{name:16} {sent:4} messages in {seconds:.0f} s = {sent / seconds:5.2f}/s; the limit allowed "
        f"{allowed} -> {ratio:6.1%} of the limit; 429s answered by the tenant: {throttled}, escaped the client: "
        f"{escaped}; delivered twice: {twice}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--per-minute", type=int, default=30, help="messagesPerMinute per mailbox")
    parser.add_argument("--latency-ms", type=float, default=300.0, help="Graph latency per request (+-1/3)")
    parser.add_argument("--throttle-share", type=float, default=0.05, help="share of requests answered 429")
    args = parser.parse_args()

    with DevTenant(domain="fabrikam.com", with_exchange=False) as tenant, tempfile.TemporaryDirectory() as folder:
        tenant.state.add_mailbox(RECIPIENT)
        governed = [f"governed{i}@fabrikam.com" for i in range(args.mailboxes)]
        naive = [f"naive{i}@fabrikam.com" for i in range(args.mailboxes)]
        for mailbox in governed + naive:
            tenant.state.add_mailbox(mailbox)
        tenant.faults.latency(args.latency_ms, jitter_ms=args.latency_ms / 3, path=r"^/users/")
        tenant.faults.throttle(path=r"^/users/", probability=args.throttle_share, seed=7, retry_after=1)
        limits = SendingLimits(messages_per_minute=args.per_minute)
        allowed, window = allowed_in_window(limits, args.mailboxes, args.seconds)
        print(
            f"send throughput: {args.mailboxes} mailboxes x {args.per_minute} messages/minute, each already at its "
            f"limit for the last minute; {args.seconds:.0f} s per run; Graph latency {args.latency_ms:.0f} +-"
            f"{args.latency_ms / 3:.0f} ms; {args.throttle_share:.0%} of requests throttled (429, Retry-After 1 s); "
            "dev tenant: 4 concurrent requests per mailbox"
        )
        with SQLiteSendStore(Path(folder) / "send.sqlite3") as store:
            before = tenant.requests.throttled
            start, escaped = asyncio.run(governed_run(tenant, store, governed, args))
            sent = sent_in_window(tenant, governed, start, start + window)
            throttled = tenant.requests.throttled - before
            twice = duplicates(tenant, governed)
            governed_ratio = report(
                "governed sender",
                sent=sent,
                allowed=allowed,
                seconds=window,
                throttled=throttled,
                escaped=escaped,
                twice=twice,
            )
            worst_governed = busiest_minute(tenant, governed, limits, start)
            naive_start = 0.0
            before = tenant.requests.throttled
            start, escaped = asyncio.run(naive_run(tenant, store, naive, args))
            naive_start = start
            naive_sent = sent_in_window(tenant, naive, start, start + window)
            throttled = tenant.requests.throttled - before
            naive_ratio = report(
                "naive loop",
                sent=naive_sent,
                allowed=allowed,
                seconds=window,
                throttled=throttled,
                escaped=escaped,
                twice=duplicates(tenant, naive),
            )
        worst_naive = busiest_minute(tenant, naive, limits, naive_start)
        print(
            f"busiest rolling minute of any mailbox: governed {worst_governed}, naive {worst_naive} messages "
            f"(limit {args.per_minute})"
        )
        print(f"governed / naive: {governed_ratio / naive_ratio:.2f}x")


if __name__ == "__main__":
    main()
