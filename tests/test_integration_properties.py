"""Property tests: the validator never crashes on arbitrary JSON and every problem names a path in the document."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailplane.exceptions import IntegrationConfigError
from mailplane.integration import integration_problems, load_integration_config

EXAMPLE = json.loads((Path(__file__).resolve().parent.parent / "examples" / "integration.json").read_text("utf-8"))

_KEYS = st.sampled_from(
    ["accounts", "shared", "designated", "address", "conversation", "parent", "properties", "message", "default",
     "lookup", "take", "templates", "subject", "text", "html", "settings", "recovery", "schedule", "store",
     "backend", "dsnEnv", "path", "recordTypes", "fields", "type", "references", "followers", "parents", "records"]
) | st.text(max_size=12)  # fmt: skip
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["support@fabrikam.com", "ticket", "subject", "*/20 * * * *", "{{recipient.name}}", "{{"])
)
JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=5),
    max_leaves=25,
)


def _resolves(document, path):
    """Walk ``path``; the last step may be a key that is missing (a required property) but never a wrong type."""
    node = document
    for index, step in enumerate(path):
        last = index == len(path) - 1
        if isinstance(step, int):
            if not isinstance(node, list) or not 0 <= step < len(node):
                return False
        elif not isinstance(node, dict) or (step not in node and not last):
            return False
        if not last:
            node = node[step]
    return True


def _check(document):
    problems = integration_problems(document)
    for problem in problems:
        assert problem.location().startswith("$")
        assert problem.message
        assert all(isinstance(step, (str, int)) for step in problem.path)
        assert _resolves(document, problem.path), (problem.path, problem.message)
    return problems


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_arbitrary_json__validated__never_crashes_and_every_problem_has_a_location(document):
    problems = _check(document)
    if not isinstance(document, dict):
        assert problems


def _set(document, path, value):
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*prefix, index))


_EXAMPLE_PATHS = [p for p in _paths(EXAMPLE) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_EXAMPLE_PATHS), JSON), min_size=1, max_size=3))
def test_example_with_random_subtrees__loaded__valid_or_config_error_naming_paths(replacements):
    document = json.loads(json.dumps(EXAMPLE))
    for path, value in replacements:
        try:
            _set(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed the parent
    _check(document)
    problems: list = []
    try:
        load_integration_config(document)
    except IntegrationConfigError as exc:
        problems = exc.problems
    assert all(p.location().startswith("$") for p in problems)
