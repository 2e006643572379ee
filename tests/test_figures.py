"""The figures' data against independent references: the numbers handed to the plotting
layer must be what the notes' formulas give, written here as plain NumPy loops."""

import numpy as np
import pytest

from jaxopt_notes.notes import _figure_data as figures


def numpy_ewa(values, beta, *, debias):
    average, out = 0.0, []
    for t, theta in enumerate(values.astype(np.float64), start=1):
        average = beta * average + (1 - beta) * theta
        out.append(average / (1 - beta**t) if debias else average)
    return np.array(out)


def numpy_path(rule, start, steps):
    """Runs ``rule(w, grad, state, t) -> (w, state)`` on the elongated bowl from ``start``."""
    curvature = np.array([1.0, 25.0])
    w, state, points = np.array(start, np.float64), {}, [np.array(start, np.float64)]
    for t in range(1, steps + 1):
        w, state = rule(w, curvature * w, state, t)
        points.append(w)
    return np.array(points)


def test_temperature_series_is_a_year_of_seasonal_values():
    series = figures.temperature_series()
    assert series.shape == (365,) and series.dtype == np.float32
    assert series[150:240].mean() - series[:60].mean() > 8


def test_ewa_data_matches_numpy_loop():
    data = figures.ewa_data()
    assert sorted(data.averages) == [0.5, 0.9, 0.98]
    for beta, average in data.averages.items():
        np.testing.assert_allclose(average, numpy_ewa(data.series, beta, debias=True), rtol=2e-5, atol=1e-4)
    smooth, noisy = (np.abs(np.diff(data.averages[b])).mean() for b in (0.98, 0.5))
    assert smooth < noisy / 5


def test_bias_correction_data_matches_numpy_loop():
    data = figures.bias_correction_data(beta=0.98)
    np.testing.assert_allclose(data.raw, numpy_ewa(data.series, 0.98, debias=False), rtol=2e-5, atol=1e-4)
    np.testing.assert_allclose(data.corrected, numpy_ewa(data.series, 0.98, debias=True), rtol=2e-5, atol=1e-4)
    assert data.raw[0] == pytest.approx(0.02 * data.series[0], rel=1e-5)
    assert data.corrected[0] == pytest.approx(data.series[0], rel=1e-5)


def gd_rule(alpha):
    return lambda w, g, state, t: (w - alpha * g, state)


def momentum_rule(alpha, beta):
    def rule(w, g, state, t):
        v = beta * state.get("v", 0.0) + (1 - beta) * g
        return w - alpha * v, {"v": v}

    return rule


def rmsprop_rule(alpha, beta, eps=1e-8):
    def rule(w, g, state, t):
        s = beta * state.get("s", 0.0) + (1 - beta) * g**2
        return w - alpha * g / (np.sqrt(s) + eps), {"s": s}

    return rule


def adam_rule(alpha, b1=0.9, b2=0.999, eps=1e-8):
    def rule(w, g, state, t):
        v = b1 * state.get("v", 0.0) + (1 - b1) * g
        s = b2 * state.get("s", 0.0) + (1 - b2) * g**2
        return w - alpha * (v / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + eps), {"v": v, "s": s}

    return rule


REFERENCE_RULES = {
    "gradient descent (alpha 0.075)": gd_rule(0.075),
    "momentum (alpha 0.075, beta 0.9)": momentum_rule(0.075, 0.9),
    "RMSprop (alpha 0.3, beta 0.9)": rmsprop_rule(0.3, 0.9),
    "Adam (alpha 0.5)": adam_rule(0.5),
}


@pytest.mark.parametrize("compute", [figures.momentum_paths_data, figures.adaptive_paths_data])
def test_contour_paths_match_numpy_loops(compute):
    data = compute(steps=40)
    assert len(data.paths) >= 2
    for name, path in data.paths.items():
        expected = numpy_path(REFERENCE_RULES[name], figures.BOWL_START, 40)
        np.testing.assert_allclose(path, expected, rtol=1e-4, atol=1e-4, err_msg=name)
    cost = 0.5 * (data.grid_x**2 + 25 * data.grid_y**2)
    np.testing.assert_allclose(data.grid_cost, cost, rtol=1e-5)


def test_momentum_damps_the_oscillation_across_the_valley():
    paths = figures.momentum_paths_data(steps=40).paths
    gd, momentum = paths.values()
    sign_changes = [np.count_nonzero(np.diff(np.sign(path[:, 1]))) for path in (gd, momentum)]
    assert sign_changes[1] < sign_changes[0] / 4


def test_schedules_data_matches_closed_forms():
    data = figures.schedules_data(epochs=20, steps_per_epoch=100, alpha0=0.2)
    step = np.arange(2000)
    epoch = 1 + step // 100
    expected = {
        "alpha0 / (1 + decay_rate * epoch), decay_rate 1": 0.2 / (1 + epoch),
        "0.95^epoch * alpha0": 0.2 * 0.95**epoch,
        "k / sqrt(epoch) * alpha0, k 1": 0.2 / np.sqrt(epoch),
        "k / sqrt(t) * alpha0, t the minibatch step": 0.2 / np.sqrt(step + 1),
        "staircase: halve every 5 epochs": 0.2 * 0.5 ** (step // 500),
    }
    assert data.rates.keys() == expected.keys()
    for name, rates in expected.items():
        np.testing.assert_allclose(data.rates[name], rates, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(data.epoch, 1 + step / 100)
    np.testing.assert_allclose(
        data.rates["alpha0 / (1 + decay_rate * epoch), decay_rate 1"][[0, 100, 200, 300]],
        [0.1, 0.0667, 0.05, 0.04],
        atol=1e-4,
    )


def numpy_batch_gd_costs(X, Y, alpha, steps):
    """Cost before each of ``steps`` full-batch gradient steps on the logistic regression."""
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    w, b, costs = np.zeros(X.shape[1]), 0.0, []
    for _ in range(steps):
        z = X @ w + b
        costs.append(np.mean(np.logaddexp(0, z) - Y * z))
        error = 1 / (1 + np.exp(-z)) - Y
        w, b = w - alpha * X.T @ error / len(Y), b - alpha * error.mean()
    return np.array(costs)


def test_batch_vs_minibatch_data_match_a_numpy_gradient_descent():
    from jaxopt_notes.notes import _running_example as compare

    data = figures.batch_vs_minibatch_data(2_000, steps=40, minibatch_size=32)
    problem = compare.generate_logistic(2_000, seed=0)
    np.testing.assert_allclose(data.batch_cost, numpy_batch_gd_costs(problem.X, problem.Y, 0.5, 40), rtol=1e-4)
    assert np.all(np.diff(data.batch_cost) < 0)
    assert len(data.minibatch_cost) == 40 and np.any(np.diff(data.minibatch_cost) > 0)
    assert data.minibatch_cost[-10:].mean() < data.minibatch_cost[0]


def test_minibatch_size_data_cover_every_size_and_batch_gd():
    from jaxopt_notes.notes import _running_example as compare

    data = figures.minibatch_size_data(1_000, sizes=(1, 64, 300), epochs=3)
    assert list(data.smoothed_cost) == [1, 64, 300, 1_000]
    problem = compare.generate_logistic(1_000, seed=0)
    np.testing.assert_allclose(
        data.smoothed_cost[1_000], numpy_batch_gd_costs(problem.X, problem.Y, 0.05, 3), rtol=1e-4
    )
    # 300 does not divide 1,000: epochs of 4 minibatches, the last one holding 100 examples.
    np.testing.assert_allclose(data.epoch[300], [0, 0.3, 0.6, 0.9, 1, 1.3, 1.6, 1.9, 2, 2.3, 2.6, 2.9])
    assert len(data.epoch[1]) == 3_000 and data.epoch[1][-1] == pytest.approx(2.999)
    for size in data.smoothed_cost:
        np.testing.assert_allclose(data.seconds[size], data.epoch[size] * data.seconds_per_epoch[size])
        assert data.seconds_per_epoch[size] > 0
    assert data.smoothed_cost[64][-1] < data.smoothed_cost[64][0]


@pytest.mark.parametrize("problem", ["saddle", "plateau"])
def test_escape_data_paths_follow_the_update_rules(problem):
    from jaxopt_notes.notes import _escape as escape

    data = figures.escape_data(problem)
    spec = {"saddle": escape.SADDLE, "plateau": escape.PLATEAU}[problem]

    def grad(w):
        if problem == "saddle":
            return np.array([w[0], w[1] ** 3 - w[1]])
        s = 1 / (1 + np.exp(2 * w[0]))  # sigmoid(-2 w0)
        return np.array([-2 * s * (1 - s), w[1]])

    rows = {row.name: row for row in data.rows}
    gd = rows["gradient descent"]
    expected = [gd.path[0].astype(np.float64)]
    for _ in range(len(gd.path) - 1):
        expected.append(expected[-1] - spec.learning_rate * grad(expected[-1]))
    np.testing.assert_allclose(gd.path, np.array(expected), rtol=1e-3, atol=1e-3)  # float32 over 1,000 steps
    for row in data.rows:
        assert row.steps is not None and row.losses[-1] < spec.escape_level <= row.losses[:-1].min()
    assert rows["RMSprop"].steps < gd.steps and rows["Adam"].steps < gd.steps
    assert data.grid_cost.shape == data.grid_x.shape
