"""Notification templates: the catalogue of merge codes and the renderer.

A merge code is a name in double braces, ``{{followers.count}}`` (spaces inside the braces are allowed). The
catalogue below is closed: a template that uses a code it does not list is rejected when the integration config is
loaded (:func:`merge_code_problems`), so a typo is a validation error and never a surprise in a customer's inbox.
There is no logic in templates (no conditions, loops or filters): list-valued codes render the whole list.

Values are HTML-escaped in HTML bodies; codes whose value is markup (mailto links, the message transcript) build it
from escaped parts. In subjects, line breaks in values become spaces, so a value can never add a header.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "MERGE_CODES",
    "PERSONALIZED_CODES",
    "ConversationMessage",
    "MergeCode",
    "MergeContext",
    "Person",
    "RenderedMessage",
    "TemplateText",
    "merge_code_problems",
    "merge_codes_in",
    "render_template",
    "render_text",
]


@dataclass(frozen=True)
class Person:
    """An address with an optional display name."""

    address: str
    name: str | None = None

    @property
    def display(self) -> str:
        """The name, or the address when no name is known."""
        return self.name or self.address


@dataclass(frozen=True)
class ConversationMessage:
    """One message of a conversation, as shown in notifications."""

    author: Person
    sent_at: datetime
    text: str


@dataclass(frozen=True)
class MergeContext:
    """Everything merge codes are filled from.

    ``followers`` are all followers of the conversation; ``recipient`` is set when a message is rendered for one
    recipient (personalized e-mails) and is then left out of ``otherFollowers``. ``update`` is the message the
    notification is about (the new message, or the first one of a new conversation). ``reply_to`` is where replies
    should go (normally the shared mailbox the conversation belongs to).
    """

    sender: Person
    recipient: Person | None = None
    followers: tuple[Person, ...] = ()
    conversation_id: str = ""
    conversation_subject: str = ""
    messages: tuple[ConversationMessage, ...] = ()
    update: ConversationMessage | None = None
    reply_to: Person | None = None

    @property
    def other_followers(self) -> tuple[Person, ...]:
        """Followers other than the recipient (all followers when there is no single recipient)."""
        if self.recipient is None:
            return self.followers
        me = self.recipient.address.lower()
        return tuple(f for f in self.followers if f.address.lower() != me)


@dataclass(frozen=True)
class TemplateText:
    """Text (``plain``) and markup (``markup``, already safe to put in HTML) forms of one merge code's value."""

    plain: str
    markup: str | None = None

    @property
    def html(self) -> str:
        """The markup, or the escaped plain text."""
        return self.markup if self.markup is not None else html.escape(self.plain)


@dataclass(frozen=True)
class MergeCode:
    """One entry of the catalogue."""

    name: str
    description: str
    value: Callable[[MergeContext], TemplateText]


@dataclass(frozen=True)
class RenderedMessage:
    """A rendered template: subject and the bodies the template has."""

    subject: str
    text: str | None
    html: str | None


def _plain(value: str) -> TemplateText:
    return TemplateText(value)


def _need_recipient(context: MergeContext) -> Person:
    if context.recipient is None:
        raise ValueError(
            "rendering a recipient.* merge code: no recipient in the context. recipient.* codes need "
            "settings.personalizedEmails true (one message per recipient)."
        )
    return context.recipient


def _mailto(person: Person, subject: str | None = None) -> TemplateText:
    href = "mailto:" + quote(person.address, safe="@")
    if subject:
        href += "?subject=" + quote(subject, safe="")
    label = f"{person.name} <{person.address}>" if person.name else person.address
    return TemplateText(label, f'<a href="{html.escape(href)}">{html.escape(person.display)}</a>')


def _people_names(people: tuple[Person, ...]) -> TemplateText:
    return _plain(", ".join(p.display for p in people))


def _people_addresses(people: tuple[Person, ...]) -> TemplateText:
    return _plain(", ".join(p.address for p in people))


def _people_mailto(people: tuple[Person, ...]) -> TemplateText:
    links = [_mailto(p) for p in people]
    return TemplateText(", ".join(link.plain for link in links), ", ".join(link.html for link in links))


def _when(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _message_block(message: ConversationMessage) -> TemplateText:
    who = f"{message.author.name} <{message.author.address}>" if message.author.name else message.author.address
    plain = f"On {_when(message.sent_at)}, {who} wrote:\n{message.text}"
    body = html.escape(message.text).replace("\n", "<br>\n")
    markup = (
        '<div class="mailplane-message"><p><strong>'
        f"{html.escape(message.author.display)}</strong> &lt;{html.escape(message.author.address)}&gt;, "
        f"{html.escape(_when(message.sent_at))}</p><blockquote>{body}</blockquote></div>"
    )
    return TemplateText(plain, markup)


def _transcript(messages: tuple[ConversationMessage, ...]) -> TemplateText:
    blocks = [_message_block(m) for m in messages]
    return TemplateText("\n\n".join(b.plain for b in blocks), "\n".join(b.html for b in blocks))


def _update(context: MergeContext) -> ConversationMessage:
    if context.update is not None:
        return context.update
    if context.messages:
        return context.messages[-1]
    raise ValueError("rendering an update.* merge code: the context has no update and no messages.")


def _reply_to(context: MergeContext) -> Person:
    return context.reply_to or context.sender


def _reply_subject(context: MergeContext) -> str:
    subject = context.conversation_subject
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


_CATALOGUE: tuple[MergeCode, ...] = (
    MergeCode(
        "recipient.name",
        "The recipient's name, or address when no name is known (personalized e-mails only).",
        lambda c: _plain(_need_recipient(c).display),
    ),
    MergeCode(
        "recipient.address",
        "The recipient's e-mail address (personalized e-mails only).",
        lambda c: _plain(_need_recipient(c).address),
    ),
    MergeCode("sender.name", "The sending mailbox's display name.", lambda c: _plain(c.sender.display)),
    MergeCode("sender.address", "The sending mailbox's address.", lambda c: _plain(c.sender.address)),
    MergeCode("followers.count", "How many followers the conversation has.", lambda c: _plain(str(len(c.followers)))),
    MergeCode("followers.names", "All followers' names, comma-separated.", lambda c: _people_names(c.followers)),
    MergeCode(
        "followers.addresses", "All followers' addresses, comma-separated.", lambda c: _people_addresses(c.followers)
    ),
    MergeCode(
        "followers.mailtoLinks",
        "All followers as mailto links (text: 'Name <address>').",
        lambda c: _people_mailto(c.followers),
    ),
    MergeCode(
        "otherFollowers.count",
        "Followers other than the recipient: how many.",
        lambda c: _plain(str(len(c.other_followers))),
    ),
    MergeCode(
        "otherFollowers.names", "Followers other than the recipient: names.", lambda c: _people_names(c.other_followers)
    ),
    MergeCode(
        "otherFollowers.addresses",
        "Followers other than the recipient: addresses.",
        lambda c: _people_addresses(c.other_followers),
    ),
    MergeCode(
        "otherFollowers.mailtoLinks",
        "Followers other than the recipient: mailto links.",
        lambda c: _people_mailto(c.other_followers),
    ),
    MergeCode("conversation.id", "The conversation's id (e.g. a ticket number).", lambda c: _plain(c.conversation_id)),
    MergeCode("conversation.subject", "The conversation's subject.", lambda c: _plain(c.conversation_subject)),
    MergeCode(
        "conversation.messageCount", "How many messages the conversation has.", lambda c: _plain(str(len(c.messages)))
    ),
    MergeCode(
        "conversation.messages",
        "Every message of the conversation, oldest first, with author and time.",
        lambda c: _transcript(c.messages),
    ),
    MergeCode(
        "update.authorName",
        "Who wrote the message this notification is about: name (or address).",
        lambda c: _plain(_update(c).author.display),
    ),
    MergeCode(
        "update.authorAddress",
        "Who wrote the message this notification is about: address.",
        lambda c: _plain(_update(c).author.address),
    ),
    MergeCode(
        "update.text",
        "The text of the message this notification is about.",
        lambda c: TemplateText(_update(c).text, html.escape(_update(c).text).replace("\n", "<br>\n")),
    ),
    MergeCode(
        "update.sentAt",
        "When that message was sent (YYYY-MM-DD HH:MM UTC).",
        lambda c: _plain(_when(_update(c).sent_at)),
    ),
    MergeCode("reply.name", "Name of the mailbox replies go to.", lambda c: _plain(_reply_to(c).display)),
    MergeCode(
        "reply.address",
        "Address replies go to (they are imported into the conversation).",
        lambda c: _plain(_reply_to(c).address),
    ),
    MergeCode(
        "reply.mailtoLink",
        "A mailto link to reply into the conversation, subject prefilled.",
        lambda c: _mailto(_reply_to(c), _reply_subject(c)),
    ),
)

MERGE_CODES: dict[str, MergeCode] = {code.name: code for code in _CATALOGUE}
"""Every merge code, by name."""

PERSONALIZED_CODES = frozenset(name for name in MERGE_CODES if name.startswith("recipient."))
"""Codes that need one message per recipient (settings.personalizedEmails)."""

# Anything that opens with "{{" is meant as a merge code: a malformed one is reported, never passed through.
_OPENING = re.compile(r"\{\{")
_CODE = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)\s*\}\}")


def merge_codes_in(text: str) -> list[str]:
    """The merge code names used in ``text``, in order of appearance (malformed ones left out)."""
    return [match.group(1) for match in _CODE.finditer(text)]


def merge_code_problems(text: str) -> list[str]:
    """Readable findings for ``text``: unknown codes and malformed braces. Empty when the text is fine."""
    problems: list[str] = []
    position = 0
    for opening in _OPENING.finditer(text):
        if opening.start() < position:
            continue
        match = _CODE.match(text, opening.start())
        if match is None:
            snippet = text[opening.start() : opening.start() + 30].split("\n", maxsplit=1)[0]
            problems.append(
                f"malformed merge code at character {opening.start()}: {snippet!r}; write {{{{name}}}} with a name "
                "from the catalogue (see docs/integration-config.md)"
            )
            position = opening.end()
            continue
        name = match.group(1)
        if name not in MERGE_CODES:
            problems.append(f"unknown merge code {{{{{name}}}}}{_suggestion(name)}")
        position = match.end()
    return problems


def _suggestion(name: str) -> str:
    import difflib  # noqa: PLC0415 - only needed on the error path

    close = difflib.get_close_matches(name, list(MERGE_CODES), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {{{{{close[0]}}}}}?)"
    return f"; known codes: {', '.join(sorted(MERGE_CODES))}"


def render_text(text: str, context: MergeContext, *, markup: bool = False, header: bool = False) -> str:
    """Fill the merge codes of ``text``.

    ``markup=True`` for HTML bodies (values HTML-escaped); ``header=True`` for the subject (line breaks in values
    become spaces). Raises ``ValueError`` for an unknown merge code (a config that passed validation has none).
    """

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        code = MERGE_CODES.get(name)
        if code is None:
            raise ValueError(f"rendering a template: unknown merge code {{{{{name}}}}}")
        value = code.value(context)
        if markup:
            return value.html
        if header:
            return " ".join(value.plain.split())
        return value.plain

    return _CODE.sub(fill, text)


def render_template(
    subject: str, context: MergeContext, *, text: str | None = None, html_body: str | None = None
) -> RenderedMessage:
    """Render a template's subject and bodies for ``context``.

    Pass the template's fields (``IntegrationConfig.templates[name]`` is a ``MessageTemplate`` with ``subject``,
    ``text`` and ``html``; ``MessageTemplate.render(context)`` calls this).
    """
    return RenderedMessage(
        subject=render_text(subject, context, header=True),
        text=render_text(text, context) if text is not None else None,
        html=render_text(html_body, context, markup=True) if html_body is not None else None,
    )
