"""A small neural network on scikit-learn's bundled digits, trained with each optimizer.

A multilayer perceptron (64 pixels -> 64 tanh units -> 10 classes, softmax cross-entropy)
on the 1,797 8x8 digit images that ship with scikit-learn (no download), 80 % for training
and 20 % held out. Each optimizer of the notes trains the same initial network with
``jaxopt_notes.fit`` in minibatches of 64; the script prints the held-out accuracy and writes
the smoothed cost curves to ``--out/mlp_digits.png``.

    pip install 'jaxopt-notes[digits]'     # scikit-learn, for the data
    python examples/mlp_digits.py          # 30 epochs
    python examples/mlp_digits.py --quick  # 3 epochs, two optimizers
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import jaxopt_notes as jn  # noqa: E402


def load_digits(seed: int = 0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixels are 0..16
    Y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(0.8 * len(X))
    return X[order[:cut]], Y[order[:cut]], X[order[cut:]], Y[order[cut:]]


def init_mlp(key: jax.Array, sizes=(64, 64, 10)) -> list[dict]:
    """Xavier-scaled weights and zero biases, one dict per layer."""
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for layer_key, fan_in, fan_out in zip(keys, sizes, sizes[1:], strict=False):
        w = jax.random.normal(layer_key, (fan_in, fan_out)) / jnp.sqrt(fan_in)
        layers.append({"w": w, "b": jnp.zeros(fan_out)})
    return layers


def logits(params: list[dict], X: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        X = jnp.tanh(X @ layer["w"] + layer["b"])
    return X @ params[-1]["w"] + params[-1]["b"]


def loss(params: list[dict], X: jax.Array, Y: jax.Array) -> jax.Array:
    """Softmax cross-entropy, the cost J of the notes."""
    z = logits(params, X)
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, Y[:, None], axis=1)[:, 0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="3 epochs and two optimizers instead of 30 epochs and five"
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="directory for mlp_digits.png (default ./out)")
    args = parser.parse_args(argv)
    epochs, batch_size = (3 if args.quick else 30), 64

    X_train, Y_train, X_test, Y_test = load_digits()
    steps_per_epoch = -(-len(X_train) // batch_size)
    optimizers = {
        "minibatch SGD (alpha 0.5)": jn.sgd(0.5),
        "momentum (alpha 0.5, beta 0.9)": jn.momentum(0.5, 0.9),
        "RMSprop (alpha 0.003)": jn.rmsprop(3e-3),
        "Adam (alpha 0.003)": jn.adam(3e-3),
        "Adam + decay (alpha0 0.01)": jn.adam(
            jn.schedules.inverse_time_decay(1e-2, 0.5, steps_per_epoch=steps_per_epoch, first_epoch=0)
        ),
    }
    if args.quick:  # compiling dominates a quick run: two optimizers show the shape of it
        optimizers = dict(list(optimizers.items())[::3])
    params0 = init_mlp(jax.random.key(0))
    print(f"MLP 64-64-10 on {len(X_train)} digits (held out: {len(X_test)}), minibatch {batch_size}, {epochs} epochs")
    print(f"{'optimizer':32s} {'final train cost':>17s} {'held-out accuracy':>18s}")
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for name, optimizer in optimizers.items():
        params, history = jn.fit(
            loss, params0, optimizer, X_train, Y_train, batch_size=batch_size, epochs=epochs, progress=False
        )
        accuracy = float(jnp.mean(jnp.argmax(logits(params, X_test), axis=1) == Y_test))
        print(f"{name:32s} {history.epoch_cost[-1]:17.4f} {100 * accuracy:17.1f}%")
        axes.plot(np.arange(history.steps) / steps_per_epoch, history.smoothed_cost, lw=1.5, label=name)
    axes.set(
        yscale="log",
        xlabel="epoch",
        ylabel="minibatch cost J (smoothed)",
        title="MLP on scikit-learn digits: each optimizer, same start",
    )
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    args.out.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out / "mlp_digits.png", dpi=110, bbox_inches="tight")
    print(f"wrote {args.out / 'mlp_digits.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
