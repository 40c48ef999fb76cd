"""Build ``tests/fixtures/graph_types.json`` from the Graph v1.0 CSDL (a development-time step).

The dev tenant's fidelity tests check every payload it returns against these facts: for each mail-related entity and
complex type, its property names and declared types (inherited properties included), the enum members, and the
parameter names of the mail actions. Run it after the CSDL in ``../shared/data/graph-metadata`` changes::

    python scripts/build_graph_types.py [CSDL] [OUTPUT]
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSDL = REPO_ROOT.parent / "shared" / "data" / "graph-metadata" / "v1.0-Prod.csdl"
DEFAULT_OUTPUT = REPO_ROOT / "tests" / "fixtures" / "graph_types.json"

# The types the emulator returns or accepts; every complex type they reference is added transitively.
ROOT_TYPES = (
    "message",
    "mailFolder",
    "attachment",
    "fileAttachment",
    "itemAttachment",
    "referenceAttachment",
    "subscription",
    "recipient",
    "emailAddress",
    "itemBody",
    "internetMessageHeader",
    "followupFlag",
    "uploadSession",
    "attachmentItem",
    "changeNotification",
    "changeNotificationCollection",
    "resourceData",
    "singleValueLegacyExtendedProperty",
)
# action name -> binding parameter type, for the overloads the emulator serves.
ACTIONS = {
    "sendMail": "graph.user",
    "send": "graph.message",
    "move": "graph.message",
    "copy": "graph.message",
    "createUploadSession": "Collection(graph.attachment)",
    "createReply": "graph.message",
    "createReplyAll": "graph.message",
    "createForward": "graph.message",
    "reply": "graph.message",
    "replyAll": "graph.message",
    "forward": "graph.message",
    "reauthorize": "graph.subscription",
}


def _short(type_name: str) -> str:
    """``graph.message`` -> ``message``; ``Collection(graph.x)`` -> ``x``; Edm types unchanged."""
    inner = type_name.removeprefix("Collection(").removesuffix(")")
    return inner.removeprefix("graph.")


def build(csdl_path: Path) -> dict[str, Any]:  # noqa: C901 - a single pass over the schema, kept in one place
    """Parse the CSDL and return the facts document."""
    root = ET.parse(csdl_path).getroot()  # noqa: S314 - a local, trusted metadata file
    schema = next(s for s in root.iter(f"{_EDM}Schema") if s.get("Namespace") == "microsoft.graph")
    structured: dict[str, ET.Element] = {}
    enums: dict[str, list[str]] = {}
    for element in schema:
        name = element.get("Name")
        if element.tag in (f"{_EDM}EntityType", f"{_EDM}ComplexType") and name:
            structured[name] = element
        elif element.tag == f"{_EDM}EnumType" and name:
            enums[name] = [m.get("Name", "") for m in element.iter(f"{_EDM}Member")]

    def declared(name: str) -> tuple[dict[str, str], dict[str, str]]:
        element = structured[name]
        properties: dict[str, str] = {}
        navigation: dict[str, str] = {}
        base = element.get("BaseType")
        if base:
            properties, navigation = declared(_short(base))
        for prop in element.findall(f"{_EDM}Property"):
            properties[prop.get("Name", "")] = prop.get("Type", "")
        for nav in element.findall(f"{_EDM}NavigationProperty"):
            navigation[nav.get("Name", "")] = nav.get("Type", "")
        return dict(properties), dict(navigation)

    types: dict[str, Any] = {}
    used_enums: set[str] = set()
    pending = list(ROOT_TYPES)
    while pending:
        name = pending.pop()
        if name in types:
            continue
        element = structured[name]
        properties, navigation = declared(name)
        chain = []
        base = element.get("BaseType")
        while base:
            chain.append(_short(base))
            base = structured[_short(base)].get("BaseType")
        derived = sorted(
            other for other, el in structured.items() if el.get("BaseType") == f"graph.{name}" and other in ROOT_TYPES
        )
        types[name] = {
            "kind": "entity" if element.tag == f"{_EDM}EntityType" else "complex",
            "baseTypes": chain,
            "derivedTypes": derived,
            "abstract": element.get("Abstract") == "true",
            "openType": element.get("OpenType") == "true",
            "properties": dict(sorted(properties.items())),
            "navigationProperties": dict(sorted(navigation.items())),
        }
        for type_name in properties.values():
            short = _short(type_name)
            if short in structured:
                pending.append(short)
            elif short in enums:
                used_enums.add(short)

    actions: dict[str, Any] = {}
    for action in schema.iter(f"{_EDM}Action"):
        name = action.get("Name", "")
        parameters = action.findall(f"{_EDM}Parameter")
        if name not in ACTIONS or not parameters or parameters[0].get("Type") != ACTIONS[name]:
            continue
        returns = action.find(f"{_EDM}ReturnType")
        actions[name] = {
            "binding": ACTIONS[name],
            "parameters": {p.get("Name", ""): p.get("Type", "") for p in parameters[1:]},
            "returns": returns.get("Type") if returns is not None else None,
        }
    missing = sorted(set(ACTIONS) - set(actions))
    if missing:
        raise SystemExit(f"building graph types from {csdl_path}: actions not found: {missing}. Check ACTIONS.")
    return {
        "source": "msgraph-metadata schemas/v1.0-Prod.csdl (generated by scripts/build_graph_types.py)",
        "types": dict(sorted(types.items())),
        "enums": {name: enums[name] for name in sorted(used_enums)},
        "actions": dict(sorted(actions.items())),
    }


def render(facts: dict[str, Any]) -> str:
    """Render the committed text form (stable key order, one trailing newline)."""
    return json.dumps(facts, indent=1, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    """Write the facts file."""
    csdl = Path(argv[1]) if len(argv) > 1 else DEFAULT_CSDL
    output = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUTPUT  # noqa: PLR2004
    output.write_text(render(build(csdl)), encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
