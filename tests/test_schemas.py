"""Every schema in schemas/ is a valid 2020-12 schema, documents itself, and passes its golden cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from mailplane.schema import validator_for

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = sorted((ROOT / "schemas").glob("*.schema.json"))
CASES = sorted((ROOT / "tests" / "schema_cases").glob("*.json"))


def _golden_tests():
    for case_file in CASES:
        for group in json.loads(case_file.read_text(encoding="utf-8")):
            for test in group["tests"]:
                yield pytest.param(
                    group.get("schema", "integration.schema.json"),
                    test["data"],
                    test["valid"],
                    id=f"{case_file.stem}: {group['description']}: {test['description']}",
                )


@pytest.mark.parametrize("schema_file", SCHEMAS, ids=lambda p: p.name)
def test_schema_file__checked_against_the_metaschema__is_valid(schema_file):
    Draft202012Validator.check_schema(json.loads(schema_file.read_text(encoding="utf-8")))


def test_golden_cases__present__at_least_one_file_per_integration_section():
    assert {p.stem for p in CASES} >= {"accounts", "property_sources", "templates", "settings", "store_and_sinks"}


@pytest.mark.parametrize(("schema_name", "data", "valid"), list(_golden_tests()))
def test_golden_case__validated__matches_expected_validity(schema_name, data, valid):
    errors = list(validator_for(schema_name).iter_errors(data))
    assert (not errors) is valid, [e.message for e in errors]


def _subschemas(node):
    for keyword in ("properties", "$defs"):
        for name, child in node.get(keyword, {}).items():
            yield f"{keyword}/{name}", child
    for keyword in ("items", "additionalProperties", "propertyNames"):
        if isinstance(node.get(keyword), dict):
            yield keyword, node[keyword]
    for keyword in ("oneOf", "anyOf", "allOf"):
        for index, child in enumerate(node.get(keyword, [])):
            yield f"{keyword}[{index}]", child


def _undocumented(node, path):
    """Properties without a description, and optional ones whose description does not state the default."""
    found = []
    for name, spec in node.get("properties", {}).items():
        if name == "$schema":
            continue
        text = spec.get("description", "")
        if not text:
            found.append(f"{path}/properties/{name}: no description")
        elif name not in node.get("required", ()) and "default" not in text.lower() and "default" not in spec:
            found.append(f"{path}/properties/{name}: optional but no default stated")
    for where, child in _subschemas(node):
        found.extend(_undocumented(child, f"{path}/{where}"))
    return found


def test_integration_schema__every_property__has_a_description_and_optional_ones_a_default():
    schema = json.loads((ROOT / "schemas" / "integration.schema.json").read_text(encoding="utf-8"))
    assert _undocumented(schema, "#") == []
