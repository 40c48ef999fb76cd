"""What every Exchange dynamic provider shares: the connection, input checks, the diff rule, read-back after writes.

Providers are pickled (dill) into the stack's state and run later in Pulumi's dynamic-provider host, so they hold
no state: the :class:`~mailplane.exchange.client.ExchangeAdminClient` is created inside each method from the
resource's inputs and the environment (:mod:`mailplane.exchange.environment`: ``MAILPLANE_EXCHANGE_TOKEN`` or
azure-identity's ``DefaultAzureCredential``; ``admin_api_url`` input, else ``MAILPLANE_EXCHANGE_ADMIN_URL``, else
Microsoft's endpoint).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pulumi.dynamic import CheckFailure, CheckResult, DiffResult, ReadResult, ResourceProvider
from pulumi.runtime.rpc import UNKNOWN

from mailplane.exceptions import ExchangeError, ExchangeNotFoundError
from mailplane.exchange.environment import client_from_environment
from mailplane.exchange.reconcile import decide_diff

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mailplane.exchange.client import ExchangeAdminClient

__all__ = [
    "ExchangeProvider",
    "SingleObjectProvider",
    "connect",
    "is_known",
    "read_or_none",
    "write_then_read_back",
]

CONNECTION_KEYS = ("tenant_id", "admin_api_url")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

T = TypeVar("T")


def is_known(value: Any) -> bool:
    """False for a value Pulumi does not know yet (a preview of an output of another resource)."""
    return value != UNKNOWN and value is not None


def connect(props: Mapping[str, Any]) -> ExchangeAdminClient:
    """A client for the resource's tenant, with credentials and endpoint from the environment."""
    return client_from_environment(str(props["tenant_id"]), props.get("admin_api_url") or None)


def read_or_none(read: Callable[[], T]) -> T | None:
    """``read()``, or None when the object does not exist."""
    try:
        return read()
    except ExchangeNotFoundError:
        return None


def write_then_read_back(write: Callable[[], T], read_back: Callable[[], T | None]) -> T:
    """Run a write; when it failed in a way that may still have applied it (5xx, lost connection), read back.

    Writes are not retried on 5xx (a replayed ``New-*`` fails as a duplicate); if the object is there the write
    took effect and the result is what was read back, otherwise the original error is raised.
    """
    try:
        return write()
    except ExchangeError as error:
        ambiguous = error.status is None or error.status >= 500  # noqa: PLR2004
        if not ambiguous or isinstance(error, ExchangeNotFoundError):
            raise
        found = read_back()
        if found is None:
            raise
        return found


class ExchangeProvider(ResourceProvider):
    """Base of the Exchange providers: shared input checks and the diff rule; subclasses do the cmdlets.

    ``update_keys`` change in place, ``replace_keys`` force a replacement; ``tenant_id`` always replaces.
    """

    kind: ClassVar[str] = "Exchange object"
    update_keys: ClassVar[tuple[str, ...]] = ()
    replace_keys: ClassVar[tuple[str, ...]] = ()
    guid_keys: ClassVar[tuple[str, ...]] = ()
    address_keys: ClassVar[tuple[str, ...]] = ()
    required_keys: ClassVar[tuple[str, ...]] = ()
    delete_before_replace: ClassVar[bool] = False

    def normalised_inputs(self, news: dict[str, Any]) -> dict[str, Any]:
        """Inputs after defaults and derived values (override to add them)."""
        return news

    def extra_failures(self, news: dict[str, Any]) -> list[CheckFailure]:  # noqa: ARG002 - a hook.
        """Checks beyond required/GUID/address ones (override)."""
        return []

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Reject inputs Exchange would reject, before anything is created; fill derived inputs."""
        failures = [
            CheckFailure(key, f"{self.kind}: {key} is required.")
            for key in ("tenant_id", *self.required_keys)
            if news.get(key) in (None, "", [])
        ]
        failures += [
            CheckFailure(key, f"{self.kind}: {key} must be a GUID, got {news[key]!r}.")
            for key in self.guid_keys
            if is_known(news.get(key)) and news[key] != "" and not _GUID.match(str(news[key]))
        ]
        for key in self.address_keys:
            values = news.get(key)
            failures += [
                CheckFailure(key, f"{self.kind}: {value!r} is not an email address (name@domain).")
                for value in (values if isinstance(values, list) else [values])
                if is_known(value) and value != "" and not _ADDRESS.match(str(value))
            ]
        failures += self.extra_failures(news)
        inputs = self.normalised_inputs(dict(news)) if not failures else news
        return CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Changes per :func:`mailplane.exchange.reconcile.decide_diff`; the connection URL never causes a diff."""
        decision = decide_diff(olds, news, update_in_place=self.update_keys, replace=("tenant_id", *self.replace_keys))
        return DiffResult(
            changes=decision.has_changes,
            replaces=list(decision.replaces),
            stables=[k for k in self.replace_keys if k not in decision.changed],
            delete_before_replace=self.delete_before_replace,
        )

    @staticmethod
    def connection(props: Mapping[str, Any]) -> dict[str, Any]:
        """The connection inputs, carried into outputs so delete and refresh reach the same tenant."""
        return {key: props.get(key) for key in CONNECTION_KEYS}


class SingleObjectProvider(ExchangeProvider):
    """An Exchange provider whose object one ``Get-*`` cmdlet reads back by id (subclasses: ``fetch``, ``_outs``).

    Not generic on purpose: providers are pickled by value into the stack state, and a ``TypeVar`` does not pickle.
    """

    def fetch(self, client: ExchangeAdminClient, id_: str) -> Any:
        """The object with ``id_``; raises ``ExchangeNotFoundError`` when it does not exist."""
        raise NotImplementedError

    def _outs(self, props: dict[str, Any], found: Any, *, adopted: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The object as Exchange has it (a change made outside Pulumi shows as a diff), or gone (empty id)."""
        with connect(props) as client:
            found = read_or_none(lambda: self.fetch(client, id_))
        if found is None:
            return ReadResult("", {})
        return ReadResult(id_, self._outs(props, found, adopted=bool(props.get("adopted"))))
