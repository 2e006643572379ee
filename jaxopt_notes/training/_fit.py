"""``fit``: minibatch training (notes section 1) as one compiled ``lax.scan`` per epoch.

A training loop written by hand with optax dispatches one jitted step per minibatch from
Python and slices the minibatch on the host. :func:`fit` instead keeps the data on the
device, shuffles with a host permutation uploaded as int32 indices (``jax.random.permutation``
sorts, which costs seconds at m = 5,000,000 on a CPU), gathers each minibatch by index inside
the scan, donates parameters and optimizer state, and talks to the host once per epoch.
Resident NumPy data are not copied: on a CPU, XLA reads the caller's arrays in place
(``_rows.py``), whatever their dtype, strides or size, so fit's extra memory is the
permutations (4 bytes per row each) and per-step outputs; X and Y given as column views of one
array (``XY[:, :d]``, ``XY[:, d]``) are gathered as whole rows of it. An epoch's permutation
reaches the device in pieces as it is drawn, so the epoch starts on its first rows. A
shuffled minibatch is random rows, and their memory latency, not the arithmetic, bounds an
epoch.
Memory-mapped data streams through in chunks of many minibatches instead, the next chunk
copied to the device while the current one trains.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import jax
import optax

from jaxopt_notes.training._chunks import Chunk
from jaxopt_notes.training._compiled import StepValues, compiled_epoch
from jaxopt_notes.training._epoch_end import progress_bar, record_epoch, run_callbacks, show_progress
from jaxopt_notes.training._history import History
from jaxopt_notes.training._models import trainable
from jaxopt_notes.training._options import FitOptions, takes_options
from jaxopt_notes.training._placement import placement
from jaxopt_notes.training._result import FitResult
from jaxopt_notes.training._resume import resume, save_if_due
from jaxopt_notes.training._run import check_run
from jaxopt_notes.training._sources import EpochSource, epoch_source
from jaxopt_notes.training._state import TrainState, initial_state
from jaxopt_notes.training._validation import validation_evaluator

__all__ = ["fit"]


@takes_options(FitOptions)
def fit(
    loss_fn: Callable[..., Any],
    params: Any,
    optimizer: optax.GradientTransformation,
    X: Any,
    Y: Any = None,
    **options: Any,
) -> FitResult:
    """Trains ``params`` by minibatch gradient descent with ``optimizer``, one scan per epoch.

    Every epoch draws a fresh permutation of the m examples (the same for X and Y), cuts it
    into ``m // batch_size`` minibatches plus one smaller last minibatch for the remainder
    (notes section 1), and takes one optimizer step per minibatch. ``batch_size = m`` is batch
    gradient descent (one step per epoch on all m rows, taken in order: there is nothing to
    shuffle), ``batch_size = 1`` stochastic gradient descent.

    Args:
      loss_fn: ``loss_fn(params, X_batch, Y_batch) -> scalar cost`` (``loss_fn(params,
        X_batch)`` when ``Y`` is None); jit-traceable. Pass the same function object each
        call: compiled code is cached by it and by the optimizer (this library's optimizers
        compare equal when built with the same hyperparameters, so ``jn.adam(1e-2)`` written
        in each call compiles once). With ``model_state``: ``loss_fn(params, model_state,
        X_batch, Y_batch) -> (cost, new_model_state)``; with ``key``, it also receives
        ``key=`` a fresh key each step. With a flax.nnx or equinox model as ``params``:
        ``loss_fn(model, X_batch, Y_batch)`` (equinox with ``model_state``: ``loss_fn(model,
        state, X_batch, Y_batch) -> (cost, new_state)``).
      params: the initial parameters, a pytree of floating-point arrays; or a flax.nnx
        ``Module``, whose ``nnx.Param`` variables are trained and whose other variables
        (BatchNorm statistics, RNG state) are carried as model state; or equinox modules,
        whose inexact arrays are trained and whose other fields are kept. Never modified.
      optimizer: any gradient transformation of this library or of optax.
      X, Y: examples along axis 0 (NumPy, JAX, or memory-mapped ``np.load(p, mmap_mode="r")``
        arrays, which stream in chunks). Y may be None. NumPy arrays are read in place, never
        copied, whatever their dtype, strides or size (so do not write to them while fit runs,
        e.g. from a callback): a dtype JAX would convert (float64 or int64 without
        ``jax_enable_x64``) is converted one minibatch at a time, exactly as JAX converts a
        whole array; rows that are not contiguous are gathered element by element; more than
        2**31 - 1 elements are read in blocks. Only other inputs (lists, say), string, object
        and float8 arrays, ``as_strided`` views and column-major arrays of over 2**31
        elements are copied. Or X is a loader: a callable
        ``epoch -> iterable of batches`` (0-based epoch), each batch ``(x, y)`` or ``x`` of
        NumPy or JAX arrays (a grain ``DataLoader`` or ``MapDataset`` pipeline, a PyTorch
        ``DataLoader`` yielding NumPy, ``tf.data``'s ``as_numpy_iterator``, a generator),
        with Y None; the loader shuffles, and its iterator is closed if the run stops early.

    Keyword Args:
      {options}

    Across processes (``jax.process_count() > 1``, after ``jax.distributed.initialize()``):
    every process calls fit with the same arguments except X and Y, which are *its own
    rows* (the same number on every process), with ``batch_size`` the global minibatch (a
    multiple of the process count and of the mesh's first axis) and ``mesh`` over every
    process's devices. Each global minibatch joins ``batch_size / process_count`` rows of
    every process's own shuffle, so no row leaves its host (see
    :mod:`jaxopt_notes.training._processes`). Parameters, optimizer state and history come
    back the same on every process. Loaders (callable X) run in one process only.

    Returns:
      A :class:`~jaxopt_notes.FitResult`: ``.params`` (the trained parameters, or the trained
      model), ``.history`` (a :class:`~jaxopt_notes.History`) and ``.model_state``; it
      unpacks as ``(params, history)``, or ``(params, model_state, history)`` with
      ``model_state``.

    Raises:
      TypeError, ValueError: a bad argument or option, named with its value and the form it
        must take (before anything is compiled), or a loss whose output is not a scalar cost
        (when the step is first traced).
      NonFiniteCostError: a NaN or infinite cost or gradient with ``on_nonfinite="raise"``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> X = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
      >>> Y = X @ np.array([1.0, -2.0, 0.5], np.float32)
      >>> loss = lambda p, x, y: jnp.mean((x @ p["w"] - y) ** 2)
      >>> result = fit(loss, {"w": jnp.zeros(3)}, jn.adam(1e-1), X, Y, batch_size=64, epochs=5, progress=False)
      >>> bool(result.history.epoch_cost[-1] < result.history.epoch_cost[0])
      True
    """
    checked = FitOptions.of_call(options)
    trained = trainable(loss_fn, params, checked.model_state, checked.metrics)
    run = check_run(trained.loss, optimizer, X, Y, checked)
    place = placement(checked.mesh)
    evaluate = validation_evaluator(run, trained, place)
    history = History(beta=checked.beta)
    state, start_epoch = resume(run, initial_state(trained, optimizer, checked.pack, place, checked.key), history)
    run_chunk = compiled_epoch(run.loss_fn, optimizer, checked.compiled())
    with epoch_source(X, Y, run, place, start_epoch) as source, progress_bar(run, start_epoch) as bar:
        for epoch in range(start_epoch, checked.epochs):
            started = time.perf_counter()
            state, outputs = _train_epoch(run_chunk, state, source, epoch)
            jax.block_until_ready(outputs)  # timed to the end
            per_step = record_epoch(run, epoch, outputs, time.perf_counter() - started, state, trained, history)
            if evaluate is not None:
                history.record_validation(evaluate(state.user_params(), state.model_state))
            show_progress(bar, checked.epochs, epoch, len(per_step.cost), history)
            state, stop = run_callbacks(checked.callbacks, epoch, per_step, history, state, trained, place)
            save_if_due(run, epoch + 1, state, history, stop=stop)
            if stop:
                break
    params, model_state = trained.given_back(state.user_params(), state.model_state)
    return FitResult(params, history, model_state)


def _train_epoch(
    run_chunk: Callable[[TrainState, Chunk], tuple[TrainState, StepValues]],
    state: TrainState,
    source: EpochSource,
    epoch: int,
) -> tuple[TrainState, list[StepValues]]:
    """Steps through epoch ``epoch``: one call of the compiled run per chunk the source yields;
    returns the state after it and each call's per-step values."""
    outputs = []
    with contextlib.closing(source.epoch(epoch)) as chunks:
        for chunk in chunks:
            state, out = run_chunk(state, chunk)
            outputs.append(out)
    return state, outputs
