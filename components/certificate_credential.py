"""A certificate credential on the app registration, with its expiry read from the certificate itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from mailplane.certificates import CertificateFacts, read_certificate
from mailplane.tenant import UNREADABLE_SECRET

__all__ = ["CertificateCredential", "CertificateCredentialArgs"]

OFFLINE = "[read from the certificate at deploy time]"


@dataclass
class CertificateCredentialArgs:
    """Inputs of :class:`CertificateCredential`."""

    application_id: pulumi.Input[str]
    """Resource id of the app registration (``Application.id``)."""

    pem: pulumi.Input[str]
    """The certificate in PEM form, public part only (a secret config value). A private key is refused."""

    config_key: str = "certificatePem"
    """The config key the PEM came from, to name it in errors."""


class CertificateCredential(pulumi.ComponentResource):
    """An ``ApplicationCertificate`` whose end date is the certificate's own notAfter."""

    certificate: azuread.ApplicationCertificate
    expires: pulumi.Output[str]
    thumbprint: pulumi.Output[str]

    def __init__(self, name: str, args: CertificateCredentialArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Child: ``<name>-certificate``."""
        super().__init__("mailplane:certificate_credential:CertificateCredential", name, None, opts)

        def facts(pem: str) -> CertificateFacts | None:
            if pem == UNREADABLE_SECRET:
                return None  # Offline plan: the PEM is encrypted in the stack file; its facts appear at deploy time.
            try:
                return read_certificate(pem, today=dt.datetime.now(dt.UTC).date())
            except ValueError as error:
                raise pulumi.RunError(f"reading the certificate in mailplane:{args.config_key}: {error}") from None

        certificate_facts = pulumi.Output.from_input(args.pem).apply(facts)
        self.certificate = azuread.ApplicationCertificate(
            f"{name}-certificate",
            application_id=args.application_id,
            value=pulumi.Output.secret(args.pem),
            encoding="pem",
            type="AsymmetricX509Cert",
            # The end date is public (it is printed in the certificate); only the PEM is kept secret.
            end_date=pulumi.Output.unsecret(certificate_facts.apply(lambda f: f.not_after_rfc3339 if f else None)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.expires = pulumi.Output.unsecret(certificate_facts.apply(lambda f: f.not_after_rfc3339 if f else OFFLINE))
        self.thumbprint = pulumi.Output.unsecret(certificate_facts.apply(lambda f: f.sha1_thumbprint if f else OFFLINE))
        self.register_outputs({"expires": self.expires, "thumbprint": self.thumbprint})
