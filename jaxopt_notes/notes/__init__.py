"""Layer 4: the notes' demonstrations: curvature diagnostics at saddle points (section 8), the
escape race off a saddle and a plateau, the running example of the ``compare`` command and the
data behind each figure. Pure data: nothing here draws."""

from jaxopt_notes.notes._diagnostics import (
    PointClassification,
    classify_point,
    decay_rate_per_dimension,
    hessian_extremes,
    positive_definite_fraction,
)
from jaxopt_notes.notes._escape import PLATEAU, SADDLE, EscapeProblem, EscapeRow, escape_race

__all__ = [
    # Curvature at a point (section 8)
    "PointClassification",
    "classify_point",
    "decay_rate_per_dimension",
    "hessian_extremes",
    "positive_definite_fraction",
    # The escape race off a saddle and a plateau
    "EscapeProblem",
    "EscapeRow",
    "PLATEAU",
    "SADDLE",
    "escape_race",
]
