"""A legacy application access policy (``New-ApplicationAccessPolicy -AccessRight RestrictAccess``).

Microsoft says not to create new ones (RBAC for Applications replaces them); mailplane makes one only in the opt-in
``access-policy`` scoping mode, scoped to a mail-enabled security group it also declares. Identity: the identity
Exchange generates. Create adopts a policy for the same app and group with the same access right and reports one
with another access right. Only the description can change in place (``Set-ApplicationAccessPolicy``); anything else
replaces the policy, deleting the old one first (Exchange rejects two policies for one app and group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CheckFailure, CreateResult, Resource, UpdateResult

from components.exchange.provider_base import (
    SingleObjectProvider,
    connect,
    is_known,
    read_or_none,
    write_then_read_back,
)
from mailplane.exceptions import ExchangeConflictError, ExchangeNotFoundError
from mailplane.exchange.models import AccessPolicy

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = ["ACCESS_RIGHTS", "ApplicationAccessPolicy", "ApplicationAccessPolicyProvider"]

ACCESS_RIGHTS = ("RestrictAccess", "DenyAccess")


class ApplicationAccessPolicyProvider(SingleObjectProvider):
    """CRUD for ``*-ApplicationAccessPolicy``."""

    kind = "Exchange application access policy"
    update_keys = ("description",)
    replace_keys = ("app_id", "group", "access_right")
    guid_keys = ("app_id",)
    required_keys = ("app_id", "group", "access_right")
    delete_before_replace = True

    def extra_failures(self, news: dict[str, Any]) -> list[CheckFailure]:
        """The access right is RestrictAccess or DenyAccess."""
        right = news.get("access_right")
        if is_known(right) and right not in ACCESS_RIGHTS:
            return [CheckFailure("access_right", f"{self.kind}: access_right must be one of {ACCESS_RIGHTS}.")]
        return []

    def _outs(self, props: dict[str, Any], found: AccessPolicy, *, adopted: bool = False) -> dict[str, Any]:
        return {
            **self.connection(props),
            "app_id": found.app_id,
            "group": props["group"],
            "scope_name": found.scope_name,
            "access_right": found.access_right,
            "description": found.description,
            "identity": found.identity,
            "adopted": adopted,
        }

    @staticmethod
    def _find(client: ExchangeAdminClient, app_id: str, group_names: set[str]) -> AccessPolicy | None:
        for policy in client.list_access_policies():
            if policy.app_id == app_id and policy.scope_name.lower() in group_names:
                return policy
        return None

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the policy, or adopt the one this app already has on this group."""
        app_id, group_id = str(props["app_id"]).lower(), str(props["group"])
        right, description = str(props["access_right"]), str(props.get("description") or "")
        with connect(props) as client:
            try:
                group = client.get_distribution_group(group_id)
            except ExchangeNotFoundError:
                raise ExchangeNotFoundError(
                    f"creating the {self.kind} for app {app_id}: the scope group {group_id!r} does not exist. "
                    "Declare it (mailplane creates it in access-policy mode) and run again.",
                    cmdlet="Get-DistributionGroup",
                ) from None
            names = {group.name.lower(), group.alias.lower()}
            existing = self._find(client, app_id, names)
            if existing is not None:
                if existing.access_right != right:
                    raise ExchangeConflictError(
                        f"creating the {self.kind} for app {app_id} on {group_id!r}: a policy with AccessRight "
                        f"{existing.access_right} already exists ({existing.identity}), not {right}. Remove it "
                        "(Remove-ApplicationAccessPolicy) and run again.",
                        cmdlet="New-ApplicationAccessPolicy",
                    )
                if existing.description != description:
                    existing = client.set_access_policy(existing.identity, description)
                return CreateResult(existing.identity, self._outs(props, existing, adopted=True))
            created = write_then_read_back(
                lambda: client.create_access_policy(app_id, group_id, right, description),
                lambda: self._find(client, app_id, names),
            )
        return CreateResult(created.identity, self._outs(props, created))

    def fetch(self, client: ExchangeAdminClient, id_: str) -> AccessPolicy:
        """The policy as Exchange has it."""
        return client.get_access_policy(id_)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Change the description (the only in-place change Exchange allows)."""
        with connect(news) as client:
            found = client.set_access_policy(id_, str(news.get("description") or ""))
        return UpdateResult(self._outs(news, found, adopted=bool(olds.get("adopted"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the policy (Exchange takes up to 30 minutes to stop applying it); already gone is fine."""
        with connect(props) as client:
            if read_or_none(lambda: client.get_access_policy(id_)) is not None:
                client.delete_access_policy(id_)


class ApplicationAccessPolicy(Resource, module="exchange", name="ApplicationAccessPolicy"):
    """A legacy access policy limiting an app's Entra mail permissions to a group's members."""

    app_id: pulumi.Output[str]
    group: pulumi.Output[str]
    scope_name: pulumi.Output[str]
    access_right: pulumi.Output[str]
    description: pulumi.Output[str]
    identity: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        app_id: pulumi.Input[str],
        group: pulumi.Input[str],
        description: pulumi.Input[str] = "",
        access_right: pulumi.Input[str] = "RestrictAccess",
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``app_id`` is the app's client id; ``group`` the mail-enabled security group's alias."""
        super().__init__(
            ApplicationAccessPolicyProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "app_id": app_id,
                "group": group,
                "access_right": access_right,
                "description": description,
                "scope_name": None,
                "identity": None,
                "adopted": None,
            },
            opts,
        )
