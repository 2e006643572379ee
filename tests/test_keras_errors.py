"""Arguments ``jaxopt_notes.keras`` refuses: every one Keras 3 refuses (checked against Keras),
a few Keras accepts although they are mistakes (checked that Keras does accept them), and the
two options that do not fit a gradient transformation. Each message names the constructor,
the argument and what is allowed."""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
import jaxopt_notes.keras  # noqa: F401  (jn.keras)
from jaxopt_notes._checks import ArgumentTypeError

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

SCHEDULES = {"ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay"}


def build(module, name, kwargs):
    namespace = (
        module.optimizers.schedules if module is keras and name in SCHEDULES else getattr(module, "optimizers", module)
    )
    return getattr(namespace, name)(**kwargs)


REFUSED_BY_BOTH = [
    ("SGD", {"momentum": 1.5}, ValueError, r"keras.SGD: momentum must be in \[0, 1\], got 1.5"),
    ("SGD", {"momentum": -0.1}, ValueError, r"keras.SGD: momentum must be in \[0, 1\], got -0.1"),
    (
        "Adam",
        {"clipnorm": 1.0, "clipvalue": 0.5},
        ValueError,
        r"keras.Adam: only one of clipnorm, clipvalue and global",
    ),
    ("RMSprop", {"global_clipnorm": 1.0, "clipnorm": 2.0}, ValueError, r"keras.RMSprop: only one of clipnorm"),
    (
        "Adam",
        {"use_ema": True, "ema_momentum": 1.5},
        ValueError,
        r"keras.Adam: ema_momentum must be in \[0, 1\], got 1.5",
    ),
    (
        "SGD",
        {"use_ema": True, "ema_overwrite_frequency": -1},
        ValueError,
        r"ema_overwrite_frequency must be an integer >= 1",
    ),
    (
        "SGD",
        {"use_ema": True, "ema_overwrite_frequency": 2.5},
        ArgumentTypeError,
        r"ema_overwrite_frequency must be an integer",
    ),
    ("Adam", {"gradient_accumulation_steps": 1}, ValueError, r"keras.Adam: gradient_accumulation_steps=1 does not fit"),
    ("AdamW", {"weight_decay": None}, ValueError, r"keras.AdamW: weight_decay must be a number .*got None"),
    (
        "Adam",
        {"learning_rate": "fast"},
        ArgumentTypeError,
        r"keras.Adam: learning_rate must be a real number, got .fast.",
    ),
    ("SGD", {"learning_rate": None}, ArgumentTypeError, r"keras.SGD: learning_rate must be a real number, got None"),
    (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.9},
        ValueError,
        r"ExponentialDecay: decay_steps must be a number > 0, got 0",
    ),
    (
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": -5, "decay_rate": 0.9},
        ValueError,
        r"InverseTimeDecay: decay_steps must be a number > 0, got -5",
    ),
    (
        "PiecewiseConstantDecay",
        {"boundaries": [10, 20], "values": [0.1, 0.01]},
        ValueError,
        r"values must hold one more entry than boundaries, got 2 boundaries and 2 values",
    ),
]


@pytest.mark.parametrize("name, kwargs, error, message", REFUSED_BY_BOTH)
def test_what_keras_refuses_is_refused_with_our_message(name, kwargs, error, message):
    with pytest.raises(ValueError):  # Keras' own refusal
        build(keras, name, kwargs)
    with pytest.raises(error, match=message):
        build(jn.keras, name, kwargs)


REFUSED_HERE_ONLY = [
    ("Adam", {"learning_rate": -0.1}, ValueError, r"keras.Adam: learning_rate must be a finite number >= 0, got -0.1"),
    ("Adam", {"beta_1": 1.0}, ValueError, r"keras.Adam: beta_1 must be in \[0, 1\), got 1.0"),
    ("AdamW", {"beta_2": 1.5}, ValueError, r"keras.AdamW: beta_2 must be in \[0, 1\), got 1.5"),
    ("Adam", {"epsilon": -1e-7}, ValueError, r"keras.Adam: epsilon must be a finite number >= 0"),
    ("RMSprop", {"rho": 1.0}, ValueError, r"keras.RMSprop: rho must be in \[0, 1\), got 1.0"),
    ("RMSprop", {"momentum": -0.5}, ValueError, r"keras.RMSprop: momentum must be in \[0, 1\], got -0.5"),
    ("RMSprop", {"epsilon": float("nan")}, ValueError, r"keras.RMSprop: epsilon must be a finite number >= 0"),
    ("SGD", {"nesterov": True}, ValueError, r"keras.SGD: nesterov=True needs momentum > 0, got momentum=0.0"),
    (
        "SGD",
        {"clipnorm": -1.0},
        ValueError,
        r"keras.SGD: clipnorm must be a number > 0 or None \(no clipping\), got -1.0",
    ),
    ("Adam", {"clipvalue": 0.0}, ValueError, r"keras.Adam: clipvalue must be a number > 0 or None"),
    ("Adam", {"weight_decay": float("inf")}, ValueError, r"keras.Adam: weight_decay must be a finite number, got inf"),
    ("SGD", {"ema_overwrite_frequency": 5}, ValueError, r"keras.SGD: ema_overwrite_frequency=5 needs use_ema=True"),
    (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": -0.5},
        ValueError,
        r"ExponentialDecay: decay_rate must be a finite number >= 0, got -0.5",
    ),
    (
        "InverseTimeDecay",
        {"initial_learning_rate": -0.1, "decay_steps": 10, "decay_rate": 0.5},
        ValueError,
        r"InverseTimeDecay: initial_learning_rate must be a finite number >= 0",
    ),
    (
        "PiecewiseConstantDecay",
        {"boundaries": [20, 10], "values": [0.1, 0.01, 0.001]},
        ValueError,
        r"boundaries must increase strictly, got \[20, 10\]",
    ),
    (
        "PiecewiseConstantDecay",
        {"boundaries": [2.5], "values": [0.1, 0.01]},
        ArgumentTypeError,
        r"boundaries\[0\] must be an integer step, got 2.5 \(Keras casts it",
    ),
]


@pytest.mark.parametrize("name, kwargs, error, message", REFUSED_HERE_ONLY)
def test_mistakes_keras_lets_pass_are_refused_here(name, kwargs, error, message):
    build(keras, name, kwargs)  # Keras accepts them (and silently ignores, ascends or divides by zero)
    with pytest.raises(error, match=message):
        build(jn.keras, name, kwargs)


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adam", "AdamW"])
def test_loss_scaling_is_refused_with_the_way_to_do_it(name):
    with pytest.raises(
        ValueError, match=rf"keras.{name}: loss_scale_factor=128.0 does not fit .*jn.scale\(1 / factor\)"
    ):
        build(jn.keras, name, {"loss_scale_factor": 128.0})


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adam", "AdamW"])
def test_gradient_accumulation_is_refused_naming_optax_multisteps(name):
    with pytest.raises(ValueError, match=rf"keras.{name}: gradient_accumulation_steps=4 .*optax.MultiSteps\("):
        build(jn.keras, name, {"gradient_accumulation_steps": 4})


def test_piecewise_constant_without_a_boundary_is_refused_where_keras_fails_when_called():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([], [0.1])
    with pytest.raises(IndexError):
        schedule(0)
    with pytest.raises(ValueError, match=r"boundaries must hold at least one step .*pass the number itself"):
        jn.keras.PiecewiseConstantDecay([], [0.1])


def test_integer_rates_and_momenta_keras_refuses_for_their_type_mean_the_same_numbers_here():
    """Keras refuses ``learning_rate=1`` and ``momentum=0`` for not being floats; they name the
    same numbers as 1.0 and 0.0, so these accept them and step alike."""
    with pytest.raises(ValueError):
        keras.optimizers.SGD(learning_rate=1)
    params, grads = jnp.linspace(-1.0, 1.0, 4), jnp.ones(4)
    steps = []
    for rate, momentum in ((1, 0), (1.0, 0.0)):
        optimizer = jn.keras.SGD(learning_rate=rate, momentum=momentum)
        steps.append(optimizer.update(grads, optimizer.init(params), params)[0])
    np.testing.assert_array_equal(steps[0], steps[1])


def test_a_stage_that_needs_params_says_so():
    optimizer = jn.keras.AdamW(0.1)
    with pytest.raises(ValueError, match="keras weight_decay: update needs params"):
        optimizer.update(jnp.ones(2), optimizer.init(jnp.zeros(2)))
    optimizer = jn.keras.SGD(0.1, use_ema=True)
    with pytest.raises(ValueError, match="keras use_ema: update needs params"):
        optimizer.update(jnp.ones(2), optimizer.init(jnp.zeros(2)))


def test_ema_params_without_use_ema_says_how_to_get_them():
    state = jn.keras.Adam().init(jnp.zeros(2))
    with pytest.raises(ValueError, match=r"no moving average of the weights; build the optimizer with use_ema=True"):
        jn.keras.ema_params(state)


def test_integer_parameters_are_refused_with_their_path():
    with pytest.raises(TypeError, match=r"keras.Adam: params\['steps'\] has dtype int32"):
        jn.keras.Adam().init({"steps": jnp.ones(3, jnp.int32)})
