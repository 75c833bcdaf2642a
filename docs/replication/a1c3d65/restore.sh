#!/usr/bin/env bash
# Recreate the replication study on a new machine, where only the repository survived: the worktree of the
# study's commit with its own virtual environment, the genome store, and every synced result copied back into
# the study folder's layout, so that the queues skip the finished fine-tunes. Checkpoints are not kept: a
# pre-training unit reruns (bit for bit: README.md) before its fine-tunes can continue.
#
#   bash docs/replication/a1c3d65/restore.sh      # then queue.sh 1 and 2 (its header)
#
# Safe to rerun: it creates only what is missing and never overwrites a result in the study folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
WT=${WT:-/work/wt-rep-b526205} OUT=${OUT:-/work/study-runs/rep-a1c3d65}
GENOME=${GENOME:-$repo/../shared/data/genomes/20.fa.gz} PY=${PYTHON:-python3}
commit=b526205  # the queues' commit, computing 3b29ba1's fine-tunes (README.md: what each commit ran)

[ -d "$WT" ] || git -C "$repo" worktree add --detach "$WT" "$commit"
if [ ! -x "$WT/.venv/bin/randommask" ]; then
  "$PY" -m venv "$WT/.venv"
  "$WT/.venv/bin/pip" install --quiet torch==2.13.0      # the CPU wheel first: nothing pulls a CUDA build
  "$WT/.venv/bin/pip" install --quiet -e "$WT" matplotlib  # matplotlib: the report's figures
fi
[ -s /tmp/chr20/bases.u8 ] || "$WT/.venv/bin/randommask" prepare "$GENOME" --out /tmp/chr20
mkdir -p "$OUT"
# Pre-training units' config and metrics (the report's loss curves), finished fine-tunes (skipped on rerun).
(cd "$here" && find pretrain finetune -type f -print0 | while IFS= read -r -d '' f; do
   [ -e "$OUT/$f" ] || { mkdir -p "$OUT/$(dirname "$f")"; cp "$f" "$OUT/$f"; }
 done)
echo "restored: worktree $WT ($commit), store /tmp/chr20, $(find "$OUT/finetune" -name results.json | wc -l)" \
     "finished fine-tunes in $OUT"
