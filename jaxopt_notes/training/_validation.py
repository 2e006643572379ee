"""Held-out evaluation: the cost and any metrics over a validation set, in compiled batches.

The validation rows are placed on the device once; one jitted call then scans over them in
contiguous batches of ``batch_size`` (plus one smaller last batch) and returns the mean of
each quantity over all rows: a batch's value, a mean over its rows, is weighted by its row
count. The compiled function is cached by the identity of the loss and metric functions, so
evaluating after every epoch of a :func:`~jaxopt_notes.fit` run compiles once.

Evaluation never passes ``key=``: a loss that trains differently (dropout, BatchNorm batch
statistics) should switch to its evaluation behaviour when it gets no key.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import _checks
from jaxopt_notes.training._models import Trainable
from jaxopt_notes.training._options import checked_metrics
from jaxopt_notes.training._placement import Placement
from jaxopt_notes.training._run import Run

_CACHE_SIZE = 16
_cache: collections.OrderedDict = collections.OrderedDict()


def _scalar(name: str, value: Any) -> jax.Array:
    value = jnp.asarray(value)
    if value.shape != ():
        raise ValueError(f"evaluator: {name} must return a scalar (a mean over the batch), got shape {value.shape}")
    return value.astype(jnp.float32)


def _make_evaluate(loss_fn: Callable, metrics: tuple, batch_size: int, with_state: bool, has_y: bool) -> Callable:
    def values(params, state, x, y):
        data = ((x, y) if has_y else (x,)) if not with_state else ((state, x, y) if has_y else (state, x))
        out = loss_fn(params, *data)
        cost = out[0] if with_state else out
        named = {"cost": _scalar("loss_fn", cost)}
        named |= {name: _scalar(f"metric {name!r}", fn(params, *data)) for name, fn in metrics}
        return named

    def evaluate(params, state, X, Y):
        m = X.shape[0]
        steps = m // batch_size
        cut = steps * batch_size
        total = {}
        if steps:
            blocks = (
                X[:cut].reshape(steps, batch_size, *X.shape[1:]),
                None if Y is None else Y[:cut].reshape(steps, batch_size, *Y.shape[1:]),
            )
            per_batch = jax.lax.map(lambda b: values(params, state, *b), blocks)
            total = {name: jnp.sum(v) * batch_size for name, v in per_batch.items()}
        if cut < m:
            last = values(params, state, X[cut:], None if Y is None else Y[cut:])
            total = {name: total.get(name, 0.0) + v * (m - cut) for name, v in last.items()}
        return {name: v / m for name, v in total.items()}

    return jax.jit(evaluate)


def evaluator(
    loss_fn: Callable[..., Any],
    X: Any,
    Y: Any = None,
    *,
    metrics: Mapping[str, Callable[..., Any]] | None = None,
    batch_size: int = 1024,
    with_model_state: bool = False,
    sharding: jax.sharding.Sharding | None = None,
) -> Callable[..., dict[str, float]]:
    """A function ``evaluate(params, model_state=None) -> {"cost": ..., metric: ...}`` over (X, Y).

    Each value is the mean over all rows of X: the loss and every metric are called on
    contiguous batches (never with ``key=``) and their batch means weighted by the batch's
    row count. ``fit(..., validation=(X, Y), metrics=...)`` calls it after every epoch.

    Args:
      loss_fn: ``loss_fn(params, x, y) -> cost``, or with ``with_model_state``
        ``loss_fn(params, model_state, x, y) -> (cost, new_model_state)`` (the new state is
        dropped); without ``y`` when Y is None.
      X, Y: the validation examples along axis 0 (NumPy or JAX arrays); Y may be None.
      metrics: name -> function with the loss's arguments returning a scalar mean over the
        batch, e.g. accuracy. ``"cost"`` is taken by the loss.
      batch_size: rows per compiled batch (bounds the memory of one evaluation step).
      with_model_state: True when ``loss_fn`` and the metrics take a model state.
      sharding: where to place X and Y (e.g. replicated over a mesh); default the default device.

    Example:
      >>> X = np.array([[1.0], [2.0], [3.0]], np.float32); Y = np.array([1.0, 2.0, 4.0], np.float32)
      >>> loss = lambda w, x, y: jnp.mean((x[:, 0] * w - y) ** 2)
      >>> hits = lambda w, x, y: jnp.mean(jnp.abs(x[:, 0] * w - y) < 0.5)
      >>> evaluate = evaluator(loss, X, Y, metrics={"hits": hits}, batch_size=2)
      >>> {name: round(value, 4) for name, value in evaluate(jnp.float32(1.0)).items()}
      {'cost': 0.3333, 'hits': 0.6667}
    """
    if not callable(loss_fn):
        raise TypeError(f"evaluator: loss_fn must be callable, got {loss_fn!r}")
    _checks.check_int("evaluator: batch_size", batch_size, minimum=1)
    return _evaluator(loss_fn, X, Y, metrics, int(batch_size), with_model_state, sharding, "evaluator: X, Y")


def _evaluator(
    loss_fn: Callable[..., Any],
    X: Any,
    Y: Any,
    metrics: Mapping[str, Callable[..., Any]] | None,
    batch_size: int,
    with_model_state: bool,
    sharding: jax.sharding.Sharding | None,
    data_name: str,
) -> Callable[..., dict[str, float]]:
    metrics = checked_metrics("metrics", metrics)
    if np.ndim(X) < 1 or len(X) == 0 or (Y is not None and (np.ndim(Y) < 1 or len(Y) != len(X))):
        raise ValueError(
            f"{data_name} must hold the same number >= 1 of examples along axis 0, got shapes {np.shape(X)} and "
            f"{np.shape(Y)}"
        )
    key = (loss_fn, tuple(metrics.items()), int(batch_size), bool(with_model_state), Y is not None)
    if key not in _cache:
        _cache[key] = _make_evaluate(loss_fn, key[1], key[2], key[3], key[4])
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    _cache.move_to_end(key)
    run = _cache[key]
    X_device, Y_device = jax.device_put((X, Y), sharding)

    def evaluate(params: Any, model_state: Any = None) -> dict[str, float]:
        return {
            name: float(value) for name, value in jax.device_get(run(params, model_state, X_device, Y_device)).items()
        }

    return evaluate


def validation_evaluator(run: Run, trained: Trainable, place: Placement) -> Callable[..., dict[str, float]] | None:
    """fit's evaluator over the ``validation`` option's ``(X_val, Y_val)``, batched like the
    training minibatches (1024 rows for a loader), with the loss and metrics of ``trained``
    (a framework's model in evaluation mode); None without validation."""
    if run.options.validation is None:
        return None
    X, Y = run.options.validation
    batch_size = run.options.batch_size or 1024
    with_state = trained.model_state is not None
    return _evaluator(
        trained.validation_loss, X, Y, trained.metrics, batch_size, with_state, place.replicated, "fit: validation"
    )
