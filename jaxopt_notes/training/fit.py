"""``fit``: minibatch training (notes section 1) as one compiled ``lax.scan`` per epoch.

A training loop written by hand with optax dispatches one jitted step per minibatch from
Python and slices the minibatch on the host. :func:`fit` instead keeps the data on the
device, shuffles with a host permutation uploaded as int32 indices (``jax.random.permutation``
sorts, which costs seconds at m = 5,000,000 on a CPU), gathers each minibatch by index inside
the scan, donates parameters and optimizer state, and talks to the host once per epoch.
When X and Y share a dtype their rows are stored side by side in one array, so each
minibatch is one gather of whole rows (on a CPU, from 2 MiB-aligned huge pages); a shuffled
minibatch is random rows, and their memory latency, not the arithmetic, bounds an epoch.
Memory-mapped data streams through in chunks of many minibatches instead, the next chunk
copied to the device while the current one trains.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxopt_notes import _checks, packing
from jaxopt_notes.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, verify_checkpoint
from jaxopt_notes.data import batches as data
from jaxopt_notes.data.prefetch import prefetch_to_device
from jaxopt_notes.training._compiled import compiled_epoch, join_rows
from jaxopt_notes.training.history import EpochEnd, History

_CHUNK_BYTES = 64 * 2**20
"""Streamed (memory-mapped) data moves to the device in chunks of about this many bytes."""


class NonFiniteCostError(FloatingPointError):
    """A step produced a NaN or infinite cost or gradient and fit stopped.

    Attributes:
      epoch: the epoch of the bad step (1-based).
      step: its position in that epoch (1-based); ``global_step`` counts from the run's start.
      params, opt_state: the last finite parameters and optimizer state, from just before it.
      history: the run's history up to the step before it.
    """

    def __init__(self, epoch: int, step: int, global_step: int, params: Any, opt_state: Any, history: History):
        super().__init__(
            f"fit: non-finite cost or gradient at epoch {epoch}, step {step} (step {global_step} of the run); "
            "the last finite parameters are in this error's .params; pass on_nonfinite='skip' to skip such steps"
        )
        self.epoch, self.step, self.global_step = epoch, step, global_step
        self.params, self.opt_state, self.history = params, opt_state, history


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"fit: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _epoch_seed(seed: int, epoch: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, epoch])


def _orders(m: int, batch_size: int, seed: int, epochs: range, drop_remainder: bool) -> Iterator[tuple]:
    """Each epoch's shuffle as ``(order (steps, batch), rest)`` int32 arrays; the next epoch's
    permutation is drawn on a host thread while the current epoch trains. Batch gradient
    descent (one minibatch of all m rows) has nothing to shuffle: its rows stay in order."""
    steps = m // batch_size

    def draw(epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
        if batch_size >= m:
            perm = np.arange(m, dtype=np.int32)
        else:
            perm = np.random.default_rng(_epoch_seed(seed, epoch)).permutation(m).astype(np.int32)
        rest = None if drop_remainder or steps * batch_size == m else perm[steps * batch_size :]
        return perm[: steps * batch_size].reshape(steps, batch_size), rest

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(draw, epochs[0]) if epochs else None
        for epoch in epochs:
            order = pending.result()
            pending = pool.submit(draw, epoch + 1) if epoch + 1 < epochs.stop else None
            yield order


def _resident(X: Any, Y: Any, sharding) -> tuple[Any, Any, Any]:
    """The data on the device as ``(X, Y, layout)``: X's and Y's rows joined into X when they
    share a dtype, ``layout`` saying how to split them (``_compiled.join_rows``), else as given."""
    joined = None if Y is None else join_rows(X, Y)
    layout = None
    if joined is not None:
        (X, layout), Y = joined, None
    X, Y = jax.device_put((X, Y), sharding, may_alias=True)
    return X, Y, layout


def _chunks(X, Y, batch_size: int, seed: int, epoch: int, chunk_steps: int, drop_remainder: bool, sharding):
    """A streamed epoch: shuffled chunks of ``chunk_steps`` minibatches, prefetched to the device
    by a background thread (see :mod:`jaxopt_notes.data` for how a memmap is shuffled)."""
    chunks = data.minibatches(X, Y, batch_size=chunk_steps * batch_size, seed=_chunk_seed(seed, epoch))

    def cut(chunk):
        x, y = chunk if Y is not None else (chunk, None)
        keep = len(x) - len(x) % batch_size if drop_remainder else len(x)
        return (x[:keep], None if y is None else y[:keep])

    return prefetch_to_device((cut(c) for c in chunks), size=2, sharding=sharding)


def _chunk_seed(seed: int, epoch: int) -> int:
    return int(_epoch_seed(seed, epoch).generate_state(1)[0])


def _copy(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: jnp.array(leaf, copy=True), tree)


def fit(
    loss_fn: Callable[..., jax.Array],
    params: Any,
    optimizer: optax.GradientTransformation,
    X: Any,
    Y: Any = None,
    *,
    batch_size: int,
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
) -> tuple[Any, History]:
    """Trains ``params`` by minibatch gradient descent with ``optimizer``, one scan per epoch.

    Every epoch draws a fresh permutation of the m examples (the same for X and Y), cuts it
    into ``m // batch_size`` minibatches plus one smaller last minibatch for the remainder
    (notes section 1), and takes one optimizer step per minibatch. ``batch_size = m`` is batch
    gradient descent (one step per epoch on all m rows, taken in order: there is nothing to
    shuffle), ``batch_size = 1`` stochastic gradient descent.

    Args:
      loss_fn: ``loss_fn(params, X_batch, Y_batch) -> scalar cost`` (``loss_fn(params,
        X_batch)`` when ``Y`` is None); jit-traceable. Pass the same function object each
        call: compiled code is cached by its identity and the optimizer's.
      params: the initial parameters, a pytree of arrays; never modified.
      optimizer: any gradient transformation of this library or of optax.
      X, Y: examples along axis 0 (NumPy, JAX, or memory-mapped ``np.load(p, mmap_mode="r")``
        arrays, which stream in chunks). Y may be None.
      batch_size: examples per minibatch; 64 to 1024 are typical (notes section 1).
      epochs: total epochs of the run, resumed ones included.
      seed: the shuffles' seed; epoch e uses ``SeedSequence([seed, e])``.
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
      mesh: shard each minibatch along the mesh's first axis (data parallel); parameters
        and data are replicated on its devices.
      pack: run the step on packed parameters (:func:`~jaxopt_notes.pack`); None decides with
        :func:`~jaxopt_notes.should_pack`. Invisible to ``loss_fn``.
      chunk_steps: stream the data through the device in chunks of this many minibatches
        (default for memory-mapped data: about 64 MiB per chunk; otherwise all resident).
      progress: show a tqdm bar (steps/s and smoothed cost); it is quiet when stderr is not
        a terminal.

    Returns:
      ``(params, history)``: the trained parameters and a :class:`History`.

    Example:
      >>> loss = lambda p, x, y: jnp.mean((x @ p["w"] - y) ** 2)
      >>> params, history = fit(loss, {"w": jnp.zeros(3)}, jn.adam(1e-2), X, Y, batch_size=64, epochs=5)
      >>> history.epoch_cost[-1] < history.epoch_cost[0]
    """
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable as loss_fn(params, X_batch, Y_batch), got {loss_fn!r}")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"fit: optimizer must be a gradient transformation with init and update, got {optimizer!r}")
    _checks.check_params("fit", params)
    batch_size = _check_positive_int("batch_size", batch_size)
    epochs = _check_positive_int("epochs", epochs, minimum=0)
    checkpoint_every = _check_positive_int("checkpoint_every", checkpoint_every)
    _checks.check_decay("beta", beta)
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"fit: on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    if np.ndim(X) < 1 or len(X) == 0:
        raise ValueError(f"fit: X must hold at least one example along axis 0, got shape {np.shape(X)}")
    m = len(X)
    if Y is not None and (np.ndim(Y) < 1 or len(Y) != m):
        raise ValueError(f"fit: Y must have as many examples as X ({m}) along axis 0, got shape {np.shape(Y)}")
    if drop_remainder and m < batch_size:
        raise ValueError(f"fit: with drop_remainder, batch_size ({batch_size}) must not exceed the {m} examples")
    if mesh is not None and not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"fit: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if chunk_steps is None and isinstance(X, np.memmap):
        row_bytes = X[:1].nbytes + (0 if Y is None else Y[:1].nbytes)
        chunk_steps = max(1, _CHUNK_BYTES // (row_bytes * batch_size))
    if chunk_steps is not None:
        chunk_steps = _check_positive_int("chunk_steps", chunk_steps)

    replicated = None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    batch_sharding = None
    if mesh is not None:
        batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
    if pack is None:
        pack = packing.should_pack(params)
    pack = bool(pack) and not isinstance(params, packing.Packed)  # a Packed the caller made stays theirs
    state_params = packing.pack(params) if pack else _copy(params)
    opt_state = _copy(optimizer.init(state_params))
    if replicated is not None:
        state_params, opt_state = jax.device_put((state_params, opt_state), replicated)

    def user_params(internal: Any) -> Any:
        return packing.unpack(internal) if pack else internal

    history = History(beta=float(beta))
    start_epoch = 0
    checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        found = latest_checkpoint(checkpoint_dir, pattern="epoch_*.npz")
        if found is not None:
            start_epoch, state_params, opt_state = _resume(found, state_params, opt_state, history, seed, m)

    run = compiled_epoch(
        loss_fn,
        optimizer,
        batch_size=batch_size,
        skip_nonfinite=on_nonfinite == "skip",
        batch_sharding=batch_sharding,
        packed=pack,
    )
    steps_per_epoch = m // batch_size + (0 if drop_remainder or m % batch_size == 0 else 1)
    if chunk_steps is None:
        X_device, Y_device, layout = _resident(X, Y, replicated)
        orders: Iterable = _orders(m, batch_size, seed, range(start_epoch, epochs), drop_remainder)
    else:
        orders = (None for _ in range(start_epoch, epochs))
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        unit="step",
        desc="fit",
        disable=None if progress else True,
        dynamic_ncols=True,
    )
    failed = jnp.zeros([], bool)
    try:
        for epoch, order in zip(range(start_epoch, epochs), orders, strict=True):
            started = time.perf_counter()
            if order is not None:
                (state_params, opt_state, failed), outputs = run(
                    state_params, opt_state, failed, X_device, Y_device, *order, layout
                )
                outputs = [outputs]
            else:
                outputs = []
                with _chunks(X, Y, batch_size, seed, epoch, chunk_steps, drop_remainder, replicated) as chunks:
                    for chunk in chunks:
                        carry, out = run(state_params, opt_state, failed, *chunk, None, None, None)
                        (state_params, opt_state, failed), outputs = carry, outputs + [out]
            per_step = zip(*jax.device_get(outputs), strict=True)
            cost, grad_norm, rate, finite = (np.concatenate(parts) for parts in per_step)
            seconds = time.perf_counter() - started
            if on_nonfinite == "raise" and not finite.all():
                bad = int(np.argmin(finite))
                history.record_epoch(cost[:bad], grad_norm[:bad], rate[:bad], ~finite[:bad], seconds)
                raise NonFiniteCostError(
                    epoch + 1, bad + 1, history.steps + 1, user_params(state_params), opt_state, history
                )
            history.record_epoch(cost, grad_norm, rate, ~finite, seconds)
            bar.update(len(cost))
            bar.set_postfix(epoch=f"{epoch + 1}/{epochs}", cost=f"{history.smoothed_cost[-1]:.4g}")
            stop = False
            if callbacks:
                event = EpochEnd(
                    epoch + 1, history.steps, cost, grad_norm, rate, history, user_params(_copy(state_params)),
                    _copy(opt_state),
                )  # fmt: skip
                for callback in callbacks:
                    callback(event)
                opt_state = (
                    _copy(event.opt_state) if replicated is None else jax.device_put(event.opt_state, replicated)
                )
                stop = bool(event.stop)
            done = epoch + 1
            if checkpoint_dir is not None and (done % checkpoint_every == 0 or done == epochs or stop):
                _save(checkpoint_dir, done, state_params, opt_state, history, seed, m)
            if stop:
                break
    finally:
        bar.close()
    return user_params(state_params), history


def _save(directory: Path, epoch: int, params: Any, opt_state: Any, history: History, seed: int, m: int) -> None:
    tree = {
        "params": params,
        "opt_state": opt_state,
        "rng": np.array([seed, epoch], np.int64),
        "history": history.state_dict(),
    }
    metadata = {"epoch": epoch, "steps": history.steps, "seed": seed, "examples": m}
    save_checkpoint(directory / f"epoch_{epoch:06d}.npz", tree, metadata=metadata)


def _resume(path: Path, params: Any, opt_state: Any, history: History, seed: int, m: int) -> tuple[int, Any, Any]:
    metadata = verify_checkpoint(path) or {}
    if metadata.get("seed") != seed or metadata.get("examples") != m:
        warnings.warn(
            f"fit: resuming from {path}, written with seed={metadata.get('seed')} and "
            f"{metadata.get('examples')} examples, now seed={seed} and {m} examples: the run will "
            "not match an uninterrupted one",
            RuntimeWarning,
            stacklevel=3,
        )
    steps, epochs = int(metadata["steps"]), int(metadata["epoch"])
    like_history = {name: np.zeros(steps) for name in ("cost", "smoothed_cost", "grad_norm", "learning_rate")}
    like_history |= {"epoch_cost": np.zeros(epochs), "epoch_time": np.zeros(epochs)}
    like_history |= {"skipped_steps": np.zeros(epochs, np.int64), "smoother": np.zeros(2)}
    like = {"params": params, "opt_state": opt_state, "rng": np.zeros(2, np.int64), "history": like_history}
    tree, _ = load_checkpoint(path, like)
    history.load_state_dict(tree["history"])
    return int(tree["rng"][1]), tree["params"], tree["opt_state"]
