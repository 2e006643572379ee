"""Optimizer state sharded like the parameters: every transform of ours under jax.jit, and
init_sharded / state_shardings for any optimizer, over 4 forced CPU devices."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes._numerics import zeros_like_tree

SHARDING_SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxopt_notes as jn

assert jax.device_count() == 4
mesh = Mesh(np.array(jax.devices()), ("x",))
rng = np.random.default_rng(0)
SPECS = {"fsdp": P("x"), "columns": P(None, "x"), "bias": P()}
SHAPES = {"fsdp": (16,), "columns": (3, 8), "bias": (5,)}
unplaced = {k: jnp.asarray(rng.standard_normal(SHAPES[k]), jnp.float32) for k in SPECS}
params = {k: jax.device_put(unplaced[k], NamedSharding(mesh, SPECS[k])) for k in SPECS}
grads = [{k: jnp.asarray(rng.standard_normal(SHAPES[k]), jnp.float32) for k in SPECS} for _ in range(3)]
replicated = NamedSharding(mesh, P())

OURS = {
    "ewa": (jn.ewa(0.9, debias=True), optax.ema(0.9, debias=True)),
    "bias_correction": (jn.chain(jn.ewa(0.9), jn.bias_correction(0.9)), optax.ema(0.9, debias=True)),
    "trace": (jn.trace(0.9, nesterov=True), optax.trace(0.9, nesterov=True)),
    "momentum": (jn.momentum(0.1, dampened=False), optax.sgd(0.1, momentum=0.9)),
    "scale_by_rms": (jn.scale_by_rms(eps_in_sqrt=True), optax.scale_by_rms(eps_in_sqrt=True)),
    "rmsprop": (jn.rmsprop(0.1, eps_in_sqrt=True), optax.rmsprop(0.1, eps_in_sqrt=True)),
    "scale_by_adam": (jn.scale_by_adam(), optax.scale_by_adam()),
    "adam": (jn.adam(0.1), optax.adam(0.1)),
    "adam_bfloat16_moments": (jn.adam(0.1, mu_dtype=jnp.bfloat16), optax.adam(0.1, mu_dtype=jnp.bfloat16)),
    "sgd": (jn.sgd(0.1), optax.sgd(0.1)),
    "scale": (jn.scale(0.5), optax.scale(0.5)),
    "inject_hyperparams": (jn.inject_hyperparams(jn.adam)(learning_rate=0.1), optax.adam(0.1)),
    "skip_nonfinite": (jn.skip_nonfinite(jn.adam(0.1)), optax.adam(0.1)),
}


def placed_like(state, like, step):
    # Every leaf with a parameter's shape must carry that parameter's sharding; every other leaf
    # (counts, rates, flags) must not be split (replicated, or one uncommitted device after init).
    by_shape = {leaf.shape: leaf.sharding for leaf in jax.tree.leaves(like)}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        where = f"{step}: state{jax.tree_util.keystr(path)} {leaf.shape}"
        if leaf.shape in by_shape:
            assert leaf.sharding.is_equivalent_to(by_shape[leaf.shape], leaf.ndim), (where, leaf.sharding)
        else:
            assert leaf.sharding.is_fully_replicated, (where, leaf.sharding)


def run(optimizer, params, grads):
    state = jax.jit(optimizer.init)(params)
    placed_like(state, params, "init")
    update = jax.jit(optimizer.update)
    for g in grads:
        updates, state = update(g, state, params)
        placed_like(updates, params, "updates")
    placed_like(state, params, "after 3 updates")
    return updates, state


for name, (ours, reference) in OURS.items():
    placed_grads = [{k: jax.device_put(g[k], NamedSharding(mesh, SPECS[k])) for k in SPECS} for g in grads]
    updates, state = run(ours, params, placed_grads)
    expected_state = reference.init(unplaced)
    for g in grads:
        expected, expected_state = reference.update(g, expected_state, unplaced)
    rtol = 3e-2 if "bfloat16" in name else 2e-5  # bfloat16 moments keep 8 significant bits
    for k in SPECS:
        np.testing.assert_allclose(np.asarray(updates[k]), np.asarray(expected[k]), rtol=rtol, atol=1e-6, err_msg=name)
    print("ours", name, sorted({f"{leaf.shape}: {leaf.sharding.spec}" for leaf in jax.tree.leaves(state)}))

# Packed: the moments are packed too, and follow the packed buffer's sharding.
packed = jn.pack({k: unplaced[k] for k in ("fsdp", "columns")})
packed = jax.device_put(packed, NamedSharding(mesh, P("x")))
packed_grads = [
    jax.device_put(jn.pack({k: g[k] for k in ("fsdp", "columns")}), NamedSharding(mesh, P("x"))) for g in grads
]
_, state = run(jn.adam(0.1), packed, packed_grads)
assert state[0].mu.buffers[0].sharding.spec == P("x") and state[0].nu.buffers[0].shape == (40,)
print("packed", state[0].mu.buffers[0].sharding.spec)

# Foreign optimizers: plain jit puts optax's moments on one device; init_sharded places them.
for name, foreign in {
    "optax.adam": optax.adam(0.1),
    "optax.sgd+momentum": optax.sgd(0.1, momentum=0.9),
    "optax.chain(clip, adamw)": optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.1)),
    "chain(optax.clip, jn.adam)": jn.chain(optax.clip_by_global_norm(1.0), jn.adam(0.1)),
}.items():
    state = jn.init_sharded(foreign, params)
    shardings = jn.state_shardings(foreign, params)
    for leaf, sharding in zip(jax.tree.leaves(state), jax.tree.leaves(shardings)):
        assert leaf.sharding == sharding
    placed_like(state, params, "init_sharded " + name)
    for leaf in jax.tree.leaves(state):
        if leaf.ndim == 0:
            assert leaf.sharding == replicated, (name, leaf.sharding)
    jax.tree.map(np.testing.assert_array_equal, state, foreign.init(unplaced))
    update = jax.jit(foreign.update)
    for g in grads:
        _, state = update({k: jax.device_put(g[k], NamedSharding(mesh, SPECS[k])) for k in SPECS}, state, params)
    placed_like(state, params, "init_sharded then 3 updates " + name)
    print("init_sharded", name, [str(getattr(leaf.sharding, "spec", leaf.sharding)) for leaf in jax.tree.leaves(state)])
plain = jax.jit(optax.adam(0.1).init)(params)
print("plain jit optax.adam", {k: type(plain[0].mu[k].sharding).__name__ for k in SPECS})
print("ok")
"""


def test_state_follows_parameter_shardings_over_four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.endswith("ok\n"), result.stdout[-2000:] + result.stderr[-3000:]


def test_jitted_zeros_are_positive_zeros_whatever_the_parameter():
    params = {"w": jnp.array([-1.5, jnp.nan, jnp.inf, -jnp.inf, 0.0, -0.0]), "h": jnp.ones(2, jnp.bfloat16)}
    for zeros in (jax.jit(zeros_like_tree)(params), zeros_like_tree(params)):
        np.testing.assert_array_equal(np.signbit(np.asarray(zeros["w"])), np.zeros(6, bool))
        np.testing.assert_array_equal(np.asarray(zeros["w"]), np.zeros(6, np.float32))
        assert zeros["h"].dtype == jnp.bfloat16
    assert jax.jit(lambda p: zeros_like_tree(p, jnp.float32))(params)["h"].dtype == jnp.float32


def test_state_shardings_single_device_and_errors():
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    shardings = jn.state_shardings(optax.adam(0.1), params)
    assert shardings[0].mu["w"] == params["w"].sharding and shardings[0].count == params["b"].sharding
    state = jn.init_sharded(optax.adam(0.1), params)
    jax.tree.map(np.testing.assert_array_equal, state, optax.adam(0.1).init(params))
    with pytest.raises(TypeError, match=r"params\['w'\] must be a jax.Array"):
        jn.init_sharded(optax.adam(0.1), {"w": np.ones(3)})
    with pytest.raises(ValueError, match="at least one array leaf"):
        jn.state_shardings(optax.adam(0.1), {})
    with pytest.raises(TypeError, match="optimizer must be a gradient transformation"):
        jn.state_shardings(object(), params)
