import json

from click.testing import CliRunner
from importing_harness import integration_config

from mailplane.cli import main


def _config_file(tmp_path, **overrides):
    path = tmp_path / "integration.json"
    path.write_text(json.dumps(integration_config(tmp_path, **overrides)), encoding="utf-8")
    return path


def test_serve__config_without_change_notifications__error_says_which_section_to_add(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--config", str(_config_file(tmp_path))])
    assert result.exit_code == 1
    assert "the config has no changeNotifications section" in result.output
    assert "changeNotifications.publicUrl" in result.output


def test_serve__client_state_variable_unset__error_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("HOOK_STATE", raising=False)
    path = _config_file(
        tmp_path, changeNotifications={"publicUrl": "https://mail.example.com/graph", "clientStateEnv": "HOOK_STATE"}
    )
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert "the variable HOOK_STATE (changeNotifications.clientStateEnv) is not set" in result.output


def test_serve__client_state_longer_than_graph_allows__refused_without_echoing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILPLANE_CLIENT_STATE", "x" * 129)
    path = _config_file(tmp_path, changeNotifications={"publicUrl": "https://mail.example.com/graph"})
    result = CliRunner().invoke(main, ["serve", "--config", str(path)])
    assert result.exit_code == 1
    assert "at most 128" in result.output
    assert "x" * 129 not in result.output


def test_serve__requeue_failed_deliveries__counts_and_exits(tmp_path):
    path = _config_file(tmp_path)
    result = CliRunner().invoke(main, ["serve", "--config", str(path), "--requeue-failed-deliveries"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "re-queued 0 failed webhook sink deliveries"


def test_change_notifications__plain_http_public_url_off_loopback__rejected_at_its_path(tmp_path):
    import pytest

    from mailplane.exceptions import IntegrationConfigError
    from mailplane.integration import load_integration_config

    document = integration_config(tmp_path, changeNotifications={"publicUrl": "http://mail.example.com/graph"})
    with pytest.raises(IntegrationConfigError) as caught:
        load_integration_config(document)
    [problem] = caught.value.problems
    assert problem.path == ("changeNotifications", "publicUrl")
    assert "plain http on a non-loopback host" in problem.message


def test_change_notifications__defaults__urls_derived_from_the_public_url(tmp_path):
    from mailplane.integration import load_integration_config

    document = integration_config(tmp_path, changeNotifications={"publicUrl": "https://mail.example.com/graph/"})
    settings = load_integration_config(document).change_notifications
    assert settings.notification_url == "https://mail.example.com/graph/notifications"
    assert settings.lifecycle_url == "https://mail.example.com/graph/lifecycle"
    assert (settings.client_state_env, settings.subscription_minutes) == ("MAILPLANE_CLIENT_STATE", 4230)
