"""The notes' formulas written by hand in NumPy, next to the library's transforms.

Each block below transcribes one formula of the study notes exactly as printed (sections 2-7),
runs it on the same random gradients as the library's transform, and prints the largest
difference. The script exits with status 1 if any of them disagree.

    python examples/notes_formulas.py          # 200 steps
    python examples/notes_formulas.py --quick  # 20 steps
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_notes as jn
from jaxopt_notes import schedules


def library_run(optimizer, gradients, w0):
    """Parameters after each update, the library's way."""
    w = jnp.asarray(w0)
    state = optimizer.init(w)
    update = jax.jit(optimizer.update)
    visited = []
    for g in gradients:
        updates, state = update(jnp.asarray(g), state, w)
        w = jn.apply_updates(w, updates)
        visited.append(np.asarray(w))
    return np.array(visited)


def notes_momentum(gradients, w, alpha, beta):
    v, visited = np.zeros_like(w), []
    for dW in gradients:
        v = beta * v + (1 - beta) * dW  # v_dW = beta * v_dW + (1 - beta) * dW
        w = w - alpha * v  # W = W - alpha * v_dW
        visited.append(w)
    return np.array(visited)


def notes_rmsprop(gradients, w, alpha, beta2, eps=1e-8):
    S, visited = np.zeros_like(w), []
    for dW in gradients:
        S = beta2 * S + (1 - beta2) * dW**2  # S_dW = beta2 * S_dW + (1 - beta2) * dW^2
        w = w - alpha * dW / (np.sqrt(S) + eps)  # W = W - alpha * dW / (sqrt(S_dW) + eps)
        visited.append(w)
    return np.array(visited)


def notes_adam(gradients, w, alpha, beta1=0.9, beta2=0.999, eps=1e-8):
    v, S, visited = np.zeros_like(w), np.zeros_like(w), []
    for t, dW in enumerate(gradients, start=1):
        v = beta1 * v + (1 - beta1) * dW
        S = beta2 * S + (1 - beta2) * dW**2
        v_corr = v / (1 - beta1**t)
        S_corr = S / (1 - beta2**t)
        w = w - alpha * v_corr / (np.sqrt(S_corr) + eps)
        visited.append(w)
    return np.array(visited)


def notes_ewa(thetas, beta, corrected):
    v, out = 0.0, []
    for t, theta in enumerate(thetas, start=1):
        v = beta * v + (1 - beta) * theta  # v_t = beta * v_(t-1) + (1 - beta) * theta_t
        out.append(v / (1 - beta**t) if corrected else v)  # bias correction: v_t / (1 - beta^t)
    return np.array(out)


def notes_decayed_sgd(gradients, w, alpha0, decay_rate, steps_per_epoch):
    visited = []
    for step, dW in enumerate(gradients):
        epoch_num = 1 + step // steps_per_epoch  # epochs numbered from 1, as the notes' worked example
        alpha = alpha0 / (1 + decay_rate * epoch_num)
        w = w - alpha * dW
        visited.append(w)
    return np.array(visited)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 steps instead of 200")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)  # compare the formulas, not float32 rounding

    steps = 20 if args.quick else 200
    rng = np.random.default_rng(0)
    gradients = rng.normal(size=(steps, 5))
    w0 = rng.normal(size=5)
    thetas = rng.normal(10.0, 3.0, size=steps)

    def ewa_outputs(transform):
        state = transform.init(jnp.zeros(()))
        update = jax.jit(transform.update)
        outputs = []
        for theta in thetas:
            out, state = update(jnp.asarray(theta), state)
            outputs.append(float(out))
        return np.array(outputs)

    comparisons = {
        "EWA v_t (section 2)": (ewa_outputs(jn.ewa(0.9)), notes_ewa(thetas, 0.9, corrected=False)),
        "bias correction (section 3)": (
            ewa_outputs(jn.chain(jn.ewa(0.98), jn.bias_correction(0.98))),
            notes_ewa(thetas, 0.98, corrected=True),
        ),
        "momentum (section 4)": (
            library_run(jn.momentum(0.1, 0.9), gradients, w0),
            notes_momentum(gradients, w0, 0.1, 0.9),
        ),
        "RMSprop (section 5)": (
            library_run(jn.rmsprop(0.01, 0.999), gradients, w0),
            notes_rmsprop(gradients, w0, 0.01, 0.999),
        ),
        "Adam (section 6)": (library_run(jn.adam(0.01), gradients, w0), notes_adam(gradients, w0, 0.01)),
        "learning-rate decay (section 7)": (
            library_run(jn.sgd(schedules.inverse_time_decay(0.2, 1.0, steps_per_epoch=5)), gradients, w0),
            notes_decayed_sgd(gradients, w0, 0.2, 1.0, steps_per_epoch=5),
        ),
    }
    print(f"{'formula':34s} {'steps':>6s} {'max |library - by hand|':>24s}")
    worst = 0.0
    for name, (library, by_hand) in comparisons.items():
        difference = float(np.max(np.abs(library - by_hand)))
        worst = max(worst, difference)
        print(f"{name:34s} {len(by_hand):6d} {difference:24.3e}")
    agree = worst < 1e-9
    print("all formulas agree" if agree else "MISMATCH: the library and the notes disagree")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
