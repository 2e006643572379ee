"""``benchmarks/suite.py --quick`` runs from a checkout and writes its one Markdown table.

No timing is asserted (the machine is shared); the table must hold every promised row with
numbers that parse, and a speed-up that is reference / ours.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
COLUMNS = ["benchmark", "case", "ours (ms)", "reference", "reference (ms)", "speed-up", "goal"]
PROMISED = {
    ("optimizer step", "copy bandwidth"),
    ("optimizer step", "optax"),
    ("optimizer step", "ours, one leaf"),
    ("optimizer step", "optax, tree"),
    ("full train step", "optax, tree"),
    ("full train step", "optax, one leaf"),
    ("fit epoch", "user optax loop"),
    ("minibatch epoch", "user X[perm[i:i+B]] loop"),
}


def parse_table(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    assert set(lines[1].replace("|", "")) == {"-"}
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def test_suite_quick_writes_the_table(tmp_path):
    out = tmp_path / "suite.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--quick", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = parse_table(out.read_text())
    assert {(r["benchmark"], r["reference"]) for r in rows} >= PROMISED
    assert [r["case"] for r in rows if r["benchmark"] == "fit epoch"] == [
        "200,000 rows, batch 1000, Adam",
        "200,000 rows, batch 1000, Adam, from a generator",
        "20,000 rows, batch 64, Adam",
        "20,000 rows, batch 64, Adam, from a generator",
    ]
    for r in rows:
        ours, reference, speed_up = float(r["ours (ms)"]), float(r["reference (ms)"]), float(r["speed-up"])
        assert ours > 0 and reference > 0
        assert math.isclose(speed_up, reference / ours, rel_tol=2e-3)
    assert out.read_text() in result.stdout
