"""The Entra app registration and its service principal (enterprise application)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_azuread as azuread

from components.microsoft_graph import permission_id
from mailplane.permissions import MICROSOFT_GRAPH_APP_ID

__all__ = ["AppRegistration", "AppRegistrationArgs"]


@dataclass
class AppRegistrationArgs:
    """Inputs of :class:`AppRegistration`."""

    display_name: str
    """Display name in the Entra portal and on consent screens. Required."""

    graph: pulumi.Output[azuread.GetServicePrincipalResult]
    """The tenant's Microsoft Graph service principal (``components.microsoft_graph.lookup_microsoft_graph``)."""

    sign_in_audience: str = "AzureADMyOrg"
    """Who may sign in: AzureADMyOrg (default, single tenant), AzureADMultipleOrgs, AzureADandPersonalMicrosoftAccount
    or PersonalMicrosoftAccount."""

    owners: Sequence[pulumi.Input[str]] = field(default_factory=list)
    """Object ids of owners. Include the deploying identity so it keeps managing the app with
    Application.ReadWrite.OwnedBy."""

    redirect_uris: Sequence[str] = field(default_factory=list)
    """Web redirect URIs (https; http only for localhost). Empty for app-only integrations."""

    application_permissions: Sequence[str] = field(default_factory=list)
    """Graph application permissions the app requests (by name). Requesting grants nothing; consent does."""

    delegated_scopes: Sequence[str] = field(default_factory=list)
    """Graph delegated scopes the app requests (by name)."""

    tags: Sequence[str] = field(default_factory=list)
    """Tags on the app registration; mailplane records its scoping mode here so policies can see it."""

    notes: str | None = None
    """Free text on the registration (e.g. the owning team)."""


class AppRegistration(pulumi.ComponentResource):
    """An ``azuread.Application`` (one app model: the monolithic resource) and its ``azuread.ServicePrincipal``."""

    application: azuread.Application
    service_principal: azuread.ServicePrincipal
    client_id: pulumi.Output[str]
    service_principal_object_id: pulumi.Output[str]

    def __init__(self, name: str, args: AppRegistrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the registration and its service principal as children named ``<name>-app`` and ``<name>-sp``."""
        super().__init__("mailplane:app_registration:AppRegistration", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def requested(graph: azuread.GetServicePrincipalResult) -> list[dict]:
            accesses = [
                {"id": permission_id(graph.app_role_ids, n, "application"), "type": "Role"}
                for n in args.application_permissions
            ] + [
                {"id": permission_id(graph.oauth2_permission_scope_ids, n, "delegated"), "type": "Scope"}
                for n in args.delegated_scopes
            ]
            return [{"resource_app_id": MICROSOFT_GRAPH_APP_ID, "resource_accesses": accesses}] if accesses else []

        self.application = azuread.Application(
            f"{name}-app",
            display_name=args.display_name,
            sign_in_audience=args.sign_in_audience,
            owners=list(args.owners),
            web={
                "redirect_uris": list(args.redirect_uris),
                # Authorization-code flow only; the implicit grant leaks tokens into browser history.
                "implicit_grant": {"access_token_issuance_enabled": False, "id_token_issuance_enabled": False},
            },
            required_resource_accesses=args.graph.apply(requested),
            tags=list(args.tags),
            notes=args.notes,
            # Refuse to create a second app with the same name instead of silently making a twin.
            prevent_duplicate_names=True,
            opts=child,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=self.application.client_id,
            owners=list(args.owners),
            opts=child,
        )
        self.client_id = self.application.client_id
        self.service_principal_object_id = self.service_principal.object_id
        self.register_outputs(
            {"client_id": self.client_id, "service_principal_object_id": self.service_principal_object_id}
        )
