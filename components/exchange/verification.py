"""A record of the post-apply scoping checks (:mod:`mailplane.exchange.verify`) as a resource with outputs.

It runs the ``Test-*`` cmdlets when created, when its inputs change (its ``triggers`` carry the Exchange objects'
identities and filters) and on every refresh, and stores the report; it never waits for Exchange's cache and never
fails the deployment: a misconfiguration or an error is reported in ``status`` and ``summary``. Deleting it
changes nothing in Exchange.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from components.exchange.provider_base import ExchangeProvider, connect
from mailplane.exchange.verify import PROPAGATION_WINDOW, verify_scoping

if TYPE_CHECKING:
    import pulumi

__all__ = ["ScopeVerification", "ScopeVerificationProvider"]


class ScopeVerificationProvider(ExchangeProvider):
    """Runs the checks; stores ``status``, ``summary``, ``checks``, ``checked_at`` and ``applied_at``."""

    kind = "Exchange scoping verification"
    update_keys = ("expectations", "triggers", "mode", "app_id")
    required_keys = ("mode", "app_id")
    guid_keys = ("app_id",)

    def _run(self, props: dict[str, Any], *, applied_at: str) -> dict[str, Any]:
        expectations = {str(k): list(v or []) for k, v in (props.get("expectations") or {}).items()}
        base = {
            **self.connection(props),
            "mode": props["mode"],
            "app_id": props["app_id"],
            "expectations": expectations,
            "triggers": props.get("triggers") or [],
            "applied_at": applied_at,
        }
        just_applied = _within_propagation_window(applied_at)
        try:
            with connect(props) as client:
                report = verify_scoping(
                    client, mode=str(props["mode"]), app_id=str(props["app_id"]), expectations=expectations
                )
        # A verification must never fail the deployment: a missing credential (azure-identity raises its own
        # errors), an unreachable endpoint or a cmdlet error all end up in the report instead.
        except Exception as error:  # noqa: BLE001
            return {
                **base,
                "status": "error",
                "summary": f"verification could not run: {error}",
                "checks": [],
                "checked_at": None,
            }
        result = report.to_dict(just_applied=just_applied)
        return {
            **base,
            "status": result["status"],
            "summary": result["summary"],
            "checks": result["checks"],
            "checked_at": result["checkedAt"],
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Run the checks right after the Exchange objects were written."""
        return CreateResult(f"verification-{props['app_id']}", self._run(props, applied_at=_now()))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Re-run on refresh; "pending-propagation" turns into "configured" two hours after the last change."""
        return ReadResult(id_, self._run(props, applied_at=str(props.get("applied_at") or _now())))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Re-run after the Exchange objects changed."""
        return UpdateResult(self._run(news, applied_at=_now()))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing to remove in Exchange."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _within_propagation_window(applied_at: str) -> bool:
    """True until two hours after the change: Exchange's cache may still serve the old permissions."""
    try:
        applied = dt.datetime.fromisoformat(applied_at)
    except ValueError:
        return True
    return dt.datetime.now(dt.UTC) - applied < PROPAGATION_WINDOW


class ScopeVerification(Resource, module="exchange", name="ScopeVerification"):
    """The scoping checks' latest report."""

    status: pulumi.Output[str]
    summary: pulumi.Output[str]
    checks: pulumi.Output[list[dict[str, Any]]]
    checked_at: pulumi.Output[str]
    applied_at: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        tenant_id: pulumi.Input[str],
        mode: str,
        app_id: pulumi.Input[str],
        expectations: dict[str, list[str]],
        triggers: pulumi.Input[list[Any]] | None = None,
        admin_api_url: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``expectations`` maps each mailbox to the roles that must reach it (none for the out-of-scope one)."""
        super().__init__(
            ScopeVerificationProvider(),
            resource_name,
            {
                "tenant_id": tenant_id,
                "admin_api_url": admin_api_url,
                "mode": mode,
                "app_id": app_id,
                "expectations": expectations,
                "triggers": triggers or [],
                "status": None,
                "summary": None,
                "checks": None,
                "checked_at": None,
                "applied_at": None,
            },
            opts,
        )
