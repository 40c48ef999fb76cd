"""A shared mailbox (``New-Mailbox -Shared``) with its user account's sign-in blocked.

Identity: the primary SMTP address. Create adopts an existing shared mailbox at that address (fixing its display
name and sign-in block), reports a user mailbox or a soft-deleted mailbox holding it, and reads back after a write
that failed ambiguously. Display name and sign-in block change in place; another address or alias replaces it.

**Deleting never removes the mailbox or its mail by default**: the resource only leaves the stack. With
``remove_on_delete`` it is removed with ``Remove-Mailbox`` (soft delete: recoverable for 30 days).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CreateResult, Resource, UpdateResult

from components.exchange.provider_base import (
    SingleObjectProvider,
    connect,
    is_known,
    read_or_none,
    write_then_read_back,
)
from mailplane.exceptions import ExchangeConflictError
from mailplane.exchange.models import Mailbox as MailboxObject
from mailplane.exchange.naming import mailbox_alias

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = ["Mailbox", "MailboxProvider"]


class MailboxProvider(SingleObjectProvider):
    """CRUD for a shared mailbox; retained on delete unless ``remove_on_delete``."""

    kind = "Exchange shared mailbox"
    update_keys = ("display_name", "block_sign_in", "remove_on_delete")
    replace_keys = ("address", "alias")
    address_keys = ("address",)
    required_keys = ("address", "display_name")

    def normalised_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        """Lower-case address; alias from its local part unless given; sign-in blocked unless told otherwise."""
        if is_known(news.get("address")):
            news["address"] = str(news["address"]).lower()
            news["alias"] = news.get("alias") or mailbox_alias(news["address"])
        news["block_sign_in"] = news.get("block_sign_in") is not False
        news["remove_on_delete"] = bool(news.get("remove_on_delete"))
        return news

    def _outs(self, props: dict[str, Any], found: MailboxObject, *, adopted: bool = False) -> dict[str, Any]:
        return {
            **self.connection(props),
            "address": found.primary_smtp_address,
            "alias": found.alias,
            "display_name": found.display_name,
            "block_sign_in": found.account_disabled,
            "remove_on_delete": bool(props.get("remove_on_delete")),
            "recipient_type_details": found.recipient_type_details,
            "adopted": adopted,
        }

    @staticmethod
    def _converge(client: ExchangeAdminClient, found: MailboxObject, props: dict[str, Any]) -> MailboxObject:
        display_name = str(props["display_name"])
        block = props.get("block_sign_in") is not False
        if found.display_name != display_name or found.account_disabled != block:
            return client.set_mailbox(
                found.primary_smtp_address,
                display_name=display_name if found.display_name != display_name else None,
                account_disabled=block if found.account_disabled != block else None,
            )
        return found

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the shared mailbox (or adopt it), then make sure sign-in is blocked."""
        address, alias = str(props["address"]).lower(), str(props.get("alias") or mailbox_alias(props["address"]))
        with connect(props) as client:
            existing = read_or_none(lambda: client.get_mailbox(address))
            adopted = existing is not None
            if existing is not None and existing.recipient_type_details != "SharedMailbox":
                raise ExchangeConflictError(
                    f"creating the {self.kind} {address}: a {existing.recipient_type_details} already has this "
                    "address. Convert it (Set-Mailbox -Type Shared) or declare another address; mailplane never "
                    "takes over a user's mailbox.",
                    cmdlet="New-Mailbox",
                )
            if existing is None:
                removed = read_or_none(lambda: client.get_mailbox(address, soft_deleted=True))
                if removed is not None:
                    raise ExchangeConflictError(
                        f"creating the {self.kind} {address}: a removed (soft-deleted) mailbox still holds this "
                        "address. Restore it (Undo-SoftDeletedMailbox) to keep its mail, or purge it "
                        "(Remove-Mailbox -PermanentlyDelete), then run again.",
                        cmdlet="New-Mailbox",
                    )
                existing = write_then_read_back(
                    lambda: client.create_shared_mailbox(alias, str(props["display_name"]), alias, address),
                    lambda: read_or_none(lambda: client.get_mailbox(address)),
                )
            found = self._converge(client, existing, props)
        return CreateResult(address, self._outs(props, found, adopted=adopted))

    def fetch(self, client: ExchangeAdminClient, id_: str) -> MailboxObject:
        """The mailbox as Exchange has it (renamed, sign-in enabled...)."""
        return client.get_mailbox(id_)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Fix display name and sign-in block."""
        with connect(news) as client:
            found = self._converge(client, client.get_mailbox(id_), news)
        return UpdateResult(self._outs(news, found, adopted=bool(olds.get("adopted"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Keep the mailbox and its mail (default), or soft-delete it when ``remove_on_delete`` is set."""
        if not props.get("remove_on_delete"):
            return
        with connect(props) as client:
            if read_or_none(lambda: client.get_mailbox(id_)) is not None:
                client.delete_mailbox(id_)


class Mailbox(Resource, module="exchange", name="SharedMailbox"):
    """A shared mailbox, sign-in blocked, retained when the stack no longer declares it (unless told otherwise)."""

    address: pulumi.Output[str]
    alias: pulumi.Output[str]
    display_name: pulumi.Output[str]
    block_sign_in: pulumi.Output[bool]
    remove_on_delete: pulumi.Output[bool]
    recipient_type_details: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        address: pulumi.Input[str],
        display_name: pulumi.Input[str],
        alias: pulumi.Input[str] | None = None,
        block_sign_in: pulumi.Input[bool] = True,
        remove_on_delete: pulumi.Input[bool] = False,
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``address`` is the primary SMTP address; ``alias`` defaults to its local part."""
        super().__init__(
            MailboxProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "address": address,
                "alias": alias,
                "display_name": display_name,
                "block_sign_in": block_sign_in,
                "remove_on_delete": remove_on_delete,
                "recipient_type_details": None,
                "adopted": None,
            },
            opts,
        )
