"""Test support: copies of the example stacks with edits, and the resources the real program registers for them."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
EXAMPLES = sorted(STACKS.glob("Pulumi.*.yaml"))
TODAY = dt.date(2026, 11, 22)


def example_names() -> list[str]:
    """``example-outbound-send`` etc."""
    return [p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in EXAMPLES]


def stack_document(stack: str) -> dict[str, Any]:
    """The parsed YAML of an example stack."""
    return yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))


def write_stack_copy(
    folder: Path, stack: str, edit: Callable[[dict[str, Any]], None] | None = None, name: str | None = None
) -> Path:
    """Write ``Pulumi.<name or stack>.yaml`` into ``folder``: the example stack with ``edit`` applied to its config."""
    document = copy.deepcopy(stack_document(stack))
    if edit is not None:
        edit(document["config"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"Pulumi.{name or stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def planned_resources(stack_file: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(type, name, urn, inputs) of every custom resource the real program registers under the mock engine."""
    from mailplane.plan import plan_stack

    plan = plan_stack(stack_file, project_dir=ROOT, today=TODAY)
    return [(r.type, r.name, r.urn, r.inputs) for r in plan.resources if r.custom]
