"""Chaining this library's transforms with optax's, in both directions.

Our transforms are optax ``GradientTransformation``s, so they go inside ``optax.chain`` and
optax's wrappers; our :func:`jaxopt_notes.chain` takes optax's transforms in turn. This script
builds AdamW both ways and checks each against ``optax.adamw`` on a small least-squares
problem, then trains with gradient clipping and gradient accumulation around our momentum.

    python examples/chain_with_optax.py          # 300 steps
    python examples/chain_with_optax.py --quick  # 30 steps
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(256, 8)).astype(np.float32)
    w_true = rng.normal(size=8).astype(np.float32)
    y = X @ w_true + 0.1 * rng.normal(size=256).astype(np.float32)
    params = {"w": jnp.zeros(8), "b": jnp.zeros(())}

    def loss(params):
        return jnp.mean((X @ params["w"] + params["b"] - y) ** 2)

    return params, loss


def train(optimizer: optax.GradientTransformation, params, loss, steps: int):
    """Full-batch training with a jitted step; returns the final parameters and cost."""

    @jax.jit
    def step(params, state):
        cost, grads = jax.value_and_grad(loss)(params)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, cost

    state = optimizer.init(params)
    for _ in range(steps):
        params, state, cost = step(params, state)
    return params, float(loss(params))


def max_difference(a, b) -> float:
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 steps instead of 300")
    args = parser.parse_args(argv)
    steps = 30 if args.quick else 300
    params, loss = make_problem()
    lr, weight_decay = 0.05, 1e-2

    optimizers = {
        # optax.adamw, the reference.
        "optax.adamw": optax.adamw(lr, weight_decay=weight_decay),
        # Ours inside optax's chain: our Adam direction, optax's decoupled weight decay, our step.
        "optax.chain(ours, optax's, ours)": optax.chain(
            jn.scale_by_adam(), optax.add_decayed_weights(weight_decay), jn.scale_by_learning_rate(lr)
        ),
        # optax's inside our chain: optax's Adam direction and weight decay, our learning-rate step.
        "jn.chain(optax's, optax's, ours)": jn.chain(
            optax.scale_by_adam(), optax.add_decayed_weights(weight_decay), jn.scale_by_learning_rate(lr)
        ),
    }
    results = {name: train(optimizer, params, loss, steps) for name, optimizer in optimizers.items()}
    reference = results["optax.adamw"][0]
    print(f"AdamW three ways, {steps} full-batch steps:")
    print(f"  {'optimizer':36s} {'final cost':>12s} {'max |params - optax.adamw|':>28s}")
    worst = 0.0
    for name, (final, cost) in results.items():
        difference = max_difference(final, reference)
        worst = max(worst, difference)
        print(f"  {name:36s} {cost:12.6f} {difference:28.2e}")

    # optax's wrappers around our optimizers: clip, accumulate 4 steps, skip non-finite steps.
    wrapped = optax.MultiSteps(optax.chain(optax.clip_by_global_norm(1.0), jn.momentum(0.1, 0.9)), every_k_schedule=4)
    guarded = optax.apply_if_finite(jn.adam(lr), max_consecutive_errors=3)
    for name, optimizer in {
        "MultiSteps(clip + jn.momentum)": wrapped,
        "apply_if_finite(jn.adam)": guarded,
    }.items():
        _, cost = train(optimizer, params, loss, steps)
        print(f"  {name:36s} {cost:12.6f}")

    agree = worst < 1e-5
    print("the chains agree with optax.adamw" if agree else "MISMATCH with optax.adamw")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
