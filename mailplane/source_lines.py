"""Line numbers of the values in a JSON or YAML document, by path, so findings can point at a line (annotations).

The standard library's JSON parser does not keep positions, so :func:`json_lines` walks text that ``json.loads``
already accepted; :func:`yaml_lines` reads PyYAML's node marks.
"""

from __future__ import annotations

import bisect
import re
from json.decoder import scanstring  # type: ignore[attr-defined]  # public in CPython, missing from typeshed
from typing import Any

import yaml

__all__ = ["json_lines", "line_for", "yaml_lines"]

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


def json_lines(text: str) -> dict[Path, int]:
    """Path -> 1-based line of every value (a member's key line) in valid JSON ``text``; ``{}`` if it cannot tell."""
    walker = _Walker(text)
    try:
        walker.value(0, ())
    except (ValueError, IndexError):
        return {}
    return walker.lines


def yaml_lines(text: str) -> dict[Path, int]:
    """Path -> 1-based line of every value (a mapping member's key line) in YAML ``text``; ``{}`` if it cannot tell."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[Path, int] = {}

    def walk(node: Any, path: Path, line: int) -> None:
        lines[path] = line
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                walk(value_node, (*path, str(key_node.value)), key_node.start_mark.line + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index), item.start_mark.line + 1)

    if root is not None:
        walk(root, (), root.start_mark.line + 1)
    return lines


def line_for(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of its closest existing parent (a missing required key points at its object)."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None
