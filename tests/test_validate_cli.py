"""`mailplane validate`: exit codes and the text, json and GitHub annotation formats."""

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
    assert result.output == f"{EXAMPLE}: ok\n"


def test_broken_file__text__headline_then_the_rest_and_exit_1(broken):
    result = _run(broken)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        f"{broken}: $.accounts.shared[0].conversation.parent: record type 'tiket' is not declared in recordTypes "
        "(did you mean 'ticket'?); declared: agent, company, person, ticket"
    )
    assert lines[1] == "1 more problem:"
    assert lines[2] == (
        "  - $.templates.ticket-update.subject: unknown merge code {{conversation.subjet}} "
        "(did you mean {{conversation.subject}}?)"
    )


def test_several_files__one_broken__every_file_reported_and_exit_1(broken, tmp_path):
    missing = tmp_path / "missing.json"
    result = _run(EXAMPLE, broken, missing)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == f"{EXAMPLE}: ok"
    assert result.output.splitlines()[-1] == f"{missing}: $: file not found. Check the path."


def test_broken_file__json__one_object_per_file_with_paths(broken):
    result = _run("--format", "json", EXAMPLE, broken)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [(r["file"], r["valid"]) for r in report] == [(str(EXAMPLE), True), (str(broken), False)]
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
    assert json.loads(result.output) == [{"file": str(EXAMPLE), "valid": True, "problems": []}]


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


def test_no_files__usage_error_exit_2():
    assert _run().exit_code == 2


def test_unknown_format__usage_error_exit_2():
    assert _run("--format", "xml", EXAMPLE).exit_code == 2
