"""The package's public face: the documented import paths give what they promise, every other
module is private (its name starts with an underscore), no public name is a module that a
function of the same name shadows, and former names warn or say where they went."""

from __future__ import annotations

import importlib
import inspect
import re
import types
import warnings
from pathlib import Path

import pytest

import jaxopt_notes as jn
from jaxopt_notes import notes

PACKAGE = Path(jn.__file__).parent

PUBLIC_MODULES = [
    "jaxopt_notes",
    "jaxopt_notes.cli",
    "jaxopt_notes.data",
    "jaxopt_notes.keras",
    "jaxopt_notes.notes",
    "jaxopt_notes.schedules",
    "jaxopt_notes.testing",
    "jaxopt_notes.testing.strategies",
    "jaxopt_notes.torch",
    "jaxopt_notes.training",
]
"""Every documented public import path: the package, its public subpackages and modules."""


def module_files() -> list[str]:
    """Dotted names of the package's modules, from its files."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_path_imports_as_a_module_and_holds_its_all(name):
    module = importlib.import_module(name)
    assert isinstance(module, types.ModuleType)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    for public in exported:
        value = getattr(module, public)
        assert not isinstance(value, types.ModuleType) or public == "strategies", f"{name}.{public} is a module"


def test_every_module_outside_the_public_paths_is_private():
    public = set(PUBLIC_MODULES) | {"jaxopt_notes.__main__"}
    for name in module_files():
        if name in public:
            continue
        assert any(part.startswith("_") for part in name.split(".")[1:]), (
            f"{name} is neither a documented public path nor private: rename it _{name.rsplit('.', 1)[1]}"
        )


@pytest.mark.parametrize("name", ["adam", "momentum", "rmsprop", "sgd", "fit", "training.fit"])
def test_a_function_never_shadows_a_module_of_its_name(name):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"jaxopt_notes.{name}")
    assert callable(getattr(jn, name.rsplit(".", 1)[-1]))


def test_top_level_names_are_the_library_and_the_subpackages_agree_with_it():
    """Each name the top level shares with a subpackage is the same object there."""
    for subpackage in ("data", "training"):
        module = importlib.import_module(f"jaxopt_notes.{subpackage}")
        for name in module.__all__:
            assert getattr(jn, name) is getattr(module, name), name
    for name in jn.__all__:
        defined_in = getattr(getattr(jn, name), "__module__", "") or ""
        assert not defined_in.startswith("jaxopt_notes.notes"), f"the demonstration {name} sits at the top level"


def all_groups(init: Path) -> list[list[str]]:
    """``__all__``'s names in the groups its comments start, as written in the source."""
    block = init.read_text().split("__all__ = [", 1)[1].split("]", 1)[0]
    groups: list[list[str]] = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("#"):
            groups.append([])
        elif line:
            assert groups, f"{init}: __all__ must open with a group comment"
            groups[-1].append(re.fullmatch(r'"(\w+)",', line).group(1))
    return groups


@pytest.mark.parametrize("name", ["jaxopt_notes", "jaxopt_notes.keras", "jaxopt_notes.notes", "jaxopt_notes.torch"])
def test_all_is_grouped_and_sorted_within_each_group(name):
    module = importlib.import_module(name)
    groups = all_groups(Path(inspect.getfile(module)))
    assert len(groups) > 1
    assert [n for group in groups for n in group] == module.__all__
    for group in groups:
        assert group == sorted(group), group


FORMER = {
    "AdamState": "ScaleByAdamState",
    "EwaState": "EmaState",
    "InjectHyperparamsState": "InjectStatefulHyperparamsState",
    "RmsState": "ScaleByRmsState",
    "SkipNonfiniteState": "ApplyIfFiniteState",
}


@pytest.mark.parametrize("old, new", FORMER.items())
def test_a_former_name_warns_and_names_the_new_one(old, new):
    with pytest.warns(DeprecationWarning, match=f"jaxopt_notes.{old} is deprecated.*jaxopt_notes.{new}"):
        value = getattr(jn, old)
    assert value is getattr(jn, new)
    assert old not in jn.__all__


@pytest.mark.parametrize(
    "name", ["escape_race", "classify_point", "hessian_extremes", "positive_definite_fraction", "EscapeRow"]
)
def test_a_demonstration_asked_of_the_top_level_says_where_it_moved(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match=f"moved to jaxopt_notes.notes.{name}"):
            getattr(jn, name)
    assert getattr(notes, name) is not None


def test_an_unknown_name_is_a_plain_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        jn.nope  # noqa: B018
