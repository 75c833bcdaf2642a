"""Overlay the masked-LM loss of several pre-training runs against tokens seen (one PNG).

    python scripts/plot_runs.py RUN [RUN ...] --out curves.png [--labels A B ...] [--title TEXT]

The same figure as a study report's curves.png: thin lines are the training log, markers the held-out
evaluations; the ln 4 floor and the loss-2 line mark the overlapping-k-mer shortcut regime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from randommask.analysis.figures import plot_arm_curves
from randommask.study import FLOOR, REGIME, UNIFORM, arm_curves


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--labels", nargs="+")
    ap.add_argument("--title", default="Pre-training loss per run")
    args = ap.parse_args(argv)
    labels = args.labels or [r.name for r in args.runs]
    if len(labels) != len(args.runs):
        print("plot_runs: give as many --labels as runs", file=sys.stderr)
        return 2
    arms = {}
    for label, run in zip(labels, args.runs, strict=True):
        curves = arm_curves(run)
        if curves is None:
            print(f"plot_runs: {run}: no metrics.jsonl and config.yaml (not a pre-training run folder)",
                  file=sys.stderr)
            return 2
        arms[label] = curves
    plot_arm_curves(arms, FLOOR, REGIME, UNIFORM, args.out, title=args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
