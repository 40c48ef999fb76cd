"""Print, as a JSON list, the stacks a change between two git refs affects (for the CI matrix).

A stack is affected when its stack file was added or modified, or when shared code changed (the Pulumi program,
components, the mailplane package, schemas, the policy pack): then every stack is. Deleted stack files are left out
(there is nothing to preview or deploy; their removal shows in the audit).

Usage: python scripts/changed_stacks.py BASE HEAD [--all]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path, PurePosixPath

SHARED = ("__main__.py", "Pulumi.yaml", "components/", "mailplane/", "schemas/", "policy/", "pyproject.toml")


def all_stacks() -> list[str]:
    """Every stack in stacks/."""
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in Path("stacks").glob("Pulumi.*.yaml"))


def affected(changed_files: list[str]) -> list[str]:
    """Return the stacks that the changed (added or modified, not deleted) files affect."""
    if any(f == s or (s.endswith("/") and f.startswith(s)) for f in changed_files for s in SHARED):
        return all_stacks()
    stacks = set()
    for name in changed_files:
        path = PurePosixPath(name)
        if path.parent == PurePosixPath("stacks") and path.match("Pulumi.*.yaml"):
            stacks.add(path.name.removeprefix("Pulumi.").removesuffix(".yaml"))
    return sorted(stacks)


def main(argv: list[str]) -> int:
    """Print the JSON list; ``--all`` prints every stack."""
    if "--all" in argv:
        print(json.dumps(all_stacks()))
        return 0
    if len(argv) != 2:  # noqa: PLR2004 - BASE and HEAD.
        print(__doc__, file=sys.stderr)
        return 2
    base, head = argv
    diff = subprocess.run(  # noqa: S603
        ["git", "diff", "--name-only", "--diff-filter=d", f"{base}...{head}"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    )
    print(json.dumps(affected(diff.stdout.split())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
