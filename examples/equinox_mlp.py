"""Training an equinox MLP with this library's optimizers, exactly as with optax's.

Equinox keeps the model itself as the parameter pytree: ``eqx.filter(model, eqx.is_array)``
holds the arrays and ``None`` where the model holds functions (the activation), and our
optimizers' states carry those ``None`` leaves along as optax's do. The step is
``eqx.filter_jit``-compiled, the update goes through ``eqx.apply_updates``, and every
optimizer is run next to its optax twin: the notes' Adam, RMSprop with optax's eps placement,
undampened momentum, and AdamW that spares the biases (a callable mask). Both run in
float64, so that what differs is the implementations and not float32 rounding (optax
computes Adam's ``1 - beta**t`` in the parameters' dtype, which training amplifies over
hundreds of steps).

    python examples/equinox_mlp.py          # 300 steps
    python examples/equinox_mlp.py --quick  # 30 steps
"""

from __future__ import annotations

import argparse
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import jaxopt_notes as jn


def make_data(seed: int = 0) -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(seed), (256, 4))
    y = jnp.tanh(x[:, :1] * x[:, 1:2]) + 0.5 * x[:, 2:3]
    return x, y


def weights_only(params):
    """A mask for weight decay: matrices decay, bias vectors do not (None stays None)."""
    return jax.tree.map(lambda leaf: leaf.ndim > 1, params)


PAIRS = {
    "adam": (jn.adam(1e-2), optax.adam(1e-2)),
    "rmsprop (eps in sqrt)": (jn.rmsprop(1e-3, eps_in_sqrt=True), optax.rmsprop(1e-3)),
    "momentum (undampened)": (jn.momentum(1e-2, 0.9, dampened=False), optax.sgd(1e-2, momentum=0.9)),
    "adamw (mask)": (
        jn.adamw(1e-2, weight_decay=1e-2, mask=weights_only),
        optax.adamw(1e-2, weight_decay=1e-2, mask=weights_only),
    ),
}


def train(optimizer: optax.GradientTransformation, steps: int):
    """Returns the final loss and the trained parameters."""
    model = eqx.nn.MLP(4, 1, 32, 2, key=jax.random.key(0))
    x, y = make_data()
    state = optimizer.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, state):
        loss, grads = eqx.filter_value_and_grad(lambda m: jnp.mean((jax.vmap(m)(x) - y) ** 2))(model)
        updates, state = optimizer.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, loss

    for _ in range(steps):
        model, state, loss = step(model, state)
    return float(loss), eqx.filter(model, eqx.is_array)


def largest_difference(a, b) -> float:
    return max(float(jnp.max(jnp.abs(p - q))) for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 steps instead of 300")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    steps = 30 if args.quick else 300
    print(f"equinox MLP, {steps} full-batch steps: jaxopt_notes vs optax")
    worst = 0.0
    for name, (ours, theirs) in PAIRS.items():
        ours_loss, ours_params = train(ours, steps)
        theirs_loss, theirs_params = train(theirs, steps)
        difference = largest_difference(ours_params, theirs_params)
        worst = max(worst, difference)
        print(f"  {name:24s} loss {ours_loss:.6f} vs {theirs_loss:.6f}; largest weight difference {difference:.2e}")
    if worst > 1e-9:
        print("MISMATCH with optax", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
