"""``mailplane send``, ``send-queued``, ``send-test`` and ``status`` against the dev tenant, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sending_harness import INTERNAL, SENDER, delivered_keys, drop_schema, fresh_schema, postgres_dsn, start_tenant

from mailplane.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "integration.json"


@pytest.fixture
def tenant():
    running = start_tenant()
    yield running
    running.stop()


def _config(tmp_path, tenant, **changes):
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    document["graph"] = {"baseUrl": tenant.graph_base_url}
    document["store"] = {"backend": "sqlite", "path": "state/send.sqlite3"}
    document.update(changes)
    path = tmp_path / "integration.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _invoke(*args, **env):
    return CliRunner().invoke(main, list(args), env=env or None, catch_exceptions=False)


def test_send_text_with_attachment__sent_once_and_again_with_the_same_key__not_sent_twice(tmp_path, tenant):
    config = _config(tmp_path, tenant)
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n", encoding="utf-8")
    args = ["send", "--config", str(config), "--to", f"Agent <{INTERNAL}>", "--subject", "Report", "--text", "See"]
    args += ["--attach", str(report), "--idempotency-key", "report-2026-03"]
    first = _invoke(*args)
    second = _invoke(*args)
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "sent: report-2026-03"
    assert second.output.strip() == "sent: report-2026-03"
    assert delivered_keys(tenant) == ["report-2026-03"]
    [received] = tenant.state.messages(INTERNAL, "inbox")
    assert [a.name for a in received.attachments] == ["report.csv"]
    assert received.reply_to == [("", "support@fabrikam.com")]
    assert (tmp_path / "state" / "send.sqlite3").is_file()


def test_send_template__rendered_per_recipient_with_the_context_file(tmp_path, tenant):
    config = _config(tmp_path, tenant)
    context = tmp_path / "context.json"
    context.write_text(
        json.dumps({"conversation": {"id": "1042", "subject": "Printer on fire"}, "followers": [INTERNAL]}),
        encoding="utf-8",
    )
    result = _invoke(
        "send", "--config", str(config), "--template", "ticket-acknowledgement", "--context", str(context),
        "--to", f"Agent <{INTERNAL}>", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "sent"
    [received] = tenant.state.messages(INTERNAL, "inbox")
    assert received.subject == "[#1042] Printer on fire"
    assert "Hello Agent" in received.body


def test_send_over_the_minute_limit__queued_with_the_command_that_sends_it_later(tmp_path, tenant):
    config = _config(tmp_path, tenant, sendingLimits={"messagesPerMinute": 1})
    base = ["send", "--config", str(config), "--to", INTERNAL, "--text", "x"]
    assert _invoke(*base, "--subject", "one").exit_code == 0
    queued = _invoke(*base, "--subject", "two")
    assert queued.exit_code == 0
    assert queued.output.startswith("queued: sha256:")
    assert f"mailplane send-queued --config {config}" in queued.output
    later = _invoke("send-queued", "--config", str(config))
    assert "0 sent, 0 failed, 1 waiting (next after" in later.output
    assert len(delivered_keys(tenant)) == 1


def test_send_without_body__usage_error_exit_2(tmp_path, tenant):
    result = _invoke("send", "--config", str(_config(tmp_path, tenant)), "--to", INTERNAL, "--subject", "x")
    assert result.exit_code == 2
    assert "needs a body" in result.output


def test_send_with_bad_address__usage_error_names_the_option(tmp_path, tenant):
    result = _invoke("send", "--config", str(_config(tmp_path, tenant)), "--to", "nobody", "--text", "x")
    assert result.exit_code == 2
    assert "--to" in result.output


def test_send_test_then_status__outcome_time_and_redacted_response_log_shown(tmp_path, tenant):
    config = _config(tmp_path, tenant)
    sent = _invoke("send-test", "--config", str(config), "--to", INTERNAL)
    assert sent.exit_code == 0, sent.output
    assert sent.output.startswith(f"send-test {SENDER} -> {INTERNAL}: sent (accepted by Graph for delivery")
    shown = _invoke("status", "--config", str(config))
    assert f"mailbox {SENDER}" in shown.output
    assert "1/30 messages in the last minute, 1/10000 recipients in the last 24 h" in shown.output
    assert "send-test: sent at" in shown.output
    assert "/messages -> 201" in shown.output
    assert "/send -> 202" in shown.output
    data = json.loads(_invoke("status", "--config", str(config), "--json").output)
    log = data["sendTest"]["responseLog"]
    assert log
    assert all(entry["requestHeaders"].get("authorization") == "[redacted]" for entry in log)
    assert "dev-tenant-token" not in json.dumps(data)
    assert data["sends"]["sent"] == 1


def test_send_test_access_denied__failure_recorded_with_the_log_and_exit_1(tmp_path, tenant):
    config = _config(tmp_path, tenant)
    tenant.state.set_access_denied(SENDER)
    result = _invoke("send-test", "--config", str(config), "--to", INTERNAL)
    assert result.exit_code == 1
    assert "ErrorAccessDenied" in result.output
    data = json.loads(_invoke("status", "--config", str(config), "--json").output)
    assert data["sendTest"]["status"] == "failed"
    assert data["sendTest"]["responseLog"][0]["status"] == 403


def test_store_path_from_the_environment__used_instead_of_the_configs(tmp_path, tenant):
    config = _config(tmp_path, tenant)
    other = tmp_path / "elsewhere" / "send.sqlite3"
    result = _invoke("send-test", "--config", str(config), "--to", INTERNAL, MAILPLANE_STORE_PATH=str(other))
    assert result.exit_code == 0, result.output
    assert other.is_file()
    assert not (tmp_path / "state" / "send.sqlite3").exists()


def test_postgres_store_without_its_variable__error_names_the_variable(tmp_path, tenant):
    config = _config(tmp_path, tenant, store={"backend": "postgres", "dsnEnv": "SEND_TEST_DSN"})
    result = _invoke("send", "--config", str(config), "--to", INTERNAL, "--text", "x")
    assert result.exit_code == 1
    assert "the variable SEND_TEST_DSN is not set" in result.output


def test_postgres_store__send_then_status__state_kept_in_postgres(tmp_path, tenant):
    import psycopg
    from psycopg import sql

    dsn, schema = postgres_dsn(), fresh_schema()
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        config = _config(tmp_path, tenant, store={"backend": "postgres", "dsnEnv": "SEND_TEST_DSN"})
        env = {"SEND_TEST_DSN": f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"}
        sent = _invoke("send-test", "--config", str(config), "--to", INTERNAL, **env)
        assert sent.exit_code == 0, sent.output
        data = json.loads(_invoke("status", "--config", str(config), "--json", **env).output)
        assert (data["sends"]["sent"], data["sendTest"]["status"]) == (1, "sent")
        with psycopg.connect(dsn) as connection:
            query = sql.SQL("SELECT count(*) FROM {}.send_messages").format(sql.Identifier(schema))
            assert connection.execute(query).fetchone()[0] == 1
        assert not (tmp_path / "state").exists()
    finally:
        drop_schema(dsn, schema)


def test_credential__loopback_without_azure_variables__dev_tenant_token_else_the_environments():
    import asyncio

    from mailplane.graph import StaticTokenCredential, credential_for_base_url

    dev = credential_for_base_url("http://127.0.0.1:8650/v1.0", {"MAILPLANE_DEV_TOKEN": "t-1"})
    assert isinstance(dev, StaticTokenCredential)
    assert asyncio.run(dev.get_token("https://graph.microsoft.com/.default")).token == "t-1"
    secret = {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "AZURE_CLIENT_SECRET": "s"}
    assert type(credential_for_base_url("http://127.0.0.1:8650/v1.0", secret)).__name__ == "ClientSecretCredential"
    assert (
        type(credential_for_base_url("https://graph.microsoft.com/v1.0", secret)).__name__ == "ClientSecretCredential"
    )
