"""A small OPATH evaluator for the Exchange admin emulator's management scopes.

Exchange evaluates ``RecipientRestrictionFilter`` strings such as
``(PrimarySmtpAddress -eq 'a@contoso.com') -or (MemberOfGroup -eq 'CN=...')``. The emulator supports the subset
mailplane and common scripts write: ``-eq``, ``-ne``, ``-like`` on string properties, ``-and``, ``-or``, ``-not`` and
parentheses. Anything else is a parse error, as it would be on the real service.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["FilterSyntaxError", "compile_filter"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))
        |(?P<op>-(?:eq|ne|like|and|or|not)\b)
        |'(?P<squote>(?:[^']|'')*)'
        |"(?P<dquote>(?:[^"]|"")*)"
        |(?P<word>[A-Za-z][A-Za-z0-9]*)
    )""",
    re.VERBOSE | re.IGNORECASE,
)

Record = Mapping[str, tuple[str, ...]]
"""Property name (lower case) -> values (a multi-valued property such as EmailAddresses has several)."""


class FilterSyntaxError(ValueError):
    """The filter is not valid OPATH (in the subset the emulator understands)."""


@dataclass
class _Token:
    kind: str
    text: str


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterSyntaxError(f"unexpected text at position {position}: {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind == "squote":
            tokens.append(_Token("value", match.group("squote").replace("''", "'")))
        elif kind == "dquote":
            tokens.append(_Token("value", match.group("dquote").replace('""', '"')))
        elif kind == "op":
            tokens.append(_Token(match.group("op").lower(), match.group("op")))
        else:
            tokens.append(_Token(kind, match.group(kind)))
    return tokens


Predicate = Callable[[Record], bool]


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index].kind if self.index < len(self.tokens) else None

    def take(self, kind: str) -> _Token:
        if self.peek() != kind:
            found = self.tokens[self.index].text if self.index < len(self.tokens) else "end of filter"
            raise FilterSyntaxError(f"expected {kind} but found {found!r}")
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise FilterSyntaxError(f"unexpected {self.tokens[self.index].text!r}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.peek() == "-or":
            self.take("-or")
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.peek() == "-and":
            self.take("-and")
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def negation(self) -> Predicate:
        if self.peek() == "-not":
            self.take("-not")
            inner = self.negation()
            return lambda r: not inner(r)
        if self.peek() == "lparen":
            self.take("lparen")
            inner = self.disjunction()
            self.take("rparen")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        prop = self.take("word").text.lower()
        operator = self.peek()
        if operator not in ("-eq", "-ne", "-like"):
            raise FilterSyntaxError(f"expected -eq, -ne or -like after {prop!r}")
        self.take(operator)
        if self.peek() == "value":
            expected = self.take("value").text.lower()
        else:
            expected = self.take("word").text.lower()
            if expected == "null":
                expected = ""

        def matches(values: tuple[str, ...]) -> bool:
            lowered = [v.lower() for v in values] or [""]
            if operator == "-like":
                return any(fnmatch.fnmatchcase(v, expected) for v in lowered)
            return expected in lowered

        if operator == "-ne":
            return lambda r: not matches(r.get(prop, ()))
        return lambda r: matches(r.get(prop, ()))


def compile_filter(text: str) -> Predicate:
    """Parse ``text`` into a predicate over a :data:`Record`; raise :class:`FilterSyntaxError` when invalid."""
    if not text or not text.strip():
        raise FilterSyntaxError("the filter is empty")
    return _Parser(_tokens(text)).parse()
