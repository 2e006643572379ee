"""The ``jaxopt-notes`` command line (also ``python -m jaxopt_notes``).

Commands:
  compare   train the notes' running example with each optimizer; print a table, write a PNG.
  figures   regenerate the notes' lost figures as PNGs plus an index.md.
  saddle    race gradient descent, momentum, RMSprop and Adam away from a saddle and a plateau.

Bad arguments end with one line on stderr and exit status 2; a failure while running (an
unreadable data file, say) with one line and status 1. Never a traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

PROG = "jaxopt-notes"
OPTIMIZER_NAMES = ("gd", "sgd", "momentum", "rmsprop", "adam", "adam-decay")


class UsageError(Exception):
    """A command-line argument is wrong: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of argparse's usage block
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2^32), got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _optimizers(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in OPTIMIZER_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {unknown[0] if unknown else text!r}; choose from {', '.join(OPTIMIZER_NAMES)}"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"an optimizer is listed twice in {text!r}")
    return names


def _learning_rates(text: str) -> dict[str, float]:
    """``0.01`` (every optimizer) or ``adam=0.01,sgd=0.5`` (the ones named)."""
    if "=" not in text:
        return dict.fromkeys(OPTIMIZER_NAMES, _rate(text))
    rates = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in OPTIMIZER_NAMES:
            raise argparse.ArgumentTypeError(
                f"unknown optimizer {name!r} in {text!r}; choose from {', '.join(OPTIMIZER_NAMES)}"
            )
        rates[name] = _rate(value.strip())
    return rates


def _dataset(text: str) -> str:
    if text in ("generated", "digits"):
        return text
    path = Path(text)
    if path.suffix not in (".npy", ".npz"):
        raise argparse.ArgumentTypeError(
            f"expected 'generated', 'digits' or a path to a .npy or .npz file, got {text!r}"
        )
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def _out_dir(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="The study notes' training speed-ups, run and plotted.")
    commands = parser.add_subparsers(dest="command", metavar="{compare,figures,saddle}")

    compare = commands.add_parser(
        "compare",
        help="train the notes' logistic regression with each optimizer; print a table, write a PNG",
        description="Trains logistic regression (by default the notes' m = 5,000,000 examples, 20 features, "
        "minibatch 1,000) with each optimizer; prints final cost, accuracy, epochs and steps to reach the "
        "target cost and wall time, and writes compare.png (cost curves) and compare.csv into --out.",
    )
    compare.add_argument(
        "--optimizers",
        type=_optimizers,
        default=OPTIMIZER_NAMES,
        help=f"comma-separated subset of {','.join(OPTIMIZER_NAMES)}",
    )
    compare.add_argument(
        "--epochs", type=_positive_int, default=None, help="passes over the data (default 2; 30 for other data sets)"
    )
    compare.add_argument(
        "--batch-size", type=_positive_int, default=None, help="minibatch size (default 1000; 64 for other data sets)"
    )
    compare.add_argument(
        "--m", type=_positive_int, default=None, help="examples to generate (generated data only; default 5,000,000)"
    )
    compare.add_argument(
        "--lr",
        type=_learning_rates,
        default={},
        help="learning rate for all optimizers, or per optimizer: adam=0.01,sgd=0.5",
    )
    compare.add_argument(
        "--dataset",
        type=_dataset,
        default="generated",
        help="'generated' (default), 'digits' (scikit-learn's bundled digits; needs scikit-learn), or a .npz file "
        "holding X (m, d) and y (m,) integer labels, or a .npy file of shape (m, d + 1) whose last column is the label",
    )
    compare.add_argument(
        "--target", type=_finite, default=None, help="target cost (default: 95%% of the best improvement)"
    )
    compare.add_argument(
        "--out", type=_out_dir, default=Path("out"), help="directory for compare.png and compare.csv (default ./out)"
    )
    compare.add_argument("--seed", type=_seed, default=0, help="seed of the data, initialisation and shuffles")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar")

    figures = commands.add_parser(
        "figures",
        help="regenerate the notes' figures as PNGs plus index.md",
        description="Writes one PNG per figure of the notes, and index.md showing them all, into --out.",
    )
    figures.add_argument("--out", type=_out_dir, default=Path("figures"), help="output directory (default ./figures)")
    figures.add_argument("--quick", action="store_true", help="smaller training runs behind the figures (seconds)")

    saddle = commands.add_parser(
        "saddle",
        help="race the optimizers away from a saddle point and off a plateau",
        description="Starts gradient descent, momentum, RMSprop and Adam near a saddle point and on a plateau; "
        "prints the steps each needs to escape and writes escape_race.png into --out.",
    )
    saddle.add_argument(
        "--out", type=_out_dir, default=Path("out"), help="directory for escape_race.png (default ./out)"
    )
    saddle.add_argument("--seed", type=_seed, default=0, help="seed of the starting points")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "compare":
        from jaxopt_notes.cli import _compare

        _compare.main(args)
    elif args.command == "figures":
        from jaxopt_notes.cli import _plots

        for path in _plots.write_gallery(args.out, quick=args.quick):
            print(path)
    elif args.command == "saddle":
        saddle(args)
    return 0


def saddle(args: argparse.Namespace) -> None:
    """The ``saddle`` command: the escape race as a table and ``escape_race.png``."""
    from jaxopt_notes.cli import _plots
    from jaxopt_notes.notes import _figure_data

    races = {name: _figure_data.escape_data(name, seed=args.seed) for name in ("saddle", "plateau")}
    args.out.mkdir(parents=True, exist_ok=True)
    path = _plots.save(_plots.plot_escape_race(races["saddle"], races["plateau"]), args.out / "escape_race.png")
    print("Escape race (notes section 8): updates until the cost falls below the escape level")
    for name, race in races.items():
        problem = race.problem
        start = ", ".join(f"{x:.3f}" for x in race.rows[0].path[0])
        print(f"  {name}: start ({start}), learning rate {problem.learning_rate:g}, escape level "
              f"{problem.escape_level:g}, budget {problem.max_steps:,} steps")  # fmt: skip
    width = max(len(row.name) for row in races["saddle"].rows)
    print(f"{'optimizer':<{width}}  {'saddle':>8}  {'plateau':>8}")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 8}")
    for saddle_row, plateau_row in zip(races["saddle"].rows, races["plateau"].rows, strict=True):
        cells = ["not yet" if row.steps is None else f"{row.steps:,}" for row in (saddle_row, plateau_row)]
        print(f"{saddle_row.name:<{width}}  {cells[0]:>8}  {cells[1]:>8}")
    print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 failed while running, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ImportError, ArithmeticError) as error:
        print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
