"""Rehearse a stack's Exchange objects on the dev tenant: the real providers, the real program's inputs, no cloud.

:func:`rehearse_stack` plans the stack offline (the real Pulumi program under the mock engine), takes the Exchange
resources it declares with their resolved inputs, starts the Exchange admin emulator with the stack's users seeded,
and runs each resource's provider the way ``pulumi up`` would: create in dependency order, then a second run (every
object adopted, nothing created twice), then an administrator's change outside Pulumi and the refresh that reports it.
Used by ``mailplane demo``; the providers never learn they talk to an emulator (only ``MAILPLANE_EXCHANGE_*`` differ).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from mailplane.devtenant.exchange import DEFAULT_TOKEN, ExchangeAdminState, create_app
from mailplane.devtenant.server import BackgroundServer
from mailplane.exchange.client import ExchangeAdminClient, StaticTokenCredential
from mailplane.exchange.environment import ADMIN_URL_ENV, TOKEN_ENV
from mailplane.tenant import TenantConfig, load_stack_file, parse_tenant_config

__all__ = ["Rehearsal", "rehearse_stack"]

_DYNAMIC = "pulumi-python:dynamic/exchange:"
# Resource type -> provider class, in the order pulumi up creates them (dependencies first).
_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("SharedMailbox", "components.exchange.mailbox:MailboxProvider"),
    ("MailboxMember", "components.exchange.mailbox_member:MailboxMemberProvider"),
    ("MailSecurityGroup", "components.exchange.security_group:MailSecurityGroupProvider"),
    ("ServicePrincipalPointer", "components.exchange.service_principal:ServicePrincipalPointerProvider"),
    ("ManagementScope", "components.exchange.management_scope:ManagementScopeProvider"),
    ("ManagementRoleAssignment", "components.exchange.role_assignment:ManagementRoleAssignmentProvider"),
    ("ApplicationAccessPolicy", "components.exchange.access_policy:ApplicationAccessPolicyProvider"),
    ("ScopeVerification", "components.exchange.verification:ScopeVerificationProvider"),
)


@dataclass
class Rehearsal:
    """What happened, as lines for people, plus the final verification outputs."""

    lines: list[str] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    created: int = 0
    adopted: int = 0


def _users(config: TenantConfig) -> set[str]:
    users = set(config.mailboxes) - {m.address for m in config.shared_mailboxes if m.create}
    users |= {member.user for mailbox in config.shared_mailboxes for member in mailbox.members}
    if config.out_of_scope_mailbox:
        users.add(config.out_of_scope_mailbox)
    return users


@contextlib.contextmanager
def _environment(url: str, project_dir: Path) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in (ADMIN_URL_ENV, TOKEN_ENV)}
    os.environ[ADMIN_URL_ENV], os.environ[TOKEN_ENV] = url, DEFAULT_TOKEN
    added = str(project_dir) not in sys.path
    if added:
        sys.path.insert(0, str(project_dir))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(project_dir))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _provider(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)()


def rehearse_stack(
    stack_file: Path, *, project_dir: Path, drift: Callable[[ExchangeAdminClient], str] | None = None
) -> Rehearsal:
    """Apply ``stack_file``'s Exchange objects to a fresh emulator, twice, then refresh after ``drift``.

    ``drift`` changes something as an administrator would and returns a sentence saying what; by default the first
    management scope is widened to every mailbox of the domain.
    """
    from mailplane.plan import plan_stack  # noqa: PLC0415 - imports Pulumi; only the demo needs it.

    config = parse_tenant_config(load_stack_file(stack_file), source=str(stack_file))
    plan = plan_stack(stack_file, project_dir=project_dir)
    declared = [r for r in plan.resources if r.type.startswith(_DYNAMIC)]
    order = {name: index for index, (name, _) in enumerate(_PROVIDERS)}
    declared.sort(key=lambda r: order[r.type.removeprefix(_DYNAMIC)])
    providers = dict(_PROVIDERS)
    result = Rehearsal()
    state = ExchangeAdminState()
    state.tenant(config.tenant_id, domain=config.primary_domain)
    for user in sorted(_users(config)):
        state.add_user_mailbox(config.tenant_id, user)
    result.lines.append(
        f"dev tenant: Exchange emulator with {len(_users(config))} user mailbox(es) of {config.primary_domain}"
    )

    app = Starlette(routes=[Mount("/adminapi", app=create_app(state))])
    with BackgroundServer(app) as server, _environment(f"{server.base_url}/adminapi/beta", project_dir.resolve()):
        applied: dict[str, tuple[Any, str, dict[str, Any]]] = {}
        runs = ("pulumi up:", "create again, as after an interrupted run or a lost state (nothing is made twice):")
        for run in runs:
            result.lines.append(run)
            for resource in declared:
                kind = resource.type.removeprefix(_DYNAMIC)
                provider = _provider(providers[kind])
                checked = provider.check({}, dict(resource.inputs))
                if checked.failures:
                    result.lines.append(f"  {kind} {resource.name}: {checked.failures[0].reason}")
                    continue
                outcome = provider.create(checked.inputs)
                applied[resource.name] = (provider, outcome.id, outcome.outs)
                adopted = bool(outcome.outs.get("adopted"))
                result.adopted += adopted
                result.created += not adopted and kind != "ScopeVerification"
                verb = "adopted" if adopted else ("checked" if kind == "ScopeVerification" else "created")
                result.lines.append(f"  {verb:8} exchange:{kind} {outcome.id}")
                if kind == "ScopeVerification":
                    result.verification = outcome.outs
                    result.lines.append(f"           {outcome.outs['summary']}")
        client = ExchangeAdminClient(
            StaticTokenCredential(DEFAULT_TOKEN),
            tenant_id=config.tenant_id,
            base_url=f"{server.base_url}/adminapi/beta",
        )
        with client:
            change = (drift or _widen_first_scope)(client)
        result.lines.append(f"outside Pulumi: {change}")
        result.lines.append("pulumi refresh:")
        for name, (provider, id_, outs) in applied.items():
            read = provider.read(id_, outs)
            if read.id == "":
                result.lines.append(f"  gone     {name}")
                continue
            drifted = sorted(k for k in read.outs if k in outs and read.outs[k] != outs[k] and k not in _VOLATILE)
            if drifted:
                result.lines.append(f"  drift    {name}: {', '.join(drifted)}")
            if "status" in read.outs:
                result.verification = read.outs
                result.lines.append(f"  verification {read.outs['summary']}")
    return result


_VOLATILE = frozenset({"checked_at", "checks", "status", "summary", "adopted"})


def _widen_first_scope(client: ExchangeAdminClient) -> str:
    scopes = client.invoke("Get-ManagementScope")
    if not scopes:
        return "nothing to change (no management scope)"
    name = str(scopes[0]["Name"])
    domain = client.tenant_id
    client.set_management_scope(
        name, "(RecipientTypeDetails -eq 'UserMailbox') -or (RecipientTypeDetails -eq 'SharedMailbox')"
    )
    return f"an administrator widened the management scope {name!r} to every mailbox of tenant {domain}"
