"""Layer 3: the compiled training loop :func:`fit`, its options and result, its history and
callbacks (the plateau monitor, learning-rate reduction). Imports the core, data and
checkpoint layers."""

from jaxopt_notes.training._early_stopping import EarlyStopping
from jaxopt_notes.training._epoch_end import NonFiniteCostError
from jaxopt_notes.training._fit import fit
from jaxopt_notes.training._history import EpochEnd, History, smooth
from jaxopt_notes.training._options import FitOptions
from jaxopt_notes.training._plateaus import PlateauMonitor, ReduceLROnPlateau, find_plateaus
from jaxopt_notes.training._result import FitResult
from jaxopt_notes.training._validation import evaluator

__all__ = [
    "EarlyStopping",
    "EpochEnd",
    "FitOptions",
    "FitResult",
    "History",
    "NonFiniteCostError",
    "PlateauMonitor",
    "ReduceLROnPlateau",
    "evaluator",
    "find_plateaus",
    "fit",
    "smooth",
]
