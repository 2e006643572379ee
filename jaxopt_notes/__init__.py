"""jaxopt_notes: the study notes' training speed-ups as composable JAX gradient transformations."""

from jaxopt_notes._numerics import all_finite
from jaxopt_notes.adam import AdamState, ScaleByAdamState, adam, adamw, scale_by_adam
from jaxopt_notes.averaging import BiasCorrectionState, EmaState, EwaState, bias_correction, ewa
from jaxopt_notes.base import (
    ElementwiseTransformation,
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
)
from jaxopt_notes.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from jaxopt_notes.data.batches import (
    BatchSizeSuggestion,
    Minibatches,
    minibatches,
    random_mini_batches,
    steps_per_epoch,
    suggest_batch_size,
)
from jaxopt_notes.data.loaders import batch_chunks
from jaxopt_notes.data.prefetch import Prefetcher, prefetch_to_device
from jaxopt_notes.hyperparams import (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    WrappedScheduleState,
    inject_hyperparams,
    set_hyperparams,
)
from jaxopt_notes.learning_rate import (
    ScaleByLearningRateState,
    ScaleByScheduleState,
    learning_rate_in_use,
    scale,
    scale_by_learning_rate,
)
from jaxopt_notes.momentum import TraceState, momentum, trace
from jaxopt_notes.nonfinite import ApplyIfFiniteState, SkipNonfiniteState, skip_nonfinite, skipped_steps
from jaxopt_notes.notes.diagnostics import (
    PointClassification,
    classify_point,
    hessian_extremes,
    positive_definite_fraction,
)
from jaxopt_notes.notes.escape import EscapeProblem, EscapeRow, escape_race
from jaxopt_notes.pack_policy import check_elementwise, should_pack
from jaxopt_notes.packing import Layout, Packed, pack, packable, unpack
from jaxopt_notes.rmsprop import (
    RmsState,
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    rmsprop,
    scale_by_rms,
)
from jaxopt_notes.schedules import (
    exponential_decay,
    inverse_sqrt_decay,
    inverse_time_decay,
    piecewise_constant,
    staircase_decay,
)
from jaxopt_notes.sgd import sgd
from jaxopt_notes.sharding import init_sharded, state_shardings
from jaxopt_notes.training.early_stopping import EarlyStopping
from jaxopt_notes.training.fit import NonFiniteCostError, fit
from jaxopt_notes.training.history import EpochEnd, History, smooth
from jaxopt_notes.training.plateaus import PlateauMonitor, ReduceLROnPlateau, find_plateaus
from jaxopt_notes.training.validation import evaluator
from jaxopt_notes.weight_decay import MaskedState, add_decayed_weights

__version__ = "0.1.0"

__all__ = [
    "ApplyIfFiniteState",
    "AdamState",
    "BatchSizeSuggestion",
    "BiasCorrectionState",
    "CheckpointError",
    "ElementwiseTransformation",
    "EmaState",
    "EmptyState",
    "EarlyStopping",
    "EpochEnd",
    "EscapeProblem",
    "EscapeRow",
    "EwaState",
    "GradientTransformation",
    "History",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "Layout",
    "MaskedState",
    "Minibatches",
    "NonFiniteCostError",
    "Packed",
    "PlateauMonitor",
    "PointClassification",
    "Prefetcher",
    "ReduceLROnPlateau",
    "RmsState",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByScheduleState",
    "SkipNonfiniteState",
    "TraceState",
    "WrappedScheduleState",
    "adam",
    "adamw",
    "add_decayed_weights",
    "all_finite",
    "apply_updates",
    "batch_chunks",
    "bias_correction",
    "chain",
    "check_elementwise",
    "classify_point",
    "escape_race",
    "evaluator",
    "ewa",
    "exponential_decay",
    "find_plateaus",
    "fit",
    "hessian_extremes",
    "identity",
    "init_sharded",
    "inject_hyperparams",
    "inverse_sqrt_decay",
    "inverse_time_decay",
    "latest_checkpoint",
    "learning_rate_in_use",
    "load_checkpoint",
    "minibatches",
    "momentum",
    "pack",
    "packable",
    "piecewise_constant",
    "positive_definite_fraction",
    "prefetch_to_device",
    "random_mini_batches",
    "rmsprop",
    "save_checkpoint",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "set_hyperparams",
    "sgd",
    "should_pack",
    "skip_nonfinite",
    "skipped_steps",
    "smooth",
    "staircase_decay",
    "state_shardings",
    "steps_per_epoch",
    "suggest_batch_size",
    "trace",
    "unpack",
    "verify_checkpoint",
]
