"""Transforms and schedules built alike compare equal (``_recipe.equal_by_arguments``), and only
when that is safe; the wrapped functions behave as the plain ones."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._base import GradientTransformation
from jaxopt_notes._recipe import equal_by_arguments


def equal(a, b):
    """Equal and hashed alike (the cache needs both)."""
    return a == b and hash(a) == hash(b)


def test_the_same_factory_and_arguments_compare_equal_however_they_are_written():
    assert equal(jn.adam(1e-2), jn.adam(1e-2))
    assert equal(jn.adam(1e-2), jn.adam(learning_rate=1e-2, b1=0.9))  # bound to the signature, defaults filled
    assert equal(jn.rmsprop(1e-3, eps_in_sqrt=True), jn.rmsprop(1e-3, eps_in_sqrt=True))
    assert equal(jn.sgd(0.1, momentum=0.9), jn.sgd(0.1, momentum=0.9))
    assert equal(jn.exponential_decay(0.1, 0.5), jn.exponential_decay(0.1, 0.5))
    assert equal(jn.adam(jn.exponential_decay(0.1, 0.5)), jn.adam(jn.exponential_decay(0.1, 0.5)))
    assert equal(jn.chain(jn.ewa(0.9), jn.scale(-0.1)), jn.chain(jn.ewa(0.9), jn.scale(-0.1)))


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (lambda: jn.adam(1e-2), lambda: jn.adam(1e-3)),
        (lambda: jn.adam(1e-2), lambda: jn.adamw(1e-2)),
        (lambda: jn.sgd(1), lambda: jn.sgd(1.0)),  # another type can trace to another dtype
        (lambda: jn.sgd(0.1), lambda: jn.sgd(np.float32(0.1))),
        (lambda: jn.sgd(0.0), lambda: jn.sgd(-0.0)),
        (lambda: jn.rmsprop(1e-3), lambda: jn.rmsprop(1e-3, eps_in_sqrt=True)),
        (lambda: jn.exponential_decay(0.1, 0.5), lambda: jn.inverse_time_decay(0.1, 0.5)),
    ],
)
def test_another_factory_or_argument_compares_unequal(one, other):
    assert one() != other()


def test_arguments_whose_equality_is_unsafe_leave_the_transform_equal_only_to_itself():
    rate = jnp.float32(0.1)  # an array: compared only by identity of the transform
    assert jn.sgd(rate) != jn.sgd(rate)
    mask = {"w": True, "b": False}  # a dict can change after the call
    assert jn.add_decayed_weights(1e-2, mask) != jn.add_decayed_weights(1e-2, mask)
    transform = jn.sgd(rate)
    assert transform == transform


def test_callables_of_the_caller_compare_by_identity():
    schedule = lambda step: 0.1 / (1.0 + step)  # noqa: E731
    assert equal(jn.adam(schedule), jn.adam(schedule))
    assert jn.adam(schedule) != jn.adam(lambda step: 0.1 / (1.0 + step))
    clip = optax.clip(1.0)
    assert equal(jn.chain(clip, jn.sgd(0.1)), jn.chain(clip, jn.sgd(0.1)))
    assert jn.chain(optax.clip(1.0), jn.sgd(0.1)) != jn.chain(optax.clip(1.0), jn.sgd(0.1))


def test_inject_hyperparams_of_one_factory_compares_by_its_arguments():
    build = jn.inject_hyperparams(jn.adam)
    assert equal(build(learning_rate=1e-2), jn.inject_hyperparams(jn.adam)(learning_rate=1e-2))
    assert build(learning_rate=1e-2) != build(learning_rate=1e-3)
    assert build(learning_rate=1e-2) != jn.inject_hyperparams(jn.adam, static_args="b1")(learning_rate=1e-2)


def test_a_new_factory_opts_in_with_one_line():
    @equal_by_arguments
    def scale_by_two(extra: float = 0.0) -> GradientTransformation:
        return GradientTransformation(lambda params: (), lambda updates, state, params=None: (updates, state))

    assert equal(scale_by_two(), scale_by_two(extra=0.0))
    assert scale_by_two() != scale_by_two(1.0)
    assert inspect.signature(scale_by_two) == inspect.signature(scale_by_two.__wrapped__)


def test_the_wrapped_functions_behave_as_the_plain_ones():
    params = {"w": jnp.arange(3.0)}
    grads = {"w": jnp.array([0.5, -1.0, 2.0])}
    ours, theirs = jn.adam(1e-2), optax.adam(1e-2)
    assert type(ours) is jn.ElementwiseTransformation
    assert inspect.signature(ours.update) == inspect.signature(ours.update.__wrapped__)
    updates, _ = jax.jit(ours.update)(grads, ours.init(params), params)
    expected, _ = theirs.update(grads, theirs.init(params), params)
    np.testing.assert_allclose(updates["w"], expected["w"], rtol=1e-5)  # optax: 1 - b2**t in float32


def test_a_factory_called_on_traced_values_returns_a_plain_transform():
    @jax.jit
    def step(rate, grads):
        transform = jn.sgd(rate)
        return transform.update(grads, transform.init(grads))[0]

    np.testing.assert_allclose(step(0.5, jnp.ones(2)), -0.5 * np.ones(2))


@pytest.mark.parametrize(
    ("build", "other"),
    [
        (lambda: jn.torch.SGD(0.1, momentum=0.9, dampening=0.9), lambda: jn.torch.SGD(0.1, momentum=0.8)),
        (lambda: jn.torch.Adam(1e-3, betas=(0.9, 0.99)), lambda: jn.torch.Adam(1e-3)),
        (lambda: jn.torch.AdamW(1e-3), lambda: jn.torch.AdamW(1e-3, weight_decay=0.0)),
        (lambda: jn.torch.RMSprop(1e-2, centered=True), lambda: jn.torch.RMSprop(1e-2)),
        (lambda: jn.torch.SGD(jn.torch.StepLR(0.1, 3, steps_per_epoch=5)), lambda: jn.torch.SGD(0.1)),
        (
            lambda: jn.torch.Adam(jn.torch.ExponentialLR(0.1, 0.9, steps_per_epoch=4)),
            lambda: jn.torch.Adam(jn.torch.ExponentialLR(0.1, 0.8, steps_per_epoch=4)),
        ),
    ],
)
def test_the_torch_constructors_compare_by_their_arguments(build, other):
    assert equal(build(), build())
    assert build() != other()


@pytest.mark.parametrize(
    ("build", "other"),
    [
        (lambda: jn.keras.SGD(0.01, momentum=0.9), lambda: jn.keras.SGD(0.01, momentum=0.9, nesterov=True)),
        (lambda: jn.keras.Adam(1e-3, epsilon=1e-7), lambda: jn.keras.Adam(1e-3, epsilon=1e-8)),
        (lambda: jn.keras.AdamW(1e-3, clipnorm=1.0), lambda: jn.keras.AdamW(1e-3)),
        (lambda: jn.keras.RMSprop(1e-3, centered=True), lambda: jn.keras.RMSprop(1e-3)),
        (
            lambda: jn.keras.SGD(jn.keras.ExponentialDecay(0.1, 100, 0.9), momentum=0.9),
            lambda: jn.keras.SGD(jn.keras.ExponentialDecay(0.1, 100, 0.8), momentum=0.9),
        ),
        (
            lambda: jn.keras.Adam(jn.keras.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001])),
            lambda: jn.keras.Adam(jn.keras.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.002])),
        ),
    ],
)
def test_the_keras_constructors_compare_by_their_arguments(build, other):
    assert equal(build(), build())
    assert build() != other()
