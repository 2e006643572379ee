"""The ``jaxopt-notes`` command line: real runs on reduced sizes (in a subprocess where the
entry point itself is under test), argument errors as one line with a non-zero status."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from jaxopt_notes.cli import _commands as cli
from jaxopt_notes.cli import _compare, _plots
from jaxopt_notes.notes import _running_example
from jaxopt_notes.training._history import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path, min_bytes: int = 5_000):
    assert path.is_file(), f"{path} missing"
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert path.stat().st_size > min_bytes, f"{path} is suspiciously small"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05, f"{path} is blank"


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "jaxopt_notes", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


def table_lines(stdout: str) -> tuple[str, list[str]]:
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    rows = []
    for line in lines[header + 2 :]:
        if not line.strip() or line.startswith("wrote"):
            break
        rows.append(line)
    return lines[header], rows


def test_compare_default_optimizers_in_a_subprocess(tmp_path):
    result = run_cli("compare", "--m", "6000", "--epochs", "2", "--batch-size", "200", "--out", "results", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, rows = table_lines(result.stdout)
    for column in _compare.COLUMNS:
        assert column in header
    labels = [_running_example.CONTENDERS[name].label for name in cli.OPTIMIZER_NAMES]
    assert [row[: len(label)] for row, label in zip(rows, labels, strict=True)] == labels
    assert "Traceback" not in result.stderr
    assert_valid_png(tmp_path / "results" / "compare.png", min_bytes=20_000)
    csv = (tmp_path / "results" / "compare.csv").read_text().splitlines()
    assert csv[0].split(",") == list(_compare.COLUMNS) and len(csv) == 7
    batch_gd = csv[1].split(",")
    assert batch_gd[2] == "6000" and batch_gd[6] in ("not reached", "0", "1", "2")


def test_figures_writes_every_promised_png_and_an_index(tmp_path, capsys):
    gallery = tmp_path / "gallery"
    assert cli.main(["figures", "--quick", "--out", str(gallery)]) == 0
    assert capsys.readouterr().out.split() == [str(gallery / e.name) for e in _plots.GALLERY] + [
        str(gallery / "index.md")
    ]
    index = (gallery / "index.md").read_text()
    assert len(_plots.GALLERY) >= 7
    for entry in _plots.GALLERY:
        assert_valid_png(gallery / entry.name)
        assert f"]({entry.name})" in index and entry.caption in index
    assert sorted(p.name for p in gallery.glob("*.png")) == sorted(e.name for e in _plots.GALLERY)


def test_saddle_prints_the_race_and_writes_its_figure(tmp_path, capsys):
    assert cli.main(["saddle", "--out", str(tmp_path / "race")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    assert lines[header].split() == ["optimizer", "saddle", "plateau"]
    rows = {line.rsplit(None, 2)[0]: line.rsplit(None, 2)[1:] for line in lines[header + 2 : header + 7]}
    assert list(rows) == ["gradient descent", "momentum", "momentum, undampened", "RMSprop", "Adam"]
    steps = {name: [int(cell.replace(",", "")) for cell in cells] for name, cells in rows.items()}
    assert steps["Adam"][1] < steps["gradient descent"][1] / 10  # off the plateau far sooner
    assert_valid_png(tmp_path / "race" / "escape_race.png", min_bytes=20_000)


def test_compare_reads_npz_and_npy_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X @ np.array([2.0, -1.0, 0.5]) > 0).astype(np.int64)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    np.save(tmp_path / "data.npy", np.column_stack([X, y]))
    for name, optimizer, label in (("data.npz", "adam", "Adam"), ("data.npy", "gd", "batch GD")):
        status = cli.main(
            ["compare", "--dataset", str(tmp_path / name), "--optimizers", optimizer, "--epochs", "3",
             "--lr", "adam=0.05", "--out", str(tmp_path / name[-3:]), "--no-progress"]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert status == 0
        header, rows = table_lines(out)
        assert len(rows) == 1 and rows[0].startswith(label) and "m = 400, d = 3, 2 classes" in out
        accuracy = float(rows[0].split("%")[0].split()[-1])
        assert accuracy > 90, out  # separable data: a working fit classifies nearly all
        assert_valid_png(tmp_path / name[-3:] / "compare.png")


def test_compare_digits_trains_a_softmax_regression(tmp_path, capsys):
    pytest.importorskip("sklearn")
    status = cli.main(
        ["compare", "--dataset", "digits", "--optimizers", "momentum", "--epochs", "3", "--out", str(tmp_path),
         "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert status == 0
    assert "10 classes" in out
    assert float(table_lines(out)[1][0].split("%")[0].split()[-1]) > 90


def test_steps_to_target_reads_the_smoothed_curve():
    history = History()
    history.record_epoch([1.0, 0.5, 0.2, 0.1], [1.0] * 4, [0.1] * 4, [False] * 4, 1.0)
    result = _running_example.Result("sgd", "minibatch SGD", 0.1, 10, 4, history, 0.1, 1.0, 1.0)
    expected = np.flatnonzero(history.smoothed_cost <= 0.45)[0]
    assert result.steps_to(0.45) == expected == 3 and history.cost[expected] < 0.45
    assert result.steps_to(0.01) is None
    assert result.steps_to(0.1) == 4  # only the final cost, after all 4 updates, reaches it
    rows = _compare.table_rows([result], 0.01)
    assert rows[0][5:7] == ("not reached", "not reached")


def test_generated_data_follow_the_logistic_model():
    problem = _running_example.generate_logistic(200_000, 20, seed=3)
    assert problem.X.dtype == np.float32 and problem.X.shape == (200_000, 20)
    np.testing.assert_allclose(problem.X.mean(axis=0), 0, atol=0.01)
    np.testing.assert_allclose(problem.X.std(axis=0), 1, atol=0.01)
    assert set(np.unique(problem.Y)) == {0.0, 1.0}
    again = _running_example.generate_logistic(200_000, 20, seed=3)
    np.testing.assert_array_equal(problem.X, again.X)
    # The documented model, P(y = 1 | x) = sigmoid(w.x + 0.3) with |w| = 2, recovered by
    # Newton's method on the logistic likelihood.
    A = np.column_stack([problem.X, np.ones(len(problem.X))]).astype(np.float64)
    theta = np.zeros(21)
    for _ in range(8):
        p = 1 / (1 + np.exp(-A @ theta))
        theta -= np.linalg.solve(A.T @ (A * (p * (1 - p))[:, None]), A.T @ (p - problem.Y))
    assert np.linalg.norm(theta[:20]) == pytest.approx(2.0, abs=0.05)
    assert theta[20] == pytest.approx(0.3, abs=0.03)


def test_evaluate_matches_the_jax_loss():
    problem = _running_example.generate_logistic(1000, 4, seed=1)
    loss, params = _running_example.model_for(problem)
    params = {"w": np.arange(1.0, 5.0, dtype=np.float32) / 4, "b": np.float32(0.2)}
    cost, accuracy = _running_example.evaluate(params, problem)
    assert cost == pytest.approx(float(loss(params, problem.X, problem.Y)), rel=1e-5)
    z = problem.X @ params["w"] + params["b"]
    assert accuracy == pytest.approx(np.mean((z > 0) == (problem.Y == 1)))


BAD_ARGUMENTS = [
    ["bogus"],
    ["compare", "--optimizers", "adam,nadam"],
    ["compare", "--optimizers", "adam,adam"],
    ["compare", "--epochs", "0"],
    ["compare", "--epochs", "two"],
    ["compare", "--batch-size", "-5"],
    ["compare", "--m", "1.5"],
    ["compare", "--lr", "0"],
    ["compare", "--lr", "adam=nan"],
    ["compare", "--lr", "nadam=0.1"],
    ["compare", "--dataset", "data.csv"],
    ["compare", "--dataset", "missing.npz"],
    ["compare", "--seed", "-1"],
    ["compare", "--target", "inf"],
    ["compare", "--unknown-flag"],
    ["figures", "--out", "a_file.txt"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=" ".join)
def test_bad_arguments_give_one_line_and_status_2(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file.txt").write_text("not a directory")
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("jaxopt-notes: error: ")


def test_bad_data_fail_with_one_line_and_status_1(tmp_path, capsys):
    np.savez(tmp_path / "no_labels.npz", X=np.zeros((10, 2)))
    np.save(tmp_path / "one_class.npy", np.zeros((10, 3)))
    (tmp_path / "garbage.npy").write_bytes(b"not numpy")
    for name, message in [("no_labels.npz", "missing ['y']"), ("one_class.npy", "two classes"), ("garbage.npy", "")]:
        assert cli.main(["compare", "--dataset", str(tmp_path / name), "--out", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert err.splitlines()[-1].startswith("jaxopt-notes: error: ") and message in err.splitlines()[-1]


def test_a_diverging_run_ends_with_one_line(tmp_path, capsys, monkeypatch):
    def diverge(*args, **kwargs):
        raise FloatingPointError("fit: non-finite cost or gradient at epoch 1, step 3")

    monkeypatch.setattr(_running_example, "fit", diverge)
    assert cli.main(["compare", "--m", "100", "--batch-size", "10", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].endswith("non-finite cost or gradient at epoch 1, step 3")


def test_m_and_batch_size_are_checked_against_the_data(tmp_path, capsys):
    assert cli.main(["compare", "--m", "100", "--batch-size", "500", "--out", str(tmp_path)]) == 1
    assert "--batch-size 500 exceeds the 100 examples" in capsys.readouterr().err
    np.save(tmp_path / "d.npy", np.column_stack([np.zeros((10, 2)), np.arange(10) % 2]))
    assert cli.main(["compare", "--dataset", str(tmp_path / "d.npy"), "--m", "10", "--out", str(tmp_path)]) == 1
    assert "--m sets the size of the generated data only" in capsys.readouterr().err


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "compare" in capsys.readouterr().err


def test_console_script_points_at_main():
    from importlib.metadata import entry_points

    scripts = {entry.name: entry.value for entry in entry_points(group="console_scripts")}
    assert scripts.get("jaxopt-notes") == "jaxopt_notes.cli:main"
