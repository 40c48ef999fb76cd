"""Load mailplane's JSON Schemas and turn jsonschema errors into :class:`ConfigProblem` findings.

The schemas live in the repository's ``schemas/`` folder and ship inside the package through the ``mailplane/schemas`` symlink.
Messages follow jsonschema's convention (the offending value first, then the rule) but replace the unreadable
parts: a failed e-mail pattern says "is not an e-mail address", an unexpected key lists the allowed keys.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from mailplane.exceptions import ConfigProblem

__all__ = ["load_schema", "schema_problems", "validator_for"]

# Named $defs whose pattern failures get a sentence instead of the regular expression.
_PATTERN_MEANINGS = {
    "email": "is not an e-mail address (expected name@domain.tld)",
    "guid": "is not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``schemas/<name>`` (e.g. ``tenant.schema.json``)."""
    text = resources.files("mailplane").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


@cache
def validator_for(name: str) -> Draft202012Validator:
    """A reusable validator for ``schemas/<name>`` (format checks on: dates, e-mail, URIs)."""
    return Draft202012Validator(load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def _describe(error: ValidationError, schema: dict[str, Any]) -> str:
    defs = schema.get("$defs", {})
    if error.validator == "pattern":
        for def_name, meaning in _PATTERN_MEANINGS.items():
            if error.schema is defs.get(def_name) or error.schema == defs.get(def_name):
                return f"{error.instance!r} {meaning}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in unexpected:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
        return f"unknown key {', '.join(parts)}; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        allowed_values = ", ".join(repr(v) for v in error.validator_value)
        return f"{error.instance!r} is not allowed; use one of {allowed_values}"
    if error.validator == "const":
        return f"{error.instance!r} must be exactly {error.validator_value!r}"
    if error.validator == "uniqueItems":
        seen: list[Any] = []
        dupes = [item for item in error.instance if item in seen or seen.append(item)]  # type: ignore[func-returns-value]
        return f"duplicate entries {dupes!r}; each entry may appear once"
    return str(error.message)


def schema_problems(name: str, instance: Any) -> list[ConfigProblem]:
    """Every schema violation of ``instance`` against ``schemas/<name>``, the best match first."""
    validator = validator_for(name)
    schema = load_schema(name)
    errors = list(validator.iter_errors(instance))
    if not errors:
        return []
    headline = best_match(errors)
    errors.sort(key=lambda e: (e is not headline, [str(p) for p in e.absolute_path]))
    return [
        ConfigProblem(path=_path_of(error), message=_describe(error, schema), value=error.instance) for error in errors
    ]


def _path_of(error: ValidationError) -> tuple[str | int, ...]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        unexpected = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if len(unexpected) == 1:
            # Point at the unknown key itself: "mailplane:scopping", not the object holding it.
            return (*path, unexpected[0])
    return path
