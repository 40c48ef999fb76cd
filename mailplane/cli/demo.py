"""``mailplane demo``: the whole story, offline, on the embedded default (the dev tenant, SQLite, no cloud account)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import click

from mailplane.cli.demo_sending import send_from_designated_mailbox, validate_example_integration

__all__ = ["demo"]


def _heading(number: int, title: str) -> None:
    click.echo()
    click.secho(f"== {number}. {title}", bold=True)


def _plan_examples(project_dir: Path, today: dt.date) -> None:
    from mailplane.cli.plan import render_plan
    from mailplane.plan import plan_stack

    for stack_file in sorted((project_dir / "stacks").glob("Pulumi.example-*.yaml")):
        plan = plan_stack(stack_file, project_dir=project_dir, today=today)
        data = plan.to_dict()
        data["source"] = os.path.relpath(stack_file)
        for resource, planned in zip(data["resources"], plan.resources, strict=True):
            resource["urn"] = planned.urn
        click.echo(render_plan(data))
        click.echo()


def _credentials(project_dir: Path, today: dt.date) -> None:
    from mailplane.cli.credentials import render_text
    from mailplane.credential_expiry import credential_expiries
    from mailplane.tenant import load_stack_file, parse_tenant_config

    found = []
    sources = {}
    for stack_file in sorted((project_dir / "stacks").glob("Pulumi.example-*.yaml")):
        config = parse_tenant_config(load_stack_file(stack_file), source=str(stack_file), today=today)
        stack = stack_file.name.removeprefix("Pulumi.").removesuffix(".yaml")
        sources[stack] = os.path.relpath(stack_file)
        found.extend(credential_expiries(stack, config, today=today))
    click.echo(render_text(found, sources, 30))


def _exchange_rehearsal(project_dir: Path, today: dt.date) -> None:  # noqa: ARG001 - the step signature.
    from mailplane.devtenant.exchange_rehearsal import rehearse_stack

    stack_file = project_dir / "stacks" / "Pulumi.example-inbound-import.yaml"
    click.echo(f"{os.path.relpath(stack_file)}: the Exchange objects its plan declares, applied by the real providers")
    for line in rehearse_stack(stack_file, project_dir=project_dir).lines:
        click.echo(line)


def _import_examples(project_dir: Path, today: dt.date) -> None:
    from mailplane.cli.demo_importing import import_examples

    import_examples(project_dir, today)


STEPS: list[tuple[str, Callable[[Path, dt.date], None]]] = [
    ("Plan every example tenant stack offline (the real Pulumi program, mock engine)", _plan_examples),
    ("Credential expiry watch over the example stacks", _credentials),
    ("Exchange scoping and shared mailboxes on the dev tenant's Exchange emulator", _exchange_rehearsal),
    ("Validate the example integration config", validate_example_integration),
    ("Send from the designated mailbox on the dev tenant, exactly once; show the status", send_from_designated_mailbox),
    ("Import examples/mail into conversations from the dev tenant's shared mailboxes", _import_examples),
]


@click.command("demo")
@click.option("--project", type=click.Path(path_type=Path, file_okay=False), help="Folder with Pulumi.yaml.")
def demo(project: Path | None) -> None:
    """Run the main job offline: plan the example stacks, then drive the runtime against the local dev tenant."""
    from mailplane.plan import find_project_dir

    project_dir = project or find_project_dir(Path.cwd())
    today = dt.datetime.now(dt.UTC).date()
    for number, (title, step) in enumerate(STEPS, start=1):
        _heading(number, title)
        step(project_dir, today)
    click.echo()
    click.secho("demo finished: every step above ran against local emulators; nothing left this machine.", bold=True)
