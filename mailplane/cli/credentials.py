"""``mailplane credentials``: every credential per stack with its expiry; exit 1 when one needs attention."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import click

from mailplane.credential_expiry import ATTENTION, CredentialExpiry, credential_expiries
from mailplane.exceptions import TenantConfigError
from mailplane.tenant import load_stack_file, parse_tenant_config

__all__ = ["credentials", "render_text"]


def _stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def _read_stack_outputs(values: tuple[str, ...], stacks: list[str]) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {}
    for value in values:
        stack, separator, file_name = value.partition("=")
        if not separator:
            if len(stacks) != 1:
                raise click.UsageError(
                    f"--stack-output {value}: say which stack it belongs to (STACK=FILE) when checking several stacks."
                )
            stack, file_name = stacks[0], value
        try:
            document = json.loads(Path(file_name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise click.UsageError(
                f"reading stack outputs {file_name}: {error}. Save them with: pulumi stack output --json > {file_name}"
            ) from None
        expiries = document.get("credentialExpiries") if isinstance(document, dict) else None
        outputs[stack] = expiries if isinstance(expiries, dict) else {}
    return outputs


def render_text(found: list[CredentialExpiry], sources: dict[str, str], warn_days: int) -> str:
    """Render a readable listing, one block per stack."""
    lines: list[str] = []
    for stack, source in sources.items():
        lines.append(f"{stack}  ({source})")
        rows = [c for c in found if c.stack == stack]
        if not rows:
            lines.append("  no credential")
        for c in rows:
            when = f"expires {c.expires.isoformat()} ({c.days_left} days)" if c.expires else "no expiry date known"
            if c.status == "no-expiry":
                when = "never expires"
            note = f"  [{c.note}]" if c.note else ""
            lines.append(f"  {c.status:<9} {c.kind:<13} {c.name:<24} {when}  from {c.source}{note}")
    attention = [c for c in found if c.status in ATTENTION]
    lines.append("")
    if attention:
        lines.append(f"{len(attention)} credential{'s' if len(attention) != 1 else ''} need attention:")
        for c in attention:
            verb = "expired" if c.status == "expired" else "expires"
            lines.append(f"  {c.stack}: {c.name} {verb} on {c.expires}. {_advice(c)}")
    else:
        lines.append(f"No credential needs attention within {warn_days} days.")
    retiring = [c for c in found if c.status == "retiring"]
    if retiring:
        lines.append(
            f"{len(retiring)} previous client-secret slot{'s' if len(retiring) != 1 else ''} "
            f"retire{'' if len(retiring) != 1 else 's'} "
            "as planned; consumers must already use the active secret (stack output activeClientSecret)."
        )
    return "\n".join(lines) + "\n"


def _advice(credential: CredentialExpiry) -> str:
    if credential.kind == "certificate":
        return "Issue a new certificate and set it with: pulumi config set --secret mailplane:certificatePem < new.pem"
    return "Run pulumi up --refresh for this stack so the rotation schedule issues a new secret."


@click.command("credentials")
@click.argument("stack_files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--warn-days", type=click.IntRange(min=0), default=30, show_default=True, help="Warn this many days ahead."
)
@click.option(
    "--stack-output",
    "stack_outputs",
    multiple=True,
    metavar="[STACK=]FILE",
    help="JSON from 'pulumi stack output --json': its credentialExpiries are the deployed truth. Repeatable.",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), help="Judge expiry on this date.")
def credentials(
    stack_files: tuple[Path, ...],
    warn_days: int,
    stack_outputs: tuple[str, ...],
    output_format: str,
    today: dt.datetime | None,
) -> None:
    """List every credential per stack with its expiry; exit 1 when one expires within --warn-days.

    Default: every stacks/Pulumi.*.yaml. Client secrets follow the rotation schedule, certificates their PEM,
    federated credentials never expire.
    """
    day = today.date() if today else dt.datetime.now(dt.UTC).date()
    files = list(stack_files) or [Path(os.path.relpath(p)) for p in sorted(Path("stacks").glob("Pulumi.*.yaml"))]
    if not files:
        raise click.UsageError("no stack files given and none in ./stacks. Run from the project or name the files.")
    names = [_stack_name(f) for f in files]
    deployed = _read_stack_outputs(stack_outputs, names)
    unknown = sorted(set(deployed) - set(names))
    if unknown:
        raise click.UsageError(f"--stack-output names stack {unknown[0]!r}, which is not among the stacks checked.")
    found: list[CredentialExpiry] = []
    sources: dict[str, str] = {}
    invalid = False
    for path, stack in zip(files, names, strict=True):
        sources[stack] = str(path)
        try:
            raw = load_stack_file(path)
            config = parse_tenant_config(raw, source=str(path), today=day)
        except TenantConfigError as error:
            click.echo(f"error: {error}", err=True)
            invalid = True
            continue
        pem = raw.get(config.certificate.pem_config_key) if config.certificate else None
        found += credential_expiries(
            stack,
            config,
            today=day,
            warn_days=warn_days,
            certificate_pem=pem if isinstance(pem, str) else None,
            deployed=deployed.get(stack),
        )
    if output_format == "json":
        attention = [c for c in found if c.status in ATTENTION]
        document = {
            "today": day.isoformat(),
            "warnDays": warn_days,
            "credentials": [c.to_dict() for c in found],
            "needAttention": len(attention),
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render_text(found, sources, warn_days), nl=False)
    if invalid or any(c.status in ATTENTION for c in found):
        raise SystemExit(1)
