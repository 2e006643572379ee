"""Plateau detection and reduce-on-plateau (against optax.contrib), alone and through fit."""

import dataclasses
import itertools
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jaxopt_notes as jn
from jaxopt_notes._hyperparams import inject_hyperparams
from jaxopt_notes.training._plateaus import PlateauMonitor, ReduceLROnPlateau, find_plateaus


@dataclasses.dataclass
class StandInEpochEnd:
    """The fields of fit's EpochEnd that callbacks read and write."""

    epoch: int
    step: int
    cost: np.ndarray
    grad_norm: np.ndarray
    learning_rate: np.ndarray
    history: Any = None
    params: Any = None
    opt_state: Any = None
    stop: bool = False


def reference_plateaus(cost, grad_norm, grad_tol, patience, min_cost):
    """Runs of flat steps found with itertools.groupby."""
    flat = [g < grad_tol and c > min_cost for c, g in zip(cost, grad_norm)]
    runs, position = [], 0
    for is_flat, group in itertools.groupby(flat):
        length = len(list(group))
        if is_flat and length >= patience:
            runs.append((position, position + length))
        position += length
    return runs


def test_find_plateaus_worked_example():
    cost = [2.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1]
    grad = [1.0, 1e-5, 1e-5, 1e-5, 1e-5, 0.5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-5]
    # Steps 1-4 are flat and high; 6-8 are flat but only 3 long; 9-11 are flat but low.
    assert find_plateaus(cost, grad, grad_tol=1e-3, patience=4, min_cost=0.5) == [(1, 5)]
    assert find_plateaus(cost, grad, grad_tol=1e-3, patience=3, min_cost=0.5) == [(1, 5), (6, 9)]
    assert find_plateaus(cost, grad, grad_tol=1e-3, patience=3) == [(1, 5), (6, 12)]


def random_run(seed, steps=300):
    rng = np.random.default_rng(seed)
    grad_norm = np.where(rng.random(steps) < 0.8, 1e-5, 1.0)
    cost = np.where(rng.random(steps) < 0.9, 1.0, 0.01)
    return cost, grad_norm


@pytest.mark.parametrize("seed", range(3))
def test_monitor_fed_by_epochs_matches_reference(seed):
    cost, grad_norm = random_run(seed)
    expected = reference_plateaus(cost, grad_norm, 1e-3, 5, 0.1)
    assert find_plateaus(cost, grad_norm, grad_tol=1e-3, patience=5, min_cost=0.1) == expected
    monitor = PlateauMonitor(grad_tol=1e-3, patience=5, min_cost=0.1)
    bounds = [0, 7, 50, 51, 170, 300]
    with pytest.warns(RuntimeWarning, match="plateau"):
        for epoch, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]), 1):
            event = StandInEpochEnd(epoch, stop, cost[start:stop], grad_norm[start:stop], np.zeros(stop - start))
            monitor(event)
            assert not event.stop
    assert monitor.episodes == expected
    assert monitor.flagged
    assert monitor.on_plateau == (expected[-1][1] == 300)


def test_monitor_stops_the_run_and_reports_ongoing_plateau():
    monitor = PlateauMonitor(grad_tol=1e-3, patience=10, stop=True)
    first = StandInEpochEnd(1, 8, np.ones(8), np.full(8, 1e-6), np.zeros(8))
    monitor(first)
    assert not first.stop and not monitor.flagged
    second = StandInEpochEnd(2, 16, np.ones(8), np.full(8, 1e-6), np.zeros(8))
    with pytest.warns(RuntimeWarning, match="steps 0 to 16"):
        monitor(second)
    assert second.stop and monitor.on_plateau and monitor.episodes == [(0, 16)]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: find_plateaus([1.0], [1.0, 2.0], grad_tol=1e-3, patience=1), ValueError, "same length"),
        (lambda: find_plateaus([[1.0]], [[1.0]], grad_tol=1e-3, patience=1), ValueError, "1-D"),
        (lambda: find_plateaus([1.0], [1.0], grad_tol=0.0, patience=1), ValueError, "grad_tol must be > 0"),
        (lambda: PlateauMonitor(patience=0), ValueError, "patience must be an integer >= 1"),
        (lambda: PlateauMonitor(min_cost=float("inf")), ValueError, "min_cost"),
        (lambda: PlateauMonitor()(object()), TypeError, "EpochEnd"),
        (lambda: ReduceLROnPlateau(factor=1.0), ValueError, "factor must be in"),
        (lambda: ReduceLROnPlateau(rtol=0.0, atol=0.0), ValueError, "rtol and atol"),
        (lambda: ReduceLROnPlateau(cooldown=-1), ValueError, "cooldown"),
        (lambda: ReduceLROnPlateau(beta=1.0), ValueError, "beta"),
    ],
)
def test_bad_arguments_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def numpy_smoothed_at_epoch_ends(epoch_costs, beta):
    average, count, ends = 0.0, 0, []
    for costs in epoch_costs:
        for value in costs:
            average = beta * average + (1 - beta) * value
            count += 1
        ends.append(average / (1 - beta**count))
    return ends


@pytest.mark.parametrize(
    "kwargs",
    [
        {"factor": 0.5, "patience": 2},
        {"factor": 0.3, "patience": 1, "cooldown": 2, "rtol": 0.0, "atol": 1e-3},
        {"factor": 0.5, "patience": 1, "min_learning_rate": 0.02},
    ],
)
def test_reduce_on_plateau_matches_optax_contrib(kwargs):
    rng = np.random.default_rng(0)
    # A falling cost that levels off, with noise: some epochs improve, many do not.
    epoch_costs = [1.0 / (1 + e) + 0.3 + 0.05 * rng.standard_normal(10) for e in range(25)]
    optimizer = inject_hyperparams(jn.sgd)(learning_rate=0.1)
    callback = ReduceLROnPlateau(**kwargs)
    state = optimizer.init(jnp.zeros(3))
    rates = []
    for epoch, costs in enumerate(epoch_costs, 1):
        event = StandInEpochEnd(epoch, 10 * epoch, costs, np.ones(10), np.zeros(10), opt_state=state)
        callback(event)
        state = event.opt_state
        rates.append(float(state.hyperparams["learning_rate"]))

    optax_kwargs = {k: v for k, v in kwargs.items() if k != "min_learning_rate"}
    reference = optax.contrib.reduce_on_plateau(**optax_kwargs, min_scale=kwargs.get("min_learning_rate", 0.0) / 0.1)
    reference_state = reference.init(jnp.zeros(3))
    reference_update = jax.jit(reference.update)
    expected = []
    for value in numpy_smoothed_at_epoch_ends(epoch_costs, 0.9):
        _, reference_state = reference_update(jnp.zeros(3), reference_state, value=value)
        expected.append(0.1 * float(reference_state.scale))
    np.testing.assert_allclose(callback.smoothed, numpy_smoothed_at_epoch_ends(epoch_costs, 0.9), rtol=1e-12)
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    assert len(set(rates)) > 1  # the case exercised a reduction


def test_reduce_on_plateau_needs_injected_learning_rate():
    event = StandInEpochEnd(1, 3, np.ones(3), np.ones(3), np.zeros(3), opt_state=jn.sgd(0.1).init(jnp.zeros(2)))
    with pytest.raises(TypeError, match="inject_hyperparams"):
        ReduceLROnPlateau()(event)


def plateau_fit_loss(params, x):
    return jnp.mean(jax.nn.sigmoid(-2.0 * (params[0] + x))) + 0.5 * params[1] ** 2


def test_callbacks_through_fit():
    x = np.asarray(0.01 * np.random.default_rng(0).standard_normal(64), np.float32)
    monitor = PlateauMonitor(grad_tol=1e-3, patience=20, min_cost=0.5, stop=True)
    reduce = ReduceLROnPlateau(factor=0.5, patience=1, atol=1e-3, rtol=0.0)
    optimizer = inject_hyperparams(jn.sgd)(learning_rate=0.1)
    with pytest.warns(RuntimeWarning, match="plateau"):
        _, history = jn.fit(
            plateau_fit_loss, jnp.array([-5.0, 0.0]), optimizer, x,
            batch_size=8, epochs=10, callbacks=[monitor, reduce], progress=False,
        )  # fmt: skip
    # 8 steps an epoch: the plateau reaches 20 steps during epoch 3, and the run stops there.
    assert history.epochs == 3
    assert monitor.episodes == [(0, 24)]
    # The first epoch sets the best cost; no later one improves on it by atol, so the rate
    # halves after epochs 2 and 3, as fit's own history records.
    np.testing.assert_allclose(history.learning_rate, np.repeat([0.1, 0.1, 0.05], 8), rtol=1e-6)
    assert [epoch for epoch, _ in reduce.reductions] == [2, 3]
    np.testing.assert_allclose([rate for _, rate in reduce.reductions], [0.05, 0.025], rtol=1e-6)


@given(
    flat_steps=st.lists(st.booleans(), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=5),
    patience=st.integers(1, 6),
)
def test_epoch_boundaries_never_change_the_episodes(flat_steps, cuts, patience):
    grad_norm = np.where(flat_steps, 1e-6, 1.0)
    cost = np.ones(len(flat_steps))
    expected = reference_plateaus(cost, grad_norm, 1e-3, patience, 0.0)
    assert find_plateaus(cost, grad_norm, grad_tol=1e-3, patience=patience) == expected
    monitor = PlateauMonitor(grad_tol=1e-3, patience=patience)
    bounds = sorted({0, len(flat_steps), *(c for c in cuts if c < len(flat_steps))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for epoch, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:]), 1):
            monitor(StandInEpochEnd(epoch, stop, cost[start:stop], grad_norm[start:stop], np.zeros(stop - start)))
    assert monitor.episodes == expected
