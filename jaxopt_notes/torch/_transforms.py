"""The pieces of torch.optim's update rules that the core does not already have.

Each is a small gradient transformation, so that :mod:`jaxopt_notes.torch`'s optimizers stay
plain chains: the momentum buffer of ``SGD`` (copied from the first gradient, dampened only
from the second step on), the direction of ``Adam`` and ``AdamW`` (with ``amsgrad``), the
direction of ``RMSprop`` (with ``centered``), and :func:`real_view`, which runs a rule on the
real and imaginary parts of complex parameters separately, as torch does through
``torch.view_as_real``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxopt_notes import _checks
from jaxopt_notes._base import ElementwiseTransformation, GradientTransformation, Params, Updates, transformation
from jaxopt_notes._numerics import (
    correct_bias,
    divide_by_root,
    increment_count,
    init_count,
    squares,
    update_average,
    zeros_like_tree,
)


class TorchMomentumState(NamedTuple):
    """The momentum state of :func:`~jaxopt_notes.torch.SGD`, torch's ``momentum_buffer`` per parameter.

    Attributes:
      momentum_buffer: ``b``, zeros until the first step with a non-zero momentum fills it.
      buffer_filled: a bool scalar, whether such a step has run (torch's buffer is ``None``
        until then, and the step that creates it copies the gradient instead of averaging).

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.SGD(0.1, momentum=0.9, dampening=0.9)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> state[2].momentum_buffer["w"]  # the first step copies the gradient, undampened
      Array([ 0.5, -1. ], dtype=float32)
    """

    momentum_buffer: Updates
    buffer_filled: jax.Array


def torch_momentum(momentum: Any, dampening: Any, nesterov: bool) -> GradientTransformation:
    """``torch.optim.SGD``'s momentum buffer::

        b_1 = g_1                                  (the first step copies the gradient)
        b_t = momentum * b_{t-1} + (1 - dampening) * g_t
        output = g_t + momentum * b_t (nesterov)   or   b_t

    A momentum of 0 (reachable when it is injected and set mid-run) passes the gradient
    through and leaves the buffer untouched, as torch keeps no buffer then.
    """

    def init(params: Params) -> TorchMomentumState:
        _checks.check_params("torch_momentum", params)
        return TorchMomentumState(zeros_like_tree(params), jnp.zeros([], bool))

    def update(
        updates: Updates, state: TorchMomentumState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, TorchMomentumState]:
        del params, extra_args
        _checks.check_state("torch_momentum", state, TorchMomentumState)
        _checks.check_updates_match("torch_momentum", updates, state.momentum_buffer)
        active = jnp.asarray(momentum) != 0

        def filled(g: jax.Array, b: jax.Array) -> jax.Array:
            averaged = momentum * b + (1 - dampening) * g
            return jnp.where(state.buffer_filled, averaged, g).astype(b.dtype)

        def output(g: jax.Array, buffer: jax.Array) -> jax.Array:
            direction = g + momentum * buffer if nesterov else buffer
            return jnp.where(active, direction, g).astype(g.dtype)

        candidates = jax.tree.map(filled, updates, state.momentum_buffer)
        outputs = jax.tree.map(output, updates, candidates)
        buffers = jax.tree.map(lambda new, old: jnp.where(active, new, old), candidates, state.momentum_buffer)
        return outputs, TorchMomentumState(buffers, state.buffer_filled | active)

    return ElementwiseTransformation(init, update)


class TorchAdamState(NamedTuple):
    """The moments of :func:`~jaxopt_notes.torch.Adam` and :func:`~jaxopt_notes.torch.AdamW`,
    with torch's names.

    Attributes:
      count: updates taken so far (torch's ``step``; int32 scalar, saturating).
      exp_avg: the first moment ``m``, uncorrected.
      exp_avg_sq: the second moment ``v``, uncorrected.
      max_exp_avg_sq: with ``amsgrad``, the largest ``v`` seen so far, element by element;
        ``None`` without.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.Adam(1e-3, amsgrad=True)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> int(state[2].count), state[2].exp_avg["w"]  # (1 - beta1) * g after one step
      (1, Array([ 0.05, -0.1 ], dtype=float32))
    """

    count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax
    exp_avg: Updates
    exp_avg_sq: Updates
    max_exp_avg_sq: Updates | None


def scale_by_torch_adam(beta1: Any, beta2: Any, eps: Any, amsgrad: bool) -> GradientTransformation:
    """The direction of ``torch.optim.Adam``: ``m_hat / (sqrt(v_hat) + eps)`` with
    ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``, where ``v`` is replaced
    by its running maximum with ``amsgrad`` (the maximum of the uncorrected ``v``, as torch)."""

    def init(params: Params) -> TorchAdamState:
        _checks.check_params("scale_by_torch_adam", params)
        maximum = zeros_like_tree(params) if amsgrad else None
        return TorchAdamState(init_count(), zeros_like_tree(params), zeros_like_tree(params), maximum)

    def update(
        updates: Updates, state: TorchAdamState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, TorchAdamState]:
        del params, extra_args
        _checks.check_state("scale_by_torch_adam", state, TorchAdamState)
        _checks.check_updates_match("scale_by_torch_adam", updates, state.exp_avg)
        exp_avg = update_average(state.exp_avg, updates, beta1)
        exp_avg_sq = update_average(state.exp_avg_sq, squares(updates, state.exp_avg_sq), beta2)
        count = increment_count(state.count)
        maximum = jax.tree.map(jnp.maximum, state.max_exp_avg_sq, exp_avg_sq) if amsgrad else None
        second = maximum if amsgrad else exp_avg_sq
        direction = divide_by_root(
            correct_bias(exp_avg, beta1, count), correct_bias(second, beta2, count), eps, eps_in_sqrt=False
        )
        return direction, TorchAdamState(count, exp_avg, exp_avg_sq, maximum)

    return ElementwiseTransformation(init, update)


class TorchRMSpropState(NamedTuple):
    """The averages of :func:`~jaxopt_notes.torch.RMSprop`, with torch's names.

    Attributes:
      square_avg: ``v``, the running average of ``g**2``.
      grad_avg: with ``centered``, the running average of ``g``; ``None`` without.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.torch.RMSprop(1e-2, centered=True)
      >>> params = {"w": jnp.ones(2)}
      >>> _, state = opt.update({"w": jnp.array([0.5, -1.0])}, opt.init(params), params)
      >>> rms = state[2][0]  # the direction, before the (unused) momentum buffer
      >>> rms.square_avg["w"], rms.grad_avg["w"]  # (1 - alpha) * g**2 and (1 - alpha) * g
      (Array([0.0025, 0.01  ], dtype=float32), Array([ 0.005, -0.01 ], dtype=float32))
    """

    square_avg: Updates
    grad_avg: Updates | None


def scale_by_torch_rms(alpha: Any, eps: Any, centered: bool) -> GradientTransformation:
    """The direction of ``torch.optim.RMSprop``: ``g / (sqrt(v) + eps)`` with
    ``v = alpha * v + (1 - alpha) * g**2`` from ``v = 0``, no bias correction; ``centered``
    subtracts the squared running mean of ``g`` from ``v`` before the root."""

    def init(params: Params) -> TorchRMSpropState:
        _checks.check_params("scale_by_torch_rms", params)
        return TorchRMSpropState(zeros_like_tree(params), zeros_like_tree(params) if centered else None)

    def update(
        updates: Updates, state: TorchRMSpropState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, TorchRMSpropState]:
        del params, extra_args
        _checks.check_state("scale_by_torch_rms", state, TorchRMSpropState)
        _checks.check_updates_match("scale_by_torch_rms", updates, state.square_avg)
        square_avg = update_average(state.square_avg, squares(updates, state.square_avg), alpha)
        grad_avg = update_average(state.grad_avg, updates, alpha) if centered else None
        variance = jax.tree.map(lambda v, m: v - m * m, square_avg, grad_avg) if centered else square_avg
        return divide_by_root(updates, variance, eps, eps_in_sqrt=False), TorchRMSpropState(square_avg, grad_avg)

    return ElementwiseTransformation(init, update)


def _as_real(leaf: Any) -> Any:
    """A complex leaf as a real one with a trailing axis of 2 (real part, imaginary part), as
    ``torch.view_as_real`` sees it; a real leaf as it is."""
    if leaf is None or not jnp.iscomplexobj(leaf):
        return leaf
    return jnp.stack([jnp.real(leaf), jnp.imag(leaf)], axis=-1)


def _as_complex(leaf: jax.Array, like: Any) -> jax.Array:
    if not jnp.iscomplexobj(like):
        return leaf
    return jax.lax.complex(leaf[..., 0], leaf[..., 1]).astype(jnp.result_type(like))


def real_view(inner: GradientTransformation) -> GradientTransformation:
    """``inner`` applied to complex leaves as pairs of real numbers, as torch's Adam and RMSprop
    treat complex parameters: each of the real and imaginary parts gets its own second moment.
    Real leaves pass to ``inner`` unchanged; for them this is ``inner`` itself."""

    def as_real(tree: Any) -> Any:
        return jax.tree.map(_as_real, tree)

    def init(params: Params) -> Any:
        return inner.init(as_real(params))

    def update(updates: Updates, state: Any, params: Params | None = None, **extra_args: Any) -> tuple[Updates, Any]:
        real_params = None if params is None else as_real(params)
        outputs, state = inner.update(as_real(updates), state, real_params, **extra_args)
        return jax.tree.map(_as_complex, outputs, updates), state

    return transformation(init, update, inner)
