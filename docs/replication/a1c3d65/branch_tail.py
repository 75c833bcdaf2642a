"""Branch the tail-only window design off the ov-dnabert.s0 unit at step 5,250 (the record of how it was made).

Until step 5,250 the unit (64-token windows, interleaved 128-token steps from step 5,250 on, the last tenth at
512) and the tail-only design (no interleaved steps) run the same batches, masks and schedule: the batch of a
step is a function of (seed, step), and the first interleaved step is 5,259. So the unit's step-5,250
checkpoint is also the tail-only run's; this copies it with the tail-only config, and
`randommask pretrain --config OUT/config.yaml --resume` continues it.

    python branch_tail.py UNIT OUT
"""

import json
import shutil
import sys
from pathlib import Path

import torch
import yaml

unit, out = Path(sys.argv[1]), Path(sys.argv[2])
state = torch.load(unit / "checkpoints" / "step-5250.pt", map_location="cpu", weights_only=False)
assert state["step"] == 5250
cfg = state["config"]
cfg["data"].update(long_every=0, long_from=0.0)
cfg["out_dir"] = str(out)
state["config"] = cfg
(out / "checkpoints").mkdir(parents=True)
torch.save(state, out / "checkpoints" / "step-5250.pt")
(out / "checkpoints" / "latest").write_text("step-5250.pt")
(out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
shutil.copy(unit / "vocab.txt", out / "vocab.txt")
lines = [x for x in (unit / "metrics.jsonl").read_text().splitlines() if json.loads(x)["step"] <= 5250]
(out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
print(f"branched {unit} at step 5250 into {out}")
