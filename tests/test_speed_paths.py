"""The fast training paths compute what the plain path computes, and the optional ones fall back cleanly.

test_model.py already checks masked_only against the full head (loss, logits, grads) and the padded
vocabulary (logits, export). Here: both together through a whole optimizer step, the masked-only last
layer on awkward batches, activation checkpointing, the torch.compile fallback, and the benchmark
scripts on tiny shapes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from randommask import pretrain as pt
from randommask.model import BertForMaskedLM, hf_state_dict, load_hf_state_dict, model_config
from randommask.pretrain import PretrainConfig, compile_model, make_optimizer
from realdata import GENOME

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 4101
ATOL = 1e-5


def tiny(pad: int = 1, dropout: float = 0.0, **kw) -> BertForMaskedLM:
    torch.manual_seed(0)
    cfg = model_config("tiny", VOCAB, pad_vocab_multiple=pad, hidden_dropout=dropout, attention_dropout=dropout,
                       max_position_embeddings=64, **kw)
    return BertForMaskedLM(cfg)


def batch(seed: int = 0, b: int = 4, t: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ids, attention mask and labels; row 1 padded, row 2 with nothing masked, row 3 entirely masked."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (b, t), generator=g)
    am = torch.ones(b, t, dtype=torch.long)
    am[1, t - 13 :] = 0
    ids[am == 0] = 0
    pick = (torch.rand(b, t, generator=g) < 0.2) & am.bool()
    pick[2] = False
    pick[3] = True
    pick[:, 0] = False
    labels = torch.where(pick, ids, torch.full_like(ids, -100))
    return ids, am, labels


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Gradients by parameter name, vocabulary-sized ones cut to the real vocabulary."""
    padded = model.config.padded_vocab_size
    return {k: v.grad[:VOCAB] if v.shape[0] == padded else v.grad for k, v in model.named_parameters()}


def test_fast_path_training_step_equals_plain_path() -> None:
    """Padded vocab + masked-only head and last layer, through backward and one AdamW step."""
    plain, fast = tiny(pad=1).train(), tiny(pad=64).train()
    load_hf_state_dict(fast, hf_state_dict(plain))
    ids, am, labels = batch()
    cfg = PretrainConfig()
    opts = [make_optimizer(m, cfg, fused=False) for m in (plain, fast)]
    out_plain = plain(ids, am, labels=labels)
    out_fast = fast(ids, am, labels=labels, masked_only=True)
    torch.testing.assert_close(out_fast.loss, out_plain.loss, atol=ATOL, rtol=0)
    assert int(out_fast.num_masked) == int((labels != -100).sum()) == out_fast.logits.shape[0]
    assert out_fast.logits.shape[1] == VOCAB  # padding columns never leave the model
    out_plain.loss.backward()
    out_fast.loss.backward()
    g_plain, g_fast = grads(plain), grads(fast)
    for name, g in g_plain.items():
        torch.testing.assert_close(g_fast[name], g, atol=ATOL, rtol=1e-4, msg=name)
    pad_rows = fast.bert.embeddings.word_embeddings.weight.grad[VOCAB:]
    assert pad_rows.abs().max() == 0  # never looked up, never predicted
    for opt in opts:
        opt.step()
    after_plain, after_fast = hf_state_dict(plain), hf_state_dict(fast)
    for key, value in after_plain.items():
        torch.testing.assert_close(after_fast[key], value, atol=ATOL, rtol=0, msg=key)
    assert fast.bert.embeddings.word_embeddings.weight[VOCAB:].abs().max() == 0  # padding stays inert


def test_masked_only_last_layer_edge_cases() -> None:
    model = tiny(pad=64).eval()
    ids, am, labels = batch(seed=1)
    with torch.no_grad():
        full = model(ids, am, labels=labels)
        fast = model(ids, am, labels=labels, masked_only=True)
        torch.testing.assert_close(fast.logits, full.logits[labels != -100], atol=ATOL, rtol=0)
        # One masked token in the whole batch; then none (loss 0, not NaN, still differentiable).
        one = torch.full_like(labels, -100)
        one[1, 5] = ids[1, 5]
        torch.testing.assert_close(model(ids, am, labels=one, masked_only=True).logits,
                                   model(ids, am, labels=one).logits[one != -100], atol=ATOL, rtol=0)
    none = torch.full_like(labels, -100)
    out = model.train()(ids, am, labels=none, masked_only=True)
    assert out.loss.item() == 0.0 and out.logits.shape == (0, VOCAB)
    out.loss.backward()
    # Hidden states asked for: everything is computed, and the last one is the full [B, T, H].
    with torch.no_grad():
        out = model.eval()(ids, am, labels=labels, masked_only=True, output_hidden_states=True)
    assert out.hidden_states[-1].shape == (*ids.shape, model.config.hidden_size)
    torch.testing.assert_close(out.logits, fast.logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("masked_only", [False, True])
def test_activation_checkpointing_same_loss_and_grads(masked_only: bool) -> None:
    """Recomputation replays the same dropout masks: equal loss and gradients, with dropout on."""
    ids, am, labels = batch(seed=2)
    results = []
    for checkpointing in (False, True):
        model = tiny(pad=64, dropout=0.1).train()
        model.bert.gradient_checkpointing = checkpointing
        torch.manual_seed(123)
        out = model(ids, am, labels=labels, masked_only=masked_only)
        out.loss.backward()
        results.append((out.loss.detach(), grads(model)))
    (loss_a, g_a), (loss_b, g_b) = results
    torch.testing.assert_close(loss_b, loss_a, atol=ATOL, rtol=0)
    for name, g in g_a.items():
        torch.testing.assert_close(g_b[name], g, atol=ATOL, rtol=1e-4, msg=name)


def _example(model: BertForMaskedLM) -> dict:
    ids, am, labels = batch(seed=3)
    return {"input_ids": ids, "attention_mask": am, "labels": labels, "masked_only": True}


def test_compile_falls_back_when_compile_raises(monkeypatch, capsys) -> None:
    model = tiny(pad=64, dropout=0.1).train()

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nsecond line of the traceback text")

    monkeypatch.setattr(torch, "compile", broken)
    rng = torch.get_rng_state()
    out = compile_model(model, _example(model), lambda: torch.autocast("cpu", enabled=False))
    assert out is model
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: torch.compile unavailable (RuntimeError: no C++ compiler found); training without it"]
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())


def test_compile_falls_back_when_first_call_raises(monkeypatch, capsys) -> None:
    model = tiny(pad=64, dropout=0.1).train()

    class Failing:
        def __call__(self, **kwargs):
            model(**kwargs).loss.backward()  # work done (RNG drawn, grads made), then the failure
            raise AssertionError("inductor lowering failed")

    monkeypatch.setattr(torch, "compile", lambda m, **kw: Failing())
    rng = torch.get_rng_state()
    out = compile_model(model, _example(model), lambda: torch.autocast("cpu", enabled=False))
    assert out is model
    assert "AssertionError: inductor lowering failed" in capsys.readouterr().err
    assert torch.equal(torch.get_rng_state(), rng)  # the try left no trace
    assert all(p.grad is None for p in model.parameters())


def test_pretrain_with_options_equals_plain_run(tmp_path, monkeypatch, capsys) -> None:
    """compile (failing: falls back) and activation checkpointing change nothing in the result."""

    def cfg(out: Path, **kw) -> pt.PretrainConfig:
        return pt.load_config({"out_dir": str(out), "data": {"fasta": [str(GENOME)], "max_tokens": 48},
                               "steps": 4, "batch_size": 4, "log_interval": 2, "eval_interval": 4, "eval_windows": 4,
                               "save_interval": 4, "progress": False, "deterministic": True, **kw})

    plain = pt.pretrain(cfg(tmp_path / "plain"))
    monkeypatch.setattr(torch, "compile", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("unsupported")))
    opts = pt.pretrain(cfg(tmp_path / "opts", compile=True, activation_checkpointing=True))
    assert capsys.readouterr().err.count("torch.compile unavailable (RuntimeError: unsupported)") == 1
    assert opts["loss"] == pytest.approx(plain["loss"], abs=1e-5)
    assert opts["eval_loss"] == pytest.approx(plain["eval_loss"], abs=1e-5)
    from randommask import checkpoint as ckpt

    a = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "plain"))
    b = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path / "opts"))
    assert a["model_config"]["pad_vocab_multiple"] == 64  # the default for new runs
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, atol=1e-5, rtol=0, msg=key)
    # Resuming with the options switched is the same run (they change no result).
    assert pt.config_differences(a["config"], b["config"]) == []


def test_gpu_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu.sh")]).returncode == 0


@pytest.mark.slow
def test_gpu_script_smoke_runs_on_cpu(tmp_path) -> None:
    """`bench/gpu.sh --smoke`: the same Python parts as on a GPU machine, tiny shapes on the CPU."""
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={**__import__("os").environ, "GPU_BENCH_OUT": str(tmp_path),
                                                       "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| training, ours / transformers" in done.stdout


def test_tokenize_benchmark_smoke_runs(tmp_path) -> None:
    """`bench/tokenize_throughput.py --smoke` on the committed excerpt: every figure present and positive."""
    out = tmp_path / "t.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "tokenize_throughput.py"), "--smoke", "--fasta",
                           str(GENOME), "--threads", "1", "--json", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = __import__("json").loads(out.read_text())
    assert all(figures["tokenize"][k] > 0 for k in ("kmer6", "bpe", "bpe library alone"))
    assert set(figures["data_path"]) == {"kmer6", "bpe"} and set(figures["consumption"]) == {"tiny", "small"}
