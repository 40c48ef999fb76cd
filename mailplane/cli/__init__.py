"""The ``mailplane`` command.

Each subcommand lives in its own module under ``mailplane.cli`` and is imported only when it runs, so
``mailplane validate`` does not pay for importing Pulumi and ``mailplane plan`` does not import msgraph.
Exit codes: 0 success, 1 a finding that needs attention (invalid config, risk increase, expiring credential),
2 a usage error or a policy violation.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["COMMANDS", "main"]

# name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "audit": "mailplane.cli.audit:audit",
    "credentials": "mailplane.cli.credentials:credentials",
    "demo": "mailplane.cli.demo:demo",
    "devtenant": "mailplane.cli.devtenant:devtenant",
    "doctor": "mailplane.cli.doctor:doctor",
    "import": "mailplane.cli.import_mail:import_command",
    "plan": "mailplane.cli.plan:plan",
    "send": "mailplane.cli.sending:send",
    "send-queued": "mailplane.cli.sending:send_queued",
    "send-test": "mailplane.cli.sending:send_test",
    "serve": "mailplane.cli.serve:serve",
    "status": "mailplane.cli.sending:status",
    "validate": "mailplane.cli.validate:validate",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:  # noqa: ARG002
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mailplane")
def main() -> None:
    """Declarative, safe Microsoft 365 mail integrations."""
