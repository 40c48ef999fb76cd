"""``mailplane doctor``: re-run the Exchange scoping checks of a stack, any time after ``pulumi up``.

Exchange applies RBAC for Applications changes within 30 minutes to 2 hours; ``pulumi up`` records a
"pending-propagation" report and moves on. This command runs the same ``Test-*`` checks later (or on a schedule):
each scoped mailbox must be reachable with exactly its roles, the out-of-scope mailbox must not be.

Credentials and endpoint come from the environment as for the providers (``MAILPLANE_EXCHANGE_TOKEN`` or
azure-identity's ``DefaultAzureCredential``; ``MAILPLANE_EXCHANGE_ADMIN_URL`` or ``--admin-api-url``).
Exit codes: 0 configured, 1 misconfigured / a check failed / nothing is scoped, 2 usage error.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from mailplane.exceptions import TenantConfigError
from mailplane.exchange.environment import client_from_environment
from mailplane.exchange.verify import expectations_from_grants, verify_scoping
from mailplane.grants import compute_grants
from mailplane.tenant import load_stack_file, parse_tenant_config

__all__ = ["doctor"]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _app_id(app_id: str | None, outputs: Path | None) -> str:
    if app_id:
        value = app_id
    elif outputs is not None:
        try:
            document = json.loads(outputs.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise click.UsageError(
                f"reading {outputs}: {error}. Pass the output of 'pulumi stack output --json'."
            ) from None
        value = str(document.get("clientId") or "") if isinstance(document, dict) else ""
        if not value:
            raise click.UsageError(f"{outputs}: no 'clientId' output. Pass --app-id instead.")
    else:
        raise click.UsageError("which app? Pass --app-id <client id> or --outputs <pulumi stack output --json file>.")
    if not _GUID.match(value):
        raise click.UsageError(f"--app-id must be the app's client id (a GUID), got {value!r}.")
    return value.lower()


@click.command()
@click.argument("stack_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--app-id", help="The app's client id (stack output clientId).")
@click.option(
    "--outputs",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A file holding 'pulumi stack output --json' (read for clientId).",
)
@click.option(
    "--admin-api-url", help="Exchange admin API root (default: $MAILPLANE_EXCHANGE_ADMIN_URL or Microsoft's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(
    stack_file: Path, app_id: str | None, outputs: Path | None, admin_api_url: str | None, as_json: bool
) -> None:
    """Check in Exchange Online that the app reaches exactly the mailboxes STACK_FILE scopes it to."""
    try:
        config = parse_tenant_config(load_stack_file(stack_file), source=str(stack_file))
    except TenantConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(2)
    grants = compute_grants(config)
    expectations = expectations_from_grants(grants)
    if not expectations:
        reason = (
            "scoping mode is tenant-wide: the app reaches EVERY mailbox; there is nothing to verify. Switch to 'rbac'."
            if grants.scoping_mode == "tenant-wide"
            else "the stack grants no application mail permission; there is nothing to verify."
        )
        click.echo(f"{stack_file}: {reason}")
        sys.exit(1 if grants.scoping_mode == "tenant-wide" else 0)
    client_id = _app_id(app_id, outputs)
    with client_from_environment(config.tenant_id, admin_api_url) as client:
        report = verify_scoping(client, mode=grants.scoping_mode, app_id=client_id, expectations=expectations)
    if as_json:
        click.echo(json.dumps(report.to_dict(just_applied=False), indent=2))
    else:
        click.echo(f"{stack_file}: Exchange scoping ({grants.scoping_mode}) for app {client_id}")
        for check in report.checks:
            mark = {"as-expected": "ok", "unexpected": "FAIL", "error": "ERROR"}[check.outcome]
            click.echo(f"  [{mark}] {check.mailbox} ({check.expected}): {check.detail}")
        click.echo(report.summary(just_applied=False))
    sys.exit(0 if report.status == "configured" else 1)
