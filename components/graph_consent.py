"""Admin consent for Microsoft Graph permissions: app-role assignments and one delegated permission grant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azuread as azuread

from components.microsoft_graph import permission_id

__all__ = ["GraphAdminConsent", "GraphAdminConsentArgs"]


@dataclass
class GraphAdminConsentArgs:
    """Inputs of :class:`GraphAdminConsent`."""

    service_principal_object_id: pulumi.Input[str]
    """Object id of the app's service principal (the client being granted)."""

    graph: pulumi.Output[azuread.GetServicePrincipalResult]
    """The tenant's Microsoft Graph service principal (the resource granting)."""

    application_permissions: Sequence[str] = field(default_factory=list)
    """Graph application permissions to consent, by name: one ``AppRoleAssignment`` each."""

    delegated_scopes: Sequence[str] = field(default_factory=list)
    """Graph delegated scopes to consent for all users, by name: all in one grant."""


class GraphAdminConsent(pulumi.ComponentResource):
    """Tenant-wide admin consent, so no user is ever prompted and nothing works only "until someone clicks"."""

    role_assignments: dict[str, azuread.AppRoleAssignment]
    delegated_grant: azuread.ServicePrincipalDelegatedPermissionGrant | None

    def __init__(self, name: str, args: GraphAdminConsentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Children: ``<name>-role-<Permission>`` per application permission and ``<name>-delegated``."""
        super().__init__("mailplane:graph_consent:GraphAdminConsent", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role_assignments = {
            permission: azuread.AppRoleAssignment(
                f"{name}-role-{permission}",
                app_role_id=args.graph.app_role_ids.apply(
                    lambda ids, p=permission: permission_id(ids, p, "application")
                ),
                principal_object_id=args.service_principal_object_id,
                resource_object_id=args.graph.object_id,
                opts=child,
            )
            for permission in sorted(args.application_permissions)
        }
        self.delegated_grant = None
        if args.delegated_scopes:
            scopes = sorted(args.delegated_scopes)
            self.delegated_grant = azuread.ServicePrincipalDelegatedPermissionGrant(
                f"{name}-delegated",
                claim_values=args.graph.oauth2_permission_scope_ids.apply(
                    # Resolving each id proves every scope exists before the grant is sent.
                    lambda ids: [s for s in scopes if permission_id(ids, s, "delegated")]
                ),
                service_principal_object_id=args.service_principal_object_id,
                resource_service_principal_object_id=args.graph.object_id,
                # No user_object_id: consent on behalf of all users. Entra allows one grant per (client, resource)
                # pair and rejects in-place changes of the scopes, so a change deletes the grant, then recreates it.
                opts=pulumi.ResourceOptions(
                    parent=self, replace_on_changes=["claimValues"], delete_before_replace=True
                ),
            )
        self.register_outputs(
            {
                "application_permissions": sorted(self.role_assignments),
                "delegated_scopes": sorted(args.delegated_scopes),
            }
        )
