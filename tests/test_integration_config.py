"""The integration config loader: defaults, typed values, and the exact messages of the semantic checks."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from mailplane.exceptions import IntegrationConfigError
from mailplane.integration import (
    DEFAULT_GRAPH_BASE_URL,
    MESSAGE_PROPERTIES,
    RECORD_ATTRIBUTES,
    DefaultSource,
    LookupSource,
    MessageSource,
    integration_problems,
    load_integration_config,
)
from mailplane.templates import MERGE_CODES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "integration.json"


@pytest.fixture
def example():
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def _problems(document):
    return [(p.location(), p.message) for p in integration_problems(document)]


def test_example_config__loaded__typed_with_the_story_of_the_example_stacks():
    config = load_integration_config(EXAMPLE)
    assert config.source == str(EXAMPLE)
    assert config.designated.address == "helpdesk-noreply@fabrikam.com"
    assert config.designated.display_name == "Fabrikam Helpdesk"
    assert config.designated.reply_to == "support@fabrikam.com"
    assert [a.address for a in config.accounts] == ["support@fabrikam.com", "billing@fabrikam.com"]
    support = config.account("SUPPORT@fabrikam.com")
    assert support.conversation.parent == "ticket"
    assert support.conversation.properties["title"] == MessageSource("subject", "(no subject)", 200)
    assert support.conversation.properties["queue"] == DefaultSource("support")
    assert support.conversation.properties["accountManager"] == LookupSource(
        record_type="person", where="email", equals="fromAddress", take=("company", "accountManager")
    )
    assert support.conversation.follower_parents == ("agent", "person")
    assert support.failure_folder == "mailplane-failed"
    assert support.new_conversation_template == "ticket-acknowledgement"
    assert support.new_message_template == "ticket-update"
    billing = config.account("billing@fabrikam.com")
    assert billing.failure_folder == "billing-import-failed"
    assert billing.conversation.follower_parents == ("person",)
    assert config.records["conversation"].name == "email_thread"
    assert config.records["document"].fields["file_name"] == "name"
    assert config.records["message"].fields == {a: a for a in RECORD_ATTRIBUTES["message"]}
    assert config.records["messageFollower"].name == "message_follower"
    assert config.webhook_sink.secret_env == "HELPDESK_WEBHOOK_SECRET"
    assert config.store.sqlite_path == (ROOT / ".mailplane" / "helpdesk.sqlite3").resolve()
    assert config.mailboxes == ("helpdesk-noreply@fabrikam.com", "support@fabrikam.com", "billing@fabrikam.com")


def test_minimal_config__loaded__every_documented_default_applied(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_integration_config({"accounts": {"designated": {"address": "lms-noreply@contoso.com"}}})
    assert config.source == "<integration config>"
    assert config.designated.display_name == "lms-noreply"
    assert config.designated.save_to_sent_items is False
    assert config.accounts == ()
    assert config.settings.recovery.enabled is True
    assert config.settings.recovery.grace_period == dt.timedelta(minutes=2)
    assert config.settings.recovery.max_unread_age == dt.timedelta(days=7)
    assert config.settings.recovery.max_failed_age == dt.timedelta(days=1)
    assert config.settings.recovery.schedule == "*/20 * * * *"
    assert config.settings.attachment_size_limit_bytes == 25 * 1024 * 1024
    assert config.settings.failure_folder == "mailplane-failed"
    assert config.settings.incoming_message_handler is None
    assert config.settings.personalized_emails is False
    assert config.sending_limits.recipients_per_day == 10_000
    assert config.sending_limits.messages_per_minute == 30
    assert config.sending_limits.recipients_per_message == 500
    assert config.store.backend == "sqlite"
    assert config.store.sqlite_path == tmp_path.resolve() / "mailplane.sqlite3"
    assert config.webhook_sink is None
    assert config.multiple_destinations is False
    assert config.followers.unmatched == "address-only"
    assert config.followers.exclude_own_mailboxes is True
    assert config.graph_base_url == DEFAULT_GRAPH_BASE_URL
    assert set(config.records) == set(RECORD_ATTRIBUTES)


def test_typed_config__mutated__refuses():
    config = load_integration_config(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.multiple_destinations = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.templates["x"] = None  # type: ignore[index]


def test_dict_input__loaded__caller_dict_left_untouched(example):
    before = copy.deepcopy(example)
    load_integration_config(example)
    assert example == before


def test_postgres_store__dsn__read_from_the_named_variable_only():
    config = load_integration_config(
        {"accounts": {"designated": {"address": "a@fabrikam.com"}}, "store": {"backend": "postgres"}}
    )
    assert config.store.dsn_env == "MAILPLANE_POSTGRES_DSN"
    assert config.store.sqlite_path is None
    assert config.store.postgres_dsn({"MAILPLANE_POSTGRES_DSN": "dbname=x"}) == "dbname=x"


def test_graph_base_url__trailing_slash__removed():
    config = load_integration_config(
        {"accounts": {"designated": {"address": "a@fabrikam.com"}}, "graph": {"baseUrl": "http://127.0.0.1:8080/v1.0/"}}
    )
    assert config.graph_base_url == "http://127.0.0.1:8080/v1.0"


def test_template__rendered_from_config__merge_codes_filled():
    from mailplane.templates import MergeContext, Person

    template = load_integration_config(EXAMPLE).templates["ticket-acknowledgement"]
    assert "recipient.name" in template.merge_codes
    rendered = template.render(
        MergeContext(
            sender=Person("helpdesk-noreply@fabrikam.com", "Fabrikam Helpdesk"),
            recipient=Person("ann@northwind.example", "Ann"),
            conversation_id="1042",
            conversation_subject="Printer on fire",
            reply_to=Person("support@fabrikam.com", "Fabrikam Support"),
        )
    )
    assert rendered.subject == "[#1042] Printer on fire"
    assert rendered.text.startswith("Hello Ann,\n\nthank you for contacting Fabrikam Support.")


# --- file-level problems -----------------------------------------------------------------------------------------


def test_file__missing__one_problem_saying_so(tmp_path):
    with pytest.raises(IntegrationConfigError) as caught:
        load_integration_config(tmp_path / "nope.json")
    assert str(caught.value) == f"{tmp_path / 'nope.json'}: $: file not found. Check the path."


def test_file__invalid_json__line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "accounts": {,}\n}\n', encoding="utf-8")
    with pytest.raises(IntegrationConfigError) as caught:
        load_integration_config(path)
    assert caught.value.problems[0].message == (
        "is not valid JSON at line 2, column 16: Expecting property name enclosed in double quotes. Fix the syntax."
    )


def test_file__duplicate_key__rejected_instead_of_silently_keeping_one(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"accounts": {"designated": {"address": "a@b.co"}, "designated": {"address": "c@d.co"}}}')
    with pytest.raises(IntegrationConfigError) as caught:
        load_integration_config(path)
    assert caught.value.problems[0].message == (
        "key 'designated' appears twice in one object; JSON keeps only one. Merge them."
    )


def test_errors__several__headline_then_the_rest(example):
    example["accounts"]["shared"][0]["conversation"]["parent"] = "tiket"
    example["settings"]["recovery"]["schedule"] = "every 20 minutes"
    with pytest.raises(IntegrationConfigError) as caught:
        load_integration_config(example, source="helpdesk.json")
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("helpdesk.json: $.accounts.shared[0].conversation.parent: record type 'tiket'")
    assert lines[1] == "1 more problem:"
    assert lines[2].startswith("  - $.settings.recovery.schedule: 'every 20 minutes' has 3 fields")


# --- semantic checks, exact messages -----------------------------------------------------------------------------

SEMANTIC_CASES = [
    pytest.param(
        lambda d: d["accounts"]["shared"][1].update(address="Support@Fabrikam.com"),
        "$.accounts.shared[1].address",
        "'Support@Fabrikam.com' is already configured at accounts.shared[0]; each shared mailbox may appear once",
        id="duplicate account",
    ),
    pytest.param(
        lambda d: d.update(accounts={}),
        "$.accounts",
        "configures no mailbox; add accounts.designated (to send) or accounts.shared (to import)",
        id="no mailbox",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"].update(parent="tiket"),
        "$.accounts.shared[0].conversation.parent",
        "record type 'tiket' is not declared in recordTypes (did you mean 'ticket'?); "
        "declared: agent, company, person, ticket",
        id="unknown parent type",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"].update(titel={"message": "subject"}),
        "$.accounts.shared[0].conversation.properties.titel",
        "'titel' is not a field of record type 'ticket' (did you mean 'title'?); its fields: accountManager, company, "
        "description, openedAt, queue, requesterEmail, requesterName, status, title",
        id="unknown parent field",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"]["company"]["lookup"].update(
            recordType="contact"
        ),
        "$.accounts.shared[0].conversation.properties.company.lookup.recordType",
        "record type 'contact' is not declared in recordTypes; declared: agent, company, person, ticket",
        id="lookup of an unknown record type",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"]["company"]["lookup"].update(where="mail"),
        "$.accounts.shared[0].conversation.properties.company.lookup.where",
        "'mail' is not a field of record type 'person' (did you mean 'email'?); its fields: company, email, name",
        id="lookup on an unknown field",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"]["company"]["lookup"].update(
            take="name.first"
        ),
        "$.accounts.shared[0].conversation.properties.company.lookup.take",
        "'name.first': person.name is not a reference field, so the path cannot continue past it; give it type "
        "'reference' and 'references', or end the path there",
        id="lookup path through a non-reference",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"]["company"]["lookup"].update(
            take="company.accountManager.phone"
        ),
        "$.accounts.shared[0].conversation.properties.company.lookup.take",
        "'company.accountManager.phone': 'phone' is not a field of record type 'agent'; its fields: email, name",
        id="lookup path ends on an unknown field",
    ),
    pytest.param(
        lambda d: d["recordTypes"]["person"]["fields"].update(company={"type": "reference"}),
        "$.recordTypes.person.fields.company",
        "a 'reference' field needs 'references': the record type it points at",
        id="reference without target",
    ),
    pytest.param(
        lambda d: d["recordTypes"]["company"]["fields"].update(parent={"type": "reference", "references": "org"}),
        "$.recordTypes.company.fields.parent.references",
        "record type 'org' is not declared in recordTypes; declared: agent, company, person, ticket",
        id="reference to an unknown type",
    ),
    pytest.param(
        lambda d: d["recordTypes"]["company"]["fields"].update(name={"type": "string", "references": "agent"}),
        "$.recordTypes.company.fields.name.references",
        "only fields of type 'reference' point at a record type; this field's type is 'string'",
        id="references on a non-reference field",
    ),
    pytest.param(
        lambda d: d["followers"]["parents"].append({"recordType": "customer", "addressField": "email"}),
        "$.followers.parents[2].recordType",
        "record type 'customer' is not declared in recordTypes; declared: agent, company, person, ticket",
        id="unknown follower parent type",
    ),
    pytest.param(
        lambda d: d["followers"]["parents"][0].update(addressField="mail"),
        "$.followers.parents[0].addressField",
        "'mail' is not a field of record type 'agent' (did you mean 'email'?); its fields: email, name",
        id="unknown follower address field",
    ),
    pytest.param(
        lambda d: d["followers"]["parents"][1].update(addressField="company"),
        "$.followers.parents[1].addressField",
        "person.company has type 'reference'; an address field must be of type 'email' or 'string'",
        id="follower address field of the wrong type",
    ),
    pytest.param(
        lambda d: d["followers"]["parents"].append({"recordType": "person", "addressField": "email"}),
        "$.followers.parents[2].recordType",
        "'person' is already a follower parent; list each record type once",
        id="duplicate follower parent",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][1]["conversation"].update(followerParents=["persn"]),
        "$.accounts.shared[1].conversation.followerParents[0]",
        "'persn' is not in followers.parents (did you mean 'person'?); declared follower parents: agent, person",
        id="account follower parent not declared",
    ),
    pytest.param(
        lambda d: d["records"]["document"]["fields"].update(bytes="length"),
        "$.records.document.fields.bytes",
        "'length' is not an attribute of a document record; attributes: id, message, conversation, name, "
        "contentType, size, sha256, content, skipped, skipReason",
        id="unknown record attribute",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["notifications"].update(newMessage="ticket-updated"),
        "$.accounts.shared[0].notifications.newMessage",
        "template 'ticket-updated' is not defined (did you mean 'ticket-update'?); defined templates: "
        "ticket-acknowledgement, ticket-update",
        id="unknown template",
    ),
    pytest.param(
        lambda d: d["templates"]["ticket-update"].update(subject="[#{{conversation.id}}] {{conversation.subjet}}"),
        "$.templates.ticket-update.subject",
        "unknown merge code {{conversation.subjet}} (did you mean {{conversation.subject}}?)",
        id="unknown merge code",
    ),
    pytest.param(
        lambda d: d["templates"]["ticket-update"].update(text="Hi {{ recipient.name }"),
        "$.templates.ticket-update.text",
        "malformed merge code at character 3: '{{ recipient.name }'; write {{name}} with a name from the catalogue "
        "(see docs/integration-config.md)",
        id="malformed merge code",
    ),
    pytest.param(
        lambda d: d["settings"].update(personalizedEmails=False),
        "$.templates.ticket-acknowledgement.text",
        "uses {{recipient.name}}, which needs one message per recipient; set settings.personalizedEmails to true or "
        "use followers.* codes",
        id="recipient codes without personalized e-mails",
    ),
    pytest.param(
        lambda d: d["settings"]["recovery"].update(schedule="*/20 * * *"),
        "$.settings.recovery.schedule",
        "'*/20 * * *' has 4 fields; use a five-field cron expression (minute hour day-of-month month day-of-week), "
        "e.g. '*/20 * * * *'",
        id="cron with four fields",
    ),
    pytest.param(
        lambda d: d["settings"]["recovery"].update(schedule="*/20 * * * mon-funday"),
        "$.settings.recovery.schedule",
        "'*/20 * * * mon-funday' is not a valid cron expression, e.g. '*/20 * * * *'",
        id="cron that does not parse",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0].update(failureFolder="Inbox"),
        "$.accounts.shared[0].failureFolder",
        "'Inbox' is also the folder imported from ('inbox'); failed messages would be imported again. Use a separate "
        "folder",
        id="failure folder is the imported folder",
    ),
    pytest.param(
        lambda d: d["settings"].update(failureFolder="deleteditems"),
        "$.settings.failureFolder",
        "'deleteditems' is a well-known Exchange folder; use a folder of its own (e.g. 'mailplane-failed')",
        id="failure folder is a well-known folder",
    ),
    pytest.param(
        lambda d: d["webhookSink"].update(url="http://helpdesk.fabrikam.com/hooks"),
        "$.webhookSink.url",
        "the webhook URL 'http://helpdesk.fabrikam.com/hooks' uses plain http on a non-loopback host; use https "
        "(http only for 127.0.0.1, ::1, localhost)",
        id="webhook over plain http",
    ),
    pytest.param(
        lambda d: d["webhookSink"].update(url="https://hook:s3cret@helpdesk.fabrikam.com/hooks"),
        "$.webhookSink.url",
        "the webhook URL must not carry a user name or password; put credentials in the environment",
        id="webhook URL with credentials",
    ),
    pytest.param(
        lambda d: d.update(graph={"baseUrl": "http://graph.example.test/v1.0"}),
        "$.graph.baseUrl",
        "the Graph base URL 'http://graph.example.test/v1.0' uses plain http on a non-loopback host; use https "
        "(http only for 127.0.0.1, ::1, localhost)",
        id="graph over plain http",
    ),
    pytest.param(
        lambda d: d.update(store={"backend": "postgres", "path": "x.sqlite3"}),
        "$.store.path",
        "'path' does not apply to the postgres backend; remove it (or use backend 'sqlite')",
        id="sqlite path on postgres",
    ),
    pytest.param(
        lambda d: d["accounts"].pop("designated"),
        "$.accounts.shared[0].notifications.newConversation",
        "notifications need a sending mailbox; add accounts.designated",
        id="notifications without a sending mailbox",
    ),
]


@pytest.mark.parametrize(("mutate", "location", "message"), SEMANTIC_CASES)
def test_semantic_check__broken_config__exact_message_at_exact_path(example, mutate, location, message):
    mutate(example)
    problems = _problems(example)
    assert (location, message) in problems, problems


def test_example_config__checked__no_problems(example):
    assert _problems(example) == []


SCHEMA_CASES = [
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"].update(title={"message": "subjekt"}),
        "$.accounts.shared[0].conversation.properties.title.message",
        "'subjekt' is not allowed; use one of " + ", ".join(repr(p) for p in MESSAGE_PROPERTIES),
        id="unknown message property",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"].update(title={"mesage": "subject"}),
        "$.accounts.shared[0].conversation.properties.title",
        "needs exactly one of the keys 'message', 'default', 'lookup'; unknown key 'mesage' (did you mean 'message'?)",
        id="misspelt source key",
    ),
    pytest.param(
        lambda d: d["accounts"]["shared"][0]["conversation"]["properties"].update(
            title={"message": "subject", "default": "x"}
        ),
        "$.accounts.shared[0].conversation.properties.title",
        "has 'message', 'default' together; use exactly one of 'message', 'default', 'lookup'",
        id="two sources",
    ),
    pytest.param(
        lambda d: d.update(store={"backend": "postgres", "dsnEnv": "postgresql://mailplane:hunter2@db/x"}),
        "$.store.dsnEnv",
        "the value is not an environment variable name (expected upper case letters, digits and '_', e.g. "
        "MAILPLANE_POSTGRES_DSN); it is not shown in case it is a secret. Never put a secret in the file",
        id="literal DSN",
    ),
    pytest.param(
        lambda d: d["templates"]["ticket-update"].pop("text") and d["templates"]["ticket-update"].pop("html"),
        "$.templates.ticket-update",
        "needs at least one of the keys 'text', 'html'",
        id="template without a body",
    ),
]


@pytest.mark.parametrize(("mutate", "location", "message"), SCHEMA_CASES)
def test_schema_check__broken_config__readable_message_at_exact_path(example, mutate, location, message):
    mutate(example)
    problems = _problems(example)
    assert problems[0] == (location, message), problems


def test_literal_dsn__reported__value_never_repeated(example):
    example["store"] = {"backend": "postgres", "dsnEnv": "postgresql://mailplane:hunter2@db/x"}
    with pytest.raises(IntegrationConfigError) as caught:
        load_integration_config(example)
    assert "hunter2" not in str(caught.value)
    assert all("hunter2" not in repr(p.value) for p in caught.value.problems)


def test_docs__catalogues__every_message_property_attribute_and_merge_code_documented():
    text = (ROOT / "docs" / "integration-config.md").read_text(encoding="utf-8")
    missing = [f"`{name}`" for name in MESSAGE_PROPERTIES if f"`{name}`" not in text]
    missing += [f"`{{{{{code}}}}}`" for code in MERGE_CODES if f"`{{{{{code}}}}}`" not in text]
    for kind, attributes in RECORD_ATTRIBUTES.items():
        missing += [f"{kind}.{a}" for a in attributes if f"`{a}`" not in text]
    assert missing == []


def test_example_config__shared_mailboxes__the_ones_the_inbound_example_stack_declares():
    from mailplane.tenant import load_stack_file, parse_tenant_config

    stack = parse_tenant_config(load_stack_file(ROOT / "stacks" / "Pulumi.example-inbound-import.yaml"))
    config = load_integration_config(EXAMPLE)
    assert {a.address for a in config.accounts} == {m.address for m in stack.shared_mailboxes}
    assert {a.display_name for a in config.accounts} == {m.display_name for m in stack.shared_mailboxes}
    assert config.designated.address.endswith("@" + stack.primary_domain)
