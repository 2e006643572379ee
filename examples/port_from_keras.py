"""Port a Keras training script to JAX and get Keras' numbers: ``model.fit`` beside ``jn.fit``.

The same small network (Dense(16, tanh) then Dense(1)), the same starting weights, data and
minibatch order train twice: in Keras 3 with ``model.fit`` and ``keras.optimizers.Adam`` under
an ``ExponentialDecay`` schedule with ``clipnorm``, and in JAX with :func:`jaxopt_notes.fit` and
``jn.keras.Adam`` given the same arguments. The script prints the largest difference between
the two sets of trained weights, and the same run with ``optax.adam`` for contrast (it places
epsilon differently and cannot clip per leaf as Keras does). Keras needs ``KERAS_BACKEND=jax``,
set here when it is unset; without Keras installed only the JAX side runs.

    python examples/port_from_keras.py          # 4,096 examples, 5 epochs
    python examples/port_from_keras.py --quick  # 512 examples, 3 epochs
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn
import jaxopt_notes.keras  # noqa: F401  (jn.keras)

HIDDEN = 16


def make_data(m: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d)).astype(np.float32)
    Y = (np.sin(X @ rng.standard_normal(d)) + 0.1 * rng.standard_normal(m)).astype(np.float32)[:, None]
    return X, Y


def initial_weights(d: int, seed: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Glorot-uniform kernels and zero biases, as Keras' Dense starts (drawn here, given to both)."""
    rng = np.random.default_rng(seed)

    def glorot(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    return {
        "hidden": {"kernel": glorot(d, HIDDEN), "bias": np.zeros(HIDDEN, np.float32)},
        "out": {"kernel": glorot(HIDDEN, 1), "bias": np.zeros(1, np.float32)},
    }


def predict(params, x):
    """Keras' Dense layers written out: ``activation(x @ kernel + bias)``."""
    hidden = jnp.tanh(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
    return hidden @ params["out"]["kernel"] + params["out"]["bias"]


def cost(params, x, y):
    """Keras' ``"mean_squared_error"``: the mean over the minibatch of the squared error."""
    return jnp.mean((predict(params, x) - y) ** 2)


def optimizer_arguments(steps_per_epoch: int, schedules) -> dict:
    """The same arguments for Keras' Adam and ours; ``schedules`` is ``keras.optimizers.schedules``
    or ``jn.keras``."""
    schedule = schedules.ExponentialDecay(1e-2, decay_steps=steps_per_epoch, decay_rate=0.8, staircase=True)
    return {"learning_rate": schedule, "clipnorm": 1.0}


def epoch_order(m: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation ``jn.fit`` trains epoch ``epoch`` in (documented in its docstring)."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(m)


def train_keras(X, Y, weights, batch_size: int, epochs: int, seed: int) -> dict | None:
    """``model.fit`` on the rows in ``jn.fit``'s order, unshuffled (``batch_size`` divides ``m``)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except ImportError:
        return None
    model = keras.Sequential(
        [keras.Input((X.shape[1],)), keras.layers.Dense(HIDDEN, activation="tanh"), keras.layers.Dense(1)]
    )
    model.set_weights(
        [weights["hidden"]["kernel"], weights["hidden"]["bias"], weights["out"]["kernel"], weights["out"]["bias"]]
    )
    steps_per_epoch = len(X) // batch_size
    optimizer = keras.optimizers.Adam(**optimizer_arguments(steps_per_epoch, keras.optimizers.schedules))
    model.compile(optimizer=optimizer, loss="mean_squared_error")
    # Every epoch's rows in jn.fit's order, one after the other, in one unshuffled pass: the
    # same minibatches, since batch_size divides m.
    order = np.concatenate([epoch_order(len(X), seed, epoch) for epoch in range(epochs)])
    model.fit(X[order], Y[order], batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    hidden_kernel, hidden_bias, out_kernel, out_bias = model.get_weights()
    return {"hidden": {"kernel": hidden_kernel, "bias": hidden_bias}, "out": {"kernel": out_kernel, "bias": out_bias}}


def largest_difference(ours, theirs) -> float:
    """The largest absolute difference of two weight pytrees, relative to the largest weight."""
    pairs = list(zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)))
    scale = max(float(np.max(np.abs(b))) for _, b in pairs)
    return max(float(np.max(np.abs(np.asarray(a) - b))) for a, b in pairs) / scale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512 examples and 3 epochs")
    args = parser.parse_args(argv)
    m, epochs = (512, 3) if args.quick else (4_096, 5)
    d, batch_size, seed = 8, 64, 0
    X, Y = make_data(m, d)
    weights = initial_weights(d)
    start = jax.tree.map(jnp.asarray, weights)
    steps_per_epoch = m // batch_size
    run = dict(batch_size=batch_size, epochs=epochs, seed=seed, progress=False)

    keras_adam = jn.keras.Adam(**optimizer_arguments(steps_per_epoch, jn.keras))
    ours, history = jn.fit(cost, start, keras_adam, X, Y, **run)
    # The nearest optax chain: a global-norm clip (optax has no per-leaf norm clip) and Adam
    # with epsilon added after bias correction, where Keras adds its "epsilon hat" before.
    schedule = optimizer_arguments(steps_per_epoch, jn.keras)["learning_rate"]
    nearest_optax = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule, eps=1e-7))
    with_optax, _ = jn.fit(cost, start, nearest_optax, X, Y, **run)
    first, last = history.epoch_cost[0], float(cost(ours, X, Y))
    print(f"{epochs} epochs of {steps_per_epoch} minibatches of {batch_size}; JAX cost {first:.4f} -> {last:.4f}")

    theirs = train_keras(X, Y, weights, batch_size, epochs, seed)
    if theirs is None:
        print("Keras is not installed (pip install keras): the JAX side alone ran")
        return
    print(f"Keras model.fit cost after training: {float(cost(theirs, X, Y)):.4f}")
    print(f"largest weight difference, jn.fit + jn.keras.Adam vs model.fit: {largest_difference(ours, theirs):.1e}")
    print(f"largest weight difference, nearest optax chain  vs model.fit: {largest_difference(with_optax, theirs):.1e}")


if __name__ == "__main__":
    main()
