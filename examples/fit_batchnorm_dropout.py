"""A flax.nnx network with BatchNorm and Dropout, fed by a grain pipeline, trained by ``fit``
with validation and early stopping.

The network (64 pixels -> 128 units -> BatchNorm -> ReLU -> Dropout 0.2 -> 10 classes) learns
scikit-learn's bundled 8x8 digits (no download), 80 % for training, 20 % held out. The module
itself is passed to ``fit``: its ``nnx.Param`` variables are trained by Adam, and BatchNorm's
running statistics are carried through the compiled scan and come back in the trained module
(``result.params``); the module passed in is left as it was. With ``key=``, every step's loss
gets a fresh dropout key ``fold_in(key, step)``; the held-out evaluation runs the module in
evaluation mode (``model.eval()``: running statistics, no dropout). Batches come from a grain
``MapDataset`` pipeline reshuffled each epoch; fit prefetches them to the device and trains on
them in compiled chunks.

    pip install 'jaxopt-notes[test]'                  # flax, grain, scikit-learn
    python examples/fit_batchnorm_dropout.py          # up to 40 epochs, early stopping
    python examples/fit_batchnorm_dropout.py --quick  # 3 epochs
"""

from __future__ import annotations

import argparse

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

import jaxopt_notes as jn


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, hidden: int = 128):
        self.hidden = nnx.Linear(64, hidden, use_bias=False, rngs=rngs)  # BatchNorm brings the bias
        self.norm = nnx.BatchNorm(hidden, rngs=rngs)
        self.dropout = nnx.Dropout(0.2)
        self.out = nnx.Linear(hidden, 10, rngs=rngs)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return self.out(self.dropout(nnx.relu(self.norm(self.hidden(x))), rngs=key))


def loss(model: MLP, x: jax.Array, y: jax.Array, key: jax.Array | None = None) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(x, key), y))


def accuracy(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(model(x), axis=1) == y)


def digits(seed: int = 0):
    data = load_digits()
    X, Y = (data.data / 16.0).astype(np.float32), data.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(0.8 * len(X))
    return X[order[:cut]], Y[order[:cut]], X[order[cut:]], Y[order[cut:]]


def grain_loader(X: np.ndarray, Y: np.ndarray, batch_size: int, seed: int = 0):
    """``epoch -> iterable of (x, y) batches``: a grain pipeline reshuffled every epoch."""

    def batches(epoch: int):
        rows = grain.MapDataset.range(len(X)).shuffle(seed=seed + epoch)
        return rows.map(lambda i: (X[i], Y[i])).batch(batch_size).to_iter_dataset()

    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="3 epochs")
    args = parser.parse_args()
    epochs = 3 if args.quick else args.epochs
    X, Y, X_val, Y_val = digits()
    stop = jn.EarlyStopping(patience=5)
    model = MLP(nnx.Rngs(0))
    result = jn.fit(
        loss,
        model,
        jn.adam(3e-3),
        grain_loader(X, Y, batch_size=64),
        epochs=epochs,
        key=jax.random.key(0),
        validation=(X_val, Y_val),
        metrics={"accuracy": accuracy},
        callbacks=[stop],
        progress=False,
    )
    history, trained = result.history, result.params
    print(f"{len(X)} training digits, {len(X_val)} held out; {history.steps} steps in {history.epochs} epochs")
    print("epoch  train cost  val cost  val accuracy")
    for epoch in range(history.epochs):
        print(
            f"{epoch + 1:5d}  {history.epoch_cost[epoch]:10.4f}  {history.validation['cost'][epoch]:8.4f}  "
            f"{history.validation['accuracy'][epoch]:11.2%}"
        )
    best = stop.best_epoch or history.epochs
    kept = history.validation["accuracy"][best - 1]
    print(
        f"best held-out cost {stop.best:.4f} after epoch {best} (the module in stop.best_params); accuracy {kept:.2%}"
    )
    moved = float(jnp.max(jnp.abs(trained.norm.mean[...] - model.norm.mean[...])))
    print(f"BatchNorm running means moved by up to {moved:.3f} from their start")


if __name__ == "__main__":
    main()
