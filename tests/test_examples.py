"""Every example script runs end to end with ``--quick`` (a reduced size) in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


def test_examples_exist():
    promised = {
        "chain_with_optax.py",
        "counting_minima.py",
        "fit_batchnorm_dropout.py",
        "logistic_regression.py",
        "manual_decay.py",
        "mlp_digits.py",
        "multi_process.py",
        "notes_formulas.py",
        "packed_model.py",
        "port_from_keras.py",
        "port_from_pytorch.py",
        "saddle_escape.py",
    }
    assert promised <= {path.name for path in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs_quick(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), f"{script.name} printed nothing"
