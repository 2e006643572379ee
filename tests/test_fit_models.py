"""fit with a framework's model as ``params``: a flax.nnx module (BatchNorm statistics and a
dropout RNG stream carried as model state) and equinox modules (integer and Python fields,
a stateful BatchNorm), each against the same training written by hand in the framework's
own idioms with optax, fed the same shuffles."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxopt_notes as jn

M, D, BATCH = 150, 6, 32  # 4 full minibatches and a remainder of 22
_rng = np.random.default_rng(3)
X = _rng.standard_normal((M, D)).astype(np.float32)
Y = (np.sin(X @ np.linspace(-1.0, 1.0, D)) + 0.1 * _rng.standard_normal(M)).astype(np.float32)
X_VAL = _rng.standard_normal((40, D)).astype(np.float32)
Y_VAL = np.sin(X_VAL @ np.linspace(-1.0, 1.0, D)).astype(np.float32)


def shuffles(epoch, seed=0):
    """The minibatches of epoch ``epoch`` as fit documents them."""
    perm = np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(M)
    return [perm[i : i + BATCH] for i in range(0, M, BATCH)]


def assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol), a, b)


# ---------------------------------------------------------------------------------------------
# flax.nnx


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(D, 16, use_bias=False, rngs=rngs)  # BatchNorm brings the bias
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)  # holds its own RNG stream
        self.out = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(self.dropout(nnx.relu(self.norm(self.hidden(x)))))[:, 0]


def new_net():
    return Net(nnx.Rngs(0, dropout=1))


def nnx_loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


def nnx_mae(model, x, y):
    return jnp.mean(jnp.abs(model(x) - y))


def nnx_by_hand(epochs):
    """The loop an nnx user writes: nnx.Optimizer over the Params, one nnx.jit step per minibatch."""
    model = new_net()
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        cost, grads = nnx.value_and_grad(nnx_loss)(model, x, y)
        optimizer.update(model, grads)
        return cost

    costs = [float(step(model, optimizer, X[rows], Y[rows])) for epoch in range(epochs) for rows in shuffles(epoch)]
    return model, np.array(costs)


def nnx_values(model, kind):
    """The module's variables of ``kind`` as arrays (random keys as their key data)."""

    def plain(leaf):
        return jax.random.key_data(leaf) if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf

    return jax.tree.map(plain, nnx.to_pure_dict(nnx.state(model, kind)))


def test_an_nnx_module_trains_its_params_and_carries_its_batchnorm_statistics():
    passed = new_net()
    before = nnx_values(passed, ...)
    result = jn.fit(
        nnx_loss, passed, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=3, progress=False,
        validation=(X_VAL, Y_VAL), metrics={"mae": nnx_mae},
    )  # fmt: skip
    expected, expected_costs = nnx_by_hand(3)
    trained = result.params
    assert type(trained) is Net and result.model_state is None
    np.testing.assert_allclose(result.history.cost, expected_costs, rtol=2e-5, atol=2e-6)
    assert_trees_close(nnx_values(trained, nnx.Param), nnx_values(expected, nnx.Param))
    assert_trees_close(nnx_values(trained, nnx.BatchStat), nnx_values(expected, nnx.BatchStat))
    moved = np.abs(np.asarray(trained.norm.mean[...]) - np.asarray(passed.norm.mean[...])).max()
    assert moved > 1e-2, "the running statistics must move"
    # The dropout stream advanced once per step, as in the hand-written loop.
    assert int(trained.dropout.rngs.count[...]) == int(expected.dropout.rngs.count[...]) == 3 * 5
    jax.tree.map(np.testing.assert_array_equal, nnx_values(passed, ...), before)  # the caller's module is untouched
    # Held-out values come from the model in evaluation mode: running statistics, no dropout.
    expected.eval()
    np.testing.assert_allclose(result.history.validation["cost"][-1], nnx_loss(expected, X_VAL, Y_VAL), rtol=1e-5)
    np.testing.assert_allclose(result.history.validation["mae"][-1], nnx_mae(expected, X_VAL, Y_VAL), rtol=1e-5)


def test_an_nnx_run_resumed_from_a_checkpoint_equals_an_uninterrupted_one(tmp_path):
    kw = dict(batch_size=BATCH, progress=False)
    whole = jn.fit(nnx_loss, new_net(), jn.adam(1e-2), X, Y, epochs=3, **kw)
    jn.fit(nnx_loss, new_net(), jn.adam(1e-2), X, Y, epochs=2, checkpoint_dir=tmp_path, **kw)
    resumed = jn.fit(nnx_loss, new_net(), jn.adam(1e-2), X, Y, epochs=3, checkpoint_dir=tmp_path, **kw)
    np.testing.assert_array_equal(resumed.history.cost, whole.history.cost)
    jax.tree.map(np.testing.assert_array_equal, nnx_values(resumed.params, ...), nnx_values(whole.params, ...))


def test_callbacks_and_errors_see_the_nnx_module():
    seen = []
    jn.fit(nnx_loss, new_net(), jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=1, progress=False,
           callbacks=[lambda event: seen.append(event)])  # fmt: skip
    assert type(seen[0].params) is Net and seen[0].model_state is None
    poisoned = X.copy()
    poisoned[0] = np.nan
    with pytest.raises(jn.NonFiniteCostError) as caught:
        jn.fit(nnx_loss, new_net(), jn.adam(1e-2), poisoned, Y, batch_size=M, epochs=1, progress=False)
    assert type(caught.value.params) is Net


def test_an_nnx_module_inside_a_pytree_or_with_a_model_state_is_refused_naming_the_recipe():
    with pytest.raises(TypeError, match=r"params\['model'\] is an nnx module; pass the module itself as params"):
        jn.fit(nnx_loss, {"model": new_net()}, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=1, progress=False)
    with pytest.raises(ValueError, match="carries its own state .* pass model_state=None"):
        jn.fit(nnx_loss, new_net(), jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=1, model_state={"n": 0})


# ---------------------------------------------------------------------------------------------
# equinox


class EqxNet(eqx.Module):
    """An MLP that reads its inputs in a fixed order (an integer array field) through
    ``depth`` layers (a plain Python int field)."""

    layers: tuple
    columns: jax.Array
    depth: int

    def __init__(self, key):
        first, second = jax.random.split(key)
        self.layers = (eqx.nn.Linear(D, 16, key=first), eqx.nn.Linear(16, 1, key=second))
        self.columns = jnp.array([5, 0, 4, 1, 3, 2])
        self.depth = 2

    def __call__(self, x):
        h = x[self.columns]
        for layer in self.layers[: self.depth - 1]:
            h = jax.nn.tanh(layer(h))
        return self.layers[-1](h)[0]


def eqx_loss(model, x, y):
    return jnp.mean((jax.vmap(model)(x) - y) ** 2)


def eqx_by_hand(epochs):
    """The loop an equinox user writes: filter the inexact arrays, filter_jit the step."""
    model, optimizer = EqxNet(jax.random.key(0)), optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        cost, grads = eqx.filter_value_and_grad(eqx_loss)(model, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), opt_state, cost

    costs = []
    for epoch in range(epochs):
        for rows in shuffles(epoch):
            model, opt_state, cost = step(model, opt_state, X[rows], Y[rows])
            costs.append(float(cost))
    return model, np.array(costs)


@pytest.mark.parametrize("pack", [False, True])
def test_an_equinox_module_with_integer_fields_trains_as_by_hand(pack):
    passed = EqxNet(jax.random.key(0))
    result = jn.fit(eqx_loss, passed, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=3, pack=pack, progress=False)
    expected, expected_costs = eqx_by_hand(3)
    trained = result.params
    assert type(trained) is EqxNet and trained.depth == 2
    np.testing.assert_array_equal(trained.columns, passed.columns)
    np.testing.assert_allclose(result.history.cost, expected_costs, rtol=2e-5, atol=2e-6)
    assert_trees_close(eqx.filter(trained, eqx.is_array), eqx.filter(expected, eqx.is_array))
    assert_trees_close(eqx.filter(passed, eqx.is_array), eqx.filter(EqxNet(jax.random.key(0)), eqx.is_array), 0, 0)


class EqxBatchNormNet(eqx.Module):
    hidden: eqx.nn.Linear
    norm: eqx.nn.BatchNorm
    out: eqx.nn.Linear

    def __init__(self, key):
        first, second = jax.random.split(key)
        self.hidden = eqx.nn.Linear(D, 16, use_bias=False, key=first)
        self.norm = eqx.nn.BatchNorm(16, axis_name="batch", mode="batch")
        self.out = eqx.nn.Linear(16, 1, key=second)

    def __call__(self, x, state):
        h, state = self.norm(self.hidden(x), state)
        return self.out(jax.nn.relu(h))[0], state


def eqx_state_loss(model, state, x, y):
    batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    predictions, state = batched(x, state)
    return jnp.mean((predictions - y) ** 2), state


def test_an_equinox_module_with_a_stateful_batchnorm_trains_as_by_hand():
    passed, passed_state = eqx.nn.make_with_state(EqxBatchNormNet)(jax.random.key(0))
    result = jn.fit(
        eqx_state_loss, passed, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=2, model_state=passed_state,
        validation=(X_VAL, Y_VAL), progress=False,
    )  # fmt: skip
    model, state = eqx.nn.make_with_state(EqxBatchNormNet)(jax.random.key(0))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, state, opt_state, x, y):
        (cost, state), grads = eqx.filter_value_and_grad(eqx_state_loss, has_aux=True)(model, state, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state, opt_state

    for epoch in range(2):
        for rows in shuffles(epoch):
            model, state, opt_state = step(model, state, opt_state, X[rows], Y[rows])
    params, trained_state, history = result  # the tuple form, with a model state
    assert_trees_close(eqx.filter(params, eqx.is_array), eqx.filter(model, eqx.is_array))
    assert_trees_close(trained_state, state)
    moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(passed_state)))
    assert moved > 1e-2, "the running statistics must move"
    held_out = eqx_state_loss(eqx.nn.inference_mode(model), state, X_VAL, Y_VAL)[0]
    np.testing.assert_allclose(history.validation["cost"][-1], held_out, rtol=1e-5)


def test_importing_and_fitting_a_pytree_loads_neither_flax_nor_equinox():
    code = (
        "import sys, numpy as np, jax.numpy as jnp, jaxopt_notes as jn\n"
        "jn.fit(lambda w, x: jnp.mean((x * w) ** 2), jnp.ones(1), jn.sgd(0.1), np.ones((4, 1), np.float32),\n"
        "       batch_size=2, epochs=1, progress=False)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flax', 'equinox'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "[]", result.stdout
