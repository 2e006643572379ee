"""The escape race (notes section 8): gradient descent, momentum, RMSprop and Adam started
near a saddle point and on a plateau; how many steps does each need to get away?

Both surfaces are 2-D so the paths can be drawn:

- saddle: ``J = w0^2/2 + w1^4/4 - w1^2/2``, started at (1, ~0), next to the line that leads
  straight into the saddle at the origin; escaped halfway down to a minimum (J < -1/8);
- plateau: ``J = sigmoid(-2 w0) + w1^2/2``, started at (-3, 1) on a shelf whose slope is
  about 5e-3; escaped halfway down the shelf (J < 1/2).

Every optimizer uses alpha = 0.1 and the notes' defaults. The script first checks the two
starting regions with :func:`jaxopt_notes.classify_point`, then prints the race and writes
``saddle_escape.png`` (paths on the contours, cost against step) into ``--out``.

    python examples/saddle_escape.py            # full budgets, fine contour grid
    python examples/saddle_escape.py --quick    # the same race, coarse grid (seconds)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxopt_notes import notes  # noqa: E402
from jaxopt_notes.notes import PLATEAU, SADDLE  # noqa: E402

LIMITS = {"saddle": ((-0.4, 1.2), (-1.3, 1.3)), "plateau": ((-3.5, 1.5), (-1.2, 1.2))}


def as_xy(loss):
    return lambda p: loss(jnp.stack([p["x"], p["y"]]))


def describe_starts() -> None:
    """The saddle point is a saddle; the shelf is nearly stationary and nearly flat."""
    saddle = notes.classify_point(as_xy(SADDLE.loss_fn), {"x": jnp.array(0.0), "y": jnp.array(0.0)})
    shelf = notes.classify_point(
        as_xy(PLATEAU.loss_fn), {"x": jnp.array(-6.0), "y": jnp.array(0.0)}, grad_tol=1e-4, eig_tol=1e-3
    )
    for label, result in (("saddle origin", saddle), ("shelf at (-6, 0)", shelf)):
        print(
            f"{label:18s} grad norm {result.grad_norm:.2e}  curvature [{result.lambda_min:+.2e}, "
            f"{result.lambda_max:+.2e}]  ->  {result.verdict}"
        )


def race(seed: int) -> dict[str, list[notes.EscapeRow]]:
    results = {}
    for problem in (SADDLE, PLATEAU):
        rows = notes.escape_race(problem, seed=seed)
        results[problem.name] = rows
        print(f"\n{problem.name}: steps to escape (J < {problem.escape_level:g}, alpha {problem.learning_rate:g})")
        for row in rows:
            steps = "did not escape" if row.steps is None else f"{row.steps:5d}"
            print(f"  {row.name:22s} {steps}")
    return results


def plot(results: dict[str, list[notes.EscapeRow]], path: Path, grid: int) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(11, 8))
    for column, problem in enumerate((SADDLE, PLATEAU)):
        (x0, x1), (y0, y1) = LIMITS[problem.name]
        grid_x, grid_y = np.meshgrid(np.linspace(x0, x1, grid), np.linspace(y0, y1, grid))
        cost = np.asarray(problem.loss_fn(jnp.stack([grid_x, grid_y])))
        top, bottom = axes[0, column], axes[1, column]
        top.contour(grid_x, grid_y, cost, levels=25, cmap="Greys", linewidths=0.6)
        for row in results[problem.name]:
            label = f"{row.name} ({'no escape' if row.steps is None else row.steps})"
            top.plot(row.path[:, 0], row.path[:, 1], ".-", markersize=2, linewidth=1, label=label)
            bottom.plot(np.arange(1, len(row.losses) + 1), row.losses, label=row.name)
        top.set(title=f"{problem.name}: paths until escape", xlabel="w0", ylabel="w1", xlim=(x0, x1), ylim=(y0, y1))
        top.legend(fontsize=7)
        bottom.axhline(problem.escape_level, color="black", linestyle=":", linewidth=1)
        bottom.set(title=f"{problem.name}: cost J", xlabel="step + 1", xscale="log")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="coarse contour grid (the race itself is unchanged)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="directory for saddle_escape.png (default ./out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the starting perturbation")
    args = parser.parse_args(argv)
    describe_starts()
    results = race(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    figure_path = args.out / "saddle_escape.png"
    plot(results, figure_path, grid=60 if args.quick else 300)
    print(f"\nwrote {figure_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
