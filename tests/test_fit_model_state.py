"""fit with a model state and per-step keys: a flax.nnx MLP with BatchNorm and Dropout trained
by fit equals a hand-written jitted optax loop fed the same batches and keys; an interrupted
and resumed run equals an uninterrupted one bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxopt_notes as jn

M, D, CLASSES, BATCH = 150, 8, 3, 32  # 4 full minibatches and a remainder of 22
_rng = np.random.default_rng(1)
X = _rng.standard_normal((M, D)).astype(np.float32)
Y = np.argmax(X[:, :CLASSES] + 0.5 * _rng.standard_normal((M, CLASSES)), axis=1).astype(np.int32)


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        # No bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify.
        self.hidden = nnx.Linear(D, 16, use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(16, rngs=rngs)
        self.dropout = nnx.Dropout(0.3)
        self.out = nnx.Linear(16, CLASSES, rngs=rngs)

    def __call__(self, x, key=None):
        h = nnx.relu(self.norm(self.hidden(x)))
        return self.out(self.dropout(h, rngs=key))


GRAPH, PARAMS, STATE = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)
PARAMS, STATE = nnx.to_pure_dict(PARAMS), nnx.to_pure_dict(STATE)


def loss(params, model_state, x, y, key=None):
    """Training mode (batch statistics, dropout) with a key; evaluation mode without."""
    model = nnx.merge(GRAPH, params, model_state)
    model.train() if key is not None else model.eval()
    cost = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(x, key), y))
    _, _, new_state = nnx.split(model, nnx.Param, ...)
    return cost, nnx.to_pure_dict(new_state)


def shuffles(epoch, seed=0):
    perm = np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(M)
    return [perm[i : i + BATCH] for i in range(0, M, BATCH)]


def reference_run(optimizer, epochs, key):
    """The loop a user writes: one jitted step per host-sliced minibatch, key fold_in(key, t)."""

    @jax.jit
    def step(params, opt_state, model_state, x, y, step_key):
        (cost, model_state), grads = jax.value_and_grad(loss, has_aux=True)(params, model_state, x, y, key=step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, model_state, cost

    params, model_state, opt_state, costs, t = PARAMS, STATE, optimizer.init(PARAMS), [], 0
    for epoch in range(epochs):
        for rows in shuffles(epoch):
            params, opt_state, model_state, cost = step(
                params, opt_state, model_state, X[rows], Y[rows], jax.random.fold_in(key, t)
            )
            costs.append(float(cost))
            t += 1
    return params, model_state, np.array(costs)


def assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
    jax.tree.map(lambda u, v: np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("pack", [False, True])
def test_nnx_batchnorm_dropout_equals_a_hand_written_loop(pack):
    key = jax.random.key(42)
    expected_params, expected_state, expected_costs = reference_run(optax.adam(1e-2), 3, key)
    params, model_state, history = jn.fit(
        loss, PARAMS, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=3, model_state=STATE, key=key, pack=pack,
        progress=False,
    )  # fmt: skip
    assert_trees_close(params, expected_params)
    assert_trees_close(model_state, expected_state)
    np.testing.assert_allclose(history.cost, expected_costs, rtol=2e-5)
    moved = np.abs(np.asarray(model_state["norm"]["mean"]) - np.asarray(STATE["norm"]["mean"]))
    assert moved.max() > 1e-3  # the running statistics were updated


def test_interrupted_and_resumed_equals_uninterrupted_bit_for_bit(tmp_path):
    key = jax.random.key(7)
    common = dict(batch_size=BATCH, model_state=STATE, key=key, progress=False)
    whole = jn.fit(loss, PARAMS, jn.adam(1e-2), X, Y, epochs=4, checkpoint_dir=tmp_path / "a", **common)
    jn.fit(loss, PARAMS, jn.adam(1e-2), X, Y, epochs=2, checkpoint_dir=tmp_path / "b", **common)
    resumed = jn.fit(loss, PARAMS, jn.adam(1e-2), X, Y, epochs=4, checkpoint_dir=tmp_path / "b", **common)
    for got, want in zip(resumed[:2], whole[:2], strict=True):
        jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), got, want)
    np.testing.assert_array_equal(resumed[2].cost, whole[2].cost)
    assert resumed[2].steps == whole[2].steps == 4 * 5


def test_model_state_without_key_counts_steps_and_a_skipped_step_leaves_it():
    """A model state counting the batches it saw: its final value is the number of applied
    steps; the loss never gets ``key=`` when fit has no key; a non-finite step is undone."""
    rows = np.ones((10, 1), np.float32)
    rows[7] = np.nan

    def counting_loss(params, seen, x):
        return jnp.mean((x[:, 0] - params) ** 2), seen + 1

    params, seen, history = jn.fit(counting_loss, jnp.float32(0.0), jn.sgd(0.1), rows, batch_size=1, epochs=1,
                                   model_state=jnp.int32(0), on_nonfinite="skip", progress=False)  # fmt: skip
    assert int(seen) == 9 and history.skipped_steps.tolist() == [1]


def test_bad_model_state_and_key_name_themselves():
    with pytest.raises(TypeError, match="fit: key must be a JAX random key"):
        jn.fit(loss, PARAMS, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=1, model_state=STATE, key=3)
    with pytest.raises(TypeError, match=r"fit: model_state must be a pytree of arrays, got str 'stats'"):
        jn.fit(loss, PARAMS, jn.adam(1e-2), X, Y, batch_size=BATCH, epochs=1, model_state="stats")
