"""Merge codes and the template renderer: every code fills, HTML is escaped, subjects stay one line."""

from __future__ import annotations

import datetime as dt

import pytest

from mailplane.templates import (
    MERGE_CODES,
    ConversationMessage,
    MergeContext,
    Person,
    merge_code_problems,
    merge_codes_in,
    render_template,
    render_text,
)

ANN = Person("ann@northwind.example", "Ann <Admin> & Co")
BOB = Person("bob@northwind.example")
SENDER = Person("helpdesk-noreply@fabrikam.com", "Fabrikam Helpdesk")
SUPPORT = Person("support@fabrikam.com", "Fabrikam Support")
FIRST = ConversationMessage(ANN, dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC), "The printer\n<b>burns</b>")
SECOND = ConversationMessage(BOB, dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC), "Still burning")


def _context(**overrides):
    values = {
        "sender": SENDER,
        "recipient": ANN,
        "followers": (ANN, BOB),
        "conversation_id": "1042",
        "conversation_subject": "Printer <on fire>",
        "messages": (FIRST, SECOND),
        "update": SECOND,
        "reply_to": SUPPORT,
    }
    values.update(overrides)
    return MergeContext(**values)


@pytest.mark.parametrize("code", sorted(MERGE_CODES))
def test_every_merge_code__rendered_in_text_and_html__produces_a_value(code):
    context = _context()
    assert render_text(f"{{{{{code}}}}}", context) != ""
    assert render_text(f"{{{{{code}}}}}", context, markup=True) != ""


def test_text_body__values__inserted_verbatim():
    assert (
        render_text("Hi {{recipient.name}}, {{ otherFollowers.names }}", _context())
        == "Hi Ann <Admin> & Co, bob@northwind.example"
    )


def test_html_body__values__escaped():
    rendered = render_text("<p>{{recipient.name}}: {{conversation.subject}}</p>", _context(), markup=True)
    assert rendered == "<p>Ann &lt;Admin&gt; &amp; Co: Printer &lt;on fire&gt;</p>"


def test_html_body__mailto_links__escaped_markup():
    rendered = render_text("{{followers.mailtoLinks}}", _context(), markup=True)
    assert rendered == (
        '<a href="mailto:ann@northwind.example">Ann &lt;Admin&gt; &amp; Co</a>, '
        '<a href="mailto:bob@northwind.example">bob@northwind.example</a>'
    )


def test_html_body__hostile_address__cannot_break_out_of_the_attribute():
    evil = Person('x"onmouseover="alert(1)@evil.example', "<script>")
    rendered = render_text("{{followers.mailtoLinks}}", _context(followers=(evil,)), markup=True)
    assert '"onmouseover' not in rendered
    assert "<script>" not in rendered


def test_reply_mailto__subject__prefilled_and_percent_encoded():
    assert render_text("{{reply.mailtoLink}}", _context()) == "Fabrikam Support <support@fabrikam.com>"
    assert render_text("{{reply.mailtoLink}}", _context(), markup=True) == (
        '<a href="mailto:support@fabrikam.com?subject=Re%3A%20Printer%20%3Con%20fire%3E">Fabrikam Support</a>'
    )


def test_transcript__text_and_html__oldest_first_and_escaped():
    text = render_text("{{conversation.messages}}", _context())
    assert text == (
        "On 2026-03-01 09:30 UTC, Ann <Admin> & Co <ann@northwind.example> wrote:\nThe printer\n<b>burns</b>\n\n"
        "On 2026-03-01 10:00 UTC, bob@northwind.example wrote:\nStill burning"
    )
    markup = render_text("{{conversation.messages}}", _context(), markup=True)
    assert "&lt;b&gt;burns&lt;/b&gt;" in markup
    assert "<b>" not in markup
    assert markup.index("Ann &lt;Admin&gt;") < markup.index("bob@northwind.example")


def test_subject__value_with_line_break__stays_one_line():
    context = _context(conversation_subject="Hello\r\nBcc: victim@example.com")
    rendered = render_template("[#{{conversation.id}}] {{conversation.subject}}", context, text="x")
    assert rendered.subject == "[#1042] Hello Bcc: victim@example.com"
    assert rendered.html is None


def test_counts_and_other_followers__recipient_left_out():
    context = _context()
    assert render_text("{{followers.count}}/{{otherFollowers.count}}", context) == "2/1"
    assert render_text("{{otherFollowers.addresses}}", context) == "bob@northwind.example"
    assert render_text("{{otherFollowers.count}}", _context(recipient=None)) == "2"


def test_update__none_given__last_message_used():
    assert render_text("{{update.authorName}}: {{update.text}}", _context(update=None)) == (
        "bob@northwind.example: Still burning"
    )


def test_recipient_code__no_recipient__explains_personalized_emails():
    with pytest.raises(ValueError, match=r"settings\.personalizedEmails true"):
        render_text("{{recipient.name}}", _context(recipient=None))


def test_unknown_code__rendered__refused():
    with pytest.raises(ValueError, match=r"unknown merge code \{\{nope\}\}"):
        render_text("{{nope}}", _context())


def test_merge_codes_in__template__names_in_order():
    assert merge_codes_in("{{a.b}} x {{ sender.name }} {{bad") == ["a.b", "sender.name"]


def test_merge_code_problems__typo_and_unclosed__both_reported():
    assert merge_code_problems("{{folowers.count}} and {{ sender.name") == [
        "unknown merge code {{folowers.count}} (did you mean {{followers.count}}?)",
        (
            "malformed merge code at character 23: '{{ sender.name'; write {{name}} with a name from the catalogue "
            "(see docs/integration-config.md)"
        ),
    ]


def test_merge_code_problems__far_from_any_code__lists_the_catalogue():
    (problem,) = merge_code_problems("{{zzz}}")
    assert problem.startswith("unknown merge code {{zzz}}; known codes: conversation.id, ")


def test_merge_code_problems__valid_template__none():
    assert merge_code_problems("Hi {{recipient.name}}, see {{ reply.mailtoLink }}. { single } braces are fine") == []
