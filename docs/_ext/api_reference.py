"""The API reference, generated from one list and checked for coverage.

The public modules are read from ``PUBLIC_MODULES`` in ``tests/test_public_api.py`` (the list
the package's own tests hold it to), so a subpackage added there is documented without editing
the docs. For each module this writes ``api/<module>.rst``: its docstring, then every name of
its ``__all__``, in the groups the ``__all__`` comments give, as an autodoc entry (signature,
Args, Returns, Raises, Example). An object exported by several modules is described once, where
it first appears (the package's top level first); the other modules get a short entry of their
own name pointing to it, so ``jaxopt_notes.training.fit`` is a valid reference too.

After reading, every ``module.name`` must have an entry in the Python domain and every
described object a docstring; a miss is a warning, which ``-W`` turns into a failed build.
Every described object also needs a runnable example: a ``>>>`` example in its docstring, or a
use in the tested code of a page (``tests/test_docs_code.py`` runs those blocks); its entry links
to those pages. The counts go to the log and to ``api-coverage.json`` in the output.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doc_blocks import ROOT as _ROOT
from doc_blocks import blocks, pages
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
PUBLIC_API_TEST = REPOSITORY / "tests" / "test_public_api.py"


def public_modules(path: Path = PUBLIC_API_TEST) -> list[str]:
    """``PUBLIC_MODULES`` as the tests define it, read from the source (nothing imported)."""
    for node in ast.parse(path.read_text(), str(path)).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "PUBLIC_MODULES" for t in targets):
            return list(ast.literal_eval(node.value))
    raise RuntimeError(f"api_reference: {path} defines no PUBLIC_MODULES list")


def all_groups(module: types.ModuleType) -> list[tuple[str, list[str]]]:
    """``__all__`` in the groups its comment lines open (one untitled group when it has none)."""
    names = list(module.__all__)
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return [("", names)]
    match = re.search(r"^__all__\s*=\s*\[(.*?)^\]", source, re.M | re.S)
    if match is None or "#" not in match.group(1):
        return [("", names)]
    groups: list[tuple[str, list[str]]] = []
    for line in match.group(1).splitlines():
        line = line.strip()
        if line.startswith("#"):
            groups.append((line.lstrip("# ").strip(), []))
        elif line:
            name = line.strip("\",' ")
            if not groups:
                groups.append(("", []))
            groups[-1][1].append(name)
    return groups


def kind_of(value: Any) -> str:
    """The Python-domain object type of a public value."""
    if isinstance(value, types.ModuleType):
        return "module"
    if inspect.isclass(value):
        return "exception" if issubclass(value, BaseException) else "class"
    if callable(value):
        return "function"
    return "data"


def is_named_tuple(value: Any) -> bool:
    return inspect.isclass(value) and issubclass(value, tuple) and hasattr(value, "_fields")


def data_docstring(name: str, value: Any) -> str:
    """The ``#:`` or string docstring of a module-level constant, from whichever package module
    defines it."""
    for module_name, module in sorted(sys.modules.items()):
        if not module_name.startswith("jaxopt_notes") or getattr(module, name, None) is not value:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
        except Exception:  # noqa: BLE001  (a module without readable source has no docs)
            continue
        if ("", name) in docs:
            return "\n".join(docs[("", name)]).strip()
    return ""


@dataclass
class Entry:
    module: str
    name: str
    kind: str
    owner: str  # the module whose page describes the object in full
    documented: bool = False
    has_example: bool = False  # a ``>>>`` example in its own docstring
    pages: list[str] = field(default_factory=list)  # docnames whose tested code uses it


@dataclass
class Reference:
    modules: list[str]
    entries: list[Entry] = field(default_factory=list)

    def owner_of(self, value: Any) -> Entry | None:
        return next((e for e in self.entries if e.owner == e.module and getattr_path(e) is value), None)


def getattr_path(entry: Entry) -> Any:
    return getattr(importlib.import_module(entry.module), entry.name)


def indent(text: str, spaces: int = 3) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def describe(entry: Entry, value: Any) -> str:
    """reST for one entry: the full autodoc description, or a pointer to the owner's."""
    full = f"{entry.module}.{entry.name}"
    if entry.owner != entry.module:
        role = {"function": "func", "class": "class", "exception": "exc", "data": "data", "module": "mod"}[entry.kind]
        target = f"{entry.owner}.{entry.name}" if entry.kind != "module" else value.__name__
        directive = "module" if entry.kind == "module" else entry.kind
        if entry.kind == "module":
            return f"* ``{entry.name}``: the module :mod:`{target}`, documented on its own page.\n"
        return (
            f".. py:{directive}:: {entry.name}\n   :module: {entry.module}\n\n"
            f"   The same object as :{role}:`{target}`, described there.\n"
        )
    if entry.kind == "function":
        return f".. autofunction:: {full}\n"
    if entry.kind == "exception":
        return f".. autoexception:: {full}\n   :show-inheritance:\n"
    if entry.kind == "class":
        if is_named_tuple(value):
            return f".. autoclass:: {full}\n   :show-inheritance:\n"
        return f".. autoclass:: {full}\n   :members:\n   :show-inheritance:\n"
    if entry.kind == "module":
        return f"* ``{entry.name}``: the module :mod:`{value.__name__}`.\n"
    docstring = data_docstring(entry.name, value)
    if entry.pages:
        docstring += "\n\nUsed in the tested code of: " + ", ".join(f":doc:`/{d}`" for d in entry.pages) + "."
    return (
        f".. py:data:: {entry.name}\n   :module: {entry.module}\n   :type: {type(value).__name__}\n\n"
        f"{indent(docstring)}\n"
    )


def docstring_of(entry: Entry, value: Any) -> str:
    if entry.kind == "data":
        return data_docstring(entry.name, value)
    return inspect.getdoc(value) or ""


def module_page(reference: Reference, module_name: str) -> str:
    module = importlib.import_module(module_name)
    title = f"``{module_name}``"
    lines = [
        ".. This page is generated by docs/_ext/api_reference.py from the module's __all__; do not edit.",
        "",
        title,
        "=" * len(title),
        "",
        f".. automodule:: {module_name}",
        "   :no-members:",
        "",
    ]
    for group, names in all_groups(module):
        if group:
            heading = group[0].upper() + group[1:]
            lines += [heading, "-" * len(heading), ""]
        lines += [".. autosummary::", "   :nosignatures:", ""]
        for name in names:
            entry = next(e for e in reference.entries if e.module == module_name and e.name == name)
            if entry.kind == "module":
                target = getattr(module, name).__name__
                if target.startswith(module_name + "."):
                    target = target[len(module_name) + 1 :]
            else:
                # autosummary wants names of the page's own module relative to it.
                target = name if entry.owner == module_name else f"{entry.owner}.{name}"
            lines.append(f"   {target}")
        lines.append("")
        for name in names:
            entry = next(e for e in reference.entries if e.module == module_name and e.name == name)
            lines += [describe(entry, getattr(module, name)), ""]
    return "\n".join(lines)


def build_reference(modules: list[str]) -> Reference:
    reference = Reference(modules)
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            kind = kind_of(value)
            owner = reference.owner_of(value) if kind != "data" else None
            entry = Entry(module_name, name, kind, owner.module if owner else module_name)
            if kind == "module":
                entry.owner = value.__name__ if value.__name__ in modules else module_name
            doc = docstring_of(entry, value)
            entry.has_example = ">>>" in doc if entry.owner == module_name else bool(owner and owner.has_example)
            reference.entries.append(entry)
    return reference


ALIASES = {
    "jn": "jaxopt_notes",
    "notes": "jaxopt_notes.notes",
    "testing": "jaxopt_notes.testing",
    "strategies": "jaxopt_notes.testing.strategies",
    "data": "jaxopt_notes.data",
    "training": "jaxopt_notes.training",
    "schedules": "jaxopt_notes.schedules",
}
FROM_IMPORT = re.compile(r"from[ \t]+(jaxopt_notes(?:\.\w+)*)[ \t]+import[ \t]+(?:\(([^)]*)\)|([^\n#]+))")
IMPORT_AS = re.compile(r"import\s+(jaxopt_notes(?:\.\w+)*)\s+as\s+(\w+)")


def page_aliases(code: str) -> dict[str, str]:
    """Names the page's code binds to the package's modules: the usual ones, and whatever its
    imports say (``import jaxopt_notes.torch as jt``, ``from jaxopt_notes import keras as jk``)."""
    aliases = dict(ALIASES)
    for module, alias in IMPORT_AS.findall(code):
        aliases[alias] = module
    for module, parenthesized, one_line in FROM_IMPORT.findall(code):
        for part in (parenthesized or one_line).split(","):
            words = part.split()
            if len(words) == 3 and words[1] == "as":
                aliases[words[2]] = f"{module}.{words[0]}"
            elif len(words) == 1:
                aliases.setdefault(words[0], f"{module}.{words[0]}")
    return aliases


def tested_uses() -> dict[str, set[str]]:
    """``{"module.name": {docname, ...}}`` for every public name that a tested code block of a
    written page (doctest or executed, not ``# not run``) uses."""
    uses: dict[str, set[str]] = {}
    for path in pages():
        if path.parent == _ROOT:
            continue  # README.md is not a page of the site
        docname = path.relative_to(_ROOT / "docs").with_suffix("").as_posix()
        code = "\n".join(b.text for b in blocks(path.read_text()) if b.kind in ("doctest", "exec"))
        aliases = page_aliases(code)
        for alias, target in aliases.items():
            if alias not in ALIASES or re.search(rf"\b{alias}\b", code):
                uses.setdefault(target, set()).add(docname)  # the imported name itself is used
        pattern = re.compile(r"(?<![\w.])(jaxopt_notes(?:\.\w+)*|" + "|".join(map(re.escape, aliases)) + r")\.(\w+)")
        for head, name in pattern.findall(code):
            uses.setdefault(f"{aliases.get(head, head)}.{name}", set()).add(docname)
    return uses


def attach_uses(reference: Reference) -> None:
    """Each described object gets the pages whose tested code uses it under any public name."""
    uses = tested_uses()
    for entry in reference.entries:
        owner = (
            next(e for e in reference.entries if e.module == entry.owner and e.name == entry.name)
            if (entry.owner != entry.module and entry.kind != "module")
            else entry
        )
        owner.pages = sorted(set(owner.pages) | uses.get(f"{entry.module}.{entry.name}", set()))


def write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app: Sphinx) -> None:
    modules = public_modules()
    reference = build_reference(modules)
    attach_uses(reference)
    app.jaxopt_api_reference = reference  # type: ignore[attr-defined]
    out = Path(app.srcdir) / "api"
    out.mkdir(exist_ok=True)
    for stale in out.glob("jaxopt_notes*.rst"):
        if stale.stem not in modules:
            stale.unlink()
    for module_name in modules:
        write_if_changed(out / f"{module_name}.rst", module_page(reference, module_name))


def check_coverage(app: Sphinx, env: BuildEnvironment) -> None:
    reference: Reference = getattr(app, "jaxopt_api_reference", None) or build_reference(public_modules())
    objects = env.get_domain("py").objects
    for entry in reference.entries:
        full = f"{entry.module}.{entry.name}"
        value = getattr_path(entry)
        if entry.kind == "module":
            entry.documented = value.__name__ in objects
        else:
            entry.documented = full in objects
        if not entry.documented:
            logger.warning(f"api_reference: the public name {full} has no entry in the API reference")
        elif entry.owner == entry.module and entry.kind != "module" and not docstring_of(entry, value):
            entry.documented = False
            logger.warning(f"api_reference: the public name {full} has no docstring")
    documented = sum(e.documented for e in reference.entries)
    total = len(reference.entries)

    def owner(entry: Entry) -> Entry:
        return next((e for e in reference.entries if e.module == entry.owner and e.name == entry.name), entry)

    for entry in reference.entries:
        if entry.owner == entry.module and entry.kind != "module" and not (entry.has_example or entry.pages):
            logger.warning(
                f"api_reference: the public name {entry.module}.{entry.name} has no runnable example: give its "
                "docstring a >>> example, or use it in a tested code block of a page under docs/"
            )
    in_docstring = [e for e in reference.entries if owner(e).has_example]
    in_pages = [e for e in reference.entries if owner(e).pages]
    either = [e for e in reference.entries if owner(e).has_example or owner(e).pages or e.kind == "module"]
    logger.info(
        f"api_reference: {documented}/{total} public names documented over {len(reference.modules)} public "
        f"modules; a runnable example: {len(in_docstring)}/{total} in the docstring, {len(in_pages)}/{total} in "
        f"the pages' tested code, {len(either)}/{total} in either"
    )
    summary = {
        "modules": reference.modules,
        "public": total,
        "documented": documented,
        "example_in_docstring": len(in_docstring),
        "example_in_pages": len(in_pages),
        "example_anywhere": len(either),
        "without_docstring_example": [f"{e.module}.{e.name}" for e in reference.entries if e not in in_docstring],
        "without_any_example": [f"{e.module}.{e.name}" for e in reference.entries if e not in either],
    }
    Path(app.outdir).mkdir(parents=True, exist_ok=True)
    (Path(app.outdir) / "api-coverage.json").write_text(json.dumps(summary, indent=1) + "\n")


COMBINED_FIELD = re.compile(r"^(?P<indent>\s+)(?P<names>\*{0,2}\w+(?:,\s*\*{0,2}\w+)+):(?P<text>.*)$")


def split_combined_fields(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Reads ``a, b: text`` lines of ``Attributes:`` and ``Args:`` sections as one entry per
    name, before napoleon sees the docstring: napoleon would take the first names of an
    attribute line for a type, and the star of ``*args`` in a shared line for emphasis."""
    section = ""
    result: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.strip().endswith(":") and not line.startswith(" "):
            section = line.strip()
        match = COMBINED_FIELD.match(line) if section in ("Attributes:", "Args:", "Arguments:") else None
        if match is None:
            result.append(line)
            continue
        depth = len(match["indent"])
        continuation = []
        while index < len(lines) and lines[index].strip() and len(lines[index]) - len(lines[index].lstrip()) > depth:
            continuation.append(lines[index])
            index += 1
        for other in (n.strip() for n in match["names"].split(",")):
            result.append(f"{match['indent']}{other}:{match['text']}")
            result.extend(continuation)
    lines[:] = result


def link_tested_uses(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Ends a described object's docstring with links to the pages whose tested code uses it."""
    reference: Reference | None = getattr(app, "jaxopt_api_reference", None)
    if reference is None:
        return
    entry = next((e for e in reference.entries if e.owner == e.module and f"{e.module}.{e.name}" == name), None)
    if entry is None or not entry.pages:
        return
    links = ", ".join(f":doc:`/{docname}`" for docname in entry.pages)
    lines.extend(["", f"Used in the tested code of: {links}.", ""])


def always_reread(
    app: Sphinx, env: BuildEnvironment, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    """The API pages' text depends on the docstrings and on every page's code, not only on
    their own files: read them at every build, so an incremental build is never stale."""
    return [name for name in env.found_docs if name.startswith("api/jaxopt_notes")]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("autodoc-process-docstring", split_combined_fields, priority=400)
    app.connect("autodoc-process-docstring", link_tested_uses, priority=600)
    app.connect("env-get-outdated", always_reread)
    app.connect("env-check-consistency", check_coverage)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
