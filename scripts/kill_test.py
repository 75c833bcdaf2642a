"""Kill tests: SIGKILL randommask at random moments, resume each time, and compare with an uninterrupted run.

Every start, the first included, is the same command line with ``--resume auto``, as a pre-empted job's
requeue repeats it: it resumes from the latest checkpoint when there is one and starts the run otherwise.

Pre-training: a tiny CPU run; the final parameters must equal the uninterrupted run's, bit for bit, and so
must its metrics log (timings aside). The first kill lands before the first checkpoint, one while a
checkpoint is being written (the process is held at that point by tests/pause_checkpoint.py), the others
after random steps; after every kill the newest checkpoint must still load.

Benchmark (with ``--gue``): a from-scratch tiny benchmark over two tasks x two seeds, killed first before
any run has finished, then after runs have; after every kill the results files must parse (never
truncated), finished runs must not be redone, and the final tables must equal the uninterrupted
benchmark's.

    python scripts/kill_test.py FASTA [--steps 60] [--kills 5] [--seed 0] [--work DIR] [--gue GUE_ROOT]

Exit status 0 when everything matches. tests/test_reliability.py runs a short version of both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from randommask import checkpoint as ckpt

SAVE_INTERVAL = 5


def command(fasta: str, out: Path, steps: int, pause: bool = False) -> list[str]:
    # With pause, every checkpoint write is held 30 s before its rename (tests/pause_checkpoint.py).
    launcher = [str(Path(__file__).resolve().parents[1] / "tests" / "pause_checkpoint.py"), "30"] if pause \
        else ["-m", "randommask.cli"]
    return [sys.executable, *launcher, "pretrain", fasta, "--out", str(out), "--steps", str(steps),
            "--batch-size", "4", "--max-tokens", "64", "--save_interval", str(SAVE_INTERVAL), "--log_interval", "1",
            "--eval_interval", str(steps), "--eval_windows", "4", "--deterministic", "true", "--progress", "false",
            "--keep_checkpoints", "2", "--resume", "auto"]


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def logged_step(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    step = 0
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut by the kill
            step = max(step, json.loads(line).get("step", 0))
    return step


def metrics(out: Path) -> list[dict]:
    """The run's metrics log without its timings."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"} for x in lines]


def run_to_end(fasta: str, out: Path, steps: int) -> None:
    done = subprocess.run(command(fasta, out, steps), env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed: {done.stderr.strip()[-500:]}")


def kill_at(fasta: str, out: Path, steps: int, target: int | None, rng: random.Random) -> str:
    """Start (or resume) the run and SIGKILL it: after step ``target``, or mid-checkpoint when None."""
    log = out.parent / f"{out.name}.stdout"
    with open(log, "w") as stdout:
        proc = subprocess.Popen(command(fasta, out, steps, pause=target is None), env=env(),
                                stdout=stdout, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    what = ""
    while time.time() < deadline and proc.poll() is None:
        # The banner comes after the resumed run has cut metrics.jsonl back to its checkpoint.
        started = "randommask pretrain:" in log.read_text()
        if not started:
            pass
        elif target is None:
            ckpt_dir = out / ckpt.CHECKPOINT_DIR
            tmp = list(ckpt_dir.glob(".step-*.tmp-*")) if ckpt_dir.exists() else []
            if tmp:
                what = f"during the write of {tmp[0].name}"
                break
        elif logged_step(out) >= target:
            time.sleep(rng.uniform(0, 0.05))
            what = f"after step {logged_step(out)}"
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        return f"finished before the kill (exit {proc.returncode})"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return what


def kill_test(fasta: str, work: Path, steps: int = 60, kills: int = 5, seed: int = 0, verbose: bool = True) -> bool:
    rng = random.Random(seed)
    ref, cut = work / "uninterrupted", work / "interrupted"
    run_to_end(fasta, ref, steps)
    # Kill 1 lands before the first checkpoint; then one mid-checkpoint and the rest after random steps.
    checkpoint_kill = rng.randrange(1, kills)
    targets = sorted(rng.sample(range(SAVE_INTERVAL + 1, steps - 1), kills - 2))
    ok = True
    for i in range(kills):
        target = 2 if i == 0 else None if i == checkpoint_kill else targets.pop(0)
        what = kill_at(fasta, cut, steps, target, rng)
        latest = ckpt.latest_checkpoint(cut)
        if i == 0:
            ok &= latest is None and what.startswith("after step")  # killed before its first checkpoint
        if latest is not None:
            ckpt.load_checkpoint(latest)  # must load: a kill never leaves a broken newest checkpoint
        if verbose:
            print(f"kill {i + 1}: {what}; newest checkpoint {latest.name if latest else 'none'}", flush=True)
    run_to_end(fasta, cut, steps)
    a = ckpt.load_checkpoint(ckpt.latest_checkpoint(ref))["model"]
    b = ckpt.load_checkpoint(ckpt.latest_checkpoint(cut))["model"]
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    same_log = metrics(ref) == metrics(cut)
    if verbose:
        print(f"final parameters after {kills} kills {'equal' if same else 'DIFFER FROM'} the uninterrupted run's "
              f"({len(a)} tensors, step {steps}); metrics log {'equal' if same_log else 'DIFFERS'}")
    return ok and same and same_log


def benchmark_command(gue: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "randommask.cli", "benchmark", gue, "--from-scratch", "--tokenizer", "kmer6",
            "--preset", "tiny", "--tasks", "prom/prom_core_all", "tf/0", "--seeds", "2", "--max-steps", "6",
            "--eval-steps", "3", "--max-train-examples", "64", "--max-eval-examples", "64", "--progress", "false",
            "--out", str(out), "--resume", "auto"]


def _finished(out: Path) -> dict[str, float]:
    """Finished runs (their results.json) and when each was written."""
    return {str(p.relative_to(out)): p.stat().st_mtime for p in (out / "runs").glob("**/results.json")}


def _tables(out: Path) -> dict | None:
    """The aggregate tables, parsed: they must never be half-written."""
    if not (out / "results.json").exists():
        return None
    summary = json.loads((out / "results.json").read_text())  # raises if truncated
    for name in ("results.csv", "results.md"):
        if (out / name).exists() and not (out / name).read_text().endswith("\n"):
            raise AssertionError(f"{name} is truncated")
    return summary


def benchmark_kill_test(gue: str, work: Path, kills: int = 3, seed: int = 0, verbose: bool = True) -> bool:
    rng = random.Random(seed)
    ref, cut = work / "bench-uninterrupted", work / "bench-interrupted"
    done = subprocess.run(benchmark_command(gue, ref), env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed: {done.stderr.strip()[-500:]}")
    ok = True
    for i in range(kills):
        before = _finished(cut) if cut.exists() else {}
        proc = subprocess.Popen(benchmark_command(gue, cut), env=env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        if i == 0:  # the first kill: once a run has started, before any has finished
            while time.time() < deadline and proc.poll() is None and not list((cut / "runs").glob("*/*/seed-*")):
                time.sleep(0.01)
        else:  # then once this start has finished at least one more run, after a random extra moment
            while time.time() < deadline and proc.poll() is None and len(_finished(cut)) <= len(before):
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _tables(cut)
        after = _finished(cut)
        redone = [k for k, t in before.items() if after.get(k) != t]
        ok &= not redone and (i > 0 or not after)
        if verbose:
            print(f"benchmark kill {i + 1}: {len(after)} of 4 runs finished; redone: {redone or 'none'}", flush=True)
    done = subprocess.run(benchmark_command(gue, cut), env=env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"benchmark resume failed: {done.stderr.strip()[-500:]}")
    a, b = _tables(ref), _tables(cut)
    strip = lambda t: [{k: v for k, v in r.items() if "wall" not in k} for r in t["tasks"]]  # noqa: E731
    same = strip(a) == strip(b)
    if verbose:
        print(f"benchmark tables after {kills} kills {'equal' if same else 'DIFFER FROM'} the uninterrupted run's")
    return ok and same


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fasta")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--gue", default=None, help="also kill a benchmark on this GUE root")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="randommask-kill-"))
    ok = kill_test(args.fasta, work, args.steps, args.kills, args.seed)
    if args.gue:
        ok &= benchmark_kill_test(args.gue, work, seed=args.seed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
