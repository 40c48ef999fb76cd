"""The only module that reads ``pulumi.Config``: the tenant config of the current stack, validated.

Every ``mailplane:*`` key is gathered into one object and checked by :func:`mailplane.tenant.parse_tenant_config`
(JSON Schema, then semantic checks). A bad stack file stops the program with one ``pulumi.RunError`` naming the stack
file, the key path, the bad value and what is allowed, followed by every other problem — before any resource exists.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

from mailplane.exceptions import TenantConfigError
from mailplane.tenant import CONFIG_NAMESPACE, TENANT_KEYS, TenantConfig, parse_tenant_config

__all__ = ["certificate_pem", "load_tenant_config", "stack_file", "today"]

# Reproducible plans and tests freeze the rotation clock with this variable (YYYY-MM-DD); deployments leave it unset.
TODAY_ENV = "MAILPLANE_TODAY"


def stack_file() -> str:
    """The stack file this run's config comes from, as the user sees it (``stacks/Pulumi.<stack>.yaml``)."""
    return f"stacks/Pulumi.{pulumi.get_stack()}.yaml"


def today() -> dt.date:
    """The date rotation is computed for: ``MAILPLANE_TODAY`` when set, else the current UTC date."""
    frozen = os.environ.get(TODAY_ENV)
    if frozen:
        try:
            return dt.date.fromisoformat(frozen)
        except ValueError:
            raise pulumi.RunError(f"{TODAY_ENV}={frozen!r} is not a date. Use YYYY-MM-DD or unset it.") from None
    return dt.datetime.now(dt.UTC).date()


def _all_mailplane_keys() -> dict[str, Any]:
    # pulumi.Config can only fetch keys by name; to catch misspelt keys (mailplane:scopping) we look at every key the
    # engine passed, the way the SDK itself resolves them (explicit config first, then the PULUMI_CONFIG bag).
    merged = {**get_config_env(), **CONFIG.get()}
    prefix = f"{CONFIG_NAMESPACE}:"
    return {key[len(prefix) :]: value for key, value in merged.items() if key.startswith(prefix)}


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def load_tenant_config() -> TenantConfig:
    """Read and validate every ``mailplane:*`` key; raise ``pulumi.RunError`` on any problem."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    raw: dict[str, Any] = {}
    for key in TENANT_KEYS:
        value = config.get(key)
        if value is not None:
            raw[key] = _decode(value)
    for key, value in _all_mailplane_keys().items():
        # Unknown keys are passed on so the schema names them; secret keys (the certificate PEM) are left out.
        if key not in raw and not is_config_secret(f"{CONFIG_NAMESPACE}:{key}"):
            raw[key] = _decode(value)
    try:
        return parse_tenant_config(raw, source=stack_file(), today=today())
    except TenantConfigError as error:
        raise pulumi.RunError(str(error)) from None


def certificate_pem(key: str) -> pulumi.Output[str]:
    """The certificate PEM from the secret config key ``key``; a clear error when it is missing."""
    value = pulumi.Config(CONFIG_NAMESPACE).get_secret(key)
    if value is None:
        raise pulumi.RunError(
            f"{stack_file()}: mailplane:{key}: missing. credentials.certificate reads the certificate PEM from this "
            f"secret key. Run: pulumi config set --secret {CONFIG_NAMESPACE}:{key} < certificate.pem"
        )
    return value
