"""A shared mailbox the integration uses, and its members' FullAccess and SendAs rights."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi

from components.exchange.mailbox import Mailbox
from components.exchange.mailbox_member import MailboxMember

if TYPE_CHECKING:
    from mailplane.tenant import SharedMailbox as SharedMailboxConfig

__all__ = ["SharedMailbox", "SharedMailboxArgs", "address_slug"]


@dataclass
class SharedMailboxArgs:
    """Inputs of :class:`SharedMailbox`."""

    tenant_id: str
    """The tenant (directory GUID) whose Exchange organisation holds the mailbox."""

    mailbox: SharedMailboxConfig
    """The declared mailbox (``TenantConfig.shared_mailboxes[i]``): address, display name, ``create`` (false: the
    mailbox exists and only its members are managed), ``remove_on_delete`` (default false: deleting the stack keeps
    the mailbox and its mail) and members (user, full_access default true, send_as default false, auto_mapping
    default false)."""

    admin_api_url: pulumi.Input[str] | None = None
    """Exchange admin API root. Default: ``MAILPLANE_EXCHANGE_ADMIN_URL`` when set, else Microsoft's endpoint."""


def address_slug(address: str) -> str:
    """An address as a Pulumi name part: ``agent.one@fabrikam.com`` -> ``agent-one-fabrikam-com``."""
    return re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")


class SharedMailbox(pulumi.ComponentResource):
    """A shared mailbox (sign-in blocked, retained on delete by default) and its members."""

    mailbox: Mailbox | None
    members: list[MailboxMember]
    address: str

    def __init__(self, name: str, args: SharedMailboxArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Children: ``<name>-mailbox`` (when ``create``) and ``<name>-member-<user>`` per member."""
        super().__init__("mailplane:shared_mailbox:SharedMailbox", name, None, opts)
        config = args.mailbox
        self.address = config.address
        self.mailbox = None
        if config.create:
            self.mailbox = Mailbox(
                f"{name}-mailbox",
                address=config.address,
                display_name=config.display_name,
                remove_on_delete=config.remove_on_delete,
                # Belt and braces: unless removal was asked for, Pulumi itself never calls delete on the mailbox.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=not config.remove_on_delete),
                tenant_id=args.tenant_id,
                admin_api_url=args.admin_api_url,
            )
        member_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.mailbox] if self.mailbox else [])
        self.members = [
            MailboxMember(
                f"{name}-member-{address_slug(member.user)}",
                mailbox=self.mailbox.address if self.mailbox else config.address,
                user=member.user,
                full_access=member.full_access,
                send_as=member.send_as,
                auto_mapping=member.auto_mapping,
                opts=member_opts,
                tenant_id=args.tenant_id,
                admin_api_url=args.admin_api_url,
            )
            for member in config.members
        ]
        self.register_outputs(
            {"address": config.address, "members": [m.user for m in config.members], "created": config.create}
        )
