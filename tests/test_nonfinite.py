"""skip_nonfinite against optax.apply_if_finite, step by step, and its exactness guarantees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._nonfinite import ApplyIfFiniteState, skip_nonfinite, skipped_steps
from jaxopt_notes._numerics import all_finite

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, -0.0]], jnp.float32), "b": jnp.array([0.25, -1.0, 3.0], jnp.float32)}


def gradient_sequence(seed: int, steps: int):
    """Gradients with NaN or +-Inf in a random leaf on about half of the steps, in runs."""
    rng = np.random.default_rng(seed)
    bad = rng.random(steps) < 0.5
    for step in range(steps):
        grads = {name: rng.normal(size=leaf.shape).astype(np.float32) for name, leaf in PARAMS.items()}
        if bad[step]:
            name = rng.choice(sorted(grads))
            grads[name].flat[rng.integers(grads[name].size)] = rng.choice([np.nan, np.inf, -np.inf])
        yield jax.tree.map(jnp.asarray, grads)


def bits(tree):
    return [(np.asarray(leaf).dtype, np.asarray(leaf).tobytes()) for leaf in jax.tree.leaves(tree)]


@pytest.mark.parametrize(("max_consecutive", "seed"), [(0, 0), (1, 1), (3, 2)])
def test_matches_optax_apply_if_finite_step_by_step(max_consecutive, seed):
    """Wrapping the same inner optax.adam, ours and optax's must agree exactly: counts, flags and
    parameters, including the steps where the non-finite update is finally let through."""
    ours = skip_nonfinite(optax.adam(0.1), max_consecutive=max_consecutive)
    reference = optax.apply_if_finite(optax.adam(0.1), max_consecutive_errors=max_consecutive)
    ours_update, reference_update = jax.jit(ours.update), jax.jit(reference.update)
    ours_state, reference_state = ours.init(PARAMS), reference.init(PARAMS)
    ours_params = reference_params = PARAMS
    let_through = 0
    for step, grads in enumerate(gradient_sequence(seed, 40)):
        updates, ours_state = ours_update(grads, ours_state, ours_params)
        reference_updates, reference_state = reference_update(grads, reference_state, reference_params)
        ours_params = jn.apply_updates(ours_params, updates)
        reference_params = optax.apply_updates(reference_params, reference_updates)

        where = f"step {step}"
        assert int(ours_state.notfinite_count) == int(reference_state.notfinite_count), where
        assert int(ours_state.total_notfinite) == int(reference_state.total_notfinite), where
        assert bool(ours_state.last_finite) == bool(reference_state.last_finite), where
        # Equal values; optax's +0.0 updates may flip a -0.0 parameter's sign, ours may not.
        for mine, theirs in zip(jax.tree.leaves(ours_params), jax.tree.leaves(reference_params), strict=True):
            np.testing.assert_array_equal(mine, theirs, err_msg=where)
        for mine, theirs in zip(
            jax.tree.leaves(ours_state.inner_state), jax.tree.leaves(reference_state.inner_state), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs, err_msg=where)
        let_through += int(not bool(ours_state.last_finite) and ours_state.notfinite_count > max_consecutive)
    assert int(ours_state.total_skipped) == int(ours_state.total_notfinite) - let_through
    # max_consecutive=0 skips nothing: the first non-finite step already exceeds it.
    assert (int(ours_state.total_skipped) > 0) == (max_consecutive > 0)


def test_wrapping_our_adam_agrees_with_optax_wrapping_optax_adam():
    ours = skip_nonfinite(jn.adam(0.05), max_consecutive=2)
    reference = optax.apply_if_finite(optax.adam(0.05), 2)
    ours_state, reference_state = ours.init(PARAMS), reference.init(PARAMS)
    ours_params = reference_params = PARAMS
    update, reference_update = jax.jit(ours.update), jax.jit(reference.update)
    for grads in gradient_sequence(5, 30):
        updates, ours_state = update(grads, ours_state, ours_params)
        reference_updates, reference_state = reference_update(grads, reference_state, reference_params)
        ours_params = jn.apply_updates(ours_params, updates)
        reference_params = optax.apply_updates(reference_params, reference_updates)
        assert int(ours_state.total_notfinite) == int(reference_state.total_notfinite)
        for mine, theirs in zip(jax.tree.leaves(ours_params), jax.tree.leaves(reference_params), strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_a_skipped_step_changes_no_bit_of_params_or_inner_state(poison):
    optimizer = skip_nonfinite(jn.adam(0.1), max_consecutive=5)
    state = optimizer.init(PARAMS)
    params = PARAMS
    update = jax.jit(optimizer.update)
    for grads in [jax.tree.map(jnp.ones_like, PARAMS)] * 3:  # a few real steps so the moments are non-zero
        updates, state = update(grads, state, params)
        params = jn.apply_updates(params, updates)
    params = {**params, "w": params["w"].at[1, 1].set(-0.0)}  # a signed zero must survive too
    bad = {"w": jnp.ones((2, 2)), "b": jnp.array([1.0, poison, 1.0])}

    updates, new_state = update(bad, state, params)
    new_params = jn.apply_updates(params, updates)

    assert bits(new_params) == bits(params)
    assert bits(new_state.inner_state) == bits(state.inner_state)
    assert (int(new_state.total_skipped), int(new_state.notfinite_count)) == (1, 1)
    assert not bool(new_state.last_finite)
    assert int(skipped_steps((new_state, "other"))) == 1


def test_float16_gradients_with_float32_moments():
    """The skip branch returns the inner update's dtypes (float32 here), not the gradients'."""
    params = {"w": jnp.ones(3, jnp.float16)}
    optimizer = skip_nonfinite(jn.adam(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32), max_consecutive=1)
    state = optimizer.init(params)
    good_updates, state = jax.jit(optimizer.update)({"w": jnp.ones(3, jnp.float16)}, state)
    overflowed = {"w": jnp.array([1.0, 70000.0, 1.0]).astype(jnp.float16)}  # 70000 overflows float16 to inf
    skipped_updates, state = jax.jit(optimizer.update)(overflowed, state)
    assert skipped_updates["w"].dtype == good_updates["w"].dtype == jnp.float32
    assert np.all(np.asarray(skipped_updates["w"]) == 0) and int(state.total_skipped) == 1


def test_all_finite():
    assert bool(all_finite({}))
    assert bool(all_finite({"a": jnp.zeros((0, 3)), "b": jnp.ones(2)}))
    assert not bool(all_finite({"a": jnp.ones(2), "b": jnp.array([1.0, np.inf])}))
    assert not bool(jax.jit(all_finite)([jnp.array(np.nan, jnp.bfloat16)]))


def test_state_and_helpers():
    state = skip_nonfinite(jn.sgd(0.1)).init(PARAMS)
    assert isinstance(state, ApplyIfFiniteState)
    counters = ("notfinite_count", "total_notfinite", "total_skipped", "last_finite")
    assert [np.asarray(getattr(state, name)).dtype for name in counters] == [np.int32, np.int32, np.int32, np.bool_]
    assert skipped_steps(jn.sgd(0.1).init(PARAMS)) is None


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_bad_max_consecutive(bad):
    with pytest.raises(ValueError, match=f"max_consecutive must be an integer >= 0, got {bad!r}"):
        skip_nonfinite(jn.sgd(0.1), max_consecutive=bad)


def test_bad_transform():
    with pytest.raises(TypeError, match="transform must be a gradient transformation.*got function"):
        skip_nonfinite(lambda grads: grads)
