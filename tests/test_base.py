"""chain, apply_updates, optax interoperability, and the invariants every transform keeps."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._numerics import increment_count
from jaxopt_notes.testing import NotEquivalentError, assert_equivalent

PARAMS = {"w": jnp.arange(6.0).reshape(2, 3) / 6, "b": jnp.ones(3), "frozen": None}
GRADS = {"w": jnp.full((2, 3), 0.5), "b": jnp.linspace(-1, 1, 3), "frozen": None}

ALL_TRANSFORMS = {
    "ewa": lambda: jn.ewa(0.9, debias=True),
    "bias_correction": lambda: jn.bias_correction(0.9),
    "trace": lambda: jn.trace(0.9, nesterov=True),
    "scale": lambda: jn.scale(0.5),
    "scale_by_learning_rate": lambda: jn.scale_by_learning_rate(lambda step: 0.1 / (1 + step)),
    "scale_by_rms": lambda: jn.scale_by_rms(0.9),
    "scale_by_adam": lambda: jn.scale_by_adam(),
    "sgd": lambda: jn.sgd(0.1),
    "momentum": lambda: jn.momentum(0.1),
    "momentum undampened": lambda: jn.momentum(0.1, dampened=False),
    "rmsprop": lambda: jn.rmsprop(0.01),
    "adam": lambda: jn.adam(0.01),
    "adam bf16 moments": lambda: jn.adam(0.01, mu_dtype=jnp.bfloat16),
}


def test_our_transforms_are_optax_transforms():
    assert isinstance(jn.adam(0.1), optax.GradientTransformation)
    assert isinstance(jn.chain(jn.ewa(0.9)), optax.GradientTransformation)


def test_optax_chain_accepts_ours():
    ours = optax.chain(jn.scale_by_adam(), jn.scale_by_learning_rate(0.01))
    assert_equivalent(ours, optax.adam(0.01), params=PARAMS, steps=10, rtol=5e-5)


def test_our_chain_accepts_optax():
    ours = jn.chain(optax.scale_by_adam(), jn.scale_by_learning_rate(0.01))
    assert_equivalent(ours, optax.adam(0.01), params=PARAMS, steps=10, rtol=1e-6)


def test_optax_wrappers_accept_ours():
    params = {"w": jnp.ones(3)}
    multi = optax.MultiSteps(jn.adam(0.1), every_k_schedule=2)
    reference = optax.MultiSteps(optax.adam(0.1), every_k_schedule=2)
    assert_equivalent(multi, reference, params=params, steps=6, rtol=5e-5, jit=False)
    finite = optax.apply_if_finite(jn.sgd(0.1), max_consecutive_errors=2)
    state = finite.init(params)
    updates, state = finite.update({"w": jnp.array([1.0, jnp.nan, 0.0])}, state, params)
    assert np.all(np.asarray(updates["w"]) == 0) and int(state.notfinite_count) == 1


def test_chain_rejects_non_transforms_by_position():
    with pytest.raises(TypeError, match="argument 1 must be a gradient transformation"):
        jn.chain(jn.sgd(0.1), 0.5)


def test_chain_rejects_a_state_of_the_wrong_length():
    tx = jn.chain(jn.ewa(0.9), jn.sgd(0.1))
    with pytest.raises(ValueError, match="tuple of 2 member states"):
        tx.update(GRADS, (tx.init(PARAMS)[0],), PARAMS)


def test_apply_updates_keeps_dtypes_and_none():
    params = {"half": jnp.ones(3, jnp.bfloat16), "full": jnp.ones(2), "none": None}
    updates = {"half": jnp.full(3, 0.25, jnp.float32), "full": jnp.full(2, -0.5), "none": None}
    new = jn.apply_updates(params, updates)
    reference = optax.apply_updates(params, updates)
    assert new["none"] is None
    for key in ("half", "full"):
        assert new[key].dtype == params[key].dtype
        np.testing.assert_array_equal(np.asarray(new[key], np.float32), np.asarray(reference[key], np.float32))
    np.testing.assert_array_equal(np.asarray(new["full"]), [0.5, 0.5])


@pytest.mark.parametrize("name", ALL_TRANSFORMS)
def test_state_shapes_and_dtypes_never_change(name):
    """Old and new state through lax.cond: it only compiles if both have identical types."""
    tx = ALL_TRANSFORMS[name]()
    state = tx.init(PARAMS)

    @jax.jit
    def step(state, take_new):
        _, new_state = tx.update(GRADS, state, PARAMS)
        return jax.lax.cond(take_new, lambda: new_state, lambda: state)

    for _ in range(3):
        state = step(state, True)
    chosen = step(state, False)
    assert jax.tree.structure(chosen) == jax.tree.structure(tx.init(PARAMS))
    for old, new in zip(jax.tree.leaves(tx.init(PARAMS)), jax.tree.leaves(chosen)):
        assert (old.shape, old.dtype) == (new.shape, new.dtype)


@pytest.mark.parametrize("name", ["adam", "momentum", "rmsprop", "ewa"])
def test_vmap_over_parameter_sets_equals_a_loop(name):
    tx = ALL_TRANSFORMS[name]()
    batch = {"w": jnp.arange(12.0).reshape(4, 3) / 10, "b": jnp.linspace(-1, 1, 4)}
    grads = jax.tree.map(lambda x: jnp.cos(x) + 0.1, batch)
    states = jax.vmap(tx.init)(batch)
    batched_updates, _ = jax.vmap(tx.update)(grads, states, batch)
    for i in range(4):
        one = {key: value[i] for key, value in batch.items()}
        one_grads = {key: value[i] for key, value in grads.items()}
        updates, _ = tx.update(one_grads, tx.init(one), one)
        for key in one:
            np.testing.assert_allclose(batched_updates[key][i], updates[key], rtol=1e-6)


@pytest.mark.parametrize(
    "ours, reference",
    [
        (jn.adam(0.1, eps_root=1e-8), optax.adam(0.1, eps_root=1e-8)),
        (jn.rmsprop(0.1, eps_in_sqrt=True), optax.rmsprop(0.1, eps_in_sqrt=True)),
        (jn.momentum(0.1, dampened=False), optax.sgd(0.1, momentum=0.9)),
    ],
)
def test_grad_through_an_update_equals_optax(ours, reference):
    params = {"w": jnp.linspace(-1.0, 1.0, 5)}

    def after_two_steps(tx, grads):
        state = tx.init(params)
        updates, state = tx.update(grads, state, params)
        updates, state = tx.update(jax.tree.map(lambda g: 2 * g, grads), state, params)
        return jnp.sum(jnp.sin(updates["w"]))

    grads = {"w": jnp.array([0.3, -0.2, 0.5, 1.0, -2.0])}
    ours_grad = jax.grad(lambda g: after_two_steps(ours, g))(grads)
    reference_grad = jax.grad(lambda g: after_two_steps(reference, g))(grads)
    np.testing.assert_allclose(ours_grad["w"], reference_grad["w"], rtol=1e-4, atol=1e-7)


def test_count_saturates_instead_of_wrapping():
    near_max = jnp.int32(np.iinfo(np.int32).max - 1)
    assert int(increment_count(near_max)) == np.iinfo(np.int32).max
    assert int(increment_count(increment_count(near_max))) == np.iinfo(np.int32).max
    tx = jn.adam(lambda step: 0.1 + 0.0 * step)  # a schedule, whose state counts too
    adam_state, lr_state = tx.init(PARAMS)
    state = (adam_state._replace(count=near_max), lr_state._replace(count=near_max))
    for _ in range(3):
        updates, state = tx.update(GRADS, state, PARAMS)
    assert int(state[0].count) == int(state[1].count) == np.iinfo(np.int32).max
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_learning_rate_in_use_follows_the_schedule():
    tx = jn.adam(lambda step: 0.5**step)
    state = tx.init(PARAMS)
    assert float(jn.learning_rate_in_use(state)) == 1.0
    seen = []
    for _ in range(3):
        _, state = jax.jit(tx.update)(GRADS, state, PARAMS)
        seen.append(float(jn.learning_rate_in_use(state)))
    assert seen == [1.0, 0.5, 0.25]
    assert jn.learning_rate_in_use(jn.ewa(0.9).init(PARAMS)) is None


def test_bias_correction_is_accurate():
    """1 - beta**t against exact double precision, where float32's direct form loses digits."""
    from jaxopt_notes._numerics import bias_correction_factor

    for beta in (0.9, 0.999, 0.9999):
        for t in (1, 2, 3, 10, 1000, 100_000):
            exact = 1 - beta**t
            assert abs(float(bias_correction_factor(beta, jnp.int32(t))) - exact) <= 3e-7 * exact


def test_debiased_average_of_a_constant_is_that_constant():
    tx = jn.ewa(0.98, debias=True)
    state = tx.init(jnp.zeros(2))
    for _ in range(50):
        out, state = tx.update(jnp.array([3.0, -7.0]), state)
        np.testing.assert_allclose(out, [3.0, -7.0], rtol=1e-5)


def test_none_leaves_pass_through_every_transform():
    for name, make in ALL_TRANSFORMS.items():
        tx = make()
        updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS)
        assert updates["frozen"] is None, name


def test_assert_equivalent_reports_the_first_step_and_path():
    with pytest.raises(NotEquivalentError, match=r"step 1: updates\['b'\]"):
        assert_equivalent(jn.sgd(0.1), optax.sgd(0.1 * (1 + 1e-3)), params={"b": jnp.ones(2)})
    with pytest.raises(NotEquivalentError, match=r"step 3: updates\['w'\]"):
        # Equal for two steps, then the schedule differs.
        assert_equivalent(
            jn.sgd(lambda s: jnp.where(s < 2, 0.1, 0.2)), optax.sgd(0.1), params={"w": jnp.ones(2)}, steps=5
        )

    class CastsToFloat32:
        def init(self, params):
            return optax.sgd(0.1).init(params)

        def update(self, grads, state, params=None):
            updates, state = optax.sgd(0.1).update(grads, state, params)
            return jax.tree.map(lambda u: u.astype(jnp.float32), updates), state

    with pytest.raises(NotEquivalentError, match="dtype bfloat16 vs reference float32"):
        assert_equivalent(jn.sgd(0.1), CastsToFloat32(), params={"w": jnp.ones(2, jnp.bfloat16)})
