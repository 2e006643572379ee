"""Our optimizers inside real client code, each against the same run with optax's optimizer:
flax.nnx (BatchNorm, an extra argument, nnx.jit), flax.linen's TrainState, equinox, and
optax's combinators around ours. Run with ``-s`` to see the largest difference
from optax per client and optimizer (the numbers in the closing note)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx
from flax.training import train_state

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent

SCHEDULE = jn.exponential_decay(0.05, 0.8, steps_per_epoch=5, first_epoch=0)
SET_AT, NEW_RATE = 10, 1e-3

# (name, ours, optax's): the families the issue names, with matching arguments.
OPTIMIZERS = [
    ("adam", lambda: jn.adam(1e-2), lambda: optax.adam(1e-2)),
    (
        "momentum (notes)",
        lambda: jn.momentum(0.05, 0.9),
        lambda: optax.chain(optax.ema(0.9, debias=False), optax.scale_by_learning_rate(0.05)),
    ),
    ("momentum undampened", lambda: jn.momentum(0.05, 0.9, dampened=False), lambda: optax.sgd(0.05, 0.9)),
    ("rmsprop", lambda: jn.rmsprop(0.01), lambda: optax.rmsprop(0.01, eps_in_sqrt=False)),
    ("rmsprop eps_in_sqrt", lambda: jn.rmsprop(0.01, eps_in_sqrt=True), lambda: optax.rmsprop(0.01)),
    ("sgd schedule", lambda: jn.sgd(SCHEDULE), lambda: optax.sgd(SCHEDULE)),
    (
        "inject_hyperparams(adam) + set_hyperparams",
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=1e-2),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
    ),
]
IDS = [name for name, _, _ in OPTIMIZERS]
INJECTED = (jn.InjectStatefulHyperparamsState, optax.InjectStatefulHyperparamsState)
# Adam's float32 bias correction in optax keeps ~5 digits (see test_equivalence); 20 steps of
# training carry it into the weights.
RTOL, ATOL = 2e-4, 2e-6


def largest_difference(client, name, ours, reference):
    worst = 0.0
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{client} {name}")
        worst = max(worst, float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0)))
    print(f"\nlargest difference from optax: {client} / {name}: {worst:.3g}")


DATA_X = jax.random.normal(jax.random.key(1), (16, 3))
DATA_Y = jnp.sin(DATA_X.sum(axis=1, keepdims=True))


class NnxModel(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(3, 8, use_bias=False, rngs=rngs)  # BatchNorm cancels a bias here
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.out = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(jax.nn.relu(self.norm(self.hidden(x))))


def run_nnx(tx, traces):
    model = NnxModel(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        traces.append(None)

        def loss_fn(model):
            return jnp.mean((model(x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads, value=loss)  # an extra argument, as optax's optimizers take
        return loss

    for index in range(20):
        if index == SET_AT and isinstance(optimizer.opt_state, INJECTED):
            optimizer.opt_state = jn.set_hyperparams(optimizer.opt_state, learning_rate=NEW_RATE)
        step(model, optimizer, DATA_X, DATA_Y)
    return nnx.state(model)


@pytest.mark.parametrize("name, ours, reference", OPTIMIZERS, ids=IDS)
def test_flax_nnx_optimizer_with_batchnorm_and_an_extra_argument(name, ours, reference):
    ours_traces, ref_traces = [], []
    ours_state = run_nnx(ours(), ours_traces)
    ref_state = run_nnx(reference(), ref_traces)
    largest_difference("flax.nnx.Optimizer", name, ours_state, ref_state)
    # set_hyperparams kept nnx's containers: nnx.jit traced once, before and after the change.
    assert len(ours_traces) == len(ref_traces) == 1


class LinenModel(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(1)(jax.nn.tanh(linen.Dense(8)(x)))


def run_linen(tx):
    model = LinenModel()
    state = train_state.TrainState.create(apply_fn=model.apply, params=model.init(jax.random.key(0), DATA_X), tx=tx)

    @jax.jit
    def step(state):
        grads = jax.grad(lambda p: jnp.mean((state.apply_fn(p, DATA_X) - DATA_Y) ** 2))(state.params)
        return state.apply_gradients(grads=grads)

    for index in range(20):
        if index == SET_AT and isinstance(state.opt_state, INJECTED):
            state = state.replace(opt_state=jn.set_hyperparams(state.opt_state, learning_rate=NEW_RATE))
        state = step(state)
    return state.params


@pytest.mark.parametrize("name, ours, reference", OPTIMIZERS, ids=IDS)
def test_flax_linen_train_state(name, ours, reference):
    largest_difference("flax.training.TrainState", name, run_linen(ours()), run_linen(reference()))


def run_equinox(tx):
    model = eqx.nn.MLP(3, 1, 8, 2, key=jax.random.key(0))
    state = tx.init(eqx.filter(model, eqx.is_array))  # None where the model holds no array

    @eqx.filter_jit
    def step(model, state):
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(DATA_X) - DATA_Y) ** 2))(model)
        updates, state = tx.update(grads, state, eqx.filter(model, eqx.is_array), value=loss)
        return eqx.apply_updates(model, updates), state

    for index in range(20):
        if index == SET_AT and isinstance(state, INJECTED):
            state = jn.set_hyperparams(state, learning_rate=NEW_RATE)
        model, state = step(model, state)
    return eqx.filter(model, eqx.is_array)


@pytest.mark.parametrize("name, ours, reference", OPTIMIZERS, ids=IDS)
def test_equinox_filtered_model(name, ours, reference):
    largest_difference("equinox", name, run_equinox(ours()), run_equinox(reference()))


PARAMS = {"dense": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.1, 0.4, 4)}, "s": jnp.ones(2)}
LABELS = {"dense": {"w": "adam", "b": "sgd"}, "s": "sgd"}
MASK = {"dense": {"w": True, "b": False}, "s": True}
PLATEAU = {"patience": 2, "factor": 0.5, "cooldown": 0}


def adam_on_plateau(learning_rate):
    return jn.chain(jn.adam(learning_rate), optax.contrib.reduce_on_plateau(**PLATEAU))


# Optax's combinators around ours, against the same combinators around optax's.
COMBINATORS = [
    (
        "multi_transform",
        lambda: optax.multi_transform({"adam": jn.adam(1e-2), "sgd": jn.sgd(0.1)}, LABELS),
        lambda: optax.multi_transform({"adam": optax.adam(1e-2), "sgd": optax.sgd(0.1)}, LABELS),
    ),
    ("masked", lambda: optax.masked(jn.adam(1e-2), MASK), lambda: optax.masked(optax.adam(1e-2), MASK)),
    (
        "MultiSteps",
        lambda: optax.MultiSteps(jn.adam(1e-2), every_k_schedule=3),
        lambda: optax.MultiSteps(optax.adam(1e-2), every_k_schedule=3),
    ),
    (
        "apply_if_finite",
        lambda: optax.apply_if_finite(jn.adam(1e-2), 3),
        lambda: optax.apply_if_finite(optax.adam(1e-2), 3),
    ),
    (
        "optax.inject_hyperparams(jn.adam)",
        lambda: optax.inject_hyperparams(jn.adam)(learning_rate=1e-2),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1e-2),
    ),
    (
        "jn.chain(adam, reduce_on_plateau)",
        lambda: jn.chain(jn.adam(1e-2), optax.contrib.reduce_on_plateau(**PLATEAU)),
        lambda: optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(**PLATEAU)),
    ),
    (
        "optax.chain(jn.adam, reduce_on_plateau)",
        lambda: optax.chain(jn.adam(1e-2), optax.contrib.reduce_on_plateau(**PLATEAU)),
        lambda: optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(**PLATEAU)),
    ),
    (
        "skip_nonfinite(chain(momentum, reduce_on_plateau))",
        lambda: jn.skip_nonfinite(
            jn.chain(jn.momentum(0.05, dampened=False), optax.contrib.reduce_on_plateau(**PLATEAU))
        ),
        lambda: optax.apply_if_finite(
            optax.chain(optax.sgd(0.05, 0.9), optax.contrib.reduce_on_plateau(**PLATEAU)), 10
        ),
    ),
    (
        "inject_hyperparams(chain(adam, reduce_on_plateau))",
        lambda: jn.inject_hyperparams(adam_on_plateau)(learning_rate=1e-2),
        lambda: optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(**PLATEAU)),
    ),
]


@pytest.mark.parametrize("name, ours, reference", COMBINATORS, ids=[c[0] for c in COMBINATORS])
def test_optax_combinators_around_ours(name, ours, reference):
    # A constant loss: reduce_on_plateau halves the rate every 3 steps, which it can only do if
    # the `value` extra argument reaches it through our chain, wrappers and optimizers.
    worst = assert_equivalent(
        ours(), reference(), params=PARAMS, steps=20, rtol=5e-5, atol=1e-6, extra_args={"value": jnp.asarray(1.0)}
    )
    print(f"\nlargest difference from optax: combinator / {name}: {worst:.3g}")


def test_extra_arguments_are_accepted_and_ignored_where_unused():
    """The failures of the issue, verbatim: a TypeError on ``value=`` before."""
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    for tx in [
        jn.adam(1e-3),
        jn.sgd(0.1),
        jn.momentum(0.1),
        jn.rmsprop(0.1),
        jn.adamw(1e-3),
        jn.trace(0.9),
        jn.ewa(0.9),
    ]:
        plain, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
        with_value, _ = tx.update(grads, tx.init(PARAMS), PARAMS, value=jnp.asarray(2.0), other="ignored")
        jax.tree.map(np.testing.assert_array_equal, with_value, plain)
        assert isinstance(tx, optax.GradientTransformationExtraArgs)
    tx = jn.chain(jn.adam(1e-3), optax.contrib.reduce_on_plateau())
    tx.update(grads, tx.init(PARAMS), PARAMS, value=jnp.asarray(1.0))
    with pytest.raises(TypeError):  # a member that needs `value` still gets it only when given
        tx.update(grads, tx.init(PARAMS), PARAMS)
