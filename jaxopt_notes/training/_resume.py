"""Checkpoints of a fit run: what one holds, when one is written, and resuming from the newest.

A checkpoint ``epoch_NNNNNN.npz`` holds the (possibly packed) parameters, the optimizer state,
the model state (when the run has one), the RNG position ``[seed, epoch]`` and the
:class:`History`'s state, written atomically by :func:`~jaxopt_notes.save_checkpoint`. The
shuffle of epoch e depends only on ``(seed, e)`` and the key of step t only on ``(key, t)``,
so a resumed run continues bit-identically to an uninterrupted one.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxopt_notes._checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, verify_checkpoint
from jaxopt_notes.training import _processes
from jaxopt_notes.training._config import FitConfig
from jaxopt_notes.training._history import History
from jaxopt_notes.training._state import TrainState

_PATTERN = "epoch_*.npz"


def resume(config: FitConfig, state: TrainState, history: History) -> int:
    """The epoch to start from: 0, or after loading the newest good checkpoint in
    ``config.checkpoint_dir`` into ``state`` and ``history`` the epoch it was written after."""
    if config.checkpoint_dir is None:
        return 0
    config.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = latest_checkpoint(config.checkpoint_dir, pattern=_PATTERN)
    if path is None:
        return 0
    metadata = verify_checkpoint(path) or {}
    if metadata.get("seed") != config.seed or metadata.get("examples") != config.examples:
        warnings.warn(
            f"fit: resuming from {path}, written with seed={metadata.get('seed')} and "
            f"{metadata.get('examples')} examples, now seed={config.seed} and {config.examples} examples: "
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
    state.params, state.opt_state = tree["params"], tree["opt_state"]
    if state.model_state is not None:
        state.model_state = tree["model_state"]
    state.step = jnp.asarray(history.steps, jnp.int32)
    return int(tree["rng"][1])


def save_if_due(config: FitConfig, epoch: int, state: TrainState, history: History, *, stop: bool) -> None:
    """Writes a checkpoint after ``epoch`` (1-based) every ``checkpoint_every`` epochs, after
    the last epoch, and when a callback stopped the run; nothing without a checkpoint_dir."""
    if config.checkpoint_dir is None:
        return
    if epoch % config.checkpoint_every and epoch != config.epochs and not stop:
        return
    tree = {
        "params": state.params,
        "opt_state": state.opt_state,
        "rng": np.array([config.seed, epoch], np.int64),
        "history": history.state_dict(),
    }
    if state.model_state is not None:
        tree["model_state"] = state.model_state
    metadata: dict[str, Any] = {
        "epoch": epoch,
        "steps": history.steps,
        "seed": config.seed,
        "examples": config.examples,
    }
    if history.validation:
        metadata["validation"] = list(history.validation)
    path = config.checkpoint_dir / f"epoch_{epoch:06d}.npz"
    _processes.write_once(lambda: save_checkpoint(path, tree, metadata=metadata), f"fit checkpoint {path.name}")
