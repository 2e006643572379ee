"""The fenced code blocks of the documentation's Markdown pages, as the tests run them.

Shared by ``tests/test_docs_code.py`` (which runs the blocks) and ``api_reference.py`` (which
links each public name to the pages whose tested code uses it), so both read a page alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("docs/_build", "docs/gallery", "docs/api/jaxopt_notes")
PYTHON = {"python", "pycon", "py", "python3"}
SHELL = {"bash", "console", "shell", "sh"}


@dataclass
class Block:
    language: str
    text: str
    line: int  # 1-based line of the opening fence

    @property
    def kind(self) -> str:
        if self.language in PYTHON:
            if any(line.lstrip().startswith(">>>") for line in self.text.splitlines()):
                return "doctest"
            return "compile" if self.text.lstrip().startswith("# not run:") else "exec"
        return "shell" if self.language in SHELL else "other"


def pages() -> list[Path]:
    """README.md and every written (not generated) Markdown page under docs/."""
    found = [ROOT / "README.md"]
    for path in sorted((ROOT / "docs").rglob("*.md")):
        relative = path.relative_to(ROOT).as_posix()
        if not relative.startswith(GENERATED):
            found.append(path)
    return found


FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, MyST directives (```{name}) left out."""
    found: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        ticks, info, indent = match["ticks"], match["info"].strip(), len(match["indent"])
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not re.match(rf"^\s*{re.escape(ticks[0])}{{{len(ticks)},}}\s*$", lines[end]):
            # The fence's own indentation is the block's margin; a line indented less loses what it has.
            body.append(lines[end][indent:] if not lines[end][:indent].strip() else lines[end].lstrip())
            end += 1
        language = info.split()[0].lower() if info else ""
        if not language.startswith("{"):
            found.append(Block(language, "\n".join(body) + "\n", index + 1))
        index = end + 1
    return found
