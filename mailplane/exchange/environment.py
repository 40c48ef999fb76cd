"""An :class:`ExchangeAdminClient` configured from the environment (dynamic providers, ``mailplane doctor``).

- ``MAILPLANE_EXCHANGE_TOKEN``: an access token fetched beforehand for ``https://outlook.office365.com/.default``
  (pipelines that mint tokens themselves, and tests). When unset, azure-identity's ``DefaultAzureCredential`` is used
  (workload identity federation, a managed identity, ``AZURE_CLIENT_CERTIFICATE_PATH``, ``az login``...).
- ``MAILPLANE_EXCHANGE_ADMIN_URL``: the admin API root when none is given explicitly. The default is Microsoft's
  endpoint; the dev tenant's emulator is ``http://127.0.0.1:<port>/adminapi/beta``.
"""

from __future__ import annotations

import os
from typing import Any

from mailplane.exchange.client import DEFAULT_BASE_URL, ExchangeAdminClient, StaticTokenCredential

__all__ = ["ADMIN_URL_ENV", "TOKEN_ENV", "admin_api_url", "client_from_environment"]

TOKEN_ENV = "MAILPLANE_EXCHANGE_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret.
ADMIN_URL_ENV = "MAILPLANE_EXCHANGE_ADMIN_URL"


def admin_api_url(explicit: str | None = None) -> str:
    """``explicit``, else ``MAILPLANE_EXCHANGE_ADMIN_URL``, else Microsoft's endpoint."""
    return explicit or os.environ.get(ADMIN_URL_ENV) or DEFAULT_BASE_URL


def client_from_environment(tenant_id: str, explicit_url: str | None = None) -> ExchangeAdminClient:
    """A client for ``tenant_id`` with the credential and endpoint the environment names (see module doc)."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        credential: Any = StaticTokenCredential(token)
    else:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only needed against a real tenant.

        credential = DefaultAzureCredential()
    return ExchangeAdminClient(credential, tenant_id=tenant_id, base_url=admin_api_url(explicit_url))
