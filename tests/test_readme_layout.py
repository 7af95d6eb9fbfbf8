"""The README's Layout section names every module and package of src/fds and every top-level folder it lists
exists: the map a newcomer reads matches the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def test_layout_names_every_module_and_package():
    block = layout_block()
    named = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\.py|/)", block))
    entries = {p.name + ("/" if p.is_dir() else "") for p in (ROOT / "src" / "fds").iterdir()
               if not p.name.startswith(("_", ".")) and (p.is_dir() or p.suffix == ".py")}
    assert entries, "no package found"
    assert sorted(entries - named) == []


def test_layout_folders_exist():
    for line in layout_block().splitlines():
        top = re.match(r"^([a-z_]+)/\s", line)
        if top:
            assert (ROOT / top.group(1)).is_dir(), line
