"""Training a flax.nnx model with this library's optimizers, exactly as with optax's.

``nnx.Optimizer(model, jn.adamw(...), wrt=nnx.Param)`` takes our optimizer where it would take
``optax.adamw``: the step passes the loss as an extra argument (``value=loss``, used by optax's
``reduce_on_plateau`` chained after ours), the model has BatchNorm statistics that the optimizer
leaves alone, and halfway through the rate is lowered by hand with ``jn.set_hyperparams``
without ``nnx.jit`` tracing the step again. The same run with optax's AdamW is printed next to
ours; both run in float64, so that what differs is the implementations and not float32
rounding (optax computes Adam's ``1 - beta**t`` in the parameters' dtype, which training
amplifies over hundreds of steps).

    python examples/flax_nnx.py          # 300 steps
    python examples/flax_nnx.py --quick  # 30 steps
"""

from __future__ import annotations

import argparse
import sys
import warnings

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import jaxopt_notes as jn


class Regressor(nnx.Module):
    """A small MLP with BatchNorm: 8 inputs, 32 hidden units, 1 output."""

    def __init__(self, rngs: nnx.Rngs):
        wide = {"param_dtype": jnp.float64, "dtype": jnp.float64}
        self.hidden = nnx.Linear(8, 32, use_bias=False, rngs=rngs, **wide)  # BatchNorm brings its own bias
        self.norm = nnx.BatchNorm(32, rngs=rngs, **wide)
        self.out = nnx.Linear(32, 1, rngs=rngs, **wide)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.norm(self.hidden(x))))


def make_data(seed: int = 0) -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(seed), (256, 8))
    y = jnp.sin(x @ jnp.linspace(-1.0, 1.0, 8))[:, None]
    return x, y


def train(optimizer_factory, steps: int) -> tuple[float, int]:
    """Trains with a jitted nnx step; returns the final loss and how often the step was traced."""
    model = Regressor(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optimizer_factory(learning_rate=1e-2), wrt=nnx.Param)
    x, y = make_data()
    traces = []

    @nnx.jit
    def step(model: Regressor, optimizer: nnx.Optimizer) -> jax.Array:
        traces.append(None)
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        optimizer.update(model, grads, value=loss)
        return loss

    for index in range(steps):
        if index == steps // 2:  # manual decay between two steps: a new value, the same compiled step
            optimizer.opt_state = jn.set_hyperparams(optimizer.opt_state, learning_rate=1e-3)
        loss = step(model, optimizer)
    return float(loss), len(traces)


def ours(learning_rate):
    return jn.chain(jn.adamw(learning_rate, weight_decay=1e-3), optax.contrib.reduce_on_plateau(patience=20))


def theirs(learning_rate):
    return optax.chain(optax.adamw(learning_rate, weight_decay=1e-3), optax.contrib.reduce_on_plateau(patience=20))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="30 steps instead of 300")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    # flax's BatchNorm keeps its running statistics in float32 even in a float64 model, and JAX
    # warns when it writes float64 batch statistics into them; that is flax's, not ours.
    warnings.filterwarnings("ignore", message="scatter inputs have incompatible types", category=FutureWarning)
    steps = 30 if args.quick else 300
    ours_loss, ours_traces = train(jn.inject_hyperparams(ours), steps)
    theirs_loss, theirs_traces = train(optax.inject_hyperparams(theirs), steps)
    print(f"flax.nnx, {steps} steps, AdamW + reduce_on_plateau, rate 1e-2 then 1e-3 from step {steps // 2}")
    print(f"  jaxopt_notes: loss {ours_loss:.12f}, step traced {ours_traces} time(s)")
    print(f"  optax:        loss {theirs_loss:.12f}, step traced {theirs_traces} time(s)")
    if ours_traces != 1 or abs(ours_loss - theirs_loss) > 1e-9 * max(1.0, abs(theirs_loss)):
        print("MISMATCH with optax", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
