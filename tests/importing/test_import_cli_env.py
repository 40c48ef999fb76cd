"""'mailplane import' finds Graph through $MAILPLANE_GRAPH_URL, as the send commands and 'serve' do."""

from __future__ import annotations

import json

from click.testing import CliRunner
from importing_harness import SUPPORT, eml, integration_config

from mailplane.cli import main


def test_import_once__graph_url_only_in_the_environment__imports_from_that_tenant(tenant, tmp_path, monkeypatch):
    config = tmp_path / "integration.json"
    config.write_text(json.dumps(integration_config(tmp_path)), encoding="utf-8")
    tenant.state.seed_eml(SUPPORT, eml("Printer on fire", message_id="<env-url@x>"))
    monkeypatch.setenv("MAILPLANE_GRAPH_URL", tenant.graph_base_url)

    result = CliRunner().invoke(main, ["import", "--config", str(config), "--mailbox", SUPPORT])

    assert result.exit_code == 0, result.output
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))
    assert tenant.requests.count(kind="message.delta") >= 1
