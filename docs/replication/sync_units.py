"""Copy a study folder's small results into the repository (no checkpoints: the commit reproduces them).

    python docs/replication/sync_units.py OUT DEST      # e.g. /work/study-runs/rep-a1c3d65 docs/replication/a1c3d65

Copies, keeping the study's layout: each finished pre-training unit's config.yaml and metrics.jsonl, each
finished fine-tune's results.json, metrics.jsonl and config.yaml (a run still going has no results.json and is
skipped), and the report with its figures. Safe to rerun: files are overwritten with the study's current ones.

A pre-training unit still running is skipped too: its partial log in the repository would make `restore.sh`
put it back on a machine without its checkpoints, where the study would then take the unit for one to resume.
A pre-training unit already in DEST is kept as it is: one pre-trained again to continue its fine-tunes
(`reproduces.sh`) logs the same losses but its own throughput and a newer commit's fields, and the repository
keeps the record of the run its first fine-tunes came from.
"""

import json
import shutil
import sys
from pathlib import Path

out, dest = Path(sys.argv[1]), Path(sys.argv[2])
copied = 0


def copy(src: Path) -> None:
    global copied
    target = dest / src.relative_to(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    copied += 1


def pretrained(unit: Path) -> bool:
    """Whether the unit's log reaches the `steps:` its config.yaml asks for."""
    config, metrics = unit / "config.yaml", unit / "metrics.jsonl"
    if not (config.is_file() and metrics.is_file()):
        return False
    asked = [line for line in config.read_text().splitlines() if line.startswith("steps:")]
    steps = int(asked[0].split(":")[1]) if asked else None
    lines = metrics.read_text().splitlines()
    return steps is not None and bool(lines) and json.loads(lines[-1]).get("step") == steps


for unit in sorted((out / "pretrain").glob("*")):
    if not pretrained(unit):
        print(f"skipped {unit.name}: pre-training has not finished")
        continue
    if (dest / "pretrain" / unit.name / "metrics.jsonl").is_file():
        continue  # synced before: its first run's record stays
    for name in ("config.yaml", "metrics.jsonl"):
        if (unit / name).is_file():
            copy(unit / name)
for results in sorted(out.glob("finetune*/**/seed-*/results.json")):  # finetune/ and archived ones
    for name in ("results.json", "metrics.jsonl", "config.yaml"):
        if (results.parent / name).is_file():
            copy(results.parent / name)
for name in ("report.md", "summary.json", "replication.png", "dev-curves.png", "tokenizer/tokenizer-report.json"):
    if (out / name).is_file():
        copy(out / name)
print(f"copied {copied} files from {out} into {dest}")
