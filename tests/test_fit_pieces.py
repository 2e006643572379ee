"""The named pieces fit is made of, each against an independent reference."""

import jax
import jax.numpy as jnp
import numpy as np

import jaxopt_notes as jn
from jaxopt_notes.training._placement import placement


def test_history_gives_the_layout_of_its_own_checkpoint():
    history = jn.History(beta=0.9)
    history.record_epoch(np.ones(7), np.ones(7), np.ones(7), np.zeros(7, bool), 1.0)
    history.record_epoch(np.ones(5), np.ones(5), np.ones(5), np.eye(5, dtype=bool)[0], 1.0)
    saved, like = history.state_dict(), jn.History.state_like(steps=12, epochs=2)
    assert sorted(saved) == sorted(like)
    for name in saved:
        assert np.shape(saved[name]) == like[name].shape, name
        assert np.asarray(saved[name]).dtype == like[name].dtype, name


def test_history_round_trips_through_a_checkpoint(tmp_path):
    history = jn.History(beta=0.8)
    history.record_epoch(np.arange(6.0), np.ones(6), np.ones(6), np.zeros(6, bool), 2.0)
    jn.save_checkpoint(tmp_path / "h.npz", history.state_dict())
    loaded, _ = jn.load_checkpoint(tmp_path / "h.npz", jn.History.state_like(6, 1))
    restored = jn.History(beta=0.8)
    restored.load_state_dict(loaded)
    history.record_epoch(np.full(3, 9.0), np.ones(3), np.ones(3), np.zeros(3, bool), 1.0)
    restored.record_epoch(np.full(3, 9.0), np.ones(3), np.ones(3), np.zeros(3, bool), 1.0)
    np.testing.assert_array_equal(restored.smoothed_cost, history.smoothed_cost)
    np.testing.assert_allclose(restored.smoothed_cost, jn.smooth(np.r_[np.arange(6.0), [9.0] * 3], 0.8), rtol=1e-14)


def test_placed_state_is_a_copy_the_run_may_donate():
    params = {"w": jnp.arange(3.0)}
    placed = placement(None).put_state(params)
    assert placed["w"] is not params["w"]
    assert placed["w"].unsafe_buffer_pointer() != params["w"].unsafe_buffer_pointer()
    np.testing.assert_array_equal(placed["w"], params["w"])


def test_a_mesh_places_state_replicated_and_batches_along_its_first_axis():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    place = placement(mesh)
    assert place.replicated == jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    assert place.batch == jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    assert place.put_state({"w": jnp.ones(2)})["w"].sharding == place.replicated
