"""One shuffled epoch of the notes' logistic regression: ``fit`` against the loop a user writes.

The reference is the best plain optax loop: a jitted ``train_step``, a NumPy permutation per
epoch, and host-sliced minibatches fed step by step. Both run Adam on the same data, in the
same process, after a warm-up that compiles them. Printed per case: seconds per epoch of each,
the ratio, fit's compile time, and the wall time of a second ``fit`` call (no recompile).

Run: ``python benchmarks/fit_epoch.py`` (``--quick`` for small sizes only).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxopt_notes as jn


def loss(params, x, y):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(x @ params["w"] + params["b"], y))


def user_loop_epoch(X, Y, batch_size, params, state, train_step, seed):
    perm = np.random.default_rng(seed).permutation(len(X))
    for start in range(0, len(X), batch_size):
        rows = perm[start : start + batch_size]
        params, state, cost = train_step(params, state, X[rows], Y[rows])
    jax.block_until_ready(params)
    return params, state


def run_case(m: int, d: int, batch_size: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m, d), dtype=np.float32)
    Y = (X @ rng.standard_normal(d).astype(np.float32) > 0).astype(np.float32)
    params = {"w": jnp.zeros(d), "b": jnp.zeros(())}
    user_opt = optax.adam(1e-3)

    @jax.jit
    def train_step(params, state, x, y):
        cost, grads = jax.value_and_grad(loss)(params, x, y)
        updates, state = user_opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, cost

    state = user_opt.init(params)
    p, s = user_loop_epoch(X[: 4 * batch_size], Y[: 4 * batch_size], batch_size, params, state, train_step, 0)
    if m % batch_size:  # compile the partial last minibatch's shape too
        train_step(p, s, X[: m % batch_size], Y[: m % batch_size])
    user = []
    for repeat in range(repeats):
        started = time.perf_counter()
        p, s = user_loop_epoch(X, Y, batch_size, p, s, train_step, repeat)
        user.append(time.perf_counter() - started)

    optimizer = jn.adam(1e-3)
    started = time.perf_counter()
    fit_params, history = jn.fit(loss, params, optimizer, X, Y, batch_size=batch_size, epochs=1, progress=False)
    first_call = time.perf_counter() - started
    started = time.perf_counter()
    fit_params, history = jn.fit(
        loss, params, optimizer, X, Y, batch_size=batch_size, epochs=repeats, seed=1, progress=False
    )
    second_call = time.perf_counter() - started
    per_epoch = float(np.min(history.epoch_time))
    user_epoch = min(user)
    print(
        f"m={m:>9,} d={d} batch={batch_size:>5} steps/epoch={-(-m // batch_size):>5} | "
        f"user loop {user_epoch:7.3f} s/epoch | fit {per_epoch:7.3f} s/epoch | ratio {user_epoch / per_epoch:6.1f}x | "
        f"fit compile {max(first_call - per_epoch, 0.0):5.2f} s | "
        f"second fit call ({repeats} epochs) {second_call:6.3f} s, epochs {np.round(history.epoch_time, 3).tolist()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only small sizes, a few seconds")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per loop (the best is kept)")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, device {jax.devices()[0].device_kind}")
    cases = [(50_000, 20, 64)] if args.quick else [(5_000_000, 20, 1_000), (50_000, 20, 64)]
    for m, d, batch_size in cases:
        run_case(m, d, batch_size, args.repeats)


if __name__ == "__main__":
    main()
