"""A thin client for Exchange Online admin cmdlets over the ``InvokeCommand`` REST endpoint.

This is the transport of Microsoft's own Exchange Online PowerShell module: every cmdlet, reads included, is a
``POST {base_url}/{tenant}/InvokeCommand`` with ``{"CmdletInput": {"CmdletName": ..., "Parameters": {...}}}``. It is
not a contract Microsoft publishes, so the client keeps to the shapes several independent callers rely on (see
docs/exchange.md): PascalCase rows in ``value``, paging by POSTing the same body to ``@odata.nextLink``, and errors as
``<id>|<exception type>|<text>`` in ``error.details``.

Retries: reads (``Get-*``, ``Test-*``) are retried on 429, 5xx and connection failures; writes only on 429 and on a
connection that never opened, because a replayed ``New-*`` fails as a duplicate. Callers reconcile a write that got
a 5xx by reading the object back.

The token is fetched from the credential for every call (azure-identity caches it) and never logged.
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import time
from typing import TYPE_CHECKING, Any, Protocol, Self

import httpx

from mailplane.exceptions import ExchangeError, ExchangeNotFoundError
from mailplane.exchange.errors import error_from_response
from mailplane.exchange.models import (
    AccessPolicy,
    AccessPolicyCheck,
    AuthorizationCheck,
    DistributionGroup,
    Mailbox,
    MailboxPermissionEntry,
    ManagementScope,
    Recipient,
    RecipientPermissionEntry,
    RoleAssignment,
    ServicePrincipalPointer,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_BASE_URL",
    "EXCHANGE_SCOPE",
    "ExchangeAdminClient",
    "StaticTokenCredential",
    "app_only_anchor_mailbox",
]

DEFAULT_BASE_URL = "https://outlook.office365.com/adminapi/beta"
EXCHANGE_SCOPE = "https://outlook.office365.com/.default"
_SYSTEM_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
_READ_VERBS = ("Get-", "Test-")
_THROTTLE_TEXT = "maximum number of concurrent requests"
_MAX_RETRY_AFTER_SECONDS = 60.0

logger = logging.getLogger(__name__)


class _AccessToken(Protocol):
    token: str


class TokenCredentialLike(Protocol):
    """What the client needs from a credential: azure-identity's ``TokenCredential.get_token``."""

    def get_token(self, *scopes: str, **kwargs: Any) -> _AccessToken:
        """Return an access token for ``scopes``."""
        ...


class _StaticToken:
    __slots__ = ("expires_on", "token")

    def __init__(self, token: str, expires_on: int) -> None:
        self.token = token
        self.expires_on = expires_on


class StaticTokenCredential:
    """A credential holding an already-issued access token (a pipeline step fetched it, or a test made it up)."""

    __slots__ = ("_token",)

    def __init__(self, token: str) -> None:
        """Keep ``token``; it is never shown in ``repr``."""
        if not token:
            raise ValueError("StaticTokenCredential needs a non-empty token")
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> _StaticToken:  # noqa: ARG002 - the token is fixed.
        """The stored token, with an expiry an hour from now (the caller cannot refresh it anyway)."""
        return _StaticToken(self._token, int(time.time()) + 3600)

    def __repr__(self) -> str:
        """Never the token."""
        return "StaticTokenCredential(token=[redacted])"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~50 ms); providers make a client per operation, so share one.
    import certifi  # noqa: PLC0415 - httpx's own dependency, only needed here.

    return ssl.create_default_context(cafile=certifi.where())


def app_only_anchor_mailbox(tenant_id: str) -> str:
    """The ``X-AnchorMailbox`` value app-only callers send: the tenant's system mailbox."""
    return f"APP:{_SYSTEM_MAILBOX}@{tenant_id}"


def _target(parameters: Mapping[str, Any]) -> str | None:
    for key in ("Identity", "Name", "AppId"):
        value = parameters.get(key)
        if value:
            return str(value)
    return None


class ExchangeAdminClient:
    """Run Exchange Online admin cmdlets for one tenant.

    ``credential`` is any azure-identity ``TokenCredential`` (a certificate or secret credential of an app holding
    ``Exchange.ManageAsApp``, a managed identity, ...). ``http_client`` lets tests and callers share an
    ``httpx.Client``; when omitted the client makes its own (close it with :meth:`close` or ``with``).
    The client is immutable: every setting is fixed at construction.
    """

    __slots__ = (
        "_anchor_mailbox",
        "_base_url",
        "_credential",
        "_http",
        "_max_retries",
        "_owns_http",
        "_page_size",
        "_retry_backoff_seconds",
        "_tenant_id",
    )

    def __init__(
        self,
        credential: TokenCredentialLike,
        *,
        tenant_id: str,
        base_url: str = DEFAULT_BASE_URL,
        http_client: httpx.Client | None = None,
        page_size: int = 1000,
        max_retries: int = 4,
        retry_backoff_seconds: float = 1.0,
        anchor_mailbox: str | None = None,
    ) -> None:
        """Configure the client; nothing is sent until the first cmdlet.

        ``anchor_mailbox`` defaults to the app-only system mailbox; pass ``UPN:<admin upn>`` for a delegated token.
        """
        if not tenant_id:
            raise ValueError("ExchangeAdminClient needs the tenant id (GUID) or its *.onmicrosoft.com domain")
        self._credential = credential
        self._tenant_id = tenant_id
        self._base_url = base_url.rstrip("/")
        self._owns_http = http_client is None
        # REST cmdlets may run up to 15 minutes server-side before the service gives up.
        self._http = http_client or httpx.Client(verify=_tls_context(), timeout=httpx.Timeout(30.0, read=900.0))
        self._page_size = page_size
        self._max_retries = max_retries
        self._retry_backoff_seconds = retry_backoff_seconds
        self._anchor_mailbox = anchor_mailbox or app_only_anchor_mailbox(tenant_id)

    def __setattr__(self, name: str, value: Any) -> None:
        """Allow each slot to be set once, in ``__init__``."""
        if hasattr(self, name):
            raise AttributeError(f"ExchangeAdminClient is immutable; {name} cannot be changed")
        object.__setattr__(self, name, value)

    @property
    def tenant_id(self) -> str:
        """The tenant every call goes to."""
        return self._tenant_id

    @property
    def base_url(self) -> str:
        """The admin API root, e.g. ``https://outlook.office365.com/adminapi/beta``."""
        return self._base_url

    def __repr__(self) -> str:
        """Tenant and endpoint only."""
        return f"ExchangeAdminClient(tenant_id={self._tenant_id!r}, base_url={self._base_url!r})"

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        """Use as a context manager."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on exit."""
        self.close()

    # -- transport -----------------------------------------------------------------------------------------------

    def invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run ``cmdlet`` with ``parameters`` and return every row of every page.

        Switches are JSON ``true``; ``Confirm: false`` is added to ``Remove-*`` cmdlets. Raises an
        :class:`~mailplane.exceptions.ExchangeError` subclass on failure.
        """
        parameters = dict(parameters or {})
        if cmdlet.startswith("Remove-"):
            parameters.setdefault("Confirm", False)
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}}
        url: str | None = f"{self._base_url}/{self._tenant_id}/InvokeCommand"
        rows: list[dict[str, Any]] = []
        while url:
            page = self._post(cmdlet, _target(parameters), url, body)
            value = page.get("value")
            if isinstance(value, list):
                rows.extend(row for row in value if isinstance(row, dict))
            elif isinstance(value, dict):
                rows.append(value)
            for warning in page.get("@adminapi.warnings") or []:
                logger.warning("%s: Exchange warning: %s", cmdlet, warning)
            url = page.get("@odata.nextLink")
        return rows

    def _headers(self) -> dict[str, str]:
        token = self._credential.get_token(EXCHANGE_SCOPE).token
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "X-AnchorMailbox": self._anchor_mailbox,
            "Prefer": f"odata.maxpagesize={self._page_size}",
            "X-ClientApplication": "mailplane",
        }

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), _MAX_RETRY_AFTER_SECONDS)
            except ValueError:
                pass
        return self._retry_backoff_seconds * (2**attempt) * (0.5 + random.random() / 2)  # noqa: S311 - jitter.

    def _post(self, cmdlet: str, target: str | None, url: str, body: dict[str, Any]) -> dict[str, Any]:
        is_read = cmdlet.startswith(_READ_VERBS)
        attempt = 0
        while True:
            headers = {**self._headers(), "X-CmdletName": cmdlet}
            try:
                response = self._http.post(url, json=body, headers=headers)
            except httpx.TransportError as error:
                # A connection that never opened cannot have run the cmdlet, so even a write may be retried.
                retryable = is_read or isinstance(error, httpx.ConnectError)
                if retryable and attempt < self._max_retries:
                    time.sleep(self._delay(attempt, None))
                    attempt += 1
                    continue
                where = f" on {target!r}" if target else ""
                raise ExchangeError(
                    f"running {cmdlet}{where}: could not reach {self._base_url}: {type(error).__name__}: {error}. "
                    "Check the network path to Exchange Online and run again"
                    + ("." if is_read else "; the write may or may not have been applied."),
                    cmdlet=cmdlet,
                ) from None
            status = response.status_code
            if status < 400:  # noqa: PLR2004
                return self._json(cmdlet, response)
            throttled = status == 429 or (status >= 500 and _THROTTLE_TEXT in response.text)  # noqa: PLR2004
            transient = throttled or (is_read and status >= 500 and not _is_deterministic(response))  # noqa: PLR2004
            if transient and attempt < self._max_retries:
                delay = self._delay(attempt, response.headers.get("Retry-After"))
                logger.info("%s: HTTP %s, retrying in %.1fs (attempt %d)", cmdlet, status, delay, attempt + 1)
                time.sleep(delay)
                attempt += 1
                continue
            raise error_from_response(
                cmdlet, target, status, response.content, response.headers.get("x-ms-diagnostics")
            )

    @staticmethod
    def _json(cmdlet: str, response: httpx.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            document = response.json()
        except ValueError:
            raise ExchangeError(
                f"running {cmdlet}: the answer was not JSON (HTTP {response.status_code}, "
                f"{response.headers.get('content-type', 'no content type')}). Check the admin API base URL.",
                cmdlet=cmdlet,
                status=response.status_code,
            ) from None
        return document if isinstance(document, dict) else {"value": document}

    def _one(self, cmdlet: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        rows = self.invoke(cmdlet, parameters)
        if not rows:
            target = _target(parameters)
            raise ExchangeNotFoundError(
                f"running {cmdlet} on {target!r}: the object was not returned. Check the name.", cmdlet=cmdlet
            )
        return rows[0]

    def _created(self, cmdlet: str, parameters: Mapping[str, Any], read_back: Any) -> dict[str, Any]:
        # New-* cmdlets normally answer with the new object; if one answers with an empty value, read it back.
        rows = self.invoke(cmdlet, parameters)
        return rows[0] if rows else read_back().raw

    # -- service principal pointers ------------------------------------------------------------------------------

    def get_service_principal(self, identity: str) -> ServicePrincipalPointer:
        """The pointer with this AppId, ObjectId, name or GUID (``ExchangeNotFoundError`` when absent)."""
        return ServicePrincipalPointer.from_row(self._one("Get-ServicePrincipal", {"Identity": identity}))

    def list_service_principals(self) -> list[ServicePrincipalPointer]:
        """Every service principal pointer in the organisation."""
        return [ServicePrincipalPointer.from_row(r) for r in self.invoke("Get-ServicePrincipal")]

    def create_service_principal(self, app_id: str, object_id: str, display_name: str) -> ServicePrincipalPointer:
        """``New-ServicePrincipal``: point Exchange at an Entra enterprise app (its SP object id, not the app's)."""
        row = self._created(
            "New-ServicePrincipal",
            {"AppId": app_id, "ObjectId": object_id, "DisplayName": display_name},
            lambda: self.get_service_principal(object_id),
        )
        return ServicePrincipalPointer.from_row(row)

    def set_service_principal(self, identity: str, display_name: str) -> ServicePrincipalPointer:
        """``Set-ServicePrincipal -DisplayName``, then read it back."""
        self.invoke("Set-ServicePrincipal", {"Identity": identity, "DisplayName": display_name})
        return self.get_service_principal(identity)

    def delete_service_principal(self, identity: str) -> None:
        """``Remove-ServicePrincipal`` (Exchange also removes the pointer's role assignments)."""
        self.invoke("Remove-ServicePrincipal", {"Identity": identity})

    # -- management scopes ---------------------------------------------------------------------------------------

    def get_management_scope(self, name: str) -> ManagementScope:
        """The scope called ``name``."""
        return ManagementScope.from_row(self._one("Get-ManagementScope", {"Identity": name}))

    def create_management_scope(self, name: str, recipient_restriction_filter: str) -> ManagementScope:
        """``New-ManagementScope -RecipientRestrictionFilter`` (never exclusive: exclusive scopes do not limit apps)."""
        row = self._created(
            "New-ManagementScope",
            {"Name": name, "RecipientRestrictionFilter": recipient_restriction_filter},
            lambda: self.get_management_scope(name),
        )
        return ManagementScope.from_row(row)

    def set_management_scope(self, name: str, recipient_restriction_filter: str) -> ManagementScope:
        """Change the scope's filter, then read it back (``Set-*`` returns nothing)."""
        self.invoke(
            "Set-ManagementScope", {"Identity": name, "RecipientRestrictionFilter": recipient_restriction_filter}
        )
        return self.get_management_scope(name)

    def delete_management_scope(self, name: str) -> None:
        """``Remove-ManagementScope`` (fails while an assignment uses it)."""
        self.invoke("Remove-ManagementScope", {"Identity": name})

    # -- management role assignments -----------------------------------------------------------------------------

    def get_role_assignment(self, name: str) -> RoleAssignment:
        """The role assignment called ``name``."""
        return RoleAssignment.from_row(self._one("Get-ManagementRoleAssignment", {"Identity": name}))

    def list_role_assignments(self, *, app: str | None = None) -> list[RoleAssignment]:
        """Role assignments, optionally only those of one app (``-RoleAssignee``)."""
        parameters = {"RoleAssignee": app} if app else {}
        return [RoleAssignment.from_row(r) for r in self.invoke("Get-ManagementRoleAssignment", parameters)]

    def create_role_assignment(self, name: str, role: str, app: str, custom_resource_scope: str) -> RoleAssignment:
        """``New-ManagementRoleAssignment -Name -Role -App -CustomResourceScope``; ``name`` is at most 64 characters."""
        row = self._created(
            "New-ManagementRoleAssignment",
            {"Name": name, "Role": role, "App": app, "CustomResourceScope": custom_resource_scope},
            lambda: self.get_role_assignment(name),
        )
        return RoleAssignment.from_row(row)

    def set_role_assignment(self, name: str, custom_resource_scope: str) -> RoleAssignment:
        """Re-scope an assignment in place, then read it back."""
        self.invoke("Set-ManagementRoleAssignment", {"Identity": name, "CustomResourceScope": custom_resource_scope})
        return self.get_role_assignment(name)

    def delete_role_assignment(self, name: str) -> None:
        """``Remove-ManagementRoleAssignment``."""
        self.invoke("Remove-ManagementRoleAssignment", {"Identity": name})

    def test_service_principal_authorization(
        self, identity: str, resource: str | None = None
    ) -> list[AuthorizationCheck]:
        """``Test-ServicePrincipalAuthorization``: the app's roles and, with ``resource``, whether it is in scope.

        It reads the RBAC configuration directly (no cache) and ignores Entra grants.
        """
        parameters = {"Identity": identity}
        if resource:
            parameters["Resource"] = resource
        return [AuthorizationCheck.from_row(r) for r in self.invoke("Test-ServicePrincipalAuthorization", parameters)]

    # -- application access policies (legacy) -------------------------------------------------------------------

    def get_access_policy(self, identity: str) -> AccessPolicy:
        """The access policy with this (server-generated) identity."""
        return AccessPolicy.from_row(self._one("Get-ApplicationAccessPolicy", {"Identity": identity}))

    def list_access_policies(self) -> list[AccessPolicy]:
        """Every access policy in the organisation."""
        return [AccessPolicy.from_row(r) for r in self.invoke("Get-ApplicationAccessPolicy")]

    def create_access_policy(self, app_id: str, group: str, access_right: str, description: str) -> AccessPolicy:
        """``New-ApplicationAccessPolicy -AppId -PolicyScopeGroupId -AccessRight -Description``."""
        row = self._one(
            "New-ApplicationAccessPolicy",
            {"AppId": [app_id], "PolicyScopeGroupId": group, "AccessRight": access_right, "Description": description},
        )
        return AccessPolicy.from_row(row)

    def set_access_policy(self, identity: str, description: str) -> AccessPolicy:
        """Change the description, the only thing ``Set-ApplicationAccessPolicy`` can change."""
        self.invoke("Set-ApplicationAccessPolicy", {"Identity": identity, "Description": description})
        return self.get_access_policy(identity)

    def delete_access_policy(self, identity: str) -> None:
        """``Remove-ApplicationAccessPolicy``."""
        self.invoke("Remove-ApplicationAccessPolicy", {"Identity": identity})

    def test_access_policy(self, mailbox: str, app_id: str) -> AccessPolicyCheck:
        """``Test-ApplicationAccessPolicy``: Granted or Denied for one mailbox."""
        return AccessPolicyCheck.from_row(
            self._one("Test-ApplicationAccessPolicy", {"Identity": mailbox, "AppId": app_id})
        )

    # -- recipients and mail-enabled security groups ------------------------------------------------------------

    def get_recipient(self, identity: str) -> Recipient:
        """Any recipient by address, alias, name or GUID."""
        return Recipient.from_row(self._one("Get-Recipient", {"Identity": identity}))

    def get_distribution_group(self, identity: str) -> DistributionGroup:
        """A distribution or mail-enabled security group."""
        return DistributionGroup.from_row(self._one("Get-DistributionGroup", {"Identity": identity}))

    def create_security_group(
        self, name: str, alias: str, display_name: str, primary_smtp_address: str | None = None
    ) -> DistributionGroup:
        """``New-DistributionGroup -Type Security``: a mail-enabled security group."""
        parameters: dict[str, Any] = {"Name": name, "Alias": alias, "DisplayName": display_name, "Type": "Security"}
        if primary_smtp_address:
            parameters["PrimarySmtpAddress"] = primary_smtp_address
        return DistributionGroup.from_row(
            self._created("New-DistributionGroup", parameters, lambda: self.get_distribution_group(alias))
        )

    def delete_distribution_group(self, identity: str) -> None:
        """``Remove-DistributionGroup`` (as an owner-independent admin)."""
        self.invoke("Remove-DistributionGroup", {"Identity": identity, "BypassSecurityGroupManagerCheck": True})

    def list_distribution_group_members(self, identity: str) -> list[Recipient]:
        """Direct members of a group."""
        return [Recipient.from_row(r) for r in self.invoke("Get-DistributionGroupMember", {"Identity": identity})]

    def create_distribution_group_member(self, identity: str, member: str) -> None:
        """``Add-DistributionGroupMember``."""
        self.invoke(
            "Add-DistributionGroupMember",
            {"Identity": identity, "Member": member, "BypassSecurityGroupManagerCheck": True},
        )

    def delete_distribution_group_member(self, identity: str, member: str) -> None:
        """``Remove-DistributionGroupMember``."""
        self.invoke(
            "Remove-DistributionGroupMember",
            {"Identity": identity, "Member": member, "BypassSecurityGroupManagerCheck": True},
        )

    # -- mailboxes -----------------------------------------------------------------------------------------------

    def get_mailbox(self, identity: str, *, soft_deleted: bool = False) -> Mailbox:
        """A mailbox; with ``soft_deleted`` only among removed (recoverable) mailboxes."""
        parameters: dict[str, Any] = {"Identity": identity}
        if soft_deleted:
            parameters["SoftDeletedMailbox"] = True
        return Mailbox.from_row(self._one("Get-Mailbox", parameters))

    def list_mailboxes(self, *, recipient_type_details: str | None = None) -> list[Mailbox]:
        """Mailboxes, optionally of one kind (``SharedMailbox``, ``UserMailbox``)."""
        parameters = {"RecipientTypeDetails": recipient_type_details} if recipient_type_details else {}
        return [Mailbox.from_row(r) for r in self.invoke("Get-Mailbox", parameters)]

    def create_shared_mailbox(self, name: str, display_name: str, alias: str, primary_smtp_address: str) -> Mailbox:
        """``New-Mailbox -Shared``: no password, its user account is created disabled."""
        row = self._created(
            "New-Mailbox",
            {
                "Shared": True,
                "Name": name,
                "DisplayName": display_name,
                "Alias": alias,
                "PrimarySmtpAddress": primary_smtp_address,
            },
            lambda: self.get_mailbox(primary_smtp_address),
        )
        return Mailbox.from_row(row)

    def set_mailbox(
        self, identity: str, *, display_name: str | None = None, account_disabled: bool | None = None
    ) -> Mailbox:
        """``Set-Mailbox`` with the given changes, then read it back."""
        parameters: dict[str, Any] = {"Identity": identity}
        if display_name is not None:
            parameters["DisplayName"] = display_name
        if account_disabled is not None:
            parameters["AccountDisabled"] = account_disabled
        self.invoke("Set-Mailbox", parameters)
        return self.get_mailbox(identity)

    def delete_mailbox(self, identity: str, *, permanently: bool = False) -> None:
        """``Remove-Mailbox``: soft delete (recoverable for 30 days), or purge a soft-deleted one."""
        parameters: dict[str, Any] = {"Identity": identity}
        if permanently:
            parameters["PermanentlyDelete"] = True
        self.invoke("Remove-Mailbox", parameters)

    # -- mailbox permissions (FullAccess) and recipient permissions (SendAs) ------------------------------------

    def list_mailbox_permissions(self, identity: str, *, user: str | None = None) -> list[MailboxPermissionEntry]:
        """The mailbox's ACEs (including system and inherited ones; filter before diffing)."""
        parameters = {"Identity": identity}
        if user:
            parameters["User"] = user
        return [MailboxPermissionEntry.from_row(r) for r in self.invoke("Get-MailboxPermission", parameters)]

    def create_mailbox_permission(self, identity: str, user: str, *, auto_mapping: bool = False) -> None:
        """``Add-MailboxPermission -AccessRights FullAccess -InheritanceType All -AutoMapping``."""
        self.invoke(
            "Add-MailboxPermission",
            {
                "Identity": identity,
                "User": user,
                "AccessRights": ["FullAccess"],
                "InheritanceType": "All",
                "AutoMapping": auto_mapping,
            },
        )

    def delete_mailbox_permission(self, identity: str, user: str) -> None:
        """``Remove-MailboxPermission -AccessRights FullAccess``."""
        self.invoke(
            "Remove-MailboxPermission",
            {"Identity": identity, "User": user, "AccessRights": ["FullAccess"], "InheritanceType": "All"},
        )

    def list_recipient_permissions(
        self, identity: str, *, trustee: str | None = None
    ) -> list[RecipientPermissionEntry]:
        """The recipient's SendAs ACEs."""
        parameters = {"Identity": identity}
        if trustee:
            parameters["Trustee"] = trustee
        return [RecipientPermissionEntry.from_row(r) for r in self.invoke("Get-RecipientPermission", parameters)]

    def create_recipient_permission(self, identity: str, trustee: str) -> None:
        """``Add-RecipientPermission -AccessRights SendAs``."""
        self.invoke(
            "Add-RecipientPermission",
            {"Identity": identity, "Trustee": trustee, "AccessRights": ["SendAs"], "Confirm": False},
        )

    def delete_recipient_permission(self, identity: str, trustee: str) -> None:
        """``Remove-RecipientPermission -AccessRights SendAs``."""
        self.invoke(
            "Remove-RecipientPermission", {"Identity": identity, "Trustee": trustee, "AccessRights": ["SendAs"]}
        )


def _is_deterministic(response: httpx.Response) -> bool:
    # A 5xx whose body names a cmdlet exception (object not found, already exists) will fail the same way again.
    text = response.text
    return "|Microsoft.Exchange." in text and "Transient" not in text
