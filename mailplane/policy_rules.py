"""Governance rules for mail apps: one implementation for the CrossGuard pack (``policy/``) and ``mailplane audit``.

Pure: no Pulumi import. Each rule is a function of plain values (an app's name, its permission names, its redirect
URIs, ...) returning violation messages; a message says what is wrong and how to fix it. Two thin adapters feed the
rules: :func:`resource_violations` / :func:`stack_violations` take engine resource properties (camelCase, as
CrossGuard and the mock engine see them), :func:`tenant_violations` takes a :class:`TenantConfig` and its
:class:`Grants` (the audit). The rules' names are the pack's policy names, and :class:`PolicySettings` reads the
same policy config file as ``pulumi preview --policy-pack-config``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailplane.grants import EXCHANGE_APPLICATION_ROLES, Grants
from mailplane.permissions import Permission, catalog
from mailplane.rotation import add_months, secret_generations

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from mailplane.tenant import TenantConfig

__all__ = [
    "APPLICATION",
    "APPLICATION_PASSWORD",
    "APP_ROLE_ASSIGNMENT",
    "HIGHEST_PRIVILEGE_LEVEL",
    "OPT_IN_SCOPING_MODES",
    "RULES",
    "PolicySettings",
    "PolicyViolation",
    "Rule",
    "application_permission_by_id",
    "highest_privilege_violations",
    "is_mailbox_permission",
    "owner_violations",
    "redirect_uri_violations",
    "resource_violations",
    "secret_lifetime_violations",
    "sign_in_audience_violations",
    "stack_violations",
    "tenant_violations",
    "tenant_wide_mail_violations",
]

APPLICATION = "azuread:index/application:Application"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"  # noqa: S105 - a type token.
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"

HIGHEST_PRIVILEGE_LEVEL = 4
SINGLE_TENANT = "AzureADMyOrg"
SCOPING_TAG_PREFIX = "mailplane:scoping="
# Scoping modes under which an application Mail.* grant in Entra is deliberate: "tenant-wide" is the explicit opt-in
# (with its acknowledgement sentence); "access-policy" keeps the Entra grant but an Exchange Application Access Policy
# limits it to a group's mailboxes. Under "rbac" (the default) an Entra grant would silently reach every mailbox.
OPT_IN_SCOPING_MODES = ("tenant-wide", "access-policy")
# Entra gives a password without an end date two years of life.
DEFAULT_PASSWORD_LIFETIME_MONTHS = 24


@dataclass(frozen=True)
class Rule:
    """A rule's name (the pack's policy name) and what it enforces."""

    name: str
    description: str


MAIL_SCOPING = Rule(
    "mail-scoping-opt-in",
    "No tenant-wide application Mail.* grant in Entra without the explicit scoping opt-in.",
)
SECRET_LIFETIME = Rule(
    "client-secret-lifetime",
    "Client secrets live at most maxLifetimeMonths (default 12).",
)
HTTPS_REDIRECTS = Rule(
    "https-redirect-uris",
    "Redirect URIs use https; plain http only for localhost.",
)
SINGLE_TENANT_AUDIENCE = Rule(
    "single-tenant-audience",
    "Apps are single-tenant (AzureADMyOrg) unless their display name is in allowedApps.",
)
APP_OWNERS = Rule(
    "app-has-owners",
    "Every app registration names at least one owner.",
)
HIGHEST_PRIVILEGE = Rule(
    "highest-privilege-allow-list",
    "Application permissions of Microsoft's highest privilege level (4) only from allowedPermissions.",
)
RULES: tuple[Rule, ...] = (
    MAIL_SCOPING,
    SECRET_LIFETIME,
    HTTPS_REDIRECTS,
    SINGLE_TENANT_AUDIENCE,
    APP_OWNERS,
    HIGHEST_PRIVILEGE,
)


@dataclass(frozen=True)
class PolicySettings:
    """The configurable parts of the rules (defaults are the strict ones)."""

    max_secret_lifetime_months: int = 12
    multi_tenant_apps: tuple[str, ...] = ()
    allowed_highest_privilege_permissions: tuple[str, ...] = ()

    @classmethod
    def from_policy_config(cls, config: Mapping[str, Any] | None) -> PolicySettings:
        """Read a policy config document: ``{"<rule name>": {<key>: <value>}}`` as the pack takes it."""
        config = config or {}
        lifetime = config.get(SECRET_LIFETIME.name) or {}
        audience = config.get(SINGLE_TENANT_AUDIENCE.name) or {}
        privilege = config.get(HIGHEST_PRIVILEGE.name) or {}
        return cls(
            max_secret_lifetime_months=int(lifetime.get("maxLifetimeMonths", cls.max_secret_lifetime_months)),
            multi_tenant_apps=tuple(audience.get("allowedApps", ())),
            allowed_highest_privilege_permissions=tuple(privilege.get("allowedPermissions", ())),
        )


@dataclass(frozen=True, order=True)
class PolicyViolation:
    """One violation: which rule and the message."""

    rule: str
    message: str


# -- the rules ---------------------------------------------------------------------------------------------------


def is_mailbox_permission(name: str) -> bool:
    """Whether an application permission reaches into mailboxes (``Mail.*`` and the other Exchange-scopable ones)."""
    return name.startswith("Mail.") or name in EXCHANGE_APPLICATION_ROLES


def tenant_wide_mail_violations(
    app: str, application_permissions: Iterable[str], scoping_mode: str | None
) -> list[str]:
    """Application ``Mail.*`` permissions granted in Entra reach every mailbox; they need the scoping opt-in."""
    mail = sorted({name for name in application_permissions if is_mailbox_permission(name)})
    if not mail or scoping_mode in OPT_IN_SCOPING_MODES:
        return []
    mode = f"scoping mode {scoping_mode!r}" if scoping_mode else "no mailplane:scoping tag"
    message = (
        f"{app}: grants {', '.join(mail)} (application) in Entra, which reaches every mailbox in the tenant, but the "
        f"app has {mode}. Use mailplane:scoping.mode 'rbac' so Exchange limits the app to the declared mailboxes, "
        "or opt in with mode 'tenant-wide' and its acknowledgement (Application tag 'mailplane:scoping=tenant-wide')."
    )
    return [message]


def secret_lifetime_violations(secret: str, starts: dt.date, expires: dt.date, max_months: int) -> list[str]:
    """Check that a client secret valid from ``starts`` to ``expires`` lives at most ``max_months``."""
    if expires <= add_months(starts, max_months):
        return []
    days = (expires - starts).days
    message = (
        f"{secret}: client secret is valid for {days} days ({starts.isoformat()} to {expires.isoformat()}), longer "
        f"than the {max_months}-month limit. Set mailplane:credentials.clientSecret.rotationPeriodMonths to at most "
        f"{max(max_months // 2, 1)} (each secret lives two periods), or use a certificate or federated credential."
    )
    return [message]


def _is_localhost(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redirect_uri_violations(app: str, redirect_uris: Iterable[str]) -> list[str]:
    """Check that redirect URIs (where authorization codes go) are https; plain http only for localhost."""
    violations = []
    for uri in redirect_uris:
        parts = urlsplit(uri)
        if parts.scheme == "https" and parts.hostname:
            continue
        if parts.scheme == "http" and _is_localhost(parts.hostname):
            continue
        fix = f"Use {'https' + uri[4:]!r}" if parts.scheme == "http" else "Use an absolute https URL"
        violations.append(
            f"{app}: redirect URI {uri!r} is not https, so authorization codes could travel in clear text. {fix} in "
            "mailplane:app.redirectUris (plain http is allowed only for localhost)."
        )
    return violations


def sign_in_audience_violations(app: str, audience: str | None, multi_tenant_apps: Iterable[str]) -> list[str]:
    """Only single-tenant apps, unless the app is allow-listed."""
    if audience in (None, SINGLE_TENANT) or app in set(multi_tenant_apps):
        return []
    message = (
        f"{app}: signInAudience is {audience!r}, so accounts outside this tenant can sign in. Set "
        f"mailplane:app.signInAudience to {SINGLE_TENANT!r}, or add {app!r} to allowedApps of the "
        f"{SINGLE_TENANT_AUDIENCE.name} policy config if it must be multi-tenant."
    )
    return [message]


def owner_violations(app: str, owners: Sequence[str]) -> list[str]:
    """Someone must be accountable for an app (and able to manage its credentials without a directory admin)."""
    if owners:
        return []
    message = (
        f"{app}: has no owners, so nobody is accountable for it and only directory admins can manage it. Add the "
        "object id of a responsible user or group under mailplane:app.owners."
    )
    return [message]


def highest_privilege_violations(
    app: str, application_permissions: Iterable[str], allowed: Iterable[str], *, resource: str = "microsoftGraph"
) -> list[str]:
    """Application permissions of privilege level 4 only when allow-listed."""
    allowed_names = set(allowed)
    violations = []
    for name in sorted(set(application_permissions)):
        facts = catalog().get(name, "application", resource)
        if facts is None or facts.privilege_level < HIGHEST_PRIVILEGE_LEVEL or name in allowed_names:
            continue
        violations.append(
            f"{app}: application permission {name!r} has Microsoft's highest privilege level "
            f"({HIGHEST_PRIVILEGE_LEVEL}) and is not on the allow-list. Use a narrower permission, or add it to "
            f"allowedPermissions of the {HIGHEST_PRIVILEGE.name} policy config after a security review."
        )
    return violations


# -- adapter: engine resource properties (the policy pack, the mock engine) -------------------------------------


@cache
def _application_permissions_by_id() -> dict[str, Permission]:
    graph = catalog()
    found: dict[str, Permission] = {}
    for resource in ("microsoftGraph", "exchangeOnline"):
        for name in graph.names("application", resource):
            permission = graph.require(name, "application", resource)
            found[permission.id.lower()] = permission
    return found


def application_permission_by_id(app_role_id: str) -> Permission | None:
    """Find the application permission with this app-role id (Graph and Exchange ids are global)."""
    return _application_permissions_by_id().get(str(app_role_id).lower())


def _known_str(value: Any) -> str | None:
    # Unknown values (a preview's computed inputs, the offline plan's markers) are not judged.
    if not isinstance(value, str) or value.startswith("[") or not value:
        return None
    return value


def _date(value: Any) -> dt.date | None:
    text = _known_str(value)
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text).date()
    except ValueError:
        return None


def _scoping_mode(tags: Any) -> str | None:
    for tag in tags or []:
        if isinstance(tag, str) and tag.startswith(SCOPING_TAG_PREFIX):
            return tag.removeprefix(SCOPING_TAG_PREFIX)
    return None


def _application_violations(props: Mapping[str, Any], settings: PolicySettings) -> list[PolicyViolation]:
    app = str(props.get("displayName") or "app registration")
    web = props.get("web") or {}
    found: list[PolicyViolation] = []
    found += [
        PolicyViolation(HTTPS_REDIRECTS.name, m) for m in redirect_uri_violations(app, web.get("redirectUris") or [])
    ]
    found += [
        PolicyViolation(SINGLE_TENANT_AUDIENCE.name, m)
        for m in sign_in_audience_violations(app, props.get("signInAudience"), settings.multi_tenant_apps)
    ]
    owners = props.get("owners") or []
    # CrossGuard hands lists over as read-only Sequence proxies, not lists.
    if isinstance(owners, Sequence) and not isinstance(owners, str):
        found += [PolicyViolation(APP_OWNERS.name, m) for m in owner_violations(app, list(owners))]
    return found


def _password_violations(
    name: str, props: Mapping[str, Any], settings: PolicySettings, today: dt.date
) -> list[PolicyViolation]:
    starts = _date(props.get("startDate")) or today  # Without a start date, Entra starts the secret on creation.
    if props.get("endDate") is not None:
        expires = _date(props.get("endDate"))
        if expires is None:
            return []
    elif props.get("endDateRelative") is not None:
        relative = str(props["endDateRelative"])
        if not relative.endswith("h") or not relative[:-1].isdigit():
            return []
        expires = starts + dt.timedelta(hours=int(relative[:-1]))
    else:
        expires = add_months(starts, DEFAULT_PASSWORD_LIFETIME_MONTHS)
    secret = str(props.get("displayName") or name)
    messages = secret_lifetime_violations(secret, starts, expires, settings.max_secret_lifetime_months)
    return [PolicyViolation(SECRET_LIFETIME.name, m) for m in messages]


def _app_role_assignment_violations(
    name: str, props: Mapping[str, Any], settings: PolicySettings
) -> list[PolicyViolation]:
    role_id = _known_str(props.get("appRoleId"))
    permission = application_permission_by_id(role_id) if role_id else None
    if permission is None:
        return []
    messages = highest_privilege_violations(
        name, [permission.name], settings.allowed_highest_privilege_permissions, resource=permission.resource
    )
    return [PolicyViolation(HIGHEST_PRIVILEGE.name, m) for m in messages]


def resource_violations(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    name: str = "",
    settings: PolicySettings | None = None,
    today: dt.date | None = None,
) -> list[PolicyViolation]:
    """Run the per-resource rules on one resource's engine properties (camelCase)."""
    settings = settings or PolicySettings()
    today = today or dt.datetime.now(dt.UTC).date()
    if resource_type == APPLICATION:
        return _application_violations(props, settings)
    if resource_type == APPLICATION_PASSWORD:
        return _password_violations(name, props, settings, today)
    if resource_type == APP_ROLE_ASSIGNMENT:
        return _app_role_assignment_violations(name, props, settings)
    return []


def stack_violations(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[PolicyViolation]:
    """Run the rules that need the whole stack: ``Mail.*`` app-role assignments against the app's scoping tag.

    A mailplane stack declares one app, so the stack's Application tags decide for every assignment in it.
    """
    resources = list(resources)
    applications = [props for typ, props in resources if typ == APPLICATION]
    granted = []
    for typ, props in resources:
        if typ != APP_ROLE_ASSIGNMENT:
            continue
        role_id = _known_str(props.get("appRoleId"))
        permission = application_permission_by_id(role_id) if role_id else None
        if permission is not None and permission.resource == "microsoftGraph":
            granted.append(permission.name)
    if not granted:
        return []
    if not applications:
        return [PolicyViolation(MAIL_SCOPING.name, m) for m in tenant_wide_mail_violations("the stack", granted, None)]
    found = []
    for props in applications:
        app = str(props.get("displayName") or "app registration")
        messages = tenant_wide_mail_violations(app, granted, _scoping_mode(props.get("tags")))
        found += [PolicyViolation(MAIL_SCOPING.name, m) for m in messages]
    return found


# -- adapter: a tenant config and its grants (the audit) --------------------------------------------------------


def tenant_violations(
    config: TenantConfig, grants: Grants, *, settings: PolicySettings | None = None, today: dt.date
) -> list[PolicyViolation]:
    """Every rule, judged on what a stack declares (before any resource exists)."""
    settings = settings or PolicySettings()
    app = config.display_name
    application = grants.entra_names("application")
    found: list[PolicyViolation] = []
    found += [
        PolicyViolation(MAIL_SCOPING.name, m)
        for m in tenant_wide_mail_violations(app, application, config.scoping_mode)
    ]
    if config.client_secret:
        secret = config.client_secret
        anchor_today = max(today, secret.anchor_date)
        for generation in secret_generations(secret.anchor_date, secret.rotation_period_months, anchor_today)[:1]:
            messages = secret_lifetime_violations(
                f"{app} ({generation.display_name})",
                generation.starts,
                generation.expires,
                settings.max_secret_lifetime_months,
            )
            found += [PolicyViolation(SECRET_LIFETIME.name, m) for m in messages]
    found += [PolicyViolation(HTTPS_REDIRECTS.name, m) for m in redirect_uri_violations(app, config.redirect_uris)]
    found += [
        PolicyViolation(SINGLE_TENANT_AUDIENCE.name, m)
        for m in sign_in_audience_violations(app, config.sign_in_audience, settings.multi_tenant_apps)
    ]
    found += [PolicyViolation(APP_OWNERS.name, m) for m in owner_violations(app, config.owners)]
    found += [
        PolicyViolation(HIGHEST_PRIVILEGE.name, m)
        for m in highest_privilege_violations(app, application, settings.allowed_highest_privilege_permissions)
    ]
    return found
