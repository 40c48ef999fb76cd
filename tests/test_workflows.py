"""The example GitHub Actions workflows: valid YAML with the structure the GitOps loop relies on."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
import yaml
from stack_copies import ROOT

from mailplane.cli import COMMANDS

WORKFLOWS = ROOT / ".github" / "workflows"
PULUMI_COMMAND = re.compile(r"\bpulumi (preview|up)\b")
MAILPLANE_COMMAND = re.compile(r"(?:^|[\s/;&|(])mailplane ([a-z][a-z-]*)")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True))


def all_workflows() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.yml"))


def steps(workflow: dict[str, Any]):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, job, step


def test_workflows__the_three_loops__exist():
    assert all_workflows() == ["deploy.yml", "pull-request.yml", "scheduled.yml"]


@pytest.mark.parametrize("name", all_workflows())
def test_workflow__top_level_permissions__read_only(name):
    assert load(name)["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("name", all_workflows())
def test_workflow__jobs_that_run_pulumi__use_oidc_and_a_protected_environment(name):
    pulumi_jobs = {j for j, _, step in steps(load(name)) if PULUMI_COMMAND.search(step.get("run", ""))}
    assert pulumi_jobs
    for job_name in pulumi_jobs:
        job = load(name)["jobs"][job_name]
        assert job["permissions"]["id-token"] == "write", job_name
        assert job["environment"] in ("preview", "production"), job_name
        assert job["env"]["ARM_USE_OIDC"] == "true", job_name
        assert "ARM_CLIENT_SECRET" not in job["env"], job_name


@pytest.mark.parametrize("name", all_workflows())
def test_workflow__secrets__only_in_env_never_in_scripts(name):
    for job_name, _, step in steps(load(name)):
        script = step.get("run", "")
        assert "secrets." not in script, (job_name, script)
        assert "set -x" not in script, (job_name, script)
        assert "--show-secrets" not in script, (job_name, script)
        assert not re.search(r"echo [^\n]*\$\{?(PULUMI_ACCESS_TOKEN|ARM_|GH_TOKEN)", script), (job_name, script)


@pytest.mark.parametrize("name", all_workflows())
def test_workflow__mailplane_commands__exist_in_the_cli(name):
    used = {m for _, _, step in steps(load(name)) for m in MAILPLANE_COMMAND.findall(step.get("run", ""))}
    assert used
    assert used <= set(COMMANDS), used - set(COMMANDS)


@pytest.mark.parametrize("name", all_workflows())
def test_workflow__pulumi_runs__enforce_the_policy_pack(name):
    for job_name, _, step in steps(load(name)):
        if PULUMI_COMMAND.search(step.get("run", "")):
            assert "--policy-pack policy" in step["run"], job_name


def test_pull_request__validates_plans_audits_and_previews_changed_stacks():
    workflow = load("pull-request.yml")
    assert "pull_request" in triggers(workflow)
    scripts = {j: " ".join(s.get("run", "") for s in job["steps"]) for j, job in workflow["jobs"].items()}

    assert "mailplane validate" in scripts["validate"]
    assert "mailplane plan" in scripts["validate"]
    assert "scripts/changed_stacks.py" in scripts["validate"]
    assert "mailplane audit --base" in scripts["audit"]
    assert "gh pr comment" in scripts["audit"]
    assert workflow["jobs"]["audit"]["permissions"]["pull-requests"] == "write"
    assert "pulumi preview" in scripts["preview"]
    assert (
        workflow["jobs"]["preview"]["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.validate.outputs.stacks) }}"
    )


def test_pull_request__audit_exit_2__fails_the_job_after_commenting():
    audit_steps = load("pull-request.yml")["jobs"]["audit"]["steps"]
    names = [s.get("name") for s in audit_steps]
    fail = audit_steps[names.index("fail on a policy violation or an invalid stack")]

    assert names.index("post the audit as a pull-request comment") < names.index(fail["name"])
    assert fail["if"] == "steps.audit.outputs.code == '2'"
    assert "exit 1" in fail["run"]


def test_deploy__push_to_main__pulumi_up_for_changed_stacks():
    workflow = load("deploy.yml")

    assert triggers(workflow)["push"]["branches"] == ["main"]
    up = workflow["jobs"]["up"]
    assert up["environment"] == "production"
    assert any("pulumi up --yes" in s.get("run", "") for s in up["steps"])
    assert up["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.changed.outputs.stacks) }}"


def test_scheduled__weekly__refresh_up_every_stack_then_expiry_watch():
    workflow = load("scheduled.yml")
    (schedule,) = triggers(workflow)["schedule"]
    _minute, _hour, day, month, weekday = schedule["cron"].split()
    rotate = workflow["jobs"]["rotate"]
    scripts = [s.get("run", "") for s in rotate["steps"]]

    assert (day, month, weekday) == ("*", "*", "1")
    assert any("pulumi up --yes --refresh" in s for s in scripts)
    assert any("mailplane credentials" in s and "--stack-output" in s for s in scripts)
    assert "--all" in workflow["jobs"]["stacks"]["steps"][-1]["run"]


def test_changed_stacks_script__stack_file_or_shared_code__affected_stacks(monkeypatch):
    monkeypatch.chdir(ROOT)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import changed_stacks
    finally:
        sys.path.remove(str(ROOT / "scripts"))

    assert changed_stacks.affected(["stacks/Pulumi.example-outbound-send.yaml", "README.md"]) == [
        "example-outbound-send"
    ]
    assert changed_stacks.affected(["docs/exchange.md"]) == []
    assert changed_stacks.affected(["components/client_secret.py"]) == [
        p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
    ]
    assert len(changed_stacks.all_stacks()) == 4
