"""``jn.keras`` optimizers as transformations of this library: states whose layout never
changes across steps (so they pass through ``lax.cond``, ``lax.scan`` and checkpoints), named
as Keras names its variables; element-wise exactly when packing cannot change them (probed);
``inject_hyperparams``-able with Keras' defaults; trained by ``fit``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
import jaxopt_notes.keras  # noqa: F401  (jn.keras)

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}
SCHEDULE = jn.keras.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5)

EVERY_OPTION = [
    ("SGD", lambda: jn.keras.SGD(SCHEDULE, momentum=0.9, nesterov=True, weight_decay=0.1, clipvalue=0.5, use_ema=True)),
    ("SGD plain", lambda: jn.keras.SGD()),
    ("RMSprop", lambda: jn.keras.RMSprop(SCHEDULE, momentum=0.5, centered=True, weight_decay=0.1, global_clipnorm=1.0)),
    ("Adam", lambda: jn.keras.Adam(SCHEDULE, amsgrad=True, clipnorm=1.0, use_ema=True, ema_overwrite_frequency=2)),
    ("AdamW", lambda: jn.keras.AdamW(0.01)),
]


def layout(tree):
    return jax.tree.structure(tree), [(np.shape(leaf), jnp.result_type(leaf)) for leaf in jax.tree.leaves(tree)]


@pytest.mark.parametrize("name, make", EVERY_OPTION, ids=[name for name, _ in EVERY_OPTION])
def test_the_state_keeps_its_layout_across_steps(name, make):
    optimizer = make()
    state = optimizer.init(PARAMS)
    update = jax.jit(optimizer.update)
    params, new_state = PARAMS, state
    for step in range(3):
        updates, new_state = update(
            jax.tree.map(lambda p, s=step: jnp.full_like(p, s + 1.0), params), new_state, params
        )
        params = jn.apply_updates(params, updates)
    assert layout(new_state) == layout(state)
    # Old and new states are interchangeable, as lax.cond and lax.scan demand.
    jax.lax.cond(True, lambda: new_state, lambda: state)


def test_the_step_states_are_named_as_keras_variables():
    _, sgd, *_ = jn.keras.SGD(momentum=0.9).init(PARAMS)
    _, rmsprop, *_ = jn.keras.RMSprop(momentum=0.9, centered=True).init(PARAMS)
    _, adam, decay, *_ = jn.keras.AdamW(amsgrad=True).init(PARAMS)
    assert isinstance(sgd, jn.keras.SGDState) and sgd._fields == ("count", "momentum")
    assert rmsprop._fields == ("count", "velocity", "average_gradient", "momentum")
    assert adam._fields == ("count", "momentum", "velocity", "velocity_hat")
    assert isinstance(decay, jn.keras.WeightDecayState)
    # Keras keeps no buffer for momentum 0 or without amsgrad / centered; nor do these.
    _, plain, *_ = jn.keras.SGD().init(PARAMS)
    _, adam_plain, *_ = jn.keras.Adam().init(PARAMS)
    _, rms_plain, *_ = jn.keras.RMSprop().init(PARAMS)
    assert plain.momentum is None and adam_plain.velocity_hat is None
    assert rms_plain.average_gradient is None and rms_plain.momentum is None


@pytest.mark.parametrize(
    "make, elementwise",
    [
        (
            lambda: jn.keras.Adam(SCHEDULE, weight_decay=0.1, clipvalue=0.1, use_ema=True, ema_overwrite_frequency=2),
            True,
        ),
        (lambda: jn.keras.RMSprop(centered=True, momentum=0.9), True),
        (lambda: jn.keras.SGD(momentum=0.9, clipnorm=0.1), False),
    ],
)
def test_declared_elementwise_exactly_when_packing_cannot_change_it(make, elementwise):
    optimizer = make()
    params = {"big": jnp.ones((4, 4)), "small": jnp.ones(3), "scalar": jnp.asarray(2.0)}
    assert isinstance(optimizer, jn.ElementwiseTransformation) is elementwise
    if elementwise:
        jn.check_elementwise(optimizer, params)
    else:
        with pytest.raises(ValueError):
            jn.check_elementwise(optimizer, params)


def test_global_clipnorm_is_not_declared_elementwise():
    """Its norm sums over every leaf: packed, the sum would run in another order, so it is left
    for fit's probe to decide rather than declared."""
    assert not isinstance(jn.keras.AdamW(global_clipnorm=0.1), jn.ElementwiseTransformation)


@pytest.mark.parametrize("make", [jn.keras.SGD, jn.keras.RMSprop, jn.keras.Adam, jn.keras.AdamW])
def test_inject_hyperparams_takes_keras_defaults_and_sets_the_rate_mid_run(make):
    """Every numeric default becomes an array under inject_hyperparams (momentum 0.0 too, which
    then keeps a buffer whose zero coefficient leaves Keras' numbers as they are)."""
    injected = jn.inject_hyperparams(make)(learning_rate=0.1)
    plain = make(learning_rate=0.1)
    params, state, plain_state = PARAMS, injected.init(PARAMS), plain.init(PARAMS)
    update = jax.jit(injected.update)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    for step in range(4):
        if step == 2:
            state = jn.set_hyperparams(state, learning_rate=0.0)
        updates, state = update(grads, state, params)
        plain_updates, plain_state = plain.update(grads, plain_state, params)
        expected = plain_updates if step < 2 else jax.tree.map(jnp.zeros_like, plain_updates)
        for ours, theirs in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
            # Injected, beta_2 = 0.999 is a float32 array and 1 - beta_2 rounds from it, where
            # the plain constructor (and Keras) rounds the double 1 - 0.999: 1.3e-5 apart.
            np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-7)
        params = jn.apply_updates(params, updates)


def test_fit_trains_with_a_keras_optimizer_and_reports_its_rate():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    Y = X @ np.array([1.0, -2.0, 0.5], np.float32)

    def loss(params, x, y):
        return jnp.mean((x @ params["w"] - y) ** 2)

    seen = []
    optimizer = jn.keras.Adam(jn.keras.PiecewiseConstantDecay([7], [0.1, 0.05]), use_ema=True)
    params, history = jn.fit(
        loss, {"w": jnp.zeros(3)}, optimizer, X, Y, batch_size=16, epochs=3, progress=False,
        callbacks=[lambda end: seen.append(jn.keras.ema_params(end.opt_state)["w"])],
    )  # fmt: skip
    assert history.epoch_cost[-1] < history.epoch_cost[0]
    assert len(seen) == 3 and not np.allclose(seen[-1], params["w"])
    # The rate each step used, at Keras' step numbers: steps 0 to 7 (<= the boundary) at 0.1.
    np.testing.assert_allclose(history.learning_rate, [0.1] * 8 + [0.05] * 4, rtol=1e-6)
