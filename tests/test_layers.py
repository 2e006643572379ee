"""The package's layers: imports run one way (core <- data, checkpoint <- training <- notes, torch, keras <- cli),
with no cycle between modules, and ``import jaxopt_notes`` needs neither matplotlib nor the CLI.

The imports are read from the source (AST), function-local ones included, so a lazy import
cannot hide an arrow that runs back up."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "jaxopt_notes"
LAYERS = {"core": 1, "data": 2, "training": 3, "notes": 4, "torch": 4, "keras": 4, "cli": 5}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """Layer of a module of the package: its subpackage, else core (checkpoint and testing sit
    beside data, on top of the core)."""
    parts = module.split(".")
    if len(parts) == 1:
        raise ValueError("the package itself only re-exports; no module may import it")
    head = parts[1]
    if head in ("data", "_checkpoint", "testing"):
        return LAYERS["data"]
    if head in ("training", "notes", "torch", "keras", "cli"):
        return LAYERS[head]
    if head == "__main__":
        return LAYERS["cli"]
    return LAYERS["core"]


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in its source."""
    found = set()
    this = module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "jaxopt_notes")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = this.split(".")[: len(this.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "jaxopt_notes":
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    found.discard(this)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imported_modules(path, modules) for name, path in modules.items() if name != "jaxopt_notes"}


def test_every_module_has_a_layer():
    names = set(package_modules()) - {"jaxopt_notes"}
    assert {layer_of(name) for name in names} == set(LAYERS.values())


def test_no_import_runs_up_the_layers():
    upward = []
    for module, imports in import_graph().items():
        for target in imports:
            if target == "jaxopt_notes":
                upward.append(f"{module} imports the package itself (import the module instead)")
            elif layer_of(target) > layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})")
    print(f"{sum(map(len, import_graph().values()))} imports between {len(import_graph())} modules checked")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph = import_graph()
    # A subpackage's __init__ re-exports its modules; it is the modules' parent, not a peer.
    edges = {m: {t for t in ts if not m.startswith(t + ".") and t in graph} for m, ts in graph.items()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(trail[trail.index(target) :] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_checker_sees_an_upward_and_a_cyclic_import(tmp_path, monkeypatch):
    """The checks above would fail on a core module importing the CLI, or on a cycle."""
    fake = tmp_path / "jaxopt_notes"
    (fake / "cli").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "cli" / "__init__.py").write_text("")
    (fake / "cli" / "plots.py").write_text("from jaxopt_notes import adam\n")
    (fake / "adam.py").write_text("def f():\n    from jaxopt_notes.cli import plots\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError, match=r"jaxopt_notes.adam \(layer 1\) imports jaxopt_notes.cli.plots"):
        test_no_import_runs_up_the_layers()
    with pytest.raises(AssertionError, match="import cycles"):
        test_no_import_cycle()


def test_importing_the_package_loads_neither_matplotlib_nor_the_cli():
    code = (
        "import sys, jaxopt_notes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' or m.startswith('jaxopt_notes.cli')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_the_figures_without_matplotlib_end_with_one_line_naming_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from jaxopt_notes.cli import main; "
        f"raise SystemExit(main(['figures', '--quick', '--out', {str(tmp_path)!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "pip install 'jaxopt-notes[cli]'" in result.stderr, result.stderr
