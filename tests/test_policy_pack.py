"""The CrossGuard pack, without the Pulumi CLI: every resource the example stacks register, fed to every policy.

PolicyPack(...) starts a server and never returns, so the tests build the policies with ``build_policies`` and call
``validate`` with a collecting ``report_violation``.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy
from stack_copies import ROOT, TODAY, example_names, planned_resources, write_stack_copy

from mailplane.permissions import catalog
from mailplane.tenant import TENANT_WIDE_ACKNOWLEDGEMENT

APPLICATION = "azuread:index/application:Application"
PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"


def _load_pack_module() -> Any:
    spec = importlib.util.spec_from_file_location("mail_policies", ROOT / "policy" / "mail_policies.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mail_policies"] = module
    spec.loader.exec_module(module)
    return module


POLICIES = {p.name: p for p in _load_pack_module().build_policies(clock=lambda: TODAY)}


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def run_policies(
    resources: list[tuple[str, str, str, dict[str, Any]]], config: dict[str, dict[str, Any]] | None = None
) -> dict[str, list[str]]:
    """Every policy over every resource, as the analyzer would: violations by policy name.

    Like the analyzer, props are wrapped in pulumi_policy's unknown-checking proxy (lists and dicts become read-only
    Sequence/Mapping proxies that raise UnknownValueError on an unknown value).
    """
    config = config or {}
    found: dict[str, list[str]] = {}
    for name, policy in POLICIES.items():
        messages: list[str] = []

        def report(message: str, urn: str | None = None, sink: list[str] = messages) -> None:  # noqa: ARG001
            sink.append(message)

        if isinstance(policy, ResourceValidationPolicy):
            for typ, resource_name, urn, props in resources:
                args = ResourceValidationArgs(
                    typ,
                    unknown_checking_proxy(props),
                    urn,
                    resource_name,
                    _options(),
                    None,
                    config=config.get(name, {}),
                )
                policy.validate(args, report)
        else:
            assert isinstance(policy, StackValidationPolicy)
            stack = [
                PolicyResource(typ, unknown_checking_proxy(props), urn, resource_name, _options(), None, None, [], {})
                for typ, resource_name, urn, props in resources
            ]
            policy.validate(StackValidationArgs(stack, config=config.get(name, {})), report)
        if messages:
            found[name] = messages
    return found


@cache
def _example_resources(stack: str) -> tuple[tuple[str, str, str, dict[str, Any]], ...]:
    return tuple(planned_resources(ROOT / "stacks" / f"Pulumi.{stack}.yaml"))


def example_resources(stack: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """A fresh deep copy, so a test can mutate it."""
    return copy.deepcopy(list(_example_resources(stack)))


def only(resources: list[tuple[str, str, str, dict[str, Any]]], typ: str) -> list[dict[str, Any]]:
    found = [props for t, _, _, props in resources if t == typ]
    assert found, f"the stack registers no {typ}"
    return found


def tenant_wide(config: dict[str, Any]) -> None:
    config["mailplane:scoping"] = {"mode": "tenant-wide", "tenantWideAcknowledgement": TENANT_WIDE_ACKNOWLEDGEMENT}


def role_id(name: str) -> str:
    return catalog().require(name, "application").id


# -- every example stack passes every policy ---------------------------------------------------------------------


def test_policies__cover_every_rule__six_policies():
    assert sorted(POLICIES) == [
        "app-has-owners",
        "client-secret-lifetime",
        "highest-privilege-allow-list",
        "https-redirect-uris",
        "mail-scoping-opt-in",
        "single-tenant-audience",
    ]


@pytest.mark.parametrize("stack", example_names())
def test_example_stack__every_resource_it_registers__no_violation(stack):
    resources = example_resources(stack)
    assert only(resources, APPLICATION)

    assert run_policies(resources) == {}


# -- mail-scoping-opt-in ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenant_wide_import(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tenant-wide")
    return planned_resources(write_stack_copy(folder, "example-inbound-import", tenant_wide))


def test_mail_scoping__tenant_wide_opt_in_stack__passes(tenant_wide_import):
    assignments = only(tenant_wide_import, ROLE_ASSIGNMENT)
    assert [a["appRoleId"] for a in assignments] == [role_id("Mail.ReadWrite")]

    assert run_policies(tenant_wide_import) == {}


def test_mail_scoping__mail_grant_but_rbac_tag__violates(tenant_wide_import):
    resources = copy.deepcopy(tenant_wide_import)
    only(resources, APPLICATION)[0]["tags"] = ["mailplane", "mailplane:scoping=rbac"]

    expected = (
        "Fabrikam helpdesk mail import: grants Mail.ReadWrite (application) in Entra, which reaches every mailbox "
        "in the tenant, but the app has scoping mode 'rbac'. Use mailplane:scoping.mode 'rbac' so Exchange limits "
        "the app to the declared mailboxes, or opt in with mode 'tenant-wide' and its acknowledgement (Application "
        "tag 'mailplane:scoping=tenant-wide')."
    )
    assert run_policies(resources) == {"mail-scoping-opt-in": [expected]}


def test_mail_scoping__mail_grant_and_no_scoping_tag__violates(tenant_wide_import):
    resources = copy.deepcopy(tenant_wide_import)
    only(resources, APPLICATION)[0]["tags"] = []

    assert "but the app has no mailplane:scoping tag." in run_policies(resources)["mail-scoping-opt-in"][0]


# -- client-secret-lifetime ------------------------------------------------------------------------------------


def test_secret_lifetime__example_slots__pass_at_the_limit():
    resources = example_resources("example-outbound-send")
    assert [p["endDate"] for p in only(resources, PASSWORD)] == ["2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z"]

    assert "client-secret-lifetime" not in run_policies(resources)


def test_secret_lifetime__end_date_13_months_away__violates():
    resources = example_resources("example-outbound-send")
    only(resources, PASSWORD)[1]["endDate"] = "2027-12-23T00:00:00Z"

    expected = (
        "mailplane-b-gen1: client secret is valid for 396 days (2026-11-22 to 2027-12-23), longer than the "
        "12-month limit. Set mailplane:credentials.clientSecret.rotationPeriodMonths to at most 6 (each secret "
        "lives two periods), or use a certificate or federated credential."
    )
    assert run_policies(resources) == {"client-secret-lifetime": [expected]}


def test_secret_lifetime__no_end_date__violates_with_entra_default_of_two_years():
    resources = example_resources("example-outbound-send")
    del only(resources, PASSWORD)[0]["endDate"]

    assert run_policies(resources)["client-secret-lifetime"][0].startswith(
        "mailplane-a-gen0: client secret is valid for 731 days (2026-11-22 to 2028-11-22)"
    )


def test_secret_lifetime__limit_raised_in_policy_config__passes():
    resources = example_resources("example-outbound-send")
    only(resources, PASSWORD)[1]["endDate"] = "2027-12-23T00:00:00Z"

    assert run_policies(resources, {"client-secret-lifetime": {"maxLifetimeMonths": 18}}) == {}


# -- https-redirect-uris ---------------------------------------------------------------------------------------


def test_redirect_uris__https_and_localhost_http__pass():
    resources = example_resources("example-delegated-graph-sync")
    assert "http://localhost:8400/auth/callback" in only(resources, APPLICATION)[0]["web"]["redirectUris"]

    assert run_policies(resources) == {}


def test_redirect_uris__plain_http_host__violates():
    resources = example_resources("example-delegated-graph-sync")
    only(resources, APPLICATION)[0]["web"]["redirectUris"].append("http://cs.adatum.com/auth/callback")

    expected = (
        "Adatum customer success mail sync: redirect URI 'http://cs.adatum.com/auth/callback' is not https, so "
        "authorization codes could travel in clear text. Use 'https://cs.adatum.com/auth/callback' in "
        "mailplane:app.redirectUris (plain http is allowed only for localhost)."
    )
    assert run_policies(resources) == {"https-redirect-uris": [expected]}


# -- single-tenant-audience ------------------------------------------------------------------------------------


def test_audience__multi_tenant__violates():
    resources = example_resources("example-delegated-imap-smtp")
    only(resources, APPLICATION)[0]["signInAudience"] = "AzureADMultipleOrgs"

    expected = (
        "Northwind CRM email: signInAudience is 'AzureADMultipleOrgs', so accounts outside this tenant can sign "
        "in. Set mailplane:app.signInAudience to 'AzureADMyOrg', or add 'Northwind CRM email' to allowedApps of "
        "the single-tenant-audience policy config if it must be multi-tenant."
    )
    assert run_policies(resources) == {"single-tenant-audience": [expected]}


def test_audience__multi_tenant_app_allow_listed__passes():
    resources = example_resources("example-delegated-imap-smtp")
    only(resources, APPLICATION)[0]["signInAudience"] = "AzureADMultipleOrgs"

    assert run_policies(resources, {"single-tenant-audience": {"allowedApps": ["Northwind CRM email"]}}) == {}


# -- app-has-owners --------------------------------------------------------------------------------------------


def test_owners__none__violates():
    resources = example_resources("example-inbound-import")
    only(resources, APPLICATION)[0]["owners"] = []

    expected = (
        "Fabrikam helpdesk mail import: has no owners, so nobody is accountable for it and only directory admins "
        "can manage it. Add the object id of a responsible user or group under mailplane:app.owners."
    )
    assert run_policies(resources) == {"app-has-owners": [expected]}


# -- highest-privilege-allow-list ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def directory_writer(tmp_path_factory):
    def add_directory_write(config: dict[str, Any]) -> None:
        config["mailplane:permissions"] = [{"name": "Directory.ReadWrite.All", "type": "application"}]

    folder = tmp_path_factory.mktemp("privileged")
    return planned_resources(write_stack_copy(folder, "example-outbound-send", add_directory_write))


def test_highest_privilege__directory_readwrite_all_not_allow_listed__violates(directory_writer):
    assert [a["appRoleId"] for a in only(directory_writer, ROLE_ASSIGNMENT)] == [role_id("Directory.ReadWrite.All")]

    expected = (
        "example-outbound-send-consent-role-Directory.ReadWrite.All: application permission "
        "'Directory.ReadWrite.All' has Microsoft's highest privilege level (4) and is not on the allow-list. Use a "
        "narrower permission, or add it to allowedPermissions of the highest-privilege-allow-list policy config "
        "after a security review."
    )
    assert run_policies(directory_writer) == {"highest-privilege-allow-list": [expected]}


def test_highest_privilege__allow_listed__passes(directory_writer):
    config = {"highest-privilege-allow-list": {"allowedPermissions": ["Directory.ReadWrite.All"]}}

    assert run_policies(directory_writer, config) == {}


def test_highest_privilege__level_three_mail_grant__passes(tenant_wide_import):
    assert "highest-privilege-allow-list" not in run_policies(tenant_wide_import)


def test_pack_entry_point__builds_the_pack_only_when_run__main_calls_build_policies():
    main = (ROOT / "policy" / "__main__.py").read_text(encoding="utf-8")
    yaml_text = (ROOT / "policy" / "PulumiPolicy.yaml").read_text(encoding="utf-8")

    assert "PolicyPack(" in main
    assert "build_policies()" in main
    assert "name: python" in yaml_text
    assert not Path(ROOT / "policy" / "__init__.py").exists()


def test_secret_lifetime__end_date_unknown_in_preview__left_to_the_analyzer():
    resources = example_resources("example-outbound-send")
    only(resources, PASSWORD)[0]["endDate"] = rpc.UNKNOWN

    with pytest.raises(UnknownValueError):
        run_policies(resources)
