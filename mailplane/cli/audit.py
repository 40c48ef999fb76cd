"""``mailplane audit``: what a change to the tenant stacks grants, as a pull-request comment (or JSON)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

import click

from mailplane.audit import THRESHOLDS, StackSide, audit_stacks, render_json, render_markdown
from mailplane.exceptions import TenantConfigError
from mailplane.policy_rules import PolicySettings
from mailplane.tenant import load_stack_file, parse_tenant_config

__all__ = ["audit", "load_stacks_from_dir", "load_stacks_from_git"]

STACK_GLOB = "Pulumi.*.yaml"


def _stack_name(file_name: str) -> str:
    return file_name.removeprefix("Pulumi.").removesuffix(".yaml")


def _side(path: Path, source: str, today: dt.date) -> StackSide:
    try:
        config = parse_tenant_config(load_stack_file(path), source=source, today=today)
    except TenantConfigError as error:
        problems = tuple(
            f"{p.location(error.location_prefix)}: {p.message}" if p.path else p.message for p in error.problems
        )
        return StackSide(source, problems=problems)
    return StackSide(source, config=config)


def load_stacks_from_dir(folder: Path, *, today: dt.date) -> dict[str, StackSide]:
    """Every ``Pulumi.<stack>.yaml`` in ``folder``, validated, by stack name."""
    return {
        _stack_name(path.name): _side(path, str(folder / path.name), today) for path in sorted(folder.glob(STACK_GLOB))
    }


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(["git", *args], capture_output=True, text=True, check=True)  # noqa: S603, S607
    except FileNotFoundError:
        raise click.ClickException("running git: git is not installed. Use --base-dir and --head-dir.") from None
    except subprocess.CalledProcessError as error:
        raise click.ClickException(f"running git {' '.join(args)}: {error.stderr.strip()}") from None
    return completed.stdout


def load_stacks_from_git(ref: str, stacks_path: str, *, today: dt.date) -> dict[str, StackSide]:
    """Every ``<stacks_path>/Pulumi.<stack>.yaml`` at git ``ref`` (read with ``git show``), validated, by stack name."""
    top = _git("rev-parse", "--show-toplevel").strip()
    try:
        _git("-C", top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except click.ClickException:
        raise click.ClickException(
            f"reading the stacks at {ref!r}: no such commit. Fetch it first (e.g. git fetch origin main) or pass "
            "another ref."
        ) from None
    folder = stacks_path.strip("/")
    names = _git("-C", top, "ls-tree", "--name-only", f"{ref}:{folder}") if folder else ""
    sides: dict[str, StackSide] = {}
    with tempfile.TemporaryDirectory(prefix="mailplane-audit-") as scratch:
        for name in sorted(names.splitlines()):
            if not PurePosixPath(name).match(STACK_GLOB):
                continue
            path_in_repo = f"{folder}/{name}"
            copy = Path(scratch) / name
            copy.write_text(_git("-C", top, "show", f"{ref}:{path_in_repo}"), encoding="utf-8")
            sides[_stack_name(name)] = _side(copy, f"{ref}:{path_in_repo}", today)
    return sides


@click.command("audit")
@click.option("--base", "base_ref", help="Git ref of the current state, e.g. origin/main.")
@click.option("--head", "head_ref", help="Git ref of the proposed state (default HEAD when --base is a ref).")
@click.option(
    "--base-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), help="Folder of stack files."
)
@click.option(
    "--head-dir", type=click.Path(path_type=Path, file_okay=False, exists=True), help="Folder of stack files."
)
@click.option("--stacks-path", default="stacks", show_default=True, help="Folder of the stack files in the repository.")
@click.option(
    "--format", "output_format", type=click.Choice(["markdown", "json"]), default="markdown", show_default=True
)
@click.option(
    "--fail-on",
    type=click.Choice(THRESHOLDS),
    default="medium",
    show_default=True,
    help="Lowest risk that needs a reviewer (exit 1): Microsoft privilege level 1 low, 2 medium, 3 high, 4 highest.",
)
@click.option(
    "--policy-config",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The policy pack's config file (JSON), as for pulumi preview --policy-pack-config.",
)
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), help="Judge expiry and rotation on this date.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write here instead of stdout.")
def audit(  # noqa: PLR0917 - click passes every option positionally.
    base_ref: str | None,
    head_ref: str | None,
    base_dir: Path | None,
    head_dir: Path | None,
    stacks_path: str,
    output_format: str,
    fail_on: str,
    policy_config: Path | None,
    today: dt.datetime | None,
    output: Path | None,
) -> None:
    """Compare two states of the stacks and report, per tenant, what the change grants.

    Give two git refs (--base origin/main --head HEAD) or two folders (--base-dir A --head-dir B).
    Exit 0: no risk increase. 1: a risk increase needs a reviewer. 2: a policy violation or an invalid stack.
    """
    day = today.date() if today else dt.datetime.now(dt.UTC).date()
    if base_dir or head_dir:
        if base_ref or head_ref or not (base_dir and head_dir):
            raise click.UsageError("give --base-dir and --head-dir together, or --base/--head refs, not a mix.")
        base, head = load_stacks_from_dir(base_dir, today=day), load_stacks_from_dir(head_dir, today=day)
        base_label, head_label = str(base_dir), str(head_dir)
    else:
        if not base_ref:
            raise click.UsageError("give --base <git ref> (and optionally --head), or --base-dir and --head-dir.")
        head_ref = head_ref or "HEAD"
        base = load_stacks_from_git(base_ref, stacks_path, today=day)
        head = load_stacks_from_git(head_ref, stacks_path, today=day)
        base_label, head_label = base_ref, head_ref
    settings = None
    if policy_config:
        try:
            settings = PolicySettings.from_policy_config(json.loads(policy_config.read_text(encoding="utf-8")))
        except (ValueError, TypeError, AttributeError) as error:
            raise click.UsageError(
                f"reading the policy config {policy_config}: {error}. Expected a JSON object."
            ) from None
    report = audit_stacks(
        base, head, today=day, fail_on=fail_on, settings=settings, base_label=base_label, head_label=head_label
    )
    text = render_json(report) if output_format == "json" else render_markdown(report)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    raise SystemExit(report.exit_code)
