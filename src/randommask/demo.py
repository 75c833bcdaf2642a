"""``randommask demo``: pre-train the ``tiny`` model with RandomMask on real human DNA, then say plainly
what it reached.

The default data is human chromosome 20 (GRCh37), which ``scripts/setup.sh`` obtains from the Debian
package ``vt-examples``; ``--fasta`` takes any other FASTA file. There is no synthetic fallback: with
no data the command stops and says how to get some.

What the demo can and cannot show at CPU scale: in a few minutes the model learns the k-mer
frequencies and starts to read the bases a masked k-mer shares with its visible neighbours (the
overlapping-token shortcut), so its loss falls well under the uniform and frequency baselines. The
paper's effects (loss collapse, under-trained middle layers, RandomMask's gain on GUE) need orders
of magnitude more compute; the closing message says how to get there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from randommask import checkpoint as ckpt
from randommask.errors import RandomMaskError
from randommask.genome import GenomeStore, SamplerConfig, WindowSampler, held_out_windows
from randommask.masking import (
    MaskingConfig,
    analysis_rng,
    apply_mask,
    describe,
    describe_lines,
    eval_rng,
    hidden_nucleotides,
    phase_starts,
    plan,
)
from randommask.pretrain import load_config, pretrain
from randommask.tokenizers import Encoding, Tokenizer, uniform_loss

DEFAULT_DATA = ("data/genomes/20.fa.gz",)


@dataclass
class DemoConfig:
    """The demo run: small enough for 2 CPU cores in a few minutes."""

    fasta: str | None = None  # genome FASTA (default: the data/genomes/20.fa.gz that scripts/setup.sh fetched)
    out_dir: str = "runs/demo"  # the run folder
    steps: int = 1200  # pre-training steps (RandomMask phases are equal fifths of them)
    batch_size: int = 32  # windows per step
    max_tokens: int = 128  # tokens per window, [CLS] and [SEP] included
    lr: float = 2e-3  # peak learning rate
    seed: int = 0  # everything random in the run
    progress: bool = True  # show a progress bar


def find_data(cfg: DemoConfig) -> Path:
    if cfg.fasta:
        p = Path(cfg.fasta)
        if not p.exists():
            raise RandomMaskError(f"{p}: FASTA file not found")
        return p
    for c in DEFAULT_DATA:
        if Path(c).exists():
            return Path(c)
    raise RandomMaskError("no human DNA found at data/genomes/20.fa.gz: run scripts/setup.sh (it fetches "
                          "chromosome 20 from Debian's vt-examples) or pass --fasta FILE")


def frequency_baseline(train_windows: list[np.ndarray], labels: np.ndarray,
                       tokenizer: Tokenizer) -> tuple[float, float]:
    """Loss and accuracy of predicting every masked k-mer from k-mer frequencies alone (no context)."""
    enc = tokenizer.encode_batch(train_windows)
    ids = enc.ids[~enc.special_mask]
    counts = np.bincount(ids, minlength=tokenizer.vocab_size).astype(np.float64)[tokenizer.kmer_ids]
    probs = (counts + 1.0) / (counts.sum() + len(counts))  # add-one: no k-mer is impossible
    p_of = np.zeros(tokenizer.vocab_size)
    p_of[tokenizer.kmer_ids] = probs
    loss = float(-np.mean(np.log(p_of[labels])))
    acc = float(np.mean(labels == tokenizer.kmer_ids[np.argmax(probs)]))
    return loss, acc


def run_demo(cfg: DemoConfig) -> int:
    """Pre-train (or resume) the demo run, then print what it reached against the baselines."""
    fasta = find_data(cfg)
    out = Path(cfg.out_dir)
    pcfg = load_config({
        "out_dir": str(out), "tokenizer": "kmer6", "preset": "tiny", "steps": cfg.steps, "batch_size": cfg.batch_size,
        "seed": cfg.seed, "log_interval": 20, "eval_interval": max(1, cfg.steps // 10), "eval_windows": 128,
        "save_interval": max(1, cfg.steps // 4), "progress": cfg.progress,
        "data": {"fasta": [str(fasta)], "max_tokens": cfg.max_tokens},
        "optim": {"lr": cfg.lr, "warmup_steps": max(1, cfg.steps // 20)},
        "masking": {"strategy": "randommask"},
    })
    resume = ckpt.latest_checkpoint(out) is not None
    t0 = time.perf_counter()
    final = pretrain(pcfg, resume=resume)
    minutes = (time.perf_counter() - t0) / 60
    if final.get("stopped_early"):
        return 0
    pre = ckpt.open_run(out)
    tok = pre.tokenizer
    store = GenomeStore.open(out / "genome")
    scfg = SamplerConfig(window_nt=tok.bases_for_tokens(cfg.max_tokens - 2), short_prob=0.0, seed=cfg.seed)
    train_windows = [WindowSampler(store, scfg, "train").draw(10**7 + i) for i in range(512)]
    eval_windows = held_out_windows(store, scfg.window_nt, 128, cfg.seed, pcfg.data.max_n_fraction,
                                    pcfg.data.heldout_fraction)
    enc = tok.encode_batch(eval_windows)
    masking = plan(pcfg.masking, pcfg.steps, tok.span_unit)  # as the run planned it
    _, labels, mask = apply_mask(enc.ids, enc.special_mask, eval_rng(cfg.seed, 0), masking, cfg.steps - 1,
                                 tok.mask_id, tok.kmer_ids)
    freq_loss, freq_acc = frequency_baseline(train_windows, labels[mask], tok)
    uniform = uniform_loss(tok)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [m for m in metrics if "eval_loss" in m]
    last = evals[-1]

    print()
    print("What the run reached (held-out end of each chromosome, masked as in the last phase):")
    print(f"  {'':34}{'loss (nats)':>12}{'accuracy':>10}")
    print(f"  {'uniform guess over 4096 6-mers':34}{uniform:>12.3f}{1 / 4096:>10.4f}")
    print(f"  {'6-mer frequencies, no context':34}{freq_loss:>12.3f}{freq_acc:>10.4f}")
    print(f"  {'this model':34}{last['eval_loss']:>12.3f}{last['eval_acc']:>10.4f}")
    print(f"  -> {uniform - last['eval_loss']:.2f} nats under uniform, {freq_loss - last['eval_loss']:.2f} under "
          f"frequencies, after {cfg.steps} steps ({cfg.steps * cfg.batch_size * cfg.max_tokens / 1e6:.1f} M tokens)"
          + (f" in {minutes:.1f} min" if not resume else ""))
    print("The masking:")
    print("\n".join(f"  {line}" for line in describe_lines(masking)))
    print("Evaluation loss through the curriculum (each phase masks wider spans, so it hides more bases):")
    starts = phase_starts(masking) + [cfg.steps + 1]
    for q in range(len(starts) - 1):
        in_phase = [m for m in evals if starts[q] < m["step"] <= starts[q + 1]]
        info = describe(masking, starts[q])
        m = hidden_per_span(enc, masking, starts[q], tok)
        tail = "not evaluated"
        if in_phase:
            tail = f"eval loss {in_phase[-1]['eval_loss']:.3f} at step {in_phase[-1]['step']}"
        end = min(starts[q + 1], cfg.steps + 1) - 1
        print(f"  phase {q + 1}: steps {starts[q]}-{end}, span widths {info['width_min']}..{info['width_max']}, "
              f"{m:.2f} bases truly hidden per masked span; {tail}")
    print()
    print("At this compute the model has learned k-mer frequencies and part of the overlapping-k-mer shortcut "
          "(a masked 6-mer next to a visible one differs from it by one base). The paper's effects need far more: "
          "on a GPU, `randommask pretrain FASTA --preset small --steps 20000 --batch-size 128 --max-tokens 512` "
          "(see README, 'Going further'); then `randommask finetune` on GUE tasks.")
    return 0


def hidden_per_span(enc: Encoding, masking: MaskingConfig, step: int, tok: Tokenizer) -> float:
    """Mean bases truly hidden per masked span at ``step`` (the paper's measure of task difficulty)."""
    _, _, mask = apply_mask(enc.ids, enc.special_mask, analysis_rng(0, step), masking, step, tok.mask_id,
                            tok.kmer_ids)
    rep = hidden_nucleotides(mask, enc.spans)
    return float(rep.run_hidden.mean()) if rep.run_hidden.size else 0.0
