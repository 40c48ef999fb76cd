"""The GitOps deployer identity: an app that GitHub Actions signs in as through OIDC, with no secret at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_azuread as azuread
from deployer_permissions import DEPLOYER_APP_ROLES, DEPLOYER_DIRECTORY_ROLES, EXCHANGE_ONLINE, MICROSOFT_GRAPH

from mailplane.permissions import EXCHANGE_ONLINE_APP_ID, MICROSOFT_GRAPH_APP_ID

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["GITHUB_ISSUER", "DeployerIdentity", "DeployerIdentityArgs", "github_subject"]

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a secret.
RESOURCE_APP_IDS = {MICROSOFT_GRAPH: MICROSOFT_GRAPH_APP_ID, EXCHANGE_ONLINE: EXCHANGE_ONLINE_APP_ID}


def github_subject(repository: str, environment: str) -> str:
    """Return the subject GitHub puts in the OIDC token of a job that runs in ``environment``."""
    return f"repo:{repository}:environment:{environment}"


@dataclass
class DeployerIdentityArgs:
    """Inputs of :class:`DeployerIdentity`."""

    github_repository: str
    """ORG/REPO whose workflows deploy. Required."""

    github_environments: Sequence[str] = ("preview", "production")
    """GitHub environments allowed to sign in, one federated credential each. Protect them with reviewers."""

    display_name: str = "mailplane deployer"
    """Display name of the app registration."""

    owners: Sequence[pulumi.Input[str]] = field(default_factory=list)
    """Object ids of the people accountable for the deployer."""


class DeployerIdentity(pulumi.ComponentResource):
    """App registration + service principal + federated credentials + admin-consented roles + Exchange Administrator."""

    application: azuread.Application
    service_principal: azuread.ServicePrincipal
    federated: dict[str, azuread.ApplicationFederatedIdentityCredential]
    role_assignments: dict[str, azuread.AppRoleAssignment]
    exchange_administrator: azuread.DirectoryRoleAssignment
    client_id: pulumi.Output[str]

    def __init__(self, name: str, args: DeployerIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Children are named ``<name>-app``, ``<name>-sp``, ``<name>-github-<env>``, ``<name>-role-<permission>``."""
        super().__init__("mailplane-bootstrap:deployer_identity:DeployerIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        resources = {
            key: azuread.get_service_principal_output(client_id=app_id, opts=invoke)
            for key, app_id in RESOURCE_APP_IDS.items()
        }

        def role_id(resource: str, permission: str) -> pulumi.Output[str]:
            def pick(ids: dict[str, str]) -> str:
                if permission not in ids:
                    raise pulumi.RunError(
                        f"looking up {permission} on {resource}: the tenant's service principal has no such app role. "
                        "Check the permission name."
                    )
                return ids[permission]

            return resources[resource].app_role_ids.apply(pick)

        requested: dict[str, list[dict[str, pulumi.Input[str]]]] = {}
        for permission in DEPLOYER_APP_ROLES:
            requested.setdefault(permission.resource, []).append(
                {"id": role_id(permission.resource, permission.name), "type": "Role"}
            )
        self.application = azuread.Application(
            f"{name}-app",
            display_name=args.display_name,
            sign_in_audience="AzureADMyOrg",
            owners=list(args.owners),
            required_resource_accesses=[
                {"resource_app_id": RESOURCE_APP_IDS[resource], "resource_accesses": accesses}
                for resource, accesses in requested.items()
            ],
            notes="mailplane GitOps deployer: signs in from GitHub Actions with OIDC; no password or certificate.",
            prevent_duplicate_names=True,
            opts=child,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp", client_id=self.application.client_id, owners=list(args.owners), opts=child
        )
        self.federated = {
            environment: azuread.ApplicationFederatedIdentityCredential(
                f"{name}-github-{environment}",
                application_id=self.application.id,
                display_name=f"github-{environment}",
                description=f"GitHub Actions jobs of {args.github_repository} in environment {environment}",
                issuer=GITHUB_ISSUER,
                subject=github_subject(args.github_repository, environment),
                audiences=[TOKEN_EXCHANGE_AUDIENCE],
                opts=child,
            )
            for environment in args.github_environments
        }
        self.role_assignments = {
            permission.name: azuread.AppRoleAssignment(
                f"{name}-role-{permission.name}",
                app_role_id=role_id(permission.resource, permission.name),
                principal_object_id=self.service_principal.object_id,
                resource_object_id=resources[permission.resource].object_id,
                opts=child,
            )
            for permission in DEPLOYER_APP_ROLES
        }
        (exchange_role,) = DEPLOYER_DIRECTORY_ROLES
        # Activating the built-in role by name gives its template id, so no role GUID is written here.
        role = azuread.DirectoryRole(f"{name}-exchange-administrator-role", display_name=exchange_role.name, opts=child)
        self.exchange_administrator = azuread.DirectoryRoleAssignment(
            f"{name}-exchange-administrator",
            role_id=role.template_id,
            principal_object_id=self.service_principal.object_id,
            opts=child,
        )
        self.client_id = self.application.client_id
        self.register_outputs(
            {"client_id": self.client_id, "service_principal_object_id": self.service_principal.object_id}
        )
