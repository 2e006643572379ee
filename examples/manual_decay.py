"""Manual learning-rate decay (notes section 7): lower alpha mid-run without recompiling.

The notes' last form of decay is a person watching a long run and lowering alpha by hand
when progress stalls. Here a small rule plays that person: after each epoch it compares the
epoch's mean cost with the best so far and, when the cost stopped falling by at least
``--tolerance``, divides the rate by ``--factor``. The optimizer is built with
:func:`jaxopt_notes.inject_hyperparams`, so the rate is a value in the optimizer state:
:func:`jaxopt_notes.set_hyperparams` swaps it between two steps and the jitted step runs on,
traced once for the whole run (the script counts the traces to show it).

With :func:`jaxopt_notes.fit`, the same rule is a callback::

    def lower_on_plateau(end):
        end.opt_state = jn.set_hyperparams(end.opt_state, learning_rate=...)

    python examples/manual_decay.py          # m = 20,000 examples, 12 epochs
    python examples/manual_decay.py --quick  # m = 2,000, 6 epochs

Writes ``<out>/manual_decay.csv`` (epoch, learning rate used, mean cost).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn


def make_data(m: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels from a noisy linear rule: the cost has a floor, so a too-large rate wanders above it."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d), dtype=np.float32)
    logits = X @ rng.standard_normal(d).astype(np.float32) + rng.logistic(size=m).astype(np.float32)
    return X, (logits > 0).astype(np.float32)


def cost(params, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="m = 2,000 and 6 epochs")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temp directory)")
    parser.add_argument("--learning-rate", type=float, default=0.5, help="alpha0, deliberately large")
    parser.add_argument("--factor", type=float, default=5.0, help="divide alpha by this on a plateau")
    parser.add_argument("--tolerance", type=float, default=0.01, help="relative improvement that counts as progress")
    args = parser.parse_args(argv)
    m, epochs = (2_000, 6) if args.quick else (20_000, 12)
    batch_size, d = 64, 20
    out = args.out or Path(tempfile.mkdtemp(prefix="manual_decay_"))
    out.mkdir(parents=True, exist_ok=True)

    X, Y = make_data(m, d)
    optimizer = jn.inject_hyperparams(jn.adam)(learning_rate=args.learning_rate)
    traces = 0

    @jax.jit
    def train_step(params, state, x, y):
        nonlocal traces
        traces += 1  # Python runs this line only while tracing, so it counts compilations
        batch_cost, grads = jax.value_and_grad(cost)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jn.apply_updates(params, updates), state, batch_cost

    params = {"w": jnp.zeros(d), "b": jnp.zeros(())}
    state = optimizer.init(params)
    rng = np.random.default_rng(0)
    best, rows = np.inf, []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(m)
        costs = []
        # The last, partial minibatch is dropped so every step has one shape (one trace).
        for start in range(0, m - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            params, state, batch_cost = train_step(params, state, X[batch], Y[batch])
            costs.append(batch_cost)
        epoch_cost = float(np.mean(costs))
        rate = float(jn.learning_rate_in_use(state))
        rows.append((epoch, rate, epoch_cost))
        note = ""
        if epoch_cost > best * (1 - args.tolerance):
            state = jn.set_hyperparams(state, learning_rate=rate / args.factor)
            note = f"  -> plateau: alpha lowered to {rate / args.factor:.4g} for the next step"
        best = min(best, epoch_cost)
        print(f"epoch {epoch:2d}: alpha {rate:.4g}, mean cost {epoch_cost:.4f}{note}")

    print(f"train_step traced {traces} time(s) across {len({r[1] for r in rows})} learning rates")
    np.savetxt(out / "manual_decay.csv", rows, delimiter=",", header="epoch,learning_rate,mean_cost", comments="")
    print(f"wrote {out / 'manual_decay.csv'}")


if __name__ == "__main__":
    main()
