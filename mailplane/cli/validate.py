"""``mailplane validate FILE...``: check integration config files (schema and meaning) without touching any service.

Exit 0 when every file is valid, 1 when any file has a problem. ``--format text`` (default) prints the headline
problem of each file, then the rest; ``json`` prints one object per file; ``github`` prints GitHub Actions workflow
commands (``::error file=...,title=...::message``) so pull requests show the problems as annotations.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mailplane.exceptions import ConfigProblem, IntegrationConfigError
from mailplane.integration import integration_problems, read_integration_file
from mailplane.json_lines import line_for, value_lines

__all__ = ["FileResult", "check_file", "validate"]


@dataclass(frozen=True)
class FileResult:
    """The findings for one file (empty ``problems``: valid)."""

    path: str
    problems: tuple[ConfigProblem, ...]
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, compare=False)

    @property
    def valid(self) -> bool:
        """True when there is nothing to fix."""
        return not self.problems

    def line(self, problem: ConfigProblem) -> int | None:
        """The 1-based line the problem is on (its value, or the closest enclosing one), when known."""
        return line_for(self.lines, problem.path)


def check_file(path: str) -> FileResult:
    """Read and check one file; problems reading it are findings too."""
    try:
        document = read_integration_file(path)
    except IntegrationConfigError as exc:
        syntax = re.search(r"at line (\d+),", exc.problems[0].message)
        return FileResult(path, tuple(exc.problems), {(): int(syntax.group(1))} if syntax else {})
    problems = tuple(integration_problems(document))
    lines = value_lines(Path(path).read_text(encoding="utf-8")) if problems else {}
    return FileResult(path, problems, lines)


def _text(result: FileResult) -> str:
    if result.valid:
        return f"{result.path}: ok"
    return IntegrationConfigError(result.path, list(result.problems)).render()


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _json(results: list[FileResult]) -> str:
    return json.dumps(
        [
            {
                "file": r.path,
                "valid": r.valid,
                "problems": [
                    {"path": p.location(), "line": r.line(p), "message": p.message, "value": _jsonable(p.value)}
                    for p in r.problems
                ],
            }
            for r in results
        ],
        indent=2,
    )


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping (actions/toolkit command.ts).
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(result: FileResult) -> list[str]:
    if result.valid:
        return [f"{result.path}: ok"]
    commands = []
    for problem in result.problems:
        properties = [f"file={_escape_property(result.path)}"]
        line = result.line(problem)
        if line is not None:
            properties.append(f"line={line}")
        properties.append(f"title={_escape_property('mailplane validate ' + problem.location())}")
        message = _escape_data(f"{problem.location()}: {problem.message}")
        commands.append(f"::error {','.join(properties)}::{message}")
    return commands


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for programs, github for GitHub Actions annotations.",
)
def validate(files: tuple[str, ...], output_format: str) -> None:
    """Check integration config FILES against the schema and for meaning (references, merge codes, cron...).

    Exit 0 when all are valid, 1 when any has a problem.
    """
    results = [check_file(path) for path in files]
    if output_format == "json":
        click.echo(_json(results))
    else:
        for result in results:
            lines = _github(result) if output_format == "github" else [_text(result)]
            for line in lines:
                click.echo(line)
    if not all(r.valid for r in results):
        raise SystemExit(1)
