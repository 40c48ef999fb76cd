"""Look up Microsoft Graph's service principal in the tenant: permission ids by name, never GUIDs in code."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_azuread as azuread

from mailplane.permissions import MICROSOFT_GRAPH_APP_ID

__all__ = ["lookup_microsoft_graph", "permission_id"]


def lookup_microsoft_graph(
    opts: pulumi.InvokeOutputOptions | None = None,
) -> pulumi.Output[azuread.GetServicePrincipalResult]:
    """The tenant's Microsoft Graph service principal (a read-only invoke: nothing to delete on destroy).

    ``get_service_principal`` is preferred to ``ServicePrincipal(use_existing=True)``, which would try to delete
    Microsoft Graph's service principal on ``pulumi destroy``.
    """
    return azuread.get_service_principal_output(client_id=MICROSOFT_GRAPH_APP_ID, opts=opts)


def permission_id(ids: Mapping[str, str], name: str, kind: str) -> str:
    """The id of permission ``name`` in the Graph service principal's ``ids`` map, or a clear error."""
    try:
        return ids[name]
    except KeyError:
        what = "application permission (app role)" if kind == "application" else "delegated permission (scope)"
        raise pulumi.RunError(
            f"looking up the Microsoft Graph {what} {name!r} in the tenant: the Graph service principal does not "
            "publish it. Check the name in the README's permission table, or whether the tenant is a national "
            "cloud where it is unavailable."
        ) from None
