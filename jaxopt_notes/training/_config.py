"""A :func:`~jaxopt_notes.fit` call's arguments, checked once: :func:`check_config` returns a
:class:`FitConfig` every later piece of the run reads, so no piece checks its input again."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from jaxopt_notes import _checks
from jaxopt_notes.training import _processes

CHUNK_BYTES = 64 * 2**20
"""Streamed (memory-mapped) data moves to the device in chunks of about this many bytes."""


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """The checked settings of one fit run (see :func:`~jaxopt_notes.fit` for their meaning).

    ``examples`` is m, the number of rows of X (of every process's X together in a
    multi-process run; 0 when X is a loader, a callable ``epoch -> batches``, whose batches
    set the minibatch size: ``batch_size`` is 0 then too);
    ``chunk_steps`` is None when the data stay resident on the device and a number of
    minibatches per streamed chunk otherwise. ``with_model_state`` and ``with_key`` say
    whether the loss takes a model state and receives ``key=``.
    """

    loss_fn: Callable[..., jax.Array]
    optimizer: optax.GradientTransformation
    examples: int
    batch_size: int
    epochs: int
    seed: int
    drop_remainder: bool
    beta: float
    on_nonfinite: str
    checkpoint_dir: Path | None
    checkpoint_every: int
    mesh: jax.sharding.Mesh | None
    pack: bool | None
    chunk_steps: int | None
    progress: bool
    with_model_state: bool = False
    with_key: bool = False

    @property
    def steps_per_epoch(self) -> int | None:
        if self.batch_size == 0:  # a loader: its epochs' lengths are its own
            return None
        full, rest = divmod(self.examples, self.batch_size)
        return full + (0 if self.drop_remainder or rest == 0 else 1)


def _check_data(X: Any, Y: Any) -> int:
    """The number of examples m, after checking X and Y hold the same m >= 1 rows."""
    if np.ndim(X) < 1 or len(X) == 0:
        raise ValueError(f"fit: X must hold at least one example along axis 0, got shape {np.shape(X)}")
    m = len(X)
    if Y is not None and (np.ndim(Y) < 1 or len(Y) != m):
        raise ValueError(f"fit: Y must have as many examples as X ({m}) along axis 0, got shape {np.shape(Y)}")
    return m


def _check_model_state(model_state: Any) -> None:
    """A model state is a pytree of arrays of any dtype (a step counter may be an integer)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(model_state)[0]:
        if not isinstance(leaf, jax.Array | np.ndarray | np.generic | int | float):
            raise TypeError(
                f"fit: model_state must be a pytree of arrays, got {type(leaf).__name__} {leaf!r:.80} at "
                f"model_state{jax.tree_util.keystr(path)}"
            )


def _check_loader(Y: Any, batch_size: Any, drop_remainder: bool) -> tuple[int, int]:
    """A loader (X callable as ``X(epoch) -> batches``) brings its own Y and batch size."""
    if Y is not None:
        raise ValueError("fit: when X is a loader (a callable epoch -> batches of (x, y) or x), Y must be None")
    if batch_size is not None:
        raise ValueError(
            f"fit: when X is a loader, its batches set the batch size: pass batch_size=None, got {batch_size!r}"
        )
    if drop_remainder:
        raise ValueError("fit: drop_remainder does not apply to a loader: let the loader drop its last batch")
    return 0, 0


def _chunk_steps(X: Any, Y: Any, batch_size: int, chunk_steps: Any) -> int | None:
    """Memory-mapped data stream in chunks of about :data:`CHUNK_BYTES` unless told otherwise."""
    if chunk_steps is None and isinstance(X, np.memmap):
        row_bytes = X[:1].nbytes + (0 if Y is None else Y[:1].nbytes)
        chunk_steps = max(1, CHUNK_BYTES // (row_bytes * batch_size))
    return None if chunk_steps is None else _checks.check_int("fit: chunk_steps", chunk_steps, minimum=1)


def check_config(
    loss_fn: Any,
    optimizer: Any,
    params: Any,
    X: Any,
    Y: Any,
    *,
    batch_size: Any,
    epochs: Any,
    seed: int,
    drop_remainder: bool,
    beta: Any,
    on_nonfinite: Any,
    checkpoint_dir: str | os.PathLike | None,
    checkpoint_every: Any,
    mesh: Any,
    pack: bool | None,
    chunk_steps: Any,
    progress: bool,
    model_state: Any = None,
    key: Any = None,
) -> FitConfig:
    """Checks fit's arguments, raising an error that names the argument at the first bad one."""
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable as loss_fn(params, X_batch, Y_batch), got {loss_fn!r}")
    _checks.check_transformation("fit: optimizer", optimizer)
    _checks.check_params("fit", params)
    loader = callable(X) and not hasattr(X, "shape")
    if loader:
        if _processes.multi_process():
            raise ValueError("fit: a loader (callable X) is not supported across processes; pass this process's rows")
        m, batch_size = _check_loader(Y, batch_size, drop_remainder)
    else:
        batch_size = _checks.check_int("fit: batch_size", batch_size, minimum=1)
    epochs = _checks.check_int("fit: epochs", epochs, minimum=0)
    checkpoint_every = _checks.check_int("fit: checkpoint_every", checkpoint_every, minimum=1)
    _checks.check_decay("beta", beta)
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"fit: on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    if mesh is not None and not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"fit: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    mesh = _auto_axes(mesh)
    if not loader:
        m = _check_data(X, Y)
        if _processes.multi_process():  # X and Y are this process's rows; m counts every process's
            m = _processes.check_process_rows(m, batch_size, mesh, checkpoint_dir)
        if drop_remainder and m < batch_size:
            raise ValueError(f"fit: with drop_remainder, batch_size ({batch_size}) must not exceed the {m} examples")
    if model_state is not None:
        _check_model_state(model_state)
    if key is not None and not (isinstance(key, jax.Array) and (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
                                or (key.dtype == np.uint32 and key.shape == (2,)))):  # fmt: skip
        raise TypeError(f"fit: key must be a JAX random key (jax.random.key(0) or jax.random.PRNGKey(0)), got {key!r}")
    return FitConfig(
        loss_fn=loss_fn,
        optimizer=optimizer,
        examples=m,
        batch_size=batch_size,
        epochs=epochs,
        seed=seed,
        drop_remainder=bool(drop_remainder),
        beta=float(beta),
        on_nonfinite=on_nonfinite,
        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
        checkpoint_every=checkpoint_every,
        mesh=mesh,
        pack=pack,
        chunk_steps=_checks.check_int("fit: chunk_steps", chunk_steps, minimum=1) if loader and chunk_steps is not None
        else None if loader else _chunk_steps(X, Y, batch_size, chunk_steps),
        progress=progress,
        with_model_state=model_state is not None,
        with_key=key is not None,
    )  # fmt: skip


def _auto_axes(mesh: jax.sharding.Mesh | None) -> jax.sharding.Mesh | None:
    """``mesh`` with every axis of type Auto. ``jax.make_mesh`` makes Explicit axes by default,
    on which the sharding constraints of fit's data-parallel step are refused; fit places its
    arrays itself, so the same devices and axis names with Auto axes train identically."""
    if mesh is None:
        return None
    auto = jax.sharding.AxisType.Auto
    if all(axis_type == auto for axis_type in mesh.axis_types):
        return mesh
    return jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=(auto,) * len(mesh.axis_names))
