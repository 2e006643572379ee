"""Validation in fit: the held-out cost and metrics (computed in compiled batches) against a
NumPy computation over the whole held-out set; scikit-learn's digits with an accuracy metric;
callbacks (early stopping, learning-rate reduction) reading the validation cost."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import jaxopt_notes as jn
from jaxopt_notes.training._early_stopping import EarlyStopping
from jaxopt_notes.training._epoch_end import show_progress
from jaxopt_notes.training._history import EpochEnd, History
from jaxopt_notes.training._validation import evaluator

_digits = load_digits()
_order = np.random.default_rng(0).permutation(len(_digits.data))
_X, _Y = (_digits.data[_order] / 16.0).astype(np.float32), _digits.target[_order].astype(np.int32)
X_TRAIN, Y_TRAIN, X_VAL, Y_VAL = _X[:1400], _Y[:1400], _X[1400:], _Y[1400:]  # 397 held out: not a multiple of 64
PARAMS = {"W": jnp.zeros((64, 10)), "b": jnp.zeros(10)}


def softmax_loss(params, x, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(x @ params["W"] + params["b"], y))


def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(x @ params["W"] + params["b"], axis=1) == y)


def numpy_cost_and_accuracy(params, x, y):
    """The reference: float64 NumPy over every held-out row at once."""
    logits = x.astype(np.float64) @ np.asarray(params["W"], np.float64) + np.asarray(params["b"], np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean(), (logits.argmax(axis=1) == y).mean()


def test_digits_validation_equals_numpy_over_the_held_out_set():
    seen = []
    params, history = jn.fit(
        softmax_loss, PARAMS, jn.adam(1e-2), X_TRAIN, Y_TRAIN, batch_size=64, epochs=4,
        validation=(X_VAL, Y_VAL), metrics={"accuracy": accuracy}, callbacks=[lambda e: seen.append(e.validation)],
        progress=False,
    )  # fmt: skip
    assert sorted(history.validation) == ["accuracy", "cost"]
    assert len(history.validation["cost"]) == history.epochs == 4
    cost, hits = numpy_cost_and_accuracy(params, X_VAL, Y_VAL)
    np.testing.assert_allclose(history.validation["cost"][-1], cost, rtol=1e-5)
    np.testing.assert_allclose(history.validation["accuracy"][-1], hits, rtol=1e-6)
    assert hits > 0.85 and history.validation["cost"][-1] < history.validation["cost"][0]
    assert [v["cost"] for v in seen] == history.validation["cost"].tolist()


@pytest.mark.parametrize("batch_size", [1, 64, 397, 1000])
def test_evaluator_batches_weigh_every_row_once(batch_size):
    params = {"W": jnp.asarray(np.random.default_rng(3).normal(size=(64, 10)), jnp.float32), "b": jnp.zeros(10)}
    evaluate = evaluator(softmax_loss, X_VAL, Y_VAL, metrics={"accuracy": accuracy}, batch_size=batch_size)
    cost, hits = numpy_cost_and_accuracy(params, X_VAL, Y_VAL)
    values = evaluate(params)
    np.testing.assert_allclose(values["cost"], cost, rtol=1e-5)
    np.testing.assert_allclose(values["accuracy"], hits, rtol=1e-6)


def test_evaluator_with_model_state_drops_the_new_state():
    def scaled_loss(params, state, x):
        return jnp.mean(state * x @ params), state + 1.0

    evaluate = evaluator(scaled_loss, np.ones((5, 2), np.float32), batch_size=2, with_model_state=True)
    assert evaluate(jnp.ones(2), jnp.float32(3.0)) == {"cost": 6.0}


def test_validation_is_checkpointed_and_resumed(tmp_path):
    kwargs = dict(batch_size=64, validation=(X_VAL, Y_VAL), metrics={"accuracy": accuracy}, progress=False)
    _, whole = jn.fit(softmax_loss, PARAMS, jn.adam(1e-2), X_TRAIN, Y_TRAIN, epochs=3, **kwargs)
    jn.fit(softmax_loss, PARAMS, jn.adam(1e-2), X_TRAIN, Y_TRAIN, epochs=2, checkpoint_dir=tmp_path, **kwargs)
    _, resumed = jn.fit(softmax_loss, PARAMS, jn.adam(1e-2), X_TRAIN, Y_TRAIN, epochs=3, checkpoint_dir=tmp_path,
                        **kwargs)  # fmt: skip
    for name in ("cost", "accuracy"):
        np.testing.assert_array_equal(resumed.validation[name], whole.validation[name])


def _event(epoch, cost, params=None):
    return EpochEnd(epoch, epoch, np.zeros(1), np.zeros(1), np.zeros(1), None, params, None, validation={"cost": cost})


def test_early_stopping_keeps_the_best_epoch():
    stop = EarlyStopping(patience=2, min_delta=0.01)
    events = [_event(e, c, params=e) for e, c in enumerate([1.0, 0.8, 0.795, 0.9, 0.7], start=1)]
    for event in events[:4]:
        stop(event)
    # 0.795 is not 0.01 better than 0.8: epochs 3 and 4 do not improve, so it stops after epoch 4.
    assert [e.stop for e in events[:4]] == [False, False, False, True]
    assert (stop.best, stop.best_epoch, stop.best_params, stop.stopped_epoch) == (0.8, 2, 2, 4)
    with pytest.raises(ValueError, match="monitor 'accuracy' is not among"):
        EarlyStopping(monitor="accuracy")(_event(1, 1.0))


def test_early_stopping_on_overfitting_digits_stops_at_the_validation_minimum():
    """Few training rows, a large step: the validation cost turns up, fit stops patience epochs
    after its minimum, and the kept parameters are that epoch's."""
    stop = EarlyStopping(patience=3)
    few_x, few_y = X_TRAIN[:60], Y_TRAIN[:60]
    _, history = jn.fit(softmax_loss, PARAMS, jn.adam(0.3), few_x, few_y, batch_size=20, epochs=200,
                        validation=(X_VAL, Y_VAL), callbacks=[stop], progress=False)  # fmt: skip
    costs = history.validation["cost"]
    assert history.epochs < 200 and stop.stopped_epoch == history.epochs
    assert stop.best_epoch == int(np.argmin(costs)) + 1 == history.epochs - 3
    np.testing.assert_allclose(numpy_cost_and_accuracy(stop.best_params, X_VAL, Y_VAL)[0], costs.min(), rtol=1e-5)


def test_reduce_lr_on_plateau_can_watch_the_validation_cost():
    reduce = jn.ReduceLROnPlateau(factor=0.5, patience=1, monitor="cost")
    opt = jn.inject_hyperparams(jn.sgd)(learning_rate=0.1)
    events = [_event(1, 1.0), _event(2, 1.0)]
    for event in events:
        event.cost = np.array([5.0, 4.0]) / event.epoch  # the training cost improves all along
        event.opt_state = opt.init(PARAMS)
        reduce(event)
    assert reduce.smoothed == [1.0, 1.0] and reduce.reductions == [(2, pytest.approx(0.05))]


def test_bad_validation_arguments_name_themselves():
    common = dict(batch_size=64, epochs=1, progress=False)
    with pytest.raises(ValueError, match="fit: validation must hold the same number"):
        jn.fit(softmax_loss, PARAMS, jn.sgd(0.1), X_TRAIN, Y_TRAIN, validation=(X_VAL, Y_VAL[:3]), **common)
    with pytest.raises(ValueError, match=r"fit: metrics are computed on held-out data"):
        jn.fit(softmax_loss, PARAMS, jn.sgd(0.1), X_TRAIN, Y_TRAIN, metrics={"accuracy": accuracy}, **common)
    with pytest.raises(ValueError, match="metrics must map names other than 'cost'"):
        jn.fit(softmax_loss, PARAMS, jn.sgd(0.1), X_TRAIN, Y_TRAIN, validation=(X_VAL, Y_VAL),
               metrics={"cost": accuracy}, **common)  # fmt: skip
    with pytest.raises(ValueError, match="must return a scalar"):
        evaluator(softmax_loss, X_VAL, Y_VAL, metrics={"rows": lambda p, x, y: x[:, 0]})(PARAMS)


def test_progress_bar_shows_the_latest_validation_values():
    class Bar:
        def update(self, steps):
            self.steps = steps

        def set_postfix(self, **values):
            self.values = values

    history = History()
    history.record_epoch([2.0, 1.0], [1.0, 1.0], [0.1, 0.1], [False, False], 0.5)
    history.record_validation({"cost": 0.75, "accuracy": 0.5})
    bar = Bar()
    show_progress(bar, 3, 0, 2, history)
    assert bar.steps == 2
    assert bar.values == {"epoch": "1/3", "cost": f"{history.smoothed_cost[-1]:.4g}", "val_cost": "0.75",
                          "val_accuracy": "0.5"}  # fmt: skip
