#!/usr/bin/env bash
# Side check: does this pre-training help when fine-tuning data is scarce? The study's protocol on the nine
# short tasks, each task's training split cut to a seeded 1,000 examples (the same 1,000 for every model at a
# given fine-tuning seed), for the two `.s1` end checkpoints and from scratch; seed by seed, and within a seed
# task by task with the three models side by side, so that a stop leaves complete (task, seed) triples.
# Resumable (finished runs are skipped; the last call per model writes its tables over all nine tasks). Run
# from the study's commit:
#
#   WT=/work/wt-rep-b526205 OUT=/work/study-runs/rep-a1c3d65 GUE=/work/shared/data/GUE \
#     nohup bash docs/replication/a1c3d65/side-checks/low-data/run.sh /work/study-runs/low-data > low.log 2>&1 &
set -euo pipefail
: "${WT:?the study worktree}" "${OUT:?the study folder}" "${GUE:?the GUE root}"
dest=${1:?an output folder}
export OMP_NUM_THREADS=1
tasks=(prom/prom_core_all prom/prom_core_notata tf/0 tf/1 tf/2 tf/4 mouse/0 mouse/3 mouse/4)
protocol=(--lr 5e-4 --epochs 100 --warmup-steps 50 --max-steps 3000 --eval-steps 100 --patience 4 --min-steps 1000
          --select-dev-examples 1000 --dropout 0.1 --max-train-examples 1000 --progress false)
run() {  # MODEL SEED TASK...: one benchmark call into the model's folder
  local model=$1 seed=$2; shift 2
  if [ "$model" = scratch ]; then source=(--from-scratch --tokenizer kmer6 --preset tiny)
  else source=(--model "$OUT/pretrain/$model/checkpoints/step-21000.pt"); fi
  nice -n 10 "$WT/.venv/bin/randommask" benchmark "${source[@]}" --gue "$GUE" --tasks "$@" --seeds 1 \
    --first-seed "$seed" --out-dir "$dest/$model" "${protocol[@]}"
}
models=(ov-dnabert.s1 ov-randommask.s1 scratch)
for seed in 0 1 2; do
  for task in "${tasks[@]}"; do
    for model in "${models[@]}"; do run "$model" "$seed" "$task"; done
  done
  for model in "${models[@]}"; do run "$model" "$seed" "${tasks[@]}"; done  # nothing left to run: the tables
done
