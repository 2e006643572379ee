"""Optimizer states laid out as optax's: ``optax.tree.get`` and friends find the same names, at
the same paths, holding equal values."""

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.testing import random_gradients

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.zeros(3)}
# Names that only our states hold: the learning rate recorded for `fit` (optax keeps an
# EmptyState there) and skip_nonfinite's count of steps actually skipped. Checked below not
# to clash with anything optax looks up.
OURS_ONLY = {"rate_in_use", "ScaleByLearningRateState", "total_skipped"}


def half_per_step(step):
    return 0.1 * 0.5**step


def keys_of(tree):
    """Every name ``optax.tree.get_all_with_path`` can look up in ``tree``: dict keys, NamedTuple
    fields and NamedTuple class names (but EmptyState, which holds nothing)."""
    found = set()

    def walk(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            if type(node).__name__ != "EmptyState":
                found.add(type(node).__name__)
            found.update(node._fields)
            children = list(node)
        elif isinstance(node, dict):
            found.update(node)
            children = list(node.values())
        elif isinstance(node, (tuple, list)):
            children = list(node)
        else:
            return
        for child in children:
            walk(child)

    walk(tree)
    return found


PAIRS = [
    ("adam", lambda: jn.adam(1e-2), lambda: optax.adam(1e-2)),
    ("adam schedule", lambda: jn.adam(half_per_step), lambda: optax.adam(half_per_step)),
    ("adam nesterov", lambda: jn.adam(1e-2, nesterov=True), lambda: optax.adam(1e-2, nesterov=True)),
    ("adamw", lambda: jn.adamw(1e-2, weight_decay=0.1), lambda: optax.adamw(1e-2, weight_decay=0.1)),
    (
        "adamw mask",
        lambda: jn.adamw(1e-2, weight_decay=0.1, mask={"w": True, "b": False}),
        lambda: optax.adamw(1e-2, weight_decay=0.1, mask={"w": True, "b": False}),
    ),
    ("sgd", lambda: jn.sgd(0.1), lambda: optax.sgd(0.1)),
    ("sgd schedule", lambda: jn.sgd(half_per_step), lambda: optax.sgd(half_per_step)),
    ("sgd momentum", lambda: jn.sgd(0.1, 0.9, True), lambda: optax.sgd(0.1, 0.9, True)),
    ("momentum undampened", lambda: jn.momentum(0.1, 0.9, dampened=False), lambda: optax.sgd(0.1, momentum=0.9)),
    (
        "momentum (notes)",
        lambda: jn.momentum(0.1, 0.9),
        lambda: optax.chain(optax.ema(0.9, debias=False), optax.scale_by_learning_rate(0.1)),
    ),
    ("rmsprop", lambda: jn.rmsprop(0.01), lambda: optax.rmsprop(0.01, eps_in_sqrt=False)),
    (
        "rmsprop centered momentum",
        lambda: jn.rmsprop(0.01, centered=True, momentum=0.9, eps_in_sqrt=True),
        lambda: optax.rmsprop(0.01, centered=True, momentum=0.9),
    ),
    (
        "rmsprop bias_correction",
        lambda: jn.rmsprop(0.01, bias_correction=True),
        lambda: optax.rmsprop(0.01, eps_in_sqrt=False, bias_correction=True),
    ),
    ("trace", lambda: jn.trace(0.9), lambda: optax.trace(0.9)),
    ("ewa", lambda: jn.ewa(0.9), lambda: optax.ema(0.9, debias=False)),
    ("scale_by_adam", lambda: jn.scale_by_adam(), lambda: optax.scale_by_adam()),
    (
        "inject_hyperparams(adam)",
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=0.1),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=0.1),
    ),
    (
        "inject_hyperparams(adam) schedule",
        lambda: jn.inject_hyperparams(jn.adam)(learning_rate=half_per_step),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=half_per_step),
    ),
    (
        "skip_nonfinite(adam)",
        lambda: jn.skip_nonfinite(jn.adam(1e-2), max_consecutive=3),
        lambda: optax.apply_if_finite(optax.adam(1e-2), 3),
    ),
    (
        "optax.inject_hyperparams(jn.sgd)",
        lambda: optax.inject_hyperparams(jn.sgd)(learning_rate=0.1),
        lambda: optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
    ),
]


@pytest.mark.parametrize("ours, reference", [pair[1:] for pair in PAIRS], ids=[pair[0] for pair in PAIRS])
def test_state_lookups_match_optax(ours, reference):
    ours, reference = ours(), reference()
    ours_state, ref_state = ours.init(PARAMS), reference.init(PARAMS)
    update = jax.jit(ours.update)
    for step in range(3):
        grads = random_gradients(jax.random.key(step), PARAMS)
        _, ours_state = update(grads, ours_state, PARAMS)
        _, ref_state = reference.update(grads, ref_state, PARAMS)
        ours_keys, ref_keys = keys_of(ours_state), keys_of(ref_state)
        assert ours_keys - OURS_ONLY == ref_keys
        for key in sorted(ref_keys):
            ours_found = optax.tree.get_all_with_path(ours_state, key)
            ref_found = optax.tree.get_all_with_path(ref_state, key)
            assert [jax.tree_util.keystr(path) for path, _ in ours_found] == [
                jax.tree_util.keystr(path) for path, _ in ref_found
            ], key
            for (path, ours_value), (_, ref_value) in zip(ours_found, ref_found):
                if isinstance(ref_value, jax.Array):
                    np.testing.assert_allclose(ours_value, ref_value, rtol=1e-6, atol=1e-7, err_msg=f"{key} at {path}")
                else:  # a node: its own names are compared one by one above
                    assert keys_of(ours_value) - OURS_ONLY == keys_of(ref_value)
        for key in OURS_ONLY:
            assert optax.tree.get_all_with_path(ref_state, key) == []


def test_optax_tree_get_finds_one_count_and_one_learning_rate():
    """The failures of the issue, verbatim: each lookup raised 'Found multiple values'."""
    assert int(optax.tree.get(jn.adam(1e-3).init(PARAMS), "count")) == 0
    state = jn.inject_hyperparams(jn.adam)(learning_rate=0.1).init(PARAMS)
    np.testing.assert_allclose(optax.tree.get(state, "learning_rate"), 0.1)
    state = optax.inject_hyperparams(jn.sgd)(learning_rate=0.1).init(PARAMS)
    np.testing.assert_allclose(optax.tree.get(state, "learning_rate"), 0.1)
    # The rate recorded for fit's history is still there, under its own name.
    np.testing.assert_allclose(jn.learning_rate_in_use(state), 0.1)
    np.testing.assert_allclose(optax.tree.get(jn.sgd(0.3).init(PARAMS), "rate_in_use"), 0.3)


def test_trace_state_is_named_as_optax():
    state = jn.trace(0.9).init(PARAMS)
    assert type(state).__name__ == "TraceState" and state._fields == ("trace",)
    assert jn.momentum(0.1, dampened=False).init(PARAMS)[0]._fields == ("trace",)


def test_learning_rate_in_use_is_the_rate_of_the_latest_update():
    """Constant and scheduled, plain and injected: the rate the last update used."""
    for opt, expected in [
        (jn.adam(0.3), [0.3, 0.3, 0.3]),
        (jn.adam(half_per_step), [0.1, 0.05, 0.025]),
        (jn.inject_hyperparams(jn.rmsprop)(learning_rate=half_per_step), [0.1, 0.05, 0.025]),
    ]:
        state = opt.init(PARAMS)
        seen = []
        for step in range(3):
            _, state = jax.jit(opt.update)(random_gradients(jax.random.key(step), PARAMS), state, PARAMS)
            seen.append(float(jn.learning_rate_in_use(state)))
        np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_a_checkpoint_of_the_old_layout_is_refused_clearly(tmp_path):
    """States saved before the layout followed optax's hold other field names; loading one
    raises a CheckpointError naming the first leaf that differs."""
    old_adam = namedtuple("AdamState", "count mu nu")
    old_rate = namedtuple("ScaleByLearningRateState", "count learning_rate")
    zeros = jax.tree.map(jnp.zeros_like, PARAMS)
    old_state = (old_adam(jnp.int32(3), zeros, zeros), old_rate(jnp.int32(3), jnp.float32(0.1)))
    jn.save_checkpoint(tmp_path / "old.npz", old_state)
    like = jn.adam(0.1).init(PARAMS)
    with pytest.raises(jn.CheckpointError, match=r"rate_in_use.*different structure"):
        jn.load_checkpoint(tmp_path / "old.npz", like)
