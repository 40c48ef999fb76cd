"""Live-tenant acceptance tests: the deployed integration, checked against the real Microsoft 365 services.

Opt-in. They run only when the variables below are set (otherwise each test skips and names what is missing), after
``pulumi up`` of a stack and after Exchange has applied its changes (30 minutes to 2 hours):

- ``MAILPLANE_ACC_STACK_FILE``: the deployed stack file (``stacks/Pulumi.<tenant>.yaml``);
- ``MAILPLANE_ACC_CLIENT_ID``: the mail app's client id (stack output ``clientId``);
- the mail app's credential in azure-identity's variables: ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` and
  ``AZURE_CLIENT_SECRET`` (stack output ``activeClientSecret``) or ``AZURE_CLIENT_CERTIFICATE_PATH``;
- ``MAILPLANE_ACC_EXCHANGE_TOKEN`` (optional): a token of the deployer for ``https://outlook.office365.com/.default``
  for the Exchange checks; without it they use ``DefaultAzureCredential`` (``az login``, workload identity);
- ``MAILPLANE_ACC_PULUMI_STACK`` (optional): the stack name, for the ``pulumi preview`` check (needs the Pulumi CLI).

Nothing here writes to a mailbox: the checks read one message at most and run Exchange's ``Test-*`` cmdlets.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mailplane.exceptions import AccessDeniedError
from mailplane.grants import compute_grants
from mailplane.tenant import load_stack_file, parse_tenant_config

pytestmark = pytest.mark.acceptance
ROOT = Path(__file__).resolve().parents[2]


def _require(*names: str) -> dict[str, str]:
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        pytest.skip(f"live-tenant test: set {', '.join(missing)} to run it (see this module's docstring)")
    return {name: os.environ[name] for name in names}


@pytest.fixture
def deployed():
    env = _require("MAILPLANE_ACC_STACK_FILE", "MAILPLANE_ACC_CLIENT_ID")
    stack_file = Path(env["MAILPLANE_ACC_STACK_FILE"])
    config = parse_tenant_config(load_stack_file(stack_file), source=str(stack_file))
    return stack_file, config, compute_grants(config), env["MAILPLANE_ACC_CLIENT_ID"]


@pytest.fixture
def mail_app_credential():
    _require("AZURE_TENANT_ID", "AZURE_CLIENT_ID")
    if not (os.environ.get("AZURE_CLIENT_SECRET") or os.environ.get("AZURE_CLIENT_CERTIFICATE_PATH")):
        pytest.skip("live-tenant test: set AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH of the mail app")


async def _read_one_message(mailbox: str) -> None:
    from mailplane.graph import GraphClient, credential_from_environment

    credential = credential_from_environment()
    try:
        async with GraphClient(credential) as client, client.call(mailbox, doing="reading the inbox of"):
            await client.service.users.by_user_id(mailbox).mail_folders.by_mail_folder_id("inbox").messages.get()
    finally:
        await credential.close()


def test_acc_scoped_mailbox__app_reads_its_inbox__allowed(deployed, mail_app_credential):  # noqa: ARG001
    _, _, grants, _ = deployed
    scoped = sorted(grants.scoped_mailboxes)
    if not scoped or grants.scoping_mode == "tenant-wide":
        pytest.skip("the stack scopes no mailbox (nothing to check)")

    asyncio.run(_read_one_message(scoped[0]))


def test_acc_out_of_scope_mailbox__app_reads_its_inbox__access_denied_names_scoping(deployed, mail_app_credential):  # noqa: ARG001
    _, _, grants, _ = deployed
    outside = grants.out_of_scope_mailbox
    if outside is None or grants.scoping_mode == "tenant-wide":
        pytest.skip("the stack names no scoping.outOfScopeMailbox (or is tenant-wide)")

    with pytest.raises(AccessDeniedError) as caught:
        asyncio.run(_read_one_message(outside))
    assert "mailplane doctor" in str(caught.value)


def test_acc_exchange_scoping__test_cmdlets__every_mailbox_as_expected(deployed):
    from mailplane.exchange.client import ExchangeAdminClient, StaticTokenCredential
    from mailplane.exchange.verify import expectations_from_grants, verify_scoping

    _, config, grants, client_id = deployed
    expectations = expectations_from_grants(grants)
    if not expectations:
        pytest.skip("the stack has no Exchange scoping to verify")
    token = os.environ.get("MAILPLANE_ACC_EXCHANGE_TOKEN")
    if token:
        credential: Any = StaticTokenCredential(token)
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    with ExchangeAdminClient(credential, tenant_id=config.tenant_id) as client:
        report = verify_scoping(client, mode=grants.scoping_mode, app_id=client_id, expectations=expectations)

    failed = [f"{check.mailbox}: {check.detail}" for check in report.checks if check.outcome != "as-expected"]
    assert failed == []
    assert report.status == "configured"


def test_acc_pulumi_preview__deployed_stack__no_changes():
    env = _require("MAILPLANE_ACC_PULUMI_STACK")
    if shutil.which("pulumi") is None:
        pytest.skip("live-tenant test: the Pulumi CLI is not on PATH")

    result = subprocess.run(
        ["pulumi", "preview", "--stack", env["MAILPLANE_ACC_PULUMI_STACK"], "--expect-no-changes", "--non-interactive"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
