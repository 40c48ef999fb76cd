"""'mailplane import' with a webhook sink: what it imported is posted, signed, before the command exits."""

from __future__ import annotations

import json

from click.testing import CliRunner
from importing_harness import SUPPORT, eml, integration_config
from sink_harness import SECRET

from mailplane.cli import main
from mailplane.importing.webhook_sink import verify_signature


def _config_file(tmp_path, url):
    document = integration_config(tmp_path, webhookSink={"url": url, "secretEnv": "HOOK_SECRET", "maxAttempts": 3})
    path = tmp_path / "integration.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_import_once__sink_configured__imported_conversation_posted_signed_before_exit(
    tenant, tmp_path, endpoint, monkeypatch
):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    tenant.state.seed_eml(SUPPORT, eml("Printer on fire", message_id="<sink-cli@x>"))

    result = CliRunner().invoke(
        main, ["import", "--config", str(_config_file(tmp_path, endpoint.url)), "--graph-url", tenant.graph_base_url]
    )

    assert result.exit_code == 0, result.output
    assert "webhook sink: 1 delivered, 0 to retry on the next run, 0 given up" in result.output
    (post,) = endpoint.posts
    assert verify_signature(
        SECRET.encode(), post.headers["x-mailplane-timestamp"], post.body, post.headers["x-mailplane-signature"]
    )
    assert post.json["conversation"]["parentFields"]["title"] == "Printer on fire"
    assert SECRET not in result.output


def test_import_once__sink_refuses__message_kept_imported_exit_1_and_requeue_named(
    tenant, tmp_path, endpoint, monkeypatch
):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    endpoint.script.append((400, {}))
    tenant.state.seed_eml(SUPPORT, eml("Invoice question", message_id="<sink-cli-400@x>"))

    result = CliRunner().invoke(
        main, ["import", "--config", str(_config_file(tmp_path, endpoint.url)), "--graph-url", tenant.graph_base_url]
    )

    assert result.exit_code == 1
    assert f"import {SUPPORT}: 1 imported" in result.output
    assert "1 given up (re-queue them with 'mailplane serve --requeue-failed-deliveries')" in result.output
    assert len(endpoint.posts) == 1


def test_import_once__sink_secret_unset__error_names_the_variable(tenant, tmp_path, endpoint, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET", raising=False)

    result = CliRunner().invoke(
        main, ["import", "--config", str(_config_file(tmp_path, endpoint.url)), "--graph-url", tenant.graph_base_url]
    )

    assert result.exit_code == 1
    assert "HOOK_SECRET" in result.output
    assert endpoint.posts == []
