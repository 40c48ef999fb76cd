"""Importing through the real msgraph-sdk against the dev tenant: threading, mapping, followers, marking read."""

from __future__ import annotations

from importing_harness import AGENT, SUPPORT, eml, read_store, received, run_importer


def test_new_messages_and_a_reply__import_once__one_conversation_mapped_and_everything_marked_read(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, eml(message_id="<m1@contoso.example>"), received=received(0))
    tenant.state.seed_eml(
        SUPPORT,
        eml(
            "RE: Printer on fire",
            sender="Agent Smith <agent.smith@fabrikam.com>",
            to="ann@contoso.example",
            cc="Bob <bob@tailspin.example>, " + SUPPORT,
            message_id="<m2@fabrikam.com>",
            in_reply_to="<m1@contoso.example>",
            references="<m1@contoso.example>",
            date="Mon, 02 Mar 2026 09:00:00 +0000",
        ),
        received=received(60),
    )
    tenant.state.seed_eml(SUPPORT, eml("Invoice missing", sender="carl@example.org", message_id="<m3@example.org>"))

    report = run_importer(tenant, config, lambda importer: importer.import_once())

    assert (report.imported, report.failed) == (3, 0)
    conversations = read_store(config, lambda s: s.list_conversations())
    by_title = {c.parent_fields["title"]: c for c in conversations}
    assert sorted(by_title) == ["Invoice missing", "Printer on fire"]
    printer = by_title["Printer on fire"]
    assert printer.parent_fields == {
        "title": "Printer on fire",
        "requesterEmail": "ann@contoso.example",
        "queue": "support",
        "company": "Contoso Ltd",
    }
    assert [m.internet_message_id for m in printer.messages] == ["<m1@contoso.example>", "<m2@fabrikam.com>"]
    followers = {f.address: (f.participation, f.parent_type, f.parent_id) for f in printer.followers}
    assert followers == {
        "ann@contoso.example": ("participant", "person", "p-ann"),
        AGENT: ("observer", "agent", "a-smith"),
        "bob@tailspin.example": ("participant", "person", "p-bob"),
    }
    assert all(m.is_read for m in tenant.state.messages(SUPPORT, "inbox"))


def test_imported_mailbox__import_again__nothing_new_and_only_the_delta_round_is_requested(tenant, make_config):
    config = make_config()
    for n in range(5):
        tenant.state.seed_eml(SUPPORT, eml(f"Question {n}", message_id=f"<q{n}@contoso.example>"))
    run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))
    tenant.requests.clear()

    again = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert again.imported == 0
    assert read_store(config, lambda s: s.count_messages()) == 5
    assert tenant.requests.count(kind="batch") == 0
    assert tenant.requests.count() == 1
