"""Weight-decay masks as optax accepts them: prefix trees (one boolean for a whole subtree),
NumPy and JAX booleans, the integers 0 and 1, callables returning any of those; each compared
with optax's own result. Masks optax refuses get a clear error naming the entry, except a flax
``FrozenDict`` over plain-dict parameters, which is read as its dict."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.core import FrozenDict

import jaxopt_notes as jn
from jaxopt_notes.testing import assert_equivalent

PARAMS = {
    "backbone": {"conv": {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.linspace(0.1, 0.4, 4)}},
    "head": {"w": jnp.linspace(0.5, 1.5, 6).reshape(2, 3), "b": jnp.asarray([0.2, -0.3])},
    "layers": [jnp.ones((2, 2)), None],
}

MASKS = {
    "prefix": {"backbone": False, "head": True, "layers": True},
    "prefix, nested": {"backbone": {"conv": True}, "head": {"w": True, "b": False}, "layers": [False, None]},
    "numpy booleans": {"backbone": np.False_, "head": {"w": np.True_, "b": np.bool_(False)}, "layers": np.True_},
    "jax booleans": {"backbone": jnp.asarray(True), "head": jnp.asarray(False), "layers": [jnp.asarray(True), None]},
    "integers 0 and 1": {"backbone": 0, "head": 1, "layers": np.int32(1)},
    "callable returning a prefix": lambda params: {"backbone": False, "head": True, "layers": False},
    "callable returning numpy booleans": lambda params: jax.tree.map(lambda leaf: np.bool_(leaf.ndim > 1), params),
}


@pytest.mark.parametrize("name", MASKS)
def test_adamw_with_a_mask_optax_accepts_equals_optax(name):
    mask = MASKS[name]
    assert_equivalent(
        jn.adamw(1e-2, weight_decay=0.3, mask=mask), optax.adamw(1e-2, weight_decay=0.3, mask=mask), params=PARAMS
    )


@pytest.mark.parametrize("name", MASKS)
def test_add_decayed_weights_with_a_mask_optax_accepts_equals_optax(name):
    mask = MASKS[name]
    assert_equivalent(
        jn.chain(jn.add_decayed_weights(0.3, mask), jn.scale(-0.1)),
        optax.chain(optax.add_decayed_weights(0.3, mask), optax.scale(-0.1)),
        params=PARAMS,
        steps=3,
    )


def test_a_prefix_mask_decays_exactly_the_leaves_under_true():
    """Closed form: one step of decay alone adds ``weight_decay * W`` under True, nothing elsewhere."""
    tx = jn.add_decayed_weights(0.5, {"backbone": False, "head": True, "layers": True})
    zeros = jax.tree.map(jnp.zeros_like, PARAMS)
    updates, _ = tx.update(zeros, tx.init(PARAMS), PARAMS)
    np.testing.assert_array_equal(updates["backbone"]["conv"]["w"], 0.0)
    np.testing.assert_array_equal(updates["head"]["w"], 0.5 * PARAMS["head"]["w"])
    np.testing.assert_array_equal(updates["layers"][0], 0.5 * PARAMS["layers"][0])


def test_a_frozendict_mask_over_dict_params_is_read_as_its_dict():
    """optax refuses this pair (pytree structure error); ours gives optax's result for the plain dict."""
    plain = {"backbone": False, "head": {"w": True, "b": False}, "layers": True}
    frozen = FrozenDict(plain)
    with pytest.raises(ValueError):
        tx = optax.adamw(1e-2, weight_decay=0.3, mask=frozen)
        tx.update(PARAMS, tx.init(PARAMS), PARAMS)
    assert_equivalent(
        jn.adamw(1e-2, weight_decay=0.3, mask=frozen), optax.adamw(1e-2, weight_decay=0.3, mask=plain), params=PARAMS
    )


@pytest.mark.parametrize(
    "mask, where, got",
    [
        ({"backbone": "yes", "head": True, "layers": True}, r"mask\['backbone'\]", "'yes'"),
        ({"backbone": 2, "head": True, "layers": True}, r"mask\['backbone'\]", "2"),
        ({"backbone": 0.5, "head": True, "layers": True}, r"mask\['backbone'\]", "0.5"),
        (
            {"backbone": jnp.array([True, False]), "head": True, "layers": True},
            r"mask\['backbone'\]",
            r"an array of shape \(2,\) and dtype bool",
        ),
    ],
)
def test_a_mask_entry_that_is_not_one_boolean_names_its_path(mask, where, got):
    with pytest.raises(TypeError, match=rf"add_decayed_weights: {where} must be one boolean.*got {got}"):
        jn.adamw(1e-2, mask=mask)


def test_a_callable_mask_returning_a_bad_entry_is_refused_at_init():
    tx = jn.adamw(1e-2, mask=lambda params: {"backbone": "no", "head": True, "layers": True})
    with pytest.raises(TypeError, match=r"mask\['backbone'\] must be one boolean"):
        tx.init(PARAMS)


def test_a_mask_whose_structure_is_no_prefix_of_params_says_so():
    tx = jn.adamw(1e-2, mask={"backbone": True, "tail": True})
    with pytest.raises(ValueError, match="structure of params or a prefix of it"):
        tx.init(PARAMS)
