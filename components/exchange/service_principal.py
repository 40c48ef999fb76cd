"""Exchange's service principal pointer (``New-ServicePrincipal -AppId -ObjectId``).

RBAC for Applications assigns roles to this pointer, not to the Entra app directly.

Identity: the Entra enterprise app's object id (the service principal's, not the app registration's). Create adopts
an existing pointer for the same app and object id; a pointer for the same app with another object id is reported.
The display name updates in place; anything else replaces the pointer, deleting the old one first (Exchange allows
one pointer per app). Deleting a pointer also removes its role assignments in Exchange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CreateResult, Resource, UpdateResult

from components.exchange.provider_base import SingleObjectProvider, connect, read_or_none, write_then_read_back
from mailplane.exceptions import ExchangeConflictError
from mailplane.exchange.models import ServicePrincipalPointer as PointerObject

if TYPE_CHECKING:
    import pulumi

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = ["ServicePrincipalPointer", "ServicePrincipalPointerProvider"]


class ServicePrincipalPointerProvider(SingleObjectProvider):
    """CRUD for ``*-ServicePrincipal``."""

    kind = "Exchange service principal pointer"
    update_keys = ("display_name",)
    replace_keys = ("app_id", "object_id")
    guid_keys = ("app_id", "object_id")
    required_keys = ("app_id", "object_id", "display_name")
    delete_before_replace = True

    def _outs(self, props: dict[str, Any], found: PointerObject, *, adopted: bool = False) -> dict[str, Any]:
        return {
            **self.connection(props),
            "app_id": found.app_id,
            "object_id": found.object_id,
            "display_name": found.display_name,
            "identity": found.identity,
            "adopted": adopted,
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the pointer, or adopt the one that already exists for this app."""
        app_id, object_id = str(props["app_id"]).lower(), str(props["object_id"]).lower()
        with connect(props) as client:
            existing = read_or_none(lambda: client.get_service_principal(app_id))
            if existing is not None:
                if existing.object_id != object_id:
                    raise ExchangeConflictError(
                        f"creating the {self.kind} for app {app_id}: Exchange already has a pointer for this app "
                        f"with ObjectId {existing.object_id}, not {object_id}. The Entra service principal was "
                        "probably recreated; remove the stale pointer (Remove-ServicePrincipal) and run again.",
                        cmdlet="New-ServicePrincipal",
                    )
                if existing.display_name != props["display_name"]:
                    existing = client.set_service_principal(object_id, str(props["display_name"]))
                return CreateResult(object_id, self._outs(props, existing, adopted=True))
            created = write_then_read_back(
                lambda: client.create_service_principal(app_id, object_id, str(props["display_name"])),
                lambda: read_or_none(lambda: client.get_service_principal(object_id)),
            )
            return CreateResult(object_id, self._outs(props, created))

    def fetch(self, client: ExchangeAdminClient, id_: str) -> PointerObject:
        """The pointer as Exchange has it."""
        return client.get_service_principal(id_)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Rename (the only in-place change)."""
        with connect(news) as client:
            found = client.set_service_principal(id_, str(news["display_name"]))
        return UpdateResult(self._outs(news, found, adopted=bool(olds.get("adopted"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Remove the pointer (and, in Exchange, its role assignments); already gone is fine."""
        with connect(props) as client:
            if read_or_none(lambda: client.get_service_principal(id_)) is not None:
                client.delete_service_principal(id_)


class ServicePrincipalPointer(Resource, module="exchange", name="ServicePrincipalPointer"):
    """Exchange's pointer to an Entra service principal."""

    app_id: pulumi.Output[str]
    object_id: pulumi.Output[str]
    display_name: pulumi.Output[str]
    identity: pulumi.Output[str]
    adopted: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        tenant_id: pulumi.Input[str],
        app_id: pulumi.Input[str],
        object_id: pulumi.Input[str],
        display_name: pulumi.Input[str],
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``app_id`` is the app's client id; ``object_id`` its enterprise application (service principal) id."""
        super().__init__(
            ServicePrincipalPointerProvider(),
            name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "app_id": app_id,
                "object_id": object_id,
                "display_name": display_name,
                "identity": None,
                "adopted": None,
            },
            opts,
        )
