"""Checkpoints of a fit run: what one holds, when one is written, and resuming from the newest.

A checkpoint ``epoch_NNNNNN.npz`` holds the (possibly packed) parameters, the optimizer state,
the model state (when the run has one), the RNG position ``[seed, epoch]`` and the
:class:`History`'s state, written atomically by :func:`~jaxopt_notes.save_checkpoint`. The
shuffle of epoch e depends only on ``(seed, e)`` and the key of step t only on ``(key, t)``,
so a resumed run continues bit-identically to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxopt_notes._checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, verify_checkpoint
from jaxopt_notes.training import _processes
from jaxopt_notes.training._history import History
from jaxopt_notes.training._run import Run
from jaxopt_notes.training._state import TrainState

_PATTERN = "epoch_*.npz"


def resume(run: Run, state: TrainState, history: History) -> tuple[TrainState, int]:
    """``(state, epoch to start from)``: ``state`` and 0, or, after loading the newest good
    checkpoint in the ``checkpoint_dir`` option into the state and ``history``, the epoch it
    was written after."""
    if run.options.checkpoint_dir is None:
        return state, 0
    directory, seed = Path(run.options.checkpoint_dir), run.options.seed
    directory.mkdir(parents=True, exist_ok=True)
    path = latest_checkpoint(directory, pattern=_PATTERN)
    if path is None:
        return state, 0
    metadata = verify_checkpoint(path) or {}
    if metadata.get("seed") != seed or metadata.get("examples") != run.examples:
        warnings.warn(
            f"fit: resuming from {path}, written with seed={metadata.get('seed')} and "
            f"{metadata.get('examples')} examples, now seed={seed} and {run.examples} examples: "
            "the run will not match an uninterrupted one",
            RuntimeWarning,
            stacklevel=3,
        )
    validated = tuple(metadata.get("validation", ()))
    like = {
        "params": state.params,
        "opt_state": state.opt_state,
        "rng": np.zeros(2, np.int64),
        "history": History.state_like(int(metadata["steps"]), int(metadata["epoch"]), validated),
    }
    if state.model_state is not None:
        like["model_state"] = state.model_state
    tree, _ = load_checkpoint(path, like)
    history.load_state_dict(tree["history"])
    state = dataclasses.replace(
        state,
        params=tree["params"],
        opt_state=tree["opt_state"],
        model_state=tree.get("model_state"),
        step=jnp.asarray(history.steps, jnp.int32),
    )
    return state, int(tree["rng"][1])


def save_if_due(run: Run, epoch: int, state: TrainState, history: History, *, stop: bool) -> None:
    """Writes a checkpoint after ``epoch`` (1-based) every ``checkpoint_every`` epochs, after
    the last epoch, and when a callback stopped the run; nothing without a checkpoint_dir."""
    options = run.options
    if options.checkpoint_dir is None:
        return
    if epoch % options.checkpoint_every and epoch != options.epochs and not stop:
        return
    tree = {
        "params": state.params,
        "opt_state": state.opt_state,
        "rng": np.array([options.seed, epoch], np.int64),
        "history": history.state_dict(),
    }
    if state.model_state is not None:
        tree["model_state"] = state.model_state
    metadata: dict[str, Any] = {
        "epoch": epoch,
        "steps": history.steps,
        "seed": options.seed,
        "examples": run.examples,
    }
    if history.validation:
        metadata["validation"] = list(history.validation)
    path = Path(options.checkpoint_dir) / f"epoch_{epoch:06d}.npz"
    _processes.write_once(lambda: save_checkpoint(path, tree, metadata=metadata), f"fit checkpoint {path.name}")
