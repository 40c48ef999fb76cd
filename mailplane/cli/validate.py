"""``mailplane validate``: check tenant stack files (schema and semantic checks) without Pulumi or a tenant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailplane.exceptions import TenantConfigError
from mailplane.tenant import load_stack_file, parse_tenant_config

if TYPE_CHECKING:
    import datetime as dt

__all__ = ["validate"]


@click.command("validate")
@click.argument("stack_files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), help="Check dates against this day.")
def validate(stack_files: tuple[Path, ...], today: dt.datetime | None) -> None:
    """Validate stack files (default: every stacks/Pulumi.*.yaml); exit 1 naming each bad key.

    Runs the same checks as the Pulumi program (parse_tenant_config), so a file that passes here is accepted there.
    """
    files = list(stack_files) or [Path(os.path.relpath(p)) for p in sorted(Path("stacks").glob("Pulumi.*.yaml"))]
    if not files:
        raise click.UsageError("no stack files given and none in ./stacks. Run from the project or name the files.")
    day = today.date() if today else None
    failed = 0
    for path in files:
        try:
            parse_tenant_config(load_stack_file(path), source=str(path), today=day)
        except TenantConfigError as error:
            failed += 1
            click.echo(f"error: {error}", err=True)
        else:
            click.echo(f"ok: {path}")
    if failed:
        click.echo(f"{failed} of {len(files)} stack file{'s' if len(files) != 1 else ''} invalid.", err=True)
        raise SystemExit(1)
