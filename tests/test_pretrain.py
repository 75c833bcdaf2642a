"""Pre-training: learning on real DNA, exact resume, distributed equivalence, bad input."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from randommask import checkpoint as ckpt
from randommask import pretrain as pt
from randommask.cli import main as cli_main
from randommask.errors import RandomMaskError
from randommask.model import MaskedLMOutput
from realdata import GENOME


def tiny(out: Path, **kw) -> pt.PretrainConfig:
    data = {"out_dir": str(out), "data": {"fasta": [str(GENOME)], "max_tokens": 64}, "steps": 12, "batch_size": 4,
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


class FrequencyModel(torch.nn.Module):
    """A model that learned only k-mer frequencies: the same logits, log p(k-mer), at every masked position."""

    def __init__(self, log_p: torch.Tensor) -> None:
        super().__init__()
        self.log_p = log_p

    def forward(self, input_ids, attention_mask, labels=None, masked_only=False):
        y = labels[labels != -100]
        logits = self.log_p.expand(len(y), -1)
        return MaskedLMOutput(loss=F.cross_entropy(logits, y), logits=logits, num_masked=torch.tensor(len(y)))


# Held-out loss must be this far below the frequency baseline. A context-free model scores the baseline at
# best (the frequencies are those of the very windows it is scored on), so no margin > 0 is reachable by it.
BEYOND_COUNTING = 0.2


def test_tiny_run_on_chr20_learns_beyond_kmer_frequencies(chr20_store, tmp_path, monkeypatch):
    seen = {}
    real_evaluate = pt.evaluate

    def spy(model, encs, tokenizer, masking, step, seed, device, autocast):
        seen.update(encs=encs, tokenizer=tokenizer, masking=masking, step=step, seed=seed)
        return real_evaluate(model, encs, tokenizer, masking, step, seed, device, autocast)

    monkeypatch.setattr(pt, "evaluate", spy)
    # BERT masking: most masked 6-mers are spelled out by their neighbours, which a model can learn to read
    # within a few hundred steps; a model that only counts k-mers cannot.
    cfg = pt.load_config({"out_dir": str(tmp_path / "run"), "data": {"store": str(chr20_store.path), "max_tokens": 64},
                          "steps": 400, "batch_size": 32, "log_interval": 50, "eval_interval": 400,
                          "eval_windows": 512, "save_interval": 400, "progress": False,
                          "masking": {"strategy": "bert"}, "model": {"hidden_dropout": 0.0, "attention_dropout": 0.0},
                          "optim": {"lr": 3e-3, "warmup_steps": 40}})
    result = pt.pretrain(cfg)
    assert seen["step"] == 399  # the final evaluation (0-based step)

    # The 6-mer frequency baseline on the same held-out windows: the frequencies of their own 6-mers (all
    # positions), scored on the masked positions of the final evaluation, through the same evaluation code.
    tok = seen["tokenizer"]
    ids = np.concatenate([e.ids[e.attention_mask.astype(bool) & ~e.special_mask.astype(bool)] for e in seen["encs"]])
    counts = np.bincount(ids, minlength=tok.vocab_size).astype(np.float64)
    assert counts.sum() == 512 * 62 and (counts > 0).sum() > 3500  # 62 6-mers a window, most of the 4,096 seen
    with np.errstate(divide="ignore"):  # -inf for unseen 6-mers: never a masked label
        log_p = torch.from_numpy(np.log(counts / counts.sum())).float()
    frequency = real_evaluate(FrequencyModel(log_p), seen["encs"], tok, seen["masking"], seen["step"], seen["seed"],
                              torch.device("cpu"), contextlib.nullcontext)["eval_loss"]
    entropy = float(-(counts[counts > 0] / counts.sum() * np.log(counts[counts > 0] / counts.sum())).sum())
    assert abs(frequency - entropy) < 0.1, (frequency, entropy)  # masked positions are a fair sample
    assert 7.7 < entropy < 8.32  # chr20's 6-mers: near, below, the uniform ln 4096

    def learned_beyond_counting(loss: float) -> bool:
        return loss < frequency - BEYOND_COUNTING

    assert not learned_beyond_counting(frequency)  # the frequency-only model fails the criterion
    print(f"held-out loss {result['eval_loss']:.3f}, 6-mer frequency baseline {frequency:.3f}, entropy {entropy:.3f}")
    assert learned_beyond_counting(result["eval_loss"]), (result["eval_loss"], frequency)


def test_randommask_curriculum_moves_through_five_phases(tmp_path):
    pt.pretrain(tiny(tmp_path / "run", steps=10, log_interval=1, eval_interval=10, save_interval=10))
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # Phases of 2 steps each, in order: widths 6..6, then 6..8, ... 6..14 (k = 6, even widths).
    assert [m["phase"] for m in lines] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [(m["width_min"], m["width_max"]) for m in lines[::2]] == [(6, 6), (6, 8), (6, 10), (6, 12), (6, 14)]


def test_resume_gives_same_parameters(tmp_path, monkeypatch):
    """One call, resume="auto" (what a requeued job repeats), after a crash before the first checkpoint and
    after one: the run ends as the uninterrupted run, parameters and metrics log alike."""
    full = tmp_path / "full"
    pt.pretrain(tiny(full))
    cut = tmp_path / "cut"
    # Crash at step 4, before the first checkpoint (step 6): the folder has a metrics log but no checkpoint.
    real_write = pt.MetricsLog.write

    def crash_at_4(self, record):
        real_write(self, record)
        if record["step"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(pt.MetricsLog, "write", crash_at_4)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(tiny(cut), resume="auto")
    monkeypatch.setattr(pt.MetricsLog, "write", real_write)
    assert ckpt.latest_checkpoint(cut) is None and (cut / "metrics.jsonl").read_text()
    # Crash right after the step-6 checkpoint: the process dies, the folder keeps step 6.
    real_save = pt.save

    def crash_after(run_dir, step, *a, **k):
        real_save(run_dir, step, *a, **k)
        if step == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(pt, "save", crash_after)
    with pytest.raises(KeyboardInterrupt):
        pt.pretrain(tiny(cut), resume="auto")
    monkeypatch.setattr(pt, "save", real_save)
    assert ckpt.latest_checkpoint(cut).name == "step-6.pt"
    result = pt.pretrain(tiny(cut), resume="auto")
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


def test_resume_with_other_steps_is_refused(tmp_path, capsys):
    """The learning-rate schedule (and RandomMask's phases) are planned over `steps`: no other count on resume."""
    for strategy in ("bert", "dnabert", "randommask"):
        run = tmp_path / strategy
        pt.pretrain(tiny(run, steps=4, save_interval=2, masking={"strategy": strategy}))
        for resume in (["--resume"], ["--resume", "auto"]):
            assert cli_main(["pretrain", "--config", str(run / "config.yaml"), "--steps", "8", *resume]) == 2
            err = capsys.readouterr().err.strip()
            assert "\n" not in err and "planned over 4 steps, not 8" in err and "--steps 4" in err, err
    # What it protects: the same step has another learning rate under another plan.
    from randommask.runtime import lr_factor

    assert lr_factor(3, 1, 4) != lr_factor(3, 1, 8)


def test_torchrun_two_ranks_matches_one_process(chr20_store, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--store", str(chr20_store.path), "--max-tokens", "128", "--steps", "24", "--log_interval", "2",
              "--eval_interval", "24",
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
    assert "config.steps: expected an integer, got 'ten'" in err(["pretrain", str(GENOME), "--steps", "ten"])
    assert "a window of 600 tokens does not fit the model's 512 positions" in err(
        ["pretrain", str(GENOME), "--max-tokens", "600", "--out", str(tmp_path / "b"), "--progress", "false"])
    assert "optim.grad_clip must be at least 0, got -1.0" in err(["pretrain", str(GENOME), "--optim.grad_clip", "-1"])
    assert "optim.lr must be at least 0, got -0.001" in err(["pretrain", str(GENOME), "--lr=-1e-3"])
    assert "no checkpoint to resume from" in err(["pretrain", str(GENOME), "--out", str(tmp_path / "c"), "--resume"])
    run = tmp_path / "d"
    pt.pretrain(tiny(run, steps=2, save_interval=2))
    msg = err(["pretrain", "--config", str(run / "config.yaml"), "--optim.lr", "0.1", "--resume"])
    assert "another config" in msg and "optim.lr" in msg
    assert "already holds a run" in err(["pretrain", "--config", str(run / "config.yaml")])
    with pytest.raises(RandomMaskError, match="no training data"):
        pt.load_config({})


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


def test_grad_clip_zero_means_no_clipping(tmp_path):
    """optim.grad_clip 0 turns clipping off (the same run as an unreachable threshold), not the gradients."""
    for name, clip in (("off", 0.0), ("huge", 1e12), ("clip", 1e-3)):
        pt.pretrain(tiny(tmp_path / name, steps=3, save_interval=3, optim={"grad_clip": clip}))
    a, b, c = (params(tmp_path / name) for name in ("off", "huge", "clip"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


# ------------------------------------------------------------------------------------------ BPE
@pytest.fixture(scope="module")
def bpe_vocab(tmp_path_factory) -> Path:
    from bpe_fixtures import small_bpe

    return small_bpe(tmp_path_factory.mktemp("bpe"))


def test_bpe_windows_fill_the_token_budget_and_a_run_resumes_exactly(bpe_vocab, tmp_path):
    """Windows are cut in bases from the measured compression so that nearly every one fills ``max_tokens``
    (the excess cut); the run stores the compression and its tokenizer, so a resumed run is the same run."""
    from randommask.genome import GenomeStore, prepare

    cfg = tiny(tmp_path / "full", tokenizer=f"bpe:{bpe_vocab}", masking={"strategy": "bert"})
    prepare([GENOME], tmp_path / "store", progress=False)
    store = GenomeStore.open(tmp_path / "store")
    tok = pt.calibrate(pt.from_name(cfg.tokenizer), store, cfg)
    assert tok.bases_per_token_mean > 1.5
    train, long = pt.samplers(cfg, store, tok, pt.Dist())
    batches = pt.MaskedBatches(train, tok, pt.plan(cfg.masking, cfg.steps, tok.span_unit), cfg, 0, 0, long)
    full_rows = [int(r.sum()) == 64 for s in range(6) for r in batches.batch(s)["attention_mask"]]
    assert np.mean(full_rows) >= 0.75  # the short windows (short_prob 0.1) and rare low-compression DNA pad
    pt.pretrain(cfg)
    cut = tmp_path / "cut"
    pt.pretrain(tiny(cut, tokenizer=f"bpe:{bpe_vocab}", masking={"strategy": "bert"}, steps=12))
    a = params(tmp_path / "full")
    # Resume from the step-6 checkpoint of the second run after deleting what came after: same parameters.
    (cut / "checkpoints" / "step-12.pt").unlink()
    (cut / "checkpoints" / "latest").write_text("step-6.pt")
    pt.pretrain(tiny(cut, tokenizer=f"bpe:{bpe_vocab}", masking={"strategy": "bert"}), resume=True)
    b = params(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)
    run = ckpt.open_run(tmp_path / "full")
    assert run.tokenizer.name == "bpe256" and run.tokenizer.bases_per_token_mean == tok.bases_per_token_mean


def test_bpe_refuses_span_masking_in_one_line(bpe_vocab, tmp_path, capsys):
    for strategy in ("dnabert", "randommask"):
        assert cli_main(["pretrain", str(GENOME), "--out", str(tmp_path / strategy), "--tokenizer",
                         f"bpe:{bpe_vocab}", "--masking", strategy, "--steps", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "do not overlap" in err and "--masking bert" in err


def test_early_decay_reaches_its_floor_and_the_run_logs_it(tmp_path):
    """optim.decay_fraction / min_lr_ratio: linear decay from the peak to the floor at that share of the steps,
    then constant; the logged learning rate of a run follows it (against the formula written out here)."""
    from randommask.runtime import lr_factor

    def expected(step: int) -> float:  # warm-up 2, decay from step 2 to step 8 (0.5 x 16) down to 0.2
        return (step + 1) / 2 if step < 2 else max(0.2, 1 - 0.8 * (step - 2) / 6)

    assert [lr_factor(s, 2, 16, 8, 0.2) for s in range(16)] == pytest.approx([expected(s) for s in range(16)])
    pt.pretrain(tiny(tmp_path / "r", steps=16, log_interval=1, eval_interval=16, save_interval=16,
                     optim={"lr": 1e-3, "warmup_steps": 2, "decay_fraction": 0.5, "min_lr_ratio": 0.2}))
    logged = {json.loads(x)["step"]: json.loads(x)["lr"] for x in (tmp_path / "r" / "metrics.jsonl").open()}
    assert logged[16] == pytest.approx(2e-4) and logged[8] == pytest.approx(2e-4)
    with pytest.raises(RandomMaskError, match="min_lr_ratio is the floor"):
        tiny(tmp_path / "x", optim={"min_lr_ratio": 0.1})


def test_interleaved_long_steps_start_at_long_from():
    cfg = pt.load_config({"steps": 40, "batch_size": 8, "data": {"store": "x", "max_tokens": 32, "long_max_tokens": 64,
                                                                 "long_every": 5, "long_from": 0.5}})
    assert [s for s in range(40) if pt.long_step(cfg, s)] == [24, 29, 34, 39]
    assert pt.long_kinds(cfg) == ["long"]


def test_the_regular_windows_loss_is_logged_apart_from_the_long_steps(tmp_path):
    """With longer-window steps, ``loss_short`` is the loss of the regular steps alone: equal to ``loss`` on a
    line that holds only regular steps, absent on one that holds only a long step, and between on a mix."""
    pt.pretrain(tiny(tmp_path / "r", steps=6, log_interval=1, eval_interval=6, save_interval=6,
                     masking={"strategy": "bert"}, data={"max_tokens": 32, "long_max_tokens": 64, "long_every": 3}))
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        if line["step"] % 3 == 0:  # steps 3 and 6 (0-based 2 and 5) are the long ones
            assert "loss_short" not in line
        else:
            assert line["loss_short"] == pytest.approx(line["loss"])
    pt.pretrain(tiny(tmp_path / "m", steps=6, log_interval=3, eval_interval=6, save_interval=6,
                     masking={"strategy": "bert"}, data={"max_tokens": 32, "long_max_tokens": 64, "long_every": 3}))
    mixed = [json.loads(x) for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert all("loss_short" in x and x["loss_short"] != x["loss"] for x in mixed)
