"""mailplane's Pulumi components: one ComponentResource per module, each with a typed ``<Thing>Args``."""

from components.app_registration import AppRegistration, AppRegistrationArgs
from components.certificate_credential import CertificateCredential, CertificateCredentialArgs
from components.client_secret import RotatingClientSecret, RotatingClientSecretArgs
from components.federated_credential import FederatedCredentials, FederatedCredentialsArgs
from components.graph_consent import GraphAdminConsent, GraphAdminConsentArgs
from components.mail_integration import MailIntegration, MailIntegrationArgs

__all__ = [
    "AppRegistration",
    "AppRegistrationArgs",
    "CertificateCredential",
    "CertificateCredentialArgs",
    "FederatedCredentials",
    "FederatedCredentialsArgs",
    "GraphAdminConsent",
    "GraphAdminConsentArgs",
    "MailIntegration",
    "MailIntegrationArgs",
    "RotatingClientSecret",
    "RotatingClientSecretArgs",
]
