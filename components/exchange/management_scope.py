"""A management scope (``New-ManagementScope -RecipientRestrictionFilter``): the mailboxes an app's roles reach.

The filter is built from the declared mailboxes by :func:`mailplane.exchange.naming.recipient_filter` (primary SMTP
address equality, sorted). Every mailbox must exist before the scope is written: an address Exchange does not know
would silently match nothing. Identity: the scope's name. Create adopts a scope with the same name and filter and
reports one with another filter; the filter updates in place; a new name replaces the scope.
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
from mailplane.exchange.models import ManagementScope as ScopeObject
from mailplane.exchange.naming import MAX_NAME_LENGTH, recipient_filter
from mailplane.exchange.reconcile import normalise

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = ["ManagementScope", "ManagementScopeProvider", "require_recipients"]


def require_recipients(client: ExchangeAdminClient, addresses: list[str], doing: str) -> None:
    """Raise one clear error naming every address Exchange does not know, before anything is written."""
    missing = []
    for address in addresses:
        try:
            client.get_recipient(address)
        except ExchangeNotFoundError:
            missing.append(address)
    if missing:
        listed = ", ".join(repr(m) for m in missing)
        raise ExchangeNotFoundError(
            f"{doing}: {listed} {'is' if len(missing) == 1 else 'are'} not a recipient in Exchange Online. "
            "Fix the address in the stack file, or create the mailbox first (user mailboxes need a licensed user).",
            cmdlet="Get-Recipient",
        )


class ManagementScopeProvider(SingleObjectProvider):
    """CRUD for ``*-ManagementScope``."""

    kind = "Exchange management scope"
    update_keys = ("recipient_restriction_filter",)
    replace_keys = ("name",)
    address_keys = ("mailboxes",)
    required_keys = ("name", "mailboxes")

    def extra_failures(self, news: dict[str, Any]) -> list[CheckFailure]:
        """The name must fit Exchange's 64 characters."""
        name = news.get("name")
        if is_known(name) and len(str(name)) > MAX_NAME_LENGTH:
            return [CheckFailure("name", f"{self.kind}: {name!r} is longer than {MAX_NAME_LENGTH} characters.")]
        return []

    def normalised_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        """Derive the filter from the mailboxes (unknown in a preview when a mailbox is an output)."""
        mailboxes = news.get("mailboxes") or []
        if all(is_known(m) for m in mailboxes):
            news["mailboxes"] = sorted({str(m).lower() for m in mailboxes})
            news["recipient_restriction_filter"] = recipient_filter(news["mailboxes"])
        return news

    def _outs(self, props: dict[str, Any], found: ScopeObject, *, adopted: bool = False) -> dict[str, Any]:
        return {
            **self.connection(props),
            "name": found.name,
            "mailboxes": list(props.get("mailboxes") or []),
            "recipient_restriction_filter": found.recipient_restriction_filter,
            "adopted": adopted,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Check the mailboxes exist, then create the scope or adopt a matching one."""
        name, wanted = str(props["name"]), recipient_filter(props["mailboxes"])
        with connect(props) as client:
            require_recipients(client, list(props["mailboxes"]), f"creating the {self.kind} {name!r}")
            existing = read_or_none(lambda: client.get_management_scope(name))
            if existing is not None:
                if normalise(existing.recipient_restriction_filter) != normalise(wanted):
                    raise ExchangeConflictError(
                        f"creating the {self.kind} {name!r}: a scope with this name already exists with the filter "
                        f"{existing.recipient_restriction_filter!r}, not {wanted!r}. It may belong to another stack or "
                        "have been made by hand; remove or rename it, or choose another component name.",
                        cmdlet="New-ManagementScope",
                    )
                return CreateResult(name, self._outs(props, existing, adopted=True))
            created = write_then_read_back(
                lambda: client.create_management_scope(name, wanted),
                lambda: read_or_none(lambda: client.get_management_scope(name)),
            )
        return CreateResult(name, self._outs(props, created))

    def fetch(self, client: ExchangeAdminClient, id_: str) -> ScopeObject:
        """The scope's current filter (a change made outside Pulumi shows as a diff)."""
        return client.get_management_scope(id_)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Rewrite the filter in place (the assignments using the scope follow)."""
        wanted = recipient_filter(news["mailboxes"])
        with connect(news) as client:
            require_recipients(client, list(news["mailboxes"]), f"updating the {self.kind} {id_!r}")
            found = client.set_management_scope(id_, wanted)
        return UpdateResult(self._outs(news, found, adopted=bool(olds.get("adopted"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the scope (after its role assignments); already gone is fine."""
        with connect(props) as client:
            if read_or_none(lambda: client.get_management_scope(id_)) is not None:
                client.delete_management_scope(id_)


class ManagementScope(Resource, module="exchange", name="ManagementScope"):
    """A recipient-filter management scope over the given mailboxes."""

    name: pulumi.Output[str]
    mailboxes: pulumi.Output[list[str]]
    recipient_restriction_filter: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        name: pulumi.Input[str],
        mailboxes: pulumi.Input[list[pulumi.Input[str]]],
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``name`` is the scope's Exchange name (at most 64 characters); ``mailboxes`` are primary SMTP addresses."""
        super().__init__(
            ManagementScopeProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "name": name,
                "mailboxes": mailboxes,
                "recipient_restriction_filter": None,
                "adopted": None,
            },
            opts,
        )
