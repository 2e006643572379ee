"""The ``compare`` command: the notes' running example as a table, a CSV file and a figure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from jaxopt_notes.cli import _plots
from jaxopt_notes.notes._running_example import (
    CONTENDERS,
    Result,
    default_target,
    evaluate,
    load_problem,
    model_for,
    run_contender,
)

COLUMNS = ("optimizer", "lr", "batch", "final cost", "accuracy", "epochs to target", "steps to target", "wall time (s)")


def table_rows(results: Sequence[Result], target: float) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for result in results:
        steps = result.steps_to(target)
        rows.append(
            (
                result.label,
                f"{result.learning_rate:g}",
                f"{result.batch_size:,}",
                f"{result.final_cost:.5g}",
                f"{100 * result.accuracy:.2f} %",
                "not reached" if steps is None else f"{steps / result.steps_per_epoch:.3g}",
                "not reached" if steps is None else f"{steps:,}",
                f"{result.seconds:.1f}",
            )
        )
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
    lines = [
        "  ".join(
            f"{cell:<{w}}" if i == 0 else f"{cell:>{w}}" for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [COLUMNS, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> None:
    lines = [",".join(COLUMNS)] + [",".join(cell.replace(",", "") for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def main(args: argparse.Namespace) -> None:
    """The ``compare`` command: ``args`` is the parsed command line (see :mod:`jaxopt_notes.cli`)."""

    generated = args.dataset == "generated"
    epochs = args.epochs or (2 if generated else 30)
    print(f"loading {args.dataset} data ...", file=sys.stderr)
    problem = load_problem(args.dataset, m=args.m, seed=args.seed)
    m = len(problem.X)
    batch_size = args.batch_size or min(1000 if generated else 64, m)
    if batch_size > m:
        raise ValueError(f"--batch-size {batch_size:,} exceeds the {m:,} examples of the data set")
    loss, params = model_for(problem)
    initial_cost = evaluate(params, problem)[0]
    results = []
    for position, name in enumerate(args.optimizers, start=1):
        rate = args.lr.get(name, CONTENDERS[name].learning_rate)
        print(f"[{position}/{len(args.optimizers)}] {CONTENDERS[name].label}, learning rate {rate:g}", file=sys.stderr)
        results.append(
            run_contender(
                name, problem, epochs=epochs, batch_size=batch_size, learning_rate=rate, seed=args.seed,
                progress=not args.no_progress,
            )
        )  # fmt: skip
    target = default_target(results, initial_cost) if args.target is None else args.target
    rows = table_rows(results, target)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "compare.csv", rows)
    title = f"{problem.name}, minibatch {batch_size:,}, {epochs} epochs"
    _plots.save(_plots.plot_compare(results, target, title), args.out / "compare.png")
    print(f"{title}; initial cost {initial_cost:.4f}, target cost {target:.4f} (smoothed minibatch cost)")
    print(format_table(rows))
    print(f"wrote {args.out / 'compare.png'} and {args.out / 'compare.csv'}")
