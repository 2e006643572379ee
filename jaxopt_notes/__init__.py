"""jaxopt_notes: the study notes' training speed-ups as composable JAX gradient transformations.

The top level holds the library: gradient transformations and their states, schedules and
hyperparameter injection, data, ``fit`` and its callbacks, checkpoints, packing and sharding.
The notes' demonstrations are in :mod:`jaxopt_notes.notes`, the reference-equivalence tools in
:mod:`jaxopt_notes.testing`.
"""

from jaxopt_notes import keras as keras  # the Keras ports, reachable as jn.keras without another import
from jaxopt_notes import torch as torch  # the PyTorch ports, reachable as jn.torch without another import
from jaxopt_notes._adam import ScaleByAdamState, adam, adamw, scale_by_adam
from jaxopt_notes._averaging import BiasCorrectionState, EmaState, bias_correction, ewa
from jaxopt_notes._base import (
    ElementwiseTransformation,
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
)
from jaxopt_notes._checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from jaxopt_notes._deprecated import package_getattr as __getattr__  # noqa: F401  (former names)
from jaxopt_notes._hyperparams import (
    InjectStatefulHyperparamsState,
    WrappedScheduleState,
    inject_hyperparams,
    set_hyperparams,
)
from jaxopt_notes._learning_rate import (
    ScaleByLearningRateState,
    ScaleByScheduleState,
    learning_rate_in_use,
    scale,
    scale_by_learning_rate,
)
from jaxopt_notes._momentum import TraceState, momentum, trace
from jaxopt_notes._nonfinite import ApplyIfFiniteState, skip_nonfinite, skipped_steps
from jaxopt_notes._numerics import all_finite
from jaxopt_notes._pack_policy import check_elementwise, should_pack
from jaxopt_notes._packing import Layout, Packed, pack, packable, unpack
from jaxopt_notes._rmsprop import (
    ScaleByRmsState,
    ScaleByRmsWithCountState,
    ScaleByRStdDevState,
    ScaleByRStdDevWithCountState,
    rmsprop,
    scale_by_rms,
)
from jaxopt_notes._sgd import sgd
from jaxopt_notes._sharding import init_sharded, state_shardings
from jaxopt_notes._weight_decay import MaskedState, add_decayed_weights
from jaxopt_notes.data import (
    BatchSizeSuggestion,
    Minibatches,
    Prefetcher,
    batch_chunks,
    minibatches,
    prefetch_to_device,
    random_mini_batches,
    steps_per_epoch,
    suggest_batch_size,
)
from jaxopt_notes.schedules import (
    exponential_decay,
    inverse_sqrt_decay,
    inverse_time_decay,
    piecewise_constant,
    staircase_decay,
)
from jaxopt_notes.training import (
    EarlyStopping,
    EpochEnd,
    FitOptions,
    FitResult,
    History,
    NonFiniteCostError,
    PlateauMonitor,
    ReduceLROnPlateau,
    evaluator,
    find_plateaus,
    fit,
    smooth,
)

__version__ = "0.1.0"

# Grouped as the API reference groups them; sorted within each group.
__all__ = [
    # Gradient transformations: the type, composing, applying
    "ElementwiseTransformation",
    "EmptyState",
    "GradientTransformation",
    "apply_updates",
    "chain",
    "identity",
    # Optimizers of the notes (sections 4-6)
    "adam",
    "adamw",
    "momentum",
    "rmsprop",
    "sgd",
    # Building blocks: averages (sections 2-3), moments, scaling, weight decay
    "add_decayed_weights",
    "bias_correction",
    "ewa",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "trace",
    # Optimizer states (optax's class and field names)
    "ApplyIfFiniteState",
    "BiasCorrectionState",
    "EmaState",
    "InjectStatefulHyperparamsState",
    "MaskedState",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "ScaleByRStdDevState",
    "ScaleByRStdDevWithCountState",
    "ScaleByRmsState",
    "ScaleByRmsWithCountState",
    "ScaleByScheduleState",
    "TraceState",
    "WrappedScheduleState",
    # Learning-rate decay (section 7) and hyperparameters changed mid-run
    "exponential_decay",
    "inject_hyperparams",
    "inverse_sqrt_decay",
    "inverse_time_decay",
    "learning_rate_in_use",
    "piecewise_constant",
    "set_hyperparams",
    "staircase_decay",
    # Robustness: non-finite steps
    "all_finite",
    "skip_nonfinite",
    "skipped_steps",
    # Minibatches over large data sets (section 1)
    "BatchSizeSuggestion",
    "Minibatches",
    "Prefetcher",
    "batch_chunks",
    "minibatches",
    "prefetch_to_device",
    "random_mini_batches",
    "steps_per_epoch",
    "suggest_batch_size",
    # Training with fit, and its callbacks
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
    # Checkpoints
    "CheckpointError",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
    # Packed parameters and sharded state
    "Layout",
    "Packed",
    "check_elementwise",
    "init_sharded",
    "pack",
    "packable",
    "should_pack",
    "state_shardings",
    "unpack",
]
