"""The traps of porting Keras to JAX, each measured: Keras' optimizer against the port a user
would write by hand (optax, or this library's notes' optimizers), and against ``jn.keras``.

Each trap runs 100 steps of the reference gradient stream (``tests/keras_reference.py``, at the
trap's gradient scale) and reports how far the port's weights end from Keras', relative to how
far Keras moved them: ``max |w_port - w_keras| / max |w_keras - w_start|``. Print the table with

    python -m tests.keras_traps
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from tests import keras_reference as reference


@dataclasses.dataclass(frozen=True)
class Trap:
    """``keras(keras_module)`` builds the Keras optimizer; ``port()`` the hand port; ``faithful()``
    the ``jn.keras`` one. With ``averaged``, Keras' result is the averaged weights that
    ``model.fit`` leaves in the model, and the faithful side reads ``ema_params``."""

    name: str
    keras: Callable[[Any], Any]
    port: Callable[[], Any]
    faithful: Callable[[], Any]
    grad_scale: float = 1.0
    averaged: bool = False


def _traps() -> list[Trap]:
    import optax

    import jaxopt_notes as jn
    import jaxopt_notes.keras  # noqa: F401  (jn.keras)

    def exponential(module: Any) -> Any:
        return module.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.7)

    return [
        Trap(
            "SGD momentum under a schedule: Keras' rate sits inside the velocity; optax.sgd(schedule, momentum=0.9)",
            lambda k: k.optimizers.SGD(exponential(k.optimizers.schedules), momentum=0.9),
            lambda: optax.sgd(exponential(jn.keras), momentum=0.9),
            lambda: jn.keras.SGD(exponential(jn.keras), momentum=0.9),
        ),
        Trap(
            "Adam's epsilon hat, added before bias correction; optax.adam(1e-3, eps=1e-7), gradients ~1e-6",
            lambda k: k.optimizers.Adam(1e-3),
            lambda: optax.adam(1e-3, eps=1e-7),
            lambda: jn.keras.Adam(1e-3),
            grad_scale=1e-6,
        ),
        Trap(
            "RMSprop's epsilon inside the root; the notes' jn.rmsprop(1e-3, 0.9, 1e-7), gradients ~1e-4",
            lambda k: k.optimizers.RMSprop(1e-3),
            lambda: jn.rmsprop(1e-3, 0.9, 1e-7),
            lambda: jn.keras.RMSprop(1e-3),
            grad_scale=1e-4,
        ),
        Trap(
            "RMSprop's default epsilon 1e-7; optax.rmsprop(1e-3) (1e-8, also inside the root), gradients ~1e-4",
            lambda k: k.optimizers.RMSprop(1e-3),
            lambda: optax.rmsprop(1e-3),
            lambda: jn.keras.RMSprop(1e-3),
            grad_scale=1e-4,
        ),
        Trap(
            "AdamW's default weight decay 0.004; optax.adamw(1e-2, eps=1e-7) (1e-4)",
            lambda k: k.optimizers.AdamW(1e-2),
            lambda: optax.adamw(1e-2, eps=1e-7),
            lambda: jn.keras.AdamW(1e-2),
        ),
        Trap(
            "weight_decay on SGD is decoupled (W -= lr*wd*W), not L2 in the gradient; "
            "optax.chain(add_decayed_weights(0.1), sgd(0.05, momentum=0.9))",
            lambda k: k.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.1),
            lambda: optax.chain(optax.add_decayed_weights(0.1), optax.sgd(0.05, momentum=0.9)),
            lambda: jn.keras.SGD(0.05, momentum=0.9, weight_decay=0.1),
        ),
        Trap(
            "clipnorm clips each leaf; optax.chain(clip_by_global_norm(1.0), adam(1e-2, eps=1e-7))",
            lambda k: k.optimizers.Adam(1e-2, clipnorm=1.0),
            lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2, eps=1e-7)),
            lambda: jn.keras.Adam(1e-2, clipnorm=1.0),
        ),
        Trap(
            "InverseTimeDecay counts epochs from 0; the notes' jn.inverse_time_decay(0.05, 1.0, steps_per_epoch=10) "
            "from 1",
            lambda k: k.optimizers.SGD(k.optimizers.schedules.InverseTimeDecay(0.05, 10, 1.0, staircase=True)),
            lambda: jn.keras.SGD(jn.inverse_time_decay(0.05, 1.0, steps_per_epoch=10)),
            lambda: jn.keras.SGD(jn.keras.InverseTimeDecay(0.05, 10, 1.0, staircase=True)),
        ),
        Trap(
            "PiecewiseConstantDecay([50], ...) changes the rate after step 50; "
            "optax.piecewise_constant_schedule(0.05, {50: 0.1}) at it",
            lambda k: k.optimizers.SGD(k.optimizers.schedules.PiecewiseConstantDecay([50], [0.05, 0.005])),
            lambda: jn.keras.SGD(optax.piecewise_constant_schedule(0.05, {50: 0.1})),
            lambda: jn.keras.SGD(jn.keras.PiecewiseConstantDecay([50], [0.05, 0.005])),
        ),
        Trap(
            "use_ema: model.fit ends on the averaged weights; the port's raw weights",
            lambda k: k.optimizers.SGD(0.05, momentum=0.9, use_ema=True),
            lambda: jn.keras.SGD(0.05, momentum=0.9, use_ema=True),
            lambda: jn.keras.SGD(0.05, momentum=0.9, use_ema=True),
            averaged=True,
        ),
    ]


def _end_to_keras(ours: list[np.ndarray], theirs: list[np.ndarray], start: list[np.ndarray]) -> float:
    moved = max(float(np.max(np.abs(b.astype(np.float64) - s))) for b, s in zip(theirs, start))
    apart = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(ours, theirs))
    return apart / moved


def measure(trap: Trap, steps: int = reference.STEPS) -> tuple[float, float]:
    """The port's and ``jn.keras``' distance to Keras after ``steps`` steps, relative to how far
    Keras moved the weights."""
    import jax

    params = reference.starting_params(np.float32)
    grads = reference.gradient_stream(params, steps, trap.grad_scale)
    start = jax.tree.leaves(params)
    theirs, their_averages = reference.run_keras(trap.keras(reference.keras_module()), params, grads)
    target = their_averages[-1] if trap.averaged else theirs[-1]
    port, _ = reference.run_transformation(trap.port(), params, grads)
    faithful, faithful_averages = reference.run_transformation(trap.faithful(), params, grads)
    mine = faithful_averages[-1] if trap.averaged else faithful[-1]
    return _end_to_keras(port[-1], target, start), _end_to_keras(mine, target, start)


def main() -> None:
    print("| trap; the hand port | hand port vs Keras | jn.keras vs Keras |")
    print("|---|---|---|")
    for trap in _traps():
        port, faithful = measure(trap)
        print(f"| {trap.name} | {port:.1e} | {faithful:.1e} |")


TRAPS = _traps
"""The traps, built on call (they import optax and jaxopt_notes)."""

if __name__ == "__main__":
    main()
