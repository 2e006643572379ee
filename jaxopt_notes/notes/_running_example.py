"""The ``jaxopt-notes compare`` experiment: the notes' running example, one optimizer at a time.

A logistic regression (by default generated: m = 5,000,000 examples, 20 features, minibatch
1,000, so 5,000 steps per epoch, as in notes section 1) trained by :func:`jaxopt_notes.fit`
with batch gradient descent, minibatch SGD, momentum, RMSprop, Adam and Adam with
learning-rate decay. For each it reports the final cost and accuracy on the whole training
set, the epochs and steps its smoothed cost needs to reach a target, and the wall time.

Data sets: ``generated``; ``digits`` (scikit-learn's bundled 8x8 digits, 10 classes); or a
file of the user's: a ``.npz`` holding ``X`` (m, d) and ``y`` (m,) integer labels 0..k-1, or a
``.npy`` array of shape (m, d + 1) whose last column is the label. Features of loaded data are
standardised (zero mean, unit variance per column); two classes train a logistic regression,
more a softmax regression.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_notes import schedules
from jaxopt_notes._adam import adam
from jaxopt_notes._base import GradientTransformation
from jaxopt_notes._momentum import momentum
from jaxopt_notes._rmsprop import rmsprop
from jaxopt_notes._sgd import sgd
from jaxopt_notes.data._batches import steps_per_epoch
from jaxopt_notes.training._fit import fit
from jaxopt_notes.training._history import History

DEFAULT_M = 5_000_000
GENERATED_FEATURES = 20
_CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Problem:
    """A classification training set: ``X`` (m, d) float32, ``Y`` labels, ``classes`` k."""

    name: str
    X: np.ndarray
    Y: np.ndarray
    classes: int


def _generate_chunk(seed: np.random.SeedSequence, X: np.ndarray, Y: np.ndarray, w: np.ndarray, b: float) -> None:
    rng = np.random.default_rng(seed)
    # Uniform features scaled to unit variance: several times faster to draw than normal ones.
    rng.random(out=X, dtype=np.float32)
    X -= np.float32(0.5)
    X *= np.float32(np.sqrt(12.0))
    probability = 1 / (1 + np.exp(-(X @ w + b)))
    Y[:] = rng.random(len(Y), dtype=np.float32) < probability


def generate_logistic(m: int = DEFAULT_M, d: int = GENERATED_FEATURES, *, seed: int = 0) -> Problem:
    """m examples of d unit-variance features with labels drawn from a logistic model
    ``P(y = 1 | x) = sigmoid(w.x + 0.3)``, ``w`` of norm 2: no classifier can beat about 78 %
    accuracy on them.

    Drawn in float32 in chunks of 250,000 rows on every core; chunk i uses the i-th child of
    ``SeedSequence(seed)``, so the data depend on the seed only, not on the core count.
    """
    if m < 2:
        raise ValueError(f"m must be at least 2, got {m}")
    parameter_rng = np.random.default_rng([seed, 1])
    w = parameter_rng.normal(size=d)
    w = (2.0 * w / np.linalg.norm(w)).astype(np.float32)
    X = np.empty((m, d), np.float32)
    Y = np.empty(m, np.float32)
    starts = range(0, m, _CHUNK_ROWS)
    seeds = np.random.SeedSequence(seed).spawn(len(starts))

    def fill(chunk: int) -> None:
        rows = slice(starts[chunk], starts[chunk] + _CHUNK_ROWS)
        _generate_chunk(seeds[chunk], X[rows], Y[rows], w, 0.3)

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # NumPy's generators release the GIL
        list(pool.map(fill, range(len(starts))))
    return Problem(f"generated logistic regression, m = {m:,}, d = {d}", X, Y, 2)


def _standardise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, np.float32)
    scale = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1).astype(np.float32)


def _labelled(name: str, X: np.ndarray, labels: np.ndarray) -> Problem:
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"{name}: X must be a 2-D array (m, d) with m >= 2 examples, got shape {X.shape}")
    if labels.shape != (X.shape[0],):
        raise ValueError(f"{name}: y must hold one label per example, shape ({X.shape[0]},), got {labels.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name}: X holds NaN or infinite values")
    if not (np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)) and labels.min() >= 0):
        raise ValueError(f"{name}: labels must be integers 0, 1, ..., k-1")
    classes = int(labels.max()) + 1
    if classes < 2:
        raise ValueError(f"{name}: labels must hold at least two classes, got only {classes}")
    Y = labels.astype(np.float32) if classes == 2 else labels.astype(np.int32)
    return Problem(f"{name}, m = {X.shape[0]:,}, d = {X.shape[1]}, {classes} classes", _standardise(X), Y, classes)


def load_problem(dataset: str, *, m: int | None = None, seed: int = 0) -> Problem:
    """``"generated"`` (m examples), ``"digits"``, or a path to a ``.npz`` / ``.npy`` file."""
    if dataset == "generated":
        return generate_logistic(DEFAULT_M if m is None else m, seed=seed)
    if m is not None:
        raise ValueError("--m sets the size of the generated data only; it cannot resize --dataset " + dataset)
    if dataset == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError("--dataset digits needs scikit-learn: pip install 'jaxopt-notes[digits]'") from None
        digits = load_digits()
        return _labelled("scikit-learn digits", digits.data, digits.target)
    path = Path(dataset)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as loaded:
            missing = {"X", "y"} - set(loaded.files)
            if missing:
                raise ValueError(f"{path}: a .npz data set needs arrays X (m, d) and y (m,); missing {sorted(missing)}")
            return _labelled(path.name, loaded["X"], loaded["y"])
    table = np.load(path, allow_pickle=False)
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"{path}: a .npy data set must be 2-D (m, d + 1) with the label last, got shape {table.shape}")
    return _labelled(path.name, table[:, :-1], table[:, -1])


def logistic_loss(params: dict, X: jax.Array, Y: jax.Array) -> jax.Array:
    """Cross-entropy of ``sigmoid(X w + b)`` against 0/1 labels, computed stably from the logits."""
    z = X @ params["w"] + params["b"]
    return jnp.mean(jnp.logaddexp(0.0, z) - Y * z)


def softmax_loss(params: dict, X: jax.Array, Y: jax.Array) -> jax.Array:
    """Cross-entropy of ``softmax(X W + b)`` against integer labels."""
    logits = X @ params["w"] + params["b"]
    picked = jnp.take_along_axis(logits, Y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def model_for(problem: Problem) -> tuple[Callable, dict]:
    """The loss and zero initial parameters: logistic for two classes, softmax for more."""
    d = problem.X.shape[1]
    if problem.classes == 2:
        return logistic_loss, {"w": jnp.zeros(d), "b": jnp.zeros(())}
    return softmax_loss, {"w": jnp.zeros((d, problem.classes)), "b": jnp.zeros(problem.classes)}


def evaluate(params: dict, problem: Problem) -> tuple[float, float]:
    """Cost and accuracy over the whole training set, in NumPy, a chunk of rows at a time."""
    w, b = np.asarray(params["w"], np.float32), np.asarray(params["b"], np.float32)
    total_cost, correct = 0.0, 0
    for start in range(0, len(problem.X), _CHUNK_ROWS):
        X, Y = problem.X[start : start + _CHUNK_ROWS], problem.Y[start : start + _CHUNK_ROWS]
        z = (X @ w + b).astype(np.float64)
        if problem.classes == 2:
            total_cost += np.sum(np.logaddexp(0.0, z) - Y * z)
            correct += int(np.count_nonzero((z > 0) == (Y > 0.5)))
        else:
            top = z.max(axis=1)
            log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
            total_cost += np.sum(log_norm - z[np.arange(len(Y)), Y])
            correct += int(np.count_nonzero(z.argmax(axis=1) == Y))
    return total_cost / len(problem.X), correct / len(problem.X)


@dataclass(frozen=True)
class Contender:
    """One optimizer of the race: its label, default learning rate, and how to build it."""

    label: str
    learning_rate: float
    build: Callable[[float, int], GradientTransformation]
    full_batch: bool = False


CONTENDERS = {
    "gd": Contender("batch GD", 4.0, lambda lr, steps: sgd(lr), full_batch=True),
    "sgd": Contender("minibatch SGD", 0.5, lambda lr, steps: sgd(lr)),
    "momentum": Contender("momentum", 0.5, lambda lr, steps: momentum(lr, 0.9)),
    "rmsprop": Contender("RMSprop", 0.01, lambda lr, steps: rmsprop(lr, 0.9)),
    "adam": Contender("Adam", 0.01, lambda lr, steps: adam(lr)),
    # Epochs counted from 0 here, so the first epoch runs at alpha0 like plain Adam and the
    # decay shows as the difference afterwards: alpha0 / (1 + epoch_index).
    "adam-decay": Contender(
        "Adam + decay",
        0.01,
        lambda lr, steps: adam(schedules.inverse_time_decay(lr, 1.0, steps_per_epoch=steps, first_epoch=0)),
    ),
}


@dataclass(frozen=True)
class Result:
    """One optimizer's run: the fit history plus the end-of-run measurements."""

    name: str
    label: str
    learning_rate: float
    batch_size: int
    steps_per_epoch: int
    history: History
    final_cost: float
    accuracy: float
    seconds: float

    @property
    def curve(self) -> np.ndarray:
        """The cost after 0, 1, ..., all updates that the target is checked on: the smoothed
        minibatch cost (for batch gradient descent, whose cost has no minibatch noise, the
        cost itself), ending with the final cost on the whole set."""
        history = self.history
        return np.append(history.cost if self.steps_per_epoch == 1 else history.smoothed_cost, self.final_cost)

    def steps_to(self, target: float) -> int | None:
        """Updates taken when :attr:`curve` first reaches ``target``; None if it never does."""
        reached = np.flatnonzero(self.curve <= target)
        return int(reached[0]) if len(reached) else None


def run_contender(
    name: str, problem: Problem, *, epochs: int, batch_size: int, learning_rate: float, seed: int, progress: bool
) -> Result:
    contender = CONTENDERS[name]
    m = len(problem.X)
    batch = m if contender.full_batch else batch_size
    steps = steps_per_epoch(m, batch)
    loss, params = model_for(problem)
    start = time.perf_counter()
    params, history = fit(
        loss, params, contender.build(learning_rate, steps), problem.X, problem.Y,
        batch_size=batch, epochs=epochs, seed=seed, progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    final_cost, accuracy = evaluate(params, problem)
    return Result(name, contender.label, learning_rate, batch, steps, history, final_cost, accuracy, seconds)


def default_target(results: Sequence[Result], initial_cost: float) -> float:
    """95 % of the way from the initial cost to the best final cost of the runs."""
    best = min(initial_cost, *(result.final_cost for result in results))
    if best >= initial_cost:
        print("warning: no optimizer lowered the cost; try smaller learning rates (--lr)", file=sys.stderr)
    return best + 0.05 * (initial_cost - best)
