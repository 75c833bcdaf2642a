"""Pre-training: learning on real DNA, exact resume, distributed equivalence, bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from randommask import checkpoint as ckpt
from randommask import pretrain as pt
from randommask.cli import main as cli_main
from randommask.errors import RandomMaskError
from randommask.genome import prepare

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHR20 = DATA / "genomes" / "20.fa.gz"
LAMBDA = DATA / "genomes" / "lambda_NC_001416.fa.gz"
ECOLI = DATA / "genomes" / "ecoli536_NC_008253.fna.gz"
needs_data = pytest.mark.skipif(not LAMBDA.exists(), reason="shared data folder not present")


def tiny(out: Path, **kw) -> pt.PretrainConfig:
    data = {"out_dir": str(out), "data": {"fasta": [str(LAMBDA)], "max_tokens": 64}, "steps": 12, "batch_size": 4,
            "log_interval": 2, "eval_interval": 6, "eval_windows": 4, "save_interval": 6, "progress": False,
            "deterministic": True, "keep_checkpoints": 0}
    for k, v in kw.items():
        if isinstance(v, dict):
            data.setdefault(k, {}).update(v)
        else:
            data[k] = v
    return pt.load_config(data)


def params(run: Path) -> dict:
    return ckpt.load_checkpoint(ckpt.latest_checkpoint(run))["model"]


@needs_data
@pytest.mark.skipif(not CHR20.exists(), reason="chromosome 20 not present")
def test_tiny_run_on_chr20_beats_uniform(tmp_path):
    store = tmp_path / "chr20"
    prepare([CHR20], store)
    cfg = pt.load_config({"out_dir": str(tmp_path / "run"), "data": {"store": str(store), "max_tokens": 128},
                          "steps": 200, "batch_size": 16, "log_interval": 20, "eval_interval": 100,
                          "eval_windows": 64, "save_interval": 200, "progress": False,
                          "optim": {"lr": 2e-3, "warmup_steps": 20}})
    result = pt.pretrain(cfg)
    uniform = math.log(4101)
    assert result["eval_loss"] < uniform - 0.25, result
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # The curriculum moved through all five phases, in order, at steps 40, 80, 120, 160.
    assert [m["phase"] for m in lines] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


@needs_data
def test_resume_gives_same_parameters(tmp_path, monkeypatch):
    full = tmp_path / "full"
    pt.pretrain(tiny(full))
    # Crash right after the step-6 checkpoint: the process dies, the folder keeps step 6.
    cut = tmp_path / "cut"
    real_save = pt.save

    def crash_after(run_dir, step, *a, **k):
        real_save(run_dir, step, *a, **k)
        if step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(pt, "save", crash_after)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(tiny(cut))
    monkeypatch.setattr(pt, "save", real_save)
    assert ckpt.latest_checkpoint(cut).name == "step-6.pt"
    result = pt.pretrain(tiny(cut), resume=True)
    assert result["step"] == 12
    a, b = params(full), params(cut)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The metrics log of the resumed run equals the uninterrupted one, line for line (timing aside).
    strip = [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"}
             for x in (full / "metrics.jsonl").read_text().splitlines()]
    again = [{k: v for k, v in json.loads(x).items() if k != "tokens_per_s"}
             for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert strip == again


@needs_data
def test_torchrun_two_ranks_matches_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [str(ECOLI), "--max-tokens", "128", "--steps", "24", "--log_interval", "2", "--eval_interval", "24",
              "--eval_windows", "32", "--save_interval", "24", "--progress", "false", "--optim.lr", "2e-3",
              "--optim.warmup_steps", "4",
              "--model", "{hidden_dropout: 0.0, attention_dropout: 0.0}"]
    one = subprocess.run([sys.executable, "-m", "randommask.cli", "pretrain", *common, "--batch-size", "16",
                          "--out", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                          "-m", "randommask.cli", "pretrain", *common, "--batch-size", "8",
                          "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    curve = {}
    for name in ("one", "two"):
        curve[name] = [json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    assert len(curve["one"]) == len(curve["two"]) == 12
    # Same windows, same global batch; only the masks differ (each rank draws its own), so the curves
    # agree within sampling noise, and so do the held-out losses at the end.
    gaps = [abs(a - b) for a, b in zip(curve["one"], curve["two"], strict=True)]
    assert sum(gaps) / len(gaps) < 0.04 and max(gaps) < 0.1, curve
    final = {name: json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])
             for name in ("one", "two")}
    assert abs(final["one"]["eval_loss"] - final["two"]["eval_loss"]) < 0.06, final
    assert "x 2 ranks" in two.stdout


@needs_data
def test_bad_inputs(tmp_path, capsys):
    def err(argv):
        assert cli_main(argv) == 2
        msg = capsys.readouterr().err.strip()
        assert "\n" not in msg and "Traceback" not in msg
        return msg

    assert "nope.fa: FASTA file not found" in err(["pretrain", str(tmp_path / "nope.fa"), "--out", str(tmp_path / "a")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    assert "optim: unknown key 'learning_rate'" in err(["pretrain", "--config", str(bad)])
    assert "config.steps: expected an integer, got 'ten'" in err(["pretrain", str(LAMBDA), "--steps", "ten"])
    assert "does not fit the model's 512 positions" in err(
        ["pretrain", str(LAMBDA), "--max-tokens", "600", "--out", str(tmp_path / "b"), "--progress", "false"])
    assert "optim.grad_clip must be at least 0, got -1.0" in err(["pretrain", str(LAMBDA), "--optim.grad_clip", "-1"])
    assert "optim.lr must be at least 0, got -0.001" in err(["pretrain", str(LAMBDA), "--lr=-1e-3"])
    assert "no checkpoint to resume from" in err(["pretrain", str(LAMBDA), "--out", str(tmp_path / "c"), "--resume"])
    run = tmp_path / "d"
    pt.pretrain(tiny(run, steps=2, save_interval=2))
    msg = err(["pretrain", "--config", str(run / "config.yaml"), "--optim.lr", "0.1", "--resume"])
    assert "another config" in msg and "optim.lr" in msg
    assert "already holds a run" in err(["pretrain", "--config", str(run / "config.yaml")])
    with pytest.raises(RandomMaskError, match="no training data"):
        pt.load_config({})


@needs_data
def test_nonfinite_steps_are_skipped_then_stop(tmp_path, monkeypatch):
    real = pt.BertForMaskedLM.forward
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        out = real(self, *a, **k)
        calls["n"] += 1
        if calls["n"] >= 3:  # from the third step on, every loss is NaN
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(pt.BertForMaskedLM, "forward", poisoned)
    with pytest.raises(RandomMaskError, match="3 steps in a row with a non-finite"):
        pt.pretrain(tiny(tmp_path / "r", max_bad_steps=3, save_interval=2))
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "skipped" in m] == [3, 4, 5]
    # Skipped steps leave the parameters as they were: the checkpoints after step 2 equal it, all finite.
    saved = [ckpt.load_checkpoint(p)["model"] for p in ckpt.list_checkpoints(tmp_path / "r")]
    assert len(saved) == 2 and all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])
    assert all(torch.isfinite(v).all() for v in saved[-1].values())


@needs_data
def test_grad_clip_zero_means_no_clipping(tmp_path):
    """optim.grad_clip 0 turns clipping off (the same run as an unreachable threshold), not the gradients."""
    for name, clip in (("off", 0.0), ("huge", 1e12), ("clip", 1e-3)):
        pt.pretrain(tiny(tmp_path / name, steps=3, save_interval=3, optim={"grad_clip": clip}))
    a, b, c = (params(tmp_path / name) for name in ("off", "huge", "clip"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
