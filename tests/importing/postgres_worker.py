"""One import worker process for the multi-worker PostgreSQL tests: ``python postgres_worker.py CONFIG GRAPH_URL ...``.

Runs ``Importer.import_once`` a number of times with a short lease, printing one JSON line per pass (unbuffered, so
the test sees what a worker did before it was killed).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from mailplane.graph import GraphClient, StaticTokenCredential
from mailplane.importing import open_import_store
from mailplane.importing.blobs import FileBlobStore
from mailplane.importing.importer import Importer
from mailplane.integration import load_integration_config


async def work(arguments: argparse.Namespace) -> None:
    config = load_integration_config(arguments.config)
    store = open_import_store(config.store)
    async with GraphClient(StaticTokenCredential(), base_url=arguments.graph_url, retry_delay=0) as graph, store:
        importer = Importer(
            config,
            graph,
            store,
            blobs=FileBlobStore(arguments.blobs),
            holder=arguments.holder,
            lease_ttl=dt.timedelta(seconds=arguments.lease_seconds),
        )
        for _ in range(arguments.passes):
            report = await importer.import_once(arguments.mailbox or None)
            line = {
                "holder": arguments.holder,
                "imported": report.imported,
                "duplicates": sum(m.duplicates for m in report.mailboxes),
                "leased_elsewhere": sum(m.leased_elsewhere for m in report.mailboxes),
                "errors": [e for m in report.mailboxes for e in m.errors],
            }
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("graph_url")
    parser.add_argument("--holder", required=True)
    parser.add_argument("--blobs", type=Path, required=True)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--mailbox", action="append", help="Only these mailboxes (repeatable; default: all).")
    asyncio.run(work(parser.parse_args()))
