"""The options of a :func:`~jaxopt_notes.fit` run, declared once.

Each option is one field of :class:`FitOptions`: its type, its default, the check that turns
what the caller passed into a value the run can trust, whether the compiled step depends on
it, and the text that documents it. Everything else is derived from the fields: fit's
signature (for ``inspect.signature``, IDEs and the docs, :func:`fit_signature`), its typing
(mypy reads the dataclass's ``__init__`` through a ``ParamSpec``, :func:`takes_options`), the
options' part of its docstring (:func:`options_doc`), and the key of the compiled step
(:meth:`FitOptions.compiled`). Adding an option is adding a field.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import textwrap
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, dataclass_transform

import jax
import numpy as np
import optax

from jaxopt_notes import _checks
from jaxopt_notes.training._history import EpochEnd

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")

_REQUIRED: Any = dataclasses.MISSING


def option(
    *,
    default: Any = _REQUIRED,
    doc: str,
    check: Callable[[str, Any], Any] | None = None,
    compiled: bool = False,
    setting: bool = True,
) -> Any:
    """One option of fit: a dataclass field carrying its ``doc`` text, its ``check`` (``check(name,
    value) -> checked value``, raising an error that names ``name``), whether the ``compiled``
    step depends on it (it then keys the compiled-step cache), and whether it is a ``setting``
    (compared and hashed) rather than the run's data (arrays, callback objects)."""
    metadata = {"doc": doc, "check": check, "compiled": compiled}
    return dataclasses.field(default=default, metadata=metadata, compare=setting)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(option,))
def options_class(cls: type[T]) -> type[T]:
    """A frozen, keyword-only dataclass of :func:`option` fields."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)


def _optional_int(minimum: int) -> Callable[[str, Any], int | None]:
    def check(name: str, value: Any) -> int | None:
        return None if value is None else _checks.check_int(name, value, minimum=minimum)

    return check


def _int(minimum: int) -> Callable[[str, Any], int]:
    return lambda name, value: _checks.check_int(name, value, minimum=minimum)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise _checks.ArgumentTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _optional_flag(name: str, value: Any) -> bool | None:
    return None if value is None else _flag(name, value)


def _decay(name: str, value: Any) -> float:
    _checks.check_decay(name, value)
    return float(value)


def _callbacks(name: str, value: Any) -> tuple[Callable[[EpochEnd], None], ...]:
    if callable(value) or not isinstance(value, Sequence) or not all(callable(item) for item in value):
        raise _checks.ArgumentTypeError(
            f"{name} must be a sequence of callables taking an EpochEnd (callbacks=[stop]), got {value!r:.120}"
        )
    return tuple(value)


def _on_nonfinite(name: str, value: Any) -> str:
    if value not in ("raise", "skip"):
        raise ValueError(f"{name} must be 'raise' or 'skip', got {value!r}")
    return str(value)


def _directory(name: str, value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise _checks.ArgumentTypeError(f"{name} must be None or a path (str or os.PathLike), got {value!r}")
    return Path(value)


def _mesh(name: str, value: Any) -> jax.sharding.Mesh | None:
    """A mesh with every axis of type Auto. ``jax.make_mesh`` makes Explicit axes by default, on
    which the sharding constraints of fit's data-parallel step are refused; fit places its
    arrays itself, so the same devices and axis names with Auto axes train identically."""
    if value is None:
        return None
    if not isinstance(value, jax.sharding.Mesh):
        raise _checks.ArgumentTypeError(f"{name} must be None or a jax.sharding.Mesh, got {type(value).__name__}")
    auto = jax.sharding.AxisType.Auto
    if all(axis_type == auto for axis_type in value.axis_types):
        return value
    return jax.sharding.Mesh(value.devices, value.axis_names, axis_types=(auto,) * len(value.axis_names))


def _model_state(name: str, value: Any) -> Any:
    """A model state is a pytree of arrays of any dtype (a step counter may be an integer)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
        if not isinstance(leaf, jax.Array | np.ndarray | np.generic | int | float):
            raise _checks.ArgumentTypeError(
                f"{name} must be a pytree of arrays, got {type(leaf).__name__} {leaf!r:.80} at "
                f"model_state{jax.tree_util.keystr(path)}"
            )
    return value


def _key(name: str, value: Any) -> jax.Array | None:
    if value is None:
        return None
    typed = isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key)
    raw = isinstance(value, jax.Array) and value.dtype == np.uint32 and value.shape == (2,)
    if not (typed or raw):
        raise _checks.ArgumentTypeError(
            f"{name} must be a JAX random key (jax.random.key(0) or jax.random.PRNGKey(0)), got {value!r}"
        )
    return value


def _validation(name: str, value: Any) -> tuple[Any, Any] | None:
    """``(X_val, Y_val)``, or ``(X_val, None)`` for ``X_val`` alone."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name} must be (X_val, Y_val) or X_val, got a sequence of {len(value)}")
        return value[0], value[1]
    return value, None


def checked_metrics(name: str, value: Any) -> dict[str, Callable[..., Any]]:
    """Metrics as a dict of name -> function (empty for None), every name other than ``"cost"``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _checks.ArgumentTypeError(f"{name} must map names to functions, got {value!r:.120}")
    for metric, fn in value.items():
        if not isinstance(metric, str) or metric == "cost" or not callable(fn):
            raise ValueError(
                f"{name} must map names other than 'cost' to functions with the loss's arguments, "
                f"got {metric!r}: {fn!r}"
            )
    return dict(value)


@options_class
class FitOptions:
    """The keyword options of one :func:`~jaxopt_notes.fit` call, each checked when the object
    is made (an error names the first bad option, its value and the form it must take).

    Options compare and hash by their settings; the arrays and objects a run is given
    (``model_state``, ``key``, ``validation``, ``callbacks``, ``metrics``) are its data and take
    no part.
    ``metrics`` is held as a dict (empty for none) and ``validation`` as ``(X_val, Y_val)``
    (``Y_val`` None when only ``X_val`` was given).

    Example:
      >>> FitOptions(epochs=3, batch_size=32).compiled()
      (('on_nonfinite', 'raise'), ('mesh', None))
      >>> FitOptions(epochs=3, batch_size=0)
      Traceback (most recent call last):
      ...
      ValueError: fit: batch_size must be an integer >= 1, got 0
    """

    batch_size: int | None = option(
        default=None,
        check=_optional_int(1),
        doc="examples per minibatch; 64 to 1024 are typical (notes section 1). None (and only None) "
        "with a loader, whose batches set it.",
    )
    epochs: int = option(check=_int(0), doc="total epochs of the run, resumed ones included.")
    seed: int = option(
        default=0,
        check=_int(0),
        doc="the shuffles' seed. Epoch e's order is a uniformly random permutation fixed by ``(seed, e)``: "
        "below 2**20 rows ``np.random.default_rng(SeedSequence([seed, e])).permutation(m)``; from 2**20 rows "
        "an exact bucketed (Rao-Sandelius) draw seeded by ``SeedSequence([seed, e])`` whose first, small "
        "buckets let the epoch start after about a sixtieth of the draw (``docs/performance/fit_large_data.md``). "
        "The first epoch's order (up to 2**24 rows) is kept for a later call with the same m and seed, which "
        "then draws nothing; across processes, process p shuffles its own rows with ``SeedSequence([seed, e, p])``.",
    )
    drop_remainder: bool = option(default=False, check=_flag, doc="skip the last, smaller minibatch of each epoch.")
    beta: float = option(
        default=0.9, check=_decay, doc="decay of ``history.smoothed_cost``; 0.9 averages about the last 10 steps."
    )
    callbacks: Sequence[Callable[[EpochEnd], None]] = option(
        default=(),
        check=_callbacks,
        setting=False,
        doc="called after every epoch with an :class:`~jaxopt_notes.EpochEnd`; setting ``stop`` ends the run, "
        "assigning ``opt_state`` replaces the optimizer state.",
    )
    on_nonfinite: Literal["raise", "skip"] = option(
        default="raise",
        check=_on_nonfinite,
        compiled=True,
        doc="``'raise'`` stops with :class:`~jaxopt_notes.NonFiniteCostError` (holding the last finite "
        "parameters) at the first NaN or infinite cost or gradient; ``'skip'`` leaves parameters and state "
        "unchanged on such steps and counts them in ``history.skipped_steps``.",
    )
    checkpoint_dir: str | os.PathLike | None = option(
        default=None,
        check=_directory,
        doc="save parameters, optimizer state, RNG position and history there every ``checkpoint_every`` "
        "epochs (and after the last), atomically; a later call with the same directory resumes from the "
        "newest good checkpoint, skipping corrupt ones. Across processes only process 0 writes (the "
        "directory must be shared), and every process waits for the write.",
    )
    checkpoint_every: int = option(default=1, check=_int(1), doc="epochs between two checkpoints.")
    mesh: jax.sharding.Mesh | None = option(
        default=None,
        check=_mesh,
        compiled=True,
        doc="shard each minibatch along the mesh's first axis (data parallel); parameters and resident data "
        "are replicated on its devices, a loader's chunks are sent sharded (each device receives its slice "
        "of every minibatch). Explicit mesh axes (``jax.make_mesh``'s default) are used as Auto axes.",
    )
    pack: bool | None = option(
        default=None,
        check=_optional_flag,
        doc="run the step on packed parameters (:func:`~jaxopt_notes.pack`), invisibly to ``loss_fn``. None "
        "packs when :func:`~jaxopt_notes.should_pack` says it pays and packing cannot change the result: the "
        "parameters are :func:`~jaxopt_notes.packable` and the optimizer is an "
        ":class:`~jaxopt_notes.ElementwiseTransformation` or passes :func:`~jaxopt_notes.check_elementwise`. "
        "True raises a ValueError when packing would change the result (a per-leaf optimizer such as LAMB "
        "or adafactor, a sharded leaf).",
    )
    chunk_steps: int | None = option(
        default=None,
        check=_optional_int(1),
        doc="stream the data through the device in chunks of this many minibatches (default for "
        "memory-mapped data: about 64 MiB per chunk; for a loader 64 batches; otherwise all resident). A "
        "batch of another shape runs as a chunk of its own.",
    )
    progress: bool = option(
        default=True,
        check=_flag,
        doc="show a tqdm bar (steps/s, smoothed cost, validation values); it is quiet when stderr is not a terminal.",
    )
    model_state: Any = option(
        default=None,
        check=_model_state,
        setting=False,
        doc="state the loss updates but the optimizer does not (BatchNorm running statistics, say), a pytree "
        "of arrays; carried through the scan, left unchanged by a skipped step, checkpointed and resumed "
        "with the rest. An nnx module passed as ``params`` carries its own (pass None then).",
    )
    key: jax.Array | None = option(
        default=None,
        check=_key,
        setting=False,
        doc="a JAX random key; step t of the run (counting resumed steps) gets ``jax.random.fold_in(key, t)`` "
        "as ``key=``, so a resumed run draws the same keys.",
    )
    validation: Any = option(
        default=None,
        check=_validation,
        setting=False,
        doc="``(X_val, Y_val)`` (or ``X_val``): after every epoch the loss and each metric over it, computed "
        "in compiled batches of at most ``batch_size`` rows and called without ``key=`` (a loss with dropout "
        "should turn it off when it gets no key; an nnx or equinox model is put in evaluation mode), go "
        "into ``history.validation``, the progress bar and the callbacks' ``EpochEnd.validation``.",
    )
    metrics: Mapping[str, Callable[..., Any]] | None = option(
        default=None,
        check=checked_metrics,
        setting=False,
        doc="name -> function with the loss's arguments (no key) returning a scalar mean over the batch, "
        "e.g. accuracy; evaluated on ``validation``.",
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check = field.metadata["check"]
            if check is not None:
                object.__setattr__(self, field.name, check(f"fit: {field.name}", getattr(self, field.name)))
        if self.metrics and self.validation is None:
            raise ValueError("fit: metrics are computed on held-out data: pass validation=(X_val, Y_val) too")

    @classmethod
    def of_call(cls: type[T], options: Mapping[str, Any]) -> T:
        """The options of a call, after naming any unknown or missing one the way fit's caller wrote it."""
        fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for name in options:
            if name not in fields:
                near = difflib.get_close_matches(name, fields, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else f"; its options are {', '.join(fields)}"
                raise TypeError(f"fit: unexpected option {name!r}{hint}")
        for name, field in fields.items():
            if name not in options and field.default is dataclasses.MISSING:
                raise TypeError(f"fit: the option {name}= is required")
        return cls(**options)

    def compiled(self) -> tuple[tuple[str, Hashable], ...]:
        """``(name, value)`` of every option the compiled step depends on: its cache key, and the
        keyword arguments its builder takes."""
        return tuple((f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.metadata["compiled"])


class FitFunction(Protocol, Generic[P, R_co]):
    """fit's type: its data arguments, then every option of :class:`FitOptions` by keyword."""

    def __call__(
        self,
        loss_fn: Callable[..., Any],
        params: Any,
        optimizer: optax.GradientTransformation,
        X: Any,
        Y: Any = None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R_co: ...


def fit_signature(options: type, function: Callable[..., Any]) -> inspect.Signature:
    """``function``'s data arguments followed by every option of ``options``, keyword-only, with
    its type and default: what ``inspect.signature(fit)`` shows."""
    data = list(inspect.signature(function, eval_str=True).parameters.values())[:5]
    hints = typing.get_type_hints(options)  # each field's annotation read in the module that declared it
    keywords = [p.replace(annotation=hints[p.name]) for p in inspect.signature(options).parameters.values()]
    return_annotation = inspect.signature(function, eval_str=True).return_annotation
    return inspect.Signature([*data, *keywords], return_annotation=return_annotation)


def options_doc(options: type, indent: str) -> str:
    """The Google-style entries of every option, from their fields, for fit's docstring."""
    entries = []
    for field in dataclasses.fields(options):
        entry = textwrap.fill(
            f"{field.name}: {field.metadata['doc']}",
            width=96,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
        )
        entries.append(entry)
    return "\n".join(entries)


_OPTIONS_PLACEHOLDER = "{options}"


def takes_options(options: Callable[P, object]) -> Callable[[Callable[..., R]], FitFunction[P, R]]:
    """Gives ``function`` (taking ``**options``) the options of the dataclass ``options``: its
    ``__signature__`` and the options' entries in its docstring (replacing the line
    ``{options}``), and to the type checker the dataclass's ``__init__`` as its keywords."""

    def decorate(function: Callable[..., R]) -> FitFunction[P, R]:
        assert isinstance(options, type)
        function.__signature__ = fit_signature(options, function)  # type: ignore[attr-defined]
        doc = function.__doc__ or ""
        for line in doc.splitlines():
            if line.strip() == _OPTIONS_PLACEHOLDER:
                indent = line[: len(line) - len(line.lstrip())]
                function.__doc__ = doc.replace(line, options_doc(options, indent))
        return function

    return decorate
