"""Docstrings write mathematics as the pages do, ``$inline$`` and ``$$`` blocks (readable in a
terminal's ``help()``); autodoc reads docstrings as reStructuredText, which knows neither. This
extension rewrites them, before napoleon and autodoc see them, into the ``:math:`` role and the
``.. math::`` directive, leaving ``$`` inside inline literals (double backquotes) alone."""

from __future__ import annotations

import re
from typing import Any

from sphinx.application import Sphinx

INLINE = re.compile(r"(?<![\\$])\$(?!\$)([^$\n]+?)(?<![\\\s])\$(?!\$)")
LITERAL = re.compile(r"``.+?``")


def inline_math(line: str) -> str:
    """``$x$`` -> ``:math:`x``` outside ````literals````."""
    pieces, start = [], 0
    for literal in LITERAL.finditer(line):
        pieces.append(INLINE.sub(r":math:`\1`", line[start : literal.start()]))
        pieces.append(literal.group(0))
        start = literal.end()
    pieces.append(INLINE.sub(r":math:`\1`", line[start:]))
    return "".join(pieces)


def rst_math(lines: list[str]) -> list[str]:
    """The docstring's lines with every ``$$`` block a ``.. math::`` directive and every
    ``$...$`` a ``:math:`` role."""
    out: list[str] = []
    block: list[str] | None = None
    indent = ""
    for line in lines:
        if line.strip() == "$$":
            if block is None:
                indent, block = line[: len(line) - len(line.lstrip())], []
                continue
            body = [text for text in block if text.strip()]
            margin = min((len(text) - len(text.lstrip()) for text in body), default=0)
            out += [f"{indent}.. math::", ""] + [f"{indent}   {text[margin:]}" for text in block] + [""]
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(inline_math(line))
    if block is not None:  # an unclosed block: keep the text as it was
        out += [f"{indent}$$", *block]
    return out


def convert(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    lines[:] = rst_math(lines)


def setup(app: Sphinx) -> dict[str, Any]:
    # Before napoleon (priority 500) turns "Args:" sections into fields.
    app.connect("autodoc-process-docstring", convert, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
