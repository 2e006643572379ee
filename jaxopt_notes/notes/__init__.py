"""Layer 4: the notes' demonstrations: curvature diagnostics at saddle points (section 8), the
escape race off a saddle and a plateau, the running example of the ``compare`` command and the
data behind each figure. Pure data: nothing here draws."""

from jaxopt_notes.notes.diagnostics import (
    PointClassification,
    classify_point,
    hessian_extremes,
    positive_definite_fraction,
)
from jaxopt_notes.notes.escape import EscapeProblem, EscapeRow, escape_race

__all__ = [
    "EscapeProblem",
    "EscapeRow",
    "PointClassification",
    "classify_point",
    "escape_race",
    "hessian_extremes",
    "positive_definite_fraction",
]
