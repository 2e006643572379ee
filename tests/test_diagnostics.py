"""hessian_extremes and classify_point against dense Hessians and closed forms; the counting
experiment against the exact small-n probabilities."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxopt_notes.notes._diagnostics import (
    PointClassification,
    classify_point,
    decay_rate_per_dimension,
    hessian_extremes,
    positive_definite_fraction,
)


def dense_extremes(loss_fn, params, *args):
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda x, *args: loss_fn(unravel(x), *args)))(flat, *args)
    eigenvalues = np.linalg.eigvalsh(np.asarray(hessian, np.float64))
    return eigenvalues[0], eigenvalues[-1]


def matrix_with_spectrum(eigenvalues, seed):
    """``A = Q diag(eigenvalues) Q^T`` for a random rotation ``Q``."""
    n = len(eigenvalues)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return jnp.asarray((rotation * np.asarray(eigenvalues)) @ rotation.T, jnp.float32)


def quadratic(x, matrix):
    return 0.5 * x @ matrix @ x


def quadratic_loss(params, matrix):
    return quadratic(jnp.concatenate([params["a"].ravel(), params["b"]]), matrix)


def test_small_quadratic_on_a_pytree_is_exact():
    matrix = matrix_with_spectrum([-2.5, -0.3, 0.1, 1.0, 4.0, 9.0], seed=1)
    params = {"a": jnp.ones((2, 2)), "b": jnp.zeros(2)}
    lo, hi = hessian_extremes(quadratic_loss, params, matrix)
    np.testing.assert_allclose([lo, hi], [-2.5, 9.0], rtol=1e-5)
    np.testing.assert_allclose([lo, hi], dense_extremes(quadratic_loss, params, matrix), rtol=1e-5)


def test_large_quadratic_with_known_spectrum():
    matrix = matrix_with_spectrum(np.linspace(-3.0, 7.0, 200), seed=2)
    lo, hi = hessian_extremes(quadratic, jnp.zeros(200), matrix, num_iters=100)
    np.testing.assert_allclose([lo, hi], [-3.0, 7.0], rtol=1e-4)


def test_few_distinct_eigenvalues_restart_after_breakdown():
    # The Krylov space is invariant after two steps; the restarts must neither produce NaN
    # nor invent eigenvalues.
    eigenvalues = np.where(np.arange(40) < 25, 2.0, -1.0)
    lo, hi = hessian_extremes(quadratic, jnp.zeros(40), matrix_with_spectrum(eigenvalues, seed=3), num_iters=10)
    np.testing.assert_allclose([lo, hi], [-1.0, 2.0], rtol=1e-5)
    lo, hi = hessian_extremes(quadratic, jnp.ones(5), 3.0 * jnp.eye(5))
    np.testing.assert_allclose([lo, hi], [3.0, 3.0], rtol=1e-5)


def init_mlp(rng, sizes):
    return [
        {
            "w": jnp.asarray(rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in), jnp.float32),
            "b": jnp.asarray(0.1 * rng.standard_normal(fan_out), jnp.float32),
        }
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
    ]


def mlp_loss(layers, x, y):
    for layer in layers[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return jnp.mean((x @ layers[-1]["w"] + layers[-1]["b"] - y) ** 2)


@pytest.fixture(scope="module")
def mlp_problem():
    rng = np.random.default_rng(1)
    layers = init_mlp(rng, [8, 32, 20, 3])
    x = jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((64, 3)), jnp.float32)
    return layers, x, y


def test_mlp_of_about_a_thousand_parameters_matches_dense_hessian(mlp_problem):
    layers, x, y = mlp_problem
    assert ravel_pytree(layers)[0].size == 1011
    expected = dense_extremes(mlp_loss, layers, x, y)
    assert expected[0] < 0 < expected[1]
    np.testing.assert_allclose(hessian_extremes(mlp_loss, layers, x, y), expected, rtol=1e-4)


def test_seed_reproducible_and_used():
    matrix = matrix_with_spectrum(np.linspace(-3.0, 7.0, 200), seed=2)
    first = hessian_extremes(quadratic, jnp.zeros(200), matrix, num_iters=5, seed=7)
    again = hessian_extremes(quadratic, jnp.zeros(200), matrix, num_iters=5, seed=7)
    other = hessian_extremes(quadratic, jnp.zeros(200), matrix, num_iters=5, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Ritz values lie inside the spectrum, whatever the start.
    assert -3.0 <= float(first[0]) and float(first[1]) <= 7.0


def test_usable_inside_jit():
    matrix = matrix_with_spectrum([-1.0, 0.5, 2.0], seed=4)
    lo, hi = jax.jit(lambda p, m: hessian_extremes(quadratic, p, m))(jnp.zeros(3), matrix)
    np.testing.assert_allclose([lo, hi], [-1.0, 2.0], rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: hessian_extremes("loss", jnp.zeros(2)), TypeError, "loss_fn must be a callable"),
        (lambda: hessian_extremes(jnp.sum, jnp.zeros(2), num_iters=0), ValueError, "num_iters must be an integer"),
        (lambda: hessian_extremes(jnp.sum, jnp.zeros(2), num_iters=True), ValueError, "num_iters"),
        (lambda: hessian_extremes(jnp.sum, jnp.zeros(2), seed=1.5), TypeError, "seed must be an integer"),
        (lambda: hessian_extremes(jnp.sum, {}), ValueError, "at least one array leaf"),
        (lambda: hessian_extremes(jnp.sum, {"n": jnp.arange(3)}), TypeError, r"params\['n'\]"),
        (lambda: hessian_extremes(jnp.sum, jnp.zeros(2, jnp.complex64)), TypeError, "complex"),
        (lambda: hessian_extremes(lambda p: p**2, jnp.zeros(2)), ValueError, "must return a real scalar"),
        (lambda: classify_point(jnp.sum, jnp.zeros(2), grad_tol=-1.0), ValueError, "grad_tol"),
        (lambda: classify_point(jnp.sum, jnp.zeros(2), eig_tol=float("nan")), ValueError, "eig_tol"),
    ],
)
def test_bad_arguments_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def polynomial(params, coefficients):
    """``sum_ij c[i, j] x^i y^j``: one compiled loss for every classic surface below."""
    x, y = params["x"], params["y"]
    x_powers = jnp.stack([jnp.ones_like(x), x, x * x, x * x * x])
    y_powers = jnp.stack([jnp.ones_like(y), y, y * y, y * y * y])
    return x_powers @ coefficients @ y_powers


def coefficients(**terms):
    """``coefficients(x2=1, y2=-1)`` is the table of ``x^2 - y^2``."""
    table = np.zeros((4, 4), np.float32)
    for name, value in terms.items():
        powers = dict(zip(name[::2], map(int, name[1::2])))
        table[powers.get("x", 0), powers.get("y", 0)] = value
    return jnp.asarray(table)


def point(x, y):
    return {"x": jnp.array(x, jnp.float32), "y": jnp.array(y, jnp.float32)}


@pytest.mark.parametrize(
    ("table", "where", "verdict", "expected_eigenvalues", "expected_grad_norm"),
    [
        (coefficients(x2=1, y2=3, x1y1=1), (0.0, 0.0), "minimum", (4 - math.sqrt(5), 4 + math.sqrt(5)), 0.0),
        (coefficients(x2=1, y2=-1), (0.0, 0.0), "saddle", (-2.0, 2.0), 0.0),
        (coefficients(x3=1, x1y2=-3), (0.0, 0.0), "flat", (0.0, 0.0), 0.0),
        (coefficients(x2=-1, y2=-1), (0.0, 0.0), "maximum", (-2.0, -2.0), 0.0),
        (coefficients(x2=1, y2=1), (0.3, -0.4), "not stationary", (2.0, 2.0), 1.0),
    ],
    ids=["convex-minimum", "saddle", "monkey-saddle", "maximum", "non-stationary"],
)
def test_classic_points(table, where, verdict, expected_eigenvalues, expected_grad_norm):
    result = classify_point(polynomial, point(*where), table)
    assert isinstance(result, PointClassification)
    assert result.verdict == verdict
    np.testing.assert_allclose([result.lambda_min, result.lambda_max], expected_eigenvalues, rtol=1e-5, atol=1e-6)
    assert result.grad_norm == pytest.approx(expected_grad_norm, abs=1e-6)


def test_tolerances_decide_near_zero_curvature():
    table = coefficients(x2=1, y2=1e-3)
    assert classify_point(polynomial, point(0.0, 0.0), table, eig_tol=1e-4).verdict == "minimum"
    assert classify_point(polynomial, point(0.0, 0.0), table, eig_tol=1e-2).verdict == "flat"
    assert classify_point(polynomial, point(1e-3, 0.0), table, grad_tol=1e-2).verdict == "minimum"
    assert classify_point(polynomial, point(1e-3, 0.0), table, grad_tol=1e-4).verdict == "not stationary"


def tanh_net_loss(params, x, y):
    return jnp.mean((jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] - y) ** 2)


def test_origin_of_a_tanh_network_is_a_saddle():
    # With every weight zero the gradient vanishes, but the output weights and the hidden
    # weights are coupled through the data: the Hessian is [[0, C], [C^T, 0]], indefinite.
    params = {"w1": jnp.zeros((3, 4)), "b1": jnp.zeros(4), "w2": jnp.zeros(4)}
    x = jnp.asarray(np.random.default_rng(0).standard_normal((32, 3)), jnp.float32)
    y = jnp.sin(x @ jnp.array([1.0, -2.0, 0.5]))
    result = classify_point(tanh_net_loss, params, x, y)
    assert result.verdict == "saddle"
    assert result.grad_norm == 0.0
    np.testing.assert_allclose(
        [result.lambda_min, result.lambda_max], dense_extremes(tanh_net_loss, params, x, y), rtol=1e-5
    )
    assert result.lambda_min == pytest.approx(-result.lambda_max, rel=1e-5)


def test_counting_matches_exact_small_cases_and_falls():
    fractions = positive_definite_fraction([1, 2, 3, 4], 20_000, seed=0)
    standard_error = np.sqrt(0.25 / 20_000)
    assert fractions[0] == pytest.approx(0.5, abs=4 * standard_error)
    assert fractions[1] == pytest.approx((2 - math.sqrt(2)) / 4, abs=4 * standard_error)
    assert np.all(np.diff(fractions) < 0)
    np.testing.assert_array_equal(fractions, positive_definite_fraction([1, 2, 3, 4], 20_000, seed=0))
    # The repelling eigenvalues of GOE make the fall faster than the notes' 2^-n.
    assert decay_rate_per_dimension([1, 2, 3, 4], fractions) > math.log(2)


def test_chunking_does_not_change_the_count():
    whole = positive_definite_fraction([3], 5_000, seed=1)
    rng = np.random.default_rng(1)
    gaussian = rng.standard_normal((5_000, 3, 3))
    reference = np.mean(np.linalg.eigvalsh(gaussian + np.swapaxes(gaussian, 1, 2))[:, 0] > 0)
    np.testing.assert_allclose(whole, [reference])
    np.testing.assert_allclose(positive_definite_fraction([3], 5_000, seed=1, chunk_size=1_000), [reference])


def test_decay_rate_recovers_a_known_exponential():
    dims = [1, 2, 3, 4, 5]
    assert decay_rate_per_dimension(dims, [2.0**-n for n in dims]) == pytest.approx(math.log(2))
    assert decay_rate_per_dimension([1, 2, 3], [0.5, 0.0, 0.125]) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="at least two sizes"):
        decay_rate_per_dimension([1, 2], [0.5, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dims": []}, "at least one"), ({"dims": [0]}, "dims"), ({"dims": [2], "num_samples": 0}, "num_samples")],
)
def test_counting_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        positive_definite_fraction(**kwargs)


def test_half_precision_params_are_iterated_in_float32():
    lo, hi = hessian_extremes(quadratic, jnp.ones(3, jnp.bfloat16), jnp.diag(jnp.array([1.0, 2.0, 4.0], jnp.bfloat16)))
    assert lo.dtype == hi.dtype == jnp.float32
    np.testing.assert_allclose([lo, hi], [1.0, 4.0], rtol=1e-2)
