"""Schedules against closed forms (float64 Python), optax, and transcribed Keras/PyTorch formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxopt_notes as jn
from jaxopt_notes.schedules import (
    exponential_decay,
    inverse_sqrt_decay,
    inverse_time_decay,
    piecewise_constant,
    staircase_decay,
)
from jaxopt_notes.testing import assert_equivalent

RTOL = 2e-5

# Steps far apart: the first few, epoch edges for small steps_per_epoch, and the millions.
# One length for every draw, so eager evaluation reuses its compiled kernels across examples.
step_lists = st.lists(st.integers(0, 20_000_000), min_size=11, max_size=11).map(
    lambda steps: np.array([0, 1, 4999, 5000, 5001, *steps], dtype=np.int32)
)
steps_per_epochs = st.one_of(st.just(1), st.just(5000), st.integers(1, 10_000))
init_values = st.floats(1e-4, 10.0)


def evaluate(schedule, steps):
    """The schedule compiled once, over a traced vector of steps: jit, tracing and vmap at once."""
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)), dtype=np.float64)


def evaluate_eager(schedule, steps):
    """The schedule on an array of steps, op by op (hypothesis examples; jit is tested below)."""
    return np.asarray(schedule(jnp.asarray(steps)), dtype=np.float64)


def assert_matches(ours, expected, scale):
    # atol: values below 1e-30 of alpha0 are float32 underflow on either side.
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=1e-30 * scale)


def test_notes_worked_example():
    # alpha0 = 0.2, decay_rate = 1, epochs numbered from 1 (the default): 0.1, 0.067, 0.05, 0.04.
    schedule = inverse_time_decay(0.2, 1.0, steps_per_epoch=5000)
    steps = np.array([0, 4999, 5000, 9999, 10000, 14999, 15000, 19999])
    expected = [0.1, 0.1, 0.2 / 3, 0.2 / 3, 0.05, 0.05, 0.04, 0.04]
    np.testing.assert_allclose(evaluate(schedule, steps), expected, rtol=1e-6)
    assert [round(float(schedule(5000 * epoch)), 3) for epoch in range(4)] == [0.1, 0.067, 0.05, 0.04]


@given(init_values, st.floats(0.0, 10.0), steps_per_epochs, st.integers(1, 4), st.integers(0, 3), step_lists)
def test_inverse_time_decay_closed_form(init, rate, steps_per_epoch, interval, first_epoch, steps):
    schedule = inverse_time_decay(
        init, rate, steps_per_epoch=steps_per_epoch, interval=interval, first_epoch=first_epoch
    )
    expected = [init / (1 + rate * (first_epoch + int(s) // (steps_per_epoch * interval))) for s in steps]
    assert_matches(evaluate_eager(schedule, steps), expected, init)


@given(init_values, st.floats(0.0, 10.0), steps_per_epochs, st.booleans(), step_lists)
def test_inverse_time_decay_equals_keras_formula(init, rate, decay_steps, staircase, steps):
    # Keras' InverseTimeDecay.__call__, transcribed: p = step / decay_steps (floored when
    # staircase); initial_learning_rate / (1 + decay_rate * p).
    def keras(step):
        p = step / decay_steps
        if staircase:
            p = math.floor(p)
        return init / (1 + rate * p)

    schedule = inverse_time_decay(init, rate, steps_per_epoch=decay_steps, first_epoch=0, staircase=staircase)
    assert_matches(evaluate_eager(schedule, steps), [keras(int(s)) for s in steps], init)


@given(init_values, st.floats(0.5, 1.5), steps_per_epochs, st.integers(0, 3), st.booleans(), step_lists)
def test_exponential_decay_closed_form_and_optax(init, rate, steps_per_epoch, first_epoch, staircase, steps):
    schedule = exponential_decay(
        init, rate, steps_per_epoch=steps_per_epoch, first_epoch=first_epoch, staircase=staircase
    )
    # The rate is applied in float32, so the closed form uses its float32 value: near 1, the
    # rounding of decay_rate itself dominates after millions of steps (optax alike).
    rate32 = float(np.float32(rate))
    exponents = [first_epoch + (int(s) // steps_per_epoch if staircase else int(s) / steps_per_epoch) for s in steps]
    expected = np.array([init * rate32**e if e * math.log(rate32) < 80 else math.inf for e in exponents])
    ours = evaluate_eager(schedule, steps)
    finite = expected < 1e37  # a growing rate (decay_rate > 1) overflows float32 in the end
    assert_matches(ours[finite], expected[finite], init)
    # The documented mapping onto optax: init_value * decay_rate**first_epoch, same decay.
    reference = optax.exponential_decay(
        init * rate**first_epoch, transition_steps=steps_per_epoch, decay_rate=rate, staircase=staircase
    )
    np.testing.assert_allclose(ours[finite], evaluate_eager(reference, steps)[finite], rtol=1e-4, atol=1e-30 * init)


@given(init_values, st.floats(0.0, 4.0), steps_per_epochs, st.integers(1, 3), step_lists)
def test_inverse_sqrt_decay_closed_form(init, k, steps_per_epoch, first_epoch, steps):
    schedule = inverse_sqrt_decay(init, k, steps_per_epoch=steps_per_epoch, first_epoch=first_epoch)
    expected = [k / math.sqrt(first_epoch + int(s) // steps_per_epoch) * init for s in steps]
    assert_matches(evaluate_eager(schedule, steps), expected, init)


def test_inverse_sqrt_decay_per_minibatch_is_k_over_sqrt_t():
    # steps_per_epoch=1: the notes' k / sqrt(t) * alpha0 with t = step + 1 (first update t = 1).
    schedule = inverse_sqrt_decay(0.3, 2.0)
    t = np.arange(1, 1001)
    np.testing.assert_allclose(evaluate(schedule, t - 1), 2.0 / np.sqrt(t) * 0.3, rtol=1e-6)


def test_inverse_sqrt_decay_refuses_epoch_zero():
    with pytest.raises(ValueError, match="first_epoch must be >= 1.*sqrt\\(0\\)"):
        inverse_sqrt_decay(0.1, first_epoch=0)


@given(init_values, st.floats(0.0, 1.0), st.integers(1, 50), steps_per_epochs, step_lists)
def test_staircase_decay_closed_form_and_optax(init, factor, every, steps_per_epoch, steps):
    schedule = staircase_decay(init, factor, every, steps_per_epoch=steps_per_epoch)
    factor32 = float(np.float32(factor))
    expected = [init * factor32 ** (int(s) // (steps_per_epoch * every)) for s in steps]
    ours = evaluate_eager(schedule, steps)
    assert_matches(ours, expected, init)
    if factor32 > 0.0:  # optax turns a zero rate into a constant schedule
        reference = optax.exponential_decay(
            init, transition_steps=steps_per_epoch * every, decay_rate=factor, staircase=True
        )
        np.testing.assert_allclose(ours, evaluate_eager(reference, steps), rtol=1e-4, atol=1e-30 * init)


def test_staircase_decay_halves_every_ten_epochs():
    schedule = staircase_decay(0.4, 0.5, 10, steps_per_epoch=5000)
    epochs = np.arange(40)
    expected = 0.4 * 0.5 ** (epochs // 10)
    np.testing.assert_allclose(evaluate(schedule, epochs * 5000), expected, rtol=1e-7)
    np.testing.assert_allclose(evaluate(schedule, epochs * 5000 + 4999), expected, rtol=1e-7)


tables = st.dictionaries(st.integers(0, 3000), st.floats(0.0, 3.0), max_size=5)


@given(init_values, tables, st.integers(1, 5000), step_lists)
def test_piecewise_constant_closed_form_and_optax(init, table, steps_per_epoch, steps):
    schedule = piecewise_constant(init, table, steps_per_epoch=steps_per_epoch)
    expected = [
        init * math.prod(scale for boundary, scale in table.items() if int(s) // steps_per_epoch >= boundary)
        for s in steps
    ]
    ours = evaluate_eager(schedule, steps)
    assert_matches(ours, expected, init)
    reference = optax.piecewise_constant_schedule(init, {b * steps_per_epoch: s for b, s in table.items()})
    np.testing.assert_allclose(ours, evaluate_eager(reference, steps), rtol=1e-5, atol=1e-12 * init)


def test_piecewise_constant_keras_mapping():
    # Keras PiecewiseConstantDecay(boundaries, values) keeps values[i] while step <= boundaries[i]
    # (transcribed); ours takes boundary b + 1 and the ratio of neighbouring values.
    boundaries, values = [100, 250], [1.0, 0.5, 0.1]

    def keras(step):
        return next((v for b, v in zip(boundaries, values, strict=False) if step <= b), values[-1])

    schedule = piecewise_constant(1.0, {101: 0.5, 251: 0.2})
    steps = np.arange(400)
    np.testing.assert_allclose(evaluate(schedule, steps), [keras(s) for s in steps], rtol=1e-6)


SCHEDULES = {
    "inverse_time": inverse_time_decay(0.2, 1.0, steps_per_epoch=7),
    "inverse_time_continuous": inverse_time_decay(0.2, 0.5, steps_per_epoch=7, staircase=False),
    "exponential": exponential_decay(0.1, 0.95, steps_per_epoch=3, first_epoch=0),
    "exponential_continuous": exponential_decay(0.1, 0.95, steps_per_epoch=3, staircase=False),
    "inverse_sqrt": inverse_sqrt_decay(0.1, 2.0, steps_per_epoch=2),
    "staircase": staircase_decay(0.1, 0.5, 2, steps_per_epoch=3),
    "piecewise": piecewise_constant(0.1, {4: 0.5, 9: 0.1}, steps_per_epoch=2),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_jit_vmap_and_eager_agree_with_one_float_dtype(name):
    schedule = SCHEDULES[name]
    steps = np.arange(60, dtype=np.int32)
    eager = [schedule(int(s)) for s in steps]
    assert all(value.shape == () and value.dtype == jnp.result_type(float) for value in eager)
    traced = jax.jit(schedule)
    np.testing.assert_allclose([traced(jnp.int32(s)) for s in steps[:8]], eager[:8], rtol=1e-6)
    np.testing.assert_allclose(evaluate(schedule, steps), np.asarray(eager, dtype=np.float64), rtol=1e-6)
    # The int32 step count saturates at its maximum: no overflow into a negative epoch.
    assert np.isfinite(float(traced(jnp.int32(2**31 - 1))))


OPTIMIZERS = {
    "sgd": (jn.sgd, optax.sgd),
    "momentum": (lambda lr: jn.momentum(lr, 0.9, dampened=False), lambda lr: optax.sgd(lr, momentum=0.9)),
    "rmsprop": (jn.rmsprop, lambda lr: optax.rmsprop(lr, decay=0.9, eps=1e-8, eps_in_sqrt=False)),
    "adam": (jn.adam, optax.adam),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_schedules_plug_into_every_optimizer(optimizer):
    ours, theirs = OPTIMIZERS[optimizer]
    mine = exponential_decay(0.05, 0.8, steps_per_epoch=4, first_epoch=0)
    reference = optax.exponential_decay(0.05, transition_steps=4, decay_rate=0.8, staircase=True)
    params = {"w": jnp.linspace(-1.0, 1.0, 5), "b": jnp.zeros(())}
    assert_equivalent(ours(mine), theirs(reference), params=params, steps=25)


def test_pytorch_lambda_lr_loop_and_the_one_epoch_lag():
    # A PyTorch-style loop (transcribed): epoch e (0-based) trains with lr0 * lambda(e), and
    # scheduler.step() after the epoch moves to lambda(e + 1). Writing the notes' formula
    # lambda e: 1 / (1 + e) lags the notes by one epoch; lambda e: 1 / (1 + (e + 1)) does not.
    steps_per_epoch, epochs, lr0 = 5, 4, 0.2
    per_step = {"notes_formula": [], "shifted": []}
    for e in range(epochs):
        per_step["notes_formula"] += [lr0 / (1 + e)] * steps_per_epoch
        per_step["shifted"] += [lr0 / (1 + (e + 1))] * steps_per_epoch
    steps = np.arange(steps_per_epoch * epochs)
    zero_based = inverse_time_decay(lr0, 1.0, steps_per_epoch=steps_per_epoch, first_epoch=0)
    notes = inverse_time_decay(lr0, 1.0, steps_per_epoch=steps_per_epoch)
    np.testing.assert_allclose(evaluate(zero_based, steps), per_step["notes_formula"], rtol=1e-6)
    np.testing.assert_allclose(evaluate(notes, steps), per_step["shifted"], rtol=1e-6)
    np.testing.assert_allclose(evaluate(notes, steps)[::steps_per_epoch], [0.1, 0.2 / 3, 0.05, 0.04], rtol=1e-6)


def test_traced_init_value_inside_jit():
    @jax.jit
    def rate(init, step):
        return inverse_time_decay(init, 1.0, steps_per_epoch=10)(step)

    np.testing.assert_allclose(rate(0.2, 25), 0.2 / 4, rtol=1e-6)  # epoch_num = 1 + 25 // 10


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: inverse_time_decay(-0.1, 1.0), ValueError, "init_value"),
        (lambda: inverse_time_decay(0.1, float("nan")), ValueError, "decay_rate"),
        (lambda: inverse_time_decay(0.1, 1.0, steps_per_epoch=0), ValueError, "steps_per_epoch"),
        (lambda: inverse_time_decay(0.1, 1.0, steps_per_epoch=2.5), TypeError, "steps_per_epoch"),
        (lambda: inverse_time_decay(0.1, 1.0, interval=True), TypeError, "interval"),
        (lambda: inverse_time_decay(0.1, 1.0, first_epoch=-1), ValueError, "first_epoch"),
        (lambda: inverse_time_decay(0.1, 1.0, steps_per_epoch=70_000, interval=70_000), ValueError, "int32"),
        (lambda: inverse_time_decay("0.1", 1.0), TypeError, "init_value"),
        (lambda: exponential_decay(0.1, 0.0), ValueError, "decay_rate"),
        (lambda: exponential_decay(0.1, -0.5), ValueError, "decay_rate"),
        (lambda: exponential_decay(0.1, 0.9, first_epoch=1.0), TypeError, "first_epoch"),
        (lambda: inverse_sqrt_decay(0.1, -1.0), ValueError, "k"),
        (lambda: inverse_sqrt_decay(0.1, steps_per_epoch=-3), ValueError, "steps_per_epoch"),
        (lambda: staircase_decay(0.1, -0.5, 10), ValueError, "factor"),
        (lambda: staircase_decay(0.1, 0.5, 0), ValueError, "every_epochs"),
        (lambda: piecewise_constant(0.1, [(10, 0.5)]), TypeError, "boundaries_and_scales must be a mapping"),
        (lambda: piecewise_constant(0.1, {-1: 0.5}), ValueError, "boundary"),
        (lambda: piecewise_constant(0.1, {10: -0.5}), ValueError, "boundaries_and_scales\\[10\\]"),
        (lambda: piecewise_constant(0.1, {2**40: 0.5}), ValueError, "int32"),
    ],
)
def test_bad_arguments_name_the_argument(build, error, match):
    with pytest.raises(error, match=match):
        build()
