"""The low-data side check, summarised: per model the mean test MCC over tasks, and each difference paired by
task (the study report's statistics: `randommask.replication_report.paired_tasks`), on the (task, seed) runs
all three models have; beside it the same differences with the full training splits, from the study folder.

    python summarise.py LOW STUDY      # e.g. /work/study-runs/low-data /work/study-runs/rep-a1c3d65
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from randommask.replication_report import paired_tasks

MODELS = {  # name -> its full-data fine-tunes in the study folder
    "ov-dnabert.s1": "finetune/ov-dnabert.s1/step-21000",
    "ov-randommask.s1": "finetune/ov-randommask.s1/step-21000",
    "scratch": "finetune/scratch/short",
}
PAIRS = (("ov-dnabert.s1", "scratch"), ("ov-randommask.s1", "scratch"), ("ov-randommask.s1", "ov-dnabert.s1"))


def runs(folder: Path) -> dict[tuple[str, int], float]:
    """(task, seed) -> test MCC of every finished run under ``folder``."""
    out = {}
    for path in folder.glob("runs/**/seed-*/results.json"):
        r = json.loads(path.read_text())
        out[(r["task"], r["seed"])] = r["test"]["mcc"]
    return out


def by_task(mccs: dict[tuple[str, int], float], keys: set) -> dict[str, list[float]]:
    out = defaultdict(list)
    for task, seed in sorted(keys):
        out[task].append(mccs[(task, seed)])
    return dict(out)


def cell(pair: dict | None) -> str:
    if pair is None:
        return "-"
    d, h = 100 * pair["mean_diff"], 100 * pair["ci"]
    return f"{d:+.2f} (95% {d - h:+.2f} to {d + h:+.2f}; Wilcoxon p = {pair['wilcoxon_p']:.2g}; {pair['tasks']} tasks)"


def main(low: Path, study: Path) -> None:
    few = {m: runs(low / m) for m in MODELS}
    common = set.intersection(*(set(v) for v in few.values()))
    tasks = sorted({t for t, _ in common})
    print(f"Low data (1,000 training examples per task): {len(common)} (task, seed) runs that all three models have, "
          f"over {len(tasks)} tasks; seeds per task: "
          + ", ".join(f"{t} {sum(k[0] == t for k in common)}" for t in tasks) + ".\n")
    full = {m: runs(study / f) for m, f in MODELS.items()}
    full_common = set.intersection(*(set(v) for v in full.values())) & {(t, s) for t in tasks for s in range(5)}
    print("| model | low data: mean MCC over tasks | full training split: mean MCC over the same tasks |")
    print("| --- | ---: | ---: |")
    for m in MODELS:
        lo = np.mean([np.mean(v) for v in by_task(few[m], common).values()]) if common else float("nan")
        hi = np.mean([np.mean(v) for v in by_task(full[m], full_common).values()]) if full_common else float("nan")
        print(f"| {m} | {100 * lo:.1f} | {100 * hi:.1f} |")
    print("\n| difference, paired by task | low data | full training split |")
    print("| --- | --- | --- |")
    for a, b in PAIRS:
        print(f"| {a} minus {b} | {cell(paired_tasks(by_task(few[a], common), by_task(few[b], common)))} | "
              f"{cell(paired_tasks(by_task(full[a], full_common), by_task(full[b], full_common)))} |")
    print("\nPer task (low data, mean over seeds):\n")
    print("| task | " + " | ".join(MODELS) + " |")
    print("| --- |" + " ---: |" * len(MODELS))
    for t in tasks:
        print(f"| {t} | " + " | ".join(f"{100 * np.mean(by_task(few[m], common)[t]):.1f}" for m in MODELS) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
