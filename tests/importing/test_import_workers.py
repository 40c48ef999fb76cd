"""Workers and entry points: leases between importers, watch mode, the 'mailplane import' command."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from click.testing import CliRunner
from importing_harness import BILLING, SUPPORT, eml, integration_config, read_store, received, run_importer

from mailplane.cli import main


def test_two_importers_at_once__each_mailbox_synced_by_one_of_them__every_message_once(tenant, make_config):
    config = make_config()
    for n in range(30):
        mailbox = SUPPORT if n % 2 else BILLING
        tenant.state.seed_eml(mailbox, eml(f"m{n}", to=mailbox, message_id=f"<w{n}@x>"), received=received(n))

    async def both(importer):
        from mailplane.importing.importer import Importer

        other = Importer(importer.config, importer.graph, importer.store, blobs=importer.blobs, holder="worker-b")
        return await asyncio.gather(importer.import_once(), other.import_once())

    first, second = run_importer(tenant, config, both)

    assert first.imported + second.imported == 30
    for mailbox in (SUPPORT, BILLING):
        reports = [r for report in (first, second) for r in report.mailboxes if r.mailbox == mailbox]
        assert sorted(r.leased_elsewhere for r in reports) in ([False, True], [False, False])
    assert read_store(config, lambda s: s.count_messages()) == 30


def test_watch__new_mail_while_watching__imported_on_wake_then_stopped(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, eml("Before", message_id="<before@x>"), received=received(1))

    async def watch(importer):
        stop, wake = asyncio.Event(), asyncio.Event()
        kinds = []

        def on_report(kind, report):
            kinds.append((kind, report.imported))
            if len(kinds) == 1:
                tenant.state.seed_eml(SUPPORT, eml("During", message_id="<during@x>"), received=received(2))
                wake.set()
            else:
                stop.set()

        await asyncio.wait_for(
            importer.watch(poll_interval=dt.timedelta(hours=1), stop=stop, wake=wake, on_report=on_report), 60
        )
        return kinds

    kinds = run_importer(tenant, config, watch)

    assert kinds[:2] == [("import", 1), ("import", 1)]
    assert read_store(config, lambda s: s.count_messages()) == 2


def test_import_command__dev_tenant__prints_what_each_mailbox_did_and_exits_0(tenant, tmp_path):
    config_path = tmp_path / "integration.json"
    config_path.write_text(json.dumps(integration_config(tmp_path)), encoding="utf-8")
    tenant.state.seed_eml(SUPPORT, eml("Hello", message_id="<cli@x>"))

    result = CliRunner().invoke(main, ["import", "--config", str(config_path), "--graph-url", tenant.graph_base_url])

    assert result.exit_code == 0, result.output
    assert f"import {SUPPORT}: 1 imported, 0 already there, 1 marked read, 0 failed" in result.output
    assert f"import {BILLING}: 0 imported" in result.output


def test_import_command__unknown_mailbox__usage_error_names_it(tenant, tmp_path):
    config_path = tmp_path / "integration.json"
    config_path.write_text(json.dumps(integration_config(tmp_path)), encoding="utf-8")

    result = CliRunner().invoke(
        main,
        ["import", "--config", str(config_path), "--graph-url", tenant.graph_base_url, "--mailbox", "nobody@x.com"],
    )

    assert result.exit_code == 1
    assert "not an enabled shared account" in result.output
    assert "nobody@x.com" in result.output
