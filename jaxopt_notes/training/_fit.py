"""``fit``: minibatch training (notes section 1) as one compiled ``lax.scan`` per epoch.

A training loop written by hand with optax dispatches one jitted step per minibatch from
Python and slices the minibatch on the host. :func:`fit` instead keeps the data on the
device, shuffles with a host permutation uploaded as int32 indices (``jax.random.permutation``
sorts, which costs seconds at m = 5,000,000 on a CPU), gathers each minibatch by index inside
the scan, donates parameters and optimizer state, and talks to the host once per epoch.
Resident NumPy data are not copied: on a CPU, XLA reads the caller's arrays in place
(``_rows.py``), so fit's extra memory is the permutations (4 bytes per row each) and per-step
outputs; X and Y given as column views of one array (``XY[:, :d]``, ``XY[:, d]``) are
gathered as whole rows of it. A shuffled minibatch is random rows, and their memory latency,
not the arithmetic, bounds an epoch.
Memory-mapped data streams through in chunks of many minibatches instead, the next chunk
copied to the device while the current one trains.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload

import jax
import optax

from jaxopt_notes.training._compiled import compiled_epoch
from jaxopt_notes.training._config import check_config
from jaxopt_notes.training._epoch_end import (
    NonFiniteCostError,
    progress_bar,
    record_epoch,
    run_callbacks,
    show_progress,
)
from jaxopt_notes.training._history import EpochEnd, History
from jaxopt_notes.training._placement import placement
from jaxopt_notes.training._resume import resume, save_if_due
from jaxopt_notes.training._sources import EpochSource, epoch_source
from jaxopt_notes.training._state import TrainState, initial_state
from jaxopt_notes.training._validation import validation_evaluator

__all__ = ["NonFiniteCostError", "fit"]


@overload
def fit(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    optimizer: optax.GradientTransformation,
    X: Any,
    Y: Any = None,
    *,
    batch_size: int | None = None,
    epochs: int,
    seed: int = 0,
    drop_remainder: bool = False,
    beta: float = 0.9,
    callbacks: Sequence[Callable[[EpochEnd], None]] = (),
    on_nonfinite: Literal["raise", "skip"] = "raise",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    mesh: jax.sharding.Mesh | None = None,
    pack: bool | None = None,
    chunk_steps: int | None = None,
    progress: bool = True,
    model_state: None = None,
    key: jax.Array | None = None,
    validation: Any = None,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
) -> tuple[Any, History]: ...


@overload
def fit(
    loss_fn: Callable[..., Any],
    params: Any,
    optimizer: optax.GradientTransformation,
    X: Any,
    Y: Any = None,
    *,
    batch_size: int | None = None,
    epochs: int,
    seed: int = 0,
    drop_remainder: bool = False,
    beta: float = 0.9,
    callbacks: Sequence[Callable[[EpochEnd], None]] = (),
    on_nonfinite: Literal["raise", "skip"] = "raise",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    mesh: jax.sharding.Mesh | None = None,
    pack: bool | None = None,
    chunk_steps: int | None = None,
    progress: bool = True,
    model_state: Any,
    key: jax.Array | None = None,
    validation: Any = None,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
) -> tuple[Any, Any, History]: ...


def fit(
    loss_fn: Callable[..., Any],
    params: Any,
    optimizer: optax.GradientTransformation,
    X: Any,
    Y: Any = None,
    *,
    batch_size: int | None = None,
    epochs: int,
    seed: int = 0,
    drop_remainder: bool = False,
    beta: float = 0.9,
    callbacks: Sequence[Callable[[EpochEnd], None]] = (),
    on_nonfinite: Literal["raise", "skip"] = "raise",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    mesh: jax.sharding.Mesh | None = None,
    pack: bool | None = None,
    chunk_steps: int | None = None,
    progress: bool = True,
    model_state: Any = None,
    key: jax.Array | None = None,
    validation: Any = None,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
) -> tuple[Any, History] | tuple[Any, Any, History]:
    """Trains ``params`` by minibatch gradient descent with ``optimizer``, one scan per epoch.

    Every epoch draws a fresh permutation of the m examples (the same for X and Y), cuts it
    into ``m // batch_size`` minibatches plus one smaller last minibatch for the remainder
    (notes section 1), and takes one optimizer step per minibatch. ``batch_size = m`` is batch
    gradient descent (one step per epoch on all m rows, taken in order: there is nothing to
    shuffle), ``batch_size = 1`` stochastic gradient descent.

    Args:
      loss_fn: ``loss_fn(params, X_batch, Y_batch) -> scalar cost`` (``loss_fn(params,
        X_batch)`` when ``Y`` is None); jit-traceable. Pass the same function object each
        call: compiled code is cached by its identity and the optimizer's. With
        ``model_state``: ``loss_fn(params, model_state, X_batch, Y_batch) -> (cost,
        new_model_state)``; with ``key``, it also receives ``key=`` a fresh key each step.
      params: the initial parameters, a pytree of arrays; never modified.
      optimizer: any gradient transformation of this library or of optax.
      X, Y: examples along axis 0 (NumPy, JAX, or memory-mapped ``np.load(p, mmap_mode="r")``
        arrays, which stream in chunks). Y may be None. NumPy arrays are read in place, not
        copied (so do not write to them while fit runs, e.g. from a callback), unless JAX must
        convert their dtype (float64 without ``jax_enable_x64``), their rows are not
        contiguous, or one holds over 2**31 - 1 elements: such an array is copied (X and Y
        once, side by side, when both must be and share a dtype). Or X is a loader: a callable
        ``epoch -> iterable of batches`` (0-based epoch), each batch ``(x, y)`` or ``x`` of
        NumPy or JAX arrays (a grain ``DataLoader`` or ``MapDataset`` pipeline, a PyTorch
        ``DataLoader`` yielding NumPy, ``tf.data``'s ``as_numpy_iterator``, a generator),
        with Y None; the loader shuffles, and its iterator is closed if the run stops early.
      batch_size: examples per minibatch; 64 to 1024 are typical (notes section 1). None
        (and only None) with a loader, whose batches set it.
      epochs: total epochs of the run, resumed ones included.
      seed: the shuffles' seed; epoch e follows ``np.random.default_rng(SeedSequence([seed,
        e])).permutation(m)`` (the first epoch's is kept for a later call with the same m and
        seed, which then draws nothing; across processes,
        process p shuffles its own rows with ``SeedSequence([seed, e, p])``).
      drop_remainder: skip the last, smaller minibatch of each epoch.
      beta: decay of ``history.smoothed_cost``; 0.9 averages about the last 10 steps.
      callbacks: called after every epoch with an :class:`EpochEnd`; setting ``stop`` ends
        the run, assigning ``opt_state`` replaces the optimizer state.
      on_nonfinite: ``"raise"`` stops with :class:`NonFiniteCostError` (holding the last
        finite parameters) at the first NaN or infinite cost or gradient; ``"skip"`` leaves
        parameters and state unchanged on such steps and counts them in
        ``history.skipped_steps``.
      checkpoint_dir: save parameters, optimizer state, RNG position and history there every
        ``checkpoint_every`` epochs (and after the last), atomically; a later call with the
        same directory resumes from the newest good checkpoint, skipping corrupt ones.
        Across processes only process 0 writes (the directory must be shared), and every
        process waits for the write.
      mesh: shard each minibatch along the mesh's first axis (data parallel); parameters
        and resident data are replicated on its devices, a loader's chunks are sent sharded
        (each device receives its slice of every minibatch). Explicit mesh axes
        (``jax.make_mesh``'s default) are used as Auto axes.
      pack: run the step on packed parameters (:func:`~jaxopt_notes.pack`), invisibly to
        ``loss_fn``. None packs when :func:`~jaxopt_notes.should_pack` says it pays and packing
        cannot change the result: the parameters are :func:`~jaxopt_notes.packable` and the
        optimizer is an :class:`~jaxopt_notes.ElementwiseTransformation` or passes
        :func:`~jaxopt_notes.check_elementwise`. True raises a ValueError when packing would
        change the result (a per-leaf optimizer such as LAMB or adafactor, a sharded leaf).
      chunk_steps: stream the data through the device in chunks of this many minibatches
        (default for memory-mapped data: about 64 MiB per chunk; for a loader 64 batches;
        otherwise all resident). A batch of another shape runs as a chunk of its own.
      progress: show a tqdm bar (steps/s, smoothed cost, validation values); it is quiet
        when stderr is not a terminal.
      model_state: state the loss updates but the optimizer does not (BatchNorm running
        statistics, say), a pytree of arrays; carried through the scan, left unchanged by a
        skipped step, checkpointed and resumed with the rest.
      key: a JAX random key; step t of the run (counting resumed steps) gets
        ``jax.random.fold_in(key, t)`` as ``key=``, so a resumed run draws the same keys.
      validation: ``(X_val, Y_val)`` (or ``X_val``): after every epoch the loss and each metric
        over it, computed in compiled batches of at most ``batch_size`` rows and called
        without ``key=`` (a loss with dropout should turn it off when it gets no key), go into
        ``history.validation``, the progress bar and the callbacks' ``EpochEnd.validation``.
      metrics: name -> function with the loss's arguments (no key) returning a scalar mean
        over the batch, e.g. accuracy; evaluated on ``validation``.

    Across processes (``jax.process_count() > 1``, after ``jax.distributed.initialize()``):
    every process calls fit with the same arguments except X and Y, which are *its own
    rows* (the same number on every process), with ``batch_size`` the global minibatch (a
    multiple of the process count and of the mesh's first axis) and ``mesh`` over every
    process's devices. Each global minibatch joins ``batch_size / process_count`` rows of
    every process's own shuffle, so no row leaves its host (see
    :mod:`jaxopt_notes.training._processes`). Parameters, optimizer state and history come
    back the same on every process. Loaders (callable X) run in one process only.

    Returns:
      ``(params, history)``: the trained parameters and a :class:`History`; with
      ``model_state``, ``(params, model_state, history)``.

    Example:
      >>> import jax.numpy as jnp, numpy as np, jaxopt_notes as jn
      >>> X = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
      >>> Y = X @ np.array([1.0, -2.0, 0.5], np.float32)
      >>> loss = lambda p, x, y: jnp.mean((x @ p["w"] - y) ** 2)
      >>> params, history = fit(loss, {"w": jnp.zeros(3)}, jn.adam(1e-1), X, Y, batch_size=64, epochs=5, progress=False)
      >>> bool(history.epoch_cost[-1] < history.epoch_cost[0])
      True
    """
    config = check_config(
        loss_fn, optimizer, params, X, Y,
        batch_size=batch_size, epochs=epochs, seed=seed, drop_remainder=drop_remainder, beta=beta,
        on_nonfinite=on_nonfinite, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        mesh=mesh, pack=pack, chunk_steps=chunk_steps, progress=progress, model_state=model_state, key=key,
    )  # fmt: skip
    place = placement(config.mesh)
    evaluate = validation_evaluator(config, validation, metrics, place)
    state = initial_state(params, config, place, model_state, key)
    history = History(beta=config.beta)
    start_epoch = resume(config, state, history)
    run_for = functools.partial(
        compiled_epoch,
        config.loss_fn,
        config.optimizer,
        skip_nonfinite=config.on_nonfinite == "skip",
        batch_sharding=place.batch,
        packed=state.packed,
        with_model_state=config.with_model_state,
        with_key=config.with_key,
    )
    with epoch_source(X, Y, config, place, start_epoch) as source, progress_bar(config, start_epoch) as bar:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            outputs = jax.block_until_ready(_train_epoch(run_for, state, source, epoch))  # timed to the end
            per_step = record_epoch(config, epoch, outputs, time.perf_counter() - started, state, history)
            if evaluate is not None:
                history.record_validation(evaluate(state.user_params(), state.model_state))
            show_progress(bar, config, epoch, len(per_step[0]), history)
            stop = run_callbacks(callbacks, epoch, per_step, history, state, place)
            save_if_due(config, epoch + 1, state, history, stop=stop)
            if stop:
                break
    if config.with_model_state:
        return state.user_params(), state.model_state, history
    return state.user_params(), history


def _train_epoch(run_for: Callable[..., Callable], state: TrainState, source: EpochSource, epoch: int) -> list[Any]:
    """Steps through epoch ``epoch``: one call of the compiled run (for the piece's minibatch
    size) per piece the source yields, the carry updated in ``state``; returns each call's
    per-step outputs."""
    outputs = []
    with contextlib.closing(source.epoch(epoch)) as pieces:
        for batch_size, arguments in pieces:
            state.carry, out = run_for(batch_size=batch_size)(state.carry, *arguments)
            outputs.append(out)
    return outputs
