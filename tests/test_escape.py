"""The escape race: consistent rows, an independent NumPy gradient-descent path, the notes' claim."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import jaxopt_notes as jn
from jaxopt_notes.notes._escape import PLATEAU, SADDLE, EscapeProblem, escape_race, plateau_loss, saddle_loss


def numpy_gradient_descent(start, rate, steps):
    path = [np.asarray(start, np.float64)]
    for _ in range(steps):
        w0, w1 = path[-1]
        path.append(path[-1] - rate * np.array([w0, w1**3 - w1]))  # the gradient of saddle_loss
    return np.array(path)


def test_escape_race_rows_are_consistent():
    rows = escape_race("saddle", seed=3)
    assert [row.name for row in rows] == ["gradient descent", "momentum", "momentum, undampened", "RMSprop", "Adam"]
    for row in rows:
        assert row.steps is not None
        assert row.path.shape == (row.steps + 1, 2) and row.losses.shape == (row.steps + 1,)
        assert row.losses[-1] < SADDLE.escape_level <= row.losses[:-1].min()
        np.testing.assert_allclose(row.losses, [float(saddle_loss(jnp.asarray(p))) for p in row.path], rtol=1e-5)
        np.testing.assert_array_equal(row.path[0], rows[0].path[0])
    assert np.abs(rows[0].path[0] - np.array(SADDLE.start)).max() < 10 * SADDLE.jitter
    expected = numpy_gradient_descent(rows[0].path[0], SADDLE.learning_rate, rows[0].steps)
    np.testing.assert_allclose(rows[0].path, expected, rtol=1e-4, atol=1e-5)


def test_adaptive_methods_leave_the_plateau_first():
    steps = {row.name: row.steps for row in escape_race("plateau")}
    assert max(steps["RMSprop"], steps["Adam"], steps["momentum, undampened"]) < steps["gradient descent"] / 5
    # The notes' dampened momentum takes gradient descent's steps once its average warms up.
    assert steps["momentum"] == pytest.approx(steps["gradient descent"], rel=0.1)


def test_escape_race_budget_custom_problem_and_errors():
    rows = escape_race("plateau", max_steps=20, optimizers={"gd": jn.sgd(0.1)})
    assert rows[0].steps is None and rows[0].path.shape == (21, 2)
    bowl = EscapeProblem("bowl", lambda w: jnp.sum(w**2), (1.0, 1.0), 0.0, 0.5, 0.25, 10)
    (row,) = escape_race(bowl, optimizers={"gd": jn.sgd(0.25)})
    # Each step halves w, so the cost 2 * 4^-t first drops below 0.5 at t = 2 (to 0.125).
    assert row.steps == 2
    np.testing.assert_allclose(row.path, [[1.0, 1.0], [0.5, 0.5], [0.25, 0.25]])
    with pytest.raises(ValueError, match="problem must be one of"):
        escape_race("valley")
    with pytest.raises(ValueError, match="not both"):
        escape_race("saddle", optimizers={"gd": jn.sgd(0.1)}, learning_rate=0.1)
    with pytest.raises(TypeError, match=r"optimizers\['x'\]"):
        escape_race("saddle", optimizers={"x": "adam"})
    assert math.isfinite(float(plateau_loss(jnp.array(PLATEAU.start))))
