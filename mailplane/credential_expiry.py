"""When each credential of a stack expires, and which ones need attention (pure; ``mailplane credentials`` prints it).

Client secrets follow the two-slot rotation schedule (:func:`mailplane.rotation.secret_generations`); certificates
expire when the certificate says (read from its PEM when the stack file holds it unencrypted); federated credentials
have no secret and never expire. When the deployed stack's outputs are given (``pulumi stack output --json``), their
``credentialExpiries`` are the truth: they show what was really deployed, e.g. a rotation that has not run.

Statuses: ``ok``; ``expiring`` (within the warning window) and ``expired`` need attention; ``retiring`` is the
previous client-secret slot nearing its planned end (expected: consumers already use the active secret);
``no-expiry`` (federated); ``unknown`` (the expiry cannot be read offline).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailplane.certificates import read_certificate
from mailplane.rotation import secret_generations

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailplane.tenant import TenantConfig

__all__ = ["ATTENTION", "CredentialExpiry", "credential_expiries"]

ATTENTION = ("expiring", "expired")
SECRET_PREFIX = "client-secret-"  # noqa: S105 - the output key prefix, not a secret.


@dataclass(frozen=True)
class CredentialExpiry:
    """One credential of one stack and when it expires."""

    stack: str
    name: str
    kind: str  # client-secret, certificate or federated
    expires: dt.date | None
    days_left: int | None
    status: str
    source: str  # rotation schedule, certificate, stack output, none
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "stack": self.stack,
            "name": self.name,
            "kind": self.kind,
            "expires": self.expires.isoformat() if self.expires else None,
            "daysLeft": self.days_left,
            "status": self.status,
            "source": self.source,
            "note": self.note,
        }


def _parse_date(value: Any) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).date()
    except ValueError:
        return None


def _status(days_left: int, warn_days: int, *, retiring: bool = False) -> str:
    if days_left < 0:
        return "expired"
    if days_left <= warn_days:
        return "retiring" if retiring else "expiring"
    return "ok"


def _secret_slots(
    stack: str, config: TenantConfig, today: dt.date, warn_days: int, deployed: Mapping[str, Any]
) -> list[CredentialExpiry]:
    scheduled: dict[str, dt.date] = {}
    if config.client_secret:
        anchor = config.client_secret.anchor_date
        for generation in secret_generations(anchor, config.client_secret.rotation_period_months, max(today, anchor)):
            scheduled[f"{SECRET_PREFIX}{generation.slot}"] = generation.expires
    deployed_slots = {k: d for k, v in deployed.items() if k.startswith(SECRET_PREFIX) and (d := _parse_date(v))}
    # What was deployed is the truth when known; the schedule says what should be there.
    expiries = deployed_slots or scheduled
    if not expiries:
        return []
    active = max(expiries, key=lambda k: expiries[k])
    found = []
    for name in sorted(expiries):
        expires = expiries[name]
        days_left = (expires - today).days
        note = "active" if name == active else "previous slot"
        if name in deployed_slots and name in scheduled and deployed_slots[name] != scheduled[name]:
            note += (
                f"; the schedule expects {scheduled[name].isoformat()}: rotation has not been deployed, run "
                "pulumi up --refresh"
            )
        elif name in deployed_slots and scheduled and name not in scheduled:
            note += "; not in the schedule any more, the next pulumi up removes it"
        found.append(
            CredentialExpiry(
                stack,
                name,
                "client-secret",
                expires,
                days_left,
                _status(days_left, warn_days, retiring=name != active),
                "stack output" if name in deployed_slots else "rotation schedule",
                note,
            )
        )
    return found


def _certificate(
    stack: str,
    config: TenantConfig,
    *,
    today: dt.date,
    warn_days: int,
    pem: str | None,
    deployed: Mapping[str, Any],
) -> list[CredentialExpiry]:
    if config.certificate is None:
        return []
    name = "certificate"
    expires = _parse_date(deployed.get(name))
    source, note = "stack output", ""
    if expires is None and pem is not None:
        try:
            # dt.date.min: report an expired certificate as expired instead of refusing to read it.
            expires = read_certificate(pem, today=dt.date.min).not_after.date()
            source = "certificate"
        except ValueError as error:
            source, note = "none", f"mailplane:{config.certificate.pem_config_key}: {error}"
    elif expires is None:
        source = "none"
        note = (
            f"mailplane:{config.certificate.pem_config_key} is encrypted in the stack file; pass --stack-output "
            "with the output of 'pulumi stack output --json'"
        )
    if expires is None:
        return [CredentialExpiry(stack, name, "certificate", None, None, "unknown", source, note)]
    days_left = (expires - today).days
    return [
        CredentialExpiry(stack, name, "certificate", expires, days_left, _status(days_left, warn_days), source, note)
    ]


def credential_expiries(
    stack: str,
    config: TenantConfig,
    *,
    today: dt.date,
    warn_days: int = 30,
    certificate_pem: str | None = None,
    deployed: Mapping[str, Any] | None = None,
) -> list[CredentialExpiry]:
    """Every credential of one stack with its expiry and status.

    ``certificate_pem`` is the certificate when the stack file holds it readable; ``deployed`` is the stack's
    ``credentialExpiries`` output (name -> RFC 3339) when known.
    """
    deployed = deployed or {}
    found = _secret_slots(stack, config, today, warn_days, deployed)
    found += _certificate(stack, config, today=today, warn_days=warn_days, pem=certificate_pem, deployed=deployed)
    found += [
        CredentialExpiry(stack, f.name, "federated", None, None, "no-expiry", "none", "no secret to expire")
        for f in config.federated
    ]
    return found
