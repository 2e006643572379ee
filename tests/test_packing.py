"""Packed parameters: exact round trips, gradients, bit-for-bit equal updates, refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given

import jaxopt_notes as jn
from jaxopt_notes._pack_policy import check_elementwise, should_pack
from jaxopt_notes._packing import Packed, pack, unpack
from jaxopt_notes.testing import random_gradients
from jaxopt_notes.testing import strategies as st_jn


def mixed_params():
    """Leaves of three dtypes, interleaved, with a scalar, a 0-size leaf and a None."""
    key = jax.random.key(3)
    keys = jax.random.split(key, 6)
    return {
        "dense": [
            {"w": jax.random.normal(keys[0], (5, 3)), "b": jax.random.normal(keys[1], (3,))},
            {"w": jax.random.normal(keys[2], (3, 4)).astype(jnp.bfloat16), "b": None},
        ],
        "scale": jax.random.normal(keys[3], ()),
        "empty": jnp.zeros((0, 2)),
        "half": jax.random.normal(keys[4], (2, 2)).astype(jnp.float16),
        "tail": jax.random.normal(keys[5], (7,)),
    }


def assert_trees_identical(actual, expected):
    actual_leaves, actual_def = jax.tree.flatten(actual)
    expected_leaves, expected_def = jax.tree.flatten(expected)
    assert actual_def == expected_def
    for got, want in zip(actual_leaves, expected_leaves):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got, np.float64), np.asarray(want, np.float64), strict=True)


def numpy_buffers(params):
    """The reference layout: leaves in flatten order, raveled, concatenated per dtype in
    order of first appearance."""
    groups = {}
    for leaf in jax.tree.leaves(params):
        groups.setdefault(str(leaf.dtype), []).append(np.asarray(leaf).reshape(-1))
    return [np.concatenate(group) for group in groups.values()]


@given(st_jn.pytrees(("float32", "float16")))
def test_pack_lays_leaves_end_to_end_and_unpack_restores_them(params):
    packed = pack(params)
    for buffer, expected in zip(packed.buffers, numpy_buffers(params), strict=True):
        np.testing.assert_array_equal(np.asarray(buffer), expected, strict=True)
    assert_trees_identical(unpack(packed), jax.tree.map(jnp.asarray, params))
    assert_trees_identical(jax.jit(Packed.unpack)(packed), jax.tree.map(jnp.asarray, params))


def test_packed_is_a_pytree_of_its_buffers():
    packed = pack(mixed_params())
    assert packed.layout.dtypes == ("float32", "bfloat16", "float16")
    assert [b.shape for b in jax.tree.leaves(packed)] == [(15 + 3 + 1 + 7,), (12,), (4,)]
    doubled = jax.tree.map(lambda b: b * 2, packed)
    assert isinstance(doubled, Packed) and doubled.layout == packed.layout
    assert_trees_identical(unpack(doubled), jax.tree.map(lambda x: x * 2, mixed_params()))
    assert "3 dtypes" not in repr(packed) and "float32[26]" in repr(packed)


def loss_of_tree(params):
    return sum(jnp.sum(jnp.sin(leaf.astype(jnp.float32)) * (i + 1)) for i, leaf in enumerate(jax.tree.leaves(params)))


def test_gradient_through_unpack_is_the_tree_gradient_packed():
    params = mixed_params()
    expected = jax.grad(loss_of_tree)(params)
    grads = jax.jit(jax.grad(lambda p: loss_of_tree(unpack(p))))(pack(params))
    assert isinstance(grads, Packed)
    assert_trees_identical(unpack(grads), expected)


def test_gradient_written_into_a_donated_buffer_ignores_its_old_values():
    params = mixed_params()
    expected = jax.grad(loss_of_tree)(params)

    @jax.jit
    def gradient(packed, scratch):
        return jax.grad(lambda p: loss_of_tree(unpack(p, grads_into=scratch)))(packed)

    donated = jax.jit(gradient.__wrapped__, donate_argnums=1)
    scratch = jax.tree.map(lambda b: jnp.full_like(b, jnp.nan), pack(params))
    assert_trees_identical(unpack(gradient(pack(params), scratch)), expected)
    assert_trees_identical(unpack(donated(pack(params), scratch)), expected)


def test_unused_leaves_get_zero_gradient():
    params = {"used": jnp.ones(3), "unused": jnp.full(4, 5.0)}
    grads = jax.grad(lambda p: jnp.sum(unpack(p)["used"] ** 2))(pack(params))
    np.testing.assert_array_equal(unpack(grads)["unused"], np.zeros(4))
    np.testing.assert_array_equal(unpack(grads)["used"], np.full(3, 2.0))


def schedule(step):
    return 0.1 / (1.0 + step)


ELEMENTWISE = {
    "ewa": jn.ewa(0.9),
    "ewa_debias": jn.ewa(0.9, debias=True),
    "bias_correction": jn.bias_correction(0.99),
    "trace": jn.trace(0.9),
    "trace_nesterov": jn.trace(0.9, nesterov=True),
    "scale": jn.scale(-0.5),
    "scale_by_learning_rate": jn.scale_by_learning_rate(schedule),
    "scale_by_rms": jn.scale_by_rms(),
    "scale_by_rms_eps_in_sqrt": jn.scale_by_rms(eps_in_sqrt=True),
    "scale_by_adam": jn.scale_by_adam(eps_root=1e-8),
    "sgd": jn.sgd(0.1),
    "momentum": jn.momentum(0.1),
    "momentum_nesterov": jn.momentum(0.1, dampened=False, nesterov=True),
    "rmsprop": jn.rmsprop(schedule),
    "adam": jn.adam(1e-3),
    "adam_f32_moments": jn.adam(1e-3, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_packed_updates_equal_unpacked_bit_for_bit(name):
    transform = ELEMENTWISE[name]
    params = mixed_params()
    packed_params = pack(params)
    tree_state, packed_state = transform.init(params), transform.init(packed_params)
    tree_update, packed_update = jax.jit(transform.update), jax.jit(transform.update)
    key = jax.random.key(0)
    for _ in range(4):
        key, subkey = jax.random.split(key)
        grads = random_gradients(subkey, params)
        updates, tree_state = tree_update(grads, tree_state, params)
        packed_updates, packed_state = packed_update(pack(grads), packed_state, packed_params)
        assert_trees_identical(unpack(packed_updates), updates)
        params = jn.apply_updates(params, updates)
        packed_params = jn.apply_updates(packed_params, packed_updates)
        assert_trees_identical(unpack(packed_params), params)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_every_transform_of_ours_passes_the_elementwise_check(name):
    check_elementwise(ELEMENTWISE[name], mixed_params())


@pytest.mark.parametrize(
    "transform",
    [optax.clip_by_block_rms(1.0), optax.scale_by_trust_ratio(), optax.adafactor(1e-2)],
    ids=["clip_by_block_rms", "scale_by_trust_ratio", "adafactor"],
)
def test_per_leaf_transforms_are_refused(transform):
    with pytest.raises(ValueError, match=r"not element-wise.*params\["):
        check_elementwise(transform, mixed_params())


def test_global_norm_clipping_is_refused_only_if_it_changes_the_result():
    # A global norm does not depend on the layout: accepted (it agrees to rounding).
    check_elementwise(optax.chain(optax.clip_by_global_norm(1.0), jn.adam(1e-3)), mixed_params())


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="at least one array leaf"):
        pack({"a": None})
    with pytest.raises(TypeError, match="already a Packed"):
        pack(pack({"w": jnp.ones(2)}))
    with pytest.raises(TypeError, match=r"params\['name'\] must be an array or a number"):
        pack({"name": "adam", "w": jnp.ones(2)})
    with pytest.raises(TypeError, match="expected a Packed"):
        unpack({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match="grads_into must have the layout"):
        unpack(pack({"w": jnp.ones(2)}), grads_into=pack({"w": jnp.ones(3)}))
    with pytest.raises(ValueError, match=r"buffer 0 \(float32\) must have shape \(2,\)"):
        unpack(Packed((jnp.ones(3),), pack({"w": jnp.ones(2)}).layout))


def test_should_pack_follows_the_measured_policy():
    few = {"w": jnp.ones((100, 100)), "b": jnp.ones(100)}
    many_small = [jnp.ones((10, 10)) for _ in range(500)]
    many_large = [jnp.ones((100, 100)) for _ in range(100)]
    assert should_pack(few, backend="gpu") is False
    assert should_pack(many_small, backend="gpu") is True
    assert should_pack(many_large, backend="tpu") is True
    assert should_pack(few, backend="cpu") is False
    assert should_pack(many_small, backend="cpu") is True
    assert should_pack(many_large, backend="cpu") is False
    assert should_pack(pack(many_large), backend="cpu") is True
    with pytest.raises(ValueError, match="backend"):
        should_pack(many_small, backend="quantum")
