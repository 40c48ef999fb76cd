"""A management role assignment for an app (``New-ManagementRoleAssignment -App -Role -CustomResourceScope``).

The assignment gets an explicit name (``mailplane-<component>-<permission>``) so it is found again: Exchange would
otherwise generate one. Identity: that name. Create adopts an assignment with the same name, role, app and scope;
one that differs in role or app is reported. The scope is changed in place (``Set-ManagementRoleAssignment``);
another role or app replaces the assignment, deleting the old one first (the name stays the same).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CheckFailure, CreateResult, Resource, UpdateResult

from components.exchange.provider_base import (
    SingleObjectProvider,
    connect,
    is_known,
    read_or_none,
    write_then_read_back,
)
from mailplane.exceptions import ExchangeConflictError
from mailplane.exchange.models import RoleAssignment as AssignmentObject
from mailplane.exchange.naming import MAX_NAME_LENGTH
from mailplane.exchange.reconcile import mismatches

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = ["ManagementRoleAssignment", "ManagementRoleAssignmentProvider"]

_GUID = re.compile(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")


class ManagementRoleAssignmentProvider(SingleObjectProvider):
    """CRUD for ``*-ManagementRoleAssignment`` with ``-App``."""

    kind = "Exchange management role assignment"
    update_keys = ("custom_resource_scope",)
    replace_keys = ("name", "role", "app")
    guid_keys = ("app",)
    required_keys = ("name", "role", "app", "custom_resource_scope")
    delete_before_replace = True

    def extra_failures(self, news: dict[str, Any]) -> list[CheckFailure]:
        """Exchange limits names to 64 characters; app roles all start with "Application "."""
        failures = []
        name, role = news.get("name"), news.get("role")
        if is_known(name) and len(str(name)) > MAX_NAME_LENGTH:
            failures.append(CheckFailure("name", f"{self.kind}: {name!r} is longer than {MAX_NAME_LENGTH} characters."))
        if is_known(role) and not str(role).startswith("Application "):
            failures.append(
                CheckFailure(
                    "role", f"{self.kind}: {role!r} is not an application role (e.g. 'Application Mail.Send')."
                )
            )
        return failures

    def _outs(self, props: dict[str, Any], found: AssignmentObject, *, adopted: bool = False) -> dict[str, Any]:
        assignee = found.role_assignee.lower()
        return {
            **self.connection(props),
            "name": found.name,
            "role": found.role,
            # RoleAssignee is the pointer's object id here; if Exchange reports a display name instead, it cannot be
            # compared, so the declared app stands.
            "app": assignee if _GUID.match(assignee) else str(props["app"]).lower(),
            "custom_resource_scope": found.custom_resource_scope,
            "recipient_write_scope": found.recipient_write_scope,
            "adopted": adopted,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the assignment, or adopt a matching one with this name."""
        name = str(props["name"])
        desired = {
            "role": props["role"],
            "app": str(props["app"]).lower(),
            "custom_resource_scope": props["custom_resource_scope"],
        }
        with connect(props) as client:
            existing = read_or_none(lambda: client.get_role_assignment(name))
            if existing is not None:
                actual = self._outs(props, existing)
                identity_differences = mismatches({k: desired[k] for k in ("role", "app")}, actual)
                if identity_differences:
                    raise ExchangeConflictError(
                        f"creating the {self.kind} {name!r}: an assignment with this name exists but "
                        f"{'; '.join(identity_differences)}. Remove it (Remove-ManagementRoleAssignment) or choose "
                        "another component name, then run again.",
                        cmdlet="New-ManagementRoleAssignment",
                    )
                if existing.custom_resource_scope.lower() != str(desired["custom_resource_scope"]).lower():
                    existing = client.set_role_assignment(name, str(desired["custom_resource_scope"]))
                return CreateResult(name, self._outs(props, existing, adopted=True))
            created = write_then_read_back(
                lambda: client.create_role_assignment(
                    name, str(props["role"]), str(props["app"]), str(props["custom_resource_scope"])
                ),
                lambda: read_or_none(lambda: client.get_role_assignment(name)),
            )
        return CreateResult(name, self._outs(props, created))

    def fetch(self, client: ExchangeAdminClient, id_: str) -> AssignmentObject:
        """The assignment as Exchange has it (a re-scope outside Pulumi shows as a diff)."""
        return client.get_role_assignment(id_)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Re-scope the assignment in place."""
        with connect(news) as client:
            found = client.set_role_assignment(id_, str(news["custom_resource_scope"]))
        return UpdateResult(self._outs(news, found, adopted=bool(olds.get("adopted"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the assignment; already gone (e.g. removed with its pointer) is fine."""
        with connect(props) as client:
            if read_or_none(lambda: client.get_role_assignment(id_)) is not None:
                client.delete_role_assignment(id_)


class ManagementRoleAssignment(Resource, module="exchange", name="ManagementRoleAssignment"):
    """An RBAC for Applications role given to an app, limited to a management scope."""

    name: pulumi.Output[str]
    role: pulumi.Output[str]
    app: pulumi.Output[str]
    custom_resource_scope: pulumi.Output[str]
    recipient_write_scope: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        name: pulumi.Input[str],
        role: pulumi.Input[str],
        app: pulumi.Input[str],
        custom_resource_scope: pulumi.Input[str],
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Assign ``role`` (e.g. ``"Application Mail.Send"``) to ``app`` within ``custom_resource_scope``.

        ``app`` is the service principal's object id (its Exchange pointer must exist); ``custom_resource_scope`` is
        the management scope's name.
        """
        super().__init__(
            ManagementRoleAssignmentProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "name": name,
                "role": role,
                "app": app,
                "custom_resource_scope": custom_resource_scope,
                "recipient_write_scope": None,
                "adopted": None,
            },
            opts,
        )
