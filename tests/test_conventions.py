"""Each row of the convention table in docs/guides/conventions.md: PyTorch's and Keras' update
rules transcribed in NumPy from their documented algorithms, run next to the arguments of ours
that the table says reproduce them."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from tests.numpy_reference import NotesAdam, NotesMomentum, NotesRmsprop

STEPS = 30
GRADIENTS = np.random.default_rng(7).normal(size=(STEPS, 5)) * np.array([0.01, 0.1, 1.0, 10.0, 3.0])
START = np.linspace(-1.0, 1.0, 5)


def run_ours(tx):
    params = jnp.asarray(START, jnp.float32)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for g in GRADIENTS:
        updates, state = update(jnp.asarray(g, jnp.float32), state, params)
        params = jn.apply_updates(params, updates)
    return np.asarray(params, np.float64)


def run_numpy(rule):
    """``rule(w, g, t, memory) -> w`` applied over the gradients, t counting from 1."""
    w, memory = START.copy(), {}
    for t, g in enumerate(GRADIENTS, start=1):
        w = rule(w, g, t, memory)
    return w


def run_reference(reference):
    params = START.copy()
    state = reference.init(params)
    for g in GRADIENTS:
        updates, state = reference.update(g, state, params)
        params = params + updates
    return params


def torch_sgd(lr, momentum, dampening=0.0, nesterov=False):
    """torch.optim.SGD: on the first step the buffer is the gradient itself (no dampening)."""

    def rule(w, g, t, memory):
        buf = g.copy() if t == 1 else momentum * memory["buf"] + (1 - dampening) * g
        memory["buf"] = buf
        direction = g + momentum * buf if nesterov else buf
        return w - lr * direction

    return rule


def keras_sgd(lr, momentum):
    """keras.optimizers.SGD: m = momentum * m - lr * g; w = w + m."""

    def rule(w, g, t, memory):
        memory["m"] = momentum * memory.get("m", 0.0) - lr * g
        return w + memory["m"]

    return rule


def torch_rmsprop(lr, alpha=0.99, eps=1e-8):
    """torch.optim.RMSprop: epsilon outside the square root."""

    def rule(w, g, t, memory):
        memory["v"] = alpha * memory.get("v", 0.0) + (1 - alpha) * g**2
        return w - lr * g / (np.sqrt(memory["v"]) + eps)

    return rule


def keras_rmsprop(lr, rho=0.9, epsilon=1e-7):
    """keras.optimizers.RMSprop: epsilon inside the square root."""

    def rule(w, g, t, memory):
        memory["v"] = rho * memory.get("v", 0.0) + (1 - rho) * g**2
        return w - lr * g / np.sqrt(memory["v"] + epsilon)

    return rule


def torch_adam(lr, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.Adam: denominator sqrt(v) / sqrt(1 - b2**t) + eps, step lr / (1 - b1**t)."""

    def rule(w, g, t, memory):
        memory["m"] = b1 * memory.get("m", 0.0) + (1 - b1) * g
        memory["v"] = b2 * memory.get("v", 0.0) + (1 - b2) * g**2
        denom = np.sqrt(memory["v"]) / np.sqrt(1 - b2**t) + eps
        return w - lr / (1 - b1**t) * memory["m"] / denom

    return rule


def keras_adam(lr, b1=0.9, b2=0.999, epsilon=1e-7):
    """keras.optimizers.Adam: alpha = lr * sqrt(1 - b2**t) / (1 - b1**t); epsilon ("epsilon hat")
    added to the square root of the uncorrected v."""

    def rule(w, g, t, memory):
        memory["m"] = b1 * memory.get("m", 0.0) + (1 - b1) * g
        memory["v"] = b2 * memory.get("v", 0.0) + (1 - b2) * g**2
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return w - alpha * memory["m"] / (np.sqrt(memory["v"]) + epsilon)

    return rule


ALPHA, BETA = 0.05, 0.9
TOLERANCE = {"rtol": 2e-5, "atol": 2e-6}

ROWS = {
    # momentum, the notes' dampened form
    "momentum: ours": (lambda: run_ours(jn.momentum(ALPHA, BETA)), lambda: run_reference(NotesMomentum(ALPHA, BETA))),
    "momentum: optax sgd(alpha*(1-beta), momentum=beta)": (
        lambda: run_ours(optax.sgd(ALPHA * (1 - BETA), momentum=BETA)),
        lambda: run_reference(NotesMomentum(ALPHA, BETA)),
    ),
    "momentum: torch SGD(lr=alpha*(1-beta), momentum=beta, dampening=0)": (
        lambda: run_numpy(torch_sgd(ALPHA * (1 - BETA), BETA)),
        lambda: run_ours(jn.momentum(ALPHA, BETA)),
    ),
    "momentum: keras SGD(alpha*(1-beta), momentum=beta)": (
        lambda: run_numpy(keras_sgd(ALPHA * (1 - BETA), BETA)),
        lambda: run_ours(jn.momentum(ALPHA, BETA)),
    ),
    "momentum undampened: torch SGD(lr, momentum) = ours dampened=False": (
        lambda: run_numpy(torch_sgd(ALPHA, BETA)),
        lambda: run_ours(jn.momentum(ALPHA, BETA, dampened=False)),
    ),
    "momentum nesterov: torch SGD(nesterov=True) = ours nesterov": (
        lambda: run_numpy(torch_sgd(ALPHA, BETA, nesterov=True)),
        lambda: run_ours(jn.momentum(ALPHA, BETA, dampened=False, nesterov=True)),
    ),
    # RMSprop, the notes' form: epsilon outside the root
    "rmsprop: ours": (
        lambda: run_ours(jn.rmsprop(ALPHA, BETA, 1e-8)),
        lambda: run_reference(NotesRmsprop(ALPHA, BETA, 1e-8)),
    ),
    "rmsprop: optax rmsprop(eps_in_sqrt=False)": (
        lambda: run_ours(optax.rmsprop(ALPHA, BETA, 1e-8, eps_in_sqrt=False)),
        lambda: run_reference(NotesRmsprop(ALPHA, BETA, 1e-8)),
    ),
    "rmsprop: torch RMSprop(lr, alpha=beta, eps)": (
        lambda: run_numpy(torch_rmsprop(ALPHA, BETA, 1e-8)),
        lambda: run_ours(jn.rmsprop(ALPHA, BETA, 1e-8)),
    ),
    "rmsprop: keras RMSprop(rho=beta, epsilon) = ours eps_in_sqrt=True": (
        lambda: run_numpy(keras_rmsprop(ALPHA, BETA, 1e-7)),
        lambda: run_ours(jn.rmsprop(ALPHA, BETA, 1e-7, eps_in_sqrt=True)),
    ),
    # Adam
    "adam: ours": (lambda: run_ours(jn.adam(ALPHA)), lambda: run_reference(NotesAdam(ALPHA))),
    "adam: optax adam": (lambda: run_ours(optax.adam(ALPHA)), lambda: run_reference(NotesAdam(ALPHA))),
    "adam: torch Adam(lr, betas, eps)": (lambda: run_numpy(torch_adam(ALPHA)), lambda: run_ours(jn.adam(ALPHA))),
    "adam: keras Adam(epsilon=0) = ours eps=0": (
        lambda: run_numpy(keras_adam(ALPHA, epsilon=0.0)),
        lambda: run_ours(jn.adam(ALPHA, eps=0.0)),
    ),
}


@pytest.mark.parametrize("row", ROWS)
def test_convention_table_row(row):
    left, right = ROWS[row]
    np.testing.assert_allclose(left(), right(), **TOLERANCE)


def test_torch_dampening_is_not_the_notes_form():
    """The trap the table warns about: SGD(dampening=beta) keeps the raw gradient on step one."""
    torch_dampened = run_numpy(torch_sgd(ALPHA, BETA, dampening=BETA))
    notes = run_reference(NotesMomentum(ALPHA, BETA))
    assert np.max(np.abs(torch_dampened - notes)) > 1e-2


def test_optax_sgd_momentum_is_not_the_notes_form_at_the_same_rate():
    """optax.sgd(alpha, momentum=beta) steps 1 / (1 - beta) times further than the notes."""
    optax_steps = run_ours(optax.sgd(ALPHA, momentum=BETA)) - START
    notes_steps = run_reference(NotesMomentum(ALPHA, BETA)) - START
    np.testing.assert_allclose(optax_steps * (1 - BETA), notes_steps, rtol=1e-4, atol=1e-6)


def test_keras_epsilon_hat_differs_from_the_notes_epsilon():
    """Keras' epsilon is added before bias correction of v: with a gradient as small as 1e-8,
    the same epsilon value gives visibly different steps."""

    def first_step(rule):
        w = START.copy()
        return rule(w, np.full(5, 1e-7), 1, {}) - w

    keras_step = first_step(keras_adam(ALPHA, epsilon=1e-7))
    notes_step = first_step(torch_adam(ALPHA, eps=1e-7))
    assert not np.allclose(keras_step, notes_step, rtol=1e-2)
