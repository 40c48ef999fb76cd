"""``mailplane validate [FILE...]``: check config files (schema and meaning) without Pulumi, a tenant or Graph.

Two kinds of file, told apart by extension:

* ``*.yaml`` / ``*.yml``: tenant stack files, with the same checks as the Pulumi program (``parse_tenant_config``), so
  a file that passes here is accepted there. Without FILE arguments: every ``stacks/Pulumi.*.yaml``.
* ``*.json``: runtime integration configs (``schemas/integration.schema.json`` plus the semantic checks of
  :mod:`mailplane.integration`).

Exit 0 when every file is valid, 1 when any has a problem, 2 on a usage error. ``--format text`` (default) prints
``ok: FILE`` or the headline problem then the rest (on stderr); ``json`` prints one object per file; ``github``
prints GitHub Actions workflow commands (``::error file=...,line=...,title=...::message``) so pull requests show the
problems on the offending lines.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from mailplane.exceptions import ConfigError, ConfigProblem, IntegrationConfigError, TenantConfigError
from mailplane.integration import integration_problems, read_integration_file
from mailplane.source_lines import json_lines, line_for, yaml_lines
from mailplane.tenant import load_stack_file, parse_tenant_config

if TYPE_CHECKING:
    import datetime as dt

__all__ = ["FileResult", "check_file", "validate"]

FileKind = Literal["stack", "integration"]
_KIND_NAMES = {"stack": "stack file", "integration": "integration config"}


@dataclass(frozen=True)
class FileResult:
    """The findings for one file (empty ``problems``: valid)."""

    path: str
    kind: FileKind
    problems: tuple[ConfigProblem, ...]
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, compare=False)

    @property
    def valid(self) -> bool:
        """True when there is nothing to fix."""
        return not self.problems

    @property
    def location_prefix(self) -> str:
        """``mailplane:`` for stack keys, ``$`` for JSON paths."""
        return "mailplane:" if self.kind == "stack" else "$"

    def location(self, problem: ConfigProblem) -> str:
        """Where the problem is, in the file kind's notation."""
        return problem.location(self.location_prefix)

    def line(self, problem: ConfigProblem) -> int | None:
        """The 1-based line the problem is on (its value, or the closest enclosing one), when known."""
        path = problem.path
        if self.kind == "stack" and path:
            # Stack keys live under config: as "mailplane:<key>".
            path = ("config", f"mailplane:{path[0]}", *path[1:])
        elif self.kind == "stack":
            path = ("config",)
        return line_for(self.lines, path)

    def render(self) -> str:
        """Headline problem first, then the rest (the same text as the exception)."""
        error_type: type[ConfigError] = TenantConfigError if self.kind == "stack" else IntegrationConfigError
        return error_type(self.path, list(self.problems)).render()


def _kind_of(path: str) -> FileKind:
    return "integration" if path.lower().endswith(".json") else "stack"


def _syntax_lines(problems: list[ConfigProblem]) -> dict[tuple[str | int, ...], int]:
    match = re.search(r"at line (\d+)", problems[0].message) if problems else None
    return {(): int(match.group(1))} if match else {}


def check_file(path: str, *, today: dt.date | None = None) -> FileResult:
    """Read and check one file; problems reading it are findings too."""
    kind = _kind_of(path)
    try:
        if kind == "stack":
            parse_tenant_config(load_stack_file(path), source=path, today=today)
            return FileResult(path, kind, ())
        problems = integration_problems(read_integration_file(path))
    except ConfigError as error:
        # A stack file's semantic problems also arrive here; syntax problems carry their line in the message.
        lines = _syntax_lines(error.problems) or _lines_of(path, kind)
        return FileResult(path, kind, tuple(error.problems), lines)
    return FileResult(path, kind, tuple(problems), _lines_of(path, kind) if problems else {})


def _lines_of(path: str, kind: FileKind) -> dict[tuple[str | int, ...], int]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    return json_lines(text) if kind == "integration" else yaml_lines(text)


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
                "kind": r.kind,
                "valid": r.valid,
                "problems": [
                    {"path": r.location(p), "line": r.line(p), "message": p.message, "value": _jsonable(p.value)}
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
        return [f"ok: {result.path}"]
    commands = []
    for problem in result.problems:
        properties = [f"file={_escape_property(result.path)}"]
        line = result.line(problem)
        if line is not None:
            properties.append(f"line={line}")
        properties.append(f"title={_escape_property('mailplane validate ' + result.location(problem))}")
        message = _escape_data(f"{result.location(problem)}: {problem.message}")
        commands.append(f"::error {','.join(properties)}::{message}")
    return commands


def _summary(results: list[FileResult]) -> str:
    failed = sum(not r.valid for r in results)
    kinds = {r.kind for r in results}
    noun = _KIND_NAMES[kinds.pop()] if len(kinds) == 1 else "file"
    return f"{failed} of {len(results)} {noun}{'s' if len(results) != 1 else ''} invalid."


@click.command("validate")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for programs, github for GitHub Actions annotations.",
)
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), help="Check stack dates against this day.")
def validate(files: tuple[str, ...], output_format: str, today: dt.datetime | None) -> None:
    """Validate stack files (*.yaml) and integration configs (*.json); exit 1 naming each bad key.

    Without FILES: every stacks/Pulumi.*.yaml. Stack files get the same checks as the Pulumi program; integration
    configs get the schema and the semantic checks (references, merge codes, cron, addresses).
    """
    paths = list(files) or [os.path.relpath(p) for p in sorted(Path("stacks").glob("Pulumi.*.yaml"))]
    if not paths:
        raise click.UsageError("no files given and no stack files in ./stacks. Run from the project or name the files.")
    day = today.date() if today else None
    results = [check_file(path, today=day) for path in paths]
    if output_format == "json":
        click.echo(_json(results))
    elif output_format == "github":
        for result in results:
            for line in _github(result):
                click.echo(line)
    else:
        for result in results:
            if result.valid:
                click.echo(f"ok: {result.path}")
            else:
                click.echo(f"error: {result.render()}", err=True)
        if not all(r.valid for r in results):
            click.echo(_summary(results), err=True)
    if not all(r.valid for r in results):
        raise SystemExit(1)
