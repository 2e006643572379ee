"""One shuffled epoch of the notes' logistic regression: ``fit`` against the loop a user writes.

The reference is the best plain optax loop: a jitted ``train_step`` that donates parameters and
optimizer state, a NumPy permutation per epoch, and host-sliced minibatches fed step by step.
Both run Adam on the same data, in the same process, after a warm-up that compiles them.
User epochs and ``fit`` calls alternate, so both see the same machine load. Printed per
case: the best wall seconds per epoch of each and their ratio, CPU seconds per epoch (process
time: less sensitive to other jobs on a shared machine; fit's includes its setup and its
permutation thread), fit's compile time, and the wall time of a later 3-epoch ``fit`` call.

Run: ``python benchmarks/fit_epoch.py`` (``--quick`` for small sizes only).
"""

from __future__ import annotations

import argparse
import functools
import os
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

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, state, x, y):
        cost, grads = jax.value_and_grad(loss)(params, x, y)
        updates, state = user_opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, cost

    state = user_opt.init(jax.tree.map(jnp.copy, params))
    p, s = user_loop_epoch(
        X[: 4 * batch_size], Y[: 4 * batch_size], batch_size, jax.tree.map(jnp.copy, params), state, train_step, 0
    )
    if m % batch_size:  # compile the partial last minibatch's shape too
        p, s, _ = train_step(p, s, X[: m % batch_size], Y[: m % batch_size])

    optimizer = jn.adam(1e-3)
    started = time.perf_counter()
    jn.fit(loss, params, optimizer, X, Y, batch_size=batch_size, epochs=1, progress=False)
    first_call = time.perf_counter() - started
    # Interleaved, so both see the same load: one user epoch, then one fit call of 3 epochs whose
    # last epoch is left out (it has no next permutation to draw alongside).
    user, user_cpu, fit_epochs, fit_cpu, calls = [], [], [], [], []
    for repeat in range(repeats):
        cpu, started = time.process_time(), time.perf_counter()
        p, s = user_loop_epoch(X, Y, batch_size, p, s, train_step, repeat)
        user.append(time.perf_counter() - started)
        user_cpu.append(time.process_time() - cpu)
        cpu, started = time.process_time(), time.perf_counter()
        _, history = jn.fit(loss, params, optimizer, X, Y, batch_size=batch_size, epochs=3, seed=repeat, progress=False)
        calls.append(time.perf_counter() - started)
        fit_cpu.append((time.process_time() - cpu) / 3)
        fit_epochs += history.epoch_time[:-1].tolist()
    user_epoch, per_epoch = min(user), min(fit_epochs)
    print(
        f"m={m:>9,} d={d} batch={batch_size:>5} steps/epoch={-(-m // batch_size):>5} | "
        f"user loop {user_epoch:7.3f} s/epoch | fit {per_epoch:7.3f} s/epoch | ratio {user_epoch / per_epoch:6.1f}x | "
        f"CPU s/epoch user {min(user_cpu):.3f} fit {min(fit_cpu):.3f} | "
        f"fit compile {max(first_call - per_epoch, 0.0):5.2f} s | "
        f"later 3-epoch fit calls {min(calls):6.3f} s (no recompile) | load average {os.getloadavg()[0]:.1f}"
    )
    print(f"    user epochs {np.round(user, 3).tolist()}, fit epochs {np.round(fit_epochs, 3).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only small sizes, a few seconds")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case (the best is kept)")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, device {jax.devices()[0].device_kind}")
    cases = [(50_000, 20, 64)] if args.quick else [(5_000_000, 20, 1_000), (50_000, 20, 64)]
    for m, d, batch_size in cases:
        run_case(m, d, batch_size, args.repeats)


if __name__ == "__main__":
    main()
