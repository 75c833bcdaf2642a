#!/usr/bin/env bash
# Does this machine reproduce a synced pre-training unit? Its checkpoints are not kept, so its fine-tunes can
# continue only where a rerun computes the same model: same code, and the same floating-point kernels, which
# follow the CPU. Runs the unit's first 100 steps (under a minute) into a scratch folder and compares the
# logged loss with the synced one, digit for digit. Exit 0: it reproduces; 1: it does not (a rerun here is
# another model; its fine-tunes must not be merged with the synced ones).
#
#   WT=/work/wt-rep-b526205 bash docs/replication/a1c3d65/reproduces.sh ov-dnabert 0
#   KERNELS=AVX2 WT=/work/wt-rep-b526205 bash docs/replication/a1c3d65/reproduces.sh ov-dnabert 0  # kernels.sh
#
# Measured 2026-12-05 (docs/findings.md, "Reproducibility"): ov-dnabert.s0, pre-trained on an AMD EPYC
# machine, logged 8.152859987785195 at step 100; an Intel machine (family 6 model 167, AVX-512) gives
# 8.15285999996786, and 8.15286003927 to 8.15285994272 under seven settings of ATEN_CPU_CAPABILITY,
# MKL_ENABLE_INSTRUCTIONS, MKL_CBWR and ONEDNN_MAX_CPU_ISA: none reproduces it. 2026-12-06: an AMD EPYC machine
# with AVX-512 (family 25 model 17) gives 8.152860054064698, and under KERNELS=AVX2 the synced value.
set -euo pipefail
: "${WT:?the study worktree}"
arm=${1:?arm} seed=${2:?pre-training seed}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=kernels.sh
. "$here/kernels.sh"
KERNELS=${KERNELS:-}
switches=$(kernel_switches "$KERNELS")
synced=$here/pretrain/$arm.s$seed/metrics.jsonl
[ -s "$synced" ] || { echo "reproduces.sh: no synced metrics for $arm.s$seed ($synced)" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'pkill -f -- "--out $scratch " 2>/dev/null || true; rm -rf "$scratch"' EXIT
# shellcheck disable=SC2086  # a list of VAR=value words
env $switches OMP_NUM_THREADS=1 "$WT/.venv/bin/randommask" study --preset cpu-replication --main-seeds 4 --store /tmp/chr20 \
  --gue "${GUE:-.}" --out "$scratch" --progress false --arm "$arm" --pretrain-seed "$seed" --stage pretrain > "$scratch.log" 2>&1 &
metrics=$scratch/pretrain/$arm.s$seed/metrics.jsonl
until grep -q '"step": 100,' "$metrics" 2>/dev/null; do
  kill -0 $! 2>/dev/null || { echo "reproduces.sh: the rerun stopped: $(tail -n 1 "$scratch.log")" >&2; exit 2; }
  sleep 2
done
old=$(grep -m1 -o '"step": 100, "loss": [^,]*' "$synced")
new=$(grep -m1 -o '"step": 100, "loss": [^,]*' "$metrics")
rm -f "$scratch.log"
under=${KERNELS:+ under the $KERNELS kernels ($switches)}
if [ "$old" = "$new" ]; then echo "$arm.s$seed reproduces here$under ($new)"; exit 0; fi
cpu=$(awk -F': ' '/^vendor_id/ {v=$2} /^cpu family/ {f=$2} /^model\t/ {m=$2} END {print v, "family", f, "model", m}' \
      /proc/cpuinfo)
echo "$arm.s$seed does not reproduce here$under: synced {$old}, here {$new} (this CPU: $cpu)"
exit 1
