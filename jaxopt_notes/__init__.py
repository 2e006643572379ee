"""jaxopt_notes: the study notes' training speed-ups as composable JAX gradient transformations."""

from jaxopt_notes.adam import AdamState, adam, scale_by_adam
from jaxopt_notes.averaging import BiasCorrectionState, EwaState, bias_correction, ewa
from jaxopt_notes.base import EmptyState, GradientTransformation, apply_updates, chain
from jaxopt_notes.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from jaxopt_notes.history import EpochEnd, History, smooth
from jaxopt_notes.momentum import momentum, trace
from jaxopt_notes.nonfinite import SkipNonfiniteState, all_finite, skip_nonfinite, skipped_steps
from jaxopt_notes.rmsprop import RmsState, rmsprop, scale_by_rms
from jaxopt_notes.sgd import ScaleByLearningRateState, learning_rate_in_use, scale, scale_by_learning_rate, sgd
from jaxopt_notes.training import NonFiniteCostError, fit

__version__ = "0.1.0"

__all__ = [
    "AdamState",
    "BiasCorrectionState",
    "CheckpointError",
    "EmptyState",
    "EpochEnd",
    "EwaState",
    "GradientTransformation",
    "History",
    "NonFiniteCostError",
    "RmsState",
    "ScaleByLearningRateState",
    "SkipNonfiniteState",
    "adam",
    "all_finite",
    "apply_updates",
    "bias_correction",
    "chain",
    "ewa",
    "fit",
    "latest_checkpoint",
    "learning_rate_in_use",
    "load_checkpoint",
    "momentum",
    "rmsprop",
    "save_checkpoint",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "sgd",
    "skip_nonfinite",
    "skipped_steps",
    "smooth",
    "trace",
    "verify_checkpoint",
]
