r"""The dev tenant's Exchange Online admin endpoint: ``POST /beta/{tenant}/InvokeCommand`` (mount it at ``/adminapi``).

It answers the cmdlets mailplane runs with the shapes the real service uses: PascalCase rows in ``value``,
``@odata.nextLink`` paging honouring ``Prefer: odata.maxpagesize``, warnings in ``@adminapi.warnings``, and errors as
``{"error": {"code", "message": "Error executing cmdlet", "details": [{"code", "message": "<id>|<type>|<text>"}],
"innererror": {...}}}``. Requests need ``Authorization: Bearer <token>`` (any non-empty token, or only the ones
the state was given) and an ``X-AnchorMailbox`` header. State is kept per tenant; user mailboxes are seeded with
:meth:`ExchangeAdminState.add_user_mailbox`. Faults (an error on the Nth call of a cmdlet, a 403 with
``x-ms-diagnostics``, 429, a 5xx after the write was applied) are injected with :meth:`ExchangeAdminState.inject_fault`.

Server-side behaviour mirrored from the service: scopes are OPATH filters evaluated per recipient, role assignments
need an existing service principal pointer, role and scope, removing a pointer removes its assignments,
``Remove-Mailbox`` soft-deletes (the address stays taken until purged), ``Get-MailboxPermission`` includes the
``NT AUTHORITY\SELF`` entry, duplicate permission adds answer with a warning, and access policies evaluate
Deny before Restrict.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailplane.devtenant.exchange_filters import FilterSyntaxError, compile_filter

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

__all__ = [
    "APPLICATION_ROLES",
    "DEFAULT_TOKEN",
    "ExchangeAdminState",
    "Fault",
    "TenantExchange",
    "create_app",
]

DEFAULT_TOKEN = "devtenant-exchange-admin-token"  # noqa: S105 - a fixed fake token for the loopback emulator.

# RBAC for Applications roles (Exchange Online "application RBAC" role table) and the permission each grants.
APPLICATION_ROLES: dict[str, str] = {
    "Application Mail.Read": "Mail.Read",
    "Application Mail.ReadBasic": "Mail.ReadBasic",
    "Application Mail.ReadWrite": "Mail.ReadWrite",
    "Application Mail.Send": "Mail.Send",
    "Application MailboxSettings.Read": "MailboxSettings.Read",
    "Application MailboxSettings.ReadWrite": "MailboxSettings.ReadWrite",
    "Application Calendars.Read": "Calendars.Read",
    "Application Calendars.ReadWrite": "Calendars.ReadWrite",
    "Application Contacts.Read": "Contacts.Read",
    "Application Contacts.ReadWrite": "Contacts.ReadWrite",
    "Application Mail Full Access": "Mail.ReadWrite, Mail.Send",
    "Application Exchange Full Access": "Mail.ReadWrite, Mail.Send, MailboxSettings.ReadWrite, Calendars.ReadWrite",
    "Application EWS.AccessAsApp": "EWS.AccessAsApp",
}

_NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
_ALREADY_EXISTS = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAlreadyExistsException"
_AD_EXISTS = "Microsoft.Exchange.Data.Directory.ADObjectAlreadyExistsException"
_PROXY_EXISTS = "Microsoft.Exchange.Data.Directory.ProxyAddressExistsException"
_MEMBER_EXISTS = "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException"
_MEMBER_NOT_FOUND = "Microsoft.Exchange.Management.Tasks.MemberNotFoundException"
_INVALID = "Microsoft.Exchange.Configuration.Tasks.TaskArgumentException"
_IN_USE = "Microsoft.Exchange.Configuration.Tasks.TaskInvalidOperationException"
_PARSING = "Microsoft.Exchange.Data.ParsingException"
_SERVER = "EXHV-DEV01.devtenant.prod.outlook.com"


class CmdletError(Exception):
    """A cmdlet failure the emulator answers with the service's error body."""

    def __init__(self, exception_type: str, message: str, *, status: int = 400) -> None:
        """``exception_type`` is the full .NET name the service reports."""
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.status = status


@dataclass
class Fault:
    """An injected failure: the ``on_call``-th call of ``cmdlet`` (counted from injection) answers with it.

    ``after_apply`` runs the cmdlet first and then fails, the way a write can succeed server-side while the
    response is lost or turns into a 5xx. ``times`` is how many consecutive calls fail from then on.
    """

    cmdlet: str
    status: int = 500
    exception_type: str = "Microsoft.Exchange.Data.Storage.TransientException"
    message: str = "The server encountered an internal error. Try again later."
    headers: dict[str, str] = field(default_factory=dict)
    empty_body: bool = False
    on_call: int = 1
    times: int = 1
    after_apply: bool = False
    tenant: str | None = None
    seen: int = 0

    @classmethod
    def throttle(cls, cmdlet: str, *, retry_after: int = 0, on_call: int = 1, times: int = 1) -> Fault:
        """A 429 with ``Retry-After``."""
        return cls(
            cmdlet,
            status=429,
            exception_type="",
            message="You have reached the maximum number of concurrent requests per tenant. Please wait.",
            headers={"Retry-After": str(retry_after)},
            on_call=on_call,
            times=times,
        )

    @classmethod
    def forbidden(cls, cmdlet: str, *, diagnostics: str | None = None, on_call: int = 1, times: int = 1) -> Fault:
        """A 403 with an empty body and the reason in ``x-ms-diagnostics``."""
        reason = diagnostics or (
            f'2000008;reason="The app does not have the role required to run {cmdlet}. Assign the Exchange '
            f'Administrator role or a role group that includes it.";error_category="insufficient_auth_role"'
        )
        return cls(
            cmdlet, status=403, headers={"x-ms-diagnostics": reason}, empty_body=True, on_call=on_call, times=times
        )


@dataclass
class _Recipient:
    guid: str
    name: str
    alias: str
    display_name: str
    primary_smtp_address: str
    kind: str  # UserMailbox, SharedMailbox, MailUniversalSecurityGroup
    account_disabled: bool = False
    soft_deleted: bool = False
    members: list[str] = field(default_factory=list)  # group member guids
    sid: str = ""
    external_directory_object_id: str = ""
    dn: str = ""


@dataclass
class _Ace:
    user: str  # recipient guid, or a system principal name
    auto_mapping: bool = False


class TenantExchange:
    """One tenant's Exchange organisation: recipients, RBAC objects, access policies and permissions."""

    def __init__(self, tenant_id: str, domain: str) -> None:
        """An empty organisation with ``domain`` as its default accepted domain."""
        self.tenant_id = tenant_id
        self.domain = domain.lower()
        self.recipients: dict[str, _Recipient] = {}
        self.service_principals: dict[str, dict[str, Any]] = {}  # object id -> row
        self.scopes: dict[str, dict[str, Any]] = {}  # lower name -> row
        self.assignments: dict[str, dict[str, Any]] = {}  # lower name -> row
        self.policies: dict[str, dict[str, Any]] = {}  # identity -> row
        self.full_access: dict[str, list[_Ace]] = {}  # mailbox guid -> ACEs
        self.send_as: dict[str, list[str]] = {}  # mailbox guid -> trustee guids
        self.missing_roles: set[str] = set()  # cmdlets the calling app has no Exchange role for (lower case)
        self._sid_counter = itertools.count(1001)

    # -- directory helpers ---------------------------------------------------------------------------------------

    def _new_recipient(self, name: str, alias: str, display_name: str, address: str, kind: str) -> _Recipient:
        guid = str(uuid.uuid4())
        recipient = _Recipient(
            guid=guid,
            name=name,
            alias=alias,
            display_name=display_name,
            primary_smtp_address=address.lower(),
            kind=kind,
            account_disabled=kind == "SharedMailbox",
            sid=f"S-1-5-21-3123456789-2345678901-3456789012-{next(self._sid_counter)}",
            external_directory_object_id=str(uuid.uuid4()),
            dn=f"CN={name},OU={self.domain},OU=Microsoft Exchange Hosted Organizations,DC=DEVPR01A001,DC=PROD,"
            "DC=OUTLOOK,DC=COM",
        )
        self.recipients[guid] = recipient
        return recipient

    def add_user_mailbox(self, address: str, display_name: str | None = None) -> _Recipient:
        """Seed a licensed user mailbox (users are made in Entra, not by mailplane)."""
        local = address.split("@", 1)[0]
        return self._new_recipient(local, local, display_name or local, address, "UserMailbox")

    def find(self, identity: str, *, soft_deleted: bool = False, kinds: tuple[str, ...] | None = None) -> _Recipient:
        """Resolve an identity the way cmdlets do (GUID, name, alias, address, DN, Entra object id)."""
        wanted = str(identity).strip().lower()
        for recipient in self.recipients.values():
            if recipient.soft_deleted != soft_deleted:
                continue
            if kinds and recipient.kind not in kinds:
                continue
            keys = {
                recipient.guid,
                recipient.name.lower(),
                recipient.alias.lower(),
                recipient.primary_smtp_address,
                recipient.dn.lower(),
                recipient.external_directory_object_id,
                recipient.display_name.lower(),
            }
            if wanted in keys:
                return recipient
        raise CmdletError(
            _NOT_FOUND,
            f"The operation couldn't be performed because object '{identity}' couldn't be found on '{_SERVER}'.",
        )

    def _taken(self, name: str, alias: str, address: str) -> None:
        for recipient in self.recipients.values():
            if recipient.primary_smtp_address == address.lower():
                raise CmdletError(
                    _PROXY_EXISTS,
                    f'The proxy address "SMTP:{address}" is already being used by the proxy addresses or '
                    f'LegacyExchangeDN of "{recipient.name}". Please choose another proxy address.',
                )
            if recipient.name.lower() == name.lower():
                raise CmdletError(_AD_EXISTS, f'The name "{name}" is already being used. Please try another name.')
            if recipient.alias.lower() == alias.lower():
                raise CmdletError(_PROXY_EXISTS, f'The alias "{alias}" is already being used. Choose another alias.')

    def record(self, recipient: _Recipient) -> dict[str, tuple[str, ...]]:
        """Properties an OPATH filter can test, lower-cased names."""
        member_of = tuple(g.dn for g in self.recipients.values() if recipient.guid in g.members)
        return {
            "primarysmtpaddress": (recipient.primary_smtp_address,),
            "windowsemailaddress": (recipient.primary_smtp_address,),
            "emailaddresses": (f"smtp:{recipient.primary_smtp_address}",),
            "alias": (recipient.alias,),
            "name": (recipient.name,),
            "displayname": (recipient.display_name,),
            "recipienttypedetails": (recipient.kind,),
            "memberofgroup": member_of,
        }

    # -- row renderings ------------------------------------------------------------------------------------------

    def recipient_row(self, r: _Recipient) -> dict[str, Any]:
        """``Get-Recipient`` row."""
        return {
            "Identity": r.name,
            "Name": r.name,
            "Alias": r.alias,
            "DisplayName": r.display_name,
            "PrimarySmtpAddress": r.primary_smtp_address,
            "EmailAddresses": [f"SMTP:{r.primary_smtp_address}"],
            "RecipientType": "MailUniversalSecurityGroup" if r.kind == "MailUniversalSecurityGroup" else "UserMailbox",
            "RecipientTypeDetails": r.kind,
            "IsValidSecurityPrincipal": r.kind in ("UserMailbox", "MailUniversalSecurityGroup"),
            "ExternalDirectoryObjectId": r.external_directory_object_id,
            "Guid": r.guid,
            "DistinguishedName": r.dn,
        }

    def mailbox_row(self, r: _Recipient) -> dict[str, Any]:
        """``Get-Mailbox`` row."""
        return {
            **self.recipient_row(r),
            "UserPrincipalName": r.primary_smtp_address,
            "ExchangeGuid": r.guid,
            "AccountDisabled": r.account_disabled,
            "IsSoftDeletedByRemove": r.soft_deleted,
            "IsMailboxEnabled": True,
        }

    def group_row(self, r: _Recipient) -> dict[str, Any]:
        """``Get-DistributionGroup`` row."""
        return {
            **self.recipient_row(r),
            "GroupType": "Universal, SecurityEnabled",
            "ManagedBy": ["Organization Management"],
        }


@dataclass
class _CallRecord:
    tenant: str
    cmdlet: str
    parameters: dict[str, Any]


class ExchangeAdminState:
    """Every tenant the emulator knows, the tokens it accepts, the faults to inject and a log of calls.

    Safe to use from the test thread while the server thread answers requests.
    """

    def __init__(self, *, tokens: tuple[str, ...] | None = None) -> None:
        """Accept only ``tokens`` as bearer tokens; by default any non-empty one (as the Graph emulator does)."""
        self.tokens: set[str] | None = set(tokens) if tokens is not None else None
        self.tenants: dict[str, TenantExchange] = {}
        self.faults: list[Fault] = []
        self.calls: list[_CallRecord] = []
        self.lock = threading.RLock()

    def tenant(self, tenant_id: str, *, domain: str | None = None) -> TenantExchange:
        """The tenant's organisation, created on first use (default domain ``<first 8>.onmicrosoft.com``)."""
        key = tenant_id.lower()
        with self.lock:
            if key not in self.tenants:
                self.tenants[key] = TenantExchange(key, domain or f"{key.split('-')[0][:8]}.onmicrosoft.com")
            return self.tenants[key]

    def add_user_mailbox(self, tenant_id: str, address: str, display_name: str | None = None) -> dict[str, Any]:
        """Seed a user mailbox; returns its ``Get-Mailbox`` row."""
        with self.lock:
            org = self.tenant(tenant_id)
            return org.mailbox_row(org.add_user_mailbox(address, display_name))

    def deny_cmdlets(self, tenant_id: str, *cmdlets: str) -> None:
        """Make the caller lack the Exchange role for ``cmdlets`` in this tenant (403 until :meth:`allow_cmdlets`)."""
        with self.lock:
            self.tenant(tenant_id).missing_roles.update(c.lower() for c in cmdlets)

    def allow_cmdlets(self, tenant_id: str, *cmdlets: str) -> None:
        """Give back the role for ``cmdlets``."""
        with self.lock:
            self.tenant(tenant_id).missing_roles.difference_update(c.lower() for c in cmdlets)

    def inject_fault(self, fault: Fault) -> Fault:
        """Make a future call fail (see :class:`Fault`)."""
        with self.lock:
            self.faults.append(fault)
        return fault

    def cmdlets_called(self, tenant_id: str | None = None) -> list[str]:
        """Names of the cmdlets run so far, in order."""
        with self.lock:
            return [c.cmdlet for c in self.calls if tenant_id is None or c.tenant == tenant_id.lower()]

    def _fault_for(self, tenant: str, cmdlet: str) -> Fault | None:
        for fault in self.faults:
            if fault.cmdlet.lower() != cmdlet.lower() or (fault.tenant and fault.tenant.lower() != tenant):
                continue
            fault.seen += 1
            if fault.on_call <= fault.seen < fault.on_call + fault.times:
                return fault
        return None


def _error_body(exception_type: str, message: str) -> dict[str, Any]:
    code = f"Ex{abs(hash(exception_type)) % 0xFFFFFF:06X}"
    return {
        "error": {
            "code": "BadRequest",
            "message": "Error executing cmdlet",
            "details": [{"code": "Client", "target": "", "message": f"{code}|{exception_type}|{message}"}],
            "innererror": {
                "message": "Error executing cmdlet",
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "internalexception": {"message": message, "type": exception_type},
            },
        }
    }


def _error_response(error: CmdletError) -> JSONResponse:
    return JSONResponse(_error_body(error.exception_type, error.message), status_code=error.status)


def _switch(parameters: dict[str, Any], name: str) -> bool:
    value = parameters.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "$true", "1")
    return bool(value)


def _require(parameters: dict[str, Any], name: str, cmdlet: str) -> Any:
    value = parameters.get(name)
    if value in (None, "", []):
        raise CmdletError(
            "System.Management.Automation.ParameterBindingException",
            f"A parameter cannot be found or is empty: {cmdlet} needs -{name}.",
        )
    return value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _ace_missing(target: str, account: str) -> str:
    return (
        f'Can\'t remove the access control entry on the object "{target}" for account "{account}" because the ACE '
        "doesn't exist on the object."
    )


_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class _Cmdlets:
    """The cmdlet implementations. Each takes the org and the parameters, returns ``(rows, warnings)``."""

    # -- service principals --------------------------------------------------------------------------------------

    @staticmethod
    def _sp(org: TenantExchange, identity: str) -> dict[str, Any]:
        wanted = str(identity).lower()
        for row in org.service_principals.values():
            if wanted in (row["ObjectId"], row["AppId"], row["DisplayName"].lower(), row["Identity"].lower()):
                return row
        raise CmdletError(
            _NOT_FOUND,
            f"The operation couldn't be performed because object '{identity}' couldn't be found on '{_SERVER}'.",
        )

    def new_serviceprincipal(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        app_id = str(_require(p, "AppId", "New-ServicePrincipal")).lower()
        object_id = str(p.get("ObjectId") or p.get("ServiceId") or "").lower()
        if not _GUID.match(app_id) or not _GUID.match(object_id):
            raise CmdletError(_INVALID, "AppId and ObjectId must be GUIDs of an Entra enterprise application.")
        for row in org.service_principals.values():
            if object_id == row["ObjectId"] or app_id == row["AppId"]:
                raise CmdletError(
                    _ALREADY_EXISTS,
                    f"A service principal with AppId '{app_id}' or ObjectId '{object_id}' already exists.",
                )
        row = {
            "Identity": object_id,
            "Name": object_id,
            "AppId": app_id,
            "ObjectId": object_id,
            "DisplayName": str(p.get("DisplayName") or app_id),
            "Guid": str(uuid.uuid4()),
        }
        org.service_principals[object_id] = row
        return [row], []

    def get_serviceprincipal(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        if p.get("Identity"):
            return [self._sp(org, p["Identity"])], []
        return list(org.service_principals.values()), []

    def set_serviceprincipal(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._sp(org, _require(p, "Identity", "Set-ServicePrincipal"))
        if p.get("DisplayName"):
            row["DisplayName"] = str(p["DisplayName"])
        return [], []

    def remove_serviceprincipal(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._sp(org, _require(p, "Identity", "Remove-ServicePrincipal"))
        del org.service_principals[row["ObjectId"]]
        for name in [n for n, a in org.assignments.items() if a["_sp"] == row["ObjectId"]]:
            del org.assignments[name]
        return [], []

    # -- management scopes ---------------------------------------------------------------------------------------

    @staticmethod
    def _scope(org: TenantExchange, identity: str) -> dict[str, Any]:
        row = org.scopes.get(str(identity).lower())
        if row is None:
            raise CmdletError(_NOT_FOUND, f'The management scope "{identity}" couldn\'t be found.')
        return row

    @staticmethod
    def _check_filter(text: str) -> None:
        try:
            compile_filter(text)
        except FilterSyntaxError as error:
            raise CmdletError(_PARSING, f'Invalid filter syntax "{text}": {error}.') from None

    def new_managementscope(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        name = str(_require(p, "Name", "New-ManagementScope"))
        text = str(_require(p, "RecipientRestrictionFilter", "New-ManagementScope"))
        if name.lower() in org.scopes:
            raise CmdletError(_ALREADY_EXISTS, f'The management scope "{name}" already exists.')
        self._check_filter(text)
        row = {
            "Identity": name,
            "Name": name,
            "RecipientFilter": text,
            "RecipientRoot": None,
            "ScopeRestrictionType": "RecipientScope",
            "Exclusive": _switch(p, "Exclusive"),
            "Guid": str(uuid.uuid4()),
        }
        org.scopes[name.lower()] = row
        return [row], []

    def get_managementscope(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        if p.get("Identity"):
            return [self._scope(org, p["Identity"])], []
        return list(org.scopes.values()), []

    def set_managementscope(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._scope(org, _require(p, "Identity", "Set-ManagementScope"))
        if "RecipientRestrictionFilter" in p:
            self._check_filter(str(p["RecipientRestrictionFilter"]))
            row["RecipientFilter"] = str(p["RecipientRestrictionFilter"])
        return [], []

    def remove_managementscope(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._scope(org, _require(p, "Identity", "Remove-ManagementScope"))
        users = [a["Name"] for a in org.assignments.values() if a["CustomResourceScope"] == row["Name"]]
        if users:
            raise CmdletError(
                _IN_USE,
                f"The management scope \"{row['Name']}\" can't be removed because it's used by the role "
                f"assignments {', '.join(users)}.",
            )
        del org.scopes[row["Name"].lower()]
        return [], []

    # -- role assignments ----------------------------------------------------------------------------------------

    @staticmethod
    def _assignment(org: TenantExchange, identity: str) -> dict[str, Any]:
        row = org.assignments.get(str(identity).lower())
        if row is None:
            raise CmdletError(_NOT_FOUND, f'The management role assignment "{identity}" couldn\'t be found.')
        return row

    @staticmethod
    def _public(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if not k.startswith("_")}

    def new_managementroleassignment(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        role = str(_require(p, "Role", "New-ManagementRoleAssignment"))
        app = str(_require(p, "App", "New-ManagementRoleAssignment"))
        if role not in APPLICATION_ROLES:
            raise CmdletError(_NOT_FOUND, f'The role "{role}" couldn\'t be found.')
        sp = self._sp(org, app)
        scope_name = p.get("CustomResourceScope")
        if scope_name:
            scope_name = self._scope(org, scope_name)["Name"]
        name = str(p.get("Name") or f"{role}-{sp['DisplayName']}")[:64]
        if len(str(p.get("Name") or "")) > 64:  # noqa: PLR2004
            raise CmdletError(_INVALID, f"The length of the property Name is too long: {len(p['Name'])} > 64.")
        if name.lower() in org.assignments:
            raise CmdletError(_ALREADY_EXISTS, f'The role assignment "{name}" already exists.')
        row = {
            "Identity": name,
            "Name": name,
            "Role": role,
            "RoleAssignee": sp["ObjectId"],
            "RoleAssigneeName": sp["DisplayName"],
            "RoleAssigneeType": "ServicePrincipal",
            "AssignmentMethod": "Direct",
            "CustomResourceScope": scope_name,
            "RecipientWriteScope": "CustomRecipientScope" if scope_name else "Organization",
            "Enabled": True,
            "Guid": str(uuid.uuid4()),
            "_sp": sp["ObjectId"],
        }
        org.assignments[name.lower()] = row
        return [self._public(row)], []

    def get_managementroleassignment(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        if p.get("Identity"):
            return [self._public(self._assignment(org, p["Identity"]))], []
        rows = list(org.assignments.values())
        if p.get("RoleAssignee"):
            sp = self._sp(org, p["RoleAssignee"])
            rows = [r for r in rows if r["_sp"] == sp["ObjectId"]]
        return [self._public(r) for r in rows], []

    def set_managementroleassignment(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._assignment(org, _require(p, "Identity", "Set-ManagementRoleAssignment"))
        if p.get("CustomResourceScope"):
            row["CustomResourceScope"] = self._scope(org, p["CustomResourceScope"])["Name"]
            row["RecipientWriteScope"] = "CustomRecipientScope"
        if "Enabled" in p:
            row["Enabled"] = _switch(p, "Enabled")
        return [], []

    def remove_managementroleassignment(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._assignment(org, _require(p, "Identity", "Remove-ManagementRoleAssignment"))
        del org.assignments[row["Name"].lower()]
        return [], []

    def test_serviceprincipalauthorization(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        sp = self._sp(org, _require(p, "Identity", "Test-ServicePrincipalAuthorization"))
        resource = org.find(p["Resource"]) if p.get("Resource") else None
        rows = []
        for assignment in org.assignments.values():
            if assignment["_sp"] != sp["ObjectId"] or not assignment["Enabled"]:
                continue
            scope_name = assignment["CustomResourceScope"]
            in_scope: Any = "Not Run"
            if resource is not None:
                if scope_name:
                    scope = org.scopes.get(scope_name.lower())
                    in_scope = scope is not None and compile_filter(scope["RecipientFilter"])(org.record(resource))
                else:
                    in_scope = True
            rows.append(
                {
                    "RoleName": assignment["Role"],
                    "GrantedPermissions": APPLICATION_ROLES[assignment["Role"]],
                    "AllowedResourceScope": scope_name or "Organization",
                    "ScopeType": "CustomRecipientScope" if scope_name else "Organization",
                    "InScope": in_scope,
                }
            )
        return rows, []

    # -- application access policies -----------------------------------------------------------------------------

    @staticmethod
    def _policy(org: TenantExchange, identity: str) -> dict[str, Any]:
        row = org.policies.get(str(identity))
        if row is None:
            raise CmdletError(
                _NOT_FOUND,
                f"The operation couldn't be performed because object '{identity}' couldn't be found on '{_SERVER}'.",
            )
        return row

    def new_applicationaccesspolicy(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        app_ids = [a.lower() for a in _as_list(_require(p, "AppId", "New-ApplicationAccessPolicy"))]
        group = org.find(_require(p, "PolicyScopeGroupId", "New-ApplicationAccessPolicy"))
        access_right = str(_require(p, "AccessRight", "New-ApplicationAccessPolicy"))
        if access_right not in ("RestrictAccess", "DenyAccess"):
            raise CmdletError(_INVALID, f"AccessRight must be RestrictAccess or DenyAccess, not '{access_right}'.")
        if group.kind not in ("UserMailbox", "MailUniversalSecurityGroup"):
            raise CmdletError(
                _INVALID,
                f"'{group.name}' is a {group.kind}; PolicyScopeGroupId must be a security principal (a user mailbox, "
                "a mail user or a mail-enabled security group).",
            )
        rows = []
        for app_id in app_ids:
            identity = f"{org.tenant_id}\\{app_id}:{group.sid};{group.guid}"
            if identity in org.policies:
                raise CmdletError(
                    _ALREADY_EXISTS, f"An application access policy for app '{app_id}' and this scope already exists."
                )
            row = {
                "Identity": identity,
                "AppId": app_id,
                "ScopeName": group.name,
                "ScopeIdentity": group.name,
                "ScopeIdentityRaw": f"{group.sid};{group.guid}",
                "AccessRight": access_right,
                "Description": str(p.get("Description") or ""),
                "IsValid": True,
                "_group": group.guid,
            }
            org.policies[identity] = row
            rows.append(self._public(row))
        return rows, []

    def get_applicationaccesspolicy(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        if p.get("Identity"):
            return [self._public(self._policy(org, p["Identity"]))], []
        return [self._public(r) for r in org.policies.values()], []

    def set_applicationaccesspolicy(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._policy(org, _require(p, "Identity", "Set-ApplicationAccessPolicy"))
        extra = set(p) - {"Identity", "Description", "Confirm"}
        if extra:
            raise CmdletError(
                "System.Management.Automation.ParameterBindingException",
                f"A parameter cannot be found that matches parameter name '{min(extra)}'.",
            )
        row["Description"] = str(p.get("Description") or "")
        return [], []

    def remove_applicationaccesspolicy(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        row = self._policy(org, _require(p, "Identity", "Remove-ApplicationAccessPolicy"))
        del org.policies[row["Identity"]]
        return [], []

    def test_applicationaccesspolicy(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        mailbox = org.find(_require(p, "Identity", "Test-ApplicationAccessPolicy"))
        app_id = str(_require(p, "AppId", "Test-ApplicationAccessPolicy")).lower()

        def covers(group_guid: str) -> bool:
            group = org.recipients.get(group_guid)
            if group is None:
                return False
            if group.guid == mailbox.guid:
                return True
            seen: set[str] = set()
            stack = list(group.members)
            while stack:  # Nested groups count for access policies.
                guid = stack.pop()
                if guid == mailbox.guid:
                    return True
                if guid not in seen and guid in org.recipients:
                    seen.add(guid)
                    stack.extend(org.recipients[guid].members)
            return False

        policies = [r for r in org.policies.values() if r["AppId"] in (app_id, "*")]
        result = "Granted"
        if any(r["AccessRight"] == "DenyAccess" and covers(r["_group"]) for r in policies):
            result = "Denied"
        else:
            restrict = [r for r in policies if r["AccessRight"] == "RestrictAccess"]
            if restrict and not any(covers(r["_group"]) for r in restrict):
                result = "Denied"
        row = {
            "AppId": app_id,
            "Mailbox": mailbox.name,
            "MailboxId": mailbox.guid,
            "MailboxSid": mailbox.sid,
            "AccessCheckResult": result,
        }
        return [row], []

    # -- recipients and groups -----------------------------------------------------------------------------------

    def get_recipient(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        if p.get("Identity"):
            return [org.recipient_row(org.find(p["Identity"]))], []
        return [org.recipient_row(r) for r in org.recipients.values() if not r.soft_deleted], []

    def new_distributiongroup(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        name = str(_require(p, "Name", "New-DistributionGroup"))
        alias = str(p.get("Alias") or re.sub(r"[^A-Za-z0-9._-]", "", name))
        if str(p.get("Type", "Distribution")).lower() != "security":
            raise CmdletError(_INVALID, "The dev tenant only creates mail-enabled security groups (-Type Security).")
        address = str(p.get("PrimarySmtpAddress") or f"{alias}@{org.domain}")
        org._taken(name, alias, address)  # noqa: SLF001 - the org's own uniqueness rule.
        group = org._new_recipient(  # noqa: SLF001
            name, alias, str(p.get("DisplayName") or name), address, "MailUniversalSecurityGroup"
        )
        for member in _as_list(p.get("Members")):
            group.members.append(org.find(member).guid)
        return [org.group_row(group)], []

    def get_distributiongroup(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        if p.get("Identity"):
            return [org.group_row(org.find(p["Identity"], kinds=("MailUniversalSecurityGroup",)))], []
        groups = [r for r in org.recipients.values() if r.kind == "MailUniversalSecurityGroup"]
        return [org.group_row(g) for g in groups], []

    def remove_distributiongroup(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        group = org.find(_require(p, "Identity", "Remove-DistributionGroup"), kinds=("MailUniversalSecurityGroup",))
        del org.recipients[group.guid]
        return [], []

    def get_distributiongroupmember(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        group = org.find(_require(p, "Identity", "Get-DistributionGroupMember"), kinds=("MailUniversalSecurityGroup",))
        return [org.recipient_row(org.recipients[g]) for g in group.members if g in org.recipients], []

    def add_distributiongroupmember(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        group = org.find(_require(p, "Identity", "Add-DistributionGroupMember"), kinds=("MailUniversalSecurityGroup",))
        member = org.find(_require(p, "Member", "Add-DistributionGroupMember"))
        if member.guid in group.members:
            raise CmdletError(
                _MEMBER_EXISTS, f'The recipient "{member.name}" is already a member of the group "{group.name}".'
            )
        group.members.append(member.guid)
        return [], []

    def remove_distributiongroupmember(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        group = org.find(
            _require(p, "Identity", "Remove-DistributionGroupMember"), kinds=("MailUniversalSecurityGroup",)
        )
        member = org.find(_require(p, "Member", "Remove-DistributionGroupMember"))
        if member.guid not in group.members:
            raise CmdletError(
                _MEMBER_NOT_FOUND, f'The recipient "{member.name}" isn\'t a member of the group "{group.name}".'
            )
        group.members.remove(member.guid)
        return [], []

    # -- mailboxes -----------------------------------------------------------------------------------------------

    def new_mailbox(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        if not _switch(p, "Shared"):
            raise CmdletError(
                _INVALID, "The dev tenant creates only shared mailboxes (-Shared); user mailboxes come from Entra."
            )
        name = str(_require(p, "Name", "New-Mailbox"))
        alias = str(p.get("Alias") or re.sub(r"[^A-Za-z0-9._-]", "", name))
        address = str(p.get("PrimarySmtpAddress") or f"{alias}@{org.domain}")
        if "@" not in address:
            raise CmdletError(_INVALID, f'"{address}" isn\'t a valid SMTP address.')
        org._taken(name, alias, address)  # noqa: SLF001
        mailbox = org._new_recipient(  # noqa: SLF001
            name, alias, str(p.get("DisplayName") or name), address, "SharedMailbox"
        )
        return [org.mailbox_row(mailbox)], []

    def get_mailbox(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        soft = _switch(p, "SoftDeletedMailbox")
        kinds = ("UserMailbox", "SharedMailbox")
        if p.get("Identity"):
            return [org.mailbox_row(org.find(p["Identity"], soft_deleted=soft, kinds=kinds))], []
        rows = [r for r in org.recipients.values() if r.kind in kinds and r.soft_deleted == soft]
        wanted = _as_list(p.get("RecipientTypeDetails"))
        if wanted:
            rows = [r for r in rows if r.kind in wanted]
        return [org.mailbox_row(r) for r in rows], []

    def set_mailbox(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        mailbox = org.find(_require(p, "Identity", "Set-Mailbox"), kinds=("UserMailbox", "SharedMailbox"))
        if "DisplayName" in p:
            mailbox.display_name = str(p["DisplayName"])
        if "AccountDisabled" in p:
            mailbox.account_disabled = _switch(p, "AccountDisabled")
        return [], []

    def remove_mailbox(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        identity = _require(p, "Identity", "Remove-Mailbox")
        if _switch(p, "PermanentlyDelete"):
            mailbox = org.find(identity, soft_deleted=True)
            del org.recipients[mailbox.guid]
            return [], []
        mailbox = org.find(identity, kinds=("UserMailbox", "SharedMailbox"))
        mailbox.soft_deleted = True
        for group in org.recipients.values():
            if mailbox.guid in group.members:
                group.members.remove(mailbox.guid)
        org.full_access.pop(mailbox.guid, None)
        org.send_as.pop(mailbox.guid, None)
        return [], []

    # -- permissions ---------------------------------------------------------------------------------------------

    def get_mailboxpermission(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        mailbox = org.find(_require(p, "Identity", "Get-MailboxPermission"), kinds=("UserMailbox", "SharedMailbox"))
        rows = [
            {
                "Identity": mailbox.name,
                "User": "NT AUTHORITY\\SELF",
                "AccessRights": ["FullAccess, ReadPermission"],
                "IsInherited": False,
                "Deny": False,
                "InheritanceType": "All",
            }
        ]
        for ace in org.full_access.get(mailbox.guid, []):
            user = org.recipients.get(ace.user)
            if user is None:
                continue
            rows.append(
                {
                    "Identity": mailbox.name,
                    "User": user.primary_smtp_address,
                    "AccessRights": ["FullAccess"],
                    "IsInherited": False,
                    "Deny": False,
                    "InheritanceType": "All",
                }
            )
        if p.get("User"):
            user = org.find(p["User"])
            rows = [r for r in rows if r["User"] == user.primary_smtp_address]
        return rows, []

    def add_mailboxpermission(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        mailbox = org.find(_require(p, "Identity", "Add-MailboxPermission"), kinds=("UserMailbox", "SharedMailbox"))
        try:
            user = org.find(_require(p, "User", "Add-MailboxPermission"))
        except CmdletError:
            raise CmdletError(
                _NOT_FOUND, f"User or group \"{p['User']}\" wasn't found. Please make sure you've typed it correctly."
            ) from None
        if [r.lower() for r in _as_list(p.get("AccessRights"))] != ["fullaccess"]:
            raise CmdletError(_INVALID, "The dev tenant supports only -AccessRights FullAccess.")
        aces = org.full_access.setdefault(mailbox.guid, [])
        if any(a.user == user.guid for a in aces):
            return [], [f"An existing permission entry was found for user: {user.name}."]
        auto_mapping = True if "AutoMapping" not in p else _switch(p, "AutoMapping")
        aces.append(_Ace(user.guid, auto_mapping=auto_mapping))
        row = {
            "Identity": mailbox.name,
            "User": user.primary_smtp_address,
            "AccessRights": ["FullAccess"],
            "IsInherited": False,
            "Deny": False,
        }
        return [row], []

    def remove_mailboxpermission(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        mailbox = org.find(_require(p, "Identity", "Remove-MailboxPermission"), kinds=("UserMailbox", "SharedMailbox"))
        user = org.find(_require(p, "User", "Remove-MailboxPermission"))
        aces = org.full_access.get(mailbox.guid, [])
        remaining = [a for a in aces if a.user != user.guid]
        if len(remaining) == len(aces):
            return [], [_ace_missing(mailbox.name, user.name)]
        org.full_access[mailbox.guid] = remaining
        return [], []

    def get_recipientpermission(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        target = org.find(_require(p, "Identity", "Get-RecipientPermission"))
        rows = [
            {
                "Identity": target.name,
                "Trustee": "NT AUTHORITY\\SELF",
                "AccessControlType": "Allow",
                "AccessRights": ["SendAs"],
                "IsInherited": False,
                "InheritanceType": "None",
            }
        ]
        for guid in org.send_as.get(target.guid, []):
            trustee = org.recipients.get(guid)
            if trustee is None:
                continue
            rows.append(
                {
                    "Identity": target.name,
                    "Trustee": trustee.primary_smtp_address,
                    "AccessControlType": "Allow",
                    "AccessRights": ["SendAs"],
                    "IsInherited": False,
                    "InheritanceType": "None",
                }
            )
        if p.get("Trustee"):
            trustee = org.find(p["Trustee"])
            rows = [r for r in rows if r["Trustee"] == trustee.primary_smtp_address]
        return rows, []

    def add_recipientpermission(self, org: TenantExchange, p: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        target = org.find(_require(p, "Identity", "Add-RecipientPermission"))
        trustee = org.find(_require(p, "Trustee", "Add-RecipientPermission"))
        if [r.lower() for r in _as_list(p.get("AccessRights"))] != ["sendas"]:
            raise CmdletError(_INVALID, "The only valid value for AccessRights is SendAs.")
        trustees = org.send_as.setdefault(target.guid, [])
        if trustee.guid in trustees:
            return [], [f'The appropriate access control entry is already present on object "{target.name}".']
        trustees.append(trustee.guid)
        row = {
            "Identity": target.name,
            "Trustee": trustee.primary_smtp_address,
            "AccessControlType": "Allow",
            "AccessRights": ["SendAs"],
        }
        return [row], []

    def remove_recipientpermission(
        self, org: TenantExchange, p: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        target = org.find(_require(p, "Identity", "Remove-RecipientPermission"))
        trustee = org.find(_require(p, "Trustee", "Remove-RecipientPermission"))
        trustees = org.send_as.get(target.guid, [])
        if trustee.guid not in trustees:
            return [], [_ace_missing(target.name, trustee.name)]
        trustees.remove(trustee.guid)
        return [], []


_CMDLETS = _Cmdlets()


def _handler(cmdlet: str) -> Callable[[TenantExchange, dict[str, Any]], tuple[list[dict[str, Any]], list[str]]] | None:
    return getattr(_CMDLETS, cmdlet.replace("-", "_").lower(), None)


def _page_size(request: Request) -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
    return max(1, min(int(match.group(1)), 1000)) if match else 1000


def create_app(state: ExchangeAdminState | None = None) -> Starlette:
    """The emulator as a Starlette app; routes are relative to ``/adminapi`` (mount it there).

    ``app.state.exchange`` is the :class:`ExchangeAdminState` (a new, empty one when ``state`` is None).
    """
    exchange_state = state or ExchangeAdminState()

    async def invoke_command(request: Request) -> Response:
        tenant_key = request.path_params["tenant"].lower()
        refusal = _refusal(request, exchange_state)
        if refusal is not None:
            return refusal
        try:
            cmdlet, parameters = _cmdlet_input(await request.body())
        except CmdletError as error:
            return _error_response(error)
        outcome = _run_cmdlet(exchange_state, tenant_key, cmdlet, parameters, "$skiptoken" not in request.query_params)
        if isinstance(outcome, Response):
            return outcome
        rows, warnings = outcome
        size = _page_size(request)
        offset = int(request.query_params.get("$skiptoken", "0") or 0)
        page: dict[str, Any] = {
            "@odata.context": f"{request.base_url}adminapi/beta/$metadata#Collection(Exchange.GenericHashTable)",
            "value": rows[offset : offset + size],
        }
        if offset + size < len(rows):
            page["@odata.nextLink"] = str(request.url.replace_query_params(**{"$skiptoken": str(offset + size)}))
        if warnings:
            page["@adminapi.warnings"] = warnings
        return JSONResponse(page)

    app = Starlette(routes=[Route("/beta/{tenant}/InvokeCommand", invoke_command, methods=["POST"])])
    app.state.exchange = exchange_state
    return app


def _run_cmdlet(
    state: ExchangeAdminState, tenant_key: str, cmdlet: str, parameters: dict[str, Any], first_page: bool
) -> Response | tuple[list[dict[str, Any]], list[str]]:
    """Log the call, apply an injected fault, run the cmdlet; an error answer or ``(rows, warnings)``."""
    with state.lock:
        org = state.tenant(tenant_key)
        if first_page:  # Later pages re-run the same cmdlet to slice it; they are not new calls.
            state.calls.append(_CallRecord(tenant_key, cmdlet, parameters))
        fault = state._fault_for(tenant_key, cmdlet) if first_page else None  # noqa: SLF001 - the state's own helper.
        if fault is not None and not fault.after_apply:
            return _fault_response(fault)
        if cmdlet.lower() in org.missing_roles:
            return _fault_response(Fault.forbidden(cmdlet))
        handler = _handler(cmdlet)
        if handler is None:
            return _error_response(
                CmdletError(
                    "System.Management.Automation.CommandNotFoundException",
                    f"The term '{cmdlet}' is not recognized as a cmdlet the dev tenant serves.",
                )
            )
        try:
            result = handler(org, parameters)
        except CmdletError as error:
            return _error_response(error)
        return _fault_response(fault) if fault is not None else result


def _refusal(request: Request, state: ExchangeAdminState) -> Response | None:
    """The answer to a request without an accepted bearer token or without X-AnchorMailbox; None when it may pass."""
    authorization = request.headers.get("authorization", "")
    token = authorization[7:] if authorization.lower().startswith("bearer ") else ""
    if not token or (state.tokens is not None and token not in state.tokens):
        return Response(
            status_code=401,
            headers={
                "WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", error="invalid_token"',
                "x-ms-diagnostics": '2000001;reason="The access token is missing, expired or not issued for '
                'https://outlook.office365.com.";error_category="invalid_token"',
            },
        )
    if not request.headers.get("x-anchormailbox"):
        return _error_response(
            CmdletError("Microsoft.Exchange.Admin.OData.Core.ODataServiceException", "X-AnchorMailbox is required.")
        )
    return None


def _cmdlet_input(raw: bytes) -> tuple[str, dict[str, Any]]:
    try:
        body = json.loads(raw)
        cmdlet_input = body["CmdletInput"]
        return str(cmdlet_input["CmdletName"]), dict(cmdlet_input.get("Parameters") or {})
    except (ValueError, KeyError, TypeError):
        raise CmdletError(
            "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
            'The request body must be {"CmdletInput": {"CmdletName": ..., "Parameters": {...}}}.',
        ) from None


def _fault_response(fault: Fault) -> Response:
    if fault.empty_body:
        return Response(status_code=fault.status, headers=fault.headers)
    if fault.status == 429:  # noqa: PLR2004
        body: dict[str, Any] = {"error": {"code": "TooManyRequests", "message": fault.message}}
        return JSONResponse(body, status_code=429, headers=fault.headers)
    body = _error_body(fault.exception_type, fault.message)
    return JSONResponse(body, status_code=fault.status, headers=fault.headers)
