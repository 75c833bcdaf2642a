"""The fine-tunes of the earlier protocol against their reruns under the study's: same unit, checkpoint, task, seed.

Earlier (`finetune-pre-cec79f9/`): at most 1,500 steps and DNABERT-2's per-group epochs, the full last layer.
Now (`finetune/`, from `5bf4df4`): the dev plateau or 3,000 steps, no epoch limit, the last layer for [CLS]
alone (the same function, other dropout draws). Paired by (unit, step, task, seed): what the longer fine-tuning
does to the test MCC, and the seconds per step. Prints a markdown table and the summary:

    python docs/replication/a1c3d65/compare_protocols.py docs/replication/a1c3d65
"""

import json
import statistics
import sys
from pathlib import Path

from scipy import stats

root = Path(sys.argv[1])
old_root, new_root = root / "finetune-pre-cec79f9", root / "finetune"
rows = []
for old_file in sorted(old_root.glob("**/seed-*/results.json")):
    new_file = new_root / old_file.relative_to(old_root)
    if not new_file.is_file():
        continue
    old, new = (json.loads(f.read_text()) for f in (old_file, new_file))
    unit_step = old_file.relative_to(old_root).parts[:2]
    rows.append({
        "unit": "/".join(unit_step), "task": old["task"], "seed": old["seed"],
        "old": 100 * old["test"]["mcc"], "new": 100 * new["test"]["mcc"],
        "old_s": old["wall_time_s"] / old["steps_run"], "new_s": new["wall_time_s"] / new["steps_run"],
        "old_steps": old["steps_run"], "new_steps": new["steps_run"],
    })
if not rows:
    sys.exit(f"no fine-tune in {old_root} has a rerun in {new_root} yet")

print("| unit | task | seed | test MCC, earlier protocol | now | difference | steps run | s/step before | s/step now |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    print(f"| {r['unit']} | {r['task']} | {r['seed']} | {r['old']:.2f} | {r['new']:.2f} | {r['new'] - r['old']:+.2f} "
          f"| {r['old_steps']} / {r['new_steps']} | {r['old_s']:.3f} | {r['new_s']:.3f} |")
diffs = [r["new"] - r["old"] for r in rows]
n = len(diffs)
mean = statistics.fmean(diffs)
print()
if n > 1:
    sd = statistics.stdev(diffs)
    half = stats.t.ppf(0.975, n - 1) * sd / n**0.5
    p = stats.wilcoxon(diffs).pvalue if n >= 6 else float("nan")
    print(f"{n} pairs: mean difference (now - earlier) {mean:+.2f} MCC (95% {mean - half:+.2f} .. {mean + half:+.2f}), "
          f"sd of the differences {sd:.2f}, signed-rank p = {p:.2f}")
else:
    print(f"1 pair: difference {mean:+.2f} MCC")
speed = [r["old_s"] / r["new_s"] for r in rows]
print(f"seconds per step, before / now: median {statistics.median(speed):.2f}x "
      f"(range {min(speed):.2f}-{max(speed):.2f}; wall clock on the shared cores, evaluations included)")
