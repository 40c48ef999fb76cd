"""The one pure function from a tenant config to grants.

:func:`compute_grants` decides which Entra permissions the app holds (application roles and delegated scopes, by
name), which Exchange RBAC application roles are assigned on which mailboxes, and which credentials exist. The Pulumi
components, the policy pack, the offline plan and the pull-request audit all call it, so they cannot disagree.

The rule that matters most: with ``rbac`` scoping, mailbox-scopable application permissions (``Mail.*``,
``MailboxSettings.*``, ``Calendars.*``, ``Contacts.*``) are **not** granted in Entra. Exchange adds RBAC grants to
Entra grants (a union), so an Entra grant would silently give the app every mailbox in the tenant; instead they
become Exchange application roles scoped to the declared mailboxes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mailplane.permissions import PermissionType, catalog
from mailplane.tenant import PRESET_MAILBOXES, PRESETS, ScopingMode, TenantConfig

__all__ = [
    "EXCHANGE_APPLICATION_ROLES",
    "CredentialGrant",
    "EntraGrant",
    "ExchangeRoleGrant",
    "Grants",
    "compute_grants",
]

# Graph application permissions that Exchange can scope to mailboxes, and the RBAC for Applications role that
# replaces each one (Exchange Online "application RBAC" role table).
EXCHANGE_APPLICATION_ROLES: dict[str, str] = {
    "Mail.Read": "Application Mail.Read",
    "Mail.ReadBasic.All": "Application Mail.ReadBasic",
    "Mail.ReadWrite": "Application Mail.ReadWrite",
    "Mail.Send": "Application Mail.Send",
    "MailboxSettings.Read": "Application MailboxSettings.Read",
    "MailboxSettings.ReadWrite": "Application MailboxSettings.ReadWrite",
    "Calendars.Read": "Application Calendars.Read",
    "Calendars.ReadWrite": "Application Calendars.ReadWrite",
    "Contacts.Read": "Application Contacts.Read",
    "Contacts.ReadWrite": "Application Contacts.ReadWrite",
}


@dataclass(frozen=True, order=True)
class EntraGrant:
    """A Microsoft Graph permission granted (admin-consented) in Entra ID."""

    name: str
    type: PermissionType
    privilege_level: int
    admin_consent: bool
    source: str = field(compare=False)  # "preset:<name>" or "permissions"


@dataclass(frozen=True, order=True)
class ExchangeRoleGrant:
    """An Exchange RBAC for Applications role assigned to the app, scoped to mailboxes."""

    role: str
    permission: str
    mailboxes: tuple[str, ...]


@dataclass(frozen=True, order=True)
class CredentialGrant:
    """A credential the app registration carries."""

    kind: str  # "client-secret", "certificate" or "federated"
    name: str
    rotation_period_months: int | None = None
    anchor_date: str | None = None
    issuer: str | None = None
    subject: str | None = None


@dataclass(frozen=True)
class Grants:
    """Everything a tenant stack grants, in a reviewable, comparable form."""

    tenant_id: str
    app_display_name: str
    sign_in_audience: str
    redirect_uris: tuple[str, ...]
    owners: tuple[str, ...]
    scoping_mode: ScopingMode
    application: tuple[EntraGrant, ...]
    delegated: tuple[EntraGrant, ...]
    exchange_roles: tuple[ExchangeRoleGrant, ...]
    scoped_mailboxes: tuple[str, ...]
    tenant_wide_mail: tuple[str, ...]
    credentials: tuple[CredentialGrant, ...]
    out_of_scope_mailbox: str | None = None

    def entra_names(self, type_: PermissionType) -> list[str]:
        """Names of the Entra grants of one type, sorted."""
        grants = self.application if type_ == "application" else self.delegated
        return [g.name for g in grants]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready rendering (stack output, plan --json, audit)."""
        return {
            "tenantId": self.tenant_id,
            "app": {
                "displayName": self.app_display_name,
                "signInAudience": self.sign_in_audience,
                "redirectUris": list(self.redirect_uris),
                "owners": list(self.owners),
            },
            "scopingMode": self.scoping_mode,
            "entra": {
                "application": [_grant_dict(g) for g in self.application],
                "delegated": [_grant_dict(g) for g in self.delegated],
            },
            "exchange": {
                "roles": [
                    {"role": r.role, "permission": r.permission, "mailboxes": list(r.mailboxes)}
                    for r in self.exchange_roles
                ],
                "scopedMailboxes": list(self.scoped_mailboxes),
                "outOfScopeMailbox": self.out_of_scope_mailbox,
            },
            "tenantWideMail": list(self.tenant_wide_mail),
            "credentials": [{_camel(k): v for k, v in asdict(c).items() if v is not None} for c in self.credentials],
        }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _grant_dict(grant: EntraGrant) -> dict[str, Any]:
    return {
        "name": grant.name,
        "type": grant.type,
        "privilegeLevel": grant.privilege_level,
        "adminConsent": grant.admin_consent,
        "source": grant.source,
    }


def compute_grants(config: TenantConfig) -> Grants:
    """Turn a validated tenant config into the grants it declares. Pure and deterministic."""
    requested: dict[tuple[str, PermissionType], str] = {}
    scoped: dict[str, set[str]] = {}

    for preset in config.presets:
        which = PRESET_MAILBOXES.get(preset)
        preset_mailboxes = _preset_mailboxes(config, which)
        for name, type_ in PRESETS[preset]:
            requested.setdefault((name, type_), f"preset:{preset}")
            if type_ == "application" and name in EXCHANGE_APPLICATION_ROLES:
                scoped.setdefault(name, set()).update(preset_mailboxes)
    for request in config.permissions:
        requested.setdefault((request.name, request.type), "permissions")
        if request.type == "application" and request.name in EXCHANGE_APPLICATION_ROLES:
            mailboxes = request.mailboxes if request.mailboxes is not None else config.mailboxes
            scoped.setdefault(request.name, set()).update(mailboxes)

    application: list[EntraGrant] = []
    delegated: list[EntraGrant] = []
    for (name, type_), source in requested.items():
        facts = catalog().require(name, type_)
        grant = EntraGrant(name, type_, facts.privilege_level, facts.admin_consent, source)
        if type_ == "delegated":
            delegated.append(grant)
        elif name in EXCHANGE_APPLICATION_ROLES and config.scoping_mode == "rbac":
            continue  # Becomes an Exchange scoped role instead; an Entra grant would make it tenant-wide.
        else:
            application.append(grant)

    exchange_roles: tuple[ExchangeRoleGrant, ...] = ()
    if config.scoping_mode == "rbac":
        exchange_roles = tuple(
            sorted(
                ExchangeRoleGrant(EXCHANGE_APPLICATION_ROLES[name], name, tuple(sorted(mailboxes)))
                for name, mailboxes in scoped.items()
            )
        )
    scoped_mailboxes = tuple(sorted(set().union(*scoped.values()))) if scoped else ()
    tenant_wide = tuple(sorted(scoped)) if config.scoping_mode == "tenant-wide" else ()

    return Grants(
        tenant_id=config.tenant_id,
        app_display_name=config.display_name,
        sign_in_audience=config.sign_in_audience,
        redirect_uris=config.redirect_uris,
        owners=config.owners,
        scoping_mode=config.scoping_mode,
        application=tuple(sorted(application)),
        delegated=tuple(sorted(delegated)),
        exchange_roles=exchange_roles,
        scoped_mailboxes=scoped_mailboxes if config.scoping_mode != "tenant-wide" else (),
        tenant_wide_mail=tenant_wide,
        credentials=_credentials(config),
        out_of_scope_mailbox=config.out_of_scope_mailbox,
    )


def _preset_mailboxes(config: TenantConfig, which: str | None) -> tuple[str, ...]:
    if which == "designated":
        return (config.designated_mailbox,) if config.designated_mailbox else ()
    if which == "shared":
        return tuple(m.address for m in config.shared_mailboxes)
    return ()


def _credentials(config: TenantConfig) -> tuple[CredentialGrant, ...]:
    credentials: list[CredentialGrant] = []
    if config.client_secret:
        credentials.append(
            CredentialGrant(
                kind="client-secret",
                name="client-secret",
                rotation_period_months=config.client_secret.rotation_period_months,
                anchor_date=config.client_secret.anchor_date.isoformat(),
            )
        )
    if config.certificate:
        credentials.append(CredentialGrant(kind="certificate", name=config.certificate.pem_config_key))
    credentials.extend(
        CredentialGrant(kind="federated", name=f.name, issuer=f.issuer, subject=f.subject) for f in config.federated
    )
    return tuple(credentials)
