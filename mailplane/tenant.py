"""The tenant config: the ``mailplane:*`` keys of one ``stacks/Pulumi.<tenant>.yaml``, validated and typed.

Pure: no Pulumi import. ``components/config.py`` (the only module that reads ``pulumi.Config``), ``mailplane plan``,
the audit and the policy pack all go through :func:`parse_tenant_config`, so they accept and reject the same files.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from mailplane.exceptions import ConfigProblem, TenantConfigError
from mailplane.permissions import PermissionType, catalog
from mailplane.schema import schema_problems

__all__ = [
    "CONFIG_NAMESPACE",
    "PRESETS",
    "TENANT_KEYS",
    "TENANT_WIDE_ACKNOWLEDGEMENT",
    "UNREADABLE_SECRET",
    "CertificateSettings",
    "ClientSecretSettings",
    "FederatedCredentialSettings",
    "PermissionRequest",
    "ScopingMode",
    "SecretValue",
    "SharedMailbox",
    "SharedMailboxMember",
    "TenantConfig",
    "load_stack_file",
    "parse_tenant_config",
]

CONFIG_NAMESPACE = "mailplane"
SCHEMA = "tenant.schema.json"
TENANT_KEYS = ("tenant", "app", "presets", "permissions", "mailboxes", "scoping", "credentials")
TENANT_WIDE_ACKNOWLEDGEMENT = "this app may read and send as every mailbox in the tenant"

ScopingMode = Literal["rbac", "access-policy", "tenant-wide"]

# What each preset grants, by permission name and type. The README table is generated from this and the catalog.
PRESETS: dict[str, tuple[tuple[str, PermissionType], ...]] = {
    "outbound-send": (("Mail.Send", "application"),),
    "inbound-import": (("Mail.ReadWrite", "application"), ("User.Read", "delegated")),
    "delegated-imap-smtp": (
        ("User.Read", "delegated"),
        ("IMAP.AccessAsUser.All", "delegated"),
        ("SMTP.Send", "delegated"),
        ("offline_access", "delegated"),
    ),
    "delegated-graph-sync": (
        ("openid", "delegated"),
        ("profile", "delegated"),
        ("email", "delegated"),
        ("User.Read", "delegated"),
        ("offline_access", "delegated"),
        ("Mail.Read", "delegated"),
        ("Mail.Send", "delegated"),
    ),
}
# Presets whose application permissions are scoped to which declared mailboxes.
PRESET_MAILBOXES = {"outbound-send": "designated", "inbound-import": "shared"}


UNREADABLE_SECRET = "mailplane:unreadable-secret"  # noqa: S105 - a marker, not a secret.
"""What a ``secure:`` stack value becomes where it cannot be decrypted (the offline plan): consumers treat it as
"known only at deploy time" instead of parsing it."""


@dataclass(frozen=True)
class SecretValue:
    """A config value stored encrypted in the stack file (``secure: ...``); it cannot be read offline."""

    ciphertext: str = field(repr=False)

    def __str__(self) -> str:
        """Never the ciphertext: a placeholder."""
        return "[secret]"


@dataclass(frozen=True)
class PermissionRequest:
    """An extra permission asked for by name in ``mailplane:permissions``."""

    name: str
    type: PermissionType
    mailboxes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SharedMailboxMember:
    """A user with rights on a shared mailbox."""

    user: str
    full_access: bool = True
    send_as: bool = False
    auto_mapping: bool = False


@dataclass(frozen=True)
class SharedMailbox:
    """A shared mailbox the integration imports from."""

    address: str
    display_name: str
    create: bool = True
    remove_on_delete: bool = False
    members: tuple[SharedMailboxMember, ...] = ()


@dataclass(frozen=True)
class ClientSecretSettings:
    """Rotating client secrets: anchor date and rotation period."""

    anchor_date: dt.date
    rotation_period_months: int = 6


@dataclass(frozen=True)
class CertificateSettings:
    """A certificate credential whose PEM is in the secret config key ``pem_config_key``."""

    pem_config_key: str = "certificatePem"


@dataclass(frozen=True)
class FederatedCredentialSettings:
    """A federated identity credential (workload identity federation)."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = ("api://AzureADTokenExchange",)
    description: str | None = None


@dataclass(frozen=True)
class TenantConfig:
    """A validated tenant config. Build it with :func:`parse_tenant_config`."""

    tenant_id: str
    primary_domain: str
    display_name: str
    sign_in_audience: str = "AzureADMyOrg"
    owners: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    notes: str | None = None
    presets: tuple[str, ...] = ()
    permissions: tuple[PermissionRequest, ...] = ()
    designated_mailbox: str | None = None
    shared_mailboxes: tuple[SharedMailbox, ...] = ()
    scoping_mode: ScopingMode = "rbac"
    out_of_scope_mailbox: str | None = None
    access_policy_group_alias: str | None = None
    access_policy_group_display_name: str | None = None
    client_secret: ClientSecretSettings | None = None
    certificate: CertificateSettings | None = None
    federated: tuple[FederatedCredentialSettings, ...] = ()
    source: str = "<config>"

    @property
    def mailboxes(self) -> tuple[str, ...]:
        """Every mailbox the stack declares (designated first, then shared), without duplicates."""
        seen: dict[str, None] = {}
        if self.designated_mailbox:
            seen[self.designated_mailbox.lower()] = None
        for mailbox in self.shared_mailboxes:
            seen[mailbox.address.lower()] = None
        return tuple(seen)


def load_stack_file(path: str | Path) -> dict[str, Any]:
    """Read the ``mailplane:*`` keys of a stack file, namespace stripped; secure values become :class:`SecretValue`.

    Raises :class:`TenantConfigError` when the file is missing or is not a Pulumi stack file.
    """
    path = Path(path)
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TenantConfigError(
            source, [ConfigProblem((), "file not found. Create it with 'pulumi stack init' or copy an example.")]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TenantConfigError(
            source, [ConfigProblem((), f"is not valid YAML{where}: {exc}. Fix the syntax.")]
        ) from None
    if document is None:
        document = {}
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise TenantConfigError(
            source, [ConfigProblem((), "is not a Pulumi stack file: expected a mapping with a 'config:' mapping.")]
        )
    raw: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        namespace, _, name = str(key).partition(":")
        if namespace != CONFIG_NAMESPACE or not name:
            continue
        raw[name] = _unwrap_secure(value)
    return raw


def _unwrap_secure(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SecretValue(str(value["secure"]))
        return {k: _unwrap_secure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secure(v) for v in value]
    return value


def _secret_key_names(raw: dict[str, Any]) -> set[str]:
    names = {"certificatePem"}
    credentials = raw.get("credentials")
    if isinstance(credentials, dict) and isinstance(credentials.get("certificate"), dict):
        key = credentials["certificate"].get("pemConfigKey")
        if isinstance(key, str):
            names.add(key)
    return names


def parse_tenant_config(
    raw: dict[str, Any],
    *,
    source: str = "<config>",
    today: dt.date | None = None,
) -> TenantConfig:
    """Validate the ``mailplane:*`` keys (namespace stripped) and return a :class:`TenantConfig`.

    Runs the JSON Schema first, then the semantic checks (permission names against the catalog, duplicates,
    redirect URIs, conflicting options). Raises one :class:`TenantConfigError` listing every problem.
    ``today`` is used for date checks (default: the current UTC date).
    """
    today = today or dt.datetime.now(dt.UTC).date()
    secret_keys = _secret_key_names(raw)
    instance = {k: v for k, v in raw.items() if k not in secret_keys}
    problems = schema_problems(SCHEMA, instance)
    if problems:
        raise TenantConfigError(source, problems)
    problems = _semantic_problems(instance, today)
    if problems:
        raise TenantConfigError(source, problems)
    return _build(instance, source)


def _semantic_problems(raw: dict[str, Any], today: dt.date) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    problems += _permission_problems(raw)
    problems += _redirect_uri_problems(raw)
    problems += _mailbox_problems(raw)
    problems += _scoping_problems(raw)
    problems += _credential_problems(raw, today)
    problems += _preset_problems(raw)
    return problems


def _permission_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    problems = []
    seen: dict[tuple[str, str], int] = {}
    preset_grants = {grant for preset in raw.get("presets", []) for grant in PRESETS[preset]}
    for index, entry in enumerate(raw.get("permissions", [])):
        name, type_ = entry["name"], entry["type"]
        path: tuple[str | int, ...] = ("permissions", index)
        if catalog().get(name, type_) is None:
            problems.append(ConfigProblem((*path, "name"), catalog().explain_unknown(name, type_), name))
            continue
        key = (name, type_)
        if key in seen:
            problems.append(
                ConfigProblem(path, f"{name} ({type_}) is listed twice (also at index {seen[key]}). Remove one.", entry)
            )
        elif key in preset_grants and "mailboxes" not in entry:
            problems.append(
                ConfigProblem(path, f"{name} ({type_}) is already granted by a preset. Remove this entry.", entry)
            )
        seen.setdefault(key, index)
        if "mailboxes" in entry and type_ == "delegated":
            problems.append(
                ConfigProblem(
                    (*path, "mailboxes"),
                    "mailboxes applies only to application permissions; a delegated permission acts as the "
                    "signed-in user. Remove 'mailboxes'.",
                    entry["mailboxes"],
                )
            )
    return problems


def _is_localhost(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redirect_uri_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    problems = []
    for index, uri in enumerate(raw.get("app", {}).get("redirectUris", [])):
        path = ("app", "redirectUris", index)
        parts = urlsplit(uri)
        if parts.scheme == "https" and parts.hostname:
            if "*" in uri:
                problems.append(ConfigProblem(path, f"{uri!r}: wildcards are not allowed in redirect URIs.", uri))
            continue
        if parts.scheme == "http" and _is_localhost(parts.hostname):
            continue
        if parts.scheme == "http":
            fixed = "https" + uri[4:]
            problems.append(
                ConfigProblem(
                    path,
                    f"{uri!r} uses plain http; Web redirect URIs must be https (http only for localhost). "
                    f"Use {fixed!r}.",
                    uri,
                )
            )
        else:
            problems.append(
                ConfigProblem(
                    path, f"{uri!r} is not an absolute https URL (e.g. https://app.example.com/callback).", uri
                )
            )
    return problems


def _mailbox_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    problems = []
    mailboxes = raw.get("mailboxes", {})
    designated = str(mailboxes.get("designated", "")).lower()
    seen: dict[str, int] = {}
    for index, shared in enumerate(mailboxes.get("shared", [])):
        address = shared["address"].lower()
        path: tuple[str | int, ...] = ("mailboxes", "shared", index, "address")
        if address in seen:
            problems.append(
                ConfigProblem(
                    path, f"{shared['address']!r} is declared twice (also at index {seen[address]}).", address
                )
            )
        seen.setdefault(address, index)
        if address == designated:
            problems.append(
                ConfigProblem(
                    path,
                    f"{shared['address']!r} is also the designated sending mailbox. Use a separate mailbox for "
                    "system mail, or remove it from 'shared'.",
                    address,
                )
            )
        users: dict[str, int] = {}
        for member_index, member in enumerate(shared.get("members", [])):
            user = member["user"].lower()
            member_path = ("mailboxes", "shared", index, "members", member_index, "user")
            if user in users:
                problems.append(
                    ConfigProblem(member_path, f"{member['user']!r} is listed twice; merge the two entries.", user)
                )
            users.setdefault(user, member_index)
            if not member.get("fullAccess", True) and not member.get("sendAs", False):
                problems.append(
                    ConfigProblem(
                        member_path[:-1],
                        f"{member['user']!r} gets neither fullAccess nor sendAs. Grant one or remove the member.",
                        member,
                    )
                )
    for index, entry in enumerate(raw.get("permissions", [])):
        for mailbox_index, mailbox in enumerate(entry.get("mailboxes", [])):
            if mailbox.lower() not in seen and mailbox.lower() != designated:
                problems.append(
                    ConfigProblem(
                        ("permissions", index, "mailboxes", mailbox_index),
                        f"{mailbox!r} is not declared under mailplane:mailboxes. Declare it as the designated or a "
                        "shared mailbox first.",
                        mailbox,
                    )
                )
    return problems


def _scoping_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    scoping = raw.get("scoping", {})
    mode = scoping.get("mode", "rbac")
    acknowledgement = scoping.get("tenantWideAcknowledgement")
    problems = []
    if mode == "tenant-wide" and acknowledgement != TENANT_WIDE_ACKNOWLEDGEMENT:
        problems.append(
            ConfigProblem(
                ("scoping", "tenantWideAcknowledgement"),
                f"tenant-wide mode needs the exact sentence {TENANT_WIDE_ACKNOWLEDGEMENT!r}, got {acknowledgement!r}. "
                "Prefer mode 'rbac', which limits the app to the declared mailboxes.",
                acknowledgement,
            )
        )
    if mode != "tenant-wide" and acknowledgement is not None:
        problems.append(
            ConfigProblem(
                ("scoping", "tenantWideAcknowledgement"),
                f"is set but mode is {mode!r}; the acknowledgement only goes with mode 'tenant-wide'. Remove it.",
                acknowledgement,
            )
        )
    if "accessPolicyGroup" in scoping and mode != "access-policy":
        problems.append(
            ConfigProblem(
                ("scoping", "accessPolicyGroup"),
                f"only applies to mode 'access-policy' (mode is {mode!r}). Remove it.",
                scoping["accessPolicyGroup"],
            )
        )
    out_of_scope = str(scoping.get("outOfScopeMailbox", "")).lower()
    mailboxes = raw.get("mailboxes", {})
    declared = {str(mailboxes.get("designated", "")).lower()} | {
        m["address"].lower() for m in mailboxes.get("shared", [])
    }
    if out_of_scope and out_of_scope in declared:
        problems.append(
            ConfigProblem(
                ("scoping", "outOfScopeMailbox"),
                f"{out_of_scope!r} is one of the scoped mailboxes; pick a mailbox the app must NOT reach.",
                out_of_scope,
            )
        )
    return problems


def _credential_problems(raw: dict[str, Any], today: dt.date) -> list[ConfigProblem]:
    credentials = raw.get("credentials")
    problems: list[ConfigProblem] = []
    if credentials is None:
        return [
            ConfigProblem(
                ("credentials",),
                "no credential declared. Add clientSecret, certificate or federated (federated needs no secret).",
            )
        ]
    secret = credentials.get("clientSecret")
    if secret is not None:
        anchor = dt.date.fromisoformat(secret["anchorDate"])
        if anchor > today:
            problems.append(
                ConfigProblem(
                    ("credentials", "clientSecret", "anchorDate"),
                    f"{secret['anchorDate']!r} is in the future, so no secret would be valid today. Use today's date "
                    f"({today.isoformat()}) or earlier.",
                    secret["anchorDate"],
                )
            )
    names: dict[str, int] = {}
    subjects: dict[tuple[str, str], int] = {}
    for index, fic in enumerate(credentials.get("federated", [])):
        if fic["name"] in names:
            problems.append(
                ConfigProblem(
                    ("credentials", "federated", index, "name"),
                    f"{fic['name']!r} is used twice (also at index {names[fic['name']]}); names must be unique.",
                    fic["name"],
                )
            )
        names.setdefault(fic["name"], index)
        pair = (fic["issuer"], fic["subject"])
        if pair in subjects:
            problems.append(
                ConfigProblem(
                    ("credentials", "federated", index, "subject"),
                    f"issuer and subject repeat entry {subjects[pair]}; Entra rejects duplicate pairs.",
                    fic["subject"],
                )
            )
        subjects.setdefault(pair, index)
    audience = raw.get("app", {}).get("signInAudience", "AzureADMyOrg")
    if credentials.get("federated") and audience in ("AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount"):
        problems.append(
            ConfigProblem(
                ("credentials", "federated"),
                f"federated credentials are not supported for apps with signInAudience {audience!r}. Use "
                "AzureADMyOrg or AzureADMultipleOrgs, or a certificate.",
            )
        )
    return problems


def _preset_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    presets = raw.get("presets", [])
    mailboxes = raw.get("mailboxes", {})
    problems = []
    if not presets and not raw.get("permissions"):
        problems.append(
            ConfigProblem(("presets",), "grants nothing: pick at least one preset or list permissions by name.", [])
        )
    if "outbound-send" in presets and not mailboxes.get("designated"):
        problems.append(
            ConfigProblem(
                ("mailboxes", "designated"),
                "preset 'outbound-send' needs the designated sending mailbox. Set mailplane:mailboxes.designated.",
            )
        )
    if "inbound-import" in presets and not mailboxes.get("shared"):
        problems.append(
            ConfigProblem(
                ("mailboxes", "shared"),
                "preset 'inbound-import' needs at least one shared mailbox. Add one under mailplane:mailboxes.shared.",
            )
        )
    delegated = [p for p in presets if p.startswith("delegated-")]
    if delegated and not raw.get("app", {}).get("redirectUris"):
        problems.append(
            ConfigProblem(
                ("app", "redirectUris"),
                f"preset {delegated[0]!r} signs users in and needs a Web redirect URI. Add one under "
                "mailplane:app.redirectUris.",
            )
        )
    credentials = raw.get("credentials") or {}
    if "delegated-imap-smtp" in presets and not (credentials.get("clientSecret") or credentials.get("certificate")):
        problems.append(
            ConfigProblem(
                ("credentials",),
                "preset 'delegated-imap-smtp' runs a Web sign-in and needs a clientSecret or certificate.",
            )
        )
    application_grants = any(t == "application" for p in presets for _, t in PRESETS[p]) or any(
        e["type"] == "application" for e in raw.get("permissions", [])
    )
    if not application_grants and raw.get("scoping"):
        problems.append(
            ConfigProblem(
                ("scoping",),
                "the stack grants no application permission, so there is nothing to scope. Remove mailplane:scoping.",
            )
        )
    return problems


def _build(raw: dict[str, Any], source: str) -> TenantConfig:
    tenant, app = raw["tenant"], raw["app"]
    mailboxes = raw.get("mailboxes", {})
    scoping = raw.get("scoping", {})
    credentials = raw.get("credentials", {})
    secret = credentials.get("clientSecret")
    certificate = credentials.get("certificate")
    group = scoping.get("accessPolicyGroup", {})
    return TenantConfig(
        tenant_id=tenant["id"].lower(),
        primary_domain=tenant["primaryDomain"].lower(),
        display_name=app["displayName"],
        sign_in_audience=app.get("signInAudience", "AzureADMyOrg"),
        owners=tuple(o.lower() for o in app.get("owners", [])),
        redirect_uris=tuple(app.get("redirectUris", [])),
        notes=app.get("notes"),
        presets=tuple(raw.get("presets", [])),
        permissions=tuple(
            PermissionRequest(
                name=e["name"],
                type=e["type"],
                mailboxes=tuple(m.lower() for m in e["mailboxes"]) if "mailboxes" in e else None,
            )
            for e in raw.get("permissions", [])
        ),
        designated_mailbox=mailboxes["designated"].lower() if mailboxes.get("designated") else None,
        shared_mailboxes=tuple(
            SharedMailbox(
                address=m["address"].lower(),
                display_name=m.get("displayName") or m["address"].split("@")[0],
                create=m.get("create", True),
                remove_on_delete=m.get("removeOnDelete", False),
                members=tuple(
                    SharedMailboxMember(
                        user=u["user"].lower(),
                        full_access=u.get("fullAccess", True),
                        send_as=u.get("sendAs", False),
                        auto_mapping=u.get("autoMapping", False),
                    )
                    for u in m.get("members", [])
                ),
            )
            for m in mailboxes.get("shared", [])
        ),
        scoping_mode=scoping.get("mode", "rbac"),
        out_of_scope_mailbox=scoping["outOfScopeMailbox"].lower() if scoping.get("outOfScopeMailbox") else None,
        access_policy_group_alias=group.get("alias"),
        access_policy_group_display_name=group.get("displayName"),
        client_secret=ClientSecretSettings(
            anchor_date=dt.date.fromisoformat(secret["anchorDate"]),
            rotation_period_months=secret.get("rotationPeriodMonths", 6),
        )
        if secret
        else None,
        certificate=CertificateSettings(pem_config_key=certificate.get("pemConfigKey", "certificatePem"))
        if certificate is not None
        else None,
        federated=tuple(
            FederatedCredentialSettings(
                name=f["name"],
                issuer=f["issuer"],
                subject=f["subject"],
                audiences=tuple(f.get("audiences", ["api://AzureADTokenExchange"])),
                description=f.get("description"),
            )
            for f in credentials.get("federated", [])
        ),
        source=source,
    )
