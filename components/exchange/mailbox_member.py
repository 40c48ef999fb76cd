"""A member of a shared mailbox: FullAccess (``Add-MailboxPermission``) and/or SendAs (``Add-RecipientPermission``).

Identity: ``<mailbox>/<user>``. Create checks the user exists, then adds the rights that are missing (rights already
granted are adopted). AutoMapping is off by default (the mailbox does not appear in the member's Outlook by itself);
Exchange cannot change AutoMapping on an existing permission and does not report it, so a change removes the
FullAccess permission and adds it again. Rights toggle in place; another mailbox or user replaces the member.
Delete removes the rights (the mailbox and its mail stay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, Resource, UpdateResult

from components.exchange.management_scope import require_recipients
from components.exchange.provider_base import ExchangeProvider, connect, is_known, read_or_none

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = ["MailboxMember", "MailboxMemberProvider"]


def _holds_full_access(client: ExchangeAdminClient, mailbox: str, user: str) -> bool:
    entries = client.list_mailbox_permissions(mailbox, user=user)
    return any(
        "fullaccess" in ",".join(e.access_rights).replace(" ", "").lower().split(",")
        and not e.deny
        and not e.is_inherited
        and e.user.lower() == user
        for e in entries
    )


def _holds_send_as(client: ExchangeAdminClient, mailbox: str, user: str) -> bool:
    entries = client.list_recipient_permissions(mailbox, trustee=user)
    return any(
        "SendAs" in e.access_rights and e.access_control_type == "Allow" and e.trustee.lower() == user for e in entries
    )


class MailboxMemberProvider(ExchangeProvider):
    """CRUD for one user's FullAccess/SendAs rights on a mailbox."""

    kind = "Exchange mailbox member"
    update_keys = ("full_access", "send_as", "auto_mapping")
    replace_keys = ("mailbox", "user")
    address_keys = ("mailbox", "user")
    required_keys = ("mailbox", "user")

    def extra_failures(self, news: dict[str, Any]) -> list[CheckFailure]:
        """A member gets at least one right."""
        if news.get("full_access") is False and news.get("send_as") is False:
            return [CheckFailure("full_access", f"{self.kind}: grant full_access or send_as (or both).")]
        return []

    def normalised_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        """Lower-case addresses; FullAccess on, SendAs and AutoMapping off unless given."""
        for key in ("mailbox", "user"):
            if is_known(news.get(key)):
                news[key] = str(news[key]).lower()
        news["full_access"] = news.get("full_access") is not False
        news["send_as"] = bool(news.get("send_as"))
        news["auto_mapping"] = bool(news.get("auto_mapping"))
        return news

    def _outs(
        self, props: dict[str, Any], full_access: bool, send_as: bool, *, adopted: bool = False
    ) -> dict[str, Any]:
        return {
            **self.connection(props),
            "mailbox": str(props["mailbox"]).lower(),
            "user": str(props["user"]).lower(),
            "full_access": full_access,
            "send_as": send_as,
            # Not readable from Exchange: what was last applied.
            "auto_mapping": bool(props.get("auto_mapping")),
            "adopted": adopted,
        }

    @staticmethod
    def _apply(
        client: ExchangeAdminClient, props: dict[str, Any], *, reset_full_access: bool = False
    ) -> tuple[bool, bool]:
        mailbox, user = str(props["mailbox"]).lower(), str(props["user"]).lower()
        want_full, want_send = props.get("full_access") is not False, bool(props.get("send_as"))
        has_full = _holds_full_access(client, mailbox, user)
        if has_full and (not want_full or reset_full_access):
            client.delete_mailbox_permission(mailbox, user)
            has_full = False
        if want_full and not has_full:
            client.create_mailbox_permission(mailbox, user, auto_mapping=bool(props.get("auto_mapping")))
        has_send = _holds_send_as(client, mailbox, user)
        if want_send and not has_send:
            client.create_recipient_permission(mailbox, user)
        elif has_send and not want_send:
            client.delete_recipient_permission(mailbox, user)
        return _holds_full_access(client, mailbox, user), _holds_send_as(client, mailbox, user)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Check the mailbox and user exist, then grant the missing rights."""
        mailbox, user = str(props["mailbox"]).lower(), str(props["user"]).lower()
        with connect(props) as client:
            require_recipients(client, [mailbox, user], f"adding {user} to the mailbox {mailbox}")
            held_before = _holds_full_access(client, mailbox, user), _holds_send_as(client, mailbox, user)
            full, send = self._apply(client, props)
        adopted = held_before == (full, send) and (full or send)
        return CreateResult(f"{mailbox}/{user}", self._outs(props, full, send, adopted=adopted))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The rights the user holds now; gone when the mailbox is gone or no right is left."""
        mailbox, user = str(props["mailbox"]).lower(), str(props["user"]).lower()
        with connect(props) as client:
            if read_or_none(lambda: client.get_mailbox(mailbox)) is None:
                return ReadResult("", {})
            full, send = _holds_full_access(client, mailbox, user), _holds_send_as(client, mailbox, user)
        if not full and not send:
            return ReadResult("", {})
        return ReadResult(id_, self._outs(props, full, send, adopted=bool(props.get("adopted"))))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Toggle rights; a new AutoMapping re-adds FullAccess."""
        reset = bool(olds.get("auto_mapping")) != bool(news.get("auto_mapping"))
        with connect(news) as client:
            full, send = self._apply(client, news, reset_full_access=reset)
        return UpdateResult(self._outs(news, full, send, adopted=bool(olds.get("adopted"))))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Remove the user's rights; a removed mailbox or user is fine."""
        mailbox, user = str(props["mailbox"]).lower(), str(props["user"]).lower()
        with connect(props) as client:
            if read_or_none(lambda: client.get_mailbox(mailbox)) is None:
                return
            if read_or_none(lambda: client.get_recipient(user)) is None:
                return
            if _holds_full_access(client, mailbox, user):
                client.delete_mailbox_permission(mailbox, user)
            if _holds_send_as(client, mailbox, user):
                client.delete_recipient_permission(mailbox, user)


class MailboxMember(Resource, module="exchange", name="MailboxMember"):
    """One user's FullAccess and/or SendAs rights on a mailbox."""

    mailbox: pulumi.Output[str]
    user: pulumi.Output[str]
    full_access: pulumi.Output[bool]
    send_as: pulumi.Output[bool]
    auto_mapping: pulumi.Output[bool]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        mailbox: pulumi.Input[str],
        user: pulumi.Input[str],
        full_access: pulumi.Input[bool] = True,
        send_as: pulumi.Input[bool] = False,
        auto_mapping: pulumi.Input[bool] = False,
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``mailbox`` and ``user`` are primary SMTP addresses (or UPNs)."""
        super().__init__(
            MailboxMemberProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "mailbox": mailbox,
                "user": user,
                "full_access": full_access,
                "send_as": send_as,
                "auto_mapping": auto_mapping,
                "adopted": None,
            },
            opts,
        )
