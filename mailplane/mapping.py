"""Fill a conversation parent's fields from an incoming message, as an account's ``conversation.properties`` say.

Pure: the integrating product's records are reached through a :class:`RecordLookup` the caller provides (the
importer's store, an HTTP API, a dict in tests). Keeping the meaning of ``message`` / ``default`` / ``lookup``
sources here means every importer and the docs agree on it: ``ifEmpty`` replaces a missing, ``None`` or blank value;
``maxLength`` truncates text; a lookup compares e-mail fields case-insensitively, follows reference fields along
``take`` and yields ``ifNotFound`` as soon as a step finds nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from mailplane.integration import DefaultSource, MessageSource

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailplane.integration import ConversationMapping, IntegrationConfig, LookupSource, PropertySource, Scalar

__all__ = ["RecordLookup", "fill_properties", "resolve_source"]


class RecordLookup(Protocol):
    """Access to the integrating product's records, by type."""

    def find(self, record_type: str, field: str, value: Scalar, *, case_insensitive: bool) -> Mapping[str, Any] | None:
        """The first record of ``record_type`` whose ``field`` equals ``value`` (its fields by name), or None."""
        ...

    def get(self, record_type: str, key: Any) -> Mapping[str, Any] | None:
        """The record of ``record_type`` a reference field's value ``key`` points at, or None."""
        ...


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def _from_message(source: MessageSource, message: Mapping[str, Any]) -> Any:
    value = message.get(source.property)
    if _is_empty(value):
        return source.if_empty
    if source.max_length is not None and isinstance(value, str):
        return value[: source.max_length]
    return value


def _lookup(source: LookupSource, message: Mapping[str, Any], config: IntegrationConfig, records: RecordLookup) -> Any:
    wanted = message.get(source.equals)
    if _is_empty(wanted):
        return source.if_not_found
    record_type = config.record_types[source.record_type]
    case_insensitive = record_type.fields[source.where].type == "email"
    record = records.find(source.record_type, source.where, wanted, case_insensitive=case_insensitive)
    current_type = record_type
    for position, field_name in enumerate(source.take):
        if record is None:
            return source.if_not_found
        value = record.get(field_name)
        if position == len(source.take) - 1:
            return source.if_not_found if value is None else value
        target = current_type.fields[field_name].references
        if value is None or target is None:
            return source.if_not_found
        record = records.get(target, value)
        current_type = config.record_types[target]
    return source.if_not_found


def resolve_source(
    source: PropertySource, message: Mapping[str, Any], config: IntegrationConfig, records: RecordLookup
) -> Any:
    """The value one source gives for ``message`` (a mapping of message property name -> value)."""
    if isinstance(source, MessageSource):
        return _from_message(source, message)
    if isinstance(source, DefaultSource):
        return source.value
    return _lookup(source, message, config, records)


def fill_properties(
    mapping: ConversationMapping, message: Mapping[str, Any], config: IntegrationConfig, records: RecordLookup
) -> dict[str, Any]:
    """Parent field name -> value for every field in ``mapping.properties``, in the config's order."""
    return {name: resolve_source(source, message, config, records) for name, source in mapping.properties.items()}
