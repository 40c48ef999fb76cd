"""Line numbers of the values in a JSON document, by path, so findings can point at a line (GitHub annotations).

The standard library's parser does not keep positions, so this walks text that ``json.loads`` already accepted.
"""

from __future__ import annotations

import bisect
import re
from json.decoder import scanstring  # type: ignore[attr-defined]  # public in CPython, missing from typeshed

__all__ = ["line_for", "value_lines"]

Path = tuple[str | int, ...]
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


class _Walker:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.lines: dict[Path, int] = {}

    def line(self, index: int) -> int:
        return bisect.bisect_left(self.newlines, index) + 1

    def skip(self, index: int) -> int:
        match = _WHITESPACE.match(self.text, index)
        return match.end() if match else index

    def value(self, index: int, path: Path) -> int:
        index = self.skip(index)
        self.lines.setdefault(path, self.line(index))
        char = self.text[index]
        if char == "{":
            return self.members(index + 1, path)
        if char == "[":
            return self.items(index + 1, path)
        if char == '"':
            return int(scanstring(self.text, index + 1)[1])
        match = _SCALAR.match(self.text, index)
        if match is None:
            raise ValueError(f"unexpected {char!r} at {index}")
        return match.end()

    def members(self, index: int, path: Path) -> int:
        index = self.skip(index)
        if self.text[index] == "}":
            return index + 1
        while True:
            index = self.skip(index)
            key, index = scanstring(self.text, index + 1)
            # A member's line is the line of its key (where an editor shows it).
            self.lines[(*path, key)] = self.line(index)
            index = self.skip(index) + 1  # the ':'
            index = self.skip(self.value(index, (*path, key)))
            if self.text[index] == ",":
                index += 1
                continue
            return index + 1  # the '}'

    def items(self, index: int, path: Path) -> int:
        index = self.skip(index)
        if self.text[index] == "]":
            return index + 1
        position = 0
        while True:
            index = self.skip(self.value(index, (*path, position)))
            if self.text[index] == ",":
                index += 1
                position += 1
                continue
            return index + 1  # the ']'


def value_lines(text: str) -> dict[Path, int]:
    """Path -> 1-based line of every value (a member's key line) in valid JSON ``text``; ``{}`` if it cannot tell."""
    walker = _Walker(text)
    try:
        walker.value(0, ())
    except (ValueError, IndexError):
        return {}
    return walker.lines


def line_for(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its closest existing parent (a missing required key points at its object)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None
