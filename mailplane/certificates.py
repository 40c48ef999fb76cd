"""Facts about an X.509 certificate given as PEM: expiry and thumbprint (pure; used by components and the CLI)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

__all__ = ["CertificateFacts", "read_certificate"]


@dataclass(frozen=True)
class CertificateFacts:
    """What mailplane needs to know about a certificate credential."""

    subject: str
    not_before: dt.datetime
    not_after: dt.datetime
    sha1_thumbprint: str

    @property
    def not_after_rfc3339(self) -> str:
        """Expiry as RFC 3339 (UTC), the form Entra's ``endDateTime`` takes."""
        return self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_certificate(pem: str, *, today: dt.date) -> CertificateFacts:
    """Parse one PEM certificate; ``ValueError`` with what to do when it is not usable as an app credential."""
    if "PRIVATE KEY" in pem:
        raise ValueError(
            "the value contains a private key. Upload only the certificate (-----BEGIN CERTIFICATE-----); keep the "
            "key with the workload that signs in."
        )
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError("not a PEM certificate. Expected a block starting with -----BEGIN CERTIFICATE-----.") from None
    not_after = certificate.not_valid_after_utc
    if not_after.date() <= today:
        raise ValueError(
            f"the certificate expired on {not_after.date().isoformat()}. Issue a new one and set it again."
        )
    return CertificateFacts(
        subject=certificate.subject.rfc4514_string(),
        not_before=certificate.not_valid_before_utc,
        not_after=not_after,
        sha1_thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's thumbprint is SHA-1.
    )
