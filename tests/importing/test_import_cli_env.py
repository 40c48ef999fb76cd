"""'mailplane import' options: Graph through $MAILPLANE_GRAPH_URL (as the send commands and 'serve'), recovery's age."""

from __future__ import annotations

import datetime as dt
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


def test_import_recover__age_from_the_config_unless_max_age_days_given(tenant, tmp_path, monkeypatch):
    settings = {"recovery": {"gracePeriodMinutes": 2, "maxUnreadAgeDays": 60}}
    config = tmp_path / "integration.json"
    config.write_text(json.dumps(integration_config(tmp_path, settings=settings)), encoding="utf-8")
    month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    tenant.state.seed_eml(SUPPORT, eml("Last month", message_id="<month@x>"), received=month_ago)
    monkeypatch.setenv("MAILPLANE_GRAPH_URL", tenant.graph_base_url)
    recover = ["import", "--recover", "--config", str(config), "--mailbox", SUPPORT]

    narrow = CliRunner().invoke(main, [*recover, "--max-age-days", "7"])
    assert narrow.exit_code == 0, narrow.output
    assert not any(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))

    result = CliRunner().invoke(main, recover)
    assert result.exit_code == 0, result.output
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))
