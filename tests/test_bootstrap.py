"""The bootstrap program's deployer identity under Pulumi's mock engine (no CLI, no tenant)."""

from __future__ import annotations

import asyncio
import importlib
import runpy
import sys
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from stack_copies import ROOT

from mailplane.permissions import catalog
from mailplane.plan import RecordingMonitor

BOOTSTRAP = ROOT / "bootstrap"
EXCHANGE_ADMIN_TEMPLATE = "29232cdf-9323-42fd-ade2-1d097af3e4de"  # Microsoft's built-in role template id.


class TenantMocks(pulumi.runtime.Mocks):
    """Microsoft Graph and Exchange Online service principals with their real app-role ids."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "azuread:index/application:Application":
            outputs.update(clientId="deployer-client-id", objectId="deployer-app-object")
            return "/applications/deployer-app-object", outputs
        if args.typ == "azuread:index/servicePrincipal:ServicePrincipal":
            outputs["objectId"] = "deployer-sp-object"
        if args.typ == "azuread:index/directoryRole:DirectoryRole":
            outputs.update(templateId=EXCHANGE_ADMIN_TEMPLATE, objectId="exchange-admin-role-object")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token != "azuread:index/getServicePrincipal:getServicePrincipal":
            return {}
        graph = catalog()
        resource = "exchangeOnline" if args.args.get("clientId") == graph.app_id("exchangeOnline") else "microsoftGraph"
        return {
            "clientId": graph.app_id(resource),
            "objectId": f"{resource}-sp-object",
            "appRoleIds": {
                n: graph.require(n, "application", resource).id for n in graph.names("application", resource)
            },
            "oauth2PermissionScopeIds": {},
        }


@pytest.fixture(scope="module")
def registered():
    mocks = TenantMocks()
    monitor = RecordingMonitor(mocks)
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="mailplane-bootstrap", stack="contoso", preview=False, monitor=monitor)
    sys.path.insert(0, str(BOOTSTRAP))
    try:
        deployer_identity = importlib.import_module("deployer_identity")
        args = deployer_identity.DeployerIdentityArgs(
            github_repository="contoso/mail-integrations", owners=["22222222-2222-2222-2222-222222222222"]
        )
        pulumi.runtime.test(lambda: deployer_identity.DeployerIdentity("deployer", args).client_id)()
    finally:
        sys.path.remove(str(BOOTSTRAP))
    return {(r.type.rsplit(":", 1)[-1], r.name): r.inputs for r in monitor.recorded if r.custom}


def of_type(registered, short_type: str) -> dict[str, dict[str, Any]]:
    return {name: inputs for (typ, name), inputs in registered.items() if typ == short_type}


def test_deployer__no_password_or_certificate__only_federated_credentials(registered):
    assert of_type(registered, "ApplicationPassword") == {}
    assert of_type(registered, "ApplicationCertificate") == {}
    credentials = of_type(registered, "ApplicationFederatedIdentityCredential")
    assert {name: (c["issuer"], c["subject"], c["audiences"]) for name, c in credentials.items()} == {
        "deployer-github-preview": (
            "https://token.actions.githubusercontent.com",
            "repo:contoso/mail-integrations:environment:preview",
            ["api://AzureADTokenExchange"],
        ),
        "deployer-github-production": (
            "https://token.actions.githubusercontent.com",
            "repo:contoso/mail-integrations:environment:production",
            ["api://AzureADTokenExchange"],
        ),
    }


def test_deployer__app_role_assignments__exactly_the_least_permissions(registered):
    graph = catalog()
    by_id = {
        graph.require(n, "application", r).id: (r, n)
        for r in ("microsoftGraph", "exchangeOnline")
        for n in graph.names("application", r)
    }
    assignments = of_type(registered, "AppRoleAssignment")

    assert sorted(
        (by_id[a["appRoleId"]], a["resourceObjectId"], a["principalObjectId"]) for a in assignments.values()
    ) == [
        (("exchangeOnline", "Exchange.ManageAsApp"), "exchangeOnline-sp-object", "deployer-sp-object"),
        (("microsoftGraph", "AppRoleAssignment.ReadWrite.All"), "microsoftGraph-sp-object", "deployer-sp-object"),
        (("microsoftGraph", "Application.Read.All"), "microsoftGraph-sp-object", "deployer-sp-object"),
        (("microsoftGraph", "Application.ReadWrite.OwnedBy"), "microsoftGraph-sp-object", "deployer-sp-object"),
        (
            ("microsoftGraph", "DelegatedPermissionGrant.ReadWrite.All"),
            "microsoftGraph-sp-object",
            "deployer-sp-object",
        ),
    ]


def test_deployer__application__single_tenant_requests_what_is_consented(registered):
    (app,) = of_type(registered, "Application").values()

    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["owners"] == ["22222222-2222-2222-2222-222222222222"]
    requested = {r["resourceAppId"]: len(r["resourceAccesses"]) for r in app["requiredResourceAccesses"]}
    assert requested == {"00000003-0000-0000-c000-000000000000": 4, "00000002-0000-0ff1-ce00-000000000000": 1}


def test_deployer__exchange_administrator_role__assigned_to_the_service_principal(registered):
    (role,) = of_type(registered, "DirectoryRole").values()
    (assignment,) = of_type(registered, "DirectoryRoleAssignment").values()

    assert role["displayName"] == "Exchange Administrator"
    assert assignment == {"roleId": EXCHANGE_ADMIN_TEMPLATE, "principalObjectId": "deployer-sp-object"}


def test_deployer_permissions__every_entry__has_a_reason_and_exists_in_the_catalog():
    sys.path.insert(0, str(BOOTSTRAP))
    try:
        manifest = importlib.import_module("deployer_permissions")
    finally:
        sys.path.remove(str(BOOTSTRAP))
    for permission in manifest.DEPLOYER_APP_ROLES:
        assert catalog().get(permission.name, "application", permission.resource), permission.name
        assert len(permission.reason) > 40
    assert [r.name for r in manifest.DEPLOYER_DIRECTORY_ROLES] == ["Exchange Administrator"]


def test_bootstrap_project__own_pulumi_yaml_and_entry_point():
    project = (BOOTSTRAP / "Pulumi.yaml").read_text(encoding="utf-8")

    assert "name: mailplane-bootstrap" in project
    assert "DeployerIdentity(" in (BOOTSTRAP / "__main__.py").read_text(encoding="utf-8")


def test_bootstrap_main__stack_config__one_credential_per_environment_and_exports():
    mocks = TenantMocks()
    monitor = RecordingMonitor(mocks)
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="mailplane-bootstrap", stack="contoso", preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(
        {
            "mailplane-bootstrap:tenantId": "11111111-1111-1111-1111-111111111111",
            "mailplane-bootstrap:githubRepository": "contoso/mail-integrations",
            "mailplane-bootstrap:githubEnvironments": '["production"]',
        }
    )
    sys.path.insert(0, str(BOOTSTRAP))
    try:
        pulumi.runtime.test(lambda: runpy.run_path(str(BOOTSTRAP / "__main__.py"))["deployer"].client_id)()
    finally:
        sys.path.remove(str(BOOTSTRAP))
        pulumi.runtime.set_all_config({})

    subjects = sorted(r.inputs["subject"] for r in monitor.recorded if r.type.endswith("FederatedIdentityCredential"))
    (app,) = [r.inputs for r in monitor.recorded if r.type == "azuread:index/application:Application"]
    assert subjects == ["repo:contoso/mail-integrations:environment:production"]
    assert (app["displayName"], app["owners"]) == ("mailplane deployer", [])
