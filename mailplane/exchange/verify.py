"""Check that Exchange scopes the app the way the grants say, without waiting for Exchange's cache.

Exchange applies RBAC for Applications changes within 30 minutes to 2 hours, and access policy changes in 30 minutes
to more than an hour; the ``Test-*`` cmdlets read the configuration directly. So right after ``pulumi up`` the
checks can already prove the configuration (each scoped mailbox reachable with exactly its roles, the out-of-scope
mailbox not reachable), while live Graph calls may still be refused until the cache catches up. The report says so
("pending") instead of blocking the deployment; ``mailplane doctor`` re-runs the same checks later.

- ``rbac``: ``Test-ServicePrincipalAuthorization -Identity <app> -Resource <mailbox>`` per mailbox; every expected
  role must be in scope, and no other role may be.
- ``access-policy``: ``Test-ApplicationAccessPolicy -Identity <mailbox> -AppId <app>``; Granted for scoped
  mailboxes, Denied for the out-of-scope one.

:func:`judge_rbac` and :func:`judge_access_policy` are pure; :func:`verify_scoping` runs the cmdlets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mailplane.exceptions import ExchangeError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mailplane.exchange.client import ExchangeAdminClient
    from mailplane.exchange.models import AccessPolicyCheck, AuthorizationCheck
    from mailplane.grants import Grants

__all__ = [
    "PROPAGATION_NOTE",
    "PROPAGATION_WINDOW",
    "MailboxCheck",
    "VerificationReport",
    "expectations_from_grants",
    "judge_access_policy",
    "judge_rbac",
    "verify_scoping",
]

PROPAGATION_NOTE = "pending: Exchange applies changes within 30 min–2 h"  # noqa: RUF001 - an en dash, on purpose.
PROPAGATION_WINDOW = dt.timedelta(hours=2)
"""How long after a change Exchange may still apply the old permissions (RBAC for Applications: 30 min to 2 h)."""
_ACCESS = "access"  # The one "role" of access-policy mode: the app may reach the mailbox.

Outcome = Literal["as-expected", "unexpected", "error"]


@dataclass(frozen=True)
class MailboxCheck:
    """What one mailbox check expected and found."""

    mailbox: str
    expected_roles: tuple[str, ...]
    outcome: Outcome
    detail: str

    @property
    def expected(self) -> str:
        """``in-scope`` or ``out-of-scope``."""
        return "in-scope" if self.expected_roles else "out-of-scope"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stack output, ``doctor --json``)."""
        return {
            "mailbox": self.mailbox,
            "expected": self.expected,
            "expectedRoles": list(self.expected_roles),
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class VerificationReport:
    """Every check of one run, and what they add up to."""

    mode: str
    checks: tuple[MailboxCheck, ...]
    checked_at: str

    @property
    def status(self) -> str:
        """``configured`` (every check as expected), ``misconfigured`` or ``error`` (a check could not run)."""
        if any(c.outcome == "unexpected" for c in self.checks):
            return "misconfigured"
        if any(c.outcome == "error" for c in self.checks):
            return "error"
        return "configured"

    def summary(self, *, just_applied: bool) -> str:
        """One line for people: the status, and the propagation note when the configuration is right."""
        if self.status == "configured":
            scoped = sum(1 for c in self.checks if c.expected_roles)
            text = f"configured: {scoped} mailbox(es) in scope" + (
                ", the out-of-scope mailbox denied" if len(self.checks) > scoped else ""
            )
            if just_applied:
                return f"{text}; {PROPAGATION_NOTE} (run 'mailplane doctor' later to re-check)"
            return f"{text}; changes made in the last 2 h may not reach Microsoft Graph yet"
        bad = [c for c in self.checks if c.outcome != "as-expected"]
        return f"{self.status}: " + "; ".join(f"{c.mailbox}: {c.detail}" for c in bad)

    def to_dict(self, *, just_applied: bool) -> dict[str, Any]:
        """JSON-ready form."""
        status = "pending-propagation" if just_applied and self.status == "configured" else self.status
        return {
            "mode": self.mode,
            "status": status,
            "summary": self.summary(just_applied=just_applied),
            "checkedAt": self.checked_at,
            "checks": [c.to_dict() for c in self.checks],
        }


def expectations_from_grants(grants: Grants) -> dict[str, tuple[str, ...]]:
    """Mailbox -> the roles that must reach it; the out-of-scope mailbox maps to no role.

    ``rbac``: Exchange role names per mailbox. ``access-policy``: ``("access",)`` per scoped mailbox.
    ``tenant-wide``: nothing to check.
    """
    expectations: dict[str, set[str]] = {}
    if grants.scoping_mode == "rbac":
        for role in grants.exchange_roles:
            for mailbox in role.mailboxes:
                expectations.setdefault(mailbox.lower(), set()).add(role.role)
    elif grants.scoping_mode == "access-policy":
        for mailbox in grants.scoped_mailboxes:
            expectations[mailbox.lower()] = {_ACCESS}
    else:
        return {}
    if grants.out_of_scope_mailbox:
        expectations.setdefault(grants.out_of_scope_mailbox.lower(), set())
    return {mailbox: tuple(sorted(roles)) for mailbox, roles in sorted(expectations.items())}


def judge_rbac(mailbox: str, expected_roles: Sequence[str], rows: Sequence[AuthorizationCheck]) -> MailboxCheck:
    """Compare ``Test-ServicePrincipalAuthorization -Resource <mailbox>`` rows with the roles that should reach it."""
    reaching = sorted({r.role_name for r in rows if r.in_scope})
    missing = sorted(set(expected_roles) - set(reaching))
    extra = sorted(set(reaching) - set(expected_roles))
    problems = []
    if missing:
        held = {r.role_name for r in rows}
        not_held = [m for m in missing if m not in held]
        out_of_scope = [m for m in missing if m in held]
        if not_held:
            problems.append(f"role not assigned: {', '.join(not_held)}")
        if out_of_scope:
            problems.append(f"outside the scope of: {', '.join(out_of_scope)}")
    if extra:
        scopes = sorted({r.allowed_resource_scope for r in rows if r.in_scope and r.role_name in extra})
        problems.append(f"reachable through {', '.join(extra)} (scope {', '.join(scopes)}) but must not be")
    if problems:
        return MailboxCheck(mailbox, tuple(expected_roles), "unexpected", "; ".join(problems))
    detail = f"in scope of {', '.join(reaching)}" if reaching else "not reachable by the app"
    return MailboxCheck(mailbox, tuple(expected_roles), "as-expected", detail)


def judge_access_policy(mailbox: str, expected_roles: Sequence[str], check: AccessPolicyCheck) -> MailboxCheck:
    """Compare ``Test-ApplicationAccessPolicy`` with whether the app should reach the mailbox."""
    want = bool(expected_roles)
    if check.granted == want:
        return MailboxCheck(
            mailbox, tuple(expected_roles), "as-expected", f"AccessCheckResult {check.access_check_result}"
        )
    return MailboxCheck(
        mailbox,
        tuple(expected_roles),
        "unexpected",
        f"AccessCheckResult {check.access_check_result or '(none)'}, expected {'Granted' if want else 'Denied'}",
    )


def verify_scoping(
    client: ExchangeAdminClient,
    *,
    mode: str,
    app_id: str,
    expectations: Mapping[str, Sequence[str]],
    now: dt.datetime | None = None,
) -> VerificationReport:
    """Run the checks for ``mode`` (``rbac`` or ``access-policy``); a failing cmdlet becomes an ``error`` check."""
    checks = []
    for mailbox, roles in expectations.items():
        try:
            if mode == "rbac":
                rows = client.test_service_principal_authorization(app_id, mailbox)
                checks.append(judge_rbac(mailbox, tuple(roles), rows))
            elif mode == "access-policy":
                checks.append(judge_access_policy(mailbox, tuple(roles), client.test_access_policy(mailbox, app_id)))
            else:
                raise ValueError(f"nothing to verify in scoping mode {mode!r}")
        except ExchangeError as error:
            checks.append(MailboxCheck(mailbox, tuple(roles), "error", str(error)))
    moment = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return VerificationReport(mode=mode, checks=tuple(checks), checked_at=moment.isoformat())
