"""The API reference's generator and its coverage check (``docs/_ext/api_reference.py``), without
building the site: it reads the one list of public modules the package's tests use, writes an
entry for every name of every ``__all__``, and its check fails on a name without an entry, a
docstring or an example."""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
api_reference = pytest.importorskip("api_reference", reason="the docs extra (sphinx) is not installed")

from tests.test_public_api import PUBLIC_MODULES  # noqa: E402


def test_the_reference_reads_the_list_the_tests_hold_the_package_to():
    assert api_reference.public_modules() == PUBLIC_MODULES


def entries_in(page: str, module: str) -> set[str]:
    """The full names a generated page describes, read from its directives."""
    found = {f"{m}" for m in re.findall(r"^\.\. auto(?:function|class|exception):: (\S+)", page, re.M)}
    for kind_name, owner in re.findall(r"^\.\. py:\w+:: (\w+)\n   :module: (\S+)", page, re.M):
        found.add(f"{owner}.{kind_name}")
    found.update(f"{module}.{name}" for name in re.findall(r"^\* ``(\w+)``: the module", page, re.M))
    return found


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_name_of_every_all_gets_an_entry_on_its_page(module_name):
    reference = api_reference.build_reference(PUBLIC_MODULES)
    page = api_reference.module_page(reference, module_name)
    described = entries_in(page, module_name)
    module = importlib.import_module(module_name)
    for name in module.__all__:
        value = getattr(module, name)
        own = f"{module_name}.{name}"
        if own in described:
            continue
        # Described once elsewhere: this page's entry must be the pointer, and the owner's page
        # must describe the same object.
        owner = next(e for e in reference.entries if e.module == module_name and e.name == name).owner
        assert owner != module_name, f"{own} has no entry"
        owner_page = api_reference.module_page(reference, owner)
        assert f"{owner}.{name}" in entries_in(owner_page, owner), f"{own}: {owner} does not describe it"
        assert getattr(importlib.import_module(owner), name) is value


class Recorder:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def info(self, message: str) -> None:
        pass


def run_check(monkeypatch, tmp_path, objects: dict[str, object], reference) -> list[str]:
    recorder = Recorder()
    monkeypatch.setattr(api_reference, "logger", recorder)
    app = types.SimpleNamespace(jaxopt_api_reference=reference, outdir=str(tmp_path))
    env = types.SimpleNamespace(get_domain=lambda name: types.SimpleNamespace(objects=objects))
    api_reference.check_coverage(app, env)
    return recorder.warnings


def full_objects(reference) -> dict[str, object]:
    objects: dict[str, object] = {}
    for entry in reference.entries:
        value = getattr(importlib.import_module(entry.module), entry.name)
        objects[value.__name__ if entry.kind == "module" else f"{entry.module}.{entry.name}"] = object()
    return objects


def test_the_coverage_check_passes_the_package_as_it_is(monkeypatch, tmp_path):
    reference = api_reference.build_reference(PUBLIC_MODULES)
    api_reference.attach_uses(reference)
    assert run_check(monkeypatch, tmp_path, full_objects(reference), reference) == []
    assert (tmp_path / "api-coverage.json").is_file()


def test_the_coverage_check_fails_on_a_name_without_an_entry(monkeypatch, tmp_path):
    reference = api_reference.build_reference(PUBLIC_MODULES)
    api_reference.attach_uses(reference)
    objects = full_objects(reference)
    del objects["jaxopt_notes.adam"]
    warnings = run_check(monkeypatch, tmp_path, objects, reference)
    assert warnings == ["api_reference: the public name jaxopt_notes.adam has no entry in the API reference"]


def test_the_coverage_check_fails_on_a_name_without_any_example(monkeypatch, tmp_path):
    reference = api_reference.build_reference(PUBLIC_MODULES)  # no page uses attached
    entry = next(e for e in reference.entries if e.module == "jaxopt_notes" and e.name == "EmptyState")
    assert not entry.has_example
    warnings = run_check(monkeypatch, tmp_path, full_objects(reference), reference)
    assert any("jaxopt_notes.EmptyState has no runnable example" in w for w in warnings)


def test_a_page_s_own_imports_name_modules_too():
    aliases = api_reference.page_aliases(
        "import jaxopt_notes.torch as jt\n"
        "from jaxopt_notes import keras as jk, fit\n"
        "from jaxopt_notes.testing import (assert_equivalent,\n    NotEquivalentError)\n"
    )
    assert aliases["jt"] == "jaxopt_notes.torch" and aliases["jk"] == "jaxopt_notes.keras"
    assert aliases["fit"] == "jaxopt_notes.fit"
    assert aliases["NotEquivalentError"] == "jaxopt_notes.testing.NotEquivalentError"


def test_docstring_mathematics_becomes_restructuredtext_math():
    docstring_math = importlib.import_module("docstring_math")
    lines = [
        "At step $t$, with ``$HOME`` untouched and $g_t$ the gradient:",
        "",
        "    $$",
        "    m_t = \\beta m_{t-1}",
        "        + (1 - \\beta) g_t",
        "    $$",
        "",
        "A price of 5$ stays.",
    ]
    assert docstring_math.rst_math(lines) == [
        "At step :math:`t`, with ``$HOME`` untouched and :math:`g_t` the gradient:",
        "",
        "    .. math::",
        "",
        "       m_t = \\beta m_{t-1}",
        "           + (1 - \\beta) g_t",
        "",
        "",
        "A price of 5$ stays.",
    ]
