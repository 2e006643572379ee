"""Every code block of the documentation runs, or is checked, as a test.

Pages are ``README.md`` and every Markdown page under ``docs/`` (the generated gallery and build
output excepted). In each page, in order:

- a ``python`` / ``pycon`` block holding ``>>>`` prompts is a doctest: the page's doctest
  blocks run as one session (names carry from block to block), and their printed output must
  match (``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``, as the package's own doctests);
- any other ``python`` block is executed, the page's such blocks in order as one script, in an
  empty working directory;
- a ``python`` block whose first line is ``# not run: <reason>`` (a cluster launch, say) is
  only compiled, and must say why it cannot run;
- a shell block (``bash``, ``console``, ``shell``) may name scripts of the repository and
  subcommands of ``jaxopt-notes``; each must exist.
"""

from __future__ import annotations

import doctest
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
from doc_blocks import blocks, pages  # noqa: E402  (the docs' own reader, shared with the build)

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_documentation_has_pages_and_code():
    counts: dict[str, int] = {}
    for path in pages():
        for block in blocks(path.read_text()):
            counts[block.kind] = counts.get(block.kind, 0) + 1
    print(f"documentation code blocks: {counts} over {len(pages())} pages")
    assert len(pages()) > 20 and counts.get("doctest", 0) > 30, counts


def test_the_block_reader_sees_what_a_page_holds():
    text = "a\n```pycon\n>>> 1 + 1\n2\n```\n\n````python\nx = 1\n````\n```{toctree}\nx\n```\n```bash\nls\n```\n"
    assert [(b.kind, b.line) for b in blocks(text)] == [("doctest", 2), ("exec", 7), ("shell", 13)]
    indented = "```python\nfor i in range(2):\n    x = i\n```\n- item\n  ```python\n  if x:\n      y = 1\n  ```\n"
    assert [b.text for b in blocks(indented)] == ["for i in range(2):\n    x = i\n", "if x:\n    y = 1\n"]


def pages_with(*kinds: str) -> list[Path]:
    return [path for path in pages() if any(b.kind in kinds for b in blocks(path.read_text()))]


@pytest.mark.parametrize("path", pages_with("doctest"), ids=page_id)
def test_doctests_of_the_page_pass(path, tmp_path, monkeypatch):
    doctests = [b for b in blocks(path.read_text()) if b.kind == "doctest"]
    monkeypatch.chdir(tmp_path)
    # Each block keeps its own line numbers in failure reports: pad with the lines between.
    text = ""
    for block in doctests:
        text += "\n" * (block.line - text.count("\n")) + block.text
    test = doctest.DocTestParser().get_doctest(text, {"__name__": "__docs__"}, page_id(path), str(path), 0)
    output = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=output.write)
    assert result.failed == 0, (
        f"{page_id(path)}: {result.failed} of {result.attempted} examples failed\n{output.getvalue()}"
    )
    assert result.attempted > 0


@pytest.mark.parametrize("path", pages_with("exec", "compile"), ids=page_id)
def test_python_blocks_of_the_page_run(path, tmp_path, monkeypatch):
    found = blocks(path.read_text())
    for block in (b for b in found if b.kind == "compile"):
        reason = block.text.lstrip().splitlines()[0].removeprefix("# not run:").strip()
        assert reason, f"{page_id(path)}:{block.line}: '# not run:' must say why"
        compile(block.text, f"{page_id(path)}:{block.line}", "exec")
    scripts = [b for b in found if b.kind == "exec"]
    if not scripts:
        return
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in scripts:
        code = compile("\n" * (block.line) + block.text, str(path), "exec")
        exec(code, namespace)  # noqa: S102  (the page's own code, run as its reader would)


def named_paths(command: str) -> list[str]:
    """Repository files a shell command names: ``python path.py``, ``pytest tests/x.py``, ..."""
    words = shlex.split(command, comments=True)
    named = [w for w in words if re.fullmatch(r"(examples|benchmarks|tests|docs|jaxopt_notes|\.ci)/[\w./-]+", w)]
    return [w for w in named if not w.startswith("docs/_build")]  # the build's output, not a source


@pytest.mark.parametrize("path", pages_with("shell"), ids=page_id)
def test_shell_blocks_name_what_exists(path):
    from jaxopt_notes.cli._commands import build_parser

    subcommands = set(next(a for a in build_parser()._actions if a.dest == "command").choices)
    for block in (b for b in blocks(path.read_text()) if b.kind == "shell"):
        for line in block.text.splitlines():
            command = line.lstrip("$ ").strip()
            if not command or command.startswith("#"):
                continue
            for named in named_paths(command):
                assert (ROOT / named.split("::")[0]).exists(), f"{page_id(path)}:{block.line}: {named} does not exist"
            for part in re.split(r"&&|;|\|", command):
                words = shlex.split(part, comments=True)
                if words[:1] == ["jaxopt-notes"] and len(words) > 1 and not words[1].startswith("-"):
                    assert words[1] in subcommands, f"{page_id(path)}:{block.line}: no subcommand {words[1]!r}"
