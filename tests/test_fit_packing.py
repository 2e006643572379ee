"""fit packs only when packing is faithful; check_elementwise's probe catches per-leaf transforms
whatever their threshold and however many leaves share a buffer."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes import _pack_policy
from jaxopt_notes.training._state import decide_packing

M, D, LEAVES = 96, 3, 16

_rng = np.random.default_rng(3)
X = _rng.standard_normal((M, D)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], np.float32) > 0).astype(np.float32)
# Leaves of very different scales, so per-leaf norms and trust ratios differ from a buffer's.
MANY = {f"w{i:02d}": jnp.asarray(10.0 ** (i % 4 - 2) * _rng.standard_normal(D), jnp.float32) for i in range(LEAVES)}


def many_leaf_loss(params, x, y):
    logits = sum(x @ w for w in params.values()) / len(params)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))


NOT_ELEMENTWISE = {
    "lamb": optax.lamb(1e-2),
    "clip_by_block_rms": optax.chain(optax.clip_by_block_rms(1.0), optax.sgd(0.1)),
    "scale_by_trust_ratio": optax.chain(optax.scale_by_adam(), optax.scale_by_trust_ratio(), optax.scale(-1e-2)),
    "adafactor": optax.adafactor(1e-2),
}


def test_the_model_is_one_should_pack_packs():
    assert jn.should_pack(MANY, backend=jax.default_backend())  # else the tests below would prove nothing


@pytest.mark.parametrize("name", NOT_ELEMENTWISE)
def test_fit_does_not_pack_a_per_leaf_optimizer(name):
    optimizer = NOT_ELEMENTWISE[name]
    kw = dict(batch_size=16, epochs=2, progress=False)
    auto, auto_history = jn.fit(many_leaf_loss, MANY, optimizer, X, Y, **kw)
    plain, plain_history = jn.fit(many_leaf_loss, MANY, optimizer, X, Y, pack=False, **kw)
    jax.tree.map(np.testing.assert_array_equal, auto, plain)
    np.testing.assert_array_equal(auto_history.cost, plain_history.cost)
    # Packed, the same optimizer would train differently: the probe sees it.
    with pytest.raises(ValueError, match="not element-wise"):
        jn.check_elementwise(optimizer, MANY)


@pytest.mark.parametrize("name", NOT_ELEMENTWISE)
def test_pack_true_with_a_per_leaf_optimizer_is_refused(name):
    with pytest.raises(ValueError, match=r"fit: pack=True, but packing would change the training: .*element-wise"):
        jn.fit(many_leaf_loss, MANY, NOT_ELEMENTWISE[name], X, Y, batch_size=16, epochs=1, pack=True, progress=False)


def test_declared_optimizers_pack_without_a_probe(monkeypatch):
    probed = []
    monkeypatch.setattr(_pack_policy, "check_elementwise", lambda *args, **kwargs: probed.append(args))
    assert decide_packing(MANY, jn.adam(1e-2), None)
    assert decide_packing(MANY, jn.inject_hyperparams(jn.rmsprop)(learning_rate=1e-2), True)
    assert probed == []
    assert decide_packing(MANY, optax.adam(1e-2), None)  # foreign: probed, then packed
    assert len(probed) == 1


def test_packing_decision():
    assert decide_packing(MANY, optax.adam(1e-2), None)  # foreign but element-wise
    assert not decide_packing(MANY, optax.lamb(1e-2), None)
    assert not decide_packing(MANY, jn.adam(1e-2), False)
    assert not decide_packing({"w": jnp.ones(3)}, jn.adam(1e-2), None)  # one leaf: does not pay
    assert decide_packing({"w": jnp.ones(3)}, jn.adam(1e-2), True)
    assert not decide_packing(jn.pack(MANY), jn.adam(1e-2), True)  # the caller's Packed stays theirs


def test_fit_packed_with_a_foreign_element_wise_optimizer_equals_unpacked():
    kw = dict(batch_size=16, epochs=2, progress=False)
    auto, _ = jn.fit(many_leaf_loss, MANY, optax.adam(1e-2), X, Y, **kw)
    plain, _ = jn.fit(many_leaf_loss, MANY, optax.adam(1e-2), X, Y, pack=False, **kw)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), auto, plain)


OURS = {
    "sgd": lambda: jn.sgd(0.1),
    "momentum": lambda: jn.momentum(0.1, 0.9),
    "rmsprop": lambda: jn.rmsprop(1e-2),
    "adam": lambda: jn.adam(1e-2),
    "ewa": lambda: jn.ewa(0.9, debias=True),
    "bias_correction": lambda: jn.bias_correction(0.9),
    "trace": lambda: jn.trace(0.9),
    "scale": lambda: jn.scale(0.5),
    "scale_by_learning_rate": lambda: jn.scale_by_learning_rate(jn.inverse_time_decay(0.1, 1.0)),
    "identity": jn.identity,
    "chain": lambda: jn.chain(jn.ewa(0.9), jn.scale_by_learning_rate(0.1)),
    "inject_hyperparams": lambda: jn.inject_hyperparams(jn.adam)(learning_rate=0.1),
    "skip_nonfinite": lambda: jn.skip_nonfinite(jn.momentum(0.1, 0.9)),
}


@pytest.mark.parametrize("name", OURS)
def test_every_declaration_is_true(name):
    optimizer = OURS[name]()
    assert isinstance(optimizer, jn.ElementwiseTransformation)
    jn.check_elementwise(optimizer, MANY, steps=3)  # the probe agrees with the declaration


def test_a_chain_or_wrapper_with_a_per_leaf_member_is_not_declared():
    assert not isinstance(jn.chain(jn.adam(1e-2), optax.clip_by_block_rms(1.0)), jn.ElementwiseTransformation)
    assert not isinstance(jn.chain(jn.adam(1e-2), optax.identity()), jn.ElementwiseTransformation)  # unknown
    assert not isinstance(jn.skip_nonfinite(optax.lamb(1e-2)), jn.ElementwiseTransformation)
    assert not isinstance(jn.inject_hyperparams(optax.lamb)(learning_rate=0.1), jn.ElementwiseTransformation)


@pytest.mark.parametrize("leaves", [2, 3, 5, 16])
@pytest.mark.parametrize("threshold", [1e-6, 1e-3, 1.0, 10.0, 1e3, 1e6])
def test_the_probe_straddles_any_clip_threshold(leaves, threshold):
    params = {f"w{i}": jnp.ones(3) for i in range(leaves)}
    with pytest.raises(ValueError, match="not element-wise"):
        jn.check_elementwise(optax.clip_by_block_rms(threshold), params)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_the_probe_refuses_per_leaf_clips_and_passes_element_wise_ones_in_every_dtype(dtype):
    params = {f"w{i}": jnp.ones(3, dtype) for i in range(2)}
    with pytest.raises(ValueError, match="not element-wise"):
        jn.check_elementwise(optax.clip_by_block_rms(1.0), params)
    jn.check_elementwise(optax.adam(1e-3), params)
    jn.check_elementwise(optax.clip_by_global_norm(1.0), params)  # global: the same up to rounding


def test_the_probe_sees_adafactor_factor_one_large_matrix():
    with pytest.raises(ValueError, match="not element-wise"):
        jn.check_elementwise(optax.scale_by_factored_rms(), {"w": jnp.ones((256, 192))})


SHARDED_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxopt_notes as jn
from jaxopt_notes.training._state import decide_packing
from tests.test_fit_packing import MANY
mesh = Mesh(np.array(jax.devices()), ("x",))
sharded = dict(MANY, big=jax.device_put(jnp.ones(8), NamedSharding(mesh, P("x"))))
replicated = jax.device_put(MANY, NamedSharding(mesh, P()))
print(decide_packing(sharded, jn.adam(1e-2), None), decide_packing(replicated, jn.adam(1e-2), None))
try:
    decide_packing(sharded, jn.adam(1e-2), True)
except ValueError as error:
    print(error)
"""


def test_leaves_sharded_across_devices_are_not_packed():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHARDED_SCRIPT)], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first == "False True"
    assert "pack=True" in second and "sharded across devices" in second
