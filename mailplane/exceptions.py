"""Exceptions raised by mailplane.

Every error a person can see says what was being done, on which object, why it failed and what to do::

    MailplaneError                  base of everything mailplane raises on purpose
    ├── ConfigError                 a config file is invalid; .problems lists every finding
    │   ├── TenantConfigError       a stack file's mailplane:* keys
    │   └── IntegrationConfigError  a runtime integration config (JSON)
    ├── GraphError                  a Microsoft Graph call failed; .status, .code, .request_id
    │   ├── AuthenticationError     no token: wrong or expired client secret / certificate (AADSTS codes)
    │   ├── AccessDeniedError       403 ErrorAccessDenied: the app is not scoped to that mailbox
    │   ├── MailboxNotEnabledError  MailboxNotEnabledForRESTAPI: on-premises, unlicensed or inactive mailbox
    │   └── ThrottledError          429 after the retries ran out
    ├── ExchangeError               an Exchange Online admin cmdlet failed; .cmdlet, .exception_type
    │   ├── ExchangeNotFoundError   the object does not exist
    │   ├── ExchangeConflictError   an object with that identity exists and differs
    │   └── ExchangeAccessDeniedError  401/403; the reason from x-ms-diagnostics
    ├── StoreError                  the send/import store cannot be opened or written
    ├── SendError                   a message cannot be sent as asked; .key is its idempotency key
    │   └── IdempotencyConflictError  the key was already used for a different message
    └── SinkError                   the webhook sink cannot start (e.g. its secret is not set)
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "ConfigError",
    "ConfigProblem",
    "ExchangeAccessDeniedError",
    "ExchangeConflictError",
    "ExchangeError",
    "ExchangeNotFoundError",
    "GraphError",
    "IdempotencyConflictError",
    "IntegrationConfigError",
    "MailboxNotEnabledError",
    "MailplaneError",
    "SendError",
    "SinkError",
    "StoreError",
    "TenantConfigError",
    "ThrottledError",
]


class MailplaneError(Exception):
    """Base class of every error mailplane raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One finding in a config file: where (a path of keys and indexes), the bad value, and what is allowed."""

    path: tuple[str | int, ...]
    message: str
    value: object = field(default=None, compare=False)

    def location(self, prefix: str = "$") -> str:
        """The path in ``$.a.b[0]`` form, or ``mailplane:a.b[0]`` with prefix ``mailplane:`` for stack keys."""
        text = prefix
        for index, part in enumerate(self.path):
            if isinstance(part, int):
                text += f"[{part}]"
            elif index == 0 and prefix.endswith(":"):
                text += part
            else:
                text += f".{part}"
        return text


class ConfigError(MailplaneError):
    """A config file is invalid. The first problem is the headline; ``problems`` holds all of them."""

    location_prefix = "$"

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        """Record every problem found in ``source`` (a file path or a description of where the config came from)."""
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """Headline problem first, then the rest, one per line."""
        first, *rest = self.problems
        lines = [f"{self.source}: {first.location(self.location_prefix)}: {first.message}"]
        if rest:
            lines.append(f"{len(rest)} more problem{'s' if len(rest) > 1 else ''}:")
            lines.extend(f"  - {p.location(self.location_prefix)}: {p.message}" for p in rest)
        return "\n".join(lines)


class TenantConfigError(ConfigError):
    """The ``mailplane:*`` keys of a stack file are invalid."""

    location_prefix = "mailplane:"


class IntegrationConfigError(ConfigError):
    """A runtime integration config is invalid."""


class GraphError(MailplaneError):
    """A Microsoft Graph request failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """``message`` is the full sentence; the other fields are kept for programs that branch on them."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id


class AuthenticationError(GraphError):
    """The credential could not get a token (wrong tenant, wrong or expired secret, revoked certificate)."""


class AccessDeniedError(GraphError):
    """Graph answered 403 ErrorAccessDenied: the app is not allowed on that mailbox."""


class MailboxNotEnabledError(GraphError):
    """The mailbox cannot be used through Graph (on-premises in hybrid, unlicensed, inactive or soft-deleted)."""


class ThrottledError(GraphError):
    """Graph kept answering 429 after the retries ran out."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        """``retry_after`` is the last Retry-After the service sent, in seconds."""
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ExchangeError(MailplaneError):
    """An Exchange Online admin cmdlet failed."""

    def __init__(
        self,
        message: str,
        *,
        cmdlet: str | None = None,
        exception_type: str | None = None,
        status: int | None = None,
    ) -> None:
        """``exception_type`` is Exchange's .NET exception name, e.g. ManagementObjectNotFoundException."""
        super().__init__(message)
        self.cmdlet = cmdlet
        self.exception_type = exception_type
        self.status = status


class ExchangeNotFoundError(ExchangeError):
    """The Exchange object does not exist."""


class ExchangeConflictError(ExchangeError):
    """An Exchange object with that identity already exists (and does not match what was asked for)."""


class ExchangeAccessDeniedError(ExchangeError):
    """Exchange refused the call (401/403): missing Exchange.ManageAsApp consent or admin role."""


class StoreError(MailplaneError):
    """The send/import store cannot be opened or written."""


class SendError(MailplaneError):
    """A message cannot be sent as asked (no sending mailbox, a refused message, an unsupported store)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        """``key`` is the idempotency key of the send concerned, when there is one."""
        super().__init__(message)
        self.key = key


class IdempotencyConflictError(SendError):
    """An idempotency key was used again for a message with different content."""


class SinkError(MailplaneError):
    """The webhook sink cannot deliver at all (its secret is missing); failed deliveries are recorded, not raised."""
