"""Bad input gets a clear error, at construction or at the first update, naming the argument
(or the pytree path), the value and what was expected; nothing is silently cast or ignored."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes import notes

NAN, INF = float("nan"), float("inf")

# (label, factory taking one keyword, the argument's name in the message, what its range says)
HYPERPARAMETERS = [
    ("sgd", lambda v: jn.sgd(v), "learning_rate", "learning_rate"),
    ("momentum.lr", lambda v: jn.momentum(v), "learning_rate", "learning_rate"),
    ("momentum.beta", lambda v: jn.momentum(0.1, v), "beta", "decay"),
    ("momentum.beta.undampened", lambda v: jn.momentum(0.1, v, dampened=False), "beta", "decay_or_one"),
    ("rmsprop.lr", lambda v: jn.rmsprop(v), "learning_rate", "learning_rate"),
    ("rmsprop.beta", lambda v: jn.rmsprop(0.1, v), "beta", "decay"),
    ("rmsprop.eps", lambda v: jn.rmsprop(0.1, 0.9, v), "eps", "nonnegative"),
    ("adam.lr", lambda v: jn.adam(v), "learning_rate", "learning_rate"),
    ("adam.b1", lambda v: jn.adam(0.1, b1=v), "b1", "decay"),
    ("adam.b2", lambda v: jn.adam(0.1, b2=v), "b2", "decay"),
    ("adam.eps", lambda v: jn.adam(0.1, eps=v), "eps", "nonnegative"),
    ("adam.eps_root", lambda v: jn.adam(0.1, eps_root=v), "eps_root", "nonnegative"),
    ("ewa", lambda v: jn.ewa(v), "decay", "decay"),
    ("trace", lambda v: jn.trace(v), "decay", "decay_or_one"),
    ("bias_correction", lambda v: jn.bias_correction(v), "decay", "decay"),
    ("scale_by_rms.eps", lambda v: jn.scale_by_rms(0.9, v), "eps", "nonnegative"),
    ("scale_by_adam.b1", lambda v: jn.scale_by_adam(v), "b1", "decay"),
    ("scale_by_learning_rate", lambda v: jn.scale_by_learning_rate(v), "learning_rate", "learning_rate"),
    ("scale", lambda v: jn.scale(v), "step_size", "finite"),
]

# Bad values per kind of range: (value, exception type, what the message must also say).
BAD_VALUES = {
    "decay": [
        (-0.1, ValueError, r"\[0, 1\)"),
        (1.0, ValueError, r"\[0, 1\)"),
        (1.5, ValueError, r"\[0, 1\)"),
        (NAN, ValueError, r"\[0, 1\)"),
        (1 - 1e-9, ValueError, "rounds to 1.0 in float32"),
        ("0.9", TypeError, "real number"),
        (None, TypeError, "real number"),
        ([0.9], TypeError, "real number"),
    ],
    # No bias correction divides by 1 - decay: 1 is a plain sum, as in optax.
    "decay_or_one": [
        (-0.1, ValueError, r"\[0, 1\]"),
        (1.5, ValueError, r"\[0, 1\]"),
        (NAN, ValueError, r"\[0, 1\]"),
        ("0.9", TypeError, "real number"),
        (None, TypeError, "real number"),
        ([0.9], TypeError, "real number"),
    ],
    "nonnegative": [
        (-1e-8, ValueError, ">= 0"),
        (NAN, ValueError, ">= 0"),
        (INF, ValueError, "finite"),
        ("1e-8", TypeError, "real number"),
        (True, TypeError, "real number"),
    ],
    "learning_rate": [
        (-0.1, ValueError, ">= 0"),
        (NAN, ValueError, ">= 0"),
        (INF, ValueError, "finite"),
        ("0.1", TypeError, "real number"),
        (None, TypeError, "real number"),
        (np.array([0.1, 0.2]), TypeError, "callable schedule"),
        (True, TypeError, "number >= 0 or a callable schedule"),
        (1j, TypeError, "real number"),
    ],
    "finite": [(NAN, ValueError, "finite"), (INF, ValueError, "finite"), ("2", TypeError, "real number")],
}

CASES = [
    pytest.param(factory, name, value, error, extra, id=f"{label}={value!r}")
    for label, factory, name, kind in HYPERPARAMETERS
    for value, error, extra in BAD_VALUES[kind]
]


@pytest.mark.parametrize(("factory", "name", "value", "error", "extra"), CASES)
def test_bad_hyperparameter_names_the_argument_the_value_and_the_range(factory, name, value, error, extra):
    with pytest.raises(error) as caught:
        factory(value)
    message = str(caught.value)
    assert message.startswith(name), message
    value_text = repr(value) if not isinstance(value, np.ndarray) else "array"
    assert value_text in message, message
    assert re.search(extra, message), message


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (lambda dtype: jn.adam(0.1, mu_dtype=dtype), "mu_dtype"),
        (lambda dtype: jn.adam(0.1, nu_dtype=dtype), "nu_dtype"),
        (lambda dtype: jn.rmsprop(0.1, nu_dtype=dtype), "nu_dtype"),
        (lambda dtype: jn.ewa(0.9, dtype=dtype), "dtype"),
    ],
)
@pytest.mark.parametrize("dtype", [jnp.int32, bool, "not-a-dtype"])
def test_bad_moment_dtype(factory, name, dtype):
    with pytest.raises(TypeError, match=rf"^{name} must be None or a floating-point dtype, got"):
        factory(dtype)


def test_other_construction_errors():
    with pytest.raises(ValueError, match="nesterov=True needs dampened=False"):
        jn.momentum(0.1, 0.9, nesterov=True)
    with pytest.raises(TypeError, match="chain: argument 1 must be a gradient transformation.*got int"):
        jn.chain(jn.sgd(0.1), 3)


def test_edges_of_the_ranges_are_accepted():
    for optimizer in [jn.momentum(0.0, 0.0), jn.adam(0.0, b1=0.0, b2=1 - 1e-7, eps=0.0), jn.rmsprop(1e3, 0.0, 0.0)]:
        optimizer.init({"w": jnp.ones(2)})
    jn.sgd(lambda step: 0.1)  # a schedule is any callable
    jn.scale(-2.0)  # a scale factor may be negative


def test_traced_hyperparameters_are_accepted_under_jit():
    """Values traced under jit cannot be checked; they are used as given and match eager."""
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.25])}

    def one_step(lr, b1, b2, eps):
        optimizer = jn.adam(lr, b1, b2, eps)
        return optimizer.update(grads, optimizer.init(params), params)[0]["w"]

    traced = jax.jit(one_step)(0.1, 0.9, 0.999, 1e-8)
    np.testing.assert_array_equal(traced, one_step(0.1, 0.9, 0.999, 1e-8))
    # Out-of-range traced values are the caller's business: no error, visible in the output.
    assert not np.all(np.isfinite(jax.jit(one_step)(0.1, 0.9, 1.0, 0.0)))


LAYERED = {"layer1": {"w": jnp.ones((8, 64)), "b": jnp.zeros(64)}, "layer3": {"w": jnp.ones((64, 32))}}
OPTIMIZERS_CHECKING_UPDATES = {
    "momentum": lambda: jn.momentum(0.1),
    "nesterov": lambda: jn.momentum(0.1, dampened=False, nesterov=True),
    "rmsprop": lambda: jn.rmsprop(0.1),
    "adam": lambda: jn.adam(0.1),
    "ewa": lambda: jn.ewa(0.9),
    "skip_nonfinite(adam)": lambda: jn.skip_nonfinite(jn.adam(0.1)),
}


def replace(tree, **layers):
    return {**tree, **layers}


MISMATCHES = [
    (
        replace(LAYERED, layer3={"w": jnp.ones((32, 64))}),
        r"updates\['layer3'\]\['w'\]: expected \(64, 32\) float32, got \(32, 64\) float32",
    ),
    (
        replace(LAYERED, layer3={"w": jnp.ones((64, 32), jnp.int32)}),
        r"updates\['layer3'\]\['w'\]: expected \(64, 32\) float32, got \(64, 32\) int32",
    ),
    (
        replace(LAYERED, layer3={"w": jnp.ones((64, 32), bool)}),
        r"updates\['layer3'\]\['w'\]: expected \(64, 32\) float32, got \(64, 32\) bool",
    ),
    (replace(LAYERED, layer3={}), r"missing leaf at \['layer3'\]\['w'\]"),
    (replace(LAYERED, layer2={"w": jnp.ones(3)}), r"expected a leaf at \['layer3'\]\['w'\], got one at \['layer2'\]"),
    (
        [jnp.zeros(64), jnp.ones((8, 64)), jnp.ones((64, 32))],
        r"expected a leaf at \['layer1'\]\['b'\], got one at \[0\]",
    ),
]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS_CHECKING_UPDATES))
@pytest.mark.parametrize(("grads", "message"), MISMATCHES)
@pytest.mark.parametrize("jit", [False, True])
def test_mismatched_gradients_report_the_first_differing_path(name, grads, message, jit):
    optimizer = OPTIMIZERS_CHECKING_UPDATES[name]()
    state = optimizer.init(LAYERED)
    update = jax.jit(optimizer.update) if jit else optimizer.update
    with pytest.raises(ValueError, match=message) as caught:
        update(grads, state, LAYERED)
    # The error is ours, raised before any JAX operation: a short traceback, not XLA's.
    assert "jaxopt_notes" in str(caught.traceback[-1].path)


def test_a_state_from_another_optimizer_is_refused():
    with pytest.raises(ValueError, match="scale_by_adam: state must be the ScaleByAdamState made by its init"):
        jn.adam(0.1).update(LAYERED, jn.sgd(0.1).init(LAYERED), LAYERED)
    with pytest.raises(ValueError, match="chain: state must be the tuple of 2 member states"):
        jn.adam(0.1).update(LAYERED, jn.rmsprop(0.1).init(LAYERED), LAYERED)
    optax_state = optax.scale_by_adam().init(LAYERED)  # same class name, optax's class
    with pytest.raises(ValueError, match=r"ScaleByAdamState made by its init, got optax\..*ScaleByAdamState"):
        jn.scale_by_adam().update(LAYERED, optax_state, LAYERED)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, bool])
@pytest.mark.parametrize(
    "factory",
    [
        lambda: jn.sgd(0.1),
        lambda: jn.momentum(0.1),
        lambda: jn.momentum(0.1, dampened=False),
        lambda: jn.rmsprop(0.1),
        lambda: jn.adam(0.1),
        lambda: jn.ewa(0.9),
        lambda: jn.skip_nonfinite(jn.adam(0.1)),
    ],
)
def test_integer_and_boolean_params_are_rejected_at_init(factory, dtype):
    params = {"float": jnp.ones(2), "steps": jnp.ones(3, dtype)}
    with pytest.raises(TypeError, match=rf"params\['steps'\] has dtype {jnp.dtype(dtype)}; only real floating-point"):
        factory().init(params)


def test_optax_masked_is_the_documented_way_around():
    params = {"float": jnp.ones(2), "steps": jnp.ones(3, jnp.int32)}
    optimizer = optax.masked(jn.adam(0.1), {"float": True, "steps": False})
    state = optimizer.init(params)
    updates, _ = optimizer.update({"float": jnp.ones(2), "steps": jnp.zeros(3, jnp.int32)}, state, params)
    assert updates["steps"].dtype == jnp.int32 and np.all(np.asarray(updates["float"]) < 0)


@pytest.mark.parametrize(
    ("schedule", "error", "message"),
    [
        (lambda step: jnp.ones(2), ValueError, r"learning_rate: the schedule must return a scalar, got shape \(2,\)"),
        (lambda step: "fast", ValueError, "could not convert string"),
    ],
)
def test_a_schedule_returning_a_non_scalar(schedule, error, message):
    with pytest.raises(error, match=message):
        jn.sgd(schedule).init({"w": jnp.ones(2)})


def test_nan_learning_rate_from_a_schedule_is_not_hidden():
    """A schedule's value is traced, so it cannot be checked up front; a NaN rate must show in
    the parameters (and in learning_rate_in_use) rather than be clipped or replaced."""
    optimizer = jn.sgd(lambda step: jnp.where(step > 0, math.nan, 0.1))
    params = {"w": jnp.ones(2)}
    state = optimizer.init(params)
    for _ in range(2):
        updates, state = optimizer.update({"w": jnp.ones(2)}, state, params)
        params = jn.apply_updates(params, updates)
    assert np.isnan(float(jn.learning_rate_in_use(state))) and np.all(np.isnan(np.asarray(params["w"])))


def _inject_state():
    return jn.inject_hyperparams(jn.adam)(learning_rate=0.1).init({"w": jnp.ones(2)})


def _fit(**overrides):
    X, Y = np.ones((10, 3), np.float32), np.ones(10, np.float32)
    arguments = {
        "loss_fn": lambda params, x, y: jnp.mean((x @ params["w"] - y) ** 2),
        "params": {"w": jnp.zeros(3)},
        "optimizer": jn.sgd(0.1),
        "X": X,
        "Y": Y,
        "batch_size": 2,
        "epochs": 1,
        "progress": False,
    }
    arguments.update(overrides)
    return jn.fit(**arguments)


_X, _Y = np.ones((10, 3), np.float32), np.ones(10, np.float32)

# (label, call, exception, the argument's name, the bad value as the message shows it)
OTHER_MODULES = [
    ("exponential_decay init_value", lambda: jn.exponential_decay(NAN, 0.5), ValueError, "init_value", "nan"),
    (
        "exponential_decay steps_per_epoch",
        lambda: jn.exponential_decay(0.1, 0.5, steps_per_epoch=0),
        ValueError,
        "steps_per_epoch",
        "0",
    ),
    ("inverse_time_decay decay_rate", lambda: jn.inverse_time_decay(0.1, -1.0), ValueError, "decay_rate", "-1.0"),
    ("inverse_time_decay interval", lambda: jn.inverse_time_decay(0.1, 1.0, interval=0), ValueError, "interval", "0"),
    (
        "inverse_time_decay float steps",
        lambda: jn.inverse_time_decay(0.1, 1.0, steps_per_epoch=2.5),
        TypeError,
        "steps_per_epoch",
        "2.5",
    ),
    ("inverse_sqrt_decay k", lambda: jn.inverse_sqrt_decay(0.1, k=-1.0), ValueError, "k", "-1.0"),
    ("staircase_decay every_epochs", lambda: jn.staircase_decay(0.1, 0.5, 0), ValueError, "every_epochs", "0"),
    (
        "piecewise_constant boundary",
        lambda: jn.piecewise_constant(0.1, {-1: 0.5}),
        ValueError,
        "boundaries_and_scales",
        "-1",
    ),
    (
        "piecewise_constant scale",
        lambda: jn.piecewise_constant(0.1, {5: NAN}),
        ValueError,
        "boundaries_and_scales",
        "nan",
    ),
    ("piecewise_constant list", lambda: jn.piecewise_constant(0.1, [1, 2]), TypeError, "boundaries_and_scales", "list"),
    ("inject_hyperparams factory", lambda: jn.inject_hyperparams(3), TypeError, "optimizer_factory", "3"),
    (
        "inject_hyperparams learning_rate",
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=NAN),
        ValueError,
        "learning_rate",
        "nan",
    ),
    (
        "inject_hyperparams b1",
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=0.1, b1=1.5),
        ValueError,
        "b1",
        "1.5",
    ),
    (
        "set_hyperparams unknown",
        lambda: jn.set_hyperparams(_inject_state(), bogus=1.0),
        ValueError,
        "bogus",
        "learning_rate",
    ),
    (
        "set_hyperparams nan",
        lambda: jn.set_hyperparams(_inject_state(), learning_rate=NAN),
        ValueError,
        "learning_rate",
        "nan",
    ),
    (
        "set_hyperparams shape",
        lambda: jn.set_hyperparams(_inject_state(), learning_rate=jnp.ones(2)),
        ValueError,
        "learning_rate",
        r"\(2,\)",
    ),
    (
        "set_hyperparams no injected state",
        lambda: jn.set_hyperparams(jn.adam(0.1).init({"w": jnp.ones(2)}), learning_rate=0.1),
        TypeError,
        "InjectStatefulHyperparamsState",
        "inject_hyperparams",
    ),
    ("minibatches batch_size", lambda: jn.minibatches(_X, _Y, batch_size=0), ValueError, "batch_size", "0"),
    ("minibatches float batch_size", lambda: jn.minibatches(_X, _Y, batch_size=2.5), TypeError, "batch_size", "2.5"),
    ("minibatches lengths", lambda: jn.minibatches(_X, _Y[:5], batch_size=2), ValueError, "Y", r"\(5,\)"),
    ("minibatches seed", lambda: jn.minibatches(_X, _Y, batch_size=2, seed=-1), ValueError, "seed", "-1"),
    ("minibatches scalar X", lambda: jn.minibatches(np.float32(1), batch_size=2), ValueError, "X", "scalar"),
    ("minibatches empty X", lambda: jn.minibatches(np.zeros((0, 3)), batch_size=2), ValueError, "X", r"\(0, 3\)"),
    ("steps_per_epoch m", lambda: jn.steps_per_epoch(-1, 2), ValueError, "m", "-1"),
    ("random_mini_batches size", lambda: jn.random_mini_batches(_X, _Y, 0), ValueError, "mini_batch_size", "0"),
    (
        "suggest_batch_size bytes",
        lambda: jn.suggest_batch_size(10, -1.0, memory_budget_bytes=1e6),
        ValueError,
        "bytes_per_example",
        "-1.0",
    ),
    (
        "suggest_batch_size budget",
        lambda: jn.suggest_batch_size(10, 4.0, memory_budget_bytes=NAN),
        ValueError,
        "memory_budget_bytes",
        "nan",
    ),
    ("prefetch_to_device size", lambda: jn.prefetch_to_device([1], size=0), ValueError, "size", "0"),
    ("prefetch_to_device iterable", lambda: jn.prefetch_to_device(3), TypeError, "iterable", "3"),
    ("smooth beta", lambda: jn.smooth([1.0, 2.0], 1.5), ValueError, "beta", "1.5"),
    ("smooth 2-D", lambda: jn.smooth([[1.0, 2.0]], 0.9), ValueError, "values", r"\(1, 2\)"),
    ("hessian_extremes loss_fn", lambda: notes.hessian_extremes(3, jnp.ones(2)), TypeError, "loss_fn", "3"),
    (
        "hessian_extremes num_iters",
        lambda: notes.hessian_extremes(jnp.sum, jnp.ones(2), num_iters=0),
        ValueError,
        "num_iters",
        "0",
    ),
    (
        "hessian_extremes vector loss",
        lambda: notes.hessian_extremes(lambda p: 2 * p, jnp.ones(2)),
        ValueError,
        "loss_fn",
        r"\(2,\)",
    ),
    (
        "classify_point grad_tol",
        lambda: notes.classify_point(jnp.sum, jnp.ones(2), grad_tol=-1.0),
        ValueError,
        "grad_tol",
        "-1.0",
    ),
    ("positive_definite_fraction dims", lambda: notes.positive_definite_fraction([0]), ValueError, "dims", "0"),
    (
        "find_plateaus patience",
        lambda: jn.find_plateaus([1.0], [1.0], grad_tol=0.1, patience=0),
        ValueError,
        "patience",
        "0",
    ),
    (
        "find_plateaus lengths",
        lambda: jn.find_plateaus([1.0, 2.0], [1.0], grad_tol=0.1, patience=1),
        ValueError,
        "grad_norm",
        "2 and 1",
    ),
    ("PlateauMonitor grad_tol", lambda: jn.PlateauMonitor(grad_tol=-1.0), ValueError, "grad_tol", "-1.0"),
    ("ReduceLROnPlateau factor", lambda: jn.ReduceLROnPlateau(factor=1.5), ValueError, "factor", "1.5"),
    ("ReduceLROnPlateau patience", lambda: jn.ReduceLROnPlateau(patience=-1), ValueError, "patience", "-1"),
    ("escape_race problem", lambda: notes.escape_race("nope"), ValueError, "problem", "'nope'"),
    ("escape_race max_steps", lambda: notes.escape_race(max_steps=0), ValueError, "max_steps", "0"),
    ("fit batch_size", lambda: _fit(batch_size=0), ValueError, "batch_size", "0"),
    ("fit epochs", lambda: _fit(epochs=-1), ValueError, "epochs", "-1"),
    ("fit on_nonfinite", lambda: _fit(on_nonfinite="ignore"), ValueError, "on_nonfinite", "'ignore'"),
    ("fit optimizer", lambda: _fit(optimizer=3), TypeError, "optimizer", "3"),
    ("fit loss_fn", lambda: _fit(loss_fn=3), TypeError, "loss_fn", "3"),
    ("fit Y length", lambda: _fit(Y=np.ones(4, np.float32)), ValueError, "Y", r"\(4,\)"),
    ("fit integer params", lambda: _fit(params={"w": jnp.zeros(3, jnp.int32)}), TypeError, r"params\['w'\]", "int32"),
    (
        "fit checkpoint_every",
        lambda: _fit(checkpoint_every=0, checkpoint_dir="unused"),
        ValueError,
        "checkpoint_every",
        "0",
    ),
    ("fit beta", lambda: _fit(beta=1.0), ValueError, "beta", "1.0"),
]


@pytest.mark.parametrize(
    ("call", "error", "name", "value"), [pytest.param(*case[1:], id=case[0]) for case in OTHER_MODULES]
)
def test_other_modules_name_the_bad_argument_and_value(call, error, name, value):
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    assert re.search(name, message) and re.search(value, message), message


def test_fit_stops_on_non_finite_data_naming_the_step():
    with pytest.raises(jn.NonFiniteCostError, match="epoch 1, step 1") as caught:
        _fit(X=np.full((10, 3), np.nan, np.float32))
    np.testing.assert_array_equal(caught.value.params["w"], np.zeros(3))
