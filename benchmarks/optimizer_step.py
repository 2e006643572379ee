"""How fast is an Adam step on a many-leaf model, packed and unpacked?

Prints, in one run, for one leaf, for many equal leaves and for leaves of mixed sizes (the
same total size): optax's donated jitted Adam step on the pytree, ours on the pytree, ours on
the packed buffers, the machine's copy bandwidth (a donated jitted ``x * c`` over one array
of the same size) and each step's achieved GB/s at 28 bytes per float32 parameter (read
parameters, gradients, both moments; write parameters, both moments). Then a full jitted
train step (gradient of a loss over every leaf plus the Adam update) on the many-leaf model:
optax on the pytree, ours packed, and optax on one leaf of the same total size.

Candidates are timed in turn, round after round, and the median is reported, because the
machine is shared. Ratios compare numbers measured in this run only.

    python benchmarks/optimizer_step.py                      # 10M params, 1000 leaves
    python benchmarks/optimizer_step.py --size 100000000     # on a GPU
    python benchmarks/optimizer_step.py --quick              # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn

BYTES_PER_PARAM = 28
COLUMNS = 100


def leaf_sizes(kind: str, size: int, leaves: int) -> list[int]:
    """Leaf sizes summing to ``size``, each a multiple of ``COLUMNS`` (so it is a matrix)."""
    rows = size // COLUMNS
    if kind == "one leaf":
        return [rows * COLUMNS]
    if kind == "equal leaves":
        return [rows // leaves * COLUMNS] * leaves
    weights = np.random.default_rng(0).lognormal(0.0, 1.5, leaves)
    split = np.maximum(1, np.floor(weights / weights.sum() * rows)).astype(int)
    split[np.argmax(split)] += rows - split.sum()
    return [int(r) * COLUMNS for r in split]


def make_tree(sizes: list[int], seed: int = 0) -> list[jax.Array]:
    key = jax.random.key(seed)
    return [0.1 * jax.random.normal(jax.random.fold_in(key, i), (n // COLUMNS, COLUMNS)) for i, n in enumerate(sizes)]


def copy_tree(tree):
    return jax.tree.map(jnp.copy, tree)


def time_round_robin(candidates: dict, repeats: int, calls: int) -> dict[str, float]:
    """Median seconds per call. Each candidate is ``(step, carry, inputs)``:
    ``carry = step(*carry, *inputs)``, so donated buffers are fed back."""
    carries = {}
    for name, (step, carry, inputs) in candidates.items():
        started = time.perf_counter()
        carries[name] = jax.block_until_ready(step(*carry, *inputs))
        print(f"  compiled {name} in {time.perf_counter() - started:.1f} s", flush=True)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, (step, _, inputs) in candidates.items():
            carry = carries[name]
            started = time.perf_counter()
            for _ in range(calls):
                carry = step(*carry, *inputs)
            jax.block_until_ready(carry)
            samples[name].append((time.perf_counter() - started) / calls)
            carries[name] = carry
    return {name: statistics.median(values) for name, values in samples.items()}


def update_step(optimizer, apply_updates):
    def step(params, state, grads):
        updates, state = optimizer.update(grads, state, params)
        return apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def copy_step():
    """A donated ``x * c``: reads and writes 4 bytes per element, the copy bandwidth."""
    return jax.jit(lambda x: (x * 1.0000001,), donate_argnums=0)


def pure_update(kind: str, size: int, leaves: int, repeats: int, calls: int) -> dict[str, float]:
    sizes = leaf_sizes(kind, size, leaves)
    params = make_tree(sizes)
    grads = make_tree(sizes, seed=1)
    total = sum(sizes)
    ours, theirs = jn.adam(1e-3), optax.adam(1e-3)
    packed, packed_grads = jn.pack(params), jn.pack(grads)
    candidates = {
        "optax (tree)": (update_step(theirs, optax.apply_updates), (copy_tree(params), theirs.init(params)), (grads,)),
        "ours (tree)": (update_step(ours, jn.apply_updates), (copy_tree(params), ours.init(params)), (grads,)),
        "ours (packed)": (update_step(ours, jn.apply_updates), (packed, ours.init(packed)), (packed_grads,)),
        "copy x * c": (copy_step(), (jnp.ones(total),), ()),
    }
    print(f"\npure Adam update, {kind}: {len(sizes)} leaves, {total / 1e6:.1f}M params", flush=True)
    results = time_round_robin(candidates, repeats, calls)
    reference = results["optax (tree)"]
    bandwidth = 8 * total / results.pop("copy x * c")
    print(f"  copy bandwidth (donated x * c over {total / 1e6:.1f}M float32, same rounds): {bandwidth / 1e9:.1f} GB/s")
    for name, seconds in results.items():
        achieved = BYTES_PER_PARAM * total / seconds
        print(
            f"  {name:14s} {seconds * 1e3:8.2f} ms   {achieved / 1e9:6.1f} GB/s "
            f"({achieved / bandwidth:4.0%} of copy)   optax/this {reference / seconds:5.2f}x"
        )
    return results


def loss(tree, probe):
    return sum(jnp.sum(jnp.tanh(weight @ probe)) for weight in jax.tree.leaves(tree))


def train_steps(size: int, leaves: int, repeats: int, calls: int) -> dict[str, float]:
    probe = jnp.linspace(-1.0, 1.0, COLUMNS)
    theirs, ours = optax.adam(1e-3), jn.adam(1e-3)

    def tree_step(params, state):
        grads = jax.grad(loss)(params, probe)
        updates, state = theirs.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def packed_step(packed, state, scratch):
        # The previous gradient's buffers, donated, receive this one in place.
        grads = jax.grad(lambda p: loss(jn.unpack(p, grads_into=scratch), probe))(packed)
        updates, state = ours.update(grads, state, packed)
        return jn.apply_updates(packed, updates), state, grads

    many = make_tree(leaf_sizes("equal leaves", size, leaves))
    one = make_tree(leaf_sizes("one leaf", size, leaves))
    packed = jn.pack(many)
    tree_jit = jax.jit(tree_step, donate_argnums=(0, 1))
    candidates = {
        "optax (tree)": (tree_jit, (copy_tree(many), theirs.init(many)), ()),
        "ours (packed)": (
            jax.jit(packed_step, donate_argnums=(0, 1, 2)),
            (packed, ours.init(packed), jax.tree.map(jnp.zeros_like, packed)),
            (),
        ),
        "optax (one leaf)": (jax.jit(tree_step, donate_argnums=(0, 1)), (one, theirs.init(one)), ()),
    }
    print(f"\nfull train step (grad of sum tanh(W @ x) + Adam), {leaves} leaves, {size / 1e6:.1f}M params", flush=True)
    results = time_round_robin(candidates, repeats, calls)
    for name, seconds in results.items():
        print(
            f"  {name:16s} {seconds * 1e3:8.2f} ms   optax(tree)/this {results['optax (tree)'] / seconds:5.2f}x   "
            f"this/one leaf {seconds / results['optax (one leaf)']:5.2f}x"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000_000, help="total parameters (default 10M)")
    parser.add_argument("--leaves", type=int, default=1000, help="leaves of the many-leaf models (default 1000)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds; the median is reported")
    parser.add_argument("--calls", type=int, default=5, help="calls per round")
    parser.add_argument("--no-train", action="store_true", help="skip the full train step (slow to compile)")
    parser.add_argument("--quick", action="store_true", help="1M params, 100 leaves, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.size, args.leaves, args.repeats = 1_000_000, 100, 3
    print(
        f"backend {jax.default_backend()}: {jax.devices()[0].device_kind}, "
        f"jax {jax.__version__}, optax {optax.__version__}"
    )
    results = {
        kind: pure_update(kind, args.size, args.leaves, args.repeats, args.calls)
        for kind in ("one leaf", "equal leaves", "mixed sizes")
    }
    one = results["one leaf"]["optax (tree)"]
    for kind in ("equal leaves", "mixed sizes"):
        packed = results[kind]["ours (packed)"]
        print(
            f"{kind}: packed/one leaf {packed / one:.2f}x (goal <= 1.3), "
            f"optax tree/packed {results[kind]['optax (tree)'] / packed:.2f}x (goal >= 2)"
        )
    if not args.no_train:
        train_steps(args.size, args.leaves, args.repeats, args.calls)


if __name__ == "__main__":
    main()
