"""Skipping steps whose gradients hold a NaN or an infinity.

One bad minibatch (an overflow in a float16 loss, a log of zero) can turn every moment of an
adaptive optimizer into NaN for good: ``S = beta * S + (1 - beta) * NaN`` never recovers.
:func:`skip_nonfinite` wraps any transform so that such a step changes nothing: the inner
state is kept exactly as it was and the updates are zeros, so the parameters stay as they
were. If the gradients stay non-finite for more than ``max_consecutive`` steps in a row, the
problem is not a passing glitch; the wrapper then lets the update through, so the NaN reaches
the parameters and the loss, and the run fails visibly instead of idling forever.

This is the behaviour of ``optax.apply_if_finite(inner, max_consecutive_errors)``, step for
step, with a state that also counts the steps actually skipped.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxopt_notes import _checks
from jaxopt_notes._base import (
    GradientTransformation,
    Params,
    Updates,
    find_states,
    transformation,
    update_with_extra_args,
)
from jaxopt_notes._numerics import all_finite, increment_count, init_count
from jaxopt_notes._recipe import equal_by_arguments


class ApplyIfFiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`, laid out as ``optax.apply_if_finite``'s (same class
    and field names) with one more field.

    Attributes:
      notfinite_count: non-finite steps in a row up to now, 0 after a finite step (int32,
        saturating).
      last_finite: whether the latest gradients were all finite (bool scalar).
      total_notfinite: non-finite steps since ``init``, never reset (int32, saturating).
      inner_state: the wrapped transform's state.
      total_skipped: steps actually skipped; differs from ``total_notfinite`` once
        ``max_consecutive`` has been exceeded and non-finite updates were let through.
    """

    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    inner_state: Any
    total_skipped: jax.Array


@equal_by_arguments
def skip_nonfinite(transform: optax.GradientTransformation, *, max_consecutive: int = 10) -> GradientTransformation:
    """Wraps ``transform`` so that a step with any NaN or infinite gradient is skipped.

    On a skipped step the inner state is returned unchanged, bit for bit, and the updates are
    negative zeros (``x + -0.0 == x`` for every ``x``, signed zeros and NaN included, so
    ``apply_updates`` leaves the parameters bit-identical). The
    ``max_consecutive + 1``-th non-finite step in a row, and every one after it, goes through
    to ``transform`` so that the error surfaces.

    Args:
      transform: any gradient transformation (this library's or optax's).
      max_consecutive: how many non-finite steps in a row are skipped, an int >= 0. The
        default, 10, rides out a short burst of bad minibatches while a run that has truly
        diverged still fails within a few steps.

    Example:
      >>> import jax.numpy as jnp, jaxopt_notes as jn
      >>> opt = jn.skip_nonfinite(jn.adam(1e-3), max_consecutive=3)
      >>> state = opt.init({"w": jnp.ones(2)})
      >>> updates, state = opt.update({"w": jnp.array([1.0, jnp.nan])}, state)
      >>> int(state.total_skipped)  # the NaN step changed nothing
      1
    """
    _checks.check_transformation("skip_nonfinite: transform", transform)
    _checks.check_int("skip_nonfinite: max_consecutive", max_consecutive, minimum=0)

    def init(params: Params) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(
            notfinite_count=init_count(),
            last_finite=jnp.array(True),
            total_notfinite=init_count(),
            inner_state=transform.init(params),
            total_skipped=init_count(),
        )

    def inner_update(updates: Updates, inner_state: Any, params: Params | None, extra_args: dict) -> tuple:
        return update_with_extra_args(transform, updates, inner_state, params, extra_args)

    def update(
        updates: Updates, state: ApplyIfFiniteState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, ApplyIfFiniteState]:
        finite = all_finite(updates)
        consecutive = jnp.where(finite, init_count(), increment_count(state.notfinite_count))
        apply = finite | (consecutive > max_consecutive)
        # The skip branch must return exactly the inner update's types, which may differ from
        # the gradients' (float16 gradients with float32 moments give float32 updates).
        out_shapes = jax.eval_shape(inner_update, updates, state.inner_state, params, extra_args)[0]

        def skip() -> tuple[Updates, Any]:
            zeros = jax.tree.map(lambda leaf: jnp.full(leaf.shape, -0.0, leaf.dtype), out_shapes)
            return zeros, state.inner_state

        new_updates, inner_state = jax.lax.cond(
            apply, lambda: inner_update(updates, state.inner_state, params, extra_args), skip
        )
        new_state = ApplyIfFiniteState(
            notfinite_count=consecutive,
            last_finite=finite,
            total_notfinite=jnp.where(finite, state.total_notfinite, increment_count(state.total_notfinite)),
            inner_state=inner_state,
            total_skipped=jnp.where(apply, state.total_skipped, increment_count(state.total_skipped)),
        )
        return new_updates, new_state

    return transformation(init, update, transform)


def skipped_steps(state: Any) -> jax.Array | None:
    """``total_skipped`` of the first :class:`ApplyIfFiniteState` in an optimizer state (searched
    depth first through chains and wrappers), or ``None`` if there is none."""
    found = find_states(state, ApplyIfFiniteState)
    return found[0].total_skipped if found else None
