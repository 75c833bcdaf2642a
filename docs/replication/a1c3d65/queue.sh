#!/usr/bin/env bash
# The replication's remaining units in priority order (two pre-training seeds x three fine-tuning seeds at the
# end point before the fourth and fifth fine-tuning seeds), as two queues, one per core (docs/findings.md,
# "Compute plan"). Every line is resumable and skips what has finished, so rerunning a queue continues it.
#
#   WT=/work/wt-rep-3b29ba1 OUT=/work/study-runs/rep-a1c3d65 GUE=/work/shared/data/GUE \
#     nohup bash docs/replication/a1c3d65/queue.sh 1 > q1.log 2>&1 &      # and the same with 2
#
# WT is a worktree of the study's commit with its own .venv (git worktree add $WT 3b29ba1; python -m venv
# $WT/.venv; $WT/.venv/bin/pip install torch==2.13.0 -e $WT); on a new machine first
# `$WT/.venv/bin/randommask prepare data/genomes/20.fa.gz --out /tmp/chr20` (the units reproduce bit for bit).
# The fine-tunes done so far ran from 572fdb8; 3b29ba1 computes the same runs (it adds --ft-unit/--ft-seeds and
# runs a unit seed by seed; it reproduced a finished run exactly: README.md).
set -euo pipefail
: "${WT:?the study worktree}" "${OUT:?the study folder}" "${GUE:?the GUE root}"
export OMP_NUM_THREADS=1 GUE
study() { nice -n 5 "$WT/.venv/bin/randommask" study --preset cpu-replication --store /tmp/chr20 --gue "$GUE" \
            --out "$OUT" --progress false "$@"; }
at_end() { study --arm "$1" --pretrain-seed "$2" --stage finetune --ft-unit step-21000 --ft-seeds "$3"; }  # the end point

case "${1:?queue 1 or 2}" in
  1)
    at_end ov-randommask 0 0-2                                      # the end point, 9 tasks x seeds 0-2
    study --arm ov-dnabert --pretrain-seed 1 --stage pretrain             # the second pre-training seed (+ EMP)
    at_end ov-dnabert 1 0-2                                         # 2 pre-training x 3 fine-tuning seeds
    at_end ov-randommask 0 3-4                                      # then the end point's seeds 3-4
    at_end ov-dnabert 1 3-4
    study --arm scratch --stage finetune                                  # the floor: 9 x 5, EMP 3 x 3
    study --arm ov-randommask --pretrain-seed 0 --stage pretrain           # done: only its EMP continuation runs
    study --arm ov-randommask --pretrain-seed 0 --stage finetune          # 1/3, 2/3, EMP, the longer check
    study --arm ov-randommask --pretrain-seed 1 --stage finetune
    for arm in rm-no-curriculum rm-widest-only bpe-bert; do study --arm "$arm"; done
    ;;
  2)
    at_end ov-dnabert 0 0-2
    study --arm ov-randommask --pretrain-seed 1 --stage pretrain
    at_end ov-randommask 1 0-2
    at_end ov-dnabert 0 3-4
    at_end ov-randommask 1 3-4
    study --arm ov-dnabert --pretrain-seed 0 --stage pretrain              # done: only its EMP continuation runs
    study --arm ov-dnabert --pretrain-seed 0 --stage finetune
    study --arm ov-dnabert --pretrain-seed 1 --stage finetune
    for arm in ov-bert rm-phases-2 rm-phases-10; do study --arm "$arm"; done
    ;;
  *) echo "queue.sh: give 1 or 2" >&2; exit 2 ;;
esac
study --report-only
