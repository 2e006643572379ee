"""The counting argument of notes section 8, made concrete.

At a point of zero gradient the Hessian decides: a local minimum needs every eigenvalue
positive. The notes' rough model lets each of n directions curve up with probability 1/2
independently, so a minimum has probability 2^-n. This script samples random symmetric
matrices from the Gaussian orthogonal ensemble (GOE, a standard model of the Hessian at a
random critical point) for growing n and counts the fraction that are positive definite.

The fraction falls at least exponentially: in fact faster than 2^-n, because the
eigenvalues of a random matrix repel one another and rarely all sit on one side of zero
(for large n it behaves like exp(-(ln 3 / 4) n^2), Dean and Majumdar 2006). With 20,000
parameters a minimum is, for practical purposes, never the point you are stuck at.

    python examples/counting_minima.py           # n = 1..6, a million matrices each
    python examples/counting_minima.py --quick   # n = 1..4, 20,000 matrices each

Writes counting_minima.png (log fraction against n) into --out.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxopt_notes.notes import decay_rate_per_dimension, positive_definite_fraction  # noqa: E402


def table(dims: list[int], fractions: np.ndarray, num_samples: int) -> None:
    print(f"{'n':>3} {'GOE fraction':>14} {'std error':>10} {'2^-n (notes)':>13} {'ratio to n-1':>13}")
    for index, (n, fraction) in enumerate(zip(dims, fractions)):
        error = math.sqrt(max(fraction * (1 - fraction), 1 / num_samples) / num_samples)
        ratio = fractions[index] / fractions[index - 1] if index and fractions[index - 1] > 0 else float("nan")
        print(f"{n:3d} {fraction:14.3e} {error:10.1e} {2.0**-n:13.3e} {ratio:13.3f}")
    rate = decay_rate_per_dimension(dims, fractions)
    print(
        f"\nfitted decay: fraction ~ exp(-{rate:.2f} n), against ln 2 = {math.log(2):.2f} for 2^-n;"
        " the falling ratios show the decay speeding up with n."
    )


def plot(dims: list[int], fractions: np.ndarray, path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6, 4))
    shown = fractions > 0
    axis.semilogy(np.asarray(dims)[shown], fractions[shown], "o-", label="GOE: all eigenvalues > 0")
    axis.semilogy(dims, [2.0**-n for n in dims], "s--", label="notes' model: 2^-n")
    axis.set(xlabel="dimension n", ylabel="fraction that are minima", title="Zero-gradient points that are minima")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="n = 1..4 with 20,000 matrices each")
    parser.add_argument("--out", type=Path, default=Path("out"), help="directory for counting_minima.png")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random matrices")
    args = parser.parse_args(argv)
    dims, num_samples = ([1, 2, 3, 4], 20_000) if args.quick else ([1, 2, 3, 4, 5, 6], 1_000_000)
    fractions = positive_definite_fraction(dims, num_samples, seed=args.seed)
    table(dims, fractions, num_samples)
    args.out.mkdir(parents=True, exist_ok=True)
    figure_path = args.out / "counting_minima.png"
    plot(dims, fractions, figure_path)
    print(f"wrote {figure_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
