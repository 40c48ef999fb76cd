"""A mail-enabled security group and its direct members: the scope of a legacy application access policy.

Cmdlets: ``New-DistributionGroup -Type Security``, ``Add-/Remove-DistributionGroupMember``.

Entra (and pulumi-azuread) cannot make mail-enabled security groups, so Exchange does. Identity: the alias.
Create checks every member exists first, then creates the group (or adopts a mail-enabled security group with that
alias; any other kind of recipient is reported) and adds the missing members; a run that failed half-way is
finished by the next one. Members are reconciled in place; another alias, name or display name replaces the group,
deleting the old one first (the alias is unique in the organisation). A group holds no mail and is deleted with the
stack.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, Resource, UpdateResult

from components.exchange.management_scope import require_recipients
from components.exchange.provider_base import ExchangeProvider, connect, is_known, read_or_none, write_then_read_back
from mailplane.exceptions import ExchangeConflictError, ExchangeNotFoundError
from mailplane.exchange.reconcile import member_changes

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient
    from mailplane.exchange.models import DistributionGroup

__all__ = ["MailSecurityGroup", "MailSecurityGroupProvider"]

_ALIAS = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class MailSecurityGroupProvider(ExchangeProvider):
    """CRUD for a mail-enabled security group with a declared member list."""

    kind = "Exchange mail-enabled security group"
    update_keys = ("members",)
    replace_keys = ("alias", "name", "display_name")
    address_keys = ("members",)
    required_keys = ("alias", "name", "display_name")
    delete_before_replace = True

    def extra_failures(self, news: dict[str, Any]) -> list[CheckFailure]:
        """Aliases are letters, digits, ``.``, ``_`` and ``-``, at most 64."""
        alias = news.get("alias")
        if is_known(alias) and not _ALIAS.match(str(alias)):
            return [CheckFailure("alias", f"{self.kind}: alias {alias!r} must match {_ALIAS.pattern}.")]
        return []

    def normalised_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        """Members sorted and lower-cased, so order never shows as a change."""
        members = news.get("members") or []
        if all(is_known(m) for m in members):
            news["members"] = sorted({str(m).lower() for m in members})
        return news

    def _outs(
        self, props: dict[str, Any], group: DistributionGroup, members: list[str], *, adopted: bool = False
    ) -> dict[str, Any]:
        return {
            **self.connection(props),
            "alias": group.alias,
            "name": group.name,
            "display_name": group.display_name,
            "members": sorted(members),
            "primary_smtp_address": group.primary_smtp_address,
            "distinguished_name": group.distinguished_name,
            "adopted": adopted,
        }

    @staticmethod
    def _members(client: ExchangeAdminClient, alias: str) -> list[str]:
        return [m.primary_smtp_address for m in client.list_distribution_group_members(alias)]

    def _reconcile(self, client: ExchangeAdminClient, alias: str, desired: list[str]) -> list[str]:
        changes = member_changes(desired, self._members(client, alias))
        for member in changes.add:
            client.create_distribution_group_member(alias, member)
        for member in changes.remove:
            client.delete_distribution_group_member(alias, member)
        return self._members(client, alias)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Check members, create or adopt the group, then add the missing members."""
        alias = str(props["alias"])
        members = list(props.get("members") or [])
        with connect(props) as client:
            require_recipients(client, members, f"creating the {self.kind} {alias!r}")
            group = read_or_none(lambda: client.get_distribution_group(alias))
            adopted = group is not None
            if group is None:
                try:
                    other = client.get_recipient(alias)
                except ExchangeNotFoundError:
                    other = None
                if other is not None:
                    raise ExchangeConflictError(
                        f"creating the {self.kind} {alias!r}: the alias is taken by a {other.recipient_type_details} "
                        f"({other.primary_smtp_address}). Set mailplane:scoping.accessPolicyGroup.alias to a free "
                        "alias.",
                        cmdlet="New-DistributionGroup",
                    )
                group = write_then_read_back(
                    lambda: client.create_security_group(str(props["name"]), alias, str(props["display_name"])),
                    lambda: read_or_none(lambda: client.get_distribution_group(alias)),
                )
            elif not group.is_security_group:
                raise ExchangeConflictError(
                    f"creating the {self.kind} {alias!r}: a {group.recipient_type_details} with this alias exists; an "
                    "access policy needs a mail-enabled security group. Choose another alias.",
                    cmdlet="New-DistributionGroup",
                )
            current = self._reconcile(client, alias, members)
        return CreateResult(alias, self._outs(props, group, current, adopted=adopted))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The group and its current members (members changed outside Pulumi show as a diff), or gone."""
        with connect(props) as client:
            group = read_or_none(lambda: client.get_distribution_group(id_))
            if group is None:
                return ReadResult("", {})
            members = self._members(client, id_)
        return ReadResult(id_, self._outs(props, group, members, adopted=bool(props.get("adopted"))))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Add and remove members."""
        members = list(news.get("members") or [])
        with connect(news) as client:
            require_recipients(client, members, f"updating the {self.kind} {id_!r}")
            current = self._reconcile(client, id_, members)
            group = client.get_distribution_group(id_)
        return UpdateResult(self._outs(news, group, current, adopted=bool(olds.get("adopted"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the group (it holds no mail); already gone is fine."""
        with connect(props) as client:
            if read_or_none(lambda: client.get_distribution_group(id_)) is not None:
                client.delete_distribution_group(id_)


class MailSecurityGroup(Resource, module="exchange", name="MailSecurityGroup"):
    """A mail-enabled security group whose direct members are exactly ``members``."""

    alias: pulumi.Output[str]
    name: pulumi.Output[str]
    display_name: pulumi.Output[str]
    members: pulumi.Output[list[str]]
    primary_smtp_address: pulumi.Output[str]
    distinguished_name: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        alias: pulumi.Input[str],
        display_name: pulumi.Input[str],
        members: pulumi.Input[list[pulumi.Input[str]]],
        name: pulumi.Input[str] | None = None,
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``alias`` identifies the group; ``name`` defaults to the alias; ``members`` are primary SMTP addresses."""
        super().__init__(
            MailSecurityGroupProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "alias": alias,
                "name": name if name is not None else alias,
                "display_name": display_name,
                "members": members,
                "primary_smtp_address": None,
                "distinguished_name": None,
                "adopted": None,
            },
            opts,
        )
