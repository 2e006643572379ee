"""fit's options declared once (FitOptions): the signature, docs, checks and compiled-step key
all come from the one declaration, and a new field reaches each of them; the loss's output is
checked before anything is compiled; equal optimizers share the compiled epoch; FitResult."""

import dataclasses
import inspect

import jax
import jax.monitoring
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxopt_notes as jn
from jaxopt_notes.training import _compiled
from jaxopt_notes.training._options import FitOptions, fit_signature, option, options_doc, takes_options

M, D, BATCH = 90, 3, 16
_rng = np.random.default_rng(5)
X = _rng.standard_normal((M, D)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], np.float32)).astype(np.float32)
PARAMS = {"w": jnp.zeros(D), "b": jnp.zeros(())}


def loss(params, x, y):
    return jnp.mean((x @ params["w"] + params["b"] - y) ** 2)


def _fit(**options):
    return jn.fit(loss, PARAMS, jn.sgd(0.1), X, Y, **{"batch_size": BATCH, "epochs": 1, "progress": False, **options})


# ---------------------------------------------------------------------------------------------
# One declaration


def test_fit_shows_every_option_with_its_type_and_default():
    declared = inspect.signature(FitOptions, eval_str=True).parameters  # FitOptions and its types share a module
    shown = inspect.signature(jn.fit).parameters
    assert list(shown)[:5] == ["loss_fn", "params", "optimizer", "X", "Y"]
    assert list(shown)[5:] == [field.name for field in dataclasses.fields(FitOptions)]
    for name, parameter in declared.items():
        assert shown[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert shown[name].default == parameter.default and shown[name].annotation == parameter.annotation, name
    assert shown["epochs"].default is inspect.Parameter.empty
    assert inspect.signature(jn.fit).return_annotation is jn.FitResult


def test_fit_documents_every_option():
    doc = jn.fit.__doc__
    for field in dataclasses.fields(FitOptions):
        assert f"\n      {field.name}: " in doc, field.name
    assert "{options}" not in doc


def _strictly_odd(name, value):
    if not isinstance(value, int) or value % 2 == 0:
        raise ValueError(f"{name} must be an odd integer, got {value!r}")
    return value


DUMMY = dataclasses.make_dataclass(
    "DummyOptions",
    [("dummy", int, option(default=1, check=_strictly_odd, compiled=True, doc="an option added in one place."))],
    bases=(FitOptions,),
    frozen=True,
    kw_only=True,
)


def test_one_new_field_reaches_the_check_the_signature_the_docs_and_the_compiled_key(monkeypatch):
    with pytest.raises(ValueError, match="fit: dummy must be an odd integer, got 2"):
        DUMMY(epochs=1, dummy=2)
    assert DUMMY(epochs=1, dummy=3).compiled() == (("on_nonfinite", "raise"), ("mesh", None), ("dummy", 3))
    assert DUMMY(epochs=1, dummy=3).compiled() != DUMMY(epochs=1, dummy=5).compiled()

    def function(loss_fn, params, optimizer, X, Y=None, **options):
        """Args:
        {options}
        """

    decorated = takes_options(DUMMY)(function)
    parameter = inspect.signature(decorated).parameters["dummy"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default == 1
    assert "dummy: an option added in one place." in decorated.__doc__
    assert "dummy: an option added in one place." in options_doc(DUMMY, "")
    assert "dummy" in fit_signature(DUMMY, jn.fit).parameters
    built = []
    monkeypatch.setattr(_compiled, "_make_epoch", lambda loss_fn, optimizer, **options: built.append(options))
    _compiled.compiled_epoch(loss, jn.sgd(0.1), DUMMY(epochs=1, dummy=7).compiled())
    assert built == [{"on_nonfinite": "raise", "mesh": None, "dummy": 7}]  # the builder's input


def test_options_compare_by_their_settings_only():
    assert FitOptions(epochs=2, batch_size=8) == FitOptions(epochs=2, batch_size=8, model_state={"n": jnp.ones(2)})
    assert hash(FitOptions(epochs=2, batch_size=8)) == hash(FitOptions(epochs=2, batch_size=8, key=jax.random.key(1)))
    assert FitOptions(epochs=2, batch_size=8) != FitOptions(epochs=3, batch_size=8)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"epoch": 2}, TypeError, "unexpected option 'epoch'; did you mean 'epochs'"),
        ({"callbacks": print}, TypeError, r"callbacks must be a sequence of callables .*callbacks=\[stop\]"),
        ({"drop_remainder": 1}, TypeError, "drop_remainder must be True or False, got 1"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"key": 0}, TypeError, r"key must be a JAX random key .*got 0"),
        ({"checkpoint_dir": 3}, TypeError, "checkpoint_dir must be None or a path"),
        ({"metrics": {"mae": jnp.mean}}, ValueError, "metrics are computed on held-out data"),
        ({"validation": (X, Y, Y)}, ValueError, "validation must be .* got a sequence of 3"),
        ({"mesh": "data"}, TypeError, "mesh must be None or a jax.sharding.Mesh, got str"),
    ],
)
def test_a_bad_option_is_named_with_its_value(options, error, match):
    with pytest.raises(error, match=match):
        _fit(**options)


def test_epochs_is_required_by_name():
    with pytest.raises(TypeError, match="fit: the option epochs= is required"):
        jn.fit(loss, PARAMS, jn.sgd(0.1), X, Y, batch_size=BATCH)


# ---------------------------------------------------------------------------------------------
# The loss's output


@pytest.mark.parametrize(
    ("loss_fn", "match"),
    [
        (jax.value_and_grad(loss), r"it returned \(float32\[\], \{'b': float32\[\], 'w': float32\[3\]\}\)\. "
         r"A loss wrapped in jax.value_and_grad returns \(cost, grads\)"),
        (lambda p, x, y: (x @ p["w"] - y) ** 2, r"it returned float32\[16\]\."),
        (lambda p, x, y: jnp.sum(x > p["w"]).astype(jnp.int32), r"it returned int32\[\]\."),
    ],
)  # fmt: skip
def test_a_loss_that_does_not_return_a_scalar_cost_is_named_before_compiling(loss_fn, match):
    with pytest.raises(TypeError, match=r"fit: loss_fn must return the cost as a real floating-point scalar.*" + match):
        jn.fit(loss_fn, PARAMS, jn.sgd(0.1), X, Y, batch_size=BATCH, epochs=1, progress=False)


def test_a_loss_with_a_model_state_must_return_the_new_state_of_the_same_structure():
    state = {"seen": jnp.zeros(())}
    with pytest.raises(TypeError, match=r"with model_state, loss_fn must return \(cost, new_model_state\); it "
                       r"returned float32\[\]"):  # fmt: skip
        jn.fit(lambda p, s, x, y: loss(p, x, y), PARAMS, jn.sgd(0.1), X, Y, batch_size=BATCH, epochs=1,
               model_state=state, progress=False)  # fmt: skip
    with pytest.raises(TypeError, match="new model state must have the structure of model_state"):
        jn.fit(lambda p, s, x, y: (loss(p, x, y), {"other": s["seen"]}), PARAMS, jn.sgd(0.1), X, Y,
               batch_size=BATCH, epochs=1, model_state=state, progress=False)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Equal optimizers reuse the compiled epoch

BACKEND_COMPILES: list[str] = []


def _count_backend_compiles(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        BACKEND_COMPILES.append(event)


jax.monitoring.register_event_duration_secs_listener(_count_backend_compiles)


def compiles(call):
    """How many XLA compilations ``call()`` triggers, as JAX itself reports them."""
    before = len(BACKEND_COMPILES)
    call()
    return len(BACKEND_COMPILES) - before


def test_an_optimizer_built_in_each_call_compiles_once():
    def run(optimizer):
        return lambda: jn.fit(loss, PARAMS, optimizer(), X, Y, batch_size=BATCH, epochs=1, progress=False)

    assert compiles(run(lambda: optax.adam(1e-2))) >= 1  # the counter sees the epoch compile ...
    assert compiles(run(lambda: optax.adam(1e-2))) >= 1  # ... and a foreign optimizer compiles per object
    assert compiles(run(lambda: jn.adam(1e-2))) >= 1
    assert compiles(run(lambda: jn.adam(1e-2))) == 0
    assert compiles(run(lambda: jn.adam(learning_rate=1e-2, b1=0.9))) == 0
    assert compiles(run(lambda: jn.adam(2e-2))) >= 1  # another rate is another step
    injected = lambda: jn.inject_hyperparams(jn.adam)(learning_rate=jn.exponential_decay(1e-2, 0.5))  # noqa: E731
    assert compiles(run(injected)) >= 1
    assert compiles(run(injected)) == 0


# ---------------------------------------------------------------------------------------------
# FitResult


def test_the_result_unpacks_and_indexes_as_the_former_tuples():
    result = _fit()
    params, history = result
    assert params is result.params and history is result.history and result.model_state is None
    assert len(result) == 2 and result[0] is params and result[-1] is history

    def stateful(p, s, x, y):
        return loss(p, x, y), {"steps": s["steps"] + 1}

    result = jn.fit(stateful, PARAMS, jn.sgd(0.1), X, Y, batch_size=BATCH, epochs=2, progress=False,
                    model_state={"steps": jnp.zeros((), jnp.int32)})  # fmt: skip
    params, model_state, history = result
    assert int(model_state["steps"]) == 2 * 6 == history.steps
    assert len(result) == 3 and result[1] is model_state
