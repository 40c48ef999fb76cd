"""``mailplane validate FILE...``: check integration config files (schema and meaning) without touching any service.

Exit 0 when every file is valid, 1 when any file has a problem. ``--format text`` (default) prints the headline
problem of each file, then the rest; ``json`` prints one object per file; ``github`` prints GitHub Actions workflow
commands (``::error file=...,title=...::message``) so pull requests show the problems as annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import click

from mailplane.exceptions import ConfigProblem, IntegrationConfigError
from mailplane.integration import integration_problems, read_integration_file

__all__ = ["FileResult", "check_file", "validate"]


@dataclass(frozen=True)
class FileResult:
    """The findings for one file (empty ``problems``: valid)."""

    path: str
    problems: tuple[ConfigProblem, ...]

    @property
    def valid(self) -> bool:
        """True when there is nothing to fix."""
        return not self.problems


def check_file(path: str) -> FileResult:
    """Read and check one file; problems reading it are findings too."""
    try:
        document = read_integration_file(path)
    except IntegrationConfigError as exc:
        return FileResult(path, tuple(exc.problems))
    return FileResult(path, tuple(integration_problems(document)))


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
                    {"path": p.location(), "message": p.message, "value": _jsonable(p.value)} for p in r.problems
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
    return [
        f"::error file={_escape_property(result.path)},title={_escape_property('mailplane validate ' + p.location())}"
        f"::{_escape_data(p.location() + ': ' + p.message)}"
        for p in result.problems
    ]


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
