"""The permission audit: what a change to the tenant stacks grants, for the reviewer of a pull request.

Pure: no Pulumi import, no git, no files. The CLI (``mailplane.cli.audit``) loads both states of the stacks and hands
them over as :class:`StackSide` values; :func:`audit_stacks` turns each side into grants with
:func:`mailplane.grants.compute_grants` (the same function the components and the plan use), compares them, judges the
new side with the shared policy rules (:mod:`mailplane.policy_rules`) and returns an :class:`AuditReport` that renders
as markdown (a pull-request comment) or JSON.

Risk follows Microsoft's privilege levels (1 low, 2 medium, 3 high, 4 highest): a new permission, or a mailbox gaining
an Exchange role, carries the level of its permission. Tenant-wide mail access turned on and a wider sign-in
audience always need a reviewer, whatever the threshold. Removals never raise risk.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailplane.grants import CredentialGrant, Grants, compute_grants
from mailplane.permissions import PRIVILEGE_LABELS, catalog
from mailplane.policy_rules import PolicySettings, PolicyViolation, is_mailbox_permission, tenant_violations
from mailplane.rotation import secret_generations

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailplane.tenant import TenantConfig

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_OK",
    "EXIT_REVIEW",
    "RISK_LEVELS",
    "AuditReport",
    "Change",
    "StackAudit",
    "StackSide",
    "audit_stacks",
    "diff_grants",
    "render_json",
    "render_markdown",
]

RISK_LEVELS = ("none", "low", "medium", "high", "highest")
THRESHOLDS = RISK_LEVELS[1:]
EXIT_OK, EXIT_REVIEW, EXIT_BLOCKED = 0, 1, 2
COMMENT_MARKER = "<!-- mailplane-audit -->"

# How far each sign-in audience reaches; moving up is a widening.
_AUDIENCE_REACH = {
    "AzureADMyOrg": 0,
    "AzureADMultipleOrgs": 1,
    "PersonalMicrosoftAccount": 1,
    "AzureADandPersonalMicrosoftAccount": 2,
}


def _privilege_risk(level: int) -> str:
    return {0: "low", 1: "low", 2: "medium", 3: "high"}.get(level, "highest")


def _rank(risk: str) -> int:
    return RISK_LEVELS.index(risk)


@dataclass(frozen=True)
class StackSide:
    """One stack file in one state: its validated config, or the problems that made it invalid."""

    source: str
    config: TenantConfig | None = None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One reviewable difference.

    ``section`` is permissions, mailboxes, tenant-wide, app or credentials; ``action`` is added, removed, changed,
    gains, loses, on or off; ``subject`` names what changed; ``details`` holds the facts the renderers show.
    """

    section: str
    action: str
    subject: str
    risk: str = "none"
    always_review: bool = False
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "section": self.section,
            "action": self.action,
            "subject": self.subject,
            "risk": self.risk,
            "alwaysReview": self.always_review,
            **self.details,
        }


@dataclass
class StackAudit:
    """The audit of one stack (tenant)."""

    stack: str
    status: str  # added, removed, changed, unchanged or invalid
    base_source: str | None
    head_source: str | None
    changes: list[Change] = field(default_factory=list)
    violations: list[PolicyViolation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def risk(self) -> str:
        """The highest risk among the changes."""
        return max((c.risk for c in self.changes), key=_rank, default="none")

    def review_needed(self, threshold: str) -> bool:
        """Whether a change reaches the threshold or always needs a reviewer."""
        return any(c.always_review or _rank(c.risk) >= _rank(threshold) for c in self.changes)

    def blocked(self) -> bool:
        """Whether the new state is invalid or violates a policy."""
        return bool(self.problems or self.violations)

    def verdict(self, threshold: str) -> str:
        """blocked, review-needed or ok."""
        if self.blocked():
            return "blocked"
        return "review-needed" if self.review_needed(threshold) else "ok"

    def to_dict(self, threshold: str) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "stack": self.stack,
            "status": self.status,
            "baseSource": self.base_source,
            "headSource": self.head_source,
            "risk": self.risk,
            "verdict": self.verdict(threshold),
            "changes": [c.to_dict() for c in self.changes],
            "violations": [{"rule": v.rule, "message": v.message} for v in self.violations],
            "problems": list(self.problems),
        }


@dataclass
class AuditReport:
    """Every stack's audit, and the verdict for the pull request."""

    base_label: str
    head_label: str
    today: dt.date
    threshold: str
    stacks: list[StackAudit]

    @property
    def exit_code(self) -> int:
        """0 no risk increase, 1 a reviewer is needed, 2 a policy violation or an invalid stack."""
        if any(s.blocked() for s in self.stacks):
            return EXIT_BLOCKED
        if any(s.review_needed(self.threshold) for s in self.stacks):
            return EXIT_REVIEW
        return EXIT_OK

    @property
    def verdict(self) -> str:
        """ok, review-needed or blocked."""
        return {EXIT_OK: "ok", EXIT_REVIEW: "review-needed", EXIT_BLOCKED: "blocked"}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``mailplane audit --format json``)."""
        return {
            "base": self.base_label,
            "head": self.head_label,
            "today": self.today.isoformat(),
            "threshold": self.threshold,
            "exitCode": self.exit_code,
            "verdict": self.verdict,
            "stacks": [s.to_dict(self.threshold) for s in self.stacks],
        }


# -- comparing grants ------------------------------------------------------------------------------------------


def _granted_as(grants: Grants, name: str, type_: str) -> tuple[str, str]:
    """How a permission is granted: a kind to compare (entra, exchange-rbac, tenant-wide, access-policy) and a text."""
    if type_ == "delegated":
        return "entra", "Entra admin consent for all users"
    for role in grants.exchange_roles:
        if role.permission == name:
            count = len(role.mailboxes)
            return "exchange-rbac", f"Exchange RBAC role on {count} mailbox{'es' if count != 1 else ''}"
    if name in grants.tenant_wide_mail:
        return "tenant-wide", "Entra admin consent, every mailbox in the tenant"
    if grants.scoping_mode == "access-policy" and is_mailbox_permission(name):
        return "access-policy", "Entra admin consent, limited by an Application Access Policy"
    return "entra", "Entra admin consent"


def _permissions(grants: Grants | None) -> dict[tuple[str, str], tuple[str, str]]:
    if grants is None:
        return {}
    found: dict[tuple[str, str], tuple[str, str]] = {
        (g.name, g.type): _granted_as(grants, g.name, g.type) for g in (*grants.application, *grants.delegated)
    }
    for role in grants.exchange_roles:
        found[(role.permission, "application")] = _granted_as(grants, role.permission, "application")
    return found


def _permission_facts(name: str, type_: str) -> dict[str, Any]:
    facts = catalog().require(name, type_)  # type: ignore[arg-type]
    return {
        "name": name,
        "type": type_,
        "privilegeLevel": facts.privilege_level,
        "privilege": PRIVILEGE_LABELS.get(facts.privilege_level, "unknown"),
        "adminConsent": facts.admin_consent,
    }


_GRANT_REACH = {"exchange-rbac": 0, "access-policy": 1, "entra": 2, "tenant-wide": 2}


def _permission_changes(before: Grants | None, after: Grants | None) -> list[Change]:
    old, new = _permissions(before), _permissions(after)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        name, type_ = key
        facts = _permission_facts(name, type_)
        risk = _privilege_risk(facts["privilegeLevel"])
        if key not in old:
            changes.append(Change("permissions", "added", name, risk, details={**facts, "grantedAs": new[key][1]}))
        elif key not in new:
            changes.append(Change("permissions", "removed", name, details={**facts, "grantedAs": old[key][1]}))
        elif old[key][0] != new[key][0]:
            # Moving a grant out of Exchange's mailbox scoping into Entra widens it to more mailboxes.
            widened = _GRANT_REACH[new[key][0]] > _GRANT_REACH[old[key][0]]
            changes.append(
                Change(
                    "permissions",
                    "changed",
                    name,
                    risk if widened else "none",
                    details={**facts, "grantedAsBefore": old[key][1], "grantedAs": new[key][1]},
                )
            )
    return changes


def _mailbox_roles(grants: Grants | None) -> set[tuple[str, str, str]]:
    if grants is None:
        return set()
    found = {(m, r.role, r.permission) for r in grants.exchange_roles for m in r.mailboxes}
    if grants.scoping_mode == "access-policy":
        # The Entra grant stands; an Application Access Policy limits it to the policy group's mailboxes.
        mail = [g.name for g in grants.application if is_mailbox_permission(g.name)]
        found |= {(m, f"Application Access Policy ({p})", p) for m in grants.scoped_mailboxes for p in mail}
    return found


def _mailbox_changes(before: Grants | None, after: Grants | None) -> list[Change]:
    old, new = _mailbox_roles(before), _mailbox_roles(after)
    changes = []
    tenant_wide = set(before.tenant_wide_mail) if before else set()
    reached_before = {(m, p) for m, _, p in old}
    for mailbox, role, permission in sorted(new - old):
        # No new reach when the mailbox already had this permission, through another route or tenant-wide.
        if permission in tenant_wide or (mailbox, permission) in reached_before:
            risk = "none"
        else:
            risk = _privilege_risk(catalog().require(permission, "application").privilege_level)
        changes.append(Change("mailboxes", "gains", mailbox, risk, details={"role": role, "permission": permission}))
    changes.extend(
        Change("mailboxes", "loses", mailbox, details={"role": role, "permission": permission})
        for mailbox, role, permission in sorted(old - new)
    )
    return changes


def _tenant_wide_changes(before: Grants | None, after: Grants | None) -> list[Change]:
    old = set(before.tenant_wide_mail) if before else set()
    new = set(after.tenant_wide_mail) if after else set()
    if new == old:
        return []
    if new and not old:
        return [
            Change(
                "tenant-wide",
                "on",
                "tenant-wide mail access",
                "highest",
                always_review=True,
                details={"permissions": sorted(new)},
            )
        ]
    if old and not new:
        return [Change("tenant-wide", "off", "tenant-wide mail access", details={"permissions": sorted(old)})]
    widened = bool(new - old)
    return [
        Change(
            "tenant-wide",
            "changed",
            "tenant-wide mail access",
            "highest" if widened else "none",
            widened,
            {"permissionsBefore": sorted(old), "permissions": sorted(new)},
        )
    ]


def _app_changes(before: Grants | None, after: Grants | None) -> list[Change]:
    changes: list[Change] = []
    if before is not None and after is not None:
        if before.app_display_name != after.app_display_name:
            changes.append(
                Change(
                    "app",
                    "changed",
                    "display name",
                    details={"before": before.app_display_name, "after": after.app_display_name},
                )
            )
        if before.sign_in_audience != after.sign_in_audience:
            old_reach = _AUDIENCE_REACH.get(before.sign_in_audience, 3)
            new_reach = _AUDIENCE_REACH.get(after.sign_in_audience, 3)
            widened = new_reach > old_reach or (new_reach == old_reach and new_reach > 0)
            changes.append(
                Change(
                    "app",
                    "changed",
                    "sign-in audience",
                    "highest" if widened else "none",
                    widened,
                    {"before": before.sign_in_audience, "after": after.sign_in_audience},
                )
            )
        if before.scoping_mode != after.scoping_mode:
            changes.append(
                Change(
                    "app",
                    "changed",
                    "scoping mode",
                    details={"before": before.scoping_mode, "after": after.scoping_mode},
                )
            )
    elif after is not None and after.sign_in_audience != "AzureADMyOrg":
        changes.append(
            Change(
                "app",
                "added",
                "sign-in audience",
                "highest",
                always_review=True,
                details={"before": None, "after": after.sign_in_audience},
            )
        )
    old_uris = set(before.redirect_uris) if before else set()
    new_uris = set(after.redirect_uris) if after else set()
    changes += [
        Change("app", "added", "redirect URI", "medium", details={"value": u}) for u in sorted(new_uris - old_uris)
    ]
    changes += [Change("app", "removed", "redirect URI", details={"value": u}) for u in sorted(old_uris - new_uris)]
    old_owners = set(before.owners) if before else set()
    new_owners = set(after.owners) if after else set()
    changes += [
        Change("app", "added", "owner", "medium", details={"value": o}) for o in sorted(new_owners - old_owners)
    ]
    changes += [Change("app", "removed", "owner", details={"value": o}) for o in sorted(old_owners - new_owners)]
    return changes


def _secret_expiry(credential: CredentialGrant, today: dt.date) -> str | None:
    if credential.anchor_date is None or credential.rotation_period_months is None:
        return None
    anchor = dt.date.fromisoformat(credential.anchor_date)
    active = secret_generations(anchor, credential.rotation_period_months, max(today, anchor))[0]
    return active.expires.isoformat()


def _replaced_slots(old: CredentialGrant, new: CredentialGrant, today: dt.date) -> list[str]:
    """Which secret slots get a new secret at the next deployment because the schedule changed."""

    def slots(credential: CredentialGrant) -> dict[str, tuple[int, dt.date]]:
        anchor = dt.date.fromisoformat(credential.anchor_date or today.isoformat())
        period = credential.rotation_period_months or 6
        return {g.slot: (g.generation, g.expires) for g in secret_generations(anchor, period, max(today, anchor))}

    before, after = slots(old), slots(new)
    return sorted(slot for slot in after if before.get(slot) != after[slot])


def _credential_facts(credential: CredentialGrant, today: dt.date) -> dict[str, Any]:
    if credential.kind == "client-secret":
        return {
            "kind": credential.kind,
            "rotationPeriodMonths": credential.rotation_period_months,
            "lifetimeMonths": 2 * (credential.rotation_period_months or 0),
            "anchorDate": credential.anchor_date,
            "activeExpires": _secret_expiry(credential, today),
        }
    if credential.kind == "federated":
        return {"kind": credential.kind, "issuer": credential.issuer, "subject": credential.subject, "expires": None}
    return {"kind": credential.kind, "expires": "from the certificate"}


_CREDENTIAL_ADDED_RISK = {"client-secret": "medium", "federated": "medium", "certificate": "low"}


def _credential_changes(before: Grants | None, after: Grants | None, today: dt.date) -> list[Change]:
    old = {(c.kind, c.name): c for c in (before.credentials if before else ())}
    new = {(c.kind, c.name): c for c in (after.credentials if after else ())}
    changes = []
    for key in sorted(old.keys() | new.keys()):
        kind, name = key
        if key not in old:
            facts = _credential_facts(new[key], today)
            changes.append(
                Change("credentials", "added", name, _CREDENTIAL_ADDED_RISK.get(kind, "medium"), details=facts)
            )
        elif key not in new:
            changes.append(Change("credentials", "removed", name, details=_credential_facts(old[key], today)))
        elif old[key] != new[key]:
            was, now = _credential_facts(old[key], today), _credential_facts(new[key], today)
            changed = {k: {"before": was[k], "after": now[k]} for k in now if k != "kind" and was.get(k) != now[k]}
            if kind == "client-secret":
                longer = (new[key].rotation_period_months or 0) > (old[key].rotation_period_months or 0)
                risk = "medium" if longer else "none"
                replaced = _replaced_slots(old[key], new[key], today)
            else:
                risk = "medium"  # A federated credential trusting another workload, or a different certificate key.
                replaced = []
            details = {"kind": kind, "changed": changed, "replacedSlots": replaced}
            changes.append(Change("credentials", "changed", name, risk, details=details))
    return changes


def diff_grants(before: Grants | None, after: Grants | None, *, today: dt.date) -> list[Change]:
    """Every reviewable difference between two grants (None: the stack does not exist on that side)."""
    return [
        *_permission_changes(before, after),
        *_mailbox_changes(before, after),
        *_tenant_wide_changes(before, after),
        *_app_changes(before, after),
        *_credential_changes(before, after, today),
    ]


def audit_stacks(
    base: Mapping[str, StackSide],
    head: Mapping[str, StackSide],
    *,
    today: dt.date,
    fail_on: str = "medium",
    settings: PolicySettings | None = None,
    base_label: str = "base",
    head_label: str = "head",
) -> AuditReport:
    """Compare two states of the stacks (by stack name) and judge the new one with the shared policy rules."""
    if fail_on not in THRESHOLDS:
        raise ValueError(f"unknown threshold {fail_on!r}; use one of {', '.join(THRESHOLDS)}")
    audits = []
    for stack in sorted(base.keys() | head.keys()):
        old, new = base.get(stack), head.get(stack)
        audit = StackAudit(stack, "changed", old.source if old else None, new.source if new else None)
        before = compute_grants(old.config) if old and old.config else None
        after = compute_grants(new.config) if new and new.config else None
        if new is not None and new.config is None:
            audit.status = "invalid"
            audit.problems = list(new.problems)
        else:
            audit.changes = diff_grants(before, after, today=today)
            if old is None:
                audit.status = "added"
            elif new is None:
                audit.status = "removed"
            elif not audit.changes:
                audit.status = "unchanged"
            if new is not None and new.config is not None and after is not None:
                audit.violations = tenant_violations(new.config, after, settings=settings, today=today)
        audits.append(audit)
    return AuditReport(base_label, head_label, today, fail_on, audits)


# -- rendering -------------------------------------------------------------------------------------------------


def render_json(report: AuditReport) -> str:
    """Render the report as indented JSON."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


_HEADLINES = {
    "ok": "no risk increase",
    "review-needed": "review needed",
    "blocked": "blocked (policy violation or invalid stack)",
}
_THRESHOLD_LEVELS = {"low": 1, "medium": 2, "high": 3, "highest": 4}


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{value}`" if value not in (None, "") else "—"


def _risk_cell(change: Change) -> str:
    text = change.risk
    if change.always_review:
        text += " (always reviewed)"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _permission_rows(changes: list[Change]) -> list[list[str]]:
    rows = []
    for c in changes:
        d = c.details
        granted = d["grantedAs"] if c.action != "changed" else f"{d['grantedAsBefore']} → {d['grantedAs']}"
        rows.append(
            [
                c.action,
                _code(c.subject),
                d["type"],
                f"{d['privilegeLevel']} ({d['privilege']})",
                "required" if d["adminConsent"] else "not required",
                granted,
                _risk_cell(c),
            ]
        )
    return rows


def _credential_detail(change: Change) -> tuple[str, str]:
    d = change.details
    if change.action == "changed":
        parts, expires = [], "—"
        for key, values in d["changed"].items():
            if key == "activeExpires":
                expires = f"{values['before']} → {values['after']}"
            elif key == "rotationPeriodMonths":
                parts.append(f"rotation every {values['before']} → {values['after']} months")
            elif key == "lifetimeMonths":
                parts.append(f"each secret lives {values['before']} → {values['after']} months")
            else:
                parts.append(f"{key} {_code(values['before'])} → {_code(values['after'])}")
        if d.get("replacedSlots"):
            slots = " and ".join(d["replacedSlots"])
            noun = "slots" if len(d["replacedSlots"]) > 1 else "slot"
            parts.append(f"the next deployment replaces {noun} {slots} at once (consumers must switch secrets)")
        return "; ".join(parts), expires
    if d["kind"] == "client-secret":
        detail = f"rotation every {d['rotationPeriodMonths']} months, each secret lives {d['lifetimeMonths']} months"
        return detail, f"active secret {d['activeExpires']}"
    if d["kind"] == "federated":
        return f"issuer {_code(d['issuer'])}, subject {_code(d['subject'])}", "no expiry (no secret)"
    return "certificate key", "from the certificate (`mailplane credentials`)"


def _tenant_wide_line(change: Change) -> str:
    permissions = ", ".join(change.details["permissions"])
    if change.action == "on":
        verb = "reaches" if len(change.details["permissions"]) == 1 else "reach"
        return (
            f"**Tenant-wide mail access turned ON**: {permissions} now {verb} every mailbox in the tenant "
            f"(risk: {_risk_cell(change)})."
        )
    if change.action == "off":
        return f"**Tenant-wide mail access turned off**: {permissions} no longer reach every mailbox."
    before = ", ".join(change.details["permissionsBefore"])
    return f"**Tenant-wide mail access changed**: {before} → {permissions} (risk: {_risk_cell(change)})."


def _app_rows(changes: list[Change]) -> list[list[str]]:
    rows = []
    for c in changes:
        if "value" in c.details:
            before, after = (None, c.details["value"]) if c.action == "added" else (c.details["value"], None)
        else:
            before, after = c.details["before"], c.details["after"]
        rows.append([c.action, c.subject, _code(before), _code(after), _risk_cell(c)])
    return rows


def _credential_rows(changes: list[Change]) -> list[list[str]]:
    rows = []
    for c in changes:
        detail, expires = _credential_detail(c)
        rows.append([c.action, _code(c.subject), c.details["kind"], detail, expires, _risk_cell(c)])
    return rows


def _stack_section(audit: StackAudit) -> list[str]:
    source = audit.head_source or audit.base_source
    lines = [f"### `{audit.stack}` — {audit.status} ({_code(source)})", ""]
    if audit.problems:
        lines += ["**Invalid stack** (fix it before anything is deployed):", ""]
        lines += [f"- {p}" for p in audit.problems]
        lines.append("")
    by_section: dict[str, list[Change]] = {}
    for change in audit.changes:
        by_section.setdefault(change.section, []).append(change)
    if "permissions" in by_section:
        lines += ["**Permissions** (Microsoft Graph)", ""]
        lines += _table(
            ["change", "permission", "type", "privilege (Microsoft)", "admin consent", "granted as", "risk"],
            _permission_rows(by_section["permissions"]),
        )
    if "mailboxes" in by_section:
        lines += ["**Mailbox scope** (Exchange)", ""]
        lines += _table(
            ["change", "mailbox", "role", "risk"],
            [[c.action, _code(c.subject), c.details["role"], _risk_cell(c)] for c in by_section["mailboxes"]],
        )
    for change in by_section.get("tenant-wide", []):
        lines += [_tenant_wide_line(change), ""]
    if "app" in by_section:
        lines += ["**App registration**", ""]
        lines += _table(["change", "what", "before", "after", "risk"], _app_rows(by_section["app"]))
    if "credentials" in by_section:
        lines += ["**Credentials**", ""]
        lines += _table(
            ["change", "credential", "type", "detail", "expires", "risk"], _credential_rows(by_section["credentials"])
        )
    if audit.violations:
        lines += ["**Policy violations** (block the merge)", ""]
        lines += [f"- `{v.rule}`: {v.message}" for v in audit.violations]
        lines.append("")
    return lines


def render_markdown(report: AuditReport) -> str:
    """Render the report as a pull-request comment (GitHub-flavoured markdown)."""
    changed = [s for s in report.stacks if s.status != "unchanged" or s.violations or s.problems]
    unchanged = [s for s in report.stacks if s not in changed]
    level = _THRESHOLD_LEVELS[report.threshold]
    lines = [
        COMMENT_MARKER,
        f"## mailplane audit: {_HEADLINES[report.verdict]}",
        "",
        (
            f"Comparing `{report.base_label}` → `{report.head_label}` on {report.today.isoformat()}: "
            f"{len(changed)} stack{'s' if len(changed) != 1 else ''} changed, {len(unchanged)} unchanged. "
            f"A reviewer is needed from risk **{report.threshold}** (Microsoft privilege level {level} or higher); "
            "tenant-wide mail access and a wider sign-in audience always need one."
        ),
        "",
    ]
    if changed:
        lines += _table(
            ["stack", "status", "highest risk", "verdict"],
            [[_code(s.stack), s.status, s.risk, _HEADLINES[s.verdict(report.threshold)]] for s in changed],
        )
    for audit in changed:
        lines += _stack_section(audit)
    if unchanged:
        lines += [f"Unchanged: {', '.join(_code(s.stack) for s in unchanged)}.", ""]
    lines.append(f"Exit code {report.exit_code}: {_HEADLINES[report.verdict]}.")
    return "\n".join(lines) + "\n"
