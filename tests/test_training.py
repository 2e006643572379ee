"""fit against hand-written optax loops fed the same shuffles; smooth against the notes' loop."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._hyperparams import inject_hyperparams, set_hyperparams
from jaxopt_notes.data import minibatches
from jaxopt_notes.schedules import inverse_time_decay
from jaxopt_notes.training._epoch_end import NonFiniteCostError
from jaxopt_notes.training._fit import fit
from jaxopt_notes.training._history import smooth

M, D, BATCH = 203, 3, 20  # 10 full minibatches and a remainder of 3

_rng = np.random.default_rng(0)
X = _rng.standard_normal((M, D)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], np.float32) + 0.3 * _rng.standard_normal(M) > 0).astype(np.float32)
PARAMS = {"w": jnp.zeros(D), "b": jnp.zeros(())}
ADAM = optax.adam(0.05)
SGD = jn.sgd(0.1)
TRACES = []


def logistic_loss(params, x, y):
    TRACES.append(1)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def shuffles(seed, epoch, m=M, batch_size=BATCH, drop_remainder=False):
    perm = np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(m)
    cuts = list(range(0, m, batch_size))
    batches = [perm[i : i + batch_size] for i in cuts]
    return [b for b in batches if len(b) == batch_size] if drop_remainder else batches


def reference_run(optimizer, epochs, *, seed=0, bad_rows=(), drop_remainder=False, skip=False):
    """The loop a user writes with optax, one jitted step per host-sliced minibatch."""
    step = jax.jit(
        lambda p, s, x, y: (lambda c, g: (c, g, *optimizer.update(g, s, p)))(
            *jax.value_and_grad(logistic_loss)(p, x, y)
        )
    )
    params, state, costs = PARAMS, optimizer.init(PARAMS), []
    for epoch in range(epochs):
        for rows in shuffles(seed, epoch, drop_remainder=drop_remainder):
            cost, grads, updates, new_state = step(params, state, X[rows], Y[rows])
            costs.append(float(cost))
            if skip and set(rows) & set(bad_rows):
                continue
            params, state = optax.apply_updates(params, updates), new_state
    return params, np.array(costs)


def test_smooth_equals_the_notes_loop():
    values = np.random.default_rng(1).standard_normal(300) + np.linspace(5, 0, 300)
    for beta in (0.0, 0.5, 0.9, 0.98):
        v, expected, corrected = 0.0, [], []
        for t, theta in enumerate(values, start=1):
            v = beta * v + (1 - beta) * theta
            expected.append(v)
            corrected.append(v / (1 - beta**t))
        np.testing.assert_allclose(smooth(values, beta, debias=False), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(smooth(values, beta), corrected, rtol=1e-12, atol=1e-12)
    with_nan = np.array([1.0, 2.0, np.nan, 3.0])
    np.testing.assert_allclose(smooth(with_nan, 0.5, debias=False)[:2], [0.5, 1.25])
    assert np.isnan(smooth(with_nan, 0.5)[2:]).all()


def test_smooth_rejects_bad_input():
    with pytest.raises(ValueError, match="beta"):
        smooth([1.0], 1.0)
    with pytest.raises(ValueError, match="1-D"):
        smooth(np.ones((2, 2)), 0.9)


def test_fit_equals_the_optax_loop_and_records_history():
    params, history = fit(logistic_loss, PARAMS, ADAM, X, Y, batch_size=BATCH, epochs=3, seed=7, progress=False)
    expected, costs = reference_run(ADAM, 3, seed=7)
    chex_close = dict(rtol=2e-5, atol=2e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **chex_close), params, expected)
    np.testing.assert_allclose(history.cost, costs, **chex_close)
    assert history.cost.shape == (33,) and history.epochs == 3
    np.testing.assert_allclose(history.epoch_cost, costs.reshape(3, 11).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(history.smoothed_cost, smooth(history.cost, 0.9))
    assert np.isnan(history.learning_rate).all()  # optax's adam records no rate
    assert (history.grad_norm > 0).all() and (history.skipped_steps == 0).all()
    assert (history.epoch_time > 0).all()


@pytest.mark.parametrize("batch_size", [M, M + 1])
def test_batch_gradient_descent_is_one_full_step_per_epoch(batch_size):
    # Batch GD: each step is the exact gradient of the whole set (no shuffle is needed), so
    # the run equals plain gradient descent on the full-data cost, written with jax.grad.
    params, history = fit(logistic_loss, PARAMS, jn.sgd(0.5), X, Y, batch_size=batch_size, epochs=4, progress=False)
    expected, costs = PARAMS, []
    for _ in range(4):
        cost, grads = jax.value_and_grad(logistic_loss)(expected, X, Y)
        costs.append(float(cost))
        expected = jax.tree.map(lambda p, g: p - 0.5 * g, expected, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params, expected)
    np.testing.assert_allclose(history.cost, costs, rtol=1e-5)
    assert history.cost.shape == (4,)


def test_learning_rate_grad_norm_and_drop_remainder():
    schedule = inverse_time_decay(0.2, 1.0, steps_per_epoch=10)
    optimizer = jn.sgd(schedule)
    _, history = fit(
        logistic_loss, PARAMS, optimizer, X, Y, batch_size=BATCH, epochs=2, drop_remainder=True, progress=False
    )
    assert history.cost.shape == (20,)
    np.testing.assert_allclose(history.learning_rate, [float(schedule(t)) for t in range(20)], rtol=1e-6)
    params, state = PARAMS, optimizer.init(PARAMS)
    norms = []
    for epoch in range(2):
        for rows in shuffles(0, epoch, drop_remainder=True):
            grads = jax.grad(logistic_loss)(params, X[rows], Y[rows])
            norms.append(float(optax.tree.norm(grads)))
            updates, state = optimizer.update(grads, state, params)
            params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(history.grad_norm, norms, rtol=1e-5)


def test_second_call_does_not_retrace_and_inputs_survive():
    fit(logistic_loss, PARAMS, SGD, X, Y, batch_size=BATCH, epochs=1, progress=False)
    traced = len(TRACES)
    params, _ = fit(logistic_loss, PARAMS, SGD, X + 1, Y, batch_size=BATCH, epochs=2, seed=3, progress=False)
    assert len(TRACES) == traced
    assert float(jnp.sum(jnp.abs(PARAMS["w"]))) == 0.0  # the caller's arrays were not donated
    assert bool(jnp.all(jnp.isfinite(params["w"])))


def test_data_layouts_equal_a_loop_over_numpy_slices():
    """Rows of X and Y are joined into one array when their dtypes match (one gather per
    minibatch) and kept apart otherwise; either way each step sees exactly X[rows], Y[rows]."""
    images = np.stack([X, -X], axis=2)  # (m, 3, 2): X rows with a shape of their own
    pairs = np.stack([Y, 1 - Y], axis=1)  # (m, 2) float32 targets: joined with the images
    labels = Y.astype(np.int32)  # integer labels: a dtype of their own, not joined
    params = {"w": jnp.zeros((6, 2))}

    def soft_loss(p, x, y):
        return jnp.mean(optax.softmax_cross_entropy(x.reshape(len(x), 6) @ p["w"], y))

    def label_loss(p, x, y):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(x.reshape(len(x), 6) @ p["w"], y))

    for loss, x_all, y_all in [
        (soft_loss, images, pairs),
        (soft_loss, jnp.asarray(images), jnp.asarray(pairs)),  # joined on the device
        (soft_loss, images, pairs.astype(np.float64)),  # joined as the float32 JAX holds without x64
        (label_loss, images, labels),
    ]:
        got, history = fit(loss, params, SGD, x_all, y_all, batch_size=BATCH, epochs=1, seed=2, progress=False)
        expected, state, costs = params, SGD.init(params), []
        for rows in shuffles(2, 0):
            cost, grads = jax.value_and_grad(loss)(expected, images[rows], np.asarray(y_all)[rows])
            updates, state = SGD.update(grads, state, expected)
            expected, costs = optax.apply_updates(expected, updates), costs + [float(cost)]
        np.testing.assert_allclose(history.cost, costs, rtol=2e-5)
        np.testing.assert_allclose(got["w"], expected["w"], rtol=2e-5, atol=2e-6)


def poisoned_data(bad_row):
    x = X.copy()
    x[bad_row, 0] = np.inf
    return x


def test_nonfinite_raises_with_epoch_step_and_last_finite_params():
    bad_row = 57
    step_of_bad = next(i for i, rows in enumerate(shuffles(0, 0)) if bad_row in rows)
    with pytest.raises(NonFiniteCostError, match=f"epoch 1, step {step_of_bad + 1}") as caught:
        fit(logistic_loss, PARAMS, SGD, poisoned_data(bad_row), Y, batch_size=BATCH, epochs=2, progress=False)
    error = caught.value
    assert isinstance(error, FloatingPointError) and error.epoch == 1 and error.step == step_of_bad + 1
    params, state = PARAMS, SGD.init(PARAMS)
    for rows in shuffles(0, 0)[:step_of_bad]:
        updates, state = SGD.update(jax.grad(logistic_loss)(params, X[rows], Y[rows]), state, params)
        params = optax.apply_updates(params, updates)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), error.params, params)
    assert error.history.steps == step_of_bad


def test_skip_nonfinite_steps_counts_them():
    bad_row = 57
    params, history = fit(
        logistic_loss,
        PARAMS,
        ADAM,
        poisoned_data(bad_row),
        Y,
        batch_size=BATCH,
        epochs=3,
        on_nonfinite="skip",
        progress=False,
    )
    np.testing.assert_array_equal(history.skipped_steps, [1, 1, 1])
    assert np.isfinite(history.smoothed_cost).all() and np.isfinite(history.epoch_cost).all()
    expected, _ = reference_run(ADAM, 3, bad_rows=[bad_row], skip=True)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), params, expected)


def test_callbacks_stop_and_replace_the_optimizer_state():
    optimizer = inject_hyperparams(jn.sgd)(learning_rate=0.1)
    seen = []

    def freeze_then_stop(event):
        seen.append((event.epoch, event.step, jax.tree.map(np.asarray, event.params)))
        event.opt_state = set_hyperparams(event.opt_state, learning_rate=0.0)
        event.stop = event.epoch == 2

    params, history = fit(
        logistic_loss, PARAMS, optimizer, X, Y, batch_size=BATCH, epochs=5, callbacks=[freeze_then_stop], progress=False
    )
    assert [(e, s) for e, s, _ in seen] == [(1, 11), (2, 22)] and history.epochs == 2
    np.testing.assert_array_equal(history.learning_rate[11:], 0.0)
    jax.tree.map(np.testing.assert_array_equal, params, seen[0][2])


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    whole, whole_history = fit(logistic_loss, PARAMS, ADAM, X, Y, batch_size=BATCH, epochs=4, progress=False)
    fit(logistic_loss, PARAMS, ADAM, X, Y, batch_size=BATCH, epochs=3, checkpoint_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"epoch_00000{i}.npz" for i in (1, 2, 3)]
    latest = tmp_path / "epoch_000003.npz"
    latest.write_bytes(latest.read_bytes()[:-100])  # a save cut short: resume from epoch 2
    with pytest.warns(RuntimeWarning, match="corrupt"):
        resumed, history = fit(
            logistic_loss, PARAMS, ADAM, X, Y, batch_size=BATCH, epochs=4, checkpoint_dir=tmp_path, progress=False
        )
    jax.tree.map(np.testing.assert_array_equal, resumed, whole)
    np.testing.assert_array_equal(history.cost, whole_history.cost)
    np.testing.assert_array_equal(history.smoothed_cost, whole_history.smoothed_cost)


def test_bad_arguments_name_themselves():
    cases = [
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(batch_size=2.5), ValueError, "batch_size"),
        (dict(epochs=-1), ValueError, "epochs"),
        (dict(on_nonfinite="ignore"), ValueError, "on_nonfinite"),
        (dict(beta=1.5), ValueError, "beta"),
        (dict(checkpoint_every=0), ValueError, "checkpoint_every"),
        (dict(mesh="cpu"), TypeError, "mesh"),
    ]
    for kwargs, error, name in cases:
        with pytest.raises(error, match=name):
            fit(logistic_loss, PARAMS, SGD, X, Y, **{"batch_size": BATCH, "epochs": 1, **kwargs})
    with pytest.raises(ValueError, match="Y must have"):
        fit(logistic_loss, PARAMS, SGD, X, Y[:-1], batch_size=BATCH, epochs=1)
    with pytest.raises(ValueError, match="X must hold"):
        fit(logistic_loss, PARAMS, SGD, X[:0], Y[:0], batch_size=BATCH, epochs=1)
    with pytest.raises(TypeError, match="optimizer"):
        fit(logistic_loss, PARAMS, object(), X, Y, batch_size=BATCH, epochs=1)


def test_progress_bar_is_quiet_off_a_terminal(capfd):
    fit(logistic_loss, PARAMS, SGD, X, Y, batch_size=BATCH, epochs=1, progress=True)
    assert capfd.readouterr().err == ""


MESH_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
import tests.test_training as t
from jaxopt_notes.training._fit import fit
assert jax.device_count() == 4
mesh = Mesh(np.array(jax.devices()), ("batch",))
kw = dict(batch_size=t.BATCH, epochs=2, progress=False)
single, h1 = fit(t.logistic_loss, t.PARAMS, t.ADAM, t.X, t.Y, **kw)
sharded, h4 = fit(t.logistic_loss, t.PARAMS, t.ADAM, t.X, t.Y, mesh=mesh, **kw)
assert len(sharded["w"].sharding.device_set) == 4
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), single, sharded)
np.testing.assert_allclose(h1.cost, h4.cost, rtol=1e-5)
# jax.make_mesh's default Explicit axes train exactly as the Auto mesh above.
explicit = jax.make_mesh((4,), ("batch",))
assert explicit.axis_types == (jax.sharding.AxisType.Explicit,)
again, h4e = fit(t.logistic_loss, t.PARAMS, t.ADAM, t.X, t.Y, mesh=explicit, **kw)
jax.tree.map(np.testing.assert_array_equal, sharded, again)
np.testing.assert_array_equal(h4.cost, h4e.cost)
print("ok")
"""


def test_mesh_data_parallel_equals_single_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MESH_SCRIPT)], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_memory_mapped_data_streams_in_chunks(tmp_path):
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    X_mm, Y_mm = np.load(tmp_path / "x.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    params, history = fit(logistic_loss, PARAMS, SGD, X_mm, Y_mm, batch_size=BATCH, epochs=2, chunk_steps=3)
    expected, state, costs, seen = PARAMS, SGD.init(PARAMS), [], []
    for epoch in range(2):
        chunk_seed = int(np.random.SeedSequence([0, epoch]).generate_state(1)[0])
        for x, y in minibatches(X, Y, batch_size=3 * BATCH, seed=chunk_seed):
            for start in range(0, len(x), BATCH):
                xb, yb = x[start : start + BATCH], y[start : start + BATCH]
                cost, grads = jax.value_and_grad(logistic_loss)(expected, xb, yb)
                updates, state = SGD.update(grads, state, expected)
                expected, costs = optax.apply_updates(expected, updates), costs + [float(cost)]
                seen.extend(map(tuple, xb))
    assert sorted(seen) == sorted(map(tuple, np.concatenate([X, X])))  # every example once per epoch
    np.testing.assert_allclose(history.cost, costs, rtol=2e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), params, expected)


def test_packed_fit_equals_unpacked_on_a_many_leaf_model():
    keys = jax.random.split(jax.random.key(1), 24)
    many = {f"w{i}": 0.1 * jax.random.normal(k, (D,)) for i, k in enumerate(keys)}

    def many_leaf_loss(params, x, y):
        assert isinstance(params, dict)  # the loss never sees a Packed
        logits = sum(x @ w for w in params.values()) / len(params)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))

    kw = dict(batch_size=BATCH, epochs=2, progress=False)
    packed, packed_history = fit(many_leaf_loss, many, ADAM, X, Y, pack=True, **kw)
    plain, plain_history = fit(many_leaf_loss, many, ADAM, X, Y, pack=False, **kw)
    assert jax.tree.structure(packed) == jax.tree.structure(many)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), packed, plain)
    np.testing.assert_allclose(packed_history.cost, plain_history.cost, rtol=1e-5)
