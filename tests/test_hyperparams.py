"""inject_hyperparams / set_hyperparams against optax.inject_hyperparams, and the no-recompile promise."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._hyperparams import InjectStatefulHyperparamsState, inject_hyperparams, set_hyperparams
from jaxopt_notes.schedules import exponential_decay, inverse_time_decay
from jaxopt_notes.testing import assert_equivalent, random_gradients

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}


@pytest.mark.parametrize(
    "schedule",
    [
        exponential_decay(0.05, 0.8, steps_per_epoch=7, first_epoch=0),
        inverse_time_decay(0.2, 1.0, steps_per_epoch=5),
        optax.piecewise_constant_schedule(0.1, {10: 0.5, 30: 0.1}),
    ],
    ids=["exponential", "inverse_time", "optax_piecewise"],
)
def test_equals_optax_inject_hyperparams_adam_over_50_steps(schedule):
    ours = inject_hyperparams(jn.adam)(learning_rate=schedule)
    reference = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
    assert_equivalent(ours, reference, params=PARAMS, steps=50, rtol=1e-5, atol=1e-7)

    # The rate recorded in the state, step by step, is optax's too.
    ours_state, ref_state = ours.init(PARAMS), reference.init(PARAMS)
    update = jax.jit(ours.update)
    for step in range(50):
        grads = random_gradients(jax.random.key(step), PARAMS)
        _, ours_state = update(grads, ours_state, PARAMS)
        _, ref_state = reference.update(grads, ref_state, PARAMS)
        expected = ref_state.hyperparams["learning_rate"]
        np.testing.assert_allclose(ours_state.hyperparams["learning_rate"], expected, rtol=1e-6)
        np.testing.assert_allclose(jn.learning_rate_in_use(ours_state), expected, rtol=1e-6)


def run_with_manual_changes(opt, changes, *, steps, jit, set_value):
    """Drives ``opt`` for ``steps`` steps, applying ``changes[step]`` just before that step."""
    update = jax.jit(opt.update) if jit else opt.update
    state, params, history = opt.init(PARAMS), PARAMS, []
    for step in range(steps):
        if step in changes:
            state = set_value(state, changes[step])
        grads = random_gradients(jax.random.key(100 + step), params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(updates)
    return history


def test_manual_change_takes_effect_on_the_next_step_like_optax():
    changes = {10: {"learning_rate": 0.01}, 15: {"learning_rate": 0.001, "b1": 0.5}}

    def optax_set(state, values):
        # optax's documented way: write into the state's hyperparams dict.
        hyperparams = dict(state.hyperparams)
        hyperparams.update({name: jnp.asarray(value, jnp.float32) for name, value in values.items()})
        return state._replace(hyperparams=hyperparams)

    ours = run_with_manual_changes(
        inject_hyperparams(jn.adam)(learning_rate=0.1),
        changes,
        steps=20,
        jit=True,
        set_value=lambda state, values: set_hyperparams(state, **values),
    )
    reference = run_with_manual_changes(
        optax.inject_hyperparams(optax.adam)(learning_rate=0.1), changes, steps=20, jit=False, set_value=optax_set
    )
    for step, (a, b) in enumerate(zip(ours, reference, strict=True)):
        for leaf_a, leaf_b in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(leaf_a, leaf_b, rtol=1e-5, atol=1e-8, err_msg=f"step {step}")


def test_set_rate_is_the_very_next_step_size():
    opt = inject_hyperparams(jn.sgd)(learning_rate=0.1)
    update = jax.jit(opt.update)
    grads = {"w": jnp.full((2, 3), 2.0), "b": jnp.ones(3)}
    state = opt.init(PARAMS)
    updates, state = update(grads, state)
    np.testing.assert_allclose(updates["w"], -0.2, rtol=1e-6)
    state = set_hyperparams(state, learning_rate=0.01)
    updates, state = update(grads, state)
    np.testing.assert_allclose(updates["w"], -0.02, rtol=1e-6)
    np.testing.assert_allclose(jn.learning_rate_in_use(state), 0.01, rtol=1e-6)


def test_set_hyperparams_does_not_recompile():
    opt = inject_hyperparams(jn.adam)(learning_rate=0.1)
    traces = []

    @jax.jit
    def train_step(params, state):
        traces.append(None)  # runs once per trace, never per call
        grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return jn.apply_updates(params, updates), state

    params, state = PARAMS, opt.init(PARAMS)
    rates = []
    # A Python float, a float64 array and a derived float32 array: all stored alike.
    changes = {4: 0.01, 6: np.float64(0.001), 8: lambda state: state.hyperparams["learning_rate"] / 10}
    for step in range(12):
        if step in changes:
            value = changes[step](state) if callable(changes[step]) else changes[step]
            state = set_hyperparams(state, learning_rate=value)
        params, state = train_step(params, state)
        rates.append(float(jn.learning_rate_in_use(state)))
    assert len(traces) == 1
    np.testing.assert_allclose(rates, [0.1] * 4 + [0.01] * 2 + [0.001] * 2 + [0.0001] * 4, rtol=1e-6)


def test_state_keeps_its_shapes_and_dtypes_through_cond_and_scan():
    opt = inject_hyperparams(jn.adam)(learning_rate=exponential_decay(0.1, 0.9))
    first = opt.init(PARAMS)
    grads = random_gradients(jax.random.key(0), PARAMS)
    _, stepped = opt.update(grads, first, PARAMS)
    changed = set_hyperparams(stepped, b1=0.5, eps=1e-6)
    for other in (stepped, changed):
        # lax.cond demands identical structure, shapes and dtypes in both branches.
        picked = jax.lax.cond(True, lambda: first, lambda: other)  # noqa: B023
        assert jax.tree.structure(picked) == jax.tree.structure(first)
        assert [(x.shape, x.dtype) for x in jax.tree.leaves(other)] == [
            (x.shape, x.dtype) for x in jax.tree.leaves(first)
        ]
    assert all(value.dtype == jnp.float32 and value.shape == () for value in changed.hyperparams.values())

    def body(state, key):
        updates, state = opt.update(random_gradients(key, PARAMS), state, PARAMS)
        return state, jn.learning_rate_in_use(state)

    _, rates = jax.lax.scan(body, changed, jax.random.split(jax.random.key(1), 5))
    np.testing.assert_allclose(rates, 0.1 * 0.9 ** np.arange(2, 7), rtol=1e-6)


def test_set_hyperparams_inside_jit():
    opt = inject_hyperparams(jn.sgd)(learning_rate=0.1)
    state = jax.jit(lambda state, rate: set_hyperparams(state, learning_rate=rate))(opt.init(PARAMS), 0.25)
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 0.25)


def test_static_arguments_stay_static():
    rms = inject_hyperparams(jn.rmsprop)(learning_rate=0.01, eps_in_sqrt=True)
    assert set(rms.init(PARAMS).hyperparams) == {"learning_rate", "beta", "eps", "initial_scale"}
    assert_equivalent(rms, optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=True), params=PARAMS, steps=10)

    nesterov = inject_hyperparams(jn.momentum)(0.05, 0.9, dampened=False, nesterov=True)
    assert set(nesterov.init(PARAMS).hyperparams) == {"learning_rate", "beta"}
    assert_equivalent(nesterov, optax.sgd(0.05, momentum=0.9, nesterov=True), params=PARAMS, steps=10)

    adam_state = inject_hyperparams(jn.adam)(1e-3, mu_dtype=jnp.bfloat16).init(PARAMS)
    assert "mu_dtype" not in adam_state.hyperparams
    assert adam_state.inner_state[0].mu["w"].dtype == jnp.bfloat16


def test_static_args_keeps_integer_arguments_as_python_ints():
    def repeated_sgd(learning_rate, repeats):
        return jn.chain(*[jn.scale(1.0)] * repeats, jn.sgd(learning_rate))

    with pytest.raises(TypeError):
        inject_hyperparams(repeated_sgd)(0.1, 2)  # an array cannot count repetitions
    opt = inject_hyperparams(repeated_sgd, static_args="repeats")(0.1, 2)
    assert set(opt.init(PARAMS).hyperparams) == {"learning_rate"}
    assert_equivalent(opt, optax.sgd(0.1), params=PARAMS, steps=5)


def test_set_hyperparams_finds_the_injected_state_inside_a_wrapper():
    opt = optax.chain(optax.clip(10.0), inject_hyperparams(jn.sgd)(learning_rate=0.1))
    state = set_hyperparams(opt.init(PARAMS), learning_rate=0.5)
    assert isinstance(state[1], InjectStatefulHyperparamsState)
    updates, state = opt.update({"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, state)
    np.testing.assert_allclose(updates["b"], -0.5, rtol=1e-6)


def test_set_hyperparams_errors_name_the_problem():
    scheduled = inject_hyperparams(jn.adam)(learning_rate=exponential_decay(0.1, 0.9)).init(PARAMS)
    with pytest.raises(ValueError, match="learning_rate is driven by a schedule"):
        set_hyperparams(scheduled, learning_rate=0.01)
    with pytest.raises(ValueError, match="unknown hyperparameter 'lr'.*b1"):
        set_hyperparams(scheduled, lr=0.01)
    with pytest.raises(TypeError, match="b1 must be a number"):
        set_hyperparams(scheduled, b1=True)
    with pytest.raises(TypeError, match="b1 must be a number"):
        set_hyperparams(scheduled, b1=lambda step: 0.9)
    with pytest.raises(ValueError, match=r"b1 must have shape \(\)"):
        set_hyperparams(scheduled, b1=jnp.ones(3))
    with pytest.raises(ValueError, match="eps must be finite"):
        set_hyperparams(scheduled, eps=float("nan"))
    with pytest.raises(TypeError, match="give the values"):
        set_hyperparams(scheduled)
    with pytest.raises(TypeError, match="no InjectStatefulHyperparamsState"):
        set_hyperparams(jn.adam(0.1).init(PARAMS), learning_rate=0.01)
    with pytest.raises(ValueError, match="holds 2 InjectStatefulHyperparamsState"):
        set_hyperparams((scheduled, scheduled), b1=0.5)


def test_inject_hyperparams_errors_name_the_problem():
    with pytest.raises(ValueError, match="b1"):
        inject_hyperparams(jn.adam)(learning_rate=0.1, b1=1.5)  # the factory's own check, at build time
    with pytest.raises(ValueError, match="learning_rate"):
        inject_hyperparams(jn.sgd)(learning_rate=lambda step: -0.1)
    with pytest.raises(TypeError, match="adam.*beta1"):
        inject_hyperparams(jn.adam)(learning_rate=0.1, beta1=0.9)
    with pytest.raises(TypeError, match="optimizer_factory must be a callable"):
        inject_hyperparams("adam")
    with pytest.raises(ValueError, match="static_args \\['bogus'\\]"):
        inject_hyperparams(jn.adam, static_args=("bogus",))
    with pytest.raises(TypeError, match="positional-only"):
        inject_hyperparams(lambda learning_rate, /: jn.sgd(learning_rate))
    opt = inject_hyperparams(jn.sgd)(learning_rate=0.1)
    with pytest.raises(ValueError, match="InjectStatefulHyperparamsState made by this optimizer's init"):
        opt.update(PARAMS, jn.sgd(0.1).init(PARAMS))
