"""Filling a ticket from a message: message properties, fixed defaults and lookups through references."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailplane.integration import load_integration_config
from mailplane.mapping import fill_properties

CONFIG = load_integration_config(Path(__file__).resolve().parent.parent / "examples" / "integration.json")
SUPPORT = CONFIG.account("support@fabrikam.com")


class Records:
    def __init__(self):
        self.data = {
            "person": [{"id": "p1", "email": "Ann@Northwind.example", "name": "Ann", "company": "c1"}],
            "company": [{"id": "c1", "name": "Northwind", "accountManager": "a1"}],
            "agent": [{"id": "a1", "email": "dana@fabrikam.com", "name": "Dana"}],
        }
        self.calls = []

    def find(self, record_type, field, value, *, case_insensitive):
        self.calls.append(("find", record_type, field, value, case_insensitive))
        for record in self.data[record_type]:
            have = record.get(field)
            if (have.lower() == value.lower()) if case_insensitive else have == value:
                return record
        return None

    def get(self, record_type, key):
        self.calls.append(("get", record_type, key))
        return next((r for r in self.data[record_type] if r["id"] == key), None)


MESSAGE = {
    "subject": "Printer on fire " + "!" * 300,
    "textBody": "It burns.",
    "fromAddress": "ann@northwind.example",
    "fromName": "Ann",
    "receivedAt": "2026-03-01T09:30:00Z",
}


def test_known_sender__filled__message_values_defaults_and_lookups():
    records = Records()
    values = fill_properties(SUPPORT.conversation, MESSAGE, CONFIG, records)
    assert values == {
        "title": MESSAGE["subject"][:200],
        "description": "It burns.",
        "requesterEmail": "ann@northwind.example",
        "requesterName": "Ann",
        "openedAt": "2026-03-01T09:30:00Z",
        "queue": "support",
        "status": "new",
        "company": "c1",
        "accountManager": "a1",
    }
    assert ("find", "person", "email", "ann@northwind.example", True) in records.calls
    assert ("get", "company", "c1") in records.calls


def test_unknown_sender__filled__if_not_found_values():
    values = fill_properties(SUPPORT.conversation, {**MESSAGE, "fromAddress": "eve@example.com"}, CONFIG, Records())
    assert values["company"] is None
    assert values["accountManager"] is None


def test_reference_to_missing_record__filled__if_not_found():
    records = Records()
    records.data["company"] = []
    assert fill_properties(SUPPORT.conversation, MESSAGE, CONFIG, records)["accountManager"] is None


@pytest.mark.parametrize("subject", [None, "", "   "])
def test_empty_subject__filled__if_empty_value(subject):
    values = fill_properties(SUPPORT.conversation, {**MESSAGE, "subject": subject}, CONFIG, Records())
    assert values["title"] == "(no subject)"


def test_missing_property__no_if_empty__none():
    message = dict(MESSAGE)
    del message["fromName"]
    assert fill_properties(SUPPORT.conversation, message, CONFIG, Records())["requesterName"] is None
