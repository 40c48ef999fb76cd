"""The offline plan: the real program under the mock engine, per example stack; golden snapshots of the graph."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from mailplane.cli import main
from mailplane.plan import PlanError, plan_stack
from mailplane.rotation import period_index
from tests.conftest import EXAMPLE_STACKS, REPO_ROOT

TODAY = dt.date(2026, 11, 22)
SNAPSHOTS = REPO_ROOT / "tests" / "snapshots"
UPDATE = os.environ.get("MAILPLANE_UPDATE_SNAPSHOTS") == "1"


def snapshot_of(stack_file) -> dict:
    plan = plan_stack(stack_file, project_dir=REPO_ROOT, today=TODAY)
    data = plan.to_dict()
    data["source"] = stack_file.relative_to(REPO_ROOT).as_posix()
    for resource, planned in zip(data["resources"], plan.resources, strict=True):
        resource["urn"] = planned.urn
        if resource["type"] == "pulumi:providers:azuread":
            # The SDK fills other provider inputs from ARM_* variables of whoever runs the test.
            resource["inputs"] = {"tenantId": resource["inputs"]["tenantId"]}
    return data


@pytest.mark.parametrize("stack_file", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_example_stack__planned__matches_golden_resource_graph(stack_file):
    snapshot = SNAPSHOTS / f"{stack_file.stem.removeprefix('Pulumi.')}.json"
    actual = snapshot_of(stack_file)
    if UPDATE or not snapshot.exists():
        snapshot.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
        if not UPDATE:
            pytest.fail(f"{snapshot} was missing and has been written; review and commit it")
    expected = json.loads(snapshot.read_text())
    assert actual == expected, (
        f"{stack_file.name}: the resource graph changed. Review the diff; if intended, rerun with "
        "MAILPLANE_UPDATE_SNAPSHOTS=1 and commit tests/snapshots/."
    )


@pytest.mark.parametrize("stack_file", EXAMPLE_STACKS, ids=lambda p: p.stem)
def test_example_stack__planned__outputs_present_and_secrets_hidden(stack_file):
    plan = plan_stack(stack_file, project_dir=REPO_ROOT, today=TODAY)
    assert {"tenantId", "clientId", "servicePrincipalObjectId", "credentialExpiries", "grants"} <= set(plan.outputs)
    if "activeClientSecret" in plan.outputs:
        assert "activeClientSecret" in plan.secret_outputs
        assert plan.outputs["activeClientSecret"] == "[secret]"
    assert "secure" not in json.dumps(plan.to_dict())


def test_plan_cli__all_example_stacks__tree_printed_and_exit_zero():
    result = CliRunner().invoke(main, ["plan", "--today", "2026-11-22", *map(str, EXAMPLE_STACKS)])
    assert result.exit_code == 0, result.output
    for stack_file in EXAMPLE_STACKS:
        assert f"stack {stack_file.stem.removeprefix('Pulumi.')}" in result.output
    assert "Application Mail.Send on lms-noreply@contoso.com" in result.output
    assert "ApplicationPassword example-outbound-send-secret-slot-a" in result.output


def test_plan_cli__json__machine_readable():
    result = CliRunner().invoke(main, ["plan", "--json", "--today", "2026-11-22", str(EXAMPLE_STACKS[0])])
    assert result.exit_code == 0, result.output
    (stack,) = json.loads(result.output)
    assert stack["resources"]
    assert stack["outputs"]["grants"]["tenantId"]


def test_plan_cli__broken_copy_of_example__exit_one_and_key_named(tmp_path):
    broken = tmp_path / "Pulumi.broken.yaml"
    text = (REPO_ROOT / "stacks" / "Pulumi.example-delegated-imap-smtp.yaml").read_text()
    broken.write_text(text.replace("https://crm.northwind.com", "http://crm.northwind.com"))
    result = CliRunner().invoke(main, ["plan", str(broken)])
    assert result.exit_code == 1
    assert (
        f"{broken}: mailplane:app.redirectUris[0]: 'http://crm.northwind.com/oauth/microsoft/callback' uses plain "
        "http" in result.output
    )


def test_program_itself__bad_config_reaches_it__fails_with_same_message(tmp_path, monkeypatch):
    """The program, not only the plan's pre-check, stops on a bad stack file (as it would under `pulumi up`)."""
    import mailplane.plan as plan_module

    monkeypatch.setattr(plan_module, "parse_tenant_config", lambda *_args, **_kwargs: None)
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT, project, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "*.pyc"))
    broken = project / "stacks" / "Pulumi.broken.yaml"
    broken.write_text((project / "stacks" / "Pulumi.example-outbound-send.yaml").read_text().replace("rbac", "rbca"))
    with pytest.raises(PlanError) as caught:
        plan_stack(broken, project_dir=project, today=TODAY)
    assert str(caught.value).startswith(
        "stacks/Pulumi.broken.yaml: mailplane:scoping.mode: 'rbca' is not allowed; use one of 'rbac'"
    )


@pytest.mark.slow
def test_rotation_through_the_program__three_years_fortnightly__slots_change_only_at_boundaries():
    stack_file = REPO_ROOT / "stacks" / "Pulumi.example-outbound-send.yaml"
    anchor, period = dt.date(2026, 1, 1), 6
    previous = None
    previous_index = None
    for step in range(0, 3 * 365, 14):
        today = anchor + dt.timedelta(days=step)
        plan = plan_stack(stack_file, project_dir=REPO_ROOT, today=today)
        slots = {
            r.name: (r.inputs["displayName"], r.inputs["endDate"], r.inputs["rotateWhenChanged"])
            for r in plan.resources
            if r.type == "azuread:index/applicationPassword:ApplicationPassword"
        }
        index = period_index(anchor, period, today)
        if previous is not None:
            changed = {name for name in slots if previous.get(name) != slots[name]}
            if index == previous_index:
                assert not changed, f"{today}: {changed} would be replaced between boundaries"
            else:
                assert len(changed) == 1, f"{today}: exactly one slot must rotate at a boundary, got {changed}"
        previous, previous_index = slots, index
