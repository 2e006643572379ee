"""A Keras 3 optimizer stepped on given gradients (see :mod:`jaxopt_notes.testing._replay`).

The optimizer owns Keras variables holding copies of the parameter leaves and takes each step
with ``apply_gradients``, uncompiled, so every operation rounds as Keras writes it; any Keras
backend works (JAX, TensorFlow, PyTorch), the arrays crossing as NumPy. Keras keeps a number
learning rate in its ``floatx`` (float32 unless ``keras.config.set_floatx("float64")``), so
float64 parameters agree to about 1e-8 relative unless floatx is float64 too.
"""

from __future__ import annotations

import sys
from typing import Any

import jax.numpy as jnp
import numpy as np


def is_keras_optimizer(reference: Any) -> bool:
    """Whether ``reference`` is a Keras optimizer; never imports keras (a Keras optimizer can
    only exist once the caller has imported it)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(reference, keras.optimizers.Optimizer)


class KerasReplay:
    """``optimizer`` over Keras variables holding copies of ``leaves``, stepped with
    ``apply_gradients``; the optimizer must be fresh (not yet built on other variables), and
    the leaves real floating-point arrays (Keras has no complex variables)."""

    def __init__(self, optimizer: Any, leaves: list[np.ndarray]) -> None:
        import keras

        if optimizer.built:
            raise ValueError(
                "assert_equivalent: the Keras reference optimizer was already built on other variables; "
                "pass a fresh one (keras.optimizers.Adam(...))"
            )
        for index, leaf in enumerate(leaves):
            if not jnp.issubdtype(np.asarray(leaf).dtype, jnp.floating):
                raise TypeError(
                    f"assert_equivalent: a Keras reference steps real floating-point parameters only; leaf {index} "
                    f"(in jax.tree.leaves order) has dtype {np.asarray(leaf).dtype}"
                )
        self.optimizer = optimizer
        self.variables = [keras.Variable(np.array(leaf), dtype=np.asarray(leaf).dtype.name) for leaf in leaves]
        optimizer.build(self.variables)

    def step(self, grads: list[np.ndarray]) -> list[np.ndarray]:
        import keras

        tensors = [keras.ops.convert_to_tensor(np.asarray(g), dtype=v.dtype) for g, v in zip(grads, self.variables)]
        self.optimizer.apply_gradients(zip(tensors, self.variables))
        return [np.array(keras.ops.convert_to_numpy(v.value)) for v in self.variables]
