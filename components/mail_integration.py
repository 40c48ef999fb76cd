"""The root component: everything one tenant's mail integration needs in Entra ID (and, by mode, Exchange)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from components.app_registration import AppRegistration, AppRegistrationArgs
from components.certificate_credential import CertificateCredential, CertificateCredentialArgs
from components.client_secret import RotatingClientSecret, RotatingClientSecretArgs
from components.federated_credential import FederatedCredentials, FederatedCredentialsArgs
from components.graph_consent import GraphAdminConsent, GraphAdminConsentArgs
from components.microsoft_graph import lookup_microsoft_graph
from mailplane.grants import Grants, compute_grants
from mailplane.tenant import TenantConfig

__all__ = ["MailIntegration", "MailIntegrationArgs"]


@dataclass
class MailIntegrationArgs:
    """Inputs of :class:`MailIntegration`."""

    config: TenantConfig
    """The validated tenant config (``components.config.load_tenant_config``)."""

    today: dt.date
    """The date secret rotation is computed for (the deployment's UTC date; frozen in tests and plans)."""

    certificate_pem: pulumi.Input[str] | None = None
    """The certificate PEM when ``config.certificate`` is set; must be given then, ignored otherwise."""


class MailIntegration(pulumi.ComponentResource):
    """One tenant's mail integration: app registration, Graph admin consent, credentials.

    The grants come from :func:`mailplane.grants.compute_grants`, the same function the offline plan, the audit and
    the policy pack use. With ``rbac`` scoping no mailbox-scopable permission is consented in Entra.
    """

    config: TenantConfig
    grants: Grants
    provider: azuread.Provider
    registration: AppRegistration
    application: azuread.Application
    service_principal: azuread.ServicePrincipal
    consent: GraphAdminConsent
    client_secret: RotatingClientSecret | None
    certificate: CertificateCredential | None
    federated: FederatedCredentials | None
    credential_expiries: pulumi.Output[dict[str, str]]

    def __init__(self, name: str, args: MailIntegrationArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the children; the names derive from ``name`` (use the stack's tenant name)."""
        super().__init__("mailplane:mail_integration:MailIntegration", name, None, opts)
        config = self.config = args.config
        grants = self.grants = compute_grants(config)

        # An explicit provider pinned to the stack's tenant: a stack can never be applied to another tenant by a
        # stray ARM_TENANT_ID. Authentication still comes from the environment (OIDC in pipelines, az login locally).
        self.provider = azuread.Provider(
            f"{name}-entra", tenant_id=config.tenant_id, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(parent=self, providers={"azuread": self.provider})
        graph = lookup_microsoft_graph(pulumi.InvokeOutputOptions(parent=self, provider=self.provider))
        deployer = azuread.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self, provider=self.provider)
        )

        self.registration = AppRegistration(
            name,
            AppRegistrationArgs(
                display_name=config.display_name,
                graph=graph,
                sign_in_audience=config.sign_in_audience,
                owners=[*config.owners, deployer.object_id],
                redirect_uris=config.redirect_uris,
                application_permissions=grants.entra_names("application"),
                delegated_scopes=grants.entra_names("delegated"),
                tags=["mailplane", f"mailplane:scoping={config.scoping_mode}"],
                notes=config.notes,
            ),
            child,
        )
        self.application = self.registration.application
        self.service_principal = self.registration.service_principal

        self.consent = GraphAdminConsent(
            f"{name}-consent",
            GraphAdminConsentArgs(
                service_principal_object_id=self.service_principal.object_id,
                graph=graph,
                application_permissions=grants.entra_names("application"),
                delegated_scopes=grants.entra_names("delegated"),
            ),
            child,
        )

        expiries: dict[str, pulumi.Input[str]] = {}
        self.client_secret = None
        if config.client_secret:
            self.client_secret = RotatingClientSecret(
                f"{name}-secret",
                RotatingClientSecretArgs(
                    application_id=self.application.id,
                    anchor_date=config.client_secret.anchor_date,
                    rotation_period_months=config.client_secret.rotation_period_months,
                    today=args.today,
                ),
                child,
            )
            expiries.update(self.client_secret.expiries)
        self.certificate = None
        if config.certificate:
            if args.certificate_pem is None:
                raise pulumi.RunError(
                    f"{config.source}: mailplane:credentials.certificate is set but no certificate PEM was passed. "
                    f"Set it with: pulumi config set --secret mailplane:{config.certificate.pem_config_key} < cert.pem"
                )
            self.certificate = CertificateCredential(
                f"{name}-cert",
                CertificateCredentialArgs(
                    application_id=self.application.id,
                    pem=args.certificate_pem,
                    config_key=config.certificate.pem_config_key,
                ),
                child,
            )
            expiries["certificate"] = self.certificate.expires
        self.federated = None
        if config.federated:
            self.federated = FederatedCredentials(
                f"{name}-federated",
                FederatedCredentialsArgs(application_id=self.application.id, credentials=config.federated),
                child,
            )
        self.credential_expiries = (
            pulumi.Output.all(**expiries).apply(dict) if expiries else pulumi.Output.from_input({})
        )

        self.register_outputs(
            {
                "client_id": self.application.client_id,
                "service_principal_object_id": self.service_principal.object_id,
                "credential_expiries": self.credential_expiries,
                "grants": grants.to_dict(),
            }
        )
