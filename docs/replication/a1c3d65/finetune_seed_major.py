"""Run one fine-tuning unit of the study seed by seed (every task with seed 0, then seed 1, ...).

The study's own order (`randommask.replication.run`) is task-major and starts at the 1/3 checkpoint; with a
few core-hours a session, the end checkpoints seed-major give a first comparison across all nine tasks
soonest. Each (task, seed) run is written exactly where the study writes it, with the study's settings, so the
study's later call finds it finished and skips it (its resume check compares the settings).

Run with the fixed commit's interpreter (the worktree's .venv), one thread:

    OMP_NUM_THREADS=1 python finetune_seed_major.py OUT UNIT STEP [FIRST_SEED [LAST_SEED]]
    # GUE=/path/to/GUE (default /work/shared/data/GUE)
    # e.g. OUT=/work/study-runs/rep-a1c3d65 UNIT=ov-dnabert.s0 STEP=21000
"""

import os
import sys
from pathlib import Path

from randommask.evaluate import benchmark, load_benchmark_config
from randommask.replication import finetune_plan, finetune_settings
from randommask.study import PRESETS

root, unit, step = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
p = PRESETS["cpu-replication"]
plan = [u for u in finetune_plan(p, root) if not u.get("emp") and u["model"] is not None
        and u["folder"] == root / "finetune" / unit / f"step-{step}"]
if len(plan) != 1:
    sys.exit(f"no fine-tuning unit {unit} at step {step} in the plan")
u = plan[0]
first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
last = int(sys.argv[5]) if len(sys.argv) > 5 else u["seeds"] - 1
for seed in range(first, min(last, u["seeds"] - 1) + 1):
    print(f"== seed {seed} of {unit} step {step}", flush=True)
    gue = os.environ.get("GUE", "/work/shared/data/GUE")
    data = {**finetune_settings(p, gue, "auto", False), "tasks": u["tasks"], "seeds": 1, "first_seed": seed,
            "out_dir": str(u["folder"]), "model": str(u["model"])}
    benchmark(load_benchmark_config(data))
