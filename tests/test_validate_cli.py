"""`mailplane validate` on integration configs (and mixed with stack files): exit codes and the three formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailplane.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "integration.json"


@pytest.fixture
def broken(tmp_path):
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    document["accounts"]["shared"][0]["conversation"]["parent"] = "tiket"
    document["templates"]["ticket-update"]["subject"] = "{{conversation.subjet}}"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def _run(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_valid_file__text__ok_and_exit_0():
    result = _run(EXAMPLE)
    assert result.exit_code == 0, result.output
    assert result.output == f"ok: {EXAMPLE}\n"


def test_broken_file__text__headline_then_the_rest_and_exit_1(broken):
    result = _run(broken)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        f"error: {broken}: $.accounts.shared[0].conversation.parent: record type 'tiket' is not declared in "
        "recordTypes (did you mean 'ticket'?); declared: agent, company, person, ticket"
    )
    assert lines[1] == "1 more problem:"
    assert lines[2] == (
        "  - $.templates.ticket-update.subject: unknown merge code {{conversation.subjet}} "
        "(did you mean {{conversation.subject}}?)"
    )
    assert lines[3] == "1 of 1 integration config invalid."


def test_several_files__one_broken__every_file_reported_and_exit_1(broken, tmp_path):
    missing = tmp_path / "missing.json"
    result = _run(EXAMPLE, broken, missing)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"ok: {EXAMPLE}"
    assert f"error: {missing}: $: file not found. Check the path." in lines
    assert lines[-1] == "2 of 3 integration configs invalid."


def test_broken_file__json__one_object_per_file_with_paths(broken):
    result = _run("--format", "json", EXAMPLE, broken)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [(r["file"], r["kind"], r["valid"]) for r in report] == [
        (str(EXAMPLE), "integration", True),
        (str(broken), "integration", False),
    ]
    assert report[1]["problems"][0] == {
        "path": "$.accounts.shared[0].conversation.parent",
        "line": 15,
        "message": "record type 'tiket' is not declared in recordTypes (did you mean 'ticket'?); declared: agent, "
        "company, person, ticket",
        "value": "tiket",
    }


def test_valid_file__json__exit_0():
    result = _run("--format", "json", EXAMPLE)
    assert result.exit_code == 0
    assert json.loads(result.output) == [{"file": str(EXAMPLE), "kind": "integration", "valid": True, "problems": []}]


def test_broken_file__github__one_error_command_per_problem(broken):
    result = _run("--format", "github", broken)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        f"::error file={broken},line=15,title=mailplane validate $.accounts.shared[0].conversation.parent"
        "::$.accounts.shared[0].conversation.parent: record type 'tiket' is not declared in recordTypes "
        "(did you mean 'ticket'?); declared: agent, company, person, ticket"
    )


def test_github_format__newlines_commas_colons__escaped(tmp_path):
    path = tmp_path / "a,b:c.json"
    path.write_text("{\n", encoding="utf-8")
    result = _run("--format", "github", path)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"::error file={tmp_path}/a%2Cb%3Ac.json,line=2,title=mailplane validate $::")


def test_no_files_and_no_stacks_folder__usage_error_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _run().exit_code == 2


def test_stack_and_integration_files__mixed__each_checked_by_its_kind(broken):
    stack = ROOT / "stacks" / "Pulumi.example-inbound-import.yaml"
    result = _run(stack, EXAMPLE, broken)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:2] == [f"ok: {stack}", f"ok: {EXAMPLE}"]
    assert lines[-1] == "1 of 3 files invalid."


def test_invalid_stack_file__github__annotation_on_the_key_line(tmp_path):
    stack = tmp_path / "Pulumi.broken.yaml"
    text = (ROOT / "stacks" / "Pulumi.example-outbound-send.yaml").read_text(encoding="utf-8")
    stack.write_text(text.replace("rotationPeriodMonths: 6", "rotationPeriodMonths: 0"), encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if "rotationPeriodMonths" in t)
    result = _run("--format", "github", stack)
    assert result.exit_code == 1
    (command,) = result.output.splitlines()
    assert command.startswith(
        f"::error file={stack},line={line},title=mailplane validate mailplane%3Acredentials.clientSecret."
        "rotationPeriodMonths::mailplane:credentials.clientSecret.rotationPeriodMonths: "
    )


def test_unknown_format__usage_error_exit_2():
    assert _run("--format", "xml", EXAMPLE).exit_code == 2
