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

from jaxopt_notes._numerics import all_finite, increment_count, init_count
from jaxopt_notes.base import GradientTransformation, Params, Updates


class SkipNonfiniteState(NamedTuple):
    """State of :func:`skip_nonfinite`.

    Attributes:
      consecutive_nonfinite: non-finite steps in a row up to now, 0 after a finite step
        (int32, saturating).
      total_nonfinite: non-finite steps since ``init``, never reset (int32, saturating).
      total_skipped: steps actually skipped; differs from ``total_nonfinite`` once
        ``max_consecutive`` has been exceeded and non-finite updates were let through.
      last_finite: whether the latest gradients were all finite (bool scalar).
      inner_state: the wrapped transform's state.
    """

    consecutive_nonfinite: jax.Array
    total_nonfinite: jax.Array
    total_skipped: jax.Array
    last_finite: jax.Array
    inner_state: Any


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
    if not (callable(getattr(transform, "init", None)) and callable(getattr(transform, "update", None))):
        raise TypeError(
            f"skip_nonfinite: transform must be a gradient transformation with init and update, "
            f"got {type(transform).__name__}"
        )
    if isinstance(max_consecutive, bool) or not isinstance(max_consecutive, int) or max_consecutive < 0:
        raise ValueError(f"skip_nonfinite: max_consecutive must be an int >= 0, got {max_consecutive!r}")

    def init(params: Params) -> SkipNonfiniteState:
        return SkipNonfiniteState(
            consecutive_nonfinite=init_count(),
            total_nonfinite=init_count(),
            total_skipped=init_count(),
            last_finite=jnp.array(True),
            inner_state=transform.init(params),
        )

    def update(
        updates: Updates, state: SkipNonfiniteState, params: Params | None = None
    ) -> tuple[Updates, SkipNonfiniteState]:
        finite = all_finite(updates)
        consecutive = jnp.where(finite, init_count(), increment_count(state.consecutive_nonfinite))
        apply = finite | (consecutive > max_consecutive)
        # The skip branch must return exactly the inner update's types, which may differ from
        # the gradients' (float16 gradients with float32 moments give float32 updates).
        out_shapes = jax.eval_shape(transform.update, updates, state.inner_state, params)[0]

        def skip() -> tuple[Updates, Any]:
            zeros = jax.tree.map(lambda leaf: jnp.full(leaf.shape, -0.0, leaf.dtype), out_shapes)
            return zeros, state.inner_state

        new_updates, inner_state = jax.lax.cond(
            apply, lambda: transform.update(updates, state.inner_state, params), skip
        )
        new_state = SkipNonfiniteState(
            consecutive_nonfinite=consecutive,
            total_nonfinite=jnp.where(finite, state.total_nonfinite, increment_count(state.total_nonfinite)),
            total_skipped=jnp.where(apply, state.total_skipped, increment_count(state.total_skipped)),
            last_finite=finite,
            inner_state=inner_state,
        )
        return new_updates, new_state

    return GradientTransformation(init, update)


def skipped_steps(state: Any) -> jax.Array | None:
    """``total_skipped`` of the first :class:`SkipNonfiniteState` in an optimizer state (searched
    depth first through chains and wrappers), or ``None`` if there is none."""
    found = jax.tree.leaves(state, is_leaf=lambda node: isinstance(node, SkipNonfiniteState))
    for node in found:
        if isinstance(node, SkipNonfiniteState):
            return node.total_skipped
    return None
