"""Exchange-side mailbox scoping of the app, by scoping mode, from :class:`mailplane.grants.Grants`.

- ``rbac`` (default): Exchange's service principal pointer, one management scope per distinct mailbox set (usually
  one), one management role assignment per Exchange application role, each limited to its scope. The Entra app holds
  no mailbox-scopable ``Mail.*`` application permission in this mode (RBAC grants add to Entra grants).
- ``access-policy`` (legacy, opt-in): a mail-enabled security group holding the scoped mailboxes and a
  ``RestrictAccess`` application access policy on it, limiting the app's Entra ``Mail.*`` grants.
- ``tenant-wide`` (explicit opt-in): nothing is declared.

After the objects are written a :class:`~components.exchange.verification.ScopeVerification` runs the ``Test-*``
checks for each scoped mailbox and the out-of-scope one; its report is the ``verification`` output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

from components.exchange.access_policy import ApplicationAccessPolicy
from components.exchange.management_scope import ManagementScope
from components.exchange.role_assignment import ManagementRoleAssignment
from components.exchange.security_group import MailSecurityGroup
from components.exchange.service_principal import ServicePrincipalPointer
from components.exchange.verification import ScopeVerification
from mailplane.exchange.naming import access_policy_group_alias, role_assignment_name, scope_name
from mailplane.exchange.verify import expectations_from_grants

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailplane.grants import Grants

__all__ = ["MailboxScope", "MailboxScopeArgs", "scopes_by_mailbox_set"]


def scopes_by_mailbox_set(grants: Grants) -> dict[tuple[str, ...], tuple[str, ...]]:
    """Mailbox set -> the Graph permissions (e.g. ``Mail.Send``) whose Exchange roles share it. Pure.

    Roles on different mailboxes need different scopes: one scope for all would over-grant (``Mail.ReadWrite`` on
    the sending mailbox, for instance).
    """
    sets: dict[tuple[str, ...], list[str]] = {}
    for role in grants.exchange_roles:
        sets.setdefault(tuple(sorted(m.lower() for m in role.mailboxes)), []).append(role.permission)
    return {mailboxes: tuple(sorted(permissions)) for mailboxes, permissions in sets.items() if mailboxes}


@dataclass
class MailboxScopeArgs:
    """Inputs of :class:`MailboxScope`."""

    grants: Grants
    """What to scope (``mailplane.grants.compute_grants``): the mode, the Exchange roles and their mailboxes, the
    out-of-scope mailbox used by the verification."""

    app_id: pulumi.Input[str]
    """The app's client id (``azuread.Application.client_id``)."""

    service_principal_object_id: pulumi.Input[str]
    """The app's enterprise application object id (``azuread.ServicePrincipal.object_id``), not the registration's."""

    exchange_name: str | None = None
    """Base of the Exchange object names (``mailplane-<exchange_name>``...). Default: the component name. Changing
    it renames, i.e. replaces, every Exchange object."""

    access_policy_group_alias: str | None = None
    """``access-policy`` mode: the group's alias. Default ``mailplane-<exchange_name>-scope``."""

    access_policy_group_display_name: str | None = None
    """``access-policy`` mode: the group's display name. Default "mailplane scope: <app display name>"."""

    admin_api_url: pulumi.Input[str] | None = None
    """Exchange admin API root. Default: ``MAILPLANE_EXCHANGE_ADMIN_URL`` when set, else Microsoft's endpoint."""

    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)
    """Resources that must exist first, typically the :class:`SharedMailbox` components of scoped mailboxes."""

    verify: bool = True
    """Run the ``Test-*`` checks after apply and expose them as ``verification``."""


class MailboxScope(pulumi.ComponentResource):
    """The Exchange objects that limit an app's mail permissions to the declared mailboxes."""

    pointer: ServicePrincipalPointer | None
    scopes: dict[tuple[str, ...], ManagementScope]
    role_assignments: list[ManagementRoleAssignment]
    group: MailSecurityGroup | None
    access_policy: ApplicationAccessPolicy | None
    verification_check: ScopeVerification | None
    verification: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: MailboxScopeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the children of ``args.grants.scoping_mode``; Pulumi names start with ``name``."""
        super().__init__("mailplane:mailbox_scope:MailboxScope", name, None, opts)
        grants = args.grants
        base = args.exchange_name or name
        connection: dict[str, Any] = {"tenant_id": grants.tenant_id, "admin_api_url": args.admin_api_url}
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.pointer, self.scopes, self.role_assignments = None, {}, []
        self.group, self.access_policy, self.verification_check = None, None, None
        written: list[pulumi.CustomResource] = []
        # What the verification must be re-run for: any change to who is in scope, with which role.
        triggers: list[pulumi.Input[Any]] = []

        if grants.scoping_mode == "rbac" and grants.exchange_roles:
            self.pointer = ServicePrincipalPointer(
                f"{name}-exchange-sp",
                app_id=args.app_id,
                object_id=args.service_principal_object_id,
                display_name=grants.app_display_name,
                opts=child,
                **connection,
            )
            written.append(self.pointer)
            sets = scopes_by_mailbox_set(grants)
            for mailboxes, permissions in sets.items():
                suffix = "" if len(sets) == 1 else "-" + "-".join(p.lower() for p in permissions)
                self.scopes[mailboxes] = ManagementScope(
                    f"{name}-scope{suffix}",
                    name=scope_name(base, permissions if len(sets) > 1 else ()),
                    mailboxes=list(mailboxes),
                    opts=child,
                    **connection,
                )
                written.append(self.scopes[mailboxes])
                triggers.append(self.scopes[mailboxes].recipient_restriction_filter)
            for role in grants.exchange_roles:
                scope = self.scopes[tuple(sorted(m.lower() for m in role.mailboxes))]
                assignment = ManagementRoleAssignment(
                    f"{name}-{role.permission.lower()}",
                    name=role_assignment_name(base, role.role),
                    role=role.role,
                    app=self.pointer.object_id,
                    custom_resource_scope=scope.name,
                    opts=child,
                    **connection,
                )
                self.role_assignments.append(assignment)
                written.append(assignment)
                triggers.append(assignment.custom_resource_scope)

        elif grants.scoping_mode == "access-policy" and grants.scoped_mailboxes:
            alias = access_policy_group_alias(base, args.access_policy_group_alias)
            self.group = MailSecurityGroup(
                f"{name}-group",
                alias=alias,
                display_name=args.access_policy_group_display_name or f"mailplane scope: {grants.app_display_name}",
                members=list(grants.scoped_mailboxes),
                opts=child,
                **connection,
            )
            self.access_policy = ApplicationAccessPolicy(
                f"{name}-access-policy",
                app_id=args.app_id,
                group=self.group.alias,
                description=f"mailplane: {grants.app_display_name}",
                opts=child,
                **connection,
            )
            written += [self.group, self.access_policy]
            triggers += [self.group.members, self.access_policy.identity]

        expectations = expectations_from_grants(grants)
        if args.verify and written and expectations:
            self.verification_check = ScopeVerification(
                f"{name}-verification",
                mode=grants.scoping_mode,
                app_id=args.app_id,
                expectations={mailbox: list(roles) for mailbox, roles in expectations.items()},
                triggers=[*[resource.id for resource in written], *triggers],
                opts=pulumi.ResourceOptions(parent=self, depends_on=written),
                **connection,
            )
            self.verification = pulumi.Output.all(
                status=self.verification_check.status,
                summary=self.verification_check.summary,
                checks=self.verification_check.checks,
                checked_at=self.verification_check.checked_at,
            ).apply(dict)
        else:
            if grants.scoping_mode == "tenant-wide":
                reason = "tenant-wide: nothing is scoped"
            elif not written:
                reason = "nothing to scope: the app holds no application mail permission"
            else:
                reason = "verification turned off (MailboxScopeArgs.verify)"
            self.verification = pulumi.Output.from_input({"status": "not-applicable", "summary": reason})

        self.register_outputs({"mode": grants.scoping_mode, "verification": self.verification})
