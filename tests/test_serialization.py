"""Optimizer states through flax.serialization and orbax, packed states included, and states
that follow the parameters' shardings on 4 forced CPU devices, packed or not, with sharded
leaves refused by pack."""

import os
import subprocess
import sys
import textwrap

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

import jaxopt_notes as jn
from jaxopt_notes.testing import random_gradients

PARAMS = {"dense": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}, "s": jnp.ones(2)}
MASK = {"dense": {"w": True, "b": False}, "s": False}

OPTIMIZERS = {
    "adam": lambda: jn.adam(1e-2),
    "adam schedule": lambda: jn.adam(lambda step: 0.1 * 0.5**step),
    "adamw mask": lambda: jn.adamw(1e-2, mask=MASK),
    "momentum": lambda: jn.momentum(0.1),
    "momentum undampened": lambda: jn.momentum(0.1, dampened=False, nesterov=True),
    "rmsprop": lambda: jn.rmsprop(0.01),
    "rmsprop centered momentum bias_correction": lambda: jn.rmsprop(
        0.01, centered=True, momentum=0.9, bias_correction=True
    ),
    "sgd schedule": lambda: jn.sgd(jn.exponential_decay(0.1, 0.9)),
    "inject_hyperparams(adam)": lambda: jn.inject_hyperparams(jn.adam)(learning_rate=lambda step: 0.1 / (step + 1)),
    "skip_nonfinite(adam)": lambda: jn.skip_nonfinite(jn.adam(1e-2)),
    "ewa + bias_correction": lambda: jn.chain(jn.ewa(0.9), jn.bias_correction(0.9)),
}
CASES = [(name, packed) for name in OPTIMIZERS for packed in (False, True) if not (packed and "mask" in name)]


def trained_state(name, packed):
    """A state after 3 updates, and a fresh one of the same optimizer as the restore target."""
    params = jn.pack(PARAMS) if packed else PARAMS
    tx = OPTIMIZERS[name]()
    state = tx.init(params)
    for step in range(3):
        grads = random_gradients(jax.random.key(step), PARAMS)
        _, state = jax.jit(tx.update)(jn.pack(grads) if packed else grads, state, params)
    return state, tx.init(params)


def assert_same_state(restored, saved):
    assert jax.tree.structure(restored) == jax.tree.structure(saved)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(saved), strict=True):
        assert np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name, packed", CASES, ids=[f"{n}{' packed' if p else ''}" for n, p in CASES])
def test_flax_serialization_round_trip(name, packed):
    state, target = trained_state(name, packed)
    restored = flax.serialization.from_bytes(target, flax.serialization.to_bytes(state))
    assert_same_state(restored, state)


@pytest.mark.parametrize("name, packed", CASES, ids=[f"{n}{' packed' if p else ''}" for n, p in CASES])
def test_orbax_round_trip(name, packed, tmp_path):
    state, target = trained_state(name, packed)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp_path / "state", state)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(tmp_path / "state", jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
    assert_same_state(restored, state)


def test_issue_example_serializes_a_packed_state():
    """The failure of the issue, verbatim: "can not serialize 'Packed' object"."""
    state = jn.adam(1e-3).init(jn.pack(PARAMS))
    data = flax.serialization.to_bytes(state)
    restored = flax.serialization.from_bytes(jn.adam(1e-3).init(jn.pack(PARAMS)), data)
    assert isinstance(restored[0].mu, jn.Packed) and restored[0].mu.layout == state[0].mu.layout


def test_a_packed_state_of_another_layout_is_refused_when_restored():
    data = flax.serialization.to_bytes(jn.adam(1e-3).init(jn.pack(PARAMS)))
    other = jn.adam(1e-3).init(jn.pack({"w": jnp.ones(3)}))
    with pytest.raises((ValueError, TypeError)):
        flax.serialization.from_bytes(other, data)


def test_packed_keeps_identity_semantics_and_its_layout():
    packed = jn.pack(PARAMS)
    assert packed == packed and packed != jn.pack(PARAMS)
    assert jax.tree.map(lambda leaf: leaf, packed).layout == packed.layout
    np.testing.assert_array_equal(packed.unpacker(packed.buffers)["dense"]["w"], PARAMS["dense"]["w"])
    assert optax.tree.get(jn.adam(0.1).init(packed), "count") == 0


SHARDING_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxopt_notes as jn

mesh = Mesh(np.array(jax.devices()), ("x",))
params = {
    "w": jax.device_put(jnp.arange(32.0).reshape(8, 4), NamedSharding(mesh, P("x"))),
    "b": jax.device_put(jnp.ones(4), NamedSharding(mesh, P())),
}
optimizers = {
    "adam": jn.adam(1e-2), "momentum": jn.momentum(0.1), "momentum undampened": jn.momentum(0.1, dampened=False),
    "rmsprop centered": jn.rmsprop(0.01, centered=True, momentum=0.9), "sgd": jn.sgd(0.1), "adamw": jn.adamw(1e-2),
    "inject_hyperparams(adam)": jn.inject_hyperparams(jn.adam)(learning_rate=1e-2),
}


def follows(state, like):
    # Every per-parameter leaf of state has the sharding of its parameter.
    like_leaves = jax.tree.leaves(like)
    checked = 0
    for leaf in jax.tree.leaves(state):
        for param in like_leaves:
            if leaf.shape == param.shape and leaf.ndim > 0:
                assert leaf.sharding.is_equivalent_to(param.sharding, leaf.ndim), (leaf.sharding, param.sharding)
                checked += 1
                break
    return checked


def step(tx):
    @jax.jit
    def run(params, state):
        grads = jax.grad(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(jnp.sin(p["b"])))(params)
        updates, state = tx.update(grads, state, params, value=jnp.asarray(1.0))
        return jn.apply_updates(params, updates), state
    return run


for name, tx in optimizers.items():
    new_params, state = step(tx)(params, tx.init(params))
    new_params, state = step(tx)(new_params, state)
    assert new_params["w"].sharding.is_equivalent_to(params["w"].sharding, 2)
    assert follows(state, params) >= (0 if name == "sgd" else 2), name

# pack refuses the sharded leaf, naming it; packable says so beforehand.
assert not jn.packable(params)
try:
    jn.pack(params)
except ValueError as error:
    assert "params['w']" in str(error) and "sharded over 4 devices" in str(error), error
else:
    raise AssertionError("pack accepted a sharded leaf")

# Replicated parameters pack faithfully, and the packed state follows the packed buffers.
replicated = jax.device_put(params, NamedSharding(mesh, P()))
assert jn.packable(replicated)
packed = jn.pack(replicated)
for name, tx in optimizers.items():
    if name == "adamw":
        continue
    run = jax.jit(lambda p, s, tx=tx: tx.update(jax.tree.map(jnp.ones_like, p), s, p))
    updates, state = run(packed, tx.init(packed))
    for leaf in jax.tree.leaves(state):
        if leaf.ndim > 0:
            assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4, leaf.sharding
    back = jn.unpack(jn.apply_updates(packed, updates))
    assert back["w"].shape == (8, 4)
print("ok")
"""


def test_states_follow_parameter_shardings_on_four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHARDING_SCRIPT)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_packable():
    assert jn.packable(PARAMS)
    assert not jn.packable({})
    assert not jn.packable(jn.pack(PARAMS))
    assert not jn.packable({"w": jnp.ones(2), "name": "not an array"})
