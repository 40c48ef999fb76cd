"""``mailplane plan``: what each stack declares, rendered offline from the real program under a mock engine."""

from __future__ import annotations

import datetime as dt
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import click

from mailplane.permissions import catalog

__all__ = ["plan", "render_plan"]

# Which inputs are worth a reviewer's eye, per resource type (everything is in --json).
_KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "pulumi:providers:azuread": ("tenantId",),
    "azuread:index/application:Application": (
        "displayName",
        "signInAudience",
        "web",
        "requiredResourceAccesses",
        "tags",
    ),
    "azuread:index/servicePrincipal:ServicePrincipal": (),
    "azuread:index/appRoleAssignment:AppRoleAssignment": ("appRoleId",),
    "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant": ("claimValues",),
    "azuread:index/applicationPassword:ApplicationPassword": ("displayName", "endDate"),
    "azuread:index/applicationCertificate:ApplicationCertificate": ("endDate",),
    "azuread:index/applicationFederatedIdentityCredential:ApplicationFederatedIdentityCredential": (
        "issuer",
        "subject",
        "audiences",
    ),
}


@cache
def _permission_names() -> dict[str, str]:
    graph = catalog()
    return {
        graph.require(name, kind).id: f"{name} ({kind})"
        for kind in ("application", "delegated")
        for name in graph.names(kind)
    }


def _permission_name(permission_id: str) -> str:
    return _permission_names().get(permission_id, permission_id)


def _short_type(typ: str) -> str:
    if typ.startswith("pulumi:providers:"):
        return f"provider:{typ.rsplit(':', 1)[1]}"
    if typ.startswith("pulumi-python:dynamic"):
        # pulumi-python:dynamic/exchange:ManagementScope -> exchange:ManagementScope
        return typ.replace("pulumi-python:dynamic/", "").replace("pulumi-python:dynamic:", "dynamic:")
    return typ.rsplit(":", 1)[-1]


def _describe_inputs(typ: str, inputs: dict[str, Any]) -> str:
    keys = _KEY_INPUTS.get(typ)
    if keys is None:  # Components show nothing; dynamic (Exchange) resources show all their inputs.
        keys = () if not typ.startswith("pulumi-python:dynamic") else tuple(sorted(inputs))
    parts = []
    for key in keys:
        if key not in inputs or inputs[key] in (None, [], {}):
            continue
        value = inputs[key]
        if key == "appRoleId":
            value = _permission_name(value)
        elif key == "requiredResourceAccesses":
            value = [_permission_name(a["id"]) for r in value for a in r.get("resourceAccesses", [])]
        elif key == "web":
            if not value.get("redirectUris"):
                continue
            parts.append(f"redirectUris={json.dumps(value['redirectUris'], ensure_ascii=False)}")
            continue
        parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    return "  " + " ".join(parts) if parts else ""


def _render_grants(grants: dict[str, Any]) -> list[str]:
    lines = ["grants"]
    entra = grants.get("entra", {})
    for kind in ("application", "delegated"):
        names = [f"{g['name']} [{g['type']}, privilege {g['privilegeLevel']}]" for g in entra.get(kind, [])]
        lines.append(f"  Entra {kind} permissions: {', '.join(names) if names else 'none'}")
    roles = grants.get("exchange", {}).get("roles", [])
    if roles or grants.get("exchange", {}).get("scopedMailboxes") or grants.get("tenantWideMail"):
        lines.append(f"  mailbox scoping: {grants.get('scopingMode')}")
    else:
        lines.append("  mailbox scoping: not needed (no application mail permission)")
    lines.extend(f"    {r['role']} on {', '.join(r['mailboxes']) or '(no mailbox)'}" for r in roles)
    if grants.get("tenantWideMail"):
        lines.append(f"  WARNING tenant-wide mail access: {', '.join(grants['tenantWideMail'])} on EVERY mailbox")
    for credential in grants.get("credentials", []):
        detail = {k: v for k, v in credential.items() if k not in ("kind", "name")}
        lines.append(f"  credential {credential['kind']} {credential['name']} {json.dumps(detail)}")
    return lines


def render_plan(plan_dict: dict[str, Any]) -> str:
    """A readable tree of one stack's plan (the same data as --json)."""
    lines = [f"stack {plan_dict['stack']}  ({plan_dict['source']})"]
    grants = plan_dict["outputs"].get("grants", {})
    if grants:
        lines.extend(_render_grants(grants))
    resources = plan_dict["resources"]
    lines.append(f"resources ({len(resources)})")
    children: dict[str | None, list[dict[str, Any]]] = {}
    urns = {r.get("urn") for r in resources}
    for resource in resources:
        parent = resource["parent"] if resource["parent"] in urns else None
        children.setdefault(parent, []).append(resource)

    def walk(parent: str | None, prefix: str) -> None:
        items = children.get(parent, [])
        for index, resource in enumerate(items):
            last = index == len(items) - 1
            branch = "└─ " if last else "├─ "
            lines.append(
                f"{prefix}{branch}{_short_type(resource['type'])} {resource['name']}"
                f"{_describe_inputs(resource['type'], resource['inputs'])}"
            )
            walk(resource["urn"], prefix + ("   " if last else "│  "))

    walk(None, "  ")
    lines.append("outputs")
    for name, value in plan_dict["outputs"].items():
        if name == "grants":
            continue
        shown = "[secret]" if name in plan_dict["secretOutputs"] else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {name} = {shown}")
    return "\n".join(lines)


@click.command("plan")
@click.argument("stack_files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a tree.")
@click.option("--project", type=click.Path(path_type=Path, file_okay=False), help="Folder with Pulumi.yaml.")
@click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), help="Compute secret rotation for this date.")
def plan(stack_files: tuple[Path, ...], as_json: bool, project: Path | None, today: dt.datetime | None) -> None:
    """Render what each stack declares (resources, grants, outputs) with no cloud access.

    Runs the real Pulumi program in-process against a mock engine. Default: every stacks/Pulumi.*.yaml.
    Exits 1 when a stack file is invalid, naming the key.
    """
    from mailplane.plan import PlanError, find_project_dir, plan_stack

    try:
        project_dir = project or find_project_dir(Path.cwd())
    except PlanError as error:
        raise click.UsageError(str(error)) from None
    files = list(stack_files) or [
        Path(os.path.relpath(f)) for f in sorted((project_dir / "stacks").glob("Pulumi.*.yaml"))
    ]
    if not files:
        raise click.UsageError(f"no stack files given and none in {project_dir / 'stacks'}.")
    results: list[dict[str, Any]] = []
    failed = False
    for stack_file in files:
        try:
            stack_plan = plan_stack(stack_file, project_dir=project_dir, today=today.date() if today else None)
        except PlanError as error:
            failed = True
            click.echo(f"error: {error}", err=True)
            results.append({"source": str(stack_file), "error": str(error)})
            continue
        data = stack_plan.to_dict()
        for resource, planned in zip(data["resources"], stack_plan.resources, strict=True):
            resource["urn"] = planned.urn
        results.append(data)
        if not as_json:
            click.echo(render_plan(data))
            click.echo()
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    if failed:
        raise SystemExit(1)
