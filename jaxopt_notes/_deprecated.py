"""Names ``jaxopt_notes`` no longer holds at the top level, and what a caller gets instead.

Renamed state classes still resolve, with a :class:`DeprecationWarning` naming the new name
(the class is the same object, so ``isinstance`` checks and checkpoints keep working). The
notes' demonstrations moved to :mod:`jaxopt_notes.notes`; asking the top level for one raises
an AttributeError that says where it went.
"""

from __future__ import annotations

import warnings
from typing import Any

from jaxopt_notes._adam import ScaleByAdamState
from jaxopt_notes._averaging import EmaState
from jaxopt_notes._hyperparams import InjectStatefulHyperparamsState
from jaxopt_notes._nonfinite import ApplyIfFiniteState
from jaxopt_notes._rmsprop import ScaleByRmsState

RENAMED: dict[str, type] = {
    "AdamState": ScaleByAdamState,
    "EwaState": EmaState,
    "InjectHyperparamsState": InjectStatefulHyperparamsState,
    "RmsState": ScaleByRmsState,
    "SkipNonfiniteState": ApplyIfFiniteState,
}
"""Former name -> the class it names now (optax's class name)."""

MOVED_TO_NOTES = frozenset(
    {
        "EscapeProblem",
        "EscapeRow",
        "PointClassification",
        "classify_point",
        "escape_race",
        "hessian_extremes",
        "positive_definite_fraction",
    }
)
"""Demonstrations of the notes that the top level held before they moved to ``jaxopt_notes.notes``."""


def package_getattr(name: str) -> Any:
    """The top-level package's ``__getattr__``: resolves former names, explains moved ones."""
    if name in RENAMED:
        new = RENAMED[name]
        warnings.warn(
            f"jaxopt_notes.{name} is deprecated and will be removed: use jaxopt_notes.{new.__name__}, the same class",
            DeprecationWarning,
            stacklevel=2,
        )
        return new
    if name in MOVED_TO_NOTES:
        raise AttributeError(
            f"jaxopt_notes.{name} moved to jaxopt_notes.notes.{name} (the notes' demonstrations live in "
            "jaxopt_notes.notes): use `from jaxopt_notes.notes import " + name + "`"
        )
    raise AttributeError(f"module 'jaxopt_notes' has no attribute {name!r}")
