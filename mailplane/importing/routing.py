"""Where a message goes and who follows it: destinations, conversation parent fields, followers. Pure.

Destinations. A message arrives in one shared mailbox but may be addressed (To/Cc) to several configured accounts.

* With ``routing.multipleDestinations`` enabled, every addressed account that is enabled, plus the mailbox it arrived
  in, gets its own conversation. Each copy of the mail (one per mailbox, when Exchange delivered several) computes the
  same set, and the store's (destination, Internet message id) key makes whichever copy is processed first create them
  all while the others add nothing.
* Otherwise exactly one destination: the first configured account (config order) among the addressed ones, or the
  mailbox it arrived in when no account is addressed (Bcc, forwarding). Every copy picks the same account, and the
  import is *exclusive* (no second conversation anywhere for the same Internet message id).

Followers, for each destination. From, To and Cc addresses are matched against ``followers.parents`` in order (the
destination's account may restrict them with ``followerParents``); the first parent type with a record whose address
field equals the address wins, with that parent's participation level. Unmatched addresses become address-only
followers unless ``followers.unmatched`` is ``ignore``. The configured mailboxes never become followers unless
``excludeOwnMailboxes`` is false.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailplane.importing.store import DestinationInput, FollowerInput
from mailplane.mapping import RecordLookup, fill_properties

if TYPE_CHECKING:
    from mailplane.importing.message_facts import MessageFacts
    from mailplane.integration import IntegrationConfig, Scalar, SharedAccount

__all__ = ["InMemoryRecords", "choose_destinations", "destination_inputs", "match_followers"]


def choose_destinations(
    config: IntegrationConfig, mailbox: str, facts: MessageFacts
) -> tuple[tuple[SharedAccount, ...], bool]:
    """The accounts the message is imported into, and whether the import is exclusive (see the module docstring)."""
    arrived = config.account(mailbox)
    addressed = {address for header, _, address in facts.addresses if header in ("to", "cc")}
    accounts = [a for a in config.accounts if a.enabled and a.address.lower() in addressed]
    if config.multiple_destinations:
        chosen = {a.address.lower(): a for a in accounts}
        chosen.setdefault(arrived.address.lower(), arrived)
        ordered = [a for a in config.accounts if a.address.lower() in chosen]
        return tuple(ordered), False
    return ((accounts[0] if accounts else arrived),), True


def destination_inputs(
    config: IntegrationConfig, accounts: tuple[SharedAccount, ...], facts: MessageFacts, records: RecordLookup
) -> tuple[DestinationInput, ...]:
    """Each destination with the conversation parent fields (the account's mapping) and followers the message gives it.

    Followers are matched per destination: each account may restrict them with ``followerParents``.
    """
    result = []
    for account in accounts:
        properties = {**facts.properties, "mailbox": account.address.lower(), "mailboxName": account.display_name}
        fields = fill_properties(account.conversation, properties, config, records)
        followers = match_followers(config, account, facts, records)
        result.append(DestinationInput(account.address.lower(), account.conversation.parent, fields, followers))
    return tuple(result)


def match_followers(
    config: IntegrationConfig, account: SharedAccount, facts: MessageFacts, records: RecordLookup
) -> tuple[FollowerInput, ...]:
    """The message's followers for ``account`` (see the module docstring), one per address, headers merged."""
    allowed = set(account.conversation.follower_parents)
    parents = [p for p in config.followers.parents if not allowed or p.record_type in allowed]
    own = set(config.mailboxes) if config.followers.exclude_own_mailboxes else set()
    found: dict[str, FollowerInput] = {}
    for header, name, address in facts.addresses:
        if address in own:
            continue
        previous = found.get(address)
        if previous is not None:
            if header not in previous.headers:
                found[address] = FollowerInput(
                    previous.address,
                    previous.name or name,
                    previous.participation,
                    (*previous.headers, header),
                    previous.parent_type,
                    previous.parent_id,
                )
            continue
        follower = None
        for parent in parents:
            if header not in parent.headers:
                continue
            record = records.find(parent.record_type, parent.address_field, address, case_insensitive=True)
            if record is not None:
                record_id = record.get("id")
                follower = FollowerInput(
                    address,
                    name or _text(record.get("name")),
                    parent.participation,
                    (header,),
                    parent.record_type,
                    None if record_id is None else str(record_id),
                )
                break
        if follower is None and config.followers.unmatched == "address-only":
            follower = FollowerInput(address, name, "participant", (header,))
        if follower is not None:
            found[address] = follower
    return tuple(found.values())


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class InMemoryRecords:
    """The integrating product's records held in memory: ``{record type: [record, ...]}``; each record has an ``id``.

    A :class:`~mailplane.mapping.RecordLookup` for lookups and follower matching, loaded from a JSON file with
    :meth:`from_file` (``mailplane import --records FILE``) or built in tests.
    """

    def __init__(self, records: Mapping[str, list[Mapping[str, Any]]] | None = None) -> None:
        """``records`` maps a record type to its records."""
        self._records = {name: [dict(r) for r in rows] for name, rows in (records or {}).items()}

    @classmethod
    def from_file(cls, path: str | Path) -> InMemoryRecords:
        """Records from a JSON file shaped ``{"person": [{"id": "p1", "email": "..."}], ...}``."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(isinstance(rows, list) for rows in data.values()):
            raise ValueError(f"{path}: expected an object of record type -> list of records")
        return cls(data)

    def find(self, record_type: str, field: str, value: Scalar, *, case_insensitive: bool) -> Mapping[str, Any] | None:
        """The first record of ``record_type`` whose ``field`` equals ``value``."""
        wanted = value.lower() if case_insensitive and isinstance(value, str) else value
        for record in self._records.get(record_type, []):
            have = record.get(field)
            if case_insensitive and isinstance(have, str):
                have = have.lower()
            if have == wanted:
                return record
        return None

    def get(self, record_type: str, key: Any) -> Mapping[str, Any] | None:
        """The record of ``record_type`` with ``id`` equal to ``key``."""
        return next((r for r in self._records.get(record_type, []) if r.get("id") == key), None)
