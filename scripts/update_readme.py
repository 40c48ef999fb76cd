"""Regenerate the generated parts of README.md (the preset permission table). A test checks they are current."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailplane.permission_table import preset_table_markdown

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- preset-table:begin -->\n).*?(<!-- preset-table:end -->)", re.DOTALL)


def render(text: str) -> str:
    """``text`` with the preset table block replaced by the freshly generated table."""
    return BLOCK.sub(lambda m: m.group(1) + preset_table_markdown() + "\n" + m.group(2), text)


if __name__ == "__main__":
    README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {README}")
