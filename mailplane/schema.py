"""Load mailplane's JSON Schemas and turn jsonschema errors into :class:`ConfigProblem` findings.

The schemas live in the repository's ``schemas/`` folder and ship inside the package through the
``mailplane/schemas`` symlink.
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
    "identifier": "is not a name (a letter, then letters, digits, '_' or '-'; at most 64)",
    "dottedPath": "is not a Python dotted path (expected package.module.function)",
    "folderName": "is not a folder name (no '/' or '\\\\')",
    "envVarName": (
        "is not an environment variable name (expected upper case letters, digits and '_', e.g. MAILPLANE_POSTGRES_DSN)"
    ),
}
# Where a value may be a secret pasted in the wrong place (a DSN with its password instead of a variable name):
# the message and the recorded value never repeat it.
_SECRET_PRONE = frozenset({"envVarName"})
_REDACTED = "[redacted]"


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


def _def_name(error: ValidationError, schema: dict[str, Any]) -> str | None:
    """The named ``$defs`` entry whose pattern failed, when it has a readable meaning."""
    defs = schema.get("$defs", {})
    for def_name in _PATTERN_MEANINGS:
        if def_name in defs and (error.schema is defs[def_name] or error.schema == defs[def_name]):
            return def_name
    return None


def _value(error: ValidationError, schema: dict[str, Any]) -> Any:
    if error.validator == "pattern" and _def_name(error, schema) in _SECRET_PRONE:
        return _REDACTED
    return error.instance


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_keyed_forms(error: ValidationError) -> str | None:
    """For a oneOf/anyOf whose branches are told apart by a required key: which key is missing or doubled."""
    branches = [sub for sub in error.validator_value if isinstance(sub, dict)]
    required = [sub.get("required") for sub in branches]
    if not isinstance(error.instance, dict) or not all(required):
        return None
    keys = list(dict.fromkeys(key for keys in required for key in keys))  # type: ignore[union-attr]
    listed = ", ".join(repr(k) for k in keys)
    present = [k for k in keys if k in error.instance]
    if error.validator == "oneOf" and len(present) > 1:
        return f"has {', '.join(repr(k) for k in present)} together; use exactly one of {listed}"
    if present:
        return None
    hints = []
    for key in error.instance:
        close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
        if close:
            hints.append(f"{key!r} (did you mean {close[0]!r}?)")
    hint = f"; unknown key {', '.join(hints)}" if hints else ""
    quantity = "exactly one" if error.validator == "oneOf" else "at least one"
    return f"needs {quantity} of the keys {listed}{hint}"


def _describe(error: ValidationError, schema: dict[str, Any]) -> str:  # noqa: C901, PLR0911 - one case per validator
    if error.validator == "pattern":
        def_name = _def_name(error, schema)
        if def_name in _SECRET_PRONE:
            return (
                f"the value {_PATTERN_MEANINGS[def_name]}; it is not shown in case it is a secret. "
                "Never put a secret in the file"
            )
        if def_name is not None:
            return f"{error.instance!r} {_PATTERN_MEANINGS[def_name]}"
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
    if error.validator in ("oneOf", "anyOf"):
        keyed = _describe_keyed_forms(error)
        if keyed is not None:
            return keyed
        forms = [str(sub.get("title", "")) for sub in error.validator_value if isinstance(sub, dict)]
        shown = _short(error.instance)
        if all(forms):
            return f"{shown} matches none of the allowed forms: {'; '.join(forms)}"
        return f"{shown} matches none of the allowed forms"
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
    # An error under oneOf/anyOf is replaced by its most relevant cause, which names the deeper path.
    errors = [best_match([error]) or error for error in errors]
    headline = best_match(errors)
    errors.sort(key=lambda e: (e is not headline, [str(p) for p in e.absolute_path]))
    return [
        ConfigProblem(path=_path_of(error), message=_describe(error, schema), value=_value(error, schema))
        for error in errors
    ]


def _path_of(error: ValidationError) -> tuple[str | int, ...]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        unexpected = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if len(unexpected) == 1:
            # Point at the unknown key itself: "mailplane:scopping", not the object holding it.
            return (*path, unexpected[0])
    return path
