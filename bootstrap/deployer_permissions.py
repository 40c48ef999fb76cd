"""What the mailplane deployer may do, and why: the reviewable permission manifest of the bootstrap stack (pure).

Each entry is the least permission that one step of deploying a mailplane stack needs; the README shows this
table. Sources: the "API Permissions" sections of the pulumi-azuread resources, Microsoft's
published permission data (which API paths each permission covers) and the Exchange Online app-only docs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEPLOYER_APP_ROLES", "DEPLOYER_DIRECTORY_ROLES", "DeployerPermission"]

MICROSOFT_GRAPH = "microsoftGraph"
EXCHANGE_ONLINE = "exchangeOnline"


@dataclass(frozen=True)
class DeployerPermission:
    """One application permission (app role) or directory role of the deployer, with the reason it is needed."""

    resource: str  # microsoftGraph, exchangeOnline or directory
    name: str
    reason: str


DEPLOYER_APP_ROLES: tuple[DeployerPermission, ...] = (
    DeployerPermission(
        MICROSOFT_GRAPH,
        "Application.ReadWrite.OwnedBy",
        "Create the mail app registration, its service principal and credentials (passwords, certificates, federated "
        "credentials), and manage only the apps it owns. mailplane adds the deployer to the owners of both the app "
        "and the service principal, which this permission requires. Not Application.ReadWrite.All: that reaches every "
        "app in the tenant.",
    ),
    DeployerPermission(
        MICROSOFT_GRAPH,
        "Application.Read.All",
        "Look up the tenant's Microsoft Graph service principal by appId (its object id and permission ids) with "
        "get_service_principal; pulumi-azuread documents it as the read half of AppRoleAssignment.ReadWrite.All.",
    ),
    DeployerPermission(
        MICROSOFT_GRAPH,
        "AppRoleAssignment.ReadWrite.All",
        "Admin consent for application permissions: one AppRoleAssignment per permission on the app's service "
        "principal. Highest privilege (it can grant any app role), hence the GitHub environment with reviewers.",
    ),
    DeployerPermission(
        MICROSOFT_GRAPH,
        "DelegatedPermissionGrant.ReadWrite.All",
        "Admin consent for delegated scopes: the one ServicePrincipalDelegatedPermissionGrant (oauth2PermissionGrant) "
        "per app. Microsoft's permission data lists it for POST/PATCH/DELETE /oauth2PermissionGrants; the provider "
        "docs name Directory.ReadWrite.All, which would also let the pipeline rewrite the whole directory.",
    ),
    DeployerPermission(
        EXCHANGE_ONLINE,
        "Exchange.ManageAsApp",
        "Call the Exchange Online admin endpoint app-only, for the Exchange side of a stack (RBAC for Applications "
        "scopes and role assignments, Application Access Policies, shared mailboxes). Useless without an Exchange "
        "role, below.",
    ),
)

DEPLOYER_DIRECTORY_ROLES: tuple[DeployerPermission, ...] = (
    DeployerPermission(
        "directory",
        "Exchange Administrator",
        "The Entra role Exchange checks for app-only admin calls: creating management scopes and role assignments "
        "for applications needs Organization Management rights, which Exchange Administrator carries (Exchange "
        "Recipient Administrator cannot assign RBAC roles to apps).",
    ),
)
