"""Property-based fuzzing of every transform and optimizer.

Random pytrees (scalars, 0-size and n-d leaves, ``None`` leaves), dtypes float16 / bfloat16 /
float32 (float64 in a subprocess with ``jax_enable_x64``), hyperparameters at the edges of
their ranges (beta = 0, beta = 1 - 1e-7, eps = 1e-12), gradients from 1e-6 to 1e3 with exact
zeros, 40 steps per example. Invariants:

- finite gradients never produce a NaN or infinity in the updates, parameters or state;
- the state keeps its pytree structure, shapes, dtypes and weak types (old and new state go
  through ``lax.cond``), and the parameters keep their dtypes;
- float16 parameters with float32 moments stay finite (the moments are not allowed to be
  float16 here: g**2 underflows below |g| = 2.4e-4 and the steps become huge, see docs/guides/robustness.md);
- step counters saturate at the int32 maximum instead of wrapping.

The number of examples run is printed in pytest's terminal summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxopt_notes as jn
from jaxopt_notes.testing import strategies as st_jn

STEPS = 40
INT32_MAX = int(np.iinfo(np.int32).max)
COUNTER_FIELDS = ("count", "notfinite_count", "total_notfinite", "total_skipped")

SCHEDULES = {
    "sgd+inverse_time_decay": lambda h: jn.inverse_time_decay(h["lr"], 1.0, steps_per_epoch=7),
    "sgd+exponential_decay": lambda h: jn.exponential_decay(h["lr"], 0.5 + h["b1"] / 2, staircase=False),
}
# name -> factory(h) where h holds lr, b1, b2, eps and moments (None or a dtype).
FAMILIES: dict[str, Callable[[dict], Any]] = {
    "sgd": lambda h: jn.sgd(h["lr"]),
    "sgd+inverse_time_decay": lambda h: jn.sgd(SCHEDULES["sgd+inverse_time_decay"](h)),
    "sgd+exponential_decay": lambda h: jn.sgd(SCHEDULES["sgd+exponential_decay"](h)),
    "momentum": lambda h: jn.momentum(h["lr"], h["b1"]),
    "momentum_undampened": lambda h: jn.momentum(h["lr"], h["b1"], dampened=False),
    "nesterov": lambda h: jn.momentum(h["lr"], h["b1"], dampened=False, nesterov=True),
    "rmsprop": lambda h: jn.rmsprop(h["lr"], h["b2"], h["eps"], nu_dtype=h["moments"]),
    "rmsprop_eps_in_sqrt": lambda h: jn.rmsprop(h["lr"], h["b2"], h["eps"], eps_in_sqrt=True, nu_dtype=h["moments"]),
    "adam": lambda h: jn.adam(h["lr"], h["b1"], h["b2"], h["eps"], mu_dtype=h["moments"], nu_dtype=h["moments"]),
    "adam_eps_root": lambda h: jn.adam(
        h["lr"], h["b1"], h["b2"], h["eps"], eps_root=h["eps"], mu_dtype=h["moments"], nu_dtype=h["moments"]
    ),
    "ewa_debias": lambda h: jn.chain(
        jn.ewa(h["b1"], debias=True, dtype=h["moments"]), jn.scale_by_learning_rate(h["lr"])
    ),
    "trace+bias_correction": lambda h: jn.chain(jn.trace(h["b1"]), jn.bias_correction(h["b1"]), jn.scale(-h["lr"])),
    "skip_nonfinite(adam)": lambda h: jn.skip_nonfinite(
        jn.adam(h["lr"], h["b1"], h["b2"], h["eps"], mu_dtype=h["moments"], nu_dtype=h["moments"]), max_consecutive=1
    ),
    "inject_hyperparams(adam)": lambda h: jn.inject_hyperparams(jn.adam)(
        learning_rate=h["lr"], b1=h["b1"], b2=h["b2"], eps=h["eps"], mu_dtype=h["moments"], nu_dtype=h["moments"]
    ),
}

EXAMPLES_RUN = {"hypothesis": 0, "float64 subprocess": 0, "saturation": 0}


class FuzzReport:
    """A pytest plugin, registered by this module's first test, that prints how many examples
    ran (pytest_terminal_summary runs after every test has finished)."""

    def pytest_terminal_summary(self, terminalreporter):
        counts = ", ".join(f"{count} {kind}" for kind, count in EXAMPLES_RUN.items())
        terminalreporter.write_sep("-", f"fuzz examples run: {sum(EXAMPLES_RUN.values())} ({counts})")


@pytest.fixture(autouse=True)
def _report_examples(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("jaxopt_notes_fuzz_report"):
        manager.register(FuzzReport(), "jaxopt_notes_fuzz_report")


def betas() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.999, 1 - 1e-7]), st_jn.decays(max_value=0.9999))


def avals(tree: Any) -> list:
    return [(leaf.shape, jnp.dtype(leaf.dtype), getattr(leaf, "weak_type", False)) for leaf in jax.tree.leaves(tree)]


def float_leaves(tree: Any) -> list:
    return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(leaf), jnp.floating)]


def check_state_is_stable(optimizer: Any, params: Any, state: Any) -> None:
    """One traced update must give a state of exactly the initial state's types, which
    ``lax.cond`` (selecting between the two) enforces at trace time."""
    grads = jax.tree.map(jnp.zeros_like, params)
    new_state = jax.eval_shape(lambda s: optimizer.update(grads, s, params)[1], state)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert avals(new_state) == avals(state)
    jax.eval_shape(lambda s: jax.lax.cond(True, lambda: optimizer.update(grads, s, params)[1], lambda: s), state)


def gradients(params: Any, *, seed: int, grad_scale: float, zero_fraction: float, steps: int) -> Any:
    """``steps`` random normal gradients per leaf (stacked on a leading axis), times
    ``grad_scale``, with a fixed random subset of elements exactly zero. Drawn with NumPy: a
    JAX PRNG inside the compiled loop would triple its compile time."""
    rng = np.random.default_rng(seed)

    def draw(leaf):
        shape = jnp.shape(leaf)
        mask = rng.random(shape) >= zero_fraction
        values = grad_scale * rng.standard_normal((steps, *shape)) * mask
        return jnp.asarray(values.astype(np.float32), dtype=jnp.result_type(leaf))

    return jax.tree.map(draw, params)


def run(optimizer: Any, params: Any, state: Any, *, seed: int, grad_scale: float, zero_fraction: float, steps: int):
    """``steps`` updates in one compiled ``lax.scan``; returns the final params and state and
    per-step flags ``(updates finite, params finite, state finite)``."""

    def step(carry, grads):
        params, state = carry
        updates, state = optimizer.update(grads, state, params)
        params = jn.apply_updates(params, updates)
        flags = jnp.stack([jn.all_finite(updates), jn.all_finite(params), jn.all_finite(float_leaves(state))])
        return (params, state), flags

    all_grads = gradients(params, seed=seed, grad_scale=grad_scale, zero_fraction=zero_fraction, steps=steps)
    (params, state), flags = jax.jit(lambda c, xs: jax.lax.scan(step, c, xs))((params, state), all_grads)
    return params, state, np.asarray(flags)


def check_example(family: str, params: Any, h: dict, *, seed: int, grad_scale: float, zero_fraction: float) -> None:
    optimizer = FAMILIES[family](h)
    state = optimizer.init(params)
    check_state_is_stable(optimizer, params, state)
    initial_avals = avals(state)
    new_params, new_state, flags = run(
        optimizer, params, state, seed=seed, grad_scale=grad_scale, zero_fraction=zero_fraction, steps=STEPS
    )
    if not flags.all():
        step, what = np.argwhere(~flags)[0]
        pytest.fail(f"{family} with {h}: step {step}: {['updates', 'params', 'state'][what]} not finite")
    assert avals(new_state) == initial_avals
    assert [leaf.dtype for leaf in jax.tree.leaves(new_params)] == [leaf.dtype for leaf in jax.tree.leaves(params)]


@st.composite
def examples(draw):
    dtype = draw(st.sampled_from(["float16", "bfloat16", "float32"]))
    params = draw(st_jn.pytrees(dtypes=(dtype,), max_leaves=4))
    # float16 needs float32 moments (see the module docstring); bfloat16 has float32's range.
    moments = "float32" if dtype == "float16" else draw(st.sampled_from([None, "float32"]))
    hyper = {
        "lr": draw(st_jn.learning_rates()),
        "b1": draw(betas()),
        "b2": draw(betas()),
        "eps": draw(st.one_of(st.just(1e-12), st_jn.epsilons())),
        "moments": moments,
    }
    # float16 parameters overflow (65504) under a random walk of 40 steps of 1e3-sized gradients,
    # and 1e-6-sized float16 gradients are subnormal (below 6.1e-5): they round to exact zeros
    # at random, and with beta2 = 0, eps = 1e-12 a zero beside a non-zero momentum is a step of
    # m / 1e-12, which overflows float16 in optax's arithmetic as in ours.
    scales = [1e-3, 1.0] if dtype == "float16" else [1e-6, 1e-3, 1.0, 1e3]
    return {
        "params": jax.tree.map(jnp.asarray, params),
        "h": hyper,
        "grad_scale": draw(st.sampled_from(scales)),
        "zero_fraction": draw(st.sampled_from([0.0, 0.3, 1.0])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


@settings(max_examples=2 * settings().max_examples)
@given(family=st.sampled_from(sorted(FAMILIES)), example=examples())
def test_finite_input_stays_finite_and_state_types_never_change(family, example):
    check_example(family, example.pop("params"), example.pop("h"), **example)
    EXAMPLES_RUN["hypothesis"] += 1


def saturate_counters(state: Any, value: int) -> Any:
    def replace(path, leaf):
        name = getattr(path[-1], "name", None) if path else None
        return jnp.full_like(leaf, value) if name in COUNTER_FIELDS else leaf

    return jax.tree_util.tree_map_with_path(replace, state)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_counters_saturate_at_int32_max(family):
    h = {"lr": 0.1, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "moments": None}
    optimizer = FAMILIES[family](h)
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3)}
    state = optimizer.init(params)
    counters = [
        leaf
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if getattr(path[-1], "name", None) in COUNTER_FIELDS
    ]
    if not counters:  # a constant rate keeps no count, as in optax (tests/test_state_layout.py)
        pytest.skip(f"{family} keeps no step counter, as its optax twin")
    start = saturate_counters(state, INT32_MAX - 3)
    _, final, flags = run(optimizer, params, start, seed=0, grad_scale=1.0, zero_fraction=0.0, steps=6)
    assert flags.all(), flags
    for path, leaf in jax.tree_util.tree_leaves_with_path(final):
        if getattr(path[-1], "name", None) == "count":
            assert leaf.dtype == jnp.int32 and int(leaf) == INT32_MAX, (jax.tree_util.keystr(path), leaf)
    if isinstance(final, jn.ApplyIfFiniteState):  # its non-finite counters saturate too
        nan_grads = jax.tree.map(lambda leaf: jnp.full_like(leaf, jnp.nan), params)
        skipping = start
        for _ in range(5):
            skipping = optimizer.update(nan_grads, skipping, params)[1]
        assert int(skipping.total_notfinite) == int(skipping.notfinite_count) == INT32_MAX
        assert int(skipping.total_skipped) == INT32_MAX - 3  # past max_consecutive: let through
    grads = {"w": jnp.full((2, 3), 0.5), "b": jnp.full(3, -0.25)}
    at_max = optimizer.update(grads, saturate_counters(state, INT32_MAX), params)[0]
    if family in SCHEDULES:  # the schedule evaluated at the saturated step, as a closed form
        rate = float(SCHEDULES[family](h)(jnp.int32(INT32_MAX)))
        expected = jax.tree.map(lambda g: -rate * g, grads)
    else:  # bias corrections are exactly 1 long before: the update taken at half the maximum
        expected = optimizer.update(grads, saturate_counters(state, INT32_MAX // 2), params)[0]
    for got, want in zip(jax.tree.leaves(at_max), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)
    EXAMPLES_RUN["saturation"] += 1


FLOAT64_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np, jax.numpy as jnp
    from tests import test_fuzz as fuzz

    rng = np.random.default_rng(int(sys.argv[1]))
    ran = 0
    for index, family in enumerate(sorted(fuzz.FAMILIES)):
        b = (0.0, 1 - 1e-7)[index % 2]
        params = {"w": jnp.asarray(rng.uniform(-10, 10, (3, 2))), "s": jnp.asarray(rng.uniform(-1, 1, ()))}
        assert params["w"].dtype == jnp.float64
        h = {"lr": 10 ** rng.uniform(-5, 0), "b1": b, "b2": 1 - 1e-7 - b, "eps": 1e-12, "moments": None}
        fuzz.check_example(family, params, h, seed=index, grad_scale=10.0 ** rng.integers(-6, 4), zero_fraction=0.3)
        state = fuzz.FAMILIES[family](h).init(params)
        assert all(leaf.dtype == jnp.float64 for leaf in fuzz.float_leaves(state) if leaf.ndim), family
        ran += 1
    print(json.dumps({"examples": ran}))
    """
)


def test_float64_under_jax_enable_x64():
    result = subprocess.run([sys.executable, "-c", FLOAT64_SCRIPT, "0"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    EXAMPLES_RUN["float64 subprocess"] += json.loads(result.stdout.strip().splitlines()[-1])["examples"]


@pytest.mark.parametrize("eps_in_sqrt", [False, True])
def test_float16_moments_and_a_zero_gradient_give_a_zero_step_not_nan(eps_in_sqrt):
    """With float16 moments the default eps = 1e-8 rounds to 0 in float16; the division is done
    in float32 so a zero gradient gives 0 / eps = 0, not 0 / 0 = NaN. First Adam step in closed
    form: -lr * g / (|g| + eps) = -lr * sign(g)."""
    params = {"w": jnp.ones(3, jnp.float16)}
    grads = {"w": jnp.array([0.0, 1.0, -2.0], jnp.float16)}
    adam = jn.adam(1e-3)
    updates, _ = adam.update(grads, adam.init(params), params)
    np.testing.assert_array_equal(updates["w"], np.array([0.0, -1e-3, 1e-3], np.float16))
    rmsprop = jn.rmsprop(1e-3, 0.9, eps_in_sqrt=eps_in_sqrt)
    updates, _ = rmsprop.update(grads, rmsprop.init(params), params)
    # -lr * g / sqrt(0.1 * g**2) = -lr * sign(g) * sqrt(10)
    np.testing.assert_allclose(updates["w"], np.array([0.0, -1e-3, 1e-3]) * np.sqrt(10), rtol=2e-3)
    assert updates["w"].dtype == jnp.float16
