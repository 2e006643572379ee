"""Real Keras 3 optimizers beside ``jaxopt_notes.keras``: the shared cases and the two drivers.

Keras is stepped with ``stateless_apply`` (uncompiled, as written), ours with ``jax.jit``; both
receive the same gradients. Every case runs ``STEPS`` steps and reports the largest difference
of the parameters (and of the averaged weights under ``use_ema``) over all steps: relative
element by element in float64, in units in the last place (ulps) in float32.

Run as a script to print the table of largest differences, float32 here and float64 in a
subprocess under ``jax_enable_x64``::

    python -m tests.keras_reference
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
from typing import Any

import jax
import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

STEPS = 100


@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer: Keras' class name, its keyword arguments (the same in both), and the
    schedule to pass as ``learning_rate`` (class name and arguments), if any."""

    name: str
    optimizer: str
    kwargs: dict[str, Any]
    schedule: tuple[str, dict[str, Any]] | None = None


EXPONENTIAL = ("ExponentialDecay", {"initial_learning_rate": 0.05, "decay_steps": 10, "decay_rate": 0.7})
EXPONENTIAL_STAIRS = (
    "ExponentialDecay",
    {"initial_learning_rate": 0.02, "decay_steps": 9, "decay_rate": 0.5, "staircase": True},
)
INVERSE_STAIRS = (
    "InverseTimeDecay",
    {"initial_learning_rate": 0.05, "decay_steps": 7, "decay_rate": 0.5, "staircase": True},
)
INVERSE = ("InverseTimeDecay", {"initial_learning_rate": 0.01, "decay_steps": 5, "decay_rate": 0.3})
PIECEWISE = ("PiecewiseConstantDecay", {"boundaries": [20, 50], "values": [0.05, 0.02, 0.005]})

CASES = [
    Case("SGD", "SGD", {"learning_rate": 0.05}),
    Case("SGD momentum", "SGD", {"momentum": 0.9, "learning_rate": 0.05}),
    Case("SGD momentum, exponential decay", "SGD", {"momentum": 0.9}, EXPONENTIAL),
    Case("SGD nesterov, inverse time staircase", "SGD", {"momentum": 0.8, "nesterov": True}, INVERSE_STAIRS),
    Case(
        "SGD weight decay, clipnorm, piecewise",
        "SGD",
        {"momentum": 0.5, "weight_decay": 0.1, "clipnorm": 1.0},
        PIECEWISE,
    ),
    Case(
        "SGD global_clipnorm, EMA",
        "SGD",
        {"learning_rate": 0.05, "momentum": 0.9, "global_clipnorm": 4.0, "use_ema": True, "ema_momentum": 0.9},
    ),
    Case(
        "SGD clipvalue, EMA overwrite",
        "SGD",
        {"learning_rate": 0.05, "clipvalue": 0.5, "use_ema": True, "ema_momentum": 0.8, "ema_overwrite_frequency": 7},
    ),
    Case("RMSprop", "RMSprop", {"learning_rate": 0.01}),
    Case("RMSprop centered", "RMSprop", {"learning_rate": 0.01, "centered": True}),
    Case("RMSprop momentum, exponential staircase", "RMSprop", {"momentum": 0.9}, EXPONENTIAL_STAIRS),
    Case(
        "RMSprop centered momentum, weight decay, inverse time",
        "RMSprop",
        {"centered": True, "momentum": 0.5, "weight_decay": 0.05},
        INVERSE,
    ),
    Case(
        "RMSprop clipnorm, EMA",
        "RMSprop",
        {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-3, "clipnorm": 1.0, "use_ema": True},
    ),
    Case("Adam", "Adam", {"learning_rate": 0.01}),
    Case("Adam epsilon hat 1e-2", "Adam", {"learning_rate": 0.01, "epsilon": 1e-2}),
    Case("Adam amsgrad, exponential decay", "Adam", {"amsgrad": True}, EXPONENTIAL),
    Case(
        "Adam weight decay, global_clipnorm, piecewise",
        "Adam",
        {"weight_decay": 0.1, "global_clipnorm": 4.0},
        PIECEWISE,
    ),
    Case(
        "Adam clipvalue, EMA overwrite",
        "Adam",
        {"learning_rate": 0.01, "clipvalue": 0.5, "use_ema": True, "ema_momentum": 0.9, "ema_overwrite_frequency": 10},
    ),
    Case("AdamW", "AdamW", {"learning_rate": 0.01}),
    Case(
        "AdamW amsgrad, clipnorm, inverse time",
        "AdamW",
        {"weight_decay": 0.05, "amsgrad": True, "clipnorm": 1.0},
        INVERSE,
    ),
    Case(
        "AdamW EMA",
        "AdamW",
        {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "use_ema": True, "ema_momentum": 0.95},
    ),
]
CASE_NAMES = [case.name for case in CASES]


def keras_module() -> Any:
    """Keras on the JAX backend; raises ImportError when it is missing or on another backend."""
    import keras

    if keras.backend.backend() != "jax":
        raise ImportError(f"keras runs on the {keras.backend.backend()} backend; these cases need KERAS_BACKEND=jax")
    return keras


def starting_params(dtype: Any) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "bias": rng.normal(size=4).astype(dtype),
        "kernel": rng.normal(size=(3, 4)).astype(dtype),
        "scale": np.asarray(rng.normal(), dtype),
    }


def gradient_stream(params: dict[str, np.ndarray], steps: int, scale: float = 1.0) -> list[list[np.ndarray]]:
    """Normal gradients of standard deviation ``scale``, one list of leaves (in the flattened
    order) per step."""
    rng = np.random.default_rng(2)
    leaves = jax.tree.leaves(params)
    return [[(scale * rng.normal(size=leaf.shape)).astype(leaf.dtype) for leaf in leaves] for _ in range(steps)]


def keras_optimizer(case: Case) -> Any:
    keras = keras_module()
    kwargs = dict(case.kwargs)
    if case.schedule is not None:
        kind, arguments = case.schedule
        kwargs["learning_rate"] = getattr(keras.optimizers.schedules, kind)(**arguments)
    return getattr(keras.optimizers, case.optimizer)(**kwargs)


def our_optimizer(case: Case) -> Any:
    import jaxopt_notes.keras as ours

    kwargs = dict(case.kwargs)
    if case.schedule is not None:
        kind, arguments = case.schedule
        kwargs["learning_rate"] = getattr(ours, kind)(**arguments)
    return getattr(ours, case.optimizer)(**kwargs)


def run_keras(
    optimizer: Any, params: dict[str, np.ndarray], grads: list[list[np.ndarray]], compiled: bool = False
) -> tuple[list, list]:
    """A fresh Keras ``optimizer``'s parameter leaves after every step, and its averaged weights
    (empty without EMA). Uncompiled, every operation rounds as Keras writes it; ``compiled``
    runs ``jax.jit(optimizer.stateless_apply)``, as Keras' own ``model.fit`` compiles its step."""
    keras = keras_module()
    variables = [keras.Variable(leaf, dtype=leaf.dtype.name) for leaf in jax.tree.leaves(params)]
    optimizer.build(variables)
    trainable = [variable.value for variable in variables]
    state = [variable.value for variable in optimizer.variables]
    averages = getattr(optimizer, "_model_variables_moving_average", [])
    average_at = [next(i for i, v in enumerate(optimizer.variables) if v is average) for average in averages]
    apply = jax.jit(optimizer.stateless_apply) if compiled else optimizer.stateless_apply
    params_after, averages_after = [], []
    for step_grads in grads:
        trainable, state = apply(state, [jax.numpy.asarray(g) for g in step_grads], trainable)
        params_after.append([np.asarray(leaf) for leaf in trainable])
        averages_after.append([np.asarray(state[i]) for i in average_at])
    return params_after, averages_after


def run_transformation(
    optimizer: Any, params: dict[str, np.ndarray], grads: list[list[np.ndarray]], jit: bool = True
) -> tuple[list, list]:
    """A gradient transformation's parameter leaves after every step, and ``ema_params`` (empty
    when its state holds no average), stepped with ``jax.jit`` unless ``jit`` is false."""
    import jaxopt_notes as jn
    import jaxopt_notes.keras as ours

    update = jax.jit(optimizer.update) if jit else optimizer.update
    current = jax.tree.map(jax.numpy.asarray, params)
    state = optimizer.init(current)
    try:
        with_average = ours.ema_params(state) is not None
    except ValueError:  # built without use_ema
        with_average = False
    treedef = jax.tree.structure(current)
    params_after, averages_after = [], []
    for step_grads in grads:
        updates, state = update(jax.tree.unflatten(treedef, step_grads), state, current)
        current = jn.apply_updates(current, updates)
        params_after.append([np.asarray(leaf) for leaf in jax.tree.leaves(current)])
        averages_after.append(
            [np.asarray(leaf) for leaf in jax.tree.leaves(ours.ema_params(state))] if with_average else []
        )
    return params_after, averages_after


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest ``|ours - reference| / max(|reference|, 1)``: relative, absolute below 1 (the
    parameters start of order 1, and one that crosses 0 would make a relative measure blow up)."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.max(np.abs(ours - reference) / np.maximum(np.abs(reference), 1.0), initial=0.0))


def ulps(ours: np.ndarray, reference: np.ndarray) -> float:
    """Largest ``|ours - reference|`` in units in the last place of ``max(|reference|, 1)`` in the
    reference's dtype (the same scale as :func:`relative_difference`)."""
    scale = np.maximum(np.abs(reference), 1).astype(reference.dtype)
    difference = np.abs(np.asarray(ours, np.float64) - np.asarray(reference, np.float64))
    return float(np.max(difference / np.spacing(scale).astype(np.float64), initial=0.0))


@dataclasses.dataclass
class Comparison:
    """The largest difference after each step (index ``step - 1``), over the parameters and
    the averaged weights, in the dtype's measure: :func:`relative_difference` in float64,
    :func:`ulps` in float32."""

    by_step: list[float]

    @property
    def worst(self) -> float:
        return max(self.by_step)

    @property
    def worst_per_step(self) -> float:
        """The largest ratio of the difference after step k to k."""
        return max(value / step for step, value in enumerate(self.by_step, start=1))


@functools.cache
def keras_result(name: str, dtype_name: str, compiled: bool, steps: int = STEPS) -> tuple[list, list]:
    """:func:`run_keras` for the case of that name, kept for the next comparison with the same
    arguments (Keras' uncompiled steps are the slow part)."""
    case = next(case for case in CASES if case.name == name)
    params = starting_params(np.dtype(dtype_name))
    return run_keras(keras_optimizer(case), params, gradient_stream(params, steps), compiled)


def compare(
    case: Case, dtype: Any, *, compiled: bool = False, ours_compiled: bool = True, steps: int = STEPS
) -> Comparison:
    """Ours (compiled unless ``ours_compiled`` is false) against Keras (uncompiled unless
    ``compiled``) on the same ``steps`` gradients."""
    params = starting_params(dtype)
    grads = gradient_stream(params, steps)
    measure = relative_difference if np.dtype(dtype) == np.float64 else ulps
    theirs, their_averages = keras_result(case.name, np.dtype(dtype).name, compiled, steps)
    ours, our_averages = run_transformation(our_optimizer(case), params, grads, jit=ours_compiled)
    return Comparison(
        [
            max(measure(a, b) for a, b in zip(ours_leaves + ours_averages, their_leaves + their_averages_now))
            for ours_leaves, ours_averages, their_leaves, their_averages_now in zip(
                ours, our_averages, theirs, their_averages
            )
        ]
    )


def float64_worst() -> dict[str, list[float]]:
    """Every case in float64, in a subprocess with ``jax_enable_x64`` and Keras' floatx float64
    (so x64 stays out of this process): case name -> largest relative difference against
    uncompiled and compiled Keras."""
    script = (
        "import jax; jax.config.update('jax_enable_x64', True)\n"
        "import json, numpy as np\n"
        "from tests import keras_reference as r\n"
        "r.keras_module().config.set_floatx('float64')\n"
        "print(json.dumps({case.name: [r.compare(case, np.float64, compiled=c).worst for c in (False, True)]\n"
        "                  for case in r.CASES}))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=900, cwd=root, env=environment
    )
    if result.returncode != 0:
        raise RuntimeError(f"the float64 run failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    worst64 = float64_worst()
    worst32 = {case.name: [compare(case, np.float32, compiled=c).worst for c in (False, True)] for case in CASES}
    print("Largest difference over 100 steps, ours (compiled) against Keras uncompiled / compiled:\n")
    print("| case | float64, relative | float32, ulps |")
    print("|---|---|---|")
    for case in CASES:
        (a, b), (c, d) = worst64[case.name], worst32[case.name]
        print(f"| {case.name} | {a:.1e} / {b:.1e} | {c:g} / {d:g} |")
    print("\nBy constructor and schedule, the largest over the cases that use it:\n")
    print("| constructor | cases | float64, relative | float32, ulps |")
    print("|---|---|---|---|")
    for name in ("SGD", "RMSprop", "Adam", "AdamW", "ExponentialDecay", "InverseTimeDecay", "PiecewiseConstantDecay"):
        using = [case.name for case in CASES if name in (case.optimizer, case.schedule and case.schedule[0])]
        largest64 = [max(worst64[case][i] for case in using) for i in (0, 1)]
        largest32 = [max(worst32[case][i] for case in using) for i in (0, 1)]
        print(
            f"| {name} | {len(using)} | {largest64[0]:.1e} / {largest64[1]:.1e} | {largest32[0]:g} / {largest32[1]:g} |"
        )


if __name__ == "__main__":
    main()
