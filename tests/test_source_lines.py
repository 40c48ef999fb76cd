"""Line numbers by JSON/YAML path, for annotations that point at the offending line."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mailplane.source_lines import json_lines, line_for, yaml_lines

TEXT = """{
  "accounts": {
    "shared": [
      {"address": "support@fabrikam.com",
       "conversation": {"parent": "tiket"}}
    ]
  },
  "n": [1, -2.5e3, true, null, "a\\"b"]
}
"""


def test_document__lines__member_keys_and_items():
    lines = json_lines(TEXT)
    assert lines[()] == 1
    assert lines[("accounts",)] == 2
    assert lines[("accounts", "shared", 0)] == 4
    assert lines[("accounts", "shared", 0, "conversation", "parent")] == 5
    assert lines[("n", 4)] == 8


def test_missing_key__line_for__closest_parent():
    lines = json_lines(TEXT)
    assert line_for(lines, ("accounts", "shared", 0, "conversation", "properties")) == 5
    assert line_for(lines, ("nowhere",)) == 1
    assert line_for({}, ("a",)) is None


def test_not_json__lines__empty():
    assert json_lines("{") == {}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON, st.sampled_from([None, 2]))
def test_any_document__lines__every_path_found_on_a_line_that_exists(document, indent):
    text = json.dumps(document, indent=indent)
    lines = json_lines(text)
    count = text.count("\n") + 1
    for path in _paths(document):
        assert 1 <= lines[path] <= count


def test_stack_yaml__lines__keys_under_config():
    text = "config:\n  azuread:tenantId: x\n  mailplane:app:\n    displayName: A\n    redirectUris:\n      - http://a\n"
    lines = yaml_lines(text)
    assert lines[("config", "mailplane:app", "displayName")] == 4
    assert lines[("config", "mailplane:app", "redirectUris", 0)] == 6
    assert yaml_lines("a: [") == {}
