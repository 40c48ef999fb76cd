"""The pack's policies: thin CrossGuard wrappers around :mod:`mailplane.policy_rules` (the audit runs the same rules).

:func:`build_policies` returns the policy objects without starting anything, so tests call ``policy.validate(args,
report_violation)`` directly; only ``__main__.py`` hands them to ``PolicyPack``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from mailplane.policy_rules import (
    APP_OWNERS,
    HIGHEST_PRIVILEGE,
    HTTPS_REDIRECTS,
    MAIL_SCOPING,
    SECRET_LIFETIME,
    SINGLE_TENANT_AUDIENCE,
    PolicySettings,
    Rule,
    resource_violations,
    stack_violations,
)

__all__ = ["build_policies", "today"]

ReportViolation = Callable[..., None]

# Per-policy config; the same keys `mailplane audit --policy-config` reads.
CONFIG_SCHEMAS: dict[str, PolicyConfigSchema] = {
    SECRET_LIFETIME.name: PolicyConfigSchema(
        properties={"maxLifetimeMonths": {"type": "integer", "minimum": 1, "maximum": 24, "default": 12}}
    ),
    SINGLE_TENANT_AUDIENCE.name: PolicyConfigSchema(
        properties={"allowedApps": {"type": "array", "items": {"type": "string"}, "default": []}}
    ),
    HIGHEST_PRIVILEGE.name: PolicyConfigSchema(
        properties={"allowedPermissions": {"type": "array", "items": {"type": "string"}, "default": []}}
    ),
}


def today() -> dt.date:
    """Return the date secret lifetimes are measured from: ``MAILPLANE_TODAY`` (as in plans) or today (UTC)."""
    frozen = os.environ.get("MAILPLANE_TODAY")
    return dt.date.fromisoformat(frozen) if frozen else dt.datetime.now(dt.UTC).date()


def _settings(rule: Rule, config: Any) -> PolicySettings:
    own = {k: v for k, v in dict(config or {}).items() if k != "enforcementLevel"}
    return PolicySettings.from_policy_config({rule.name: own})


def _resource_policy(rule: Rule, clock: Callable[[], dt.date]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        settings = _settings(rule, args.get_config())
        for violation in resource_violations(
            args.resource_type, args.props, name=args.name, settings=settings, today=clock()
        ):
            if violation.rule == rule.name:
                report_violation(violation.message)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG_SCHEMAS.get(rule.name),
    )


def _mail_scoping_policy() -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for violation in stack_violations((r.resource_type, r.props) for r in args.resources):
            report_violation(violation.message)

    return StackValidationPolicy(
        name=MAIL_SCOPING.name,
        description=MAIL_SCOPING.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def build_policies(clock: Callable[[], dt.date] = today) -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Every policy of the pack; ``clock`` gives the date secret lifetimes are measured from."""
    return [
        _mail_scoping_policy(),
        *(
            _resource_policy(rule, clock)
            for rule in (SECRET_LIFETIME, HTTPS_REDIRECTS, SINGLE_TENANT_AUDIENCE, APP_OWNERS, HIGHEST_PRIVILEGE)
        ),
    ]
