"""Importer scenarios against the dev tenant: attachments, failures, recovery, routing, resync, malformed mail."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from pathlib import Path

from importing_harness import (
    AGENT,
    BILLING,
    SUPPORT,
    accounts_importing_support_from,
    eml,
    integration_config,
    read_store,
    received,
    run_importer,
)

MIB = 1024 * 1024


def _html_with_inline_image() -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Archer <ann@contoso.example>"
    message["To"] = SUPPORT
    message["Subject"] = "Screenshot of the error"
    message["Message-ID"] = "<inline@contoso.example>"
    message.set_content("See the screenshot.")
    message.add_alternative('<p>See the screenshot:</p><img src="cid:shot@contoso.example">', subtype="html")
    html = message.get_payload()[1]
    html.add_related(b"\x89PNG\r\n\x1a\n" + b"0" * 2000, maintype="image", subtype="png", cid="<shot@contoso.example>")
    return message.as_bytes()


def _folder_messages(tenant, mailbox, folder):
    return tenant.state.messages(mailbox, folder)


def test_attachment_over_the_limit__import__message_imported_without_it_and_skip_recorded(tenant, make_config):
    config = make_config()  # attachmentSizeLimitMB 1
    small = b"%PDF-1.4 " + b"x" * 5000
    tenant.state.seed_eml(
        SUPPORT,
        eml(
            "Logs attached",
            message_id="<att@contoso.example>",
            attachments=[
                ("invoice.pdf", "application/pdf", small),
                ("dump.bin", "application/octet-stream", b"\0" * (MIB + MIB // 2)),
            ],
        ),
    )

    report = run_importer(tenant, config, lambda importer: importer.import_once())

    assert (report.imported, report.failed) == (1, 0)
    [conversation] = read_store(config, lambda s: s.list_conversations())
    [message] = conversation.messages
    documents = {d.name: d for d in message.documents}
    assert documents["invoice.pdf"].skipped is False
    assert documents["invoice.pdf"].size == len(small)
    blob = config.store.sqlite_path.with_name("blobs") / documents["invoice.pdf"].sha256
    assert blob.read_bytes() == small
    assert documents["dump.bin"].skipped is True
    assert documents["dump.bin"].content_ref is None
    assert "over the attachment size limit of 1048576 bytes" in documents["dump.bin"].skip_reason
    assert message.attributes["skippedAttachments"] == ["dump.bin"]
    assert tenant.requests.count(kind="attachmentValue") + tenant.requests.count(kind="attachmentContent") <= 1


def test_inline_image__import__stored_as_embedded_file_with_its_content_id(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, _html_with_inline_image())

    run_importer(tenant, config, lambda importer: importer.import_once())

    [conversation] = read_store(config, lambda s: s.list_conversations())
    [message] = conversation.messages
    [image] = message.documents
    assert (image.kind, image.content_type, image.skipped) == ("embeddedFile", "image/png", False)
    assert image.content_id is not None
    assert "shot@contoso.example" in image.content_id
    assert "See the screenshot" in message.attributes["textBody"]
    assert "cid:shot@contoso.example" in message.attributes["htmlBody"]


def test_attachment_download_keeps_failing__import__message_moved_to_failure_folder_with_reason_others_imported(
    tenant, make_config
):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, eml("Fine", message_id="<fine@contoso.example>"), received=received(1))
    tenant.state.seed_eml(
        SUPPORT,
        eml("Broken download", message_id="<bad@contoso.example>", attachments=[("a.txt", "text/plain", b"abc")]),
        received=received(2),
    )
    tenant.faults.error(status=500, path=r"/attachments/[^/]+/\$value$", count=4)

    report = run_importer(tenant, config, lambda importer: importer.import_once())

    assert (report.imported, report.failed) == (1, 1)
    [failed] = _folder_messages(tenant, SUPPORT, "mailplane-failed")
    assert failed.internet_message_id == "<bad@contoso.example>"
    assert not failed.is_read
    [fine] = _folder_messages(tenant, SUPPORT, "inbox")
    assert fine.is_read
    [state] = [s for s in read_store(config, lambda s: s.list_message_states()) if s.state != "read"]
    assert (state.state, state.attempts, state.in_failure_folder) == ("moved", 1, True)
    assert "500" in state.reason


def test_failed_message_in_failure_folder__recovery_after_the_fault_is_gone__imported_read_and_moved_back(
    tenant, make_config
):
    config = make_config()
    tenant.state.seed_eml(
        BILLING,
        eml("Refund", to=BILLING, message_id="<refund@contoso.example>", attachments=[("r.txt", "text/plain", b"x")]),
        received=received(1),
    )
    tenant.faults.error(status=500, path=r"/attachments/[^/]+/\$value$", count=4)
    first = run_importer(tenant, config, lambda importer: importer.import_once())
    assert first.failed == 1
    assert len(_folder_messages(tenant, BILLING, "billing-failed")) == 1  # the account's own failure folder

    recovery = run_importer(tenant, config, lambda importer: importer.recover())

    assert recovery.imported == 1
    assert _folder_messages(tenant, BILLING, "billing-failed") == []
    [message] = _folder_messages(tenant, BILLING, "inbox")
    assert message.is_read
    [state] = read_store(config, lambda s: s.list_message_states(BILLING))
    assert (state.state, state.in_failure_folder, state.attempts) == ("read", False, 1)
    assert read_store(config, lambda s: s.count_messages()) == 1


def test_recovery__unread_mail_without_state__imports_what_is_past_the_grace_period_and_leaves_the_newest(
    tenant, make_config
):
    config = make_config()
    tenant.state.seed_eml(
        SUPPORT, eml("Old", message_id="<old@x>"), received=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    )
    tenant.state.seed_eml(SUPPORT, eml("Brand new", message_id="<new@x>"), received=dt.datetime.now(dt.UTC))
    tenant.state.seed_eml(
        SUPPORT, eml("Ancient", message_id="<ancient@x>"), received=dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    )

    report = run_importer(tenant, config, lambda importer: importer.recover())

    assert report.imported == 1
    unread = sorted(m.subject for m in _folder_messages(tenant, SUPPORT, "inbox") if not m.is_read)
    assert unread == ["Ancient", "Brand new"]


def test_recovery__config_reaches_back_further__older_unread_mail_recovered_and_an_explicit_age_still_wins(
    tenant, make_config
):
    config = make_config(settings={"recovery": {"gracePeriodMinutes": 2, "maxUnreadAgeDays": 60}})
    assert config.settings.recovery.max_unread_age == dt.timedelta(days=60)
    now = dt.datetime.now(dt.UTC)
    tenant.state.seed_eml(SUPPORT, eml("Last month", message_id="<month@x>"), received=now - dt.timedelta(days=30))
    tenant.state.seed_eml(SUPPORT, eml("Last year", message_id="<year@x>"), received=now - dt.timedelta(days=300))

    narrow = run_importer(tenant, config, lambda importer: importer.recover(max_unread_age=dt.timedelta(days=7)))
    assert narrow.imported == 0

    report = run_importer(tenant, config, lambda importer: importer.recover())

    assert report.imported == 1
    unread = [m.subject for m in _folder_messages(tenant, SUPPORT, "inbox") if not m.is_read]
    assert unread == ["Last year"]


def test_message_to_two_accounts__multiple_destinations_enabled__one_conversation_per_account(tenant, make_config):
    config = make_config(routing={"multipleDestinations": True})
    tenant.state.seed_eml(SUPPORT, eml("Both", to=SUPPORT, cc=BILLING, message_id="<both@x>"))
    tenant.state.seed_eml(BILLING, eml("Both", to=SUPPORT, cc=BILLING, message_id="<both@x>"))

    report = run_importer(tenant, config, lambda importer: importer.import_once())

    conversations = read_store(config, lambda s: s.list_conversations())
    assert sorted((c.destination, c.parent_fields["queue"]) for c in conversations) == [
        (BILLING, "billing"),
        (SUPPORT, "support"),
    ]
    assert report.imported + report.mailboxes[0].duplicates + report.mailboxes[1].duplicates == 2
    assert all(m.is_read for box in (SUPPORT, BILLING) for m in _folder_messages(tenant, box, "inbox"))


def test_two_destinations__accounts_restrict_follower_parents__each_conversation_matches_with_its_own(
    tenant, make_config
):
    shared = integration_config(Path("unused"))["accounts"]["shared"]
    shared[1]["conversation"]["followerParents"] = ["agent"]  # billing: only agents are matched to records
    config = make_config(routing={"multipleDestinations": True}, accounts={"shared": shared})
    mail = eml("Both", to=SUPPORT, cc=f"{BILLING}, Agent Smith <{AGENT}>", message_id="<both@x>")
    tenant.state.seed_eml(SUPPORT, mail)

    run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    conversations = read_store(config, lambda s: s.list_conversations())
    followers = {
        c.destination: sorted((f.address, f.participation, f.parent_type, f.parent_id) for f in c.followers)
        for c in conversations
    }
    assert followers == {
        SUPPORT: [(AGENT, "observer", "agent", "a-smith"), ("ann@contoso.example", "participant", "person", "p-ann")],
        BILLING: [(AGENT, "observer", "agent", "a-smith"), ("ann@contoso.example", "participant", None, None)],
    }


def test_account_imports_from_a_folder_named_by_display_name__only_that_folder_imported_and_marked_read(
    tenant, make_config
):
    config = make_config(accounts=accounts_importing_support_from("Support Queue"))
    queue = tenant.state.create_folder(SUPPORT, "Support Queue")
    tenant.state.seed_eml(SUPPORT, eml("Routed by a rule", message_id="<queued@x>"), folder=queue.id)
    tenant.state.seed_eml(SUPPORT, eml("Left in the inbox", message_id="<inbox@x>"))

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))
    again = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert (report.imported, report.failed, report.mailboxes[0].errors) == (1, 0, [])
    assert (again.imported, again.mailboxes[0].errors) == (0, [])
    [conversation] = read_store(config, lambda s: s.list_conversations())
    assert conversation.subject == "Routed by a rule"
    assert [m.is_read for m in _folder_messages(tenant, SUPPORT, "Support Queue")] == [True]
    assert [m.is_read for m in _folder_messages(tenant, SUPPORT, "inbox")] == [False]


def test_account_imports_from_a_folder_below_the_inbox__path_resolved_level_by_level(tenant, make_config):
    config = make_config(accounts=accounts_importing_support_from("Inbox/Support/Tier 2"))
    support = tenant.state.create_folder(SUPPORT, "Support", parent="inbox")
    tier2 = tenant.state.create_folder(SUPPORT, "Tier 2", parent=support.id)
    tenant.state.create_folder(SUPPORT, "Tier 2")  # a top-level folder of the same name is not the one meant
    tenant.state.seed_eml(SUPPORT, eml("Escalated", message_id="<tier2@x>"), folder=tier2.id)

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert (report.imported, report.mailboxes[0].errors) == (1, [])
    assert [m.is_read for m in _folder_messages(tenant, SUPPORT, tier2.id)] == [True]


def test_account_folder_path_missing_a_level__import__error_names_how_far_it_got(tenant, make_config):
    config = make_config(accounts=accounts_importing_support_from("Inbox/Sales/Tier 2"))
    tenant.state.create_folder(SUPPORT, "Support", parent="inbox")

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    [error] = report.mailboxes[0].errors
    assert "has no folder 'Inbox/Sales' (looking for 'Inbox/Sales/Tier 2')" in error
    assert report.imported == 0


def test_account_folder_missing__import__error_names_the_folder_and_nothing_is_touched(tenant, make_config):
    config = make_config(accounts=accounts_importing_support_from("Support Queue"))
    tenant.state.seed_eml(SUPPORT, eml("Left in the inbox", message_id="<inbox@x>"))

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    [error] = report.mailboxes[0].errors
    assert "has no folder 'Support Queue'" in error
    assert "set the account's 'folder'" in error
    assert report.imported == 0
    assert [m.is_read for m in _folder_messages(tenant, SUPPORT, "inbox")] == [False]


def test_message_to_two_accounts__multiple_destinations_disabled__exactly_one_conversation_in_the_first_account(
    tenant, make_config
):
    config = make_config()
    tenant.state.seed_eml(BILLING, eml("Both", to=BILLING, cc=SUPPORT, message_id="<both@x>"))
    tenant.state.seed_eml(SUPPORT, eml("Both", to=BILLING, cc=SUPPORT, message_id="<both@x>"))

    run_importer(tenant, config, lambda importer: importer.import_once())

    [conversation] = read_store(config, lambda s: s.list_conversations())
    assert conversation.destination == SUPPORT  # first in the config's account order, whichever copy came first
    assert len(read_store(config, lambda s: s.list_message_states())) == 2
    assert all(m.is_read for box in (SUPPORT, BILLING) for m in _folder_messages(tenant, box, "inbox"))


def test_delta_link_expired__next_sync__full_resync_imports_only_what_is_new(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, eml("First", message_id="<first@x>"), received=received(1))
    run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))
    tenant.state.expire_delta_tokens(SUPPORT)
    tenant.state.seed_eml(SUPPORT, eml("Second", message_id="<second@x>"), received=received(2))

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    [mailbox] = report.mailboxes
    assert (mailbox.resynced, mailbox.imported) == (True, 1)
    assert read_store(config, lambda s: s.count_messages()) == 2


def test_missed_notification__resync__imports_what_was_missed_without_duplicates(tenant, make_config):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, eml("First", message_id="<first@x>"), received=received(1))
    run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))
    tenant.state.seed_eml(SUPPORT, eml("Missed", message_id="<missed@x>"), received=received(2))

    report = run_importer(tenant, config, lambda importer: importer.resync(SUPPORT))

    assert (report.resynced, report.imported) == (True, 1)
    assert read_store(config, lambda s: s.count_messages()) == 2
    assert all(m.is_read for m in _folder_messages(tenant, SUPPORT, "inbox"))


def test_incoming_message_handler__changes_properties_before_mapping_and_quarantines_what_it_refuses(
    tenant, make_config
):
    config = make_config(
        settings={
            "attachmentSizeLimitMB": 1,
            "incomingMessageHandler": "importing_harness.strip_external_tag",
        }
    )
    tenant.state.seed_eml(SUPPORT, eml("[EXT] Printer on fire", message_id="<ext@x>"), received=received(1))
    tenant.state.seed_eml(SUPPORT, eml("poison pill", message_id="<poison@x>"), received=received(2))

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert (report.imported, report.failed) == (1, 1)
    [conversation] = read_store(config, lambda s: s.list_conversations())
    assert conversation.parent_fields["title"] == "Printer on fire"
    [moved] = [s for s in read_store(config, lambda s: s.list_message_states()) if s.state == "moved"]
    assert "the handler refuses this message" in moved.reason


def test_incoming_message_handler__not_importable__importer_refuses_to_start_naming_it(make_config):
    import pytest

    from mailplane.importing.importer import load_incoming_message_handler

    config = make_config(settings={"incomingMessageHandler": "no_such_package.handler"})

    with pytest.raises(ValueError, match=r"settings.incomingMessageHandler 'no_such_package.handler'"):
        load_incoming_message_handler(config)


def test_service_refuses_selecting_content_id__attachments_listed_again_without_it__message_imported(
    tenant, make_config
):
    config = make_config()
    tenant.state.seed_eml(SUPPORT, _html_with_inline_image())
    refusal = tenant.faults.error(status=400, code="RequestBroker--ParseUri", path=r"/attachments$", count=1)

    report = run_importer(tenant, config, lambda importer: importer.import_once([SUPPORT]))

    assert (report.imported, report.failed, refusal.fired) == (1, 0, 1)
    [conversation] = read_store(config, lambda s: s.list_conversations())
    [image] = conversation.messages[0].documents
    assert (image.kind, image.skipped, image.content_id) == ("embeddedFile", False, None)
