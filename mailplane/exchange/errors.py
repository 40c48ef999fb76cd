"""Turn an ``InvokeCommand`` failure into one of mailplane's Exchange exceptions. Pure: no I/O.

The service wraps every cmdlet failure the same way: ``error.message`` is a generic "Error executing cmdlet", and the
reason is in ``error.details[].message`` as ``<error id>|<.NET exception type>|<text>``. When the details are
missing, ``innererror.internalexception.message`` and then ``error.message`` are used. A 403 often has an empty body;
the reason is then in the ``x-ms-diagnostics`` header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mailplane.exceptions import (
    ExchangeAccessDeniedError,
    ExchangeConflictError,
    ExchangeError,
    ExchangeNotFoundError,
)

__all__ = ["CmdletFailure", "error_from_response", "parse_failure"]

# .NET exception types (last dotted segment) that mean "no such object" / "already exists".
_NOT_FOUND_TYPES = frozenset(
    {
        "ManagementObjectNotFoundException",
        "ADNoSuchObjectException",
        "MemberNotFoundException",
        "RecipientNotFoundException",
    }
)
_CONFLICT_TYPES = frozenset(
    {
        "ManagementObjectAlreadyExistsException",
        "ADObjectAlreadyExistsException",
        "ProxyAddressExistsException",
        "MemberAlreadyExistsException",
        "WLCDManagedMemberExistsException",
    }
)
_ACCESS_DENIED_TYPES = frozenset({"OperationRequiresGroupManagerException", "AccessDeniedException"})


@dataclass(frozen=True)
class CmdletFailure:
    """What an error response says: the error id, the .NET exception type and the cmdlet's own text."""

    status: int
    code: str
    exception_type: str
    message: str

    @property
    def short_type(self) -> str:
        """The exception type without its namespace (``ManagementObjectNotFoundException``)."""
        return self.exception_type.rsplit(".", 1)[-1]


def _decode(body: bytes | str | None) -> Any:
    if not body:
        return None
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip("\x00 \r\n\t")
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_failure(status: int, body: bytes | str | None, diagnostics: str | None = None) -> CmdletFailure:
    """Read the status, body and ``x-ms-diagnostics`` header of a failed call."""
    document = _decode(body)
    code, exception_type, message = "", "", ""
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        code = str(error.get("code") or "")
        for detail in error.get("details") or []:
            text = str((detail or {}).get("message") or "")
            if not text:
                continue
            parts = text.split("|", 2)
            if len(parts) == 3:  # noqa: PLR2004 - "<id>|<type>|<text>"
                code, exception_type, message = parts[0] or code, parts[1], parts[2]
            else:
                message = text
            break
        if not message:
            inner = error.get("innererror") or {}
            internal = inner.get("internalexception") or inner.get("internalException") or {}
            message = str(internal.get("message") or "")
            exception_type = exception_type or str(internal.get("type") or "")
        if not message:
            message = str(error.get("message") or "")
    elif isinstance(document, str):
        message = document
    if diagnostics and (status in (401, 403) or not message):
        message = f"{message} ({diagnostics})" if message else diagnostics
    if not message:
        message = f"HTTP {status} with no explanation in the body"
    return CmdletFailure(status=status, code=code, exception_type=exception_type, message=message.strip())


_ADVICE: dict[type[ExchangeError], str] = {
    ExchangeAccessDeniedError: (
        "The deployer identity needs the Exchange.ManageAsApp application permission (Office 365 Exchange "
        "Online) and the Exchange Administrator role or a role group that holds this cmdlet; see docs/exchange.md."
    ),
    ExchangeNotFoundError: "Check the name or address; it may have been deleted outside Pulumi (run 'pulumi refresh').",
    ExchangeConflictError: (
        "Another object already uses that name or address; rename one of them or import the existing object."
    ),
}
_REJECTED_CREDENTIAL_ADVICE = (
    "The token was rejected: check the tenant id and that the credential is for the Office 365 Exchange "
    "Online resource (scope https://outlook.office365.com/.default)."
)


def _what_to_do(error_class: type[ExchangeError], failure: CmdletFailure) -> str:
    if error_class is ExchangeAccessDeniedError and failure.status == 401:  # noqa: PLR2004
        return _REJECTED_CREDENTIAL_ADVICE
    if error_class in _ADVICE:
        return _ADVICE[error_class]
    if failure.status == 429:  # noqa: PLR2004
        return "Exchange is throttling this tenant; wait a few minutes and run again."
    if failure.status >= 500:  # noqa: PLR2004
        return "Exchange had an internal error; run again (the write may or may not have been applied)."
    return "Fix the input named in the message and run again."


def error_from_response(
    cmdlet: str,
    target: str | None,
    status: int,
    body: bytes | str | None,
    diagnostics: str | None = None,
) -> ExchangeError:
    """The exception for a failed cmdlet call, with a message that says what, where, why and what to do.

    ``target`` is the object the call was about (the Identity parameter, or the name being created).
    """
    failure = parse_failure(status, body, diagnostics)
    error_class: type[ExchangeError] = ExchangeError
    if status in (401, 403) or failure.short_type in _ACCESS_DENIED_TYPES:
        error_class = ExchangeAccessDeniedError
    elif failure.short_type in _NOT_FOUND_TYPES:
        error_class = ExchangeNotFoundError
    elif failure.short_type in _CONFLICT_TYPES:
        error_class = ExchangeConflictError
    where = f" on {target!r}" if target else ""
    kind = failure.short_type or (f"HTTP {status}" + (f" {failure.code}" if failure.code else ""))
    message = f"running {cmdlet}{where}: {kind}: {failure.message.rstrip('.')}. {_what_to_do(error_class, failure)}"
    return error_class(message, cmdlet=cmdlet, exception_type=failure.exception_type or None, status=status)
