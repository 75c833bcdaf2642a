#!/usr/bin/env bash
# The replication's remaining units in priority order, as two queues, one per core (docs/findings.md, "Compute
# plan"). Every line is resumable and skips what has finished. Start both at the beginning of a session:
#
#   bash docs/replication/a1c3d65/restore.sh                  # on a new machine: worktree, venv, store, results
#   WT=/work/wt-rep-b526205 OUT=/work/study-runs/rep-a1c3d65 GUE=/work/shared/data/GUE \
#     nohup bash docs/replication/a1c3d65/queue.sh 1 > q1.log 2>&1 &      # and the same with 2
#
# Checkpoints are not kept between sessions, and a pre-training unit reproduces bit for bit only on a CPU like
# the one it ran on (findings.md, "Reproducibility"). So a synced main unit continues (pre-trained again, then
# its missing fine-tunes) only where `reproduces.sh` says this machine computes the same model; otherwise the
# queue goes on to units that need no earlier model: an ablation arm from scratch to its last fine-tune (about
# 40 minutes of pre-training and 27 fine-tunes of 1-3 minutes on the fastest machine seen; start it early, its
# fine-tunes cannot continue in a later session on another CPU), and the from-scratch floor. Where the machine
# is the one the units ran on and its study folder survived (2026-12-05), pre-training is skipped as finished.
# The main arms have three pre-training seeds (`--main-seeds 3`, from the eighth session): the `.s0` units (AMD
# EPYC) cannot continue on the Intel machine the later sessions got, so `.s2` is pre-trained there to give each
# masking two complete pre-training runs (`.s1`, `.s2`) and the run-level comparison a third run a side.
# The ninth session got a third machine (AMD EPYC family 25 model 17, AVX-512) that reproduces none of
# `.s0`-`.s2` under its own kernels but `.s0` under AVX2 ones (`kernels.sh`): each unit runs under the setting
# that reproduced it. The queues plan a fourth seed pair, `.s3` (`--main-seeds 4`, begun on that machine), and
# try the units newest first, so a machine that reproduces a pair works on it before the older ones (that
# session ran `.s0`'s thirds by hand, the same calls, before `.s3`'s pre-training). An ablation arm begun on another CPU is
# skipped unless this machine reproduces it (its fine-tunes would mix two models), and a finished one is never
# pre-trained again (the study would, its checkpoints being gone, and overwrite its synced loss curve).
# Order within a reproduced unit: its pre-training and the end point's fine-tuning seed 0 on every task, which
# makes one complete run mean (main_first); the two ablation arms already begun on this machine; then the
# thirds' seed 0 (since the ninth session first: only `.s1` has a course over pre-training, and a run's course
# says more than its end point's seeds 1-2), the end point's seeds 1-2, EMP's 3 seeds, the longer check
# (main_next); the floor (finished); then
# the end point's seeds 3-4 and the thirds' seeds 1-2 (main_rest); the ablation arms not begun last (the issue
# cuts them first).
set -euo pipefail
: "${WT:?the study worktree}" "${OUT:?the study folder}" "${GUE:?the GUE root}"
export OMP_NUM_THREADS=1 GUE
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=kernels.sh
. "$here/kernels.sh"
# shellcheck disable=SC2046  # the unit's kernel switches: a list of VAR=value words
study() { nice -n 5 env $(kernel_switches "${KERNELS:-}") "$WT/.venv/bin/randommask" study --preset cpu-replication --main-seeds 4 --store /tmp/chr20 \
            --gue "$GUE" --out "$OUT" --progress false "$@"; }
ft() { study --arm "$1" --pretrain-seed "$2" --stage finetune --ft-unit "$3" --ft-seeds "$4"; }

declare -A kernels=()  # unit -> the kernel switches under which this machine reproduces it ("": the default)
continues() {  # UNIT: may the unit continue here? A synced one only where a rerun computes the same model,
  local unit=$1 k  # under the default kernels or those of a CPU without AVX-512 (where `.s0` ran)
  [ -z "${kernels[$unit]+set}" ] || return 0
  if [ -s "$here/pretrain/$unit/metrics.jsonl" ]; then
    for k in "" AVX2; do
      if KERNELS=$k bash "$here/reproduces.sh" "${unit%.s*}" "${unit##*.s}"; then kernels[$unit]=$k; return 0; fi
    done
    return 1  # another model here: its fine-tunes must not join the synced ones
  fi
  kernels[$unit]=""
}
on() { local unit=$1; shift; KERNELS=${kernels[$unit]} "$@"; }  # run a unit's step under its kernels
main_first() {  # ARM SEED: pre-train it again if needed (with its EMP continuation), then one complete run mean
  local arm=$1 seed=$2
  continues "$arm.s$seed" || return 0
  on "$arm.s$seed" study --arm "$arm" --pretrain-seed "$seed" --stage pretrain
  on "$arm.s$seed" ft "$arm" "$seed" step-21000 0-0
}
ablation() {  # ARM: an ablation arm (one seed, 0) from scratch to its last fine-tune, unless begun elsewhere
  local arm=$1 done
  if [ -s "$here/pretrain/$arm.s0/metrics.jsonl" ]; then
    done=$(find "$here/finetune/$arm.s0" -name results.json 2>/dev/null | wc -l)
    [ "$done" -lt 27 ] || return 0  # finished: 9 tasks x 3 seeds at the end point (nothing to pre-train for)
  fi
  continues "$arm.s0" || return 0  # begun on another CPU: it continues there only
  on "$arm.s0" study --arm "$arm"
}
main_next() {  # ARM SEED: the thirds' first seed, the end point's 3 seeds, EMP (must-show 7), the longer check
  local arm=$1 seed=$2
  [ -n "${kernels[$arm.s$seed]+set}" ] || return 0
  on "$arm.s$seed" ft "$arm" "$seed" step-7000 0-0; on "$arm.s$seed" ft "$arm" "$seed" step-14000 0-0  # its course
  on "$arm.s$seed" ft "$arm" "$seed" step-21000 1-2; on "$arm.s$seed" ft "$arm" "$seed" emp 0-2
  on "$arm.s$seed" ft "$arm" "$seed" step-21000-long 0-0  # the longer check, on every pre-training run (README.md)
}
main_rest() {  # ARM SEED: the remaining seeds of a unit main_first continued
  local arm=$1 seed=$2
  [ -n "${kernels[$arm.s$seed]+set}" ] || return 0
  on "$arm.s$seed" ft "$arm" "$seed" step-21000 3-4
  on "$arm.s$seed" ft "$arm" "$seed" step-7000 1-2; on "$arm.s$seed" ft "$arm" "$seed" step-14000 1-2
}

case "${1:?queue 1 or 2}" in
  1)
    for s in 3 2 1 0; do main_first ov-dnabert $s; done
    ablation rm-no-curriculum  # finished 2026-12-06 on the Intel machine
    for s in 3 2 1 0; do main_next ov-dnabert $s; done
    study --arm scratch --stage finetune --ft-unit emp  # the EMP floor (independent of the CPU)
    for s in 3 2 1 0; do main_rest ov-dnabert $s; done
    study --arm scratch --stage finetune --ft-unit short --ft-seeds 3-4  # (a run folder is locked, not a unit)
    for arm in rm-widest-only bpe-bert; do ablation "$arm"; done
    ;;
  2)
    for s in 3 2 1 0; do main_first ov-randommask $s; done
    ablation rm-phases-2  # begun 2026-12-05 on the Intel machine (pre-trained there, 2 of 27 fine-tunes)
    for s in 3 2 1 0; do main_next ov-randommask $s; done
    study --arm scratch --stage finetune --ft-unit short --ft-seeds 0-2  # the floor: does pre-training help?
    for s in 3 2 1 0; do main_rest ov-randommask $s; done
    for arm in ov-bert rm-phases-10; do ablation "$arm"; done
    study --arm scratch --stage finetune  # whatever of the floor the other queue has not reached
    ;;
  *) echo "queue.sh: give 1 or 2" >&2; exit 2 ;;
esac
study --report-only
