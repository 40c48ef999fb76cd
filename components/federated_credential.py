"""Federated identity credentials: the app trusts tokens from an outside issuer, so no secret exists at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from mailplane.tenant import FederatedCredentialSettings

__all__ = ["FederatedCredentials", "FederatedCredentialsArgs"]


@dataclass
class FederatedCredentialsArgs:
    """Inputs of :class:`FederatedCredentials`."""

    application_id: pulumi.Input[str]
    """Resource id of the app registration (``Application.id``)."""

    credentials: Sequence[FederatedCredentialSettings]
    """Issuer/subject/audience triples, e.g. a GitHub Actions environment or an Azure managed identity."""


class FederatedCredentials(pulumi.ComponentResource):
    """One ``ApplicationFederatedIdentityCredential`` per entry, named ``<name>-<credential name>``."""

    credentials: dict[str, azuread.ApplicationFederatedIdentityCredential]

    def __init__(self, name: str, args: FederatedCredentialsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare one child per credential."""
        super().__init__("mailplane:federated_credential:FederatedCredentials", name, None, opts)
        self.credentials = {
            settings.name: azuread.ApplicationFederatedIdentityCredential(
                f"{name}-{settings.name}",
                application_id=args.application_id,
                display_name=settings.name,
                issuer=settings.issuer,
                subject=settings.subject,
                audiences=list(settings.audiences),
                description=settings.description,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for settings in args.credentials
        }
        self.register_outputs({"names": sorted(self.credentials)})
