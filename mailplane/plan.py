"""The offline plan: run the real Pulumi program in-process against Pulumi's mock engine.

``plan_stack`` loads a stack file the way the Pulumi CLI would hand it to the program (every ``config:`` key), runs
``__main__.py`` under a mock engine that answers like a tenant would (Microsoft Graph's permission ids come from the
shipped catalog), and records every resource the program registers: type, name, parent and inputs. No cloud access,
no Pulumi CLI. ``pulumi preview`` stays the authority for diffs against a live tenant.

Secure values in the stack file cannot be decrypted offline; they stay unknown, as outputs do in a preview.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import runpy
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func

from mailplane.exceptions import TenantConfigError
from mailplane.exchange.naming import recipient_filter
from mailplane.permissions import catalog
from mailplane.tenant import UNREADABLE_SECRET, load_stack_file, parse_tenant_config

__all__ = [
    "OfflineTenantMocks",
    "PlanError",
    "PlannedResource",
    "RecordingMonitor",
    "StackPlan",
    "find_project_dir",
    "plan_stack",
    "stack_name_of",
]


KNOWN_AFTER_APPLY = "[known after apply]"
_DYNAMIC = "pulumi-python:dynamic/"  # Type prefix of dynamic-provider resources.
_NAMESPACE_UUID = uuid.UUID("4b3c1f0e-6f5e-4a53-9f5c-6d61696c706c")  # Stable fake ids: same plan, same ids.


class PlanError(Exception):
    """The program failed the way ``pulumi up`` would fail (bad stack file, RunError, exception)."""


@dataclass(frozen=True)
class PlannedResource:
    """One resource the program registered."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any] = field(compare=False)


@dataclass
class StackPlan:
    """What one stack declares."""

    stack: str
    source: str
    resources: list[PlannedResource]
    outputs: dict[str, Any]
    secret_outputs: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``mailplane plan --json``)."""
        return {
            "stack": self.stack,
            "source": self.source,
            "resources": [
                {"type": r.type, "name": r.name, "parent": r.parent, "custom": r.custom, "inputs": r.inputs}
                for r in self.resources
            ],
            "outputs": self.outputs,
            "secretOutputs": self.secret_outputs,
        }


def stack_name_of(stack_file: Path) -> str:
    """``stacks/Pulumi.contoso.yaml`` -> ``contoso``."""
    name = stack_file.name
    if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))):
        raise PlanError(f"{stack_file}: not a stack file name. Stack files are named Pulumi.<stack>.yaml.")
    return name.removeprefix("Pulumi.").rsplit(".", 1)[0]


def find_project_dir(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``Pulumi.yaml``."""
    for folder in [start, *start.parents]:
        if (folder / "Pulumi.yaml").is_file():
            return folder
    raise PlanError(f"no Pulumi.yaml found in {start} or above. Run from the mailplane project or pass --project.")


def _fake_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE_UUID, "/".join(parts)))


def _mock_outputs(typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    outputs = dict(inputs)
    object_id = _fake_id(typ, name)
    resource_id = f"{name}-id"
    if typ == "azuread:index/application:Application":
        outputs.update(clientId=_fake_id("client", name), objectId=object_id)
        resource_id = f"/applications/{object_id}"
    elif typ == "azuread:index/servicePrincipal:ServicePrincipal":
        outputs.update(objectId=object_id)
        resource_id = object_id
    elif typ == "azuread:index/applicationPassword:ApplicationPassword":
        outputs.update(keyId=_fake_id("key", name), value=pulumi.Output.secret("[secret: known after apply]"))
    elif typ == "azuread:index/applicationCertificate:ApplicationCertificate":
        outputs.update(keyId=_fake_id("key", name))
    elif typ == "azuread:index/applicationFederatedIdentityCredential:ApplicationFederatedIdentityCredential":
        outputs.update(credentialId=_fake_id("fic", name))
    elif typ == f"{_DYNAMIC}exchange:ManagementScope":
        # The provider's check computes the filter from the mailboxes; the mock engine skips check, so do it here.
        outputs.update(recipient_restriction_filter=recipient_filter(inputs.get("mailboxes", [])))
    elif typ == f"{_DYNAMIC}exchange:ScopeVerification":
        # The checks run in Exchange after apply; a plan can only say so.
        outputs.update(status=KNOWN_AFTER_APPLY, summary=KNOWN_AFTER_APPLY, checks=[], checked_at=KNOWN_AFTER_APPLY)
    outputs.pop("__provider", None)  # Dynamic providers: the pickled provider is noise in a plan.
    return resource_id, outputs


def _graph_service_principal() -> dict[str, Any]:
    graph = catalog()
    return {
        "clientId": graph.app_id(),
        "objectId": _fake_id("microsoft-graph-service-principal"),
        "displayName": "Microsoft Graph",
        "appRoleIds": {n: graph.require(n, "application").id for n in graph.names("application")},
        "oauth2PermissionScopeIds": {n: graph.require(n, "delegated").id for n in graph.names("delegated")},
    }


class OfflineTenantMocks(pulumi.runtime.Mocks):
    """Answers like a tenant would: stable fake ids, Microsoft Graph's real permission ids from the catalog."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        """Outputs = inputs plus the computed properties mailplane reads (ids, key ids, secret values)."""
        return _mock_outputs(args.typ, args.name, args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The invokes mailplane makes: Microsoft Graph's service principal and the deployer's identity."""
        if args.token == "azuread:index/getServicePrincipal:getServicePrincipal":  # noqa: S105 - invoke token.
            return _graph_service_principal(), []
        if args.token == "azuread:index/getClientConfig:getClientConfig":  # noqa: S105 - invoke token.
            return {"clientId": _fake_id("deployer-client"), "objectId": _fake_id("deployer"), "tenantId": ""}, []
        return {}, []


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The mock monitor, also recording each registration's parent and inputs in ``recorded``."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        """Wrap ``mocks``."""
        super().__init__(mocks)
        self.recorded: list[PlannedResource] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name.
        """Register as the mock monitor does, then record what was registered."""
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = {k: v for k, v in rpc.deserialize_properties(request.object).items() if k != "__provider"}
            self.recorded.append(
                PlannedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent or None,
                    custom=bool(request.custom),
                    inputs=_plain(inputs),
                )
            )
        return response


def _load_raw_config(stack_file: Path) -> tuple[dict[str, str], list[str]]:
    try:
        document = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise PlanError(f"{stack_file}: file not found.") from None
    except yaml.YAMLError as error:
        raise PlanError(f"{stack_file}: is not valid YAML: {error}") from None
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = UNREADABLE_SECRET
            secret_keys.append(key)
        else:
            config[key] = value if isinstance(value, str) else json.dumps(value)
    return config, secret_keys


@contextlib.contextmanager
def _frozen_today(today: dt.date | None) -> Iterator[None]:
    previous = os.environ.get("MAILPLANE_TODAY")
    if today is not None:
        os.environ["MAILPLANE_TODAY"] = today.isoformat()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MAILPLANE_TODAY", None)
        else:
            os.environ["MAILPLANE_TODAY"] = previous


def plan_stack(stack_file: Path, *, project_dir: Path | None = None, today: dt.date | None = None) -> StackPlan:
    """Run the program for ``stack_file`` under the mock engine; raise :class:`PlanError` where ``pulumi up`` fails.

    Each plan runs in a fresh thread: Pulumi keeps its runtime state (root stack, outstanding outputs, event loop) in
    context variables, and a new thread starts from a clean context, so one plan (or a failed program) can never
    leak into the next.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailplane-plan") as executor:
        return executor.submit(_plan_stack, Path(stack_file), project_dir, today).result()


def _plan_stack(stack_file: Path, project_dir: Path | None, today: dt.date | None) -> StackPlan:
    stack_file = Path(stack_file)
    project_dir = find_project_dir(stack_file.resolve().parent) if project_dir is None else project_dir
    stack = stack_name_of(stack_file)
    # Validate first with the same function the program uses: the same message, naming the file actually given.
    try:
        parse_tenant_config(load_stack_file(stack_file), source=str(stack_file), today=today)
    except TenantConfigError as error:
        raise PlanError(str(error)) from None
    config, secret_keys = _load_raw_config(stack_file)

    mocks = OfflineTenantMocks()
    monitor = RecordingMonitor(mocks)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    project_path = str(project_dir.resolve())
    added_path = project_path not in sys.path
    if added_path:
        sys.path.insert(0, project_path)
    # The program imports `components` fresh each run, so a plan of several stacks never shares module state.
    for module in [m for m in sys.modules if m == "components" or m.startswith("components.")]:
        del sys.modules[module]
    try:
        # A fresh root stack per plan: set_mocks creates one only when none is active.
        pulumi_settings.ROOT.set(None)
        pulumi.runtime.set_mocks(mocks, project="mailplane", stack=stack, preview=False, monitor=monitor)
        pulumi.runtime.set_all_config(config, secret_keys)
        with _frozen_today(today):
            try:
                loop.run_until_complete(run_pulumi_func(lambda: _run_program(project_dir)))
            except pulumi.RunError as error:
                raise PlanError(str(error)) from None
            except Exception as error:
                raise PlanError(f"{stack_file}: the program failed: {type(error).__name__}: {error}") from error
            outputs, secret_outputs = loop.run_until_complete(_resolve_outputs())
    finally:
        if added_path:
            sys.path.remove(project_path)
        loop.close()
        asyncio.set_event_loop(None)
    # Registration order depends on the event loop; sort so plans (and their golden snapshots) are stable.
    recorded = sorted(monitor.recorded, key=lambda r: r.urn)
    return StackPlan(
        stack=stack, source=str(stack_file), resources=recorded, outputs=outputs, secret_outputs=secret_outputs
    )


def _run_program(project_dir: Path) -> None:
    runpy.run_path(str(project_dir / "__main__.py"))


async def _resolve_outputs() -> tuple[dict[str, Any], list[str]]:
    root: Any = pulumi_settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret: list[str] = []
    for name, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        if await output.is_secret():
            secret.append(name)
            outputs[name] = "[secret]"
        elif not await output.is_known():
            outputs[name] = KNOWN_AFTER_APPLY
        else:
            outputs[name] = _plain(await output.future())
    return outputs, sorted(secret)


def _plain(value: Any) -> Any:
    """Make engine values JSON-friendly: unknowns and secrets become markers."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:  # noqa: SLF001 - the engine's secret wrapper.
            return "[secret]"
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value == rpc.UNKNOWN:
        return KNOWN_AFTER_APPLY
    if isinstance(value, str) and value == UNREADABLE_SECRET:
        return "[secret]"
    return value
