"""One :func:`~jaxopt_notes.fit` call checked against its data: :func:`check_run` returns the
:class:`Run` every later piece reads, so no piece checks its input again. The options
themselves were checked when their :class:`~jaxopt_notes.training._options.FitOptions` was
made; what is checked here depends on the data (a loader or arrays, their rows, the processes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import optax

from jaxopt_notes import _checks
from jaxopt_notes.data._batches import steps_per_epoch
from jaxopt_notes.training import _processes
from jaxopt_notes.training._options import FitOptions

CHUNK_BYTES = 64 * 2**20
"""Streamed (memory-mapped) data moves to the device in chunks of about this many bytes."""


@dataclasses.dataclass(frozen=True)
class Run:
    """A checked fit call: its ``options``, the ``loss_fn`` and ``optimizer`` the step runs
    (the loss in fit's own form, see :mod:`~jaxopt_notes.training._models`), and what the data
    set: ``examples``, m, the rows of X (of every process's X together in a multi-process run;
    None when X is a loader, a callable ``epoch -> batches``, whose batches set the minibatch
    size), and ``chunk_steps``, the minibatches per streamed chunk (None when the data stay
    resident on the device; for memory-mapped data it defaults to about :data:`CHUNK_BYTES`)."""

    options: FitOptions
    loss_fn: Callable[..., Any]
    optimizer: optax.GradientTransformation
    examples: int | None
    chunk_steps: int | None

    @property
    def steps_per_epoch(self) -> int | None:
        """Minibatches per epoch (:func:`~jaxopt_notes.steps_per_epoch`); None for a loader,
        whose epochs' lengths are its own."""
        if self.examples is None or self.options.batch_size is None:
            return None
        return steps_per_epoch(self.examples, self.options.batch_size, drop_remainder=self.options.drop_remainder)


def is_loader(X: Any) -> bool:
    """Whether X is a loader, a callable ``epoch -> batches``, rather than an array."""
    return callable(X) and not hasattr(X, "shape")


def _check_data(X: Any, Y: Any) -> int:
    """The number of examples m, after checking X and Y hold the same m >= 1 rows."""
    if np.ndim(X) < 1 or len(X) == 0:
        raise ValueError(f"fit: X must hold at least one example along axis 0, got shape {np.shape(X)}")
    m = len(X)
    if Y is not None and (np.ndim(Y) < 1 or len(Y) != m):
        raise ValueError(f"fit: Y must have as many examples as X ({m}) along axis 0, got shape {np.shape(Y)}")
    return m


def _check_loader(Y: Any, options: FitOptions) -> None:
    """A loader (X callable as ``X(epoch) -> batches``) brings its own Y and batch size."""
    if _processes.multi_process():
        raise ValueError("fit: a loader (callable X) is not supported across processes; pass this process's rows")
    if Y is not None:
        raise ValueError("fit: when X is a loader (a callable epoch -> batches of (x, y) or x), Y must be None")
    if options.batch_size is not None:
        raise ValueError(
            f"fit: when X is a loader, its batches set the batch size: pass batch_size=None, got {options.batch_size!r}"
        )
    if options.drop_remainder:
        raise ValueError("fit: drop_remainder does not apply to a loader: let the loader drop its last batch")


def _streamed_chunk_steps(X: Any, Y: Any, batch_size: int, chunk_steps: int | None) -> int | None:
    """Memory-mapped data stream in chunks of about :data:`CHUNK_BYTES` unless told otherwise."""
    if chunk_steps is None and isinstance(X, np.memmap):
        row_bytes = X[:1].nbytes + (0 if Y is None else Y[:1].nbytes)
        return max(1, CHUNK_BYTES // (row_bytes * batch_size))
    return chunk_steps


def check_run(loss_fn: Callable[..., Any], optimizer: Any, X: Any, Y: Any, options: FitOptions) -> Run:
    """Checks what fit's data and optimizer must satisfy given ``options``, raising an error
    that names the argument at the first bad one."""
    _checks.check_transformation("fit: optimizer", optimizer)
    if is_loader(X):
        _check_loader(Y, options)
        return Run(options, loss_fn, optimizer, None, options.chunk_steps)
    if options.batch_size is None:
        raise _checks.ArgumentTypeError(
            "fit: batch_size must be an integer >= 1 (None only when X is a loader), got None"
        )
    m = _check_data(X, Y)
    if _processes.multi_process():  # X and Y are this process's rows; m counts every process's
        m = _processes.check_process_rows(m, options.batch_size, options.mesh, options.checkpoint_dir)
    if options.drop_remainder and m < options.batch_size:
        raise ValueError(
            f"fit: with drop_remainder, batch_size ({options.batch_size}) must not exceed the {m} examples"
        )
    chunk_steps = _streamed_chunk_steps(X, Y, options.batch_size, options.chunk_steps)
    return Run(options, loss_fn, optimizer, m, chunk_steps)
