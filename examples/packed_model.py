"""A many-leaf model trained on packed parameters, and the same training unpacked.

A deep, narrow MLP (two leaves per layer) is fitted to a toy regression with Adam, twice:
once on its pytree of leaves, once on one packed buffer (``jaxopt_notes.pack``), the loss
function unchanged (it sees ``unpack(packed)``). The script prints the largest parameter
difference and the time per step of each. The gradients agree to rounding only (XLA fuses the
two programs differently), and Adam, which normalises every step, lets that drift grow over
many steps (about 1e-7 after 30 steps, 1e-2 after 200); the update itself is bit-identical.

    python examples/packed_model.py            # 60 layers
    python examples/packed_model.py --quick    # 8 layers, a few seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_notes as jn


def init_mlp(key: jax.Array, layers: int, width: int) -> list[dict[str, jax.Array]]:
    keys = jax.random.split(key, layers)
    return [{"w": jax.random.normal(k, (width, width)) / jnp.sqrt(width), "b": jnp.zeros(width)} for k in keys]


def loss_fn(params: list[dict[str, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    for layer in params[:-1]:
        x = x + jnp.tanh(x @ layer["w"] + layer["b"])  # residual: deep and still trainable
    prediction = x @ params[-1]["w"] + params[-1]["b"]
    return jnp.mean((prediction - y) ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=60)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="8 layers, 30 steps")
    parser.add_argument("--out", type=Path, default=None, help="directory for results.json (default: a temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.steps = 8, 30
    out = args.out or Path(tempfile.mkdtemp(prefix="packed_model_"))
    out.mkdir(parents=True, exist_ok=True)

    key_x, key_y, key_params = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (256, args.width))
    y = jnp.sin(x @ jax.random.normal(key_y, (args.width, args.width)) / 4)
    params = init_mlp(key_params, args.layers, args.width)
    optimizer = jn.adam(1e-3)

    @jax.jit
    def tree_step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return jn.apply_updates(params, updates), state, loss

    def packed_step(packed, state, scratch):
        # Differentiate with respect to the buffers; the gradient overwrites `scratch` (the
        # previous step's gradient, donated) in place instead of allocating a new buffer.
        loss, grads = jax.value_and_grad(lambda p: loss_fn(jn.unpack(p, grads_into=scratch), x, y))(packed)
        updates, state = optimizer.update(grads, state, packed)
        return jn.apply_updates(packed, updates), state, grads, loss

    packed_step = jax.jit(packed_step, donate_argnums=(0, 1, 2))

    def train(step, carry):
        *carry, loss = step(*carry)  # the first call compiles: not timed
        started = time.perf_counter()
        for _ in range(args.steps - 1):
            *carry, loss = step(*carry)
        jax.block_until_ready(loss)
        return carry[0], loss, (time.perf_counter() - started) / (args.steps - 1)

    tree_params, tree_loss, tree_seconds = train(tree_step, (params, optimizer.init(params)))
    packed = jn.pack(params)
    packed, packed_loss, packed_seconds = train(
        packed_step, (packed, optimizer.init(packed), jax.tree.map(jnp.zeros_like, packed))
    )
    difference = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(jax.tree.leaves(tree_params), jax.tree.leaves(jn.unpack(packed)))
    )
    results = {
        "leaves": len(jax.tree.leaves(params)),
        "steps": args.steps,
        "final_loss_tree": float(tree_loss),
        "final_loss_packed": float(packed_loss),
        "max_param_difference": difference,
        "ms_per_step_tree": 1e3 * tree_seconds,
        "ms_per_step_packed": 1e3 * packed_seconds,
        "should_pack": jn.should_pack(params),
    }
    print(f"{results['leaves']} leaves, {jn.pack(params)}, backend {jax.default_backend()}")
    print(f"final loss: tree {results['final_loss_tree']:.6f}, packed {results['final_loss_packed']:.6f}")
    print(f"largest parameter difference after {args.steps} steps: {difference:.3g}")
    print(f"ms per step: tree {results['ms_per_step_tree']:.2f}, packed {results['ms_per_step_packed']:.2f}")
    print(f"should_pack says {results['should_pack']} on this backend")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
