"""Port a PyTorch training loop to JAX and get the same numbers.

The PyTorch loop (run here too when torch is installed)::

    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for epoch in range(epochs):
        for xb, yb in batches(epoch):          # the same order fit draws
            opt.zero_grad(); loss(params, xb, yb).backward(); opt.step()
        sched.step()                           # at the epoch's end: epoch 0 runs at lr=0.1

and its port: the same constructor names and arguments from :mod:`jaxopt_notes.torch`, the
scheduler given as the rate with ``steps_per_epoch`` so it steps at each epoch's end, and
:func:`jaxopt_notes.fit` for the loop::

    opt = jn.torch.SGD(jn.torch.StepLR(0.1, step_size=2, gamma=0.5, steps_per_epoch=n),
                       momentum=0.9, dampening=0.1, weight_decay=1e-4)
    params, history = jn.fit(loss, params, opt, X, Y, batch_size=64, epochs=epochs)

A second pair does the same for ``AdamW`` under ``ExponentialLR``. Both sides start from the
same parameters and see the minibatches in the same order (fit documents its shuffle:
``default_rng(SeedSequence([seed, epoch])).permutation(m)``); the script prints each run's
final cost and, with torch, the largest parameter difference (float32 rounding in the two
frameworks' gradients: below 1e-6 here).

    python examples/port_from_pytorch.py          # m = 2,048, 8 epochs
    python examples/port_from_pytorch.py --quick  # m = 512, 3 epochs
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_notes as jn

BATCH_SIZE, SEED = 64, 0


def make_data(m: int, d: int = 8, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((m, d)).astype(np.float32)
    Y = np.argmax(X @ rng.standard_normal((d, classes)) + 0.5 * rng.standard_normal((m, classes)), axis=1)
    return X, Y.astype(np.int32)


def init_params(d: int = 8, hidden: int = 16, classes: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {
        "W1": (rng.standard_normal((d, hidden)) / np.sqrt(d)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "W2": (rng.standard_normal((hidden, classes)) / np.sqrt(hidden)).astype(np.float32),
        "b2": np.zeros(classes, np.float32),
    }


def loss(params, X, Y):
    """Mean cross-entropy of a one-hidden-layer tanh network."""
    logits = jnp.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, Y[:, None], axis=1)[:, 0])


def ports(steps_per_epoch: int) -> dict[str, tuple]:
    """name -> (our optimizer, a function building torch's optimizer and scheduler)."""

    def torch_sgd(params):
        import torch

        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-4)
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def torch_adamw(params):
        import torch

        opt = torch.optim.AdamW(params, lr=0.01, weight_decay=0.05, amsgrad=True)
        return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)

    sgd = jn.torch.SGD(
        jn.torch.StepLR(0.1, step_size=2, gamma=0.5, steps_per_epoch=steps_per_epoch),
        momentum=0.9, dampening=0.1, weight_decay=1e-4,
    )  # fmt: skip
    adamw = jn.torch.AdamW(
        jn.torch.ExponentialLR(0.01, gamma=0.8, steps_per_epoch=steps_per_epoch), weight_decay=0.05, amsgrad=True
    )
    return {"SGD + StepLR": (sgd, torch_sgd), "AdamW + ExponentialLR": (adamw, torch_adamw)}


def fit_order(m: int, epoch: int) -> np.ndarray:
    """The order fit visits the examples in during ``epoch`` (as its docstring documents)."""
    return np.random.default_rng(np.random.SeedSequence([SEED, epoch])).permutation(m)


def train_torch(build, X, Y, epochs: int) -> dict[str, np.ndarray]:
    """The PyTorch loop of the module docstring, on fit's minibatches."""
    import torch

    params = {name: torch.tensor(value, requires_grad=True) for name, value in init_params().items()}
    opt, sched = build(list(params.values()))
    for epoch in range(epochs):
        order = fit_order(len(X), epoch)
        for start in range(0, len(X), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            xb, yb = torch.tensor(X[rows]), torch.tensor(Y[rows], dtype=torch.long)
            opt.zero_grad()
            logits = torch.tanh(xb @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
            torch.nn.functional.cross_entropy(logits, yb).backward()
            opt.step()
        sched.step()
    return {name: tensor.detach().numpy() for name, tensor in params.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (m = 512, 3 epochs)")
    args = parser.parse_args()
    m, epochs = (512, 3) if args.quick else (2048, 8)
    X, Y = make_data(m)
    steps_per_epoch = -(-m // BATCH_SIZE)
    try:
        import torch  # noqa: F401  (only to know whether the torch side can run)

        have_torch = True
    except ImportError:
        have_torch = False
    for name, (ours, torch_build) in ports(steps_per_epoch).items():
        params, history = jn.fit(
            loss, init_params(), ours, X, Y, batch_size=BATCH_SIZE, epochs=epochs, seed=SEED, progress=False
        )
        line = f"{name:22s} JAX final epoch cost {history.epoch_cost[-1]:.5f}"
        if have_torch:
            theirs = train_torch(torch_build, X, Y, epochs)
            worst = max(float(np.max(np.abs(np.asarray(params[k]) - theirs[k]))) for k in theirs)
            line += f"; largest difference from PyTorch's parameters {worst:.2e}"
        print(line)
    if not have_torch:
        print("torch is not installed: only the JAX side ran (pip install torch to compare)")


if __name__ == "__main__":
    main()
