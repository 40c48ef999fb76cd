"""Typed views of the Exchange objects mailplane reads back from cmdlets.

Each class is built from one row of an ``InvokeCommand`` answer (PascalCase cmdlet properties) by ``from_row``; the
row itself is kept in ``raw`` for properties not modelled here. Booleans and lists arrive in several spellings
(``true``, ``"True"``, a bare string for a one-element list), so the helpers below normalise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AccessPolicy",
    "AccessPolicyCheck",
    "AuthorizationCheck",
    "DistributionGroup",
    "Mailbox",
    "MailboxPermissionEntry",
    "ManagementScope",
    "Recipient",
    "RecipientPermissionEntry",
    "RoleAssignment",
    "ServicePrincipalPointer",
]


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _flag(row: dict[str, Any], key: str, default: bool = False) -> bool:
    value = row.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _list(row: dict[str, Any], key: str) -> tuple[str, ...]:
    value = row.get(key)
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    # Older serialisations join enum flags with ", " (e.g. "FullAccess, ReadPermission").
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


@dataclass(frozen=True)
class ServicePrincipalPointer:
    """``Get-ServicePrincipal``: Exchange's pointer to an Entra enterprise application."""

    identity: str
    app_id: str
    object_id: str
    display_name: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ServicePrincipalPointer:
        """Build from a cmdlet row."""
        return cls(
            identity=_text(row, "Identity"),
            app_id=_text(row, "AppId").lower(),
            object_id=_text(row, "ObjectId").lower(),
            display_name=_text(row, "DisplayName"),
            raw=row,
        )


@dataclass(frozen=True)
class ManagementScope:
    """``Get-ManagementScope``: a named recipient filter."""

    name: str
    recipient_restriction_filter: str
    exclusive: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ManagementScope:
        """Build from a cmdlet row."""
        return cls(
            name=_text(row, "Name"),
            recipient_restriction_filter=_text(row, "RecipientFilter") or _text(row, "RecipientRestrictionFilter"),
            exclusive=_flag(row, "Exclusive"),
            raw=row,
        )


@dataclass(frozen=True)
class RoleAssignment:
    """``Get-ManagementRoleAssignment``: a role given to an app (or user/group) with a write scope."""

    name: str
    role: str
    role_assignee: str
    role_assignee_type: str
    custom_resource_scope: str
    recipient_write_scope: str
    enabled: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RoleAssignment:
        """Build from a cmdlet row."""
        return cls(
            name=_text(row, "Name"),
            role=_text(row, "Role"),
            role_assignee=_text(row, "RoleAssignee") or _text(row, "RoleAssigneeName"),
            role_assignee_type=_text(row, "RoleAssigneeType"),
            custom_resource_scope=_text(row, "CustomResourceScope"),
            recipient_write_scope=_text(row, "RecipientWriteScope"),
            enabled=_flag(row, "Enabled", default=True),
            raw=row,
        )


@dataclass(frozen=True)
class AccessPolicy:
    """``Get-ApplicationAccessPolicy``: a legacy application access policy."""

    identity: str
    app_id: str
    scope_name: str
    scope_identity: str
    access_right: str
    description: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccessPolicy:
        """Build from a cmdlet row."""
        app_ids = _list(row, "AppId")
        return cls(
            identity=_text(row, "Identity"),
            app_id=(app_ids[0] if app_ids else "").lower(),
            scope_name=_text(row, "ScopeName"),
            scope_identity=_text(row, "ScopeIdentity"),
            access_right=_text(row, "AccessRight"),
            description=_text(row, "Description"),
            raw=row,
        )


@dataclass(frozen=True)
class Recipient:
    """``Get-Recipient``: any mail-enabled object."""

    name: str
    primary_smtp_address: str
    recipient_type_details: str
    is_valid_security_principal: bool
    external_directory_object_id: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recipient:
        """Build from a cmdlet row."""
        return cls(
            name=_text(row, "Name"),
            primary_smtp_address=_text(row, "PrimarySmtpAddress").lower(),
            recipient_type_details=_text(row, "RecipientTypeDetails"),
            is_valid_security_principal=_flag(row, "IsValidSecurityPrincipal"),
            external_directory_object_id=_text(row, "ExternalDirectoryObjectId"),
            raw=row,
        )


@dataclass(frozen=True)
class DistributionGroup:
    """``Get-DistributionGroup``: here always a mail-enabled security group."""

    name: str
    alias: str
    display_name: str
    primary_smtp_address: str
    recipient_type_details: str
    distinguished_name: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DistributionGroup:
        """Build from a cmdlet row."""
        return cls(
            name=_text(row, "Name"),
            alias=_text(row, "Alias"),
            display_name=_text(row, "DisplayName"),
            primary_smtp_address=_text(row, "PrimarySmtpAddress").lower(),
            recipient_type_details=_text(row, "RecipientTypeDetails"),
            distinguished_name=_text(row, "DistinguishedName"),
            raw=row,
        )

    @property
    def is_security_group(self) -> bool:
        """True for a mail-enabled security group (the only kind an access policy accepts)."""
        return self.recipient_type_details == "MailUniversalSecurityGroup"


@dataclass(frozen=True)
class Mailbox:
    """``Get-Mailbox``."""

    name: str
    alias: str
    display_name: str
    primary_smtp_address: str
    recipient_type_details: str
    account_disabled: bool
    soft_deleted: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Mailbox:
        """Build from a cmdlet row."""
        return cls(
            name=_text(row, "Name"),
            alias=_text(row, "Alias"),
            display_name=_text(row, "DisplayName"),
            primary_smtp_address=_text(row, "PrimarySmtpAddress").lower(),
            recipient_type_details=_text(row, "RecipientTypeDetails"),
            account_disabled=_flag(row, "AccountDisabled"),
            soft_deleted=_flag(row, "IsSoftDeletedByRemove"),
            raw=row,
        )


@dataclass(frozen=True)
class MailboxPermissionEntry:
    """One ACE of ``Get-MailboxPermission`` (FullAccess and friends)."""

    identity: str
    user: str
    access_rights: tuple[str, ...]
    is_inherited: bool
    deny: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MailboxPermissionEntry:
        """Build from a cmdlet row."""
        return cls(
            identity=_text(row, "Identity"),
            user=_text(row, "User"),
            access_rights=_list(row, "AccessRights"),
            is_inherited=_flag(row, "IsInherited"),
            deny=_flag(row, "Deny"),
            raw=row,
        )


@dataclass(frozen=True)
class RecipientPermissionEntry:
    """One ACE of ``Get-RecipientPermission`` (SendAs)."""

    identity: str
    trustee: str
    access_rights: tuple[str, ...]
    access_control_type: str
    is_inherited: bool
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RecipientPermissionEntry:
        """Build from a cmdlet row."""
        return cls(
            identity=_text(row, "Identity"),
            trustee=_text(row, "Trustee"),
            access_rights=_list(row, "AccessRights"),
            access_control_type=_text(row, "AccessControlType") or "Allow",
            is_inherited=_flag(row, "IsInherited"),
            raw=row,
        )


@dataclass(frozen=True)
class AuthorizationCheck:
    """One row of ``Test-ServicePrincipalAuthorization``: a role the app holds and whether a mailbox is in scope."""

    role_name: str
    granted_permissions: str
    allowed_resource_scope: str
    scope_type: str
    in_scope: bool | None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuthorizationCheck:
        """Build from a cmdlet row; ``in_scope`` is None when the cmdlet did not evaluate it ("Not Run")."""
        raw_in_scope = row.get("InScope")
        in_scope: bool | None
        if isinstance(raw_in_scope, bool):
            in_scope = raw_in_scope
        elif str(raw_in_scope).strip().lower() in ("true", "false"):
            in_scope = str(raw_in_scope).strip().lower() == "true"
        else:
            in_scope = None
        return cls(
            role_name=_text(row, "RoleName"),
            granted_permissions=_text(row, "GrantedPermissions"),
            allowed_resource_scope=_text(row, "AllowedResourceScope"),
            scope_type=_text(row, "ScopeType"),
            in_scope=in_scope,
            raw=row,
        )


@dataclass(frozen=True)
class AccessPolicyCheck:
    """``Test-ApplicationAccessPolicy``: whether the app may reach one mailbox."""

    app_id: str
    mailbox: str
    access_check_result: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AccessPolicyCheck:
        """Build from a cmdlet row."""
        return cls(
            app_id=_text(row, "AppId").lower(),
            mailbox=_text(row, "Mailbox"),
            access_check_result=_text(row, "AccessCheckResult"),
            raw=row,
        )

    @property
    def granted(self) -> bool:
        """True when the policy lets the app in."""
        return self.access_check_result.lower() == "granted"
