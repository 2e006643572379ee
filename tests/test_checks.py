"""One check per kind of argument, one error type per kind of mistake, across the public API;
one cost smoother shared by History and the plateau callback."""

import re
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from jaxopt_notes import notes
from jaxopt_notes._checks import ArgumentTypeError
from jaxopt_notes.training._plateaus import ReduceLROnPlateau

_X, _Y = np.ones((10, 3), np.float32), np.ones(10, np.float32)


def _fit(**overrides):
    arguments = dict(batch_size=2, epochs=1, progress=False) | overrides
    return jn.fit(lambda p, x, y: jnp.mean(x @ p["w"] - y), {"w": jnp.zeros(3)}, jn.sgd(0.1), _X, _Y, **arguments)


INTEGER_ARGUMENTS = {
    "fit batch_size": (lambda v: _fit(batch_size=v), 0),
    "fit epochs": (lambda v: _fit(epochs=v), -1),
    "fit checkpoint_every": (lambda v: _fit(checkpoint_every=v, checkpoint_dir="unused"), 0),
    "fit chunk_steps": (lambda v: _fit(chunk_steps=v), 0),
    "minibatches batch_size": (lambda v: jn.minibatches(_X, batch_size=v), 0),
    "minibatches seed": (lambda v: jn.minibatches(_X, batch_size=2, seed=v), -1),
    "steps_per_epoch m": (lambda v: jn.steps_per_epoch(v, 2), 0),
    "prefetch_to_device size": (lambda v: jn.prefetch_to_device([], size=v), 0),
    "skip_nonfinite max_consecutive": (lambda v: jn.skip_nonfinite(jn.sgd(0.1), max_consecutive=v), -1),
    "find_plateaus patience": (lambda v: jn.find_plateaus([1.0], [1.0], grad_tol=0.1, patience=v), 0),
    "PlateauMonitor patience": (lambda v: jn.PlateauMonitor(patience=v), 0),
    "ReduceLROnPlateau cooldown": (lambda v: jn.ReduceLROnPlateau(cooldown=v), -1),
    "hessian_extremes num_iters": (lambda v: notes.hessian_extremes(jnp.sum, jnp.zeros(2), num_iters=v), 0),
    "positive_definite_fraction num_samples": (lambda v: notes.positive_definite_fraction([2], v), 0),
    "escape_race max_steps": (lambda v: notes.escape_race(max_steps=v), 0),
    "evaluator batch_size": (lambda v: jn.evaluator(lambda p, x, y: jnp.sum(x), _X, _Y, batch_size=v), 0),
    "batch_chunks chunk_steps": (lambda v: jn.batch_chunks(lambda epoch: [], 0, chunk_steps=v), 0),
}


@pytest.mark.parametrize("name", INTEGER_ARGUMENTS)
@pytest.mark.parametrize("wrong_type", [1.5, True, "3"])
def test_a_wrong_type_is_one_error_type_everywhere(name, wrong_type):
    call, _ = INTEGER_ARGUMENTS[name]
    argument = name.split()[-1]
    with pytest.raises(ArgumentTypeError, match=rf"{argument} must be an integer.*got {wrong_type!r}"):
        call(wrong_type)


@pytest.mark.parametrize("name", INTEGER_ARGUMENTS)
def test_a_value_out_of_range_is_a_value_error_not_a_type_error(name):
    call, too_small = INTEGER_ARGUMENTS[name]
    argument = name.split()[-1]
    with pytest.raises(ValueError, match=rf"{argument} must be an integer >= \d, got {too_small}") as caught:
        call(too_small)
    assert not isinstance(caught.value, TypeError)


def test_the_wrong_type_error_is_a_type_error_and_a_value_error():
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


TRANSFORMATION_ARGUMENTS = {
    "chain: argument 1": lambda v: jn.chain(jn.sgd(0.1), v),
    "skip_nonfinite: transform": lambda v: jn.skip_nonfinite(v),
    "fit: optimizer": lambda v: jn.fit(lambda p, x: jnp.sum(p), jnp.zeros(2), v, _X, batch_size=2, epochs=1),
    "optimizers['mine']": lambda v: notes.escape_race(optimizers={"mine": v}),
    "optimizer": lambda v: jn.state_shardings(v, {"w": jnp.ones(2)}),
}


@pytest.mark.parametrize("name", TRANSFORMATION_ARGUMENTS)
def test_a_non_transformation_is_refused_in_one_wording(name):
    expected = f"{name} must be a gradient transformation with init and update, got int 3"
    with pytest.raises(TypeError, match=re.escape(expected)):
        TRANSFORMATION_ARGUMENTS[name](3)


def test_the_plateau_callback_smooths_as_history_does():
    rng = np.random.default_rng(0)
    epochs = [rng.uniform(1.0, 2.0, size=n) for n in (5, 130, 1, 7)]
    epochs[2][0] = np.nan  # a skipped step: left out of both averages
    reduce = ReduceLROnPlateau(patience=100, beta=0.95)
    history = jn.History(beta=0.95)
    state = jn.inject_hyperparams(jn.sgd)(learning_rate=0.1).init({"w": jnp.zeros(2)})
    for number, cost in enumerate(epochs, start=1):
        reduce(SimpleNamespace(epoch=number, cost=cost, opt_state=state))
        history.record_epoch(cost, cost, cost, ~np.isfinite(cost), 0.0)
    ends = np.cumsum([len(cost) for cost in epochs]) - 1
    np.testing.assert_allclose(reduce.smoothed, history.smoothed_cost[ends], rtol=1e-12)


def test_the_shared_smoother_keeps_its_digits_where_one_minus_beta_to_the_t_cancels():
    # 1 - 0.9999999**2 keeps 9 of float64's 16 digits: dividing by it left the smoothed value of
    # a constant cost 4e-11 away from it (the monitor's old formula); -expm1 keeps them all.
    beta = 0.9999999
    reduce = ReduceLROnPlateau(patience=100, beta=beta)
    state = jn.inject_hyperparams(jn.sgd)(learning_rate=0.1).init({"w": jnp.zeros(2)})
    reduce(SimpleNamespace(epoch=1, cost=np.full(2, 3.0), opt_state=state))
    np.testing.assert_allclose(reduce.smoothed, [3.0], rtol=1e-14)
    naive = 0.0
    for _ in range(2):
        naive = beta * naive + (1 - beta) * 3.0
    assert abs(naive / (1 - beta**2) - 3.0) > 1e-11  # what the test would catch
