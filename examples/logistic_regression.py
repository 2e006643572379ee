"""The notes' running example: logistic regression on m = 5,000,000 examples, minibatches of 1,000.

One epoch is 5,000 Adam steps (notes section 1), run by :func:`jaxopt_notes.fit` as one
compiled scan. The script prints each epoch's mean cost and time, the accuracy, and saves
the per-step cost with its bias-corrected smoothed curve (notes sections 2-3) to
``<out>/logistic_regression_history.npz`` and, if matplotlib can, a plot next to it.

    python examples/logistic_regression.py          # m = 5,000,000, 3 epochs
    python examples/logistic_regression.py --quick  # m = 50,000, 2 epochs
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn


def make_data(m: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels from a noisy linear rule, so the best achievable accuracy is below 100 %."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d), dtype=np.float32)
    w_true = rng.standard_normal(d).astype(np.float32)
    logits = X @ w_true + rng.logistic(size=m).astype(np.float32)
    return X, (logits > 0).astype(np.float32)


def cost(params, x, y):
    """The cross-entropy cost J of one minibatch."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="m = 50,000 and 2 epochs")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temp directory)")
    args = parser.parse_args(argv)
    m, epochs = (50_000, 2) if args.quick else (5_000_000, 3)
    d, batch_size = 20, 1_000
    out = args.out or Path(tempfile.mkdtemp(prefix="logistic_regression_"))
    out.mkdir(parents=True, exist_ok=True)

    X, Y = make_data(m, d)
    params = {"w": jnp.zeros(d), "b": jnp.zeros(())}
    params, history = jn.fit(cost, params, jn.adam(1e-2), X, Y, batch_size=batch_size, epochs=epochs, seed=0)

    for epoch, (mean_cost, seconds) in enumerate(zip(history.epoch_cost, history.epoch_time, strict=True), start=1):
        note = " (includes compilation)" if epoch == 1 else ""
        print(f"epoch {epoch}: mean cost {mean_cost:.4f}, {seconds:.2f} s{note}")
    accuracy = float(np.mean((X @ np.asarray(params["w"]) + float(params["b"]) > 0) == Y))
    print(f"{history.steps} steps of {batch_size} examples; training accuracy {accuracy:.3f}")
    np.savez(out / "logistic_regression_history.npz", cost=history.cost, smoothed_cost=history.smoothed_cost)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"history saved to {out}")
        return
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(history.cost, lw=0.5, alpha=0.5, label="minibatch cost J (noisy)")
    axes.plot(history.smoothed_cost, lw=1.5, label=f"bias-corrected EWA, beta = {history.beta}")
    axes.set(xlabel="step", ylabel="cost", title=f"Logistic regression, m = {m:,}, minibatch {batch_size}")
    axes.legend()
    figure.savefig(out / "logistic_regression_cost.png", dpi=120, bbox_inches="tight")
    print(f"history and plot saved to {out}")


if __name__ == "__main__":
    main()
