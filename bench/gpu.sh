#!/usr/bin/env bash
# The speed figures on a GPU machine, in under 5 minutes, ending with one table:
#   training tokens/s, MFU and peak memory of transformers' BertForMaskedLM (SDPA) and of our fast path,
#   eager and torch.compile'd, each fast-path option on its own (--ablate), inference embeddings/s,
#   and the data pipeline's tokens/s against what this GPU was measured to consume.
# Shape: base preset (12x768x12, vocab 4101), 512 tokens, batch 64, bf16 autocast, dropout 0.1.
#
#   bash bench/gpu.sh            # on the GPU machine, from the repository root or anywhere
#   bash bench/gpu.sh --smoke    # the same Python parts on the CPU with tiny shapes (what the tests run)
#
# Python: $PYTHON if set, else .venv/bin/python if it has torch, else python3 if it has torch (randommask
# then runs from src/), else a new .venv made with --system-site-packages and `pip install -e .`. The
# data-pipeline run uses ../shared's E. coli genome where present, else seeded random DNA. Per-run JSON and
# logs go to $GPU_BENCH_OUT (default: a new temporary folder, printed at the start).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SMOKE=0
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $arg (use --smoke or nothing)" >&2; exit 2 ;;
  esac
done

OUT="${GPU_BENCH_OUT:-$(mktemp -d -t randommask-gpu-bench.XXXXXX)}"
mkdir -p "$OUT"
START=$(date +%s)

has_torch() { "$1" -c "import torch" >/dev/null 2>&1; }
if [[ -n "${PYTHON:-}" ]]; then
  PY="$PYTHON"
elif [[ -x .venv/bin/python ]] && has_torch .venv/bin/python; then
  PY=.venv/bin/python
elif has_torch python3; then
  # The machine's own Python holds CUDA torch (on the device machines it is itself a venv, and a venv made
  # from a venv would not see its packages): use it as it is, randommask from the source tree below.
  PY=python3
else
  echo "== creating .venv (system site packages: the machine's torch) and installing randommask"
  python3 -m venv --system-site-packages .venv
  .venv/bin/pip install -q -e . || .venv/bin/pip install -q --no-deps --no-build-isolation -e . || true
  PY=.venv/bin/python
fi
if ! "$PY" -c "import randommask" 2>/dev/null; then
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # not installed: run from the source tree
fi

"$PY" - <<'EOF'
import platform, torch
try:
    import transformers
    tv = transformers.__version__
except ImportError:
    tv = "not installed (no baseline)"
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
print(f"== {platform.node()}: torch {torch.__version__}, CUDA {torch.version.cuda}, {gpu}, transformers {tv}")
EOF
echo "== results in $OUT"

if [[ $SMOKE == 1 ]]; then
  TT=(--smoke)
  DP=(--smoke)
  LIMITS=(600 900 300)
else
  TT=(--device cuda --preset base --batch 64 --seq 512 --dtype bf16 --dropout 0.1 --steps 15 --rounds 3 --warmup 3)
  DP=(--batch 64 --seq 512 --batches 300 --workers 0,1,2,4,8)
  LIMITS=(100 140 45)  # seconds per run (285 in all, so the script stays under 5 minutes); each run writes
                       # its JSON as it goes, so one stopped at its limit still reports what it measured
fi

run() {  # run NAME SECONDS COMMAND...: log to $OUT/NAME.log, keep going on failure
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  local t0=$SECONDS
  if timeout "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    tail -n 1 "$OUT/$name.log"
  else
    echo "   $name failed or timed out after $((SECONDS - t0)) s; last lines of $OUT/$name.log:"
    tail -n 5 "$OUT/$name.log" | sed 's/^/   /'
  fi
}

# 1. transformers vs our fast path, eager, with every option on its own; inference too.
run eager "${LIMITS[0]}" "$PY" bench/train_throughput.py "${TT[@]}" --ablate --json "$OUT/eager.json"
# 2. The same comparison with our model compiled (compiling takes about a minute on a GPU machine).
run compiled "${LIMITS[1]}" "$PY" bench/train_throughput.py "${TT[@]}" --compile --no-infer --json "$OUT/compiled.json"
# 3. The data pipeline alone, 0..8 DataLoader workers, pinned memory.
run pipeline "${LIMITS[2]}" "$PY" bench/data_pipeline.py "${DP[@]}" --json "$OUT/pipeline.json"

echo "== done in $(( $(date +%s) - START )) s"
"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])

def load(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None

eager, compiled, pipe = load("eager"), load("compiled"), load("pipeline")
rows = []
def row(what, value):
    rows.append((what, value))

def mem(t):
    m = t.get("peak_memory")
    return "n/a" if m is None else f"{m / 2**30:.2f} GiB"

ref = eager or compiled
if ref:
    row("shape", f"{ref['preset']}, batch {ref['batch']} x {ref['seq']} tokens ({ref['padding']:.1%} padding), "
                 f"{ref['dtype']}, dropout {ref['dropout']}, {ref['device']}, torch {ref['torch']}")
    row("matmul peak (measured)", f"{ref['matmul_peak_flops'] / 1e12:.1f} TFLOP/s")
for res, tag in ((eager, "eager"), (compiled, "compiled")):
    if not res:
        row(f"training ({tag})", "failed: see the log")
        continue
    for name, t in res["train"].items():
        if tag == "compiled" and name != "ours":
            if name == "hf":
                row(f"training, {t['label'].strip()} (again)", f"{t['tokens_per_s']:,.0f} tokens/s")
            continue
        row(f"training, {t['label'].strip()}" + (" [compiled run]" if tag == "compiled" else ""),
            f"{t['tokens_per_s']:,.0f} tokens/s, MFU {t['mfu']:.1%}, peak {mem(t)}")
    if "ratio" in res:
        row(f"training, ours / transformers ({tag})", f"{res['ratio']:.2f}x")
    if res.get("compile_s"):
        row("compile time", f"{res['compile_s']:.0f} s")
    if "infer" in res and "hf" in res["infer"]:
        i = res["infer"]
        row("inference, embeddings/s (transformers / ours)",
            f"{i['hf']:,.0f} / {i['ours']:,.0f} = {i['ours'] / i['hf']:.2f}x")
if pipe:
    best = pipe["best_tokens_per_s"]
    loader = ", ".join(f"{w}: {r['tokens_per_s'] / 1e6:.2f}M" for w, r in pipe["loader"].items())
    row("data pipeline tokens/s by workers", loader)
    consumed = max((r["train"]["ours"]["tokens_per_s"] for r in (eager, compiled) if r and "ours" in r["train"]),
                   default=None)
    if consumed:
        one = pipe.get("one_worker_tokens_per_s", best)
        row("data pipeline / fastest measured training",
            f"{best / consumed:.2f}x at best, {one / consumed:.2f}x per worker (goal: at least 2x)")
else:
    row("data pipeline", "failed: see the log")
width = max(len(w) for w, _ in rows)
print()
print(f"| {'measure':<{width}} | value |")
print(f"| {'-' * width} | ----- |")
for what, value in rows:
    print(f"| {what:<{width}} | {value} |")
EOF
